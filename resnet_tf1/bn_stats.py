"""Batch-norm population statistics recomputed after training, the way the paper's models were.

MSRA's release notes for the ResNet models: the BN mean and variance "are strictly computed using
average (not moving average) on a sufficiently large training batch after the training
procedure". `recompute()` does that for a checkpoint:

  - It runs training images through the network with the weights frozen and every BN layer
    normalising with its batch statistics, as in training (so each layer sees the inputs it was
    trained on), and never runs an update.
  - The images (`--bn_recompute_input`) are, by default (`train`), the training pipeline
    itself: the training split shuffled and augmented as in training (zero-padded crops and
    flips; ImageNet's scale and colour augmentation), drawn with the fixed seed
    TRAIN_INPUT_SEED. Every layer then sees the inputs it was trained on, as Precise-BN (Wu &
    Johnson 2021) and MSRA's Caffe release compute the statistics from the training data layer.
    `eval` is the training split with the *evaluation* preprocessing (CIFAR-10: the per-pixel
    mean only; ImageNet: shorter side 256, centre 224 crop), one pass shuffled once with the
    same seed: shuffled, because each batch is normalised by its own statistics, and a split
    stored class by class (MNIST-5k, every folder data set) would otherwise give batches of one
    class. Either way the same checkpoint always gives the same statistics. Issue 33 measured
    both (BUILD.md, "BN statistics: the measurement").
  - Per layer it keeps each batch's count, mean and variance and combines them in float64 into
    the population mean and variance: mean = sum(n_b * m_b) / N and
    var = sum(n_b * (v_b + (m_b - mean)^2)) / N, i.e. the mean of the per-batch variances *plus*
    the variance of the per-batch means. A batch's moments are taken in float32 (also for
    bfloat16 compute) of the activations divided by their largest magnitude per channel, and
    scaled back in float64 (`moments`): no finite activation overflows them, where squaring
    activations above 1.8e19 in float32 gives Inf.
  - What it computed is checked before anything is written: every mean and variance finite and
    within float32, every variance >= 0. A checkpoint whose activations are out of that range
    (the run that wrote it diverged) is refused with one line (`BNStatsError`), and the run's
    own checkpoints stay the latest good ones.
  - It writes a new checkpoint in `<model_dir>/bn_recomputed/` with only the BN moving mean and
    variance changed (every other tensor copied bit for bit), atomically: a temporary directory
    renamed into place. The training run's own checkpoints and `checkpoint` index are untouched,
    so training resumes from its own state; `rundir.checkpoint(<model_dir>)` prefers the
    recomputed checkpoint when it is of the latest step, and says so in one log line.
"""

import os
import time

import numpy as np
import tensorflow as tf
from absl import logging

from resnet_tf1 import checkpoints, errors, fileio
from resnet_tf1 import data as data_lib
from resnet_tf1 import restore as restore_lib
from resnet_tf1 import run_config, rundir

tf1 = tf.compat.v1


class BNStatsError(errors.UserError):
    """Recomputed statistics that cannot be written (non-finite, beyond float32, or a negative
    variance); nothing was written."""


# The input stream's seed of a recompute (the augmentation draws and the order with
# --bn_recompute_input=train, the order of the one pass with =eval): fixed, so that one
# checkpoint always gives the same statistics.
TRAIN_INPUT_SEED = 1512


def _training_images(params, batch_size, skips=None):
    """The images the statistics are computed over: (`bn_recompute_input="train"`) the training
    pipeline, augmentation included, shuffled and augmented with TRAIN_INPUT_SEED, or the
    training split with the evaluation preprocessing, one pass shuffled once with it."""
    train = params.bn_recompute_input == "train"
    ds, _ = data_lib.make_dataset(params.dataset, params.data_dir, "train", batch_size,
                                  training=train, skips=skips, seed=TRAIN_INPUT_SEED,
                                  shuffled=not train, **params.data_options())
    with tf.device("/cpu:0"):
        return tf1.data.make_one_shot_iterator(ds).get_next()


def moments(x, axes):
    """A batch's per-channel (mean, variance, scale) of `x` (float32) over `axes`, overflow-free:
    the biased moments of x / scale, scale being the largest |x| of each channel (1 for an
    all-zero channel). The moments of x itself are mean * scale and variance * scale^2, taken in
    float64 (`population`); every term here is at most 1 in magnitude, so a finite `x` never
    overflows them.
    """
    scale = tf.reduce_max(tf.abs(x), axes, keepdims=True)
    scale = tf.where(scale > 0, scale, tf.ones_like(scale))
    mean, variance = tf.nn.moments(x / scale, axes)
    return mean, variance, tf.reshape(scale, [-1])


