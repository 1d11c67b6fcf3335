"""Evaluation: top-1 / top-5 over a whole evaluation set, one checkpoint or each new one."""

import dataclasses
import json
import os
import time

import numpy as np
import tensorflow as tf
from absl import logging

from resnet_tf1 import checkpoints, curves
from resnet_tf1 import data as data_lib
from resnet_tf1 import errors, fileio
from resnet_tf1 import metrics as metrics_lib
from resnet_tf1 import restore as restore_lib
from resnet_tf1 import run_config, rundir
from resnet_tf1.data import labels as labels_lib
from resnet_tf1.data import preprocessing

tf1 = tf.compat.v1


def multi_scale_scores(model, images, scales, flip=False):
    """The paper's multi-scale fully-convolutional testing (Section 3.4, after VGG).

    For each scale the images (a batch of one size, normalised) are resized so that their
    shorter side is the scale; the fully-convolutional network (`ResNet.score_map`: the FC at
    every position) gives a class-score map whose mean over the positions is that view's
    scores; with `flip` the mirrored image is a second view. Returns the mean softmax over all
    views, [batch, num_classes] (a single view: its mean logits, which rank as its softmax).
    """
    views = []
    for scale in scales:
        size = images.shape[1:3]
        if size.is_fully_defined() and min(size) == scale:
            resized = images  # already at this scale: not resampled
        else:
            resized = preprocessing.resize_shorter(images, scale)
        views += [resized, tf.reverse(resized, axis=[2])] if flip else [resized]
    scores = []
    for view in views:
        maps, _ = model.score_map(view, reuse=tf1.AUTO_REUSE)
        scores.append(tf.reduce_mean(maps, axis=[1, 2]))
    if len(scores) == 1:
        return scores[0]
    return tf.add_n([tf.nn.softmax(s) for s in scores]) / float(len(scores))


def parse_scales(text):
    """[224, 256, ...] from "224,256,..."; errors.FlagError naming --multi_scale otherwise."""
    try:
        scales = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        scales = []
    if not scales or any(s < 8 for s in scales):
        raise errors.FlagError("--multi_scale must be comma-separated image sizes in pixels (the "
                               "shorter side, e.g. 224,256,384,480,640): got %r" % text)
    return scales


# `evaluate(bn_stats=)`: the training checkpoint's moving averages, the recomputed population
# statistics (bn_recomputed/), or each evaluation batch's own statistics (as in training: the
# reference the other two approximate; it depends on --batch_size and the evaluation order).
BN_STATS = ("running", "recomputed", "batch")


def _with_bn_stats(checkpoint, bn_stats):
    """The checkpoint prefix to evaluate for `--bn_stats`: a run directory's latest training
    checkpoint (running), its recomputed-BN checkpoint of that step (recomputed; an error when
    there is none), or, unset, what `rundir.resolve` picks (recomputed when present)."""
    if bn_stats == "batch":  # the weights are the training checkpoint's; its statistics unused
        return (checkpoints.latest_training(checkpoint) if os.path.isdir(checkpoint)
                else checkpoint)
    if bn_stats is None or not os.path.isdir(checkpoint):
        if bn_stats == "recomputed" and os.path.basename(os.path.dirname(
                checkpoints.resolve_path(checkpoint))) != rundir.BN_RECOMPUTED_SUBDIR:
            raise errors.FlagError("--bn_stats=recomputed: %s is not a checkpoint with "
                                   "recomputed BN statistics (give the run directory)"
                                   % checkpoint)
        return checkpoint
    latest = checkpoints.latest_training(checkpoint)
    if bn_stats == "running":
        return latest
    recomputed = checkpoints.resolve_path(checkpoint)
    if recomputed == latest:
        raise errors.FlagError(
            "--bn_stats=recomputed: %s has no BN statistics recomputed for its latest checkpoint "
            "%s (python scripts/recompute_bn.py --flagfile=%s)"
            % (checkpoint, os.path.basename(latest), rundir.flags_path(checkpoint)))
    return recomputed


def bn_statistics(prefix):
    """What BN statistics checkpoint `prefix` holds: {"kind": "recomputed", "input": "train" |
    "eval", "num_images": N, "seed": ...} for one in bn_recomputed/ (from its bn_stats.json),
    else {"kind": "running"}."""
    directory = os.path.dirname(prefix)
    if os.path.basename(directory) != rundir.BN_RECOMPUTED_SUBDIR:
        return {"kind": "running"}
    out = {"kind": "recomputed"}
    try:
        with open(os.path.join(directory, "bn_stats.json")) as f:
            info = json.load(f)
    except (OSError, ValueError):
        return out
    out.update(input=info.get("input", "eval"), num_images=info.get("num_images"),
               seed=info.get("seed"))
    return out


def describe_bn_statistics(stats):
    """"running" / "recomputed over 10240 images (train input)" / "of each batch of 128"."""
    if stats.get("kind") == "batch":
        return "of each evaluation batch of %s" % stats.get("batch_size", "?")
    if stats.get("kind") != "recomputed":
        return "running"
    return "recomputed over %s images (%s input)" % (stats.get("num_images", "?"),
                                                     stats.get("input", "eval"))


