"""Graph manifests: a canonical, byte-stable JSON description of a built ResNet graph.

A manifest pins everything a refactor or a TensorFlow upgrade could silently change: variable names
and shapes (the checkpoint API), end points, parameter count, multiply-adds per layer, the op-type
histogram of the inference graph, and the resolved model configuration. `diff` compares two.
"""

import collections
import hashlib
import json

import tensorflow as tf

from resnet_tf1 import model as model_lib

tf1 = tf.compat.v1

MANIFEST_VERSION = 1
_LAYER_OPS = ("Conv2D", "MatMul")


def _shape(static_shape):
    return [None if d is None else int(d) for d in static_shape.as_list()]


def layer_table(graph, scope):
    """Per-layer statistics of every conv / dense layer under `scope` in `graph`.

    Multiply-adds are per example: output elements times the kernel's fan-in (kh * kw * c_in)
    for a conv, in * out for a dense layer. BN, ReLU, additions and pooling are not counted, as in
    the paper's Table 1.

    Returns:
        A list of dicts (scope, op, output_shape, parameters, multiply_adds) in creation order.
    """
    params = collections.Counter()
    for var in graph.get_collection(tf1.GraphKeys.TRAINABLE_VARIABLES, scope):
        layer = var.op.name.rsplit("/", 1)[0]
        if layer.endswith("/BatchNorm"):
            layer = layer[:-len("/BatchNorm")]
        params[layer] += int(var.shape.num_elements())
    rows = []
    for op in graph.get_operations():
        if op.type not in _LAYER_OPS or not op.name.startswith(scope + "/"):
            continue
        out = op.outputs[0].shape
        kernel = op.inputs[1].shape
        if op.type == "Conv2D":
            channels_last = op.get_attr("data_format") == b"NHWC"
            spatial = out[1] * out[2] if channels_last else out[2] * out[3]
            out_channels = out[3] if channels_last else out[1]
            macs = spatial * out_channels * kernel[0] * kernel[1] * kernel[2]
        else:
            macs = kernel[0] * kernel[1]
        layer = op.name.rsplit("/", 1)[0]
        rows.append(dict(scope=layer, op=op.type, output_shape=_shape(out),
                         parameters=params.get(layer, 0), multiply_adds=int(macs)))
    return rows


def build(model_kwargs, image_size=None):
    """Builds `ResNet(**model_kwargs)` in inference mode in a fresh graph.

    Returns:
        (graph, model, logits, end_points, image_size).
    """
    model = model_lib.ResNet(**model_kwargs)
    image_size = image_size or model.default_image_size()
    graph = tf.Graph()
    with graph.as_default():
        images = tf1.placeholder(tf.float32, [None, image_size, image_size, 3], name="images")
        logits, end_points = model(images, is_training=False)
    return graph, model, logits, end_points, image_size


def make(model_kwargs, image_size=None):
    """The manifest (a dict) of `ResNet(**model_kwargs)` on `image_size` x `image_size` inputs."""
    graph, model, _, end_points, image_size = build(model_kwargs, image_size)
    resolved = model.resolve(image_size)
    scope = resolved["scope"]
    config = model.get_config()
    config.update({"resolved_" + k: v for k, v in resolved.items()})
    variables = [dict(name=v.op.name, shape=_shape(v.shape), dtype=v.dtype.base_dtype.name,
                      trainable=any(v is t for t in graph.get_collection(
                          tf1.GraphKeys.TRAINABLE_VARIABLES)))
                 for v in graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES)]
    layers = layer_table(graph, scope)
    op_types = collections.Counter(op.type for op in graph.get_operations())
    fingerprint = hashlib.sha256("\n".join(
        "%s %s" % (v["name"], v["shape"]) for v in variables).encode()).hexdigest()
    return {
        "manifest_version": MANIFEST_VERSION,
        "tensorflow_version": tf.__version__,
        "model": config,
        "image_size": image_size,
        "fingerprint": fingerprint,
        "trainable_parameters": sum(
            _numel(v["shape"]) for v in variables if v["trainable"]),
        "total_parameters": sum(_numel(v["shape"]) for v in variables),
        "multiply_adds": sum(row["multiply_adds"] for row in layers),
        "variables": variables,
        "end_points": [dict(name=k, shape=_shape(t.shape)) for k, t in end_points.items()],
        "layers": layers,
        "op_types": dict(sorted(op_types.items())),
    }


