"""Export a converted checkpoint or a training run for serving: SavedModel, frozen graph, ONNX.

Every format takes RGB pixels in 0..255 with the preprocessing inside the graph (a client sends
pixels, never means or channel orders) and has the outputs of `serving.inference_graph`
(logits, probabilities, classes, top_k_classes, top_k_probabilities, class_names). Each export
directory is written under a temporary name and renamed, and holds `export.json` naming its
inputs and outputs (tensor and node names, dtypes, shapes), the source and the checks run.

- saved_model: TF1 SavedModel, tag "serve", two signatures:
  `serving_default`: input `images` float32 [None, S, S, 3];
  `image_bytes`: input `image_bytes` string [None] of encoded JPEG / PNG / BMP / GIF, decoded,
  resized (shorter side) and centre-cropped in the graph exactly as predict does.
  Variables keep the checkpoint's names and BN stays a BN op (the model can be restored and
  fine-tuned from it). Loads with `tf.saved_model.load` (TF2 eager) and
  `tf.compat.v1.saved_model.loader.load` (sessions).
- frozen_graph: `frozen_graph.pb`, a GraphDef with the variables as constants and every batch
  norm folded into the conv before it (`fold_bn`): no FusedBatchNorm ops, no variables, no
  training ops. Input node `images`, output nodes as named above.
- onnx: `model.onnx`, the frozen graph converted by tf2onnx (`pip install -e '.[onnx]'`), the
  same input and outputs. With `quantize="int8"`, that model quantized statically by ONNX
  Runtime (`onnxrt.quantize`: QDQ, per-channel symmetric int8 weights, uint8 activations
  calibrated on real images given as a `Calibration`); only the int8 model is kept.
- torchvision: `model.safetensors`, a state dict with torchvision's exact names, shapes (OIHW)
  and dtypes (`num_batches_tracked` included), for `torchvision.models.resnet<depth>(num_classes=
  N).load_state_dict(safetensors.torch.load_file(...), strict=True)`; export.json names the
  constructor and the preprocessing the network needs (applied by the caller: torch modules
  take normalised tensors). Only graphs torchvision's module computes exactly are exported
  (`torchvision_problem`); the name map is `porting.torchvision.name_table`, the one the import
  reads, so a torchvision file converted and exported comes back bit for bit.

Every export is then run as written (the SavedModel loaded into a session, the frozen graph
imported into a fresh graph, the ONNX model in onnxruntime when installed) on random pixels
beside the session graph built straight from the checkpoint; the differences are in export.json
("check"), and beyond 1e-4 (relative logits, absolute probabilities; in float32) the export
fails. An int8 export is checked instead on real images it was not calibrated on (`agreement`):
it fails when its top-1 agrees with float32 on fewer than `min_agreement` of the images float32
decides. `exported` runs what was written (and evaluates it on a data set).
"""

import collections
import json
import os
import shutil

import numpy as np
import tensorflow as tf
from absl import logging

from resnet_tf1 import errors, exported, fileio
from resnet_tf1 import model as model_lib
from resnet_tf1 import onnxrt, rundir, serving
from resnet_tf1.porting import torch_files
from resnet_tf1.porting import torchvision as torchvision_port

tf1 = tf.compat.v1

FORMATS = ("saved_model", "frozen_graph", "onnx", "torchvision")
TORCHVISION_FILE = exported.TORCHVISION_FILE
EXPORT_RECORD = exported.EXPORT_RECORD
FROZEN_GRAPH = exported.FROZEN_GRAPH
ONNX_MODEL = exported.ONNX_MODEL
INPUT = exported.INPUT
BYTES_INPUT = "image_bytes"
ONNX_OPSET = 15
# Agreement of an export with the session graph (relative logits, absolute probabilities),
# checked after export. Folding BN changes the rounding: 1e-4 in float32; a low-precision compute
# dtype rounds each layer to 3 (bfloat16) or 4 (float16) significant digits.
TOLERANCE = {"float32": 1e-4, "float16": 1e-2, "bfloat16": 3e-2}


