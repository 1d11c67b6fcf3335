"""The model against the paper's numbers: parameter counts, multiply-adds, end points, options."""

import json
import re

import numpy as np
import pytest
import tensorflow as tf

import resnet_tf1
from resnet_tf1 import kernels, manifest

tf1 = tf.compat.v1

# The paper's Table 1 multiply-adds (x 10^9) and the exact torchvision / Keras-without-bias counts.
PAPER_MACS = {18: 1.8, 34: 3.6, 50: 3.8, 101: 7.6, 152: 11.3}
EXACT_PARAMS = {18: 11_689_512, 34: 21_797_672, 50: 25_557_032, 101: 44_549_160,
                152: 60_192_808}
# The paper's Table 6 (millions, at the paper's precision).
CIFAR_PARAMS = {32: (0.46, 2), 44: (0.66, 2), 56: (0.85, 2), 110: (1.7, 1), 1202: (19.4, 1)}


def trainable_count(model, size):
    g = tf.Graph()
    with g.as_default():
        model(tf1.placeholder(tf.float32, [None, size, size, 3]))
        return sum(int(np.prod(v.shape)) for v in tf1.trainable_variables())


@pytest.mark.parametrize("depth", sorted(EXACT_PARAMS))
@pytest.mark.parametrize("variant", ["paper", "v1.5", "slim"])
def test_imagenet_parameter_counts(depth, variant):
    assert trainable_count(resnet_tf1.ResNet(depth, variant=variant), 224) == EXACT_PARAMS[depth]


def test_cifar_resnet20_parameter_count():
    assert trainable_count(resnet_tf1.CifarResNet20(), 32) == 269_722


@pytest.mark.parametrize("depth", sorted(CIFAR_PARAMS))
def test_cifar_parameter_counts_match_table6(depth):
    millions, digits = CIFAR_PARAMS[depth]
    count = trainable_count(resnet_tf1.ResNet(depth, num_classes=10), 32)
    assert round(count / 1e6, digits) == millions


@pytest.mark.parametrize("depth", sorted(PAPER_MACS))
def test_multiply_adds_within_10_percent_of_table1(depth):
    macs = manifest.make(dict(depth=depth))["multiply_adds"] / 1e9
    assert abs(macs - PAPER_MACS[depth]) / PAPER_MACS[depth] < 0.10, macs


def _end_point_shapes(model, size, batch=None):
    g = tf.Graph()
    with g.as_default():
        _, end_points = model(tf1.placeholder(tf.float32, [batch, size, size, 3]))
    return {k: v.shape.as_list() for k, v in end_points.items()}


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152, 200])
def test_imagenet_end_points(depth):
    c = [64, 128, 256, 512] if depth in (18, 34) else [256, 512, 1024, 2048]
    s = "resnet%d" % depth
    assert _end_point_shapes(resnet_tf1.ResNet(depth), 224) == {
        s + "/conv1": [None, 112, 112, 64],
        s + "/pool1": [None, 56, 56, 64],
        s + "/block1": [None, 56, 56, c[0]],
        s + "/block2": [None, 28, 28, c[1]],
        s + "/block3": [None, 14, 14, c[2]],
        s + "/block4": [None, 7, 7, c[3]],
        s + "/global_pool": [None, c[3]],
        s + "/logits": [None, 1000],
        "predictions": [None, 1000],
    }


def test_slim_variant_end_points_stride_at_the_end_of_each_block():
    shapes = _end_point_shapes(resnet_tf1.ResNet(50, variant="slim"), 224)
    assert [shapes["resnet50/block%d" % i] for i in (1, 2, 3, 4)] == [
        [None, 28, 28, 256], [None, 14, 14, 512], [None, 7, 7, 1024], [None, 7, 7, 2048]]


def test_keras2016_pool_padding_gives_55():
    shapes = _end_point_shapes(resnet_tf1.ResNet(50, pool_padding="VALID"), 224)
    assert shapes["resnet50/pool1"] == [None, 55, 55, 64]
    assert shapes["resnet50/block4"] == [None, 7, 7, 2048]