def evaluate(params, checkpoint, ten_crop=False, scales=None, flip=False, bn_stats=None):
    """Evaluates `checkpoint` (a prefix or a directory) over the whole evaluation set.

    Args:
        params: a `run_config.RunParams` describing the model and the data.
        ten_crop: average the softmax over the paper's 10 crops (ImageNet only).
        scales: the multi-scale protocol instead (see `multi_scale_scores`): whole images, the
            shorter side resized to each of these sizes (ImageNet: one image per batch).
        flip: with `scales`, also each mirrored image.
        bn_stats: "running", "recomputed", "batch" (each evaluation batch normalised by its own
            statistics, as in training) or None (a run directory's recomputed statistics when
            present); metrics.json's "bn_statistics" says which were used.

    Returns:
        dict(top_1_accuracy, top_5_accuracy, num_examples, num_skipped (records the input
        pipeline skipped: see data/tfrecords.py), global_step, checkpoint, ten_crop,
        multi_scale (the scales or None), flip).
    """
    if ten_crop and params.dataset != "imagenet":
        raise errors.FlagError("--ten_crop applies to --dataset=imagenet only")
    if ten_crop and scales:
        raise errors.FlagError("--ten_crop and --multi_scale are two test protocols: choose one")
    if flip and not scales:
        raise errors.FlagError("--flip applies to --multi_scale (the ten crops include flips)")
    if bn_stats is not None and bn_stats not in BN_STATS:
        raise errors.FlagError("--bn_stats=%s: expected one of %s" % (bn_stats,
                                                                     ", ".join(BN_STATS)))
    if bn_stats == "batch" and (scales or ten_crop):
        raise errors.FlagError("--bn_stats=batch evaluates batches of --batch_size images: it "
                               "does not combine with --ten_crop or --multi_scale")
    if scales and params.dataset == "imagenet":
        params = dataclasses.replace(params, batch_size=1)  # images of their own sizes
    if not data_lib.has_files(params.dataset):
        raise errors.FlagError("--dataset=%s has no evaluation set (expected one of %s)"
                               % (params.dataset, ", ".join(
                                   n for n in data_lib.DATASETS if data_lib.has_files(n))))
    ckpt = rundir.checkpoint(_with_bn_stats(checkpoint, bn_stats))
    graph = tf.Graph()
    with graph.as_default():
        skips = data_lib.SkippedRecords()
        images, labels, _ = run_config.input_batches(params, training=False, ten_crop=ten_crop,
                                                     skips=skips, full_image=bool(scales))
        model = run_config.build_model(params)
        if scales:
            scores = multi_scale_scores(model, images, scales, flip)
        elif ten_crop:
            shape = tf.shape(images)
            flat = tf.reshape(images, tf.concat([[-1], shape[2:]], 0))
            logits, _ = model(flat, is_training=False)
            classes = params.resolved_num_classes()
            scores = tf.reduce_mean(tf.reshape(tf.nn.softmax(logits), [shape[0], 10, classes]),
                                    axis=1)
        else:
            # Rank logits, not their softmax: float32 softmax ties where the logits do not.
            # Batch statistics: the training-mode graph; its update ops are never run.
            scores, _ = model(images, is_training=bn_stats == "batch")
        k = min(5, params.resolved_num_classes())
        top1 = tf.reduce_sum(tf.cast(metrics_lib.in_top_k(scores, labels, 1), tf.int64))
        top5 = tf.reduce_sum(tf.cast(metrics_lib.in_top_k(scores, labels, k), tf.int64))
        count = tf.size(labels, out_type=tf.int64)
        predicted = tf.argmax(scores, axis=1, output_type=tf.int32)
        restorer = _restorer(params, ckpt)
        totals = np.zeros(3, np.int64)
        classes = params.resolved_num_classes()
        confusion = np.zeros([classes, classes], np.int64)
        start = time.time()
        with tf1.Session(config=run_config.session_config()) as sess:
            restorer.restore(sess)
            while True:
                try:
                    t1, t5, c, truth, guess = sess.run([top1, top5, count, labels, predicted])
                except tf.errors.OutOfRangeError:
                    break
                totals += (t1, t5, c)
                np.add.at(confusion, (truth, guess), 1)
    n = int(totals[2])
    if n == 0:
        raise data_lib.DataError("the evaluation set of --dataset=%s in %s is empty"
                                 % (params.dataset, params.data_dir))
    logging.info("evaluated %d examples in %.1f s%s", n, time.time() - start,
                 "; %d records skipped (logged by file above)" % skips.total
                 if skips.total else "")
    metrics = metrics_from_counts(params, totals, confusion)
    metrics.update({
        "num_skipped": skips.total, "global_step": ckpt.step,
        "checkpoint": ckpt.prefix, "ten_crop": bool(ten_crop),
        "multi_scale": list(scales) if scales else None, "flip": bool(flip),
        "bn_statistics": ({"kind": "batch", "batch_size": params.batch_size}
                          if bn_stats == "batch" else bn_statistics(ckpt.prefix))})
    return metrics


