"""Run what was exported: any export directory as one runner, fed pixels from a data set.

`load(export_dir)` gives a runner, `runner(images)` -> {output: array} on float32 RGB pixels in
0..255 [batch, S, S, 3], whatever the format (`export.FORMATS`):

- saved_model: loaded once into a TF1 session, the `serving_default` signature;
- frozen_graph: imported once into a fresh graph;
- onnx (float32 or int8): an ONNX Runtime session (`onnxrt`), `threads` intra-op threads;
- torchvision: the written state dict through the numpy torchvision reference (a format check,
  not a server: logits and probabilities only).

`pixel_batches(params, split)` turns a data pipeline's normalised images back into the pixels an
export takes (`data.preprocessing.denormalize`, exact up to float rounding), so that
`evaluate(params, export_dir)` scores an export on the same evaluation set, in the same order,
with the same metrics as `eval_lib.evaluate` scores the checkpoint; int8 calibration reads the
training split the same way.
"""

import json
import os
import re
import time

import numpy as np
import tensorflow as tf
from absl import logging

from resnet_tf1 import errors, eval_lib, onnxrt, run_config
from resnet_tf1 import data as data_lib
from resnet_tf1.data import preprocessing
from resnet_tf1.porting import torch_files

tf1 = tf.compat.v1

EXPORT_RECORD = "export.json"
FROZEN_GRAPH = "frozen_graph.pb"
ONNX_MODEL = "model.onnx"
TORCHVISION_FILE = "model.safetensors"
INPUT = "images"


class ExportDirError(errors.UserError):
    """Not an export directory, or one whose record does not say how to run it."""


def read_record(export_dir):
    """export.json of `export_dir`; one line naming the directory when it is not an export."""
    path = os.path.join(export_dir, EXPORT_RECORD)
    if not os.path.isdir(export_dir):
        raise ExportDirError("--export_dir=%s does not exist" % export_dir)
    try:
        with open(path) as f:
            record = json.load(f)
    except FileNotFoundError:
        raise ExportDirError("--export_dir=%s is not an export directory (no %s: write one "
                             "with scripts/export.py)" % (export_dir, EXPORT_RECORD))
    except (OSError, ValueError) as e:
        raise ExportDirError("%s cannot be read: %s" % (path, e))
    if record.get("format") not in ("saved_model", "frozen_graph", "onnx", "torchvision"):
        raise ExportDirError("%s: unknown format %r" % (path, record.get("format")))
    return record


class _SessionRunner(object):
    def __init__(self, graph, sess, feed, fetches):
        self.graph, self.sess, self.feed, self.fetches = graph, sess, feed, fetches

    def __call__(self, images):
        names = list(self.fetches)
        values = self.sess.run([self.fetches[n] for n in names],
                               {self.feed: np.asarray(images, np.float32)})
        return dict(zip(names, values))

    def close(self):
        self.sess.close()


class _OnnxRunner(object):
    def __init__(self, path, record, threads):
        self.runner = onnxrt.Runner(path, threads)
        self.by_tensor = {n: io["tensor"] for n, io in record["outputs"].items()}

    def __call__(self, images):
        got = self.runner(images)
        return {n: got[t] for n, t in self.by_tensor.items()}

    def close(self):
        pass


class _TorchvisionRunner(object):
    """The state dict through the numpy torchvision reference, on pixels normalised as the
    record says (what a torch caller does before calling the module)."""

    def __init__(self, path, record):
        self.state = torch_files.read_state_dict(path)
        self.record = record

    def __call__(self, images):
        from resnet_tf1.references import torchvision as torchvision_ref
        rec = self.record["preprocessing"]
        x = np.asarray(images, np.float64) * (float(rec.get("scale", 255.0)) / 255.0)
        if rec["channel_order"] == "BGR":
            x = x[..., ::-1]
        if rec.get("mean") is not None:
            x = x - np.asarray(rec["mean"], np.float64)
        x = x / np.asarray(rec.get("std") or [1.0, 1.0, 1.0], np.float64)
        logits = torchvision_ref.forward(self.state, x)
        real = logits[:, 1:] if self.record["background_class"] else logits
        e = np.exp(real - real.max(axis=1, keepdims=True))
        return {"logits": logits, "probabilities": e / e.sum(axis=1, keepdims=True)}

    def close(self):
        pass


def load(export_dir, record=None, threads=None):
    """A runner for the export in `export_dir` (module docstring); `threads`: intra-op threads
    of the session (TensorFlow or ONNX Runtime; None: the runtime's default)."""
    record = record or read_record(export_dir)
    fmt = record["format"]
    if fmt == "onnx":
        return _OnnxRunner(os.path.join(export_dir, record.get("file", ONNX_MODEL)), record,
                           threads)
    if fmt == "torchvision":
        return _TorchvisionRunner(os.path.join(export_dir, TORCHVISION_FILE), record)
    config = run_config.session_config()
    if threads:
        config.intra_op_parallelism_threads = int(threads)
        config.inter_op_parallelism_threads = 1
    graph = tf.Graph()
    with graph.as_default():
        sess = tf1.Session(graph=graph, config=config)
        if fmt == "saved_model":
            meta = tf1.saved_model.loader.load(sess, record["tags"], export_dir)
            sig = meta.signature_def["serving_default"]
            return _SessionRunner(graph, sess, sig.inputs[INPUT].name,
                                  {n: sig.outputs[n].name for n in sig.outputs})
        graph_def = tf1.GraphDef()
        with open(os.path.join(export_dir, FROZEN_GRAPH), "rb") as f:
            graph_def.ParseFromString(f.read())
        tf1.import_graph_def(graph_def, name="")
        return _SessionRunner(graph, sess, record["inputs"][INPUT]["tensor"],
                              {n: io["tensor"] for n, io in record["outputs"].items()})