def batch_moments_graph(params, images):
    """Builds the model in batch-statistics mode on `images`: the BN layers that trained
    (under --trainable_scopes, when set; the others keep their loaded statistics and run in
    inference mode, as in training).

    Returns:
        A list of (BNLayer, (mean [C], variance [C], scale [C]) of `moments`, count) in layer
        order, for the layers that trained; the moments are biased (population) moments of the
        layer's input over the batch.
    """
    model = run_config.build_model(params)
    model(images, is_training=True, bn_training_scopes=params.trainable_scopes or None)
    layers = [layer for layer in model.bn_layers if model.bn_trains(layer.scope)]
    out = []
    for layer in layers:
        x = tf.cast(layer.inputs, tf.float32)
        axes = [0, 1, 2] if model.data_format == "NHWC" else [0, 2, 3]
        count = tf.cast(tf.reduce_prod(tf.gather(tf.shape(x), axes)), tf.float64)
        out.append((layer, moments(x, axes), count))
    return out


def combine(counts, means, variances):
    """Population mean and variance (float64) from per-batch counts [B], means [B, C],
    variances [B, C]."""
    counts = np.asarray(counts, np.float64)[:, None]
    means = np.asarray(means, np.float64)
    variances = np.asarray(variances, np.float64)
    total = counts.sum()
    mean = (counts * means).sum(0) / total
    variance = (counts * (variances + np.square(means - mean))).sum(0) / total
    return mean, variance


def population(counts, batch_moments):
    """Population mean and variance (float64) from per-batch counts [B] and `moments` results
    [(mean [C], variance [C], scale [C])] * B."""
    means, variances, scales = (np.asarray(a, np.float64) for a in zip(*batch_moments))
    return combine(counts, means * scales, variances * np.square(scales))


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def check(stats, source):
    """BNStatsError naming the first layer whose recomputed statistics (`stats`: {moving-statistic
    name: float64 array}) are not finite, exceed float32, or (a variance) are negative."""
    for name, value in stats.items():
        value = np.asarray(value, np.float64)
        problems = [("not finite", ~np.isfinite(value)),
                    ("beyond float32's range (|x| <= %.3g)" % _FLOAT32_MAX,
                     np.isfinite(value) & (np.abs(value) > _FLOAT32_MAX)),
                    ("negative", name.endswith("moving_variance") & (value < 0))]
        for problem, bad in problems:
            if bad.any():
                raise BNStatsError(
                    "BN statistics of %s not written: %s is %s in %d of %d channel(s): its "
                    "activations overflow (the run that wrote it diverged); the checkpoint is "
                    "unchanged" % (source, name, problem, int(bad.sum()), value.size))


def compute(params, checkpoint, num_batches, batch_size=None, skips=None):
    """{moving-statistic variable name: float64 array} recomputed over `num_batches` batches.

    `checkpoint` is a prefix, or a `rundir.Checkpoint` (restored from its arrays, not read
    again). `skips` (a `data.SkippedRecords`) counts the training records the pipeline skips.

    Returns:
        (statistics dict, number of images used).
    """
    batch_size = batch_size or params.batch_size
    prefix, arrays = ((checkpoint.prefix, checkpoint.arrays)
                      if isinstance(checkpoint, rundir.Checkpoint) else (checkpoint, None))
    graph = tf.Graph()
    with graph.as_default():
        images, _ = _training_images(params, batch_size, skips)
        layers = batch_moments_graph(params, images)
        if not layers:  # --trainable_scopes holds no BN layer: nothing trained, nothing to do
            return {}, 0
        restorer = restore_lib.Restorer(prefix, arrays=arrays)
        fetches = [(m, c) for _, m, c in layers]
        batch_images = tf.shape(images)[0]
        per_layer = [([], []) for _ in layers]
        seen = num_images = 0
        with tf1.Session(config=run_config.session_config()) as sess:
            sess.run(tf1.global_variables_initializer())
            restorer.restore(sess)
            start = time.time()
            for _ in range(num_batches):
                try:
                    values, n = sess.run([fetches, batch_images])
                except tf.errors.OutOfRangeError:
                    break
                num_images += n
                for (counts, batch_moments), (m, c) in zip(per_layer, values):
                    counts.append(c)
                    batch_moments.append(m)
                seen += 1
                if seen % 10 == 0 and seen < num_batches:
                    elapsed = time.time() - start
                    logging.info("BN statistics: batch %d/%d  %.1f images/sec  ETA %ds", seen,
                                 num_batches, seen * batch_size / elapsed,
                                 elapsed / seen * (num_batches - seen))
    if not seen:
        raise data_lib.DataError("the training set of --dataset=%s in %s is empty: no batch to "
                                 "recompute BN statistics from" % (params.dataset,
                                                                   params.data_dir))
    stats = {}
    for (layer, _, _), (counts, batch_moments) in zip(layers, per_layer):
        mean, variance = population(counts, batch_moments)
        stats[layer.moving_mean.op.name] = mean
        stats[layer.moving_variance.op.name] = variance
    return stats, num_images


