"""TF official models r1 ResNet checkpoints (`official/r1/resnet/resnet_model.py`).

Names come from `tf.compat.v1.layers` numbering in creation order: `resnet_model/conv2d[_N]/kernel`,
`resnet_model/batch_normalization[_N]/{gamma,beta,moving_mean,moving_variance}`,
`resnet_model/dense/{kernel,bias}`. In a unit with a projection, the projection conv and its BN
are created first. Their "v1" strides on the 3x3 (our `variant="v1.5"`); 1001 classes with the
background class first.
"""

from resnet_tf1 import model as model_lib
from resnet_tf1.porting.common import Consumer, Port, PortError, bn_names, unit_scopes

_ROOT = "resnet_model"


def _numbered(base, i):
    return "%s/%s/" % (_ROOT, base if i == 0 else "%s_%d" % (base, i))


def detect_depth(arrays):
    kernels = sorted((n for n in arrays if n.startswith(_ROOT + "/conv2d")
                      and n.endswith("/kernel")))
    if not kernels:
        raise PortError("not a TF official ResNet checkpoint: no 'resnet_model/conv2d*/kernel' "
                        "variables")
    convs = len(kernels)
    for depth, units in model_lib.IMAGENET_UNITS.items():
        if depth not in model_lib.BASIC_DEPTHS and 1 + 3 * sum(units) + 4 == convs:
            return depth
    raise PortError("TF official checkpoint has %d conv kernels, which match no bottleneck "
                    "ResNet (50: 53, 101: 104, 152: 155, 200: 194); the official basic-block "
                    "ResNet-18/34 project every stage's first unit and are not supported" % convs)


def to_target(arrays, depth=None, num_classes=None, scope=None):
    depth = depth or detect_depth(arrays)
    dense = _ROOT + "/dense/kernel"
    if dense not in arrays:
        raise PortError("TF official checkpoint has no %s" % dense)
    num_classes = num_classes or int(arrays[dense].shape[-1])
    config = dict(depth=depth, num_classes=num_classes, variant="v1.5", bn_epsilon=1e-5,
                  bn_decay=0.997, pool_padding="SAME", scope=scope)
    model = model_lib.ResNet(**config)
    src = Consumer(arrays, "TF official checkpoint")
    out = {}
    counter = [0]

    def conv_bn(dst_scope):
        i = counter[0]
        counter[0] += 1
        out[dst_scope + "/weights"] = src.take(_numbered("conv2d", i) + "kernel")
        for part, dst in zip(("gamma", "beta", "moving_mean", "moving_variance"),
                             bn_names(dst_scope)):
            out[dst] = src.take(_numbered("batch_normalization", i) + part)

    root = model.resolve(224)["scope"]
    conv_bn(root + "/conv1")
    if depth in model_lib.BASIC_DEPTHS:
        raise PortError("TF official ResNet-%d (basic blocks) is not supported" % depth)
    convs = ("conv1", "conv2", "conv3")
    for _, _, dst_unit, projection in unit_scopes(model):
        for part in (("shortcut",) if projection else ()) + convs:
            conv_bn("%s/%s" % (dst_unit, part))
    out[root + "/logits/weights"] = src.take(dense)
    out[root + "/logits/biases"] = src.take(_ROOT + "/dense/bias")
    src.finish()
    preprocessing = {"channel_order": "RGB", "mean": [123.68, 116.78, 103.94],
                     "std": [1.0, 1.0, 1.0], "scale": 255.0, "resize_shorter_side": 256,
                     "crop": 224}
    labels = "imagenet1001" if num_classes == 1001 else "imagenet1000"
    return Port(out, config, preprocessing, labels, src.skipped)
