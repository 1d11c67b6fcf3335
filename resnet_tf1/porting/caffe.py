"""The MSRA Caffe release (ResNet-50/101/152, 2015), as an `.npz` of its blobs.

Dump the `.caffemodel` where Caffe is installed (see checkpoints/README.md):

    net = caffe.Net("ResNet-50-deploy.prototxt", "ResNet-50-model.caffemodel", caffe.TEST)
    np.savez("ResNet-50.npz", **{"%s/%d" % (name, i): blob.data
                                 for name, blobs in net.params.items()
                                 for i, blob in enumerate(blobs)})

Layers: `conv1`, `bn_conv1` + `scale_conv1`, `res{2..5}{a,b,c..}_branch{1,2a,2b,2c}` with
`bn...` and `scale...`; ResNet-101/152 number the units of stages 3 and 4 (`res3b1`,
`res4b22`); `fc1000`.
Blobs: conv [out, in, kh, kw] (+ bias), BN (mean, variance, moving-average factor), Scale (gamma,
beta), InnerProduct ([out, in], bias). Stride on the first unit's 1x1 (`branch2a`), our
`variant="paper"`; pool1 3x3/2 in ceil mode, the same windows as TF 'SAME' on 112x112.
"""

import re

import numpy as np

from resnet_tf1 import fileio
from resnet_tf1 import model as model_lib
from resnet_tf1.data import imagenet
from resnet_tf1.porting.common import (Consumer, Port, PortError, SourceFormat, bn_names,
                                       bottleneck_depth, single_file, stage_number)

# Per-channel means (BGR) of the mean image ResNet_mean.binaryproto the models were trained with.
MSRA_MEAN_BGR = [103.0626238, 115.90288257, 123.15163084]
_UNIT = re.compile(r"^res(\d)([a-z])(\d*)_branch")


def read(path):
    """{`<layer>/<blob index>`: array} from the .npz dump; never unpickles anything."""
    return read_npz(path, "an .npz of Caffe blobs",
                    ": dump the .caffemodel with the script in checkpoints/README.md",
                    "; dump numeric blobs with the script in checkpoints/README.md",
                    "Caffe blobs (expected 'conv1/0', 'bn_conv1/0', ..., 'fc1000/0')")


def read_npz(path, what, hint="", pickled_hint="", empty="arrays"):
    """{name: array} of the .npz at `path` with allow_pickle=False (an object array is refused,
    never loaded); PortError naming `what` otherwise. `hint`, `pickled_hint`: how to make a
    good file, appended to the not-a-zip and the pickled-arrays lines."""
    single_file(path)
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic[:2] != b"PK":  # an .npz is a zip archive
        raise PortError("%s is not %s (not a zip archive)%s" % (path, what, hint))
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {name: f[name] for name in f.files}
    except ValueError as e:
        if "allow_pickle" in str(e) or "pickled" in str(e):
            raise PortError("%s cannot be read as %s: it holds object (pickled) arrays, which "
                            "are never loaded%s" % (path, what, pickled_hint))
        raise PortError("%s cannot be read as %s: %s" % (path, what, fileio.error_line(e)))
    except OSError as e:
        raise PortError("%s cannot be read as %s: %s" % (path, what, fileio.error_line(e)))
    if not arrays:
        raise PortError("%s is an empty .npz: it holds no %s" % (path, empty))
    return arrays


def _unit_name(depth, stage, k):
    """Caffe's unit name: 'res4f' in ResNet-50, 'res4b22' in ResNet-101/152 stages 3 and 4."""
    if depth >= 101 and stage in (3, 4):
        return "res%d%s" % (stage, "a" if k == 0 else "b%d" % k)
    return "res%d%s" % (stage, "abcdefghijklmnopqrstuvwxyz"[k])


def detect_depth(arrays):
    units = {}
    for name in arrays:
        m = _UNIT.match(name)
        if m:
            stage, letter, number = int(m.group(1)), m.group(2), m.group(3)
            k = int(number) if number else ord(letter) - ord("a")
            units[stage] = max(units.get(stage, 0), k + 1)
    return bottleneck_depth(units, "Caffe blob dump")


def to_target(arrays, depth=None, num_classes=None, scope=None):
    depth = depth or detect_depth(arrays)
    if "fc1000/0" not in arrays:
        raise PortError("Caffe blobs have no 'fc1000/0'")
    num_classes = num_classes or int(arrays["fc1000/0"].shape[0])
    config = dict(depth=depth, num_classes=num_classes, variant="paper", bn_epsilon=1e-5,
                  pool_padding="SAME", scope=scope)
    model = model_lib.ResNet(**config)
    src = Consumer(arrays, "Caffe blob dump")
    out = {}

    def conv_bn(conv, bn, scale, dst):
        weights = src.take(conv + "/0")
        if weights.ndim != 4:
            raise PortError("Caffe blob %s/0 has shape %s, expected [out, in, kh, kw]"
                            % (conv, list(weights.shape)))
        out[dst + "/weights"] = np.transpose(weights, (2, 3, 1, 0))
        factor = float(np.asarray(src.take(bn + "/2")).reshape(-1)[0])
        factor = 0.0 if factor == 0 else 1.0 / factor
        mean = src.take(bn + "/0") * factor
        variance = src.take(bn + "/1") * factor
        if conv + "/1" in src:
            # A conv bias before BN shifts the mean: BN(x + b) with mean m == BN(x) with m - b.
            mean = mean - src.take(conv + "/1")
        gamma, beta, moving_mean, moving_variance = bn_names(dst)
        out[moving_mean], out[moving_variance] = mean, variance
        out[gamma], out[beta] = src.take(scale + "/0"), src.take(scale + "/1")

    root = model.resolve(224)["scope"]
    conv_bn("conv1", "bn_conv1", "scale_conv1", root + "/conv1")
    branches = {"shortcut": "1", "conv1": "2a", "conv2": "2b", "conv3": "2c"}
    for unit in model.plan(224):
        name = _unit_name(depth, stage_number(unit) + 1, unit.index - 1)[3:]
        for part in model_lib.unit_conv_parts(unit):
            tail = "%s_branch%s" % (name, branches[part])
            conv_bn("res" + tail, "bn" + tail, "scale" + tail, "%s/%s" % (unit.scope, part))
    out[root + "/logits/weights"] = np.transpose(src.take("fc1000/0"))
    out[root + "/logits/biases"] = src.take("fc1000/1")
    src.finish()
    preprocessing = imagenet.preprocessing_record(
        "BGR", MSRA_MEAN_BGR, note="trained with the 224x224 mean image ResNet_mean.binaryproto; "
                                   "the per-channel means given here are its averages")
    return Port(out, config, preprocessing, "imagenet1000", src.skipped)


def reference(path, images):
    """A numpy forward pass of the MSRA deploy net with Caffe's semantics, on the blobs."""
    from resnet_tf1.references import caffe as caffe_ref
    return caffe_ref.forward(read(path), images)


FORMAT = SourceFormat(name="caffe", read=read, to_target=to_target, source_files=single_file,
                      reference=reference,
                      reference_name="a numpy forward pass with Caffe's semantics")