@pytest.mark.parametrize("depth", [20, 32, 44, 56, 110])
def test_cifar_end_points(depth):
    s = "cifar_resnet%d" % depth
    assert _end_point_shapes(resnet_tf1.ResNet(depth, num_classes=10), 32) == {
        s + "/conv1": [None, 32, 32, 16],
        s + "/block1": [None, 32, 32, 16],
        s + "/block2": [None, 16, 16, 32],
        s + "/block3": [None, 8, 8, 64],
        s + "/global_pool": [None, 64],
        s + "/logits": [None, 10],
        "predictions": [None, 10],
    }


def test_architecture_is_chosen_from_the_input_for_depth_50():
    assert "cifar_resnet50/block3" in _end_point_shapes(resnet_tf1.ResNet(50, num_classes=10), 32)
    assert "resnet50/block4" in _end_point_shapes(resnet_tf1.ResNet(50), 224)


def test_seed_cifar_resnet18_stem():
    shapes = _end_point_shapes(resnet_tf1.ResNet(18, num_classes=10, stem="cifar"), 32)
    assert shapes["resnet18/conv1"] == [None, 32, 32, 64]
    assert "resnet18/pool1" not in shapes
    assert shapes["resnet18/block4"] == [None, 4, 4, 512]


def test_option_b_on_cifar_adds_projections():
    a = trainable_count(resnet_tf1.ResNet(20, num_classes=10, shortcut="A"), 32)
    b = trainable_count(resnet_tf1.ResNet(20, num_classes=10, shortcut="B"), 32)
    # Two 1x1 projections with BN: 16->32 and 32->64.
    assert b - a == (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)


# ResNet-34 option B projects three times (64->128, 128->256, 256->512, each a 1x1 conv + BN);
# option A, and so the paper's plain-34, has none of them.
RESNET34_PROJECTIONS = sum(i * o + 2 * o for i, o in ((64, 128), (128, 256), (256, 512)))


def _names_and_additions(model, size):
    g = tf.Graph()
    with g.as_default():
        model(tf1.placeholder(tf.float32, [None, size, size, 3]))
        adds = [op.name for op in g.get_operations()
                if op.type in ("Add", "AddV2") and re.search(r"/(basic|bottleneck)/add", op.name)]
        return {v.op.name: v.shape.as_list() for v in tf1.trainable_variables()}, adds


@pytest.mark.parametrize("depth, size", [(20, 32), (32, 32), (44, 32), (56, 32), (110, 32),
                                         (18, 224), (34, 224)])
def test_plain_nets_are_option_a_resnets_without_the_additions(depth, size):
    classes = 10 if size == 32 else 1000
    plain, plain_adds = _names_and_additions(resnet_tf1.ResNet(depth, num_classes=classes,
                                                               shortcut="none"), size)
    residual, residual_adds = _names_and_additions(resnet_tf1.ResNet(depth, num_classes=classes,
                                                                     shortcut="A"), size)
    # The same layers under the same names and shapes (the paper: "the same number of
    # parameters"); no shortcut addition in any unit, one per unit in the residual net.
    assert plain == residual
    assert plain_adds == []
    units = (depth - 2) // 2 if size == 32 else {18: 8, 34: 16}[depth]
    assert len(residual_adds) == units


def test_plain_net_parameter_counts():
    assert trainable_count(resnet_tf1.ResNet(20, num_classes=10, shortcut="none"), 32) == 269_722
    assert trainable_count(resnet_tf1.ResNet(34, shortcut="none"), 224) == \
        EXACT_PARAMS[34] - RESNET34_PROJECTIONS == 21_623_848
    plan = resnet_tf1.ResNet(56, num_classes=10, shortcut="none").plan()
    assert {u.shortcut for u in plan} == {"none"} and not any(u.projection for u in plan)


@pytest.mark.parametrize("shortcut, between", [("none", ["Relu"]), ("A", ["AddV2", "Relu"])])
def test_a_plain_unit_feeds_its_second_bn_straight_to_the_relu(shortcut, between):
    """Plain: BN(conv2) -> ReLU -> the next unit's conv1; residual: BN(conv2) -> + x -> ReLU."""
    g = tf.Graph()
    with g.as_default():
        resnet_tf1.ResNet(20, num_classes=10, shortcut=shortcut)(
            tf1.placeholder(tf.float32, [2, 32, 32, 3]))
    unit = "cifar_resnet20/block1/unit_2/basic/"
    op = g.get_operation_by_name(unit + "conv2/BatchNorm/FusedBatchNormV3")
    path = []
    while not op.name.startswith("cifar_resnet20/block1/unit_3/"):
        consumers = [c for c in op.outputs[0].consumers() if "Initializer" not in c.name]
        op = consumers[0]
        path.append(op.type)
    assert path[:-1] == between, path  # then into unit 3


