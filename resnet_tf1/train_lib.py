"""Training: loss, weight decay, schedule, optimizer, towers, hooks, Saver and session config.

Runs without absl flags: it takes a plain `run_config.RunParams`. Session-based
(`MonitoredTrainingSession`): periodic checkpoints, automatic resume from the latest checkpoint
in `model_dir`, TensorBoard summaries, a NaN guard, and progress lines with step, loss,
images/sec and ETA. A cluster's sessions are `cluster.Job`'s.
"""

import contextlib
import io
import os
import sys
import time

import numpy as np
import tensorflow as tf
from absl import logging

from resnet_tf1 import bn_stats, checkpoints, cluster as cluster_lib, errors, fileio
from resnet_tf1 import data as data_lib
from resnet_tf1 import metrics as metrics_lib
from resnet_tf1 import model as model_lib
from resnet_tf1 import restore as restore_lib
from resnet_tf1 import run_config, rundir

tf1 = tf.compat.v1


class TrainError(errors.UserError):
    """Training stopped; the message is one line and names the last good checkpoint."""


class NanLossError(TrainError):
    """Training produced a non-finite loss; nothing from that step was saved."""


class DivergedError(TrainError):
    """Variables (weights, optimizer slots, BN statistics) became NaN or Inf; not saved."""


# What an interrupted run leaves in model_dir: TF's checkpoint data temporaries
# ("<prefix>.data-*.tempstate<n>"), its atomic-write temporaries ("checkpoint.tmp<32 hex>",
# "model.ckpt-N.meta.tmp<32 hex>", "graph.pbtxt.tmp<hex>") and this package's ("<file>.tmp-<pid>").
# Torn checkpoints (`checkpoints.torn`) and an interrupted BN recompute (`fileio.recover_dir`) are
# found by their structure.
LEFTOVERS = ("*.tempstate*", "*.tmp" + "[0-9a-f]" * 32, "graph.pbtxt.tmp*",
             fileio.TEMP_FILE_PATTERN)


def learning_rate_schedule(params, global_step):
    """The learning rate at `global_step`: --lr_schedule, after the --warmup_steps warm-up.

    piecewise: `lr_values` (len(lr_boundaries) + 1 values) when given, else learning_rate divided
    by 10 at each boundary (the paper). cosine: learning_rate * (1 + cos(pi * t)) / 2, t going
    from 0 at the end of the warm-up to 1 at max_steps (Loshchilov & Hutter's SGDR without
    restarts). Warm-up (`params.warmup_shape()`): constant, a tenth of the first rate (the
    paper's ResNet-110: 0.01 for the first 400 iterations, then back to 0.1); linear, the first
    rate * (step + 1) / warmup_steps (Goyal et al. 2017).
    """
    values = list(params.lr_values) or [params.learning_rate * 0.1 ** i
                                        for i in range(len(params.lr_boundaries) + 1)]
    if params.lr_schedule == "cosine":
        values = [params.learning_rate]
        warm = float(params.warmup_steps)
        t = (tf.cast(global_step, tf.float32) - warm) / (float(params.max_steps) - warm)
        t = tf.clip_by_value(t, 0.0, 1.0)
        lr = 0.5 * float(values[0]) * (1.0 + tf.cos(np.pi * t))
    elif params.lr_boundaries:
        lr = tf1.train.piecewise_constant(global_step, [int(b) for b in params.lr_boundaries],
                                          [float(v) for v in values])
    else:
        lr = tf.constant(float(values[0]))
    if params.warmup_steps:
        if params.warmup_shape() == "linear":
            ramp = (tf.cast(global_step, tf.float32) + 1.0) / float(params.warmup_steps)
            warmup = float(values[0]) * ramp
        else:
            warmup = 0.1 * values[0]
        lr = tf1.where(global_step < params.warmup_steps, warmup, lr)
    return lr


def _variables_on(variable_device, compute_device):
    """Device function: variables on `variable_device`, everything else on `compute_device`."""
    variable_ops = {"Variable", "VariableV2", "VarHandleOp"}

    def fn(op):
        return variable_device if op.type in variable_ops else compute_device
    return fn