def metrics_from_counts(params, totals, confusion):
    """The metrics.json fields every evaluation shares, from (top-1 hits, top-5 hits, examples)
    and the confusion matrix (rows true, columns predicted)."""
    n = int(totals[2])
    names = class_names(params)
    per_class = confusion.sum(axis=1)
    return {"top_1_accuracy": float(totals[0]) / n, "top_5_accuracy": float(totals[1]) / n,
            "num_examples": n, "num_skipped": 0,
            "class_names": names,
            "per_class_accuracy": {
                name: (float(confusion[i, i]) / per_class[i] if per_class[i] else None)
                for i, name in enumerate(names)},
            "per_class_examples": {name: int(per_class[i]) for i, name in enumerate(names)},
            "confusion_matrix": confusion.tolist()}


def class_names(params):
    """One name per logit, from the labels the run records (a dataset's own names, ImageNet's,
    or "class_<i>"; leading logits that are no class, "background")."""
    classes = params.resolved_num_classes()
    try:
        _, record, _ = data_lib.inference_record(params.dataset, params.data_dir,
                                                 **params.data_options())
        table = labels_lib.table(record, classes)
    except data_lib.DataError as e:
        logging.warning("class names unknown (%s): classes are numbered", e)
        return ["class_%d" % i for i in range(classes)]
    return ["background"] * table.offset + table.labels()


def plot_confusion_matrix(metrics, path):
    """Draws metrics' confusion matrix (rows: true class, columns: predicted; each row as a
    fraction of its examples, counts written in the cells up to 30 classes) to a PNG, atomically.
    matplotlib is an optional extra (errors.MissingPackageError without it)."""
    try:
        plt = curves.pyplot()
    except ImportError:
        raise errors.MissingPackageError("--confusion_matrix needs matplotlib: pip install -e "
                                         "'.[plots]'")
    matrix = np.asarray(metrics["confusion_matrix"], np.float64)
    names = metrics["class_names"]
    rows = matrix.sum(axis=1, keepdims=True)
    fraction = matrix / np.maximum(rows, 1)
    n = len(names)
    size = min(4 + 0.35 * n, 30)
    fig, ax = plt.subplots(figsize=(size, size), dpi=100)
    image = ax.imshow(fraction, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    if n <= 60:
        ax.set_xticks(range(n))
        ax.set_yticks(range(n))
        ax.set_xticklabels(names, rotation=90, fontsize=7)
        ax.set_yticklabels(names, fontsize=7)
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if matrix[i, j]:
                    ax.text(j, i, "%d" % matrix[i, j], ha="center", va="center", fontsize=7,
                            color="white" if fraction[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("step %s: top-1 %.4f over %d examples" % (
        metrics.get("global_step"), metrics["top_1_accuracy"], metrics["num_examples"]))
    return curves.save_png(fig, path)


def _restorer(params, ckpt):
    """A strict Restorer of `ckpt` (a `rundir.Checkpoint`); when it does not fit and
    --model_dir records another model, the error leads with the model difference, then
    summarises the variables."""
    checkpoint = ckpt.prefix
    try:
        return restore_lib.Restorer(checkpoint, arrays=ckpt.arrays)
    except checkpoints.CheckpointError as e:
        mismatch = params.model_dir and run_config.model_dir_mismatch(params)
        if not mismatch or getattr(e, "mismatch", None) is None:
            raise
        m = e.mismatch
        raise checkpoints.CheckpointError(
            "%s (checkpoint %s: %d variables missing, %d unexpected, %d mis-shaped)"
            % (mismatch, checkpoint, len(m.missing), len(m.unexpected), len(m.misshaped)))


def write_metrics(metrics, eval_dir):
    """Writes eval_dir/metrics.json (atomically) and TensorBoard scalars."""
    tf.io.gfile.makedirs(eval_dir)
    path = os.path.join(eval_dir, rundir.METRICS_FILE)
    fileio.write_json(path, metrics)
    with tf.Graph().as_default():
        writer = tf1.summary.FileWriterCache.get(eval_dir)
        writer.add_summary(tf1.Summary(value=[
            tf1.Summary.Value(tag="top_1_accuracy", simple_value=metrics["top_1_accuracy"]),
            tf1.Summary.Value(tag="top_5_accuracy", simple_value=metrics["top_5_accuracy"])]),
            metrics["global_step"] or 0)
        writer.flush()
    return path


def watch(params, model_dir, ten_crop=False, timeout=None, max_steps=None, scales=None,
          flip=False):
    """Evaluates each new checkpoint in `model_dir` as training writes it.

    Stops after `timeout` seconds without a new checkpoint, or once `max_steps` is evaluated.
    Yields each metrics dict.
    """
    for checkpoint in tf.train.checkpoints_iterator(model_dir, timeout=timeout):
        metrics = evaluate(params, checkpoint, ten_crop, scales, flip)
        write_metrics(metrics, rundir.eval_dir(model_dir))
        yield metrics
        if max_steps and metrics["global_step"] and metrics["global_step"] >= max_steps:
            return