def _run(model, images, reuse=None, graph=None, **kw):
    g = graph or tf.Graph()
    with g.as_default():
        logits, _ = model(tf.constant(images), reuse=reuse, **kw)
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            return s.run(logits)


def test_unknown_batch_size():
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [None, 32, 32, 3])
        logits, _ = resnet_tf1.CifarResNet20()(x)
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            for n in (1, 3):
                assert s.run(logits, {x: np.zeros((n, 32, 32, 3), np.float32)}).shape == (n, 10)


def test_reuse_gives_identical_outputs_and_shares_variables():
    images = np.random.RandomState(0).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    g = tf.Graph()
    with g.as_default():
        model = resnet_tf1.CifarResNet20()
        a, _ = model(tf.constant(images))
        b, _ = model(tf.constant(images), reuse=True)
        n_vars = len(tf1.global_variables())
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            out_a, out_b = s.run([a, b])
    assert n_vars == 19 * 5 + 2  # one set: 19 convs with BN (5 each) and the FC layer
    np.testing.assert_array_equal(out_a, out_b)
    assert np.std(out_a) > 0


def test_nhwc_and_nchw_agree():
    images = np.random.RandomState(1).uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32)
    outs = {}
    for fmt in ("NHWC", "NCHW"):
        g = tf.Graph()
        with g.as_default():
            tf1.set_random_seed(3)
            logits, _ = resnet_tf1.ResNet(18, data_format=fmt)(tf.constant(images))
            with tf1.Session() as s:
                s.run(tf1.global_variables_initializer())
                try:
                    outs[fmt] = s.run(logits)
                except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as e:
                    pytest.skip("NCHW cannot run on this device: %s" % str(e).splitlines()[0])
    np.testing.assert_allclose(outs["NCHW"], outs["NHWC"], rtol=1e-4, atol=1e-5)


def _gradients_and_ops(depth, size, data_format, images, **kwargs):
    """Every trainable variable's gradient of a fixed loss, and the graph's op-type counts;
    `kwargs` go to `ResNet`."""
    g = tf.Graph()
    with g.as_default():
        tf1.set_random_seed(5)
        logits, _ = resnet_tf1.ResNet(depth, data_format=data_format, **kwargs)(
            tf.constant(images), is_training=True)
        variables = tf1.trainable_variables()
        gradients = tf.gradients(tf.reduce_sum(tf.square(logits)), variables)
        ops = g.get_operations()
        counts = {
            "backprop_input": sum(op.type == "Conv2DBackpropInput" for op in ops),
            "backprop_filter": sum(op.type == "Conv2DBackpropFilter" for op in ops),
            "strided": sum(op.type == "Conv2D" and max(op.get_attr("strides")) > 1 for op in ops),
        }
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            try:
                values = s.run(gradients)
            except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as e:
                pytest.skip("NCHW cannot run on this device: %s" % str(e).splitlines()[0])
    return {v.op.name: x for v, x in zip(variables, values)}, counts


def _assert_same_gradients(fast, slow):
    assert fast.keys() == slow.keys()
    for name in fast:
        scale = np.abs(slow[name]).max()
        assert scale > 0, name
        np.testing.assert_allclose(fast[name], slow[name], rtol=0, atol=2e-5 * scale,
                                   err_msg=name)


@pytest.mark.parametrize("depth, size, data_format", [(20, 32, "NHWC"), (50, 64, "NHWC"),
                                                      (18, 64, "NCHW")])