def _local_gpus(params):
    """How many GPUs this process trains on (0: the CPU)."""
    return sum("gpu" in d.lower() for d in run_config.tower_devices(params))


def _model_and_optimizer(params, global_step, job):
    """What every form of the training step shares: (model, its root scope, the learning rate,
    the optimizer)."""
    model = run_config.build_model(params)
    scope = model.resolve(params.resolved_image_size())["scope"]
    lr = learning_rate_schedule(params, global_step)
    return model, scope, lr, _optimizer(params, lr, job)


def _in_scopes(name, scopes):
    return any(name == s.rstrip("/") or name.startswith(s.rstrip("/") + "/") for s in scopes)


def trained_variables(params, scope):
    """The variables a run trains: the model's trainable variables, under --trainable_scopes
    when set (errors.FlagError naming a scope that holds none, with the model's scopes)."""
    variables = tf1.trainable_variables(scope + "/")
    if not params.trainable_scopes:
        return variables
    names = [v.op.name for v in variables]
    for s in params.trainable_scopes:
        if not any(_in_scopes(n, [s]) for n in names):
            tops = sorted({"/".join(n.split("/")[:2]) for n in names})
            raise errors.FlagError("--trainable_scopes: %s holds no trainable variable of the "
                                   "model (its scopes: %s)" % (s, ", ".join(tops)))
    return [v for v in variables if _in_scopes(v.op.name, params.trainable_scopes)]


def _tower_gradients(params, model, scope, optimizer, images, labels, divisor=1, reuse=None):
    """One tower's (or replica's) forward pass, loss and gradients: (logits, loss,
    cross_entropy, weight_decay, [(gradient, variable)]); the gradients are those of loss /
    `divisor`, weight decay's included, for the variables the run trains."""
    logits, loss, xent, wd = _tower_loss(params, model, scope, images, labels, reuse)
    grads = optimizer.compute_gradients(loss / divisor if divisor != 1 else loss,
                                        var_list=trained_variables(params, scope))
    return logits, loss, xent, wd, _add_weight_decay(grads, params, scope, 1.0 / divisor)


def _tower_loss(params, model, scope, images, labels, reuse=None):
    """One tower's (or replica's) forward pass and loss: (logits, loss, cross_entropy,
    weight_decay), the loss being cross-entropy (against labels smoothed by
    --label_smoothing) + weight decay (of the trained weights) behind the NaN guard."""
    logits, _ = model(images, is_training=True, reuse=reuse,
                      bn_training_scopes=params.trainable_scopes or None)
    if params.label_smoothing:
        classes = logits.shape[-1]
        targets = (tf.one_hot(labels, classes) * (1.0 - params.label_smoothing) +
                   params.label_smoothing / float(classes))
        xent = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=targets,
                                                                      logits=logits))
    else:
        xent = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels,
                                                                             logits=logits))
    if params.trainable_scopes:
        wd = tf.add_n([model_lib.weight_decay_loss(params.weight_decay, scope=s.rstrip("/") + "/")
                       for s in params.trainable_scopes])
    else:
        wd = model_lib.weight_decay_loss(params.weight_decay, scope=scope + "/")
    # The NaN guard: no gradient (and so no update) is computed from a non-finite loss. The loss
    # is cross-entropy + weight decay, but its gradient is taken through the cross-entropy alone;
    # `_add_weight_decay` adds the weight decay's own (weight_decay * w) to each variable's.
    loss = tf.debugging.check_numerics(xent + tf.stop_gradient(wd), "non-finite training loss")
    return logits, loss, xent, wd


def _add_weight_decay(grads_and_vars, params, scope, scale=1.0):
    """Adds d(weight decay)/dw = weight_decay * w to the gradient of each decayed variable
    (conv kernels and FC weights), scaled by `scale`, once that gradient is computed.

    Taken through the loss, those terms depend only on the weights and a scalar, so the executor
    computes all of them (25.5M floats for ResNet-50, ~100 MB) as soon as the backward pass
    starts, and holds them through its memory peak until each variable's own gradient arrives.
    Gated on that gradient, each lives only for its addition.
    """
    decayed = {v.name for v in tf1.get_collection(model_lib.WEIGHT_DECAY_COLLECTION, scope + "/")}
    if not params.weight_decay or not decayed:
        return grads_and_vars
    out = []
    for g, v in grads_and_vars:
        if g is not None and v.name in decayed:
            with tf.control_dependencies([g]):
                g = g + tf.cast(v, g.dtype) * (params.weight_decay * scale)
        out.append((g, v))
    return out