class ExportError(errors.UserError):
    """An export that cannot be written or does not check out; the message says which."""


def _named(outputs, prefix=""):
    """The outputs as identity ops named "<prefix><name>" (stable node names to serve by)."""
    return {k: tf.identity(v, name=prefix + k) for k, v in outputs.items()}


def _io_record(tensor):
    return {"tensor": tensor.name, "node": tensor.op.name, "dtype": tensor.dtype.name,
            "shape": tensor.shape.as_list()}


def _check_export_dir(export_dir, overwrite):
    fileio.recover_dir(export_dir, "export")  # an interrupted export first: see what is there
    problem = fileio.output_dir_problem(
        export_dir, "--export_dir", lambda d: os.path.exists(os.path.join(d, EXPORT_RECORD)),
        "an export", "no %s" % EXPORT_RECORD, "an earlier export", overwrite)
    if problem:
        raise ExportError(problem)


Calibration = collections.namedtuple("Calibration", ["images", "check_images", "source"])
Calibration.__doc__ = """Real images for `--quantize=int8`: `images` (float32 RGB pixels
[N, S, S, 3]) calibrate the activations, `check_images` (others) measure the agreement with the
float32 session graph; `source` says where both came from (export.json)."""

QUANTIZE = ("int8",)
# An image float32 "decides": its top-1 probability leads the second by at least this much. The
# int8 export must agree with float32's top-1 on --min_agreement of them.
DECIDED_MARGIN = 0.1


def export(servable, export_dir, fmt, input_size=None, top_k=5, dtype=None, overwrite=False,
           quantize=None, calibration=None, calibration_method="minmax", min_agreement=0.99):
    """Writes `servable` to `export_dir` in format `fmt`; returns the export record (also
    written as export_dir/export.json).

    quantize="int8" (with fmt "onnx"): the float32 ONNX model quantized by ONNX Runtime
    (`onnxrt.quantize`), its activations calibrated on `calibration.images` with
    `calibration_method`; the export fails (ExportError) when its top-1 agrees with the float32
    session graph on fewer than `min_agreement` of the `calibration.check_images` float32
    decides (DECIDED_MARGIN)."""
    if fmt not in FORMATS:
        raise ExportError("--format=%s: expected one of %s" % (fmt, ", ".join(FORMATS)))
    if quantize is not None:
        check_quantize(servable, fmt, quantize, dtype, calibration_method, min_agreement)
        _check_calibration(quantize, calibration)
    if fmt == "onnx" and (dtype or servable.model.get("dtype")) == "bfloat16":
        raise ExportError("--dtype=bfloat16 cannot be exported to ONNX (onnxruntime has no "
                          "bfloat16 convolution): export in float32 or float16")
    if fmt == "torchvision":
        problem = torchvision_problem(servable.model)
        if problem:
            raise ExportError("--format=torchvision: %s" % problem)
    export_dir = os.path.abspath(export_dir)
    _check_export_dir(export_dir, overwrite)
    size = serving.input_size(servable, input_size)
    with fileio.atomic_dir(export_dir, "export") as tmp:
        record = {"format": fmt, "model_dir": os.path.abspath(servable.model_dir),
                  "checkpoint": servable.checkpoint, "model": servable.model,
                  "dtype": dtype or servable.model.get("dtype", "float32"),
                  "preprocessing": servable.preprocessing, "input_size": size,
                  "num_classes": len(servable.labels), "background_class": bool(
                      servable.labels.offset), "tensorflow_version": tf.__version__}
        if fmt == "torchvision":
            record.update(_torchvision(servable, tmp))
        elif fmt == "saved_model":
            record.update(_saved_model(servable, tmp, size, top_k, dtype))
        else:
            graph_def, io = _frozen(servable, size, top_k, dtype)
            record.update(io)
            if fmt == "frozen_graph":
                fileio.write_bytes(os.path.join(tmp, FROZEN_GRAPH),
                                   graph_def.SerializeToString())
                record["file"] = FROZEN_GRAPH
            elif quantize:
                float_dir = os.path.join(tmp, "float32")
                os.makedirs(float_dir)
                float_record = _onnx(graph_def, io, float_dir)
                record.update(float_record, dtype=quantize, float_dtype=record["dtype"])
                record["quantization"] = onnxrt.quantize(
                    os.path.join(float_dir, float_record["file"]),
                    os.path.join(tmp, ONNX_MODEL), calibration.images, calibration_method)
                record["quantization"]["calibration_source"] = calibration.source
                shutil.rmtree(float_dir)
            else:
                record.update(_onnx(graph_def, io, tmp))
        if quantize:
            record["check"] = check_quantized(servable, tmp, record, calibration.check_images,
                                              min_agreement, top_k)
        else:
            record["check"] = check(servable, tmp, record, top_k, dtype)
        fileio.write_json(os.path.join(tmp, EXPORT_RECORD), record)
    return record