def test_forward_conv_input_gradients_equal_tensorflows(depth, size, data_format):
    """Training graphs can take stride-1 convolutions' input gradients as forward convolutions
    of the rotated, transposed kernel: every weight gradient equals TF's own
    Conv2DBackpropInput path."""
    images = np.random.RandomState(2).uniform(-1, 1, (3, size, size, 3)).astype(np.float32)
    grads, counts = {}, {}
    for fast in (True, False):
        with kernels.override(input_gradient="forward_conv" if fast else "tf",
                              filter_gradient="tf"):
            grads[fast], counts[fast] = _gradients_and_ops(depth, size, data_format, images)
    # Only the strided convolutions keep TF's op (built for the stem too, never run).
    assert counts[True]["backprop_input"] == counts[True]["strided"]
    assert counts[False]["backprop_input"] > 2 * counts[False]["strided"]
    _assert_same_gradients(grads[True], grads[False])


@pytest.mark.parametrize("depth, size", [(20, 32), (50, 64)])
def test_forward_conv_filter_gradients_equal_tensorflows(depth, size):
    """A stride-1 convolution's weight gradient as one forward convolution (batch and channels
    swapped) equals TF's Conv2DBackpropFilter for every variable, 1x1 and 3x3 kernels alike."""
    images = np.random.RandomState(3).uniform(-1, 1, (3, size, size, 3)).astype(np.float32)
    grads, counts = {}, {}
    for fast in (True, False):
        with kernels.override(input_gradient="tf", filter_gradient="conv" if fast else "tf"):
            grads[fast], counts[fast] = _gradients_and_ops(depth, size, "NHWC", images)
    # Only the strided convolutions keep TF's weight-gradient op.
    assert counts[True]["backprop_filter"] == counts[True]["strided"]
    assert counts[False]["backprop_filter"] > 2 * counts[False]["strided"]
    _assert_same_gradients(grads[True], grads[False])


@pytest.mark.parametrize("variant", ["slim", "paper"])
def test_matmul_filter_gradients_equal_tensorflows(variant):
    """Weight gradients as MatMuls equal TF's Conv2DBackpropFilter for every variable: a 1x1
    kernel's as one (input pixels transposed times the output gradient; the strided ones of the
    paper layout subsampled first), a stride-1 3x3 kernel's as nine (the padded input shifted by
    each tap)."""
    images = np.random.RandomState(6).uniform(-1, 1, (3, 64, 64, 3)).astype(np.float32)
    grads, counts = {}, {}
    for fast in (True, False):
        with kernels.override(input_gradient="tf", filter_gradient="matmul" if fast else "tf"):
            grads[fast], counts[fast] = _gradients_and_ops(50, 64, "NHWC", images,
                                                           variant=variant)
    # TF's op stays for the strided convolutions with a kernel wider than 1x1: the 7x7/2 stem, and
    # in the slim layout the three strided 3x3 ones (the paper layout strides its 1x1 ones).
    assert counts[True]["backprop_filter"] == {"slim": 4, "paper": 1}[variant]
    assert counts[False]["backprop_filter"] == 53
    _assert_same_gradients(grads[True], grads[False])