def write(checkpoint, stats, output_dir, info):
    """Copies `checkpoint` (a path, or a `rundir.Checkpoint` already read) into
    `output_dir/<its basename>` with `stats` replacing the BN moving statistics (cast to the
    checkpoint's dtype), atomically (a temporary directory renamed onto `output_dir`), once
    `check` finds them finite and in range (else BNStatsError, and nothing is written)."""
    if isinstance(checkpoint, rundir.Checkpoint):
        prefix, arrays = checkpoint.prefix, checkpoint.arrays
    else:
        prefix = checkpoints.require(checkpoint)
        arrays = checkpoints.read_arrays(prefix)
    missing = sorted(set(stats) - set(arrays))
    if missing:
        raise checkpoints.CheckpointError("checkpoint %s has no BN statistics %s"
                                          % (prefix, checkpoints.listing(missing)))
    check(stats, prefix)
    with fileio.atomic_dir(output_dir, "BN recompute") as tmp:
        with tf.Graph().as_default():
            variables = {}
            for name, value in arrays.items():
                if name in stats:
                    value = np.asarray(stats[name]).astype(value.dtype)
                variables[name] = tf1.Variable(value, name="v%d" % len(variables),
                                               trainable=False)
            saver = tf1.train.Saver(var_list=variables, save_relative_paths=True)
            with tf1.Session() as sess:
                sess.run(tf1.global_variables_initializer())
                saver.save(sess, os.path.join(tmp, os.path.basename(prefix)),
                           write_meta_graph=False)
        fileio.write_json(os.path.join(tmp, "bn_stats.json"), info)
    return os.path.join(output_dir, os.path.basename(prefix))


def recompute(params, checkpoint=None, num_batches=80, batch_size=None):
    """Recomputes the BN statistics of `checkpoint` (default: the latest training checkpoint in
    `params.model_dir`) and writes `<model_dir>/bn_recomputed/`, holding the run directory's
    `rundir.WriterLock` (re-entrant: train.py's recompute runs under its own). The checkpoint is
    read once and checked finite (`rundir.checkpoint`), as every loader does.

    Returns:
        dict(checkpoint, source, num_images, num_batches, seconds); None when no BN layer
        trained (--trainable_scopes outside every BN layer): nothing to recompute.

    Raises:
        checkpoints.CheckpointError: no checkpoint, unreadable, or holding NaN / Inf.
        BNStatsError: the statistics overflow (see `check`); nothing written.
        rundir.ModelDirError: another process writes the run directory.
    """
    with rundir.WriterLock(params.model_dir) as lock:
        return _recompute(params, checkpoint, num_batches, batch_size, lock)


def _recompute(params, checkpoint, num_batches, batch_size, lock):
    source = rundir.checkpoint(
        checkpoints.require(checkpoint or checkpoints.latest_training(params.model_dir)),
        "checkpoint")
    start = time.time()
    skips = data_lib.SkippedRecords()
    stats, num_images = compute(params, source, num_batches, batch_size, skips)
    if not stats:
        logging.info("no BN layer trained (--trainable_scopes=%s): BN statistics not recomputed",
                     ",".join(params.trainable_scopes))
        return None
    seconds = time.time() - start
    info = {"source": source.prefix, "num_images": int(num_images), "num_skipped": skips.total,
            "num_layers": len(stats) // 2,
            "num_batches": num_batches,
            "batch_size": batch_size or params.batch_size, "seconds": round(seconds, 2),
            "input": params.bn_recompute_input,
            "seed": TRAIN_INPUT_SEED,
            "preprocessing": ("training split, training augmentation (seed %d)" % TRAIN_INPUT_SEED
                              if params.bn_recompute_input == "train" else
                              "training split, evaluation preprocessing, one pass shuffled "
                              "(seed %d)" % TRAIN_INPUT_SEED)}
    output_dir = os.path.join(params.model_dir, rundir.BN_RECOMPUTED_SUBDIR)
    info["checkpoint"] = os.path.join(output_dir, os.path.basename(source.prefix))
    os.makedirs(params.model_dir, exist_ok=True)
    lock.acquire()  # a model_dir this created (--checkpoint_path elsewhere)
    write(source, stats, output_dir, info)
    logging.info("recomputed the BN statistics of %s over %d training images in %.1f s "
                 "(%.1f s per 10k images): %s", source.prefix, num_images, seconds,
                 seconds * 1e4 / max(num_images, 1), info["checkpoint"])
    return info