def run_export(directory, record, images):
    """{output: array} of the export in `directory` on float32 `images`, loaded and closed."""
    runner = load(directory, record)
    try:
        return runner(images)
    finally:
        runner.close()


# `pixel_batches(sample=True)`: images drawn through a shuffle buffer of this many (seed 0), so
# that a sample of a split stored class by class (a folder, MNIST-5k) holds every class.
SAMPLE_BUFFER = 10000


def pixel_batches(params, split, max_images=None, batch_size=None, sample=False):
    """Yields (pixels float32 [b, S, S, 3] RGB 0..255, labels int [b]) of `split` ("train" or
    "eval") of the run's data set, with the evaluation preprocessing, until `max_images` (None:
    the whole split, once): the images `eval_lib.evaluate` would feed, turned back into what an
    export takes. In file order, or with `sample` a fixed sample drawn through a shuffle buffer
    of SAMPLE_BUFFER images (int8 calibration and its check)."""
    if not data_lib.has_files(params.dataset):
        raise errors.FlagError("--dataset=%s has no files to read images from" % params.dataset)
    options = params.data_options()
    rec, _, files = data_lib.inference_record(params.dataset, params.data_dir, **options)
    mean = files.get(rec.get("mean_image")) if rec.get("mean_image") else None
    if mean is not None:
        mean = np.asarray(mean, np.float32)
    with tf.Graph().as_default():
        batch = batch_size or params.batch_size
        ds, n = data_lib.make_dataset(params.dataset, params.data_dir, split, batch, False,
                                      **options)
        if sample:
            ds = ds.unbatch().shuffle(min(n or SAMPLE_BUFFER, SAMPLE_BUFFER), seed=0).batch(batch)
        images, labels = tf1.data.make_one_shot_iterator(ds).get_next()
        pixels = preprocessing.denormalize(images, rec, mean)
        seen = 0
        with tf1.Session(config=run_config.session_config()) as sess:
            while max_images is None or seen < max_images:
                try:
                    x, y = sess.run([pixels, labels])
                except tf.errors.OutOfRangeError:
                    return
                if max_images is not None:
                    x, y = x[:max_images - seen], y[:max_images - seen]
                seen += len(y)
                yield x, y


def pixels(params, split, num_images, batch_size=None, sample=False):
    """(pixels, labels) of `num_images` of `split` (`pixel_batches`; fewer when the split is
    smaller), as arrays."""
    xs, ys = [], []
    for x, y in pixel_batches(params, split, num_images, batch_size, sample):
        xs.append(x)
        ys.append(y)
    if not xs:
        return np.zeros([0, 0, 0, 3], np.float32), np.zeros([0], np.int64)
    return np.concatenate(xs), np.concatenate(ys)


def top_k_hits(logits, labels, k):
    """Whether each label is among the k highest logits, ties broken by class index (numpy's
    form of `metrics.in_top_k`)."""
    order = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return (order == np.asarray(labels)[:, None]).any(axis=1)


def evaluate(params, export_dir, threads=None):
    """Scores the export in `export_dir` on the run's evaluation set (the data flags of
    `params`): the metrics of `eval_lib.evaluate` (top-1, top-5, per class, confusion matrix),
    plus "export_dir", "format" and "dtype" ("int8" for a quantized ONNX model)."""
    record = read_record(export_dir)
    classes = params.resolved_num_classes()
    if record.get("num_classes") is not None and record["num_classes"] + int(bool(
            record.get("background_class"))) != classes:
        raise errors.FlagError(
            "--export_dir=%s classifies %d classes; --dataset=%s in %s has %d"
            % (export_dir, record["num_classes"], params.dataset, params.data_dir, classes))
    runner = load(export_dir, record, threads)
    k = min(5, classes)
    totals = np.zeros(3, np.int64)
    confusion = np.zeros([classes, classes], np.int64)
    start = time.time()
    try:
        for x, y in pixel_batches(params, "eval"):
            logits = runner(x)["logits"]
            totals += (top_k_hits(logits, y, 1).sum(), top_k_hits(logits, y, k).sum(), len(y))
            np.add.at(confusion, (y, logits.argmax(axis=1)), 1)
    finally:
        runner.close()
    n = int(totals[2])
    if n == 0:
        raise data_lib.DataError("the evaluation set of --dataset=%s in %s is empty"
                                 % (params.dataset, params.data_dir))
    seconds = time.time() - start
    logging.info("evaluated %d examples through the %s export in %.1f s (%.1f images/sec)", n,
                 record["format"], seconds, n / max(seconds, 1e-9))
    metrics = eval_lib.metrics_from_counts(params, totals, confusion)
    step = re.search(r"-(\d+)$", record.get("checkpoint") or "")
    metrics.update(global_step=int(step.group(1)) if step else None,
                   checkpoint=record.get("checkpoint"),
                   export_dir=os.path.abspath(export_dir), format=record["format"],
                   dtype=record.get("dtype"), quantization=record.get("quantization"),
                   ten_crop=False, multi_scale=None, flip=False,
                   bn_statistics=eval_lib.bn_statistics(record.get("checkpoint") or ""))
    return metrics