@pytest.mark.parametrize("dtype, cpu_flags, want", [
    # float32, AVX2 alone: the 3x3 stride-1 convolutions at 14x14 and below. slim: block3's last
    # unit strides in its 3x3, so five of its units plus block4's three; paper: six plus three.
    ("float32", ("avx2", "fma"), {"slim": {"conv": 5 + 3}, "paper": {"conv": 6 + 3}}),
    # float32, AVX-512: oneDNN's own weight-gradient kernel everywhere (it measured faster there).
    ("float32", ("avx2", "avx512f", "avx512_bf16"), {"slim": {}, "paper": {}}),
    # bfloat16, AVX512-BF16 without AMX: every stride-1 convolution at 7x7. slim: block3's last
    # 1x1 after its strided 3x3, block4's nine and its projection; paper: block4 minus the
    # strided first 1x1 and projection.
    ("bfloat16", ("avx2", "avx512f", "avx512_bf16"), {"slim": {"conv": 1 + 9 + 1},
                                                      "paper": {"conv": 8}}),
    # bfloat16 with AMX: MatMuls for every 1x1 convolution (36 of 53, strided ones included)
    # and the 3x3 ones at 14x14 and below (slim: 5 + 3; paper: 6 + 3), no forward-conv form.
    # bfloat16 emulated on AVX2: not measured, TF's own op.
    ("bfloat16", ("avx2", "avx512f", "avx512_bf16", "amx_bf16"),
     {"slim": {"matmul": 36 + 5 + 3}, "paper": {"matmul": 36 + 6 + 3}}),
    ("bfloat16", ("avx2", "fma"), {"slim": {}, "paper": {}}),
    # float16 with AVX512-FP16 (oneDNN takes TF's float16 convolutions, its backward-weights
    # kernel is the reference one): every weight gradient in float32, the stem's included.
    # Without it TF runs float16 on its own kernels: TF's op.
    ("float16", ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16"),
     {"slim": {"float32": 53}, "paper": {"float32": 53}}),
    ("float16", ("avx2", "avx512f", "avx512_bf16"), {"slim": {}, "paper": {}}),
])
def test_filter_gradient_default_picks_the_measured_layers(dtype, cpu_flags, want, monkeypatch):
    """By default (oneDNN on, NHWC, no GPU) a weight gradient is taken as a forward convolution
    ("conv"), a MatMul ("matmul") or in float32 ("float32") exactly where that measured faster:
    by the compute dtype, the CPU's vector and matrix extensions and the layer's shape."""
    if not kernels.onednn_cpu_only():
        pytest.skip("the default applies with oneDNN on and no GPU")
    picked = []
    form = kernels.filter_gradient_form
    monkeypatch.setattr(kernels, "filter_gradient_form",
                        lambda *args: picked.append(form(*args)) or picked[-1])
    counts = {}
    for variant in ("slim", "paper"):
        del picked[:]
        g = tf.Graph()
        with g.as_default(), kernels.override(cpu_flags=cpu_flags):
            logits, _ = resnet_tf1.ResNet(50, variant=variant, dtype=dtype)(
                tf1.placeholder(tf.float32, [2, 224, 224, 3]), is_training=True)
            tf.gradients(tf.reduce_sum(logits), tf1.trainable_variables())
            ops = g.get_operations()
        convs = sum(op.type == "Conv2D" for op in ops if "gradients" not in op.name)
        filters = [op for op in ops if op.type == "Conv2DBackpropFilter"]
        wide = sum(op.get_attr("T") == tf.float32 for op in filters)
        # The forms "conv" and "matmul" leave their convolution without a Conv2DBackpropFilter;
        # "float32" keeps TF's op, in float32.
        assert convs - len(filters) == sum(f in ("conv", "matmul") for f in picked)
        assert wide == (len(filters) if dtype == "float32" else picked.count("float32"))
        counts[variant] = {f: picked.count(f) for f in ("conv", "matmul", "float32")
                           if f in picked}
    assert counts == want