def build_train_op(params, images, labels, global_step, job=None):
    """Towers with shared variables and averaged gradients (the classic TF1 multi-GPU pattern).

    The batch is split evenly across towers; BN moving averages are updated from the first
    tower. Each tower's loss is cross-entropy + weight decay, so the averaged gradient holds the
    weight decay once. With `job` (a `cluster.Job`: a worker of a cluster), the variables live on
    the parameter servers and the optimizer is the job's (synchronous or not); build it under
    `job.device_setter()`.

    Returns:
        (train_op, metrics) with metrics a dict of scalar tensors: loss, cross_entropy,
        weight_decay, top_1, learning_rate.
    """
    if job is not None and job.strategy is not None:
        return _build_collective_train_op(params, images, labels, global_step, job)
    devices = run_config.tower_devices(params)
    if params.batch_size % len(devices):
        raise errors.FlagError("--batch_size=%d does not split evenly across %d towers"
                               % (params.batch_size, len(devices)))
    model, scope, lr, optimizer = _model_and_optimizer(params, global_step, job)
    image_splits = tf.split(images, len(devices))
    label_splits = tf.split(labels, len(devices))
    # Several towers share variables on the CPU; a worker's go to the parameter servers (the
    # outer device setter), on their CPU.
    variable_device = "/cpu:0" if len(devices) > 1 or job is not None else None
    tower_grads, losses, xents, wds, correct = [], [], [], [], []
    for i, device in enumerate(devices):
        placement = _variables_on(variable_device, device) if variable_device else device
        with tf1.device(placement), tf1.name_scope("tower_%d" % i) as name_scope:
            logits, loss, xent, wd, grads = _tower_gradients(
                params, model, scope, optimizer, image_splits[i], label_splits[i],
                reuse=True if i else None)
            if i == 0:
                update_ops = tf1.get_collection(tf1.GraphKeys.UPDATE_OPS, name_scope)
            tower_grads.append(grads)
            losses.append(loss)
            xents.append(xent)
            wds.append(wd)
            correct.append(tf.cast(metrics_lib.in_top_k(logits, label_splits[i], 1), tf.float32))
    # The gradients are gated on the loss check and the BN updates, not the apply op: a
    # synchronous optimizer builds its chief's aggregate-and-apply op inside apply_gradients,
    # and that op must not depend on (and so re-run) a worker's forward pass.
    with tf.control_dependencies(update_ops + losses):
        grads = [(None if g is None else tf.identity(g), v)
                 for g, v in _average_gradients(tower_grads)]
    train_op = optimizer.apply_gradients(grads, global_step=global_step)
    metrics = {"loss": tf.add_n(losses) / len(losses),
               "cross_entropy": tf.add_n(xents) / len(xents),
               "weight_decay": wds[0],
               "top_1": tf.reduce_mean(tf.concat(correct, 0)),
               "learning_rate": lr}
    return train_op, metrics


def _optimizer(params, lr, job=None):
    if params.optimizer == "momentum":
        optimizer = tf1.train.MomentumOptimizer(lr, params.momentum)
    elif params.optimizer == "adam":
        optimizer = tf1.train.AdamOptimizer(lr)
    else:
        raise errors.FlagError("unknown optimizer %r: expected momentum or adam" % params.optimizer)
    optimizer = _loss_scaled(optimizer, params)
    if job is not None:
        optimizer = job.wrap_optimizer(optimizer)
    return optimizer