def check_quantize(servable, fmt, quantize, dtype, method, min_agreement):
    """Refuses an int8 export that cannot work, before anything is read or written."""
    if quantize not in QUANTIZE:
        raise ExportError("--quantize=%s: expected one of %s" % (quantize, ", ".join(QUANTIZE)))
    if fmt != "onnx":
        raise ExportError("--quantize=%s runs in ONNX Runtime: use it with --format=onnx, not "
                          "--format=%s" % (quantize, fmt))
    source_dtype = dtype or servable.model.get("dtype", "float32")
    if source_dtype != "float32":
        raise ExportError("--quantize=%s quantizes a float32 graph; this export computes in %s "
                          "(export with --dtype=float32)" % (quantize, source_dtype))
    if method not in onnxrt.CALIBRATION_METHODS:
        raise ExportError("--calibration_method=%s: expected one of %s"
                          % (method, ", ".join(onnxrt.CALIBRATION_METHODS)))
    if not 0 < min_agreement <= 1:
        raise ExportError("--min_agreement=%r must be in (0, 1]" % (min_agreement,))
    if not onnxrt.available():
        raise ExportError("--quantize=%s needs onnxruntime: pip install -e '.[onnx]'"
                          % quantize)


def _check_calibration(quantize, calibration):
    if calibration is None or not len(calibration.images):
        raise ExportError("--quantize=%s needs calibration images (--calibration_dir, or a "
                          "training run's data set)" % quantize)
    if not len(calibration.check_images):
        raise ExportError("--quantize=%s needs images beside the %d calibration images to check "
                          "the int8 model against float32 (%s)"
                          % (quantize, len(calibration.images), calibration.source))


def torchvision_problem(model_kwargs):
    """None when torchvision's ResNet computes the graph of `model_kwargs` exactly; else which
    setting differs and what to use instead."""
    kwargs = {k: v for k, v in model_kwargs.items()
              if k not in ("dtype", "data_format", "device")}
    model = model_lib.ResNet(**kwargs)
    r = model.resolve(224)
    fix = ("convert a torchvision checkpoint, or train --variant=v1.5 --pool_padding=symmetric "
           "at an ImageNet depth")
    if r["architecture"] != "imagenet" or r["stem"] != "imagenet":
        return ("torchvision's ResNet is the ImageNet architecture with its 7x7 stem; this is "
                "a %s net with the %s stem: %s" % (r["architecture"], r["stem"], fix))
    if r["shortcut"] != "B":
        return ("torchvision projects only where the shape changes (option B); this model's "
                "shortcut is %s: %s" % (r["shortcut"], fix))
    for unit in model.plan(224):
        on_3x3 = unit.kind != "bottleneck" or unit.stride_3x3 == unit.stride
        if unit.stride > 1 and (unit.index != 1 or not on_3x3):
            return ("torchvision strides a stage's first unit on its 3x3 (v1.5); this model is "
                    "variant %s (%s strides %s): %s" % (
                        model.variant, unit.scope, "on its 1x1" if unit.stride_1x1 else
                        "last", fix))
    if model.conv_bias:
        return ("torchvision's convolutions have no bias; this model has conv biases (a Keras "
                "port): export it as saved_model, frozen_graph or onnx")
    if model.pool_padding != "symmetric":
        return ("torchvision pads the stem's max-pool by 1 on both sides (pool_padding "
                "symmetric); this model's pool_padding is %s (another pooling grid): convert a "
                "torchvision checkpoint, or train --variant=v1.5 --pool_padding=symmetric"
                % model.pool_padding)
    if model.conv_padding != "symmetric":
        return ("torchvision pads its strided convolutions symmetrically; this model pads them "
                "as TF's SAME (a tensorpack port): export it as saved_model, frozen_graph or "
                "onnx")
    if model.bn_epsilon != 1e-5:
        return ("torchvision's BatchNorm2d has eps 1e-5; this model's BN epsilon is %g"
                % model.bn_epsilon)
    return None


