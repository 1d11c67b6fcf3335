"""TF official models r1 ResNet checkpoints (`official/r1/resnet/resnet_model.py`).

Names come from `tf.compat.v1.layers` numbering in creation order: `resnet_model/conv2d[_N]/kernel`,
`resnet_model/batch_normalization[_N]/{gamma,beta,moving_mean,moving_variance}`,
`resnet_model/dense/{kernel,bias}`. In a unit with a projection, the projection conv and its BN
are created first. Their "v1" strides on the 3x3 (our `variant="v1.5"`); 1001 classes with the
background class first.
"""

from resnet_tf1 import checkpoints
from resnet_tf1 import model as model_lib
from resnet_tf1.data import imagenet
from resnet_tf1.porting.common import (Consumer, Port, PortError, SourceFormat, bn_names,
                                       imagenet_labels, run_checkpoint_graph, unit_convs)

_ROOT = "resnet_model"
_CONFIG = dict(variant="v1.5", bn_epsilon=1e-5, bn_decay=0.997, pool_padding="SAME")


def _numbered(base, i):
    return "%s/%s/" % (_ROOT, base if i == 0 else "%s_%d" % (base, i))


def _conv_count(depth):
    """Conv layers of the official bottleneck ResNet-<depth>: the stem and every planned conv."""
    plan = model_lib.ResNet(depth, **_CONFIG).plan(224)
    return 1 + sum(len(unit_convs(unit)) for unit in plan)


def detect_depth(arrays):
    kernels = [n for n in arrays if n.startswith(_ROOT + "/conv2d") and n.endswith("/kernel")]
    if not kernels:
        raise PortError("not a TF official ResNet checkpoint: no 'resnet_model/conv2d*/kernel' "
                        "variables")
    counts = {d: _conv_count(d) for d in model_lib.IMAGENET_UNITS
              if d not in model_lib.BASIC_DEPTHS}
    for depth, count in counts.items():
        if count == len(kernels):
            return depth
    raise PortError("TF official checkpoint has %d conv kernels, which match no bottleneck "
                    "ResNet (%s); the official basic-block ResNet-18/34 project every stage's "
                    "first unit and are not supported"
                    % (len(kernels), ", ".join("%d: %d" % kv for kv in counts.items())))


def to_target(arrays, depth=None, num_classes=None, scope=None):
    depth = depth or detect_depth(arrays)
    if depth in model_lib.BASIC_DEPTHS:
        raise PortError("TF official ResNet-%d (basic blocks) is not supported" % depth)
    dense = _ROOT + "/dense/kernel"
    if dense not in arrays:
        raise PortError("TF official checkpoint has no %s" % dense)
    num_classes = num_classes or int(arrays[dense].shape[-1])
    config = dict(depth=depth, num_classes=num_classes, scope=scope, **_CONFIG)
    model = model_lib.ResNet(**config)
    src = Consumer(arrays, "TF official checkpoint")
    out = {}
    root = model.resolve(224)["scope"]
    # tf.layers numbers conv2d_N and batch_normalization_N together, in creation order.
    ours = [root + "/conv1"] + [c for unit in model.plan(224) for c in unit_convs(unit)]
    for i, dst_scope in enumerate(ours):
        out[dst_scope + "/weights"] = src.take(_numbered("conv2d", i) + "kernel")
        for part, dst in zip(model_lib.BN_PARAMETERS, bn_names(dst_scope)):
            out[dst] = src.take(_numbered("batch_normalization", i) + part)
    out[root + "/logits/weights"] = src.take(dense)
    out[root + "/logits/biases"] = src.take(_ROOT + "/dense/bias")
    src.finish()
    labels = imagenet_labels(num_classes)
    return Port(out, config, dict(imagenet.RGB_MEAN_PREPROCESSING), labels, src.skipped)


def reference(path, images):
    """official r1's bottleneck ResNet re-created on tf.compat.v1.layers, restored from `path`."""
    from resnet_tf1.references import keras as keras_ref
    from resnet_tf1.references import official_r1
    keras_ref.tf_keras()  # tf.compat.v1.layers needs tf-keras and TF_USE_LEGACY_KERAS=1
    shapes = checkpoints.read_shapes(path)
    depth = detect_depth(shapes)
    num_classes = shapes[_ROOT + "/dense/kernel"][-1]
    return run_checkpoint_graph(path, images, lambda x: official_r1.resnet_v1_official(
        x, model_lib.IMAGENET_UNITS[depth], num_classes=num_classes), _ROOT)


FORMAT = SourceFormat(name="official", read=checkpoints.read_arrays, to_target=to_target,
                      source_files=checkpoints.files_of, reference=reference,
                      reference_name="official r1 resnet_model re-created on tf.compat.v1.layers")