def _build_collective_train_op(params, images, labels, global_step, job):
    """build_train_op for collective all-reduce (inside `job.scope()`): the strategy's replicas
    are the towers (one per local GPU, else one on the CPU; every worker's count the same), each
    builds the model on its share of this worker's batch, and the optimizer's apply sums the
    replicas' gradients across workers with TensorFlow's collective all-reduce.

    The TF1 optimizer sums (it scales a loss only under Estimator), so each replica's loss is
    divided by the number of replicas in sync: the update is the mean gradient over the global
    batch, as with towers and with parameter servers. The metrics are this worker's own (the
    mean over its replicas): fetching them never waits on another worker.
    """
    strategy = job.strategy
    replicas = strategy.num_replicas_in_sync
    local = replicas // job.num_workers
    if params.batch_size % local:
        raise errors.FlagError("--batch_size=%d does not split evenly across %d replicas per worker"
                               % (params.batch_size, local))
    model, scope, lr, optimizer = _model_and_optimizer(params, global_step, job)
    image_splits, label_splits = tf.split(images, local), tf.split(labels, local)

    def replica_step():
        # This worker's replicas are consecutive in the sync group: its share of the batch.
        replica = tf.get_static_value(tf.distribute.get_replica_context().replica_id_in_sync_group)
        replica_images = image_splits[replica % local]
        replica_labels = label_splits[replica % local]
        with tf1.name_scope("tower") as name_scope:
            logits, loss, xent, wd, grads = _tower_gradients(
                params, model, scope, optimizer, replica_images, replica_labels,
                divisor=replicas)
            update_ops = tf1.get_collection(tf1.GraphKeys.UPDATE_OPS, name_scope)
        with tf.control_dependencies(update_ops + [loss]):
            grads = [(None if g is None else tf.identity(g), v) for g, v in grads]
        train_op = optimizer.apply_gradients(grads, global_step=global_step)
        correct = tf.cast(metrics_lib.in_top_k(logits, replica_labels, 1), tf.float32)
        return train_op, {"loss": loss, "cross_entropy": xent, "weight_decay": wd,
                          "top_1": tf.reduce_mean(correct)}

    train_op, per_replica = strategy.extended.call_for_each_replica(replica_step)
    metrics = {name: tf.add_n(list(strategy.experimental_local_results(value))) / local
               for name, value in per_replica.items()}
    metrics["learning_rate"] = lr
    return strategy.group(train_op), metrics


def loss_scale(params):
    """The loss scale of a run: None (no scaling: float32, bfloat16, or --loss_scale=none),
    "dynamic", or a static number."""
    if params.dtype != "float16" or params.loss_scale == "none":
        return None
    return "dynamic" if params.loss_scale == "dynamic" else float(params.loss_scale)


def _loss_scaled(optimizer, params):
    """float16 training the TF1 way (TF's MixedPrecisionLossScaleOptimizer): each tower's loss is
    multiplied by the scale before its gradients are taken and the gradients divided after, so
    small float16 gradients do not flush to zero. With a dynamic scale a step whose gradients
    hold Inf or NaN is not applied (no weight, slot or step change), the scale halves, and it
    doubles after 2000 good steps; its variables (`current_loss_scale`, `good_steps`) are
    training state, checkpointed with the run."""
    scale = loss_scale(params)
    if scale is None:
        return optimizer
    if scale == "dynamic":
        scale = tf1.mixed_precision.DynamicLossScale(initial_loss_scale=2.0 ** 15,
                                                     increment_period=2000, multiplier=2.0)
    return tf1.mixed_precision.MixedPrecisionLossScaleOptimizer(optimizer, scale)


def _average_gradients(tower_grads):
    if len(tower_grads) == 1:
        return tower_grads[0]
    averaged = []
    for grads_and_vars in zip(*tower_grads):
        grads = [g for g, _ in grads_and_vars]
        averaged.append((tf.add_n(grads) / len(grads), grads_and_vars[0][1]))
    return averaged