def torchvision_state_dict(servable):
    """{torchvision name: array} of `servable`, in torchvision's order (`name_table`).
    num_batches_tracked: a torchvision import's own (config.json), else the run's BN update
    count, else 0."""
    model = servable.build_model()
    counters = {}
    if servable.kind == "converted checkpoint":
        source = rundir.read_record(servable.model_dir).config.get("source") or {}
        counters = source.get("num_batches_tracked") or {}
    count = [v for n, v in servable.weights.items() if n.endswith("/bn_update_count")]
    default = int(count[0]) if count else 0
    out = collections.OrderedDict()
    for theirs, ours, kind in torchvision_port.name_table(model):
        if kind == "counter":
            out[theirs] = np.array(counters.get(theirs, default), np.int64)
        else:
            out[theirs] = np.require(torchvision_port.to_theirs(kind, servable.weights[ours]),
                                     requirements="C")
    return out


def _torchvision(servable, directory):
    state = torchvision_state_dict(servable)
    torch_files.write_safetensors(state, os.path.join(directory, TORCHVISION_FILE),
                                  metadata={"format": "pt"})
    depth, classes = servable.model["depth"], servable.model["num_classes"]
    return {"file": TORCHVISION_FILE, "tensors": len(state),
            "constructor": torchvision_port.constructor(depth, classes),
            "load": "model.load_state_dict(safetensors.torch.load_file(%r), strict=True)"
                    % TORCHVISION_FILE}


def _saved_model(servable, directory, size, top_k, dtype):
    graph = tf.Graph()
    with graph.as_default():
        images = tf1.placeholder(tf.float32, [None, size, size, 3], name=INPUT)
        outputs = _named(serving.inference_graph(servable, images, top_k=top_k, dtype=dtype))
        encoded = tf1.placeholder(tf.string, [None], name=BYTES_INPUT)
        decoded = serving.decode_graph(servable, encoded, size)
        from_bytes = _named(serving.inference_graph(servable, decoded, top_k=top_k, dtype=dtype,
                                                    reuse=True), prefix="image_bytes_")
        load = serving.restorer(servable)
        with tf1.Session(graph=graph, config=tf1.ConfigProto(allow_soft_placement=True)) as sess:
            load(sess)
            builder = tf1.saved_model.Builder(directory)
            sig = tf1.saved_model.signature_def_utils.predict_signature_def
            builder.add_meta_graph_and_variables(
                sess, [tf1.saved_model.tag_constants.SERVING], strip_default_attrs=True,
                signature_def_map={
                    "serving_default": sig({INPUT: images}, outputs),
                    BYTES_INPUT: sig({BYTES_INPUT: encoded}, from_bytes)})
            builder.save()
    return {"tags": ["serve"], "signatures": {
        "serving_default": {"inputs": {INPUT: _io_record(images)},
                            "outputs": {k: _io_record(v) for k, v in outputs.items()}},
        BYTES_INPUT: {"inputs": {BYTES_INPUT: _io_record(encoded)},
                      "outputs": {k: _io_record(v) for k, v in from_bytes.items()}}}}