def _filter_gradient_reference(x, dy, kernel_size, stride, padding):
    """d(loss)/d(kernel) of a conv2d (NHWC, TF's 'SAME'/'VALID' padding rule) in float64 numpy,
    and the same sum over absolute values (what a rounding-error bound of the sum scales with)."""
    x, dy = x.astype(np.float64), dy.astype(np.float64)
    pads = []
    for size, out in zip(x.shape[1:3], dy.shape[1:3]):
        total = max((out - 1) * stride + kernel_size - size, 0) if padding == "SAME" else 0
        pads.append((total // 2, total - total // 2))
    x = np.pad(x, [(0, 0)] + pads + [(0, 0)])
    exact = np.zeros((kernel_size, kernel_size, x.shape[3], dy.shape[3]))
    magnitude = np.zeros_like(exact)
    h, w = dy.shape[1:3]
    for i in range(kernel_size):
        for j in range(kernel_size):
            patch = x[:, i:i + (h - 1) * stride + 1:stride, j:j + (w - 1) * stride + 1:stride]
            exact[i, j] = np.tensordot(patch, dy, axes=([0, 1, 2], [0, 1, 2]))
            magnitude[i, j] = np.tensordot(np.abs(patch), np.abs(dy), axes=([0, 1, 2], [0, 1, 2]))
    return exact, magnitude


# Each reduced-precision weight-gradient form, recorded where the training graph calls it: the
# form's function in resnet_tf1.kernels, and how its (stride, padding) are read from its arguments.
_FORMS = {
    "conv": ("_filter_gradient_as_conv", lambda a: (1, "SAME")),
    "matmul": ("_filter_gradient_as_matmul", lambda a: (a[3], "SAME")),
    "float32": ("_filter_gradient_in_float32", lambda a: (a[3][1], a[4])),
}


@pytest.mark.parametrize("form, dtype, depth, size", [
    ("conv", "bfloat16", 20, 32),
    ("matmul", "bfloat16", 50, 64),
    ("float32", "float16", 20, 32),
    ("float32", "bfloat16", 20, 32),
])
def test_reduced_precision_filter_gradient_forms_are_exact_to_their_rounding(form, dtype, depth,
                                                                             size, monkeypatch):
    """In a bfloat16 or float16 training graph, each weight-gradient form (ResNet-20's stride-1
    convolutions as forward convolutions; ResNet-50's 1x1 kernels, strided ones included, and its
    stride-1 3x3 ones as shifted MatMuls; every convolution, stem and strided ones included, in
    float32) equals the float64 weight gradient of the very inputs and output gradients it was
    given, within the error any float32-accumulating kernel may make: the rounding of the result
    to the compute dtype (half its ulp) plus float32 accumulation over the reduction length n,
    |error| <= u * |exact| + (1 + u) * n * 2^-24 * sum |x| |dy|.

    The reference is numpy in float64 on the recorded tensors, so it does not depend on the CPU's
    instruction set (TF's own float16 Conv2DBackpropFilter does: on an AMD Zen 4 it is the less
    accurate side). A shifted or transposed filter is off by the order of |exact| itself,
    ~100x this bound at these sizes."""
    if dtype == "bfloat16" and not (kernels.onednn_enabled()
                                    and "avx512_bf16" in kernels.cpu_flags()):
        pytest.skip("bfloat16 convolutions and MatMuls accumulate in float32 with oneDNN on a "
                    "CPU with AVX512-BF16; elsewhere TF emulates them and the accumulation "
                    "precision is not documented")
    images = np.random.RandomState(4).uniform(-1, 1, (3, size, size, 3)).astype(np.float32)
    function, stride_and_padding = _FORMS[form]
    built = getattr(kernels, function)
    recorded = []

    def recording(*args):
        d_kernel = built(*args)
        recorded.append((args[0], args[1], d_kernel) + stride_and_padding(args))
        return d_kernel
    monkeypatch.setattr(kernels, function, recording)
    g = tf.Graph()
    with g.as_default(), kernels.override(input_gradient="tf", filter_gradient=form):
        tf1.set_random_seed(5)
        logits, _ = resnet_tf1.ResNet(depth, dtype=dtype)(tf.constant(images), is_training=True)
        tf.gradients(tf.reduce_sum(tf.square(logits)), tf1.trainable_variables())
        ops = g.get_operations()
        # The form is in the graph: it replaced TF's op (or, for "float32", its dtype).
        filters = [op.get_attr("T") for op in ops if op.type == "Conv2DBackpropFilter"]
        convs = sum(op.type == "Conv2D" for op in ops if "gradients" not in op.name)
        if form == "float32":
            assert filters.count(tf.float32) == len(filters) == len(recorded) == convs
        else:
            assert len(recorded) == convs - len(filters) > convs // 2
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            values = s.run([r[:3] for r in recorded])
    unit = 2.0 ** -{"float16": 11, "bfloat16": 8}[dtype]
    tiny = 2.0 ** -24 if dtype == "float16" else 0.0  # float16's subnormal spacing
    for (x, dy, d_kernel), (_, _, tensor, stride, padding) in zip(values, recorded):
        assert d_kernel.dtype == dy.dtype == x.dtype, tensor.name
        exact, magnitude = _filter_gradient_reference(x, dy, d_kernel.shape[0], stride, padding)
        n = dy.shape[0] * dy.shape[1] * dy.shape[2]
        bound = unit * np.abs(exact) + (1 + unit) * n * 2.0 ** -24 * magnitude + tiny
        error = np.abs(d_kernel.astype(np.float64) - exact)
        assert np.abs(exact).max() > 0, tensor.name
        worst = np.unravel_index(np.argmax(error - bound), error.shape)
        assert (error <= bound).all(), (tensor.name, worst, error[worst], bound[worst])


@pytest.mark.parametrize("kwargs, arg", [
    (dict(depth=51), "depth"),
    (dict(depth=50, variant="foo"), "variant"),
    (dict(depth=50, shortcut="D"), "shortcut"),
    (dict(depth=50, data_format="NWHC"), "data_format"),
    (dict(depth=50, dtype="int8"), "dtype"),
    (dict(depth=50, pool_padding="same"), "pool_padding"),
    (dict(depth=20, architecture="imagenet"), "depth"),
])
def test_bad_arguments_name_the_argument_and_the_allowed_values(kwargs, arg):
    with pytest.raises(ValueError, match="argument %s=.*expected" % arg):
        resnet_tf1.ResNet(**kwargs)


def test_variant_error_lists_the_variants():
    with pytest.raises(ValueError, match="'paper', 'v1.5', 'slim'"):
        resnet_tf1.ResNet(50, variant="foo")


@pytest.mark.parametrize("shape, what", [([2, 32, 32], "rank-4"), ([2, 32, 32, 1], "3 channels")])
def test_bad_inputs(shape, what):
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match=what):
            resnet_tf1.CifarResNet20()(tf1.placeholder(tf.float32, shape))


def test_config_round_trips_through_json():
    model = resnet_tf1.ResNet(50, num_classes=1001, variant="v1.5", conv_bias=True,
                              bn_epsilon=1.001e-5, pool_padding="symmetric", dtype=tf.bfloat16)
    config = json.loads(json.dumps(model.get_config()))
    assert config["dtype"] == "bfloat16"
    assert manifest.make(config)["fingerprint"] == manifest.make(model.get_config())["fingerprint"]


def test_training_mode_adds_bn_updates_and_weight_decay():
    g = tf.Graph()
    with g.as_default():
        logits, _ = resnet_tf1.CifarResNet20()(tf1.placeholder(tf.float32, [4, 32, 32, 3]),
                                               is_training=True)
        # Mean and variance of 19 BN layers, and the update count.
        assert len(tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)) == 2 * 19 + 1
        decayed = tf1.get_collection(resnet_tf1.WEIGHT_DECAY_COLLECTION)
        assert len(decayed) == 19 + 1  # 19 conv kernels + the FC weights; no BN, no biases
        assert all("BatchNorm" not in v.op.name and "biases" not in v.op.name for v in decayed)
        loss = resnet_tf1.weight_decay_loss(1e-4)
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            expected = 1e-4 * sum(0.5 * np.sum(np.square(s.run(v))) for v in decayed)
            np.testing.assert_allclose(s.run(loss), expected, rtol=1e-5)