class ProgressHook(tf1.train.SessionRunHook):
    """Logs step, loss, top-1, learning rate, images/sec, ETA and (when any) the number of
    records the input pipeline skipped; writes images/sec and num_skipped summaries.

    The metrics are fetched only on logging steps; other steps fetch the global step alone.
    """

    def __init__(self, metrics, batch_size, max_steps, every_n_steps, model_dir,
                 finite_state=None, skips=None):
        self._metrics = metrics
        self._finite = finite_state
        self._skips = skips
        self._batch_size = batch_size
        self._max_steps = max_steps
        self._every = max(1, every_n_steps)
        self._model_dir = model_dir
        self._last = None
        self._step = None
        self._runs = 0

    def begin(self):
        self._step_tensor = tf1.train.get_global_step()

    def _logging_step(self, step):
        return step % self._every == 0 or step >= self._max_steps

    def before_run(self, run_context):
        fetches = {"step": self._step_tensor}
        if self._step is not None and (self._logging_step(self._step + 1) or
                                       self._runs + 1 - self._last[2] >= self._every):
            fetches.update(self._metrics)
            if self._finite is not None:
                fetches["finite"] = self._finite.flags
        return tf1.train.SessionRunArgs(fetches)

    def after_run(self, run_context, run_values):
        v = run_values.results
        # The global step this run made (in a cluster, other workers move it too: the step is
        # global, images/sec are this process's own).
        step = self._step = int(v["step"]) + 1
        self._runs += 1
        now = time.time()
        if self._last is None:
            self._last = (step, now, self._runs)
            return
        if "loss" not in v:
            return
        if "finite" in v:
            self._finite.check(v["finite"], step)
        last_step, last_time, last_runs = self._last
        elapsed = max(now - last_time, 1e-9)
        rate = (self._runs - last_runs) * self._batch_size / elapsed
        eta = (self._max_steps - step) * elapsed / max(step - last_step, 1)
        skipped = self._skips.total if self._skips is not None else 0
        logging.info("step %d/%d  loss %.4f  top-1 %.3f  lr %.4g  %.1f images/sec  ETA %s%s",
                     step, self._max_steps, v["loss"], v["top_1"], v["learning_rate"], rate,
                     _hms(eta), "  num_skipped %d" % skipped if skipped else "")
        self._last = (step, now, self._runs)
        if not self._model_dir:  # a worker that is not the chief writes no summaries
            return
        writer = tf1.summary.FileWriterCache.get(self._model_dir)
        writer.add_summary(tf1.Summary(value=[
            tf1.Summary.Value(tag="images_per_sec", simple_value=rate),
            tf1.Summary.Value(tag="num_skipped", simple_value=skipped)]), step)


class FiniteState:
    """Whether every float variable (weights, optimizer slots, BN statistics) is finite.

    A training step with a finite loss can still write Inf into a weight or a BN variance (a
    learning rate that overflows); the loss guard alone does not see it. This is checked on every
    logging step and before every checkpoint is saved, so no checkpoint ever holds NaN or Inf.
    """

    def __init__(self, model_dir):
        self.model_dir = model_dir
        self.variables = [v for v in tf1.global_variables() if v.dtype.base_dtype.is_floating]
        self.flags = tf.stack([tf.reduce_all(tf.math.is_finite(v)) for v in self.variables])

    def check(self, flags, step):
        if flags.all():
            return
        bad = [v.op.name for v, ok in zip(self.variables, flags) if not ok]
        good = checkpoints.last_finite(self.model_dir)
        raise DivergedError(
            "training diverged by step %d: %d variable(s) hold NaN or Inf (%s); stopped without "
            "saving. Last good checkpoint: %s" % (step, len(bad), checkpoints.listing(bad, 3),
                                                  good or "none"))


class _FiniteBeforeSave(tf1.train.CheckpointSaverListener):
    """Checks every variable before each save."""

    def __init__(self, state):
        self._state = state

    def before_save(self, session, global_step_value):
        self._state.check(session.run(self._state.flags), global_step_value)