def _numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def dumps(manifest):
    """Canonical JSON text: sorted keys, one variable / end point / layer per line, so that a
    golden file diffs line by line and is byte-stable across runs and machines."""
    lines = ["{"]
    keys = sorted(manifest)
    for i, key in enumerate(keys):
        value = manifest[key]
        comma = "," if i < len(keys) - 1 else ""
        if isinstance(value, list) and value and isinstance(value[0], dict):
            rows = [" " * 2 + json.dumps(row, sort_keys=True) for row in value]
            lines.append(" %s: [\n%s\n ]%s" % (json.dumps(key), ",\n".join(rows), comma))
        else:
            lines.append(" %s: %s%s" % (json.dumps(key), json.dumps(value, sort_keys=True), comma))
    lines.append("}")
    return "\n".join(lines) + "\n"


def format_text(manifest):
    """A readable per-layer table, like a model summary."""
    lines = ["%-58s %-22s %12s %16s" % ("layer", "output shape", "parameters", "multiply-adds")]
    lines.append("-" * len(lines[0]))
    for row in manifest["layers"]:
        shape = "[%s]" % ", ".join("batch" if d is None else str(d) for d in row["output_shape"])
        lines.append("%-58s %-22s %12s %16s" % (row["scope"], shape, "{:,}".format(
            row["parameters"]), "{:,}".format(row["multiply_adds"])))
    lines.append("-" * len(lines[0]))
    lines.append("trainable parameters: {:,}".format(manifest["trainable_parameters"]))
    lines.append("all variables:        {:,} ({} variables)".format(
        manifest["total_parameters"], len(manifest["variables"])))
    lines.append("multiply-adds:        {:,} ({:.2f} x 10^9) at {}x{}".format(
        manifest["multiply_adds"], manifest["multiply_adds"] / 1e9, manifest["image_size"],
        manifest["image_size"]))
    lines.append("fingerprint:          %s" % manifest["fingerprint"])
    return "\n".join(lines) + "\n"


def diff(a, b):
    """Differences between two manifests, as readable lines ([] when the graphs agree).

    The TensorFlow version is reported but is not by itself a difference.
    """
    out = []
    va = {v["name"]: v for v in a["variables"]}
    vb = {v["name"]: v for v in b["variables"]}
    for name in sorted(set(vb) - set(va)):
        out.append("+ variable %s %s" % (name, vb[name]["shape"]))
    for name in sorted(set(va) - set(vb)):
        out.append("- variable %s %s" % (name, va[name]["shape"]))
    for name in sorted(set(va) & set(vb)):
        for key in ("shape", "dtype", "trainable"):
            if va[name][key] != vb[name][key]:
                out.append("~ variable %s %s: %s -> %s" % (name, key, va[name][key],
                                                          vb[name][key]))
    if [v["name"] for v in a["variables"]] != [v["name"] for v in b["variables"]] and \
            set(va) == set(vb):
        out.append("~ variable creation order changed")
    ea = {e["name"]: e["shape"] for e in a["end_points"]}
    eb = {e["name"]: e["shape"] for e in b["end_points"]}
    for name in sorted(set(ea) | set(eb)):
        if ea.get(name) != eb.get(name):
            out.append("~ end point %s: %s -> %s" % (name, ea.get(name, "absent"),
                                                     eb.get(name, "absent")))
    for key in ("trainable_parameters", "total_parameters", "multiply_adds", "image_size"):
        if a[key] != b[key]:
            out.append("~ %s: {:,} -> {:,} ({:+,})".format(a[key], b[key], b[key] - a[key]) % key)
    la = {r["scope"]: r for r in a["layers"]}
    lb = {r["scope"]: r for r in b["layers"]}
    for name in sorted(set(la) | set(lb)):
        ra, rb = la.get(name), lb.get(name)
        if ra != rb:
            out.append("~ layer %s: %s -> %s" % (name, _layer_summary(ra), _layer_summary(rb)))
    for key in sorted(set(a["model"]) | set(b["model"])):
        if a["model"].get(key) != b["model"].get(key):
            out.append("~ model %s: %r -> %r" % (key, a["model"].get(key), b["model"].get(key)))
    oa, ob = a["op_types"], b["op_types"]
    for op in sorted(set(oa) | set(ob)):
        if oa.get(op, 0) != ob.get(op, 0):
            out.append("~ op %s: %d -> %d" % (op, oa.get(op, 0), ob.get(op, 0)))
    if out and a["tensorflow_version"] != b["tensorflow_version"]:
        out.append("  (TensorFlow %s -> %s)" % (a["tensorflow_version"], b["tensorflow_version"]))
    return out


def _layer_summary(row):
    if row is None:
        return "absent"
    return "%s params=%d macs=%d" % (row["output_shape"], row["parameters"],
                                     row["multiply_adds"])
