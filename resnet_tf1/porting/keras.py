"""Keras ResNet50 `.h5` weights, in both naming schemes, detected from the file.

2016 (`resnet50_weights_tf_dim_ordering_tf_kernels.h5`, seed article 003): layers `conv1`,
`bn_conv1`, `res2a_branch2a`, `bn2a_branch2a`, `res2a_branch1`, ..., `fc1000`; BN epsilon 1e-3 (the
Keras default then) and a VALID 3x3/2 max-pool (112 -> 55).
Current (`tf_keras.applications.ResNet50/101/152`): `conv1_conv`, `conv1_bn`,
`conv2_block1_{0,1,2,3}_{conv,bn}`, ..., `predictions`; epsilon 1.001e-5, `pool1_pad` + VALID pool.
Both stride on the first unit's 1x1 (our `variant="paper"`) and carry conv biases.

Arrays are keyed `<layer>/<index>` with the index of the weight in the layer, in Keras' own order
(conv: kernel, bias; BN: gamma, beta, moving mean, moving variance; dense: kernel, bias).
"""

import re
import string

from resnet_tf1 import fileio
from resnet_tf1 import model as model_lib
from resnet_tf1.data import imagenet
from resnet_tf1.porting.common import (Consumer, Port, PortError, SourceFormat, bn_names,
                                       bottleneck_depth, single_file, stage_number)

_BLOCK = re.compile(r"^conv(\d)_block(\d+)_")
_RES = re.compile(r"^res(\d)([a-z])_branch")


def read(path):
    """{`<layer>/<index>`: array} from a Keras HDF5 weights file (save_weights or save)."""
    single_file(path)
    try:
        import h5py
    except ImportError:
        raise PortError("reading Keras .h5 files needs h5py: pip install h5py "
                        "(or pip install 'resnet_tf1[keras]')")
    try:
        with h5py.File(path, "r") as f:
            group = f["model_weights"] if "model_weights" in f else f
            if "layer_names" not in group.attrs:
                raise PortError("%s is an HDF5 file but not Keras weights (no 'layer_names' "
                                "attribute)" % path)
            arrays = {}
            for layer in group.attrs["layer_names"]:
                layer = layer.decode() if isinstance(layer, bytes) else layer
                g = group[layer]
                for i, wname in enumerate(g.attrs.get("weight_names", [])):
                    wname = wname.decode() if isinstance(wname, bytes) else wname
                    arrays["%s/%d" % (layer, i)] = g[wname][()]
            return arrays
    except OSError as e:
        raise PortError("%s cannot be read as HDF5: %s" % (path, fileio.error_line(e)))


def detect_scheme(arrays):
    layers = {n.split("/")[0] for n in arrays}
    if "conv1_conv" in layers:
        return "keras"
    if "bn_conv1" in layers:
        return "keras2016"
    raise PortError("not Keras ResNet weights: no 'conv1_conv' (current Keras) or 'bn_conv1' "
                    "(Keras 2016) layer among %d layers" % len(layers))


def detect_depth(arrays, scheme=None):
    """The bottleneck depth whose units per stage the file's layer names show."""
    scheme = scheme or detect_scheme(arrays)
    counts = {}
    for name in arrays:
        if scheme == "keras":
            m = _BLOCK.match(name)
            if m:
                counts[int(m.group(1))] = max(counts.get(int(m.group(1)), 0), int(m.group(2)))
        else:
            m = _RES.match(name)
            if m:
                counts[int(m.group(1))] = max(counts.get(int(m.group(1)), 0),
                                              string.ascii_lowercase.index(m.group(2)) + 1)
    return bottleneck_depth(counts, "Keras weights file")


def model_config(scheme, depth, num_classes, scope=None):
    if scheme == "keras":
        return dict(depth=depth, num_classes=num_classes, variant="paper", conv_bias=True,
                    bn_epsilon=1.001e-5, bn_decay=0.99, pool_padding="symmetric", scope=scope)
    return dict(depth=depth, num_classes=num_classes, variant="paper", conv_bias=True,
                bn_epsilon=1e-3, bn_decay=0.99, pool_padding="VALID", scope=scope)


def _layer_names(scheme, s, k, part):
    """Keras (conv, bn) layer names for stage index s, unit k, part in shortcut/conv1..3."""
    if scheme == "keras":
        idx = {"shortcut": 0, "conv1": 1, "conv2": 2, "conv3": 3}[part]
        base = "conv%d_block%d_%d" % (s + 2, k + 1, idx)
        return base + "_conv", base + "_bn"
    branch = {"shortcut": "1", "conv1": "2a", "conv2": "2b", "conv3": "2c"}[part]
    unit = "%d%s_branch%s" % (s + 2, string.ascii_lowercase[k], branch)
    return "res" + unit, "bn" + unit


def to_target(arrays, depth=None, num_classes=None, scope=None):
    scheme = detect_scheme(arrays)
    detected = detect_depth(arrays, scheme)
    if depth is not None and depth != detected:
        raise PortError("--depth=%d disagrees with the Keras weights file, whose layers are a "
                        "ResNet-%d" % (depth, detected))
    depth = detected
    top = "predictions" if scheme == "keras" else "fc1000"
    if top + "/0" not in arrays:
        raise PortError("Keras weights have no '%s' layer: a file saved with include_top=False "
                        "('_notop') has no classifier to port" % top)
    num_classes = num_classes or int(arrays[top + "/0"].shape[-1])
    config = model_config(scheme, depth, num_classes, scope)
    model = model_lib.ResNet(**config)
    src = Consumer(arrays, "Keras weights file")
    out = {}

    def conv_bn(conv_layer, bn_layer, dst_scope):
        out[dst_scope + "/weights"] = src.take(conv_layer + "/0")
        out[dst_scope + "/biases"] = src.take(conv_layer + "/1")
        for i, dst in enumerate(bn_names(dst_scope)):
            out[dst] = src.take("%s/%d" % (bn_layer, i))

    root = model.resolve(224)["scope"]
    stem = ("conv1_conv", "conv1_bn") if scheme == "keras" else ("conv1", "bn_conv1")
    conv_bn(stem[0], stem[1], root + "/conv1")
    for unit in model.plan(224):
        s = stage_number(unit) - 1
        for part in model_lib.unit_conv_parts(unit):
            conv_layer, bn_layer = _layer_names(scheme, s, unit.index - 1, part)
            conv_bn(conv_layer, bn_layer, "%s/%s" % (unit.scope, part))
    out[root + "/logits/weights"] = src.take(top + "/0")
    out[root + "/logits/biases"] = src.take(top + "/1")
    src.finish()
    return Port(out, config, dict(imagenet.BGR_MEAN_PREPROCESSING), "imagenet1000", src.skipped)


def reference(path, images):
    """tf-keras' own ResNet (or the 2016 ResNet50 rebuilt with tf-keras layers) with the file's
    weights loaded by Keras itself, on `images`."""
    from resnet_tf1.references import keras as keras_ref
    keras_ref.tf_keras()
    arrays = read(path)
    scheme = detect_scheme(arrays)
    classes = int(arrays[("predictions" if scheme == "keras" else "fc1000") + "/0"].shape[-1])
    if scheme == "keras2016":
        model = keras_ref.keras2016_resnet50(classes)
    else:
        model = keras_ref.application(detect_depth(arrays, scheme), classes)
    model.load_weights(path)
    return model.predict(images, verbose=0)


FORMAT = SourceFormat(name="keras", read=read, to_target=to_target, source_files=single_file,
                      reference=reference, reference_name="tf-keras' own applications.ResNet")