def test_moving_statistics_move_toward_the_batch():
    images = np.random.RandomState(2).normal(3.0, 2.0, (8, 32, 32, 3)).astype(np.float32)
    g = tf.Graph()
    with g.as_default():
        resnet_tf1.ResNet(20, num_classes=10, bn_decay=0.5)(tf.constant(images), is_training=True)
        mean, = [v for v in tf1.global_variables()
                 if v.op.name == "cifar_resnet20/conv1/BatchNorm/moving_mean"]
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            s.run(tf1.get_collection(tf1.GraphKeys.UPDATE_OPS))
            assert np.max(np.abs(s.run(mean))) > 0.1


def test_device_with_soft_placement_runs_on_a_cpu_only_machine():
    images = np.zeros((1, 32, 32, 3), np.float32)
    g = tf.Graph()
    with g.as_default():
        logits, _ = resnet_tf1.ResNet(20, num_classes=10, device="/gpu:0")(tf.constant(images))
        assert logits.op.device.lower().endswith("gpu:0")
        with tf1.Session(config=tf1.ConfigProto(allow_soft_placement=True)) as s:
            s.run(tf1.global_variables_initializer())
            assert s.run(logits).shape == (1, 10)


@pytest.mark.parametrize("dtype, tol", [("bfloat16", 0.1), ("float16", 0.02)])
def test_reduced_precision_compute_stays_close_to_float32(dtype, tol):
    images = np.random.RandomState(4).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    outs = {}
    for dt in ("float32", dtype):
        g = tf.Graph()
        with g.as_default():
            tf1.set_random_seed(5)
            logits, _ = resnet_tf1.ResNet(20, num_classes=10, dtype=dt)(tf.constant(images))
            assert logits.dtype == tf.float32
            assert all(v.dtype.base_dtype == tf.float32 for v in tf1.global_variables())
            with tf1.Session() as s:
                s.run(tf1.global_variables_initializer())
                outs[dt] = s.run(logits)
    scale = np.max(np.abs(outs["float32"]))
    assert np.max(np.abs(outs[dtype] - outs["float32"])) / scale < tol


