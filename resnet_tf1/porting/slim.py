"""TF-slim `resnet_v1_{50,101,152,200}` checkpoints (the 2016 release, converted from Caffe).

Names: `resnet_v1_50/conv1/weights`, `.../conv1/BatchNorm/{gamma,beta,moving_mean,moving_variance}`,
`resnet_v1_50/block{1..4}/unit_{k}/bottleneck_v1/{shortcut,conv1,conv2,conv3}/...`,
`resnet_v1_50/logits/{weights [1,1,2048,C], biases}`. The layout is our `variant="slim"`.
"""

import re

from resnet_tf1 import checkpoints
from resnet_tf1 import model as model_lib
from resnet_tf1.data import imagenet
from resnet_tf1.porting.common import (Consumer, Port, PortError, SourceFormat, bn_names,
                                       imagenet_labels, run_checkpoint_graph)

_PREFIX = re.compile(r"^resnet_v1_(\d+)/")


def detect_depth(arrays):
    depths = {int(m.group(1)) for m in map(_PREFIX.match, arrays) if m}
    if len(depths) != 1:
        raise PortError("not a TF-slim resnet_v1 checkpoint: expected variables under one "
                        "'resnet_v1_<depth>/' scope, found %s" % (sorted(depths) or "none"))
    depth = depths.pop()
    if depth not in model_lib.IMAGENET_UNITS or depth in model_lib.BASIC_DEPTHS:
        raise PortError("TF-slim resnet_v1_%d is not a bottleneck ResNet this port knows "
                        "(50, 101, 152, 200)" % depth)
    return depth


def to_target(arrays, depth=None, num_classes=None, scope=None):
    depth = depth or detect_depth(arrays)
    src_root = "resnet_v1_%d" % depth
    logits_name = src_root + "/logits/weights"
    if num_classes is None:
        if logits_name not in arrays:
            raise PortError("TF-slim checkpoint has no %s: it was saved without a logits layer; "
                            "pass num_classes" % logits_name)
        num_classes = int(arrays[logits_name].shape[-1])
    config = dict(depth=depth, num_classes=num_classes, variant="slim", bn_epsilon=1e-5,
                  bn_decay=0.997, pool_padding="SAME", scope=scope)
    model = model_lib.ResNet(**config)
    src = Consumer(arrays, "TF-slim checkpoint")
    out = {}

    def conv_bn(src_scope, dst_scope):
        out[dst_scope + "/weights"] = src.take(src_scope + "/weights")
        for part, dst in zip(model_lib.BN_PARAMETERS, bn_names(dst_scope)):
            out[dst] = src.take("%s/BatchNorm/%s" % (src_scope, part))

    dst_root = model.resolve(224)["scope"]
    conv_bn(src_root + "/conv1", dst_root + "/conv1")
    for unit in model.plan(224):
        src_unit = "%s/%s/unit_%d/bottleneck_v1" % (src_root, unit.stage, unit.index)
        for conv in model_lib.unit_conv_parts(unit):
            conv_bn("%s/%s" % (src_unit, conv), "%s/%s" % (unit.scope, conv))
    weights = src.take(logits_name)
    if weights.ndim != 4 or weights.shape[:2] != (1, 1):
        raise PortError("TF-slim %s has shape %s, expected [1, 1, C, num_classes]"
                        % (logits_name, list(weights.shape)))
    out[dst_root + "/logits/weights"] = weights.reshape(weights.shape[2:])
    out[dst_root + "/logits/biases"] = src.take(src_root + "/logits/biases")
    src.finish()
    labels = imagenet_labels(num_classes)
    return Port(out, config, dict(imagenet.RGB_MEAN_PREPROCESSING), labels, src.skipped)


def reference(path, images):
    """TF-slim's own resnet_v1_<depth>, restored from the checkpoint at `path`, on `images`."""
    from resnet_tf1.references import slim as slim_ref
    shapes = checkpoints.read_shapes(path)
    depth = detect_depth(shapes)
    num_classes = shapes["resnet_v1_%d/logits/weights" % depth][-1]
    return run_checkpoint_graph(path, images, lambda x: slim_ref.logits(x, depth, num_classes)[0],
                                "resnet_v1_%d" % depth)


FORMAT = SourceFormat(name="slim", read=checkpoints.read_arrays, to_target=to_target,
                      source_files=checkpoints.files_of, reference=reference,
                      reference_name="TF-slim's own nets.resnet_v1")