def _frozen(servable, size, top_k, dtype):
    """(GraphDef with BN folded and variables as constants, its input/output record)."""
    graph = tf.Graph()
    with graph.as_default():
        images = tf1.placeholder(tf.float32, [None, size, size, 3], name=INPUT)
        outputs = _named(serving.inference_graph(servable, images, fold=True, top_k=top_k,
                                                 dtype=dtype))
        load = serving.restorer(servable, fold=True)
        with tf1.Session(graph=graph) as sess:
            load(sess)
            graph_def = tf1.graph_util.convert_variables_to_constants(
                sess, graph.as_graph_def(), [t.op.name for t in outputs.values()])
    ops = {n.op for n in graph_def.node}
    left = sorted(o for o in ops if "BatchNorm" in o or "Variable" in o or o in (
        "Assign", "AssignVariableOp", "RandomStandardNormal", "TruncatedNormal"))
    if left:
        raise ExportError("the frozen graph still holds %s ops" % ", ".join(left))
    return graph_def, {"inputs": {INPUT: _io_record(images)},
                       "outputs": {k: _io_record(v) for k, v in outputs.items()}}


def run_frozen(graph_def, io, images):
    """{output name: array} of a frozen graph on float32 `images` (in a fresh graph)."""
    with tf.Graph().as_default() as g:
        tf1.import_graph_def(graph_def, name="")
        with tf1.Session(graph=g) as sess:
            names = list(io["outputs"])
            values = sess.run([io["outputs"][n]["tensor"] for n in names],
                              {io["inputs"][INPUT]["tensor"]: images})
    return dict(zip(names, values))


def _onnx(graph_def, io, directory):
    try:
        import tf2onnx
    except ImportError:
        raise ExportError("--format=onnx needs tf2onnx: pip install -e '.[onnx]' (tf2onnx and "
                          "onnxruntime)")
    path = os.path.join(directory, ONNX_MODEL)
    inputs = [io["inputs"][INPUT]["tensor"]]
    outputs = [io["outputs"][n]["tensor"] for n in io["outputs"]]
    try:
        tf2onnx.convert.from_graph_def(graph_def, input_names=inputs, output_names=outputs,
                                       opset=ONNX_OPSET, output_path=path)
    except Exception as e:  # tf2onnx raises many kinds; one line names the step
        raise ExportError("tf2onnx could not convert the frozen graph: %s"
                          % fileio.error_line(e))
    return {"file": ONNX_MODEL, "opset": ONNX_OPSET}