# ---- the unit plan and the presets ------------------------------------------------------------

def _variables(model, size):
    g = tf.Graph()
    with g.as_default():
        _, end_points = model(tf1.placeholder(tf.float32, [None, size, size, 3]))
        shapes = {v.op.name: v.shape.as_list() for v in tf1.global_variables()}
    return shapes, {k: v.shape.as_list() for k, v in end_points.items()}


@pytest.mark.parametrize("depth, variant, size", [(50, "paper", 224), (50, "v1.5", 224),
                                                  (50, "slim", 224), (18, "paper", 224),
                                                  (20, "paper", 32)])
def test_the_plan_is_what_the_graph_builds(depth, variant, size):
    model = resnet_tf1.ResNet(depth, variant=variant)
    plan = model.plan(size)
    shapes, end_points = _variables(model, size)
    for unit in plan:
        conv1 = shapes[unit.scope + "/conv1/weights"]
        assert conv1[2] == unit.depth_in, unit
        assert (unit.scope + "/shortcut/weights" in shapes) == unit.projection, unit
        last = shapes[unit.scope + ("/conv3/weights" if unit.kind == "bottleneck"
                                    else "/conv2/weights")]
        assert last[3] == unit.depth_out, unit
        if unit.kind == "bottleneck":
            assert conv1[3] == shapes[unit.scope + "/conv2/weights"][3] == unit.depth_bottleneck
    # Every unit scope in the graph is in the plan, and nothing else.
    built = {re.match(r"^(.*?/unit_\d+/(bottleneck|basic))/", n).group(1) for n in shapes
             if "/unit_" in n}
    assert built == {u.scope for u in plan}
    # A stage's spatial size is the input's divided by the product of the strides so far.
    scope = model.resolve(size)["scope"]
    stem = 4 if size == 224 else 1
    factor = stem
    for unit in plan:
        factor *= unit.stride
        if unit is [u for u in plan if u.stage == unit.stage][-1]:
            assert end_points["%s/%s" % (scope, unit.stage)][1] == size // factor, unit.stage


def test_plan_records_where_each_variant_strides():
    def first_unit_of_block2(variant):
        return [u for u in resnet_tf1.ResNet(50, variant=variant).plan(224)
                if u.stage == "block2"][0]
    paper, v15 = first_unit_of_block2("paper"), first_unit_of_block2("v1.5")
    assert (paper.stride, paper.stride_1x1, paper.stride_3x3) == (2, 2, 1)
    assert (v15.stride, v15.stride_1x1, v15.stride_3x3) == (2, 1, 2)
    slim_block1 = [u for u in resnet_tf1.ResNet(50, variant="slim").plan(224)
                   if u.stage == "block1"]
    # TF-slim strides on the last unit of the stage before, with a subsampled identity.
    assert [u.stride for u in slim_block1] == [1, 1, 2]
    assert slim_block1[-1].shortcut == "subsample" and not slim_block1[-1].projection
    cifar = resnet_tf1.CifarResNet20().plan(32)
    assert [u.shortcut for u in cifar].count("zero_pad") == 2  # option A, blocks 2 and 3
    assert [u.shortcut for u in resnet_tf1.ResNet(20, shortcut="C").plan(32)] == \
        ["projection"] * 9


def test_presets_are_subclasses_that_round_trip():
    for cls, depth in [(resnet_tf1.ResNet50, 50), (resnet_tf1.ResNet18, 18),
                       (resnet_tf1.CifarResNet56, 56)]:
        model = cls(variant="v1.5")
        assert isinstance(model, resnet_tf1.ResNet) and model.depth == depth
        again = cls(**model.get_config())
        assert again.get_config() == model.get_config()
        assert str(depth) in (cls.__doc__ or "")
    assert resnet_tf1.CifarResNet20().get_config()["num_classes"] == 10
    assert resnet_tf1.CifarResNet20(num_classes=100).num_classes == 100
    with pytest.raises(ValueError, match="ResNet50 argument depth=101 is invalid: expected 50"):
        resnet_tf1.ResNet50(depth=101)
