"""torchvision's ImageNet ResNets (`torchvision.models.resnet18/34/50/101/152`) as state dicts.

Names: `conv1.weight`, `bn1.{weight,bias,running_mean,running_var,num_batches_tracked}`,
`layer{1..4}.{k}.conv{1,2[,3]}.weight` + `bn{1,2[,3]}.*`, the projection
`layer{n}.0.downsample.0.weight` + `downsample.1.*`, `fc.{weight,bias}`. Layouts: conv OIHW
(ours HWIO), fc [out, in] (ours [in, out]).

The network (torchvision/models/resnet.py): the stride of a downsampling bottleneck on its 3x3
(`conv2`; our variant "v1.5"), of a basic block on its first 3x3; every k x k convolution padded
by k // 2 on both sides (our strided convs pad symmetrically too), the stem's 3x3/2 max-pool
padded by 1 on both sides (our pool_padding "symmetric"), BN ε 1e-5, convolutions without bias,
1000 classes. Preprocessing: RGB / 255, minus mean (0.485, 0.456, 0.406), divided by std
(0.229, 0.224, 0.225); shorter side 256, centre 224.

`name_table` is the one map between the two namings, read one way by `to_target` (import) and
the other by `export.torchvision_state_dict` (export): a round trip gives back every tensor bit
for bit, `num_batches_tracked` included (recorded in config.json at import).
"""

import re

import numpy as np
import tensorflow as tf

from resnet_tf1 import checkpoints
from resnet_tf1 import model as model_lib
from resnet_tf1.data import preprocessing
from resnet_tf1.porting import torch_files
from resnet_tf1.porting.common import (Consumer, Port, PortError, SourceFormat, bn_names,
                                       depth_from_blocks, single_file)

# torchvision's BN parameter names, in our BN_PARAMETERS order (gamma, beta, mean, variance).
BN_NAMES = ("weight", "bias", "running_mean", "running_var")
COUNTER = "num_batches_tracked"
MODEL = dict(variant="v1.5", conv_bias=False, bn_epsilon=1e-5, bn_decay=0.9,
             pool_padding="symmetric")
PREPROCESSING = preprocessing.record("RGB", [0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225],
                                     scale=1.0, resize_shorter_side=256, crop=224)
_BLOCK = re.compile(r"^layer(\d)\.(\d+)\.conv(\d)\.weight$")
_PARTS = {"conv1": ("conv1", "bn1"), "conv2": ("conv2", "bn2"), "conv3": ("conv3", "bn3"),
          "shortcut": ("downsample.0", "downsample.1")}


def read(path):
    return torch_files.read_state_dict(path)


def constructor(depth, num_classes):
    return "torchvision.models.resnet%d(num_classes=%d)" % (depth, num_classes)


def name_table(model):
    """[(torchvision name, our name or None, kind)] for `model` (a ResNet that torchvision
    computes exactly: see `export.torchvision_problem`), in torchvision's state-dict order.
    kind: "conv" (OIHW <-> HWIO), "vector", "counter" (num_batches_tracked: ours has none), "fc"
    ([out, in] <-> [in, out])."""
    root = model.resolve(224)["scope"]
    rows = []

    def conv_bn(conv, bn, ours):
        rows.append((conv + ".weight", ours + "/weights", "conv"))
        for theirs, mine in zip(BN_NAMES, bn_names(ours)):
            rows.append(("%s.%s" % (bn, theirs), mine, "vector"))
        rows.append(("%s.%s" % (bn, COUNTER), None, "counter"))

    conv_bn("conv1", "bn1", root + "/conv1")
    for unit in model.plan(224):
        prefix = "layer%d.%d." % (int(unit.stage[len("block"):]), unit.index - 1)
        parts = model_lib.unit_conv_parts(unit)
        # torchvision registers conv1, bn1, conv2, bn2[, conv3, bn3], then downsample.
        for part in [p for p in parts if p != "shortcut"] + [p for p in parts if p == "shortcut"]:
            conv, bn = _PARTS[part]
            conv_bn(prefix + conv, prefix + bn, "%s/%s" % (unit.scope, part))
    rows.append(("fc.weight", root + "/logits/weights", "fc"))
    rows.append(("fc.bias", root + "/logits/biases", "vector"))
    return rows


def to_ours(kind, value):
    if kind == "conv":
        return np.transpose(value, (2, 3, 1, 0))
    if kind == "fc":
        return np.transpose(value)
    return value


def to_theirs(kind, value):
    if kind == "conv":
        return np.transpose(value, (3, 2, 0, 1))
    if kind == "fc":
        return np.transpose(value)
    return value


def detect_depth(arrays):
    return depth_from_blocks(arrays, _BLOCK, 1, "torchvision state dict")


def to_target(arrays, depth=None, num_classes=None, scope=None):
    if "fc.weight" not in arrays:
        raise PortError("torchvision state dict has no fc.weight (a model saved without its "
                        "classifier, or not a torchvision ResNet); its first names: %s"
                        % ", ".join(list(arrays)[:5]))
    depth = depth or detect_depth(arrays)
    num_classes = num_classes or int(arrays["fc.weight"].shape[0])
    config = dict(depth=depth, num_classes=num_classes, scope=scope, **MODEL)
    model = model_lib.ResNet(**config)
    shapes = _shapes(model)
    table = name_table(model)
    expected = {theirs: (list(to_theirs(kind, np.zeros(shapes[ours], np.int8)).shape)
                         if ours else []) for theirs, ours, kind in table}
    mismatch = checkpoints.compare(
        {n: s for n, s in expected.items() if not n.endswith(COUNTER)},
        {n: list(a.shape) for n, a in arrays.items()}, "file",
        ignore=lambda n: n.endswith("." + COUNTER) and n in expected)
    if mismatch:
        raise PortError("torchvision state dict does not fit %s: %s"
                        % (constructor(depth, num_classes), mismatch.describe("file")))
    src = Consumer(arrays, "torchvision state dict")
    out, counters = {}, {}
    for theirs, ours, kind in table:
        if kind == "counter":
            if theirs in src:  # torchvision < 0.4 files have none
                counters[theirs] = int(src.take(theirs))
            continue
        out[ours] = to_ours(kind, src.take(theirs, expected[theirs]))
    src.finish()
    return Port(out, config, dict(PREPROCESSING), "imagenet1000", src.skipped,
                {"num_batches_tracked": counters})


def _shapes(model):
    """{our variable name: shape} of `model` (built in a scratch graph)."""
    with tf.Graph().as_default():
        model(tf.compat.v1.placeholder(tf.float32, [None, 224, 224, 3]))
        return {v.op.name: v.shape.as_list()
                for v in tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.MODEL_VARIABLES)}


def reference(path, images):
    """A numpy forward pass with torchvision's semantics on the file's own tensors."""
    from resnet_tf1.references import torchvision as torchvision_ref
    return torchvision_ref.forward(read(path), images)


FORMAT = SourceFormat(name="torchvision", read=read, to_target=to_target,
                      source_files=single_file, reference=reference,
                      reference_name="a numpy forward pass with torchvision's semantics")
