"""tensorpack's ImageNet ResNets as `.npz` files (its model zoo, `examples/ResNet`).

Names (`dump_session_params`; a trailing ":0" is accepted): `conv0/W` + `conv0/bn/{gamma, beta,
mean/EMA, variance/EMA}`, `group{0..3}/block{k}/conv{1,2[,3]}/W` + `.../bn/...`, the projection
`group{g}/block0/convshortcut/W` + `convshortcut/bn/...`, `linear/W` ([in, out]) and `linear/b`.
Weights are HWIO, as ours.

Two layouts, from tensorpack's own sources:

- native (`imagenet-resnet.py`, `resnet_model.py`: ResNet-18/34/50/101/152 trained by
  tensorpack): `Conv2D` pads "same" the TF way, so the stem's 7x7/2 pads (2, 3) and a strided 3x3
  (0, 1) on even inputs (our `conv_padding="SAME"`); `MaxPooling('pool0', 3, 2, padding='SAME')`
  (our pool_padding "SAME"); bottlenecks stride on conv2, the 3x3 (`stride_first=False`, the
  fb.resnet.torch placement: our variant "v1.5"); basic blocks on conv1; a projection
  (`convshortcut` + its BN) only where the channel count changes (option B); BatchNorm ε 1e-5,
  no conv biases. Input: BGR (cv2) pixels / 255 minus (0.406, 0.456, 0.485), divided by (0.225,
  0.224, 0.229) (`imagenet_utils.image_preprocess(bgr=True)`).
- caffe (`load-resnet.py`: Kaiming's ResNet-50/101/152 converted by `tensorpack.utils.loadcaffe`
  and renamed): `stride_first=True` (our variant "paper"); the image padded (3, 2) then a VALID
  7x7/2 (the same windows as Caffe's symmetric 3, our "symmetric"); pool SAME (Caffe's ceil
  mode); `conv0/b` from Caffe's conv1 bias, folded here into conv0's BN mean (BN(x + b) with mean
  m is BN(x) with mean m - b). Input: BGR minus the MSRA mean (as `--source=caffe`). Such files
  are told apart by that `conv0/b`.
"""

import re

from resnet_tf1 import model as model_lib
from resnet_tf1.data import imagenet, preprocessing
from resnet_tf1.porting import caffe
from resnet_tf1.porting.common import (Consumer, Port, PortError, SourceFormat, bn_names,
                                       depth_from_blocks, single_file)

BN = ("gamma", "beta", "mean/EMA", "variance/EMA")  # in our BN_PARAMETERS order
_BLOCK = re.compile(r"^group(\d)/block(\d+)/conv(\d)/W$")
NATIVE = dict(variant="v1.5", conv_bias=False, bn_epsilon=1e-5, bn_decay=0.9,
              pool_padding="SAME", conv_padding="SAME")
CAFFE = dict(variant="paper", conv_bias=False, bn_epsilon=1e-5, bn_decay=0.9,
             pool_padding="SAME")
NATIVE_PREPROCESSING = preprocessing.record("BGR", [0.406, 0.456, 0.485],
                                            std=[0.225, 0.224, 0.229], scale=1.0,
                                            resize_shorter_side=256, crop=224)
# Training state a tensorpack dump may hold beside the model.
_STATE = re.compile(r"(^|/)(global_step|learning_rate)$|/Momentum$|/EMA/.*EMA$")


def read(path):
    """{name without ":0": array} of a tensorpack .npz; never unpickles anything."""
    arrays = caffe.read_npz(path, "a tensorpack ResNet .npz", empty="tensorpack variables "
                            "(expected 'conv0/W', 'group0/block0/conv1/W', ..., 'linear/W')")
    out = {}
    for name, value in arrays.items():
        out[name[:-2] if name.endswith(":0") else name] = value
    return out


def layout(arrays):
    return "caffe" if "conv0/b" in arrays else "native"


def detect_depth(arrays):
    return depth_from_blocks(arrays, _BLOCK, 0, "tensorpack .npz")


def to_target(arrays, depth=None, num_classes=None, scope=None):
    if "linear/W" not in arrays:
        raise PortError("tensorpack .npz has no linear/W (not an ImageNet classification ResNet, "
                        "or saved without its classifier); its first names: %s"
                        % ", ".join(sorted(arrays)[:5]))
    kind = layout(arrays)
    depth = depth or detect_depth(arrays)
    num_classes = num_classes or int(arrays["linear/W"].shape[-1])
    config = dict(depth=depth, num_classes=num_classes, scope=scope,
                  **(CAFFE if kind == "caffe" else NATIVE))
    model = model_lib.ResNet(**config)
    src = Consumer({n: v for n, v in arrays.items() if not _STATE.search(n)},
                   "tensorpack .npz")
    skipped = sorted(n for n in arrays if _STATE.search(n))
    out = {}

    def conv_bn(theirs, ours, bias=None):
        out[ours + "/weights"] = src.take(theirs + "/W")
        for part, mine in zip(BN, bn_names(ours)):
            out[mine] = src.take("%s/bn/%s" % (theirs, part))
        if bias is not None:
            out[bn_names(ours)[2]] = out[bn_names(ours)[2]] - bias

    root = model.resolve(224)["scope"]
    conv_bn("conv0", root + "/conv1", src.take("conv0/b") if kind == "caffe" else None)
    for unit in model.plan(224):
        prefix = "group%d/block%d/" % (int(unit.stage[len("block"):]) - 1, unit.index - 1)
        for part in model_lib.unit_conv_parts(unit):
            conv_bn(prefix + ("convshortcut" if part == "shortcut" else part),
                    "%s/%s" % (unit.scope, part))
    out[root + "/logits/weights"] = src.take("linear/W")
    out[root + "/logits/biases"] = src.take("linear/b")
    src.finish()
    rec = (imagenet.preprocessing_record("BGR", caffe.MSRA_MEAN_BGR,
                                         note="tensorpack's load-resnet.py subtracts the "
                                              "ILSVRC per-pixel mean; these are channel means")
           if kind == "caffe" else dict(NATIVE_PREPROCESSING))
    return Port(out, config, rec, "imagenet1000", src.skipped + skipped,
                {"tensorpack_layout": kind})


def reference(path, images):
    """A numpy forward pass with tensorpack's semantics for the file's layout."""
    from resnet_tf1.references import tensorpack as tensorpack_ref
    arrays = read(path)
    return tensorpack_ref.forward(arrays, images, layout(arrays))


FORMAT = SourceFormat(name="tensorpack", read=read, to_target=to_target,
                      source_files=single_file, reference=reference,
                      reference_name="a numpy forward pass with tensorpack's semantics")