def session_outputs(servable, images, top_k=5, dtype=None, batch_size=32):
    """{output: array} of the session graph (BN unfolded, straight from the checkpoint): the
    reference every export is checked against (run `batch_size` images at a time)."""
    with tf.Graph().as_default():
        x = tf1.placeholder(tf.float32, [None] + list(images.shape[1:]))
        outputs = serving.inference_graph(servable, x, top_k=top_k, dtype=dtype)
        load = serving.restorer(servable)
        with tf1.Session() as sess:
            load(sess)
            parts = [sess.run(dict(outputs), {x: images[i:i + batch_size]})
                     for i in range(0, len(images), batch_size)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def agreement(want, got):
    """How an export's probabilities `got` agree with the float32 reference `want` ([N, C]
    each): top-1 agreement over all images and over the ones the reference decides
    (DECIDED_MARGIN), and the largest probability difference."""
    top2 = np.sort(want, axis=1)[:, -2:] if want.shape[1] > 1 else np.stack(
        [np.zeros(len(want)), want[:, 0]], 1)
    decided = (top2[:, 1] - top2[:, 0]) >= DECIDED_MARGIN
    same = want.argmax(1) == got.argmax(1)
    return {"images": int(len(want)), "top_1_agreement": float(same.mean()),
            "decided_images": int(decided.sum()), "decided_margin": DECIDED_MARGIN,
            "top_1_agreement_decided": float(same[decided].mean()) if decided.any() else None,
            "max_abs_probability_difference": float(np.abs(got - want).max()),
            "mean_abs_probability_difference": float(np.abs(got - want).mean())}


def check_quantized(servable, directory, record, images, min_agreement, top_k=5):
    """The int8 export against the float32 session graph on real `images` (not used for
    calibration): `agreement`; ExportError when its top-1 agreement on the images float32
    decides is below `min_agreement`."""
    want = session_outputs(servable, images, top_k)["probabilities"]
    runner = exported.load(directory, record)
    try:
        got = np.concatenate([runner(images[i:i + 32])["probabilities"]
                              for i in range(0, len(images), 32)])
    finally:
        runner.close()
    result = agreement(want, got)
    logging.info("int8 checked against the float32 session graph on %d images not used for "
                 "calibration: top-1 agrees on %.2f %% of all, %s of the %d float32 decides; "
                 "max abs probability difference %.3g", result["images"],
                 100 * result["top_1_agreement"],
                 "%.2f %%" % (100 * result["top_1_agreement_decided"])
                 if result["decided_images"] else "none", result["decided_images"],
                 result["max_abs_probability_difference"])
    if not result["decided_images"]:
        raise ExportError("none of the %d check images is decided by float32 (top-1 ahead by "
                          "%.2f): give images like the ones the model classifies"
                          % (len(images), DECIDED_MARGIN))
    if result["top_1_agreement_decided"] < min_agreement:
        raise ExportError(
            "the int8 export agrees with float32 on %.2f %% of the %d check images float32 "
            "decides, below --min_agreement=%g: calibrate on more images "
            "(--calibration_batches), try --calibration_method=entropy or percentile, or "
            "serve float32" % (100 * result["top_1_agreement_decided"],
                               result["decided_images"], min_agreement))
    return result


def check(servable, directory, record, top_k=5, dtype=None, batch=2, seed=0):
    """Runs the export and the session graph on the same random pixels; the differences, or
    None where the format's runtime is not installed. ExportError beyond the dtype's
    TOLERANCE."""
    size = record["input_size"]
    images = np.random.RandomState(seed).uniform(0, 255, (batch, size, size, 3)).astype(
        np.float32)
    if record["format"] == "onnx" and not onnxrt.available():
        logging.warning("onnxruntime is not installed: the ONNX model is not checked (pip "
                        "install -e '.[onnx]')")
        return None
    got = exported.run_export(directory, record, images)
    want = session_outputs(servable, images, top_k, dtype)
    tolerance = TOLERANCE[record["dtype"]]
    result = {
        "images": batch,
        "max_abs_probability_difference": float(
            np.abs(got["probabilities"] - want["probabilities"]).max()),
        "max_relative_logit_difference": float(
            np.abs(got["logits"] - want["logits"]).max() / np.abs(want["logits"]).max()),
    }
    if record["format"] == "torchvision":
        # A float64 reference: softmax ties at 0 order differently, the logits' argmax may not.
        result["top_1_identical"] = bool(np.array_equal(got["logits"].argmax(1),
                                                        want["logits"].argmax(1)))
    else:
        result["top_k_identical"] = bool(np.array_equal(got["top_k_classes"],
                                                        want["top_k_classes"]))
    same = result.get("top_k_identical", result.get("top_1_identical"))
    logging.info("%s checked against the session graph on %d images: max abs probability "
                 "difference %.3g, max relative logit difference %.3g, top-%s %s", record[
                     "format"], batch, result["max_abs_probability_difference"],
                 result["max_relative_logit_difference"],
                 1 if "top_1_identical" in result else top_k,
                 "identical" if same else "DIFFERENT")
    if (result["max_abs_probability_difference"] > tolerance or
            result["max_relative_logit_difference"] > tolerance):
        raise ExportError("the %s export disagrees with the session graph: %s (tolerance %g in "
                          "%s)" % (record["format"], json.dumps(result), tolerance,
                                   record["dtype"]))
    return result