def _hms(seconds):
    seconds = int(seconds)
    return "%dh%02dm%02ds" % (seconds // 3600, seconds % 3600 // 60, seconds % 60)


def input_seed(seed, task_index=0, resume_step=0):
    """The seed of a run's input stream (shuffle order and augmentation draws) from --seed.

    Worker k of a cluster draws its own stream (seed + 1000 k). A run resumed at step n > 0
    draws a stream of its own too, a function of (seed, k, n): the input iterator is not
    checkpointed, so with the fresh run's seed every resumption would replay the same first
    images, and a run preempted more often than once an epoch would only ever see those.
    """
    seed += 1000 * task_index
    if resume_step:
        seed = (seed * 1000003 + resume_step) % (2 ** 31 - 1)
    return seed


def _checkpoint_step(path):
    """The global step of checkpoint `path` (0 for None, or where it has none: restoring it
    reports that)."""
    if not path:
        return 0
    try:
        return int(tf.train.load_variable(path, "global_step"))
    except (tf.errors.NotFoundError, ValueError):
        return 0


def _check_resume(params):
    """Checks model_dir for the run (read-only: a run refused here changes nothing): no run of
    another model in it, a readable, finite latest checkpoint. Returns that checkpoint or None.
    Raises errors.FlagError / CheckpointError with one line."""
    run_config.check_model_dir(params)
    latest = tf.train.latest_checkpoint(params.model_dir)
    if latest:
        rundir.checkpoint(latest, "the latest checkpoint of --model_dir:")
    return latest


def _prepare_model_dir(params, lock):
    """Creates model_dir (if new) and takes its lock, then finishes or removes what an
    interrupted run left: TF's and this package's temporaries, torn checkpoints, an
    interrupted BN recompute. Only called once everything the run can be refused for has been
    checked."""
    try:
        tf.io.gfile.makedirs(params.model_dir)
        lock.acquire()
        fileio.write_bytes(os.path.join(params.model_dir, ".write_test"), b"")
        tf.io.gfile.remove(os.path.join(params.model_dir, ".write_test"))
    except (OSError, tf.errors.OpError) as e:
        raise TrainError("--model_dir=%s is not a writable directory: %s"
                         % (params.model_dir, fileio.error_line(e)))
    fileio.recover_dir(os.path.join(params.model_dir, rundir.BN_RECOMPUTED_SUBDIR),
                       "BN recompute")
    torn = checkpoints.torn(params.model_dir)
    for name in torn:
        os.remove(os.path.join(params.model_dir, name))
    removed = sorted(fileio.remove_leftovers(params.model_dir, LEFTOVERS) + torn)
    if removed:
        logging.info("removed %d leftover(s) of an interrupted run from %s: %s", len(removed),
                     params.model_dir, ", ".join(removed))


def _model_record(params):
    """What `_write_start` records (read from the data set, so refused before any write):
    (model kwargs, preprocessing, labels, {file name: bytes})."""
    preprocessing, labels, arrays = data_lib.inference_record(
        params.dataset, params.data_dir, **params.data_options())
    files = {}
    for name, array in arrays.items():
        buffer = io.BytesIO()
        np.save(buffer, array)
        files[name] = buffer.getvalue()
    return run_config.model_kwargs(params), preprocessing, labels, files


def _write_start(params, flags_text, record):
    """The chief's first writes, once the run is accepted: flags.txt and the run's record
    (`rundir`: the model, the preprocessing and labels that predict and export use; CIFAR-10 the
    per-pixel mean image beside it)."""
    if flags_text is not None:
        fileio.write_text(rundir.flags_path(params.model_dir), flags_text)
    rundir.write_run_record(params.model_dir, *record)


def _session(params, scaffold, hooks, job, server):
    """The training session: MonitoredTrainingSession alone; in a cluster, the job's."""
    if job is None:
        return tf1.train.MonitoredTrainingSession(
            checkpoint_dir=params.model_dir, scaffold=scaffold, hooks=hooks,
            save_checkpoint_steps=None, save_checkpoint_secs=None,
            save_summaries_steps=params.log_every_n_steps, log_step_count_steps=None,
            config=run_config.session_config())
    return job.session(server, scaffold, hooks, params.model_dir, params.log_every_n_steps,
                       run_config.session_config())


@contextlib.contextmanager
def _closing(sess, job):
    """`with sess:` (after an error the session closes without running the hooks' `end`, so
    nothing is saved); in a cluster, the job's bounded close (`cluster.Job.closing`)."""
    if job is not None:
        with job.closing(sess):
            yield sess
        return
    try:
        yield sess
    except BaseException:
        if sess.__exit__(*sys.exc_info()):
            return  # MonitoredSession swallows OutOfRangeError, as `with` would
        raise
    sess.__exit__(None, None, None)


def train(params, flags_text=None, job=None):
    """Trains until `params.max_steps`, resuming from `model_dir` when it holds a checkpoint.

    The chief holds the run directory's `rundir.WriterLock` throughout (a second writer is
    refused in one line naming the holder), and writes nothing until everything the run can be
    refused for is checked: a refused run leaves model_dir byte-identical (or absent, if new).
    `flags_text` (a flagfile reproducing the run) is then written to `<model_dir>/flags.txt`.
    Then, unless `params.recompute_bn_batches` is 0, recomputes the BN statistics of the final
    checkpoint over that many training batches into `<model_dir>/bn_recomputed/` (the paper's
    post-training statistics; see `bn_stats`).

    `job` (a `cluster.Job`) makes this process one worker of a cluster (see `cluster`): worker 0,
    the chief, does everything above; the others only train (no files written). With parameter
    servers every worker tells them when it leaves; with collective all-reduce every worker
    initialises (from the chief's broadcast) or restores its own copy of the variables.

    Returns:
        The final global step (None for a worker that is not the chief: it writes no checkpoint).

    Raises:
        ValueError: a flag out of range, or a model_dir that holds a run of another model (then
            nothing in it is changed); cluster.ClusterError for a cluster that cannot start.
        NanLossError, DivergedError: a non-finite loss or variable; nothing from that step on
            was saved, and the message names the last good checkpoint.
        TrainError: a model_dir that cannot be written, or TensorFlow failed (e.g. a full disk
            while saving, a parameter server that stopped answering), in one line.
        checkpoints.CheckpointError: the latest checkpoint or `init_checkpoint` is unreadable,
            non-finite or does not fit the graph.
        data.DataError: the dataset is missing or unusable.
    """
    params.validate()
    chief = job is None or job.is_chief
    with rundir.WriterLock(params.model_dir) if chief else contextlib.nullcontext() as lock:
        if chief:
            lock.acquire()  # an existing directory: before anything in it is read
        return _train(params, flags_text, job, lock)


def _train(params, flags_text, job, lock):
    """`train`, for the chief under the run directory's `rundir.WriterLock` (`lock`). Nothing
    is written until the graph is built: everything a run can be refused for (flags, model_dir,
    checkpoints, data) is checked first, and a refused run leaves model_dir as it was."""
    chief = job is None or job.is_chief
    resumed = _check_resume(params) if chief else _worker_resume(params, job)
    graph = tf.Graph()
    server = None
    if job is not None:
        with graph.as_default():
            job.build_strategy(_local_gpus(params))
        logging.info("cluster: %s", job.describe(params.batch_size))
        server = cluster_lib.start_server(job.config, job.variable_update, job.server_config())
    with graph.as_default(), (job.scope() if job else contextlib.nullcontext()):
        step = _TrainingGraph(params, job, resumed)
        if chief:
            record = _model_record(params)
            _prepare_model_dir(params, lock)
            _write_start(params, flags_text, record)
        try:
            with _closing(_session(params, step.scaffold, step.hooks, job, server), job) as sess:
                if resumed or job is not None:
                    logging.info("%s step %d in %s", "resumed from" if resumed else "starting at",
                                 sess.run(step.global_step), params.model_dir)
                while not sess.should_stop():
                    sess.run(step.train_op)
                for op, message in step.last_runs:
                    sess.run_step_fn(_running(op))
                    if message:
                        logging.info(message)
        except tf.errors.OpError as e:
            raise _train_error(e, params, job)
    if job is not None and chief and not job.collective:
        logging.info("%s: left the training session", cluster_lib.task_name(job.config))
        cluster_lib.signal_done(job.config, server, timeout_secs=job.timeout_secs)
    skips = step.skips
    if skips.total:
        logging.warning("the input pipeline skipped %d records in %d file%s (logged by file "
                        "above)", skips.total, len(skips.files),
                        "" if len(skips.files) == 1 else "s")
    if not chief:
        return None
    latest = tf.train.latest_checkpoint(params.model_dir)
    if params.recompute_bn_batches and params.dataset == "synthetic":
        logging.info("--dataset=synthetic has no training images: BN statistics not recomputed")
    elif params.recompute_bn_batches:
        bn_stats.recompute(params, latest, params.recompute_bn_batches)
    return _checkpoint_step(latest)


def _running(op):
    """A step function (`MonitoredSession.run_step_fn`, which takes exactly one argument) that
    runs `op` once, outside the hooks."""
    return lambda step_context: step_context.session.run(op)


def _worker_resume(params, job):
    """A worker that is not the chief: the checkpoint it resumes from (collective all-reduce:
    every worker initialises from the chief's broadcast or restores its own copy, from the
    model_dir it shares with the chief), or None."""
    run_config.check_model_dir(params)
    if job.collective:
        return tf.train.latest_checkpoint(params.model_dir)
    return None


class _TrainingGraph:
    """The training step in the default graph: the input stream, the train op and its
    summaries, the restore of --init_checkpoint, the Saver and the hooks (progress, NaN / Inf
    guard, checkpoints on the chief, the cluster's), and the ops a worker runs after its last
    step (`last_runs`: [(op, log line or None)])."""

    def __init__(self, params, job, resumed):
        chief = job is None or job.is_chief
        seed = params.seed
        if seed is not None:
            tf1.set_random_seed(seed)
            seed = input_seed(seed, job.config.task_index if job else 0,
                              _checkpoint_step(resumed or
                                               tf.train.latest_checkpoint(params.model_dir)))
        self.global_step = tf1.train.get_or_create_global_step()
        if job is not None:
            job.global_step_read(self.global_step)
        self.skips = data_lib.SkippedRecords()
        images, labels, _ = run_config.input_batches(params, training=True, seed=seed,
                                                     skips=self.skips)
        self.train_op, metrics = build_train_op(params, images, labels, self.global_step,
                                                job=job)
        for name, tensor in metrics.items():
            tf1.summary.scalar(name, tensor)
        restorer = None
        # Collective all-reduce: every worker restores (each holds its own copy).
        if chief or job.collective:
            restorer = _init_restorer(params, resumed)
        finite = FiniteState(params.model_dir)
        saver = tf1.train.Saver(max_to_keep=params.keep_checkpoint_max,
                                save_relative_paths=True)
        self.last_runs = job.last_runs() if job else []
        self.scaffold = tf1.train.Scaffold(
            init_fn=(lambda _, sess: restorer.restore(sess)) if restorer else None, saver=saver)
        self.hooks = [tf1.train.StopAtStepHook(last_step=params.max_steps),
                      ProgressHook(metrics, params.batch_size, params.max_steps,
                                   params.log_every_n_steps, params.model_dir if chief else None,
                                   finite, self.skips)]
        if chief:
            self.hooks.append(tf1.train.CheckpointSaverHook(
                params.model_dir, save_steps=params.save_checkpoints_steps, saver=saver,
                listeners=[_FiniteBeforeSave(finite)]))
        self.hooks += job.hooks() if job else []


def _init_restorer(params, resumed):
    """The Restorer of --init_checkpoint for a fresh run (None when there is none to restore,
    or the run resumes from its own checkpoint)."""
    if not params.init_checkpoint:
        return None
    if resumed:
        logging.info("model_dir %s holds a checkpoint: resuming from it, not from "
                     "--init_checkpoint", params.model_dir)
        return None
    init = rundir.checkpoint(params.init_checkpoint, "--init_checkpoint")
    restorer = restore_lib.Restorer(init.prefix, exclude_scopes=params.exclude_scopes)
    logging.info("fine-tuning: %s", restorer.summary())
    return restorer


def _train_error(error, params, job):
    """The one-line TrainError for a TensorFlow error that stopped training."""
    if isinstance(error, tf.errors.InvalidArgumentError):
        if "non-finite training loss" not in str(error):
            return TrainError("training failed: %s" % fileio.error_line(error))
        return NanLossError(
            "training loss became NaN or Inf; stopped without saving. Last good "
            "checkpoint: %s" % (checkpoints.last_finite(params.model_dir) or "none"))
    lost = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.AbortedError)
    if job is not None and isinstance(error, lost):
        peer = ("another worker" if job.collective else "a parameter server or the chief")
        return TrainError("%s: lost the cluster (%s: %s stopped answering within "
                          "--cluster_timeout_secs=%d): %s"
                          % (cluster_lib.task_name(job.config), type(error).__name__, peer,
                             job.timeout_secs, fileio.error_line(error)))
    return TrainError("training failed (%s) in --model_dir=%s: %s"
                      % (type(error).__name__, params.model_dir, fileio.error_line(error)))
