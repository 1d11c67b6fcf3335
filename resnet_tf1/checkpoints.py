"""The checkpoint layer: reading TF1 checkpoints and comparing them with what a graph expects.

Everything that loads weights builds on this module: `restore` (strict / partial restore into a
graph) and `porting` (converting other formats' checkpoints). It holds, once each:
  - path resolution (a prefix, a V1 file, a `.index` / `.data-*` / `.meta` file or a directory),
  - reading names and shapes, or every array,
  - the name/shape comparison that lists missing, unexpected and mis-shaped variables,
  - which checkpoint variables are training state (step counter, optimizer slots), not weights,
  - the one-line listing of names used in every message.
"""

import collections
import os
import re

import numpy as np
import tensorflow as tf
from absl import logging

from resnet_tf1 import errors, fileio

# Variables that checkpoints carry beside the model and that a port or a restore leaves behind on
# purpose: the step counter and optimizer / moving-average slots (training state, not weights).
TRAINING_STATE = re.compile(
    r"(^|/)global_step$|/(Momentum|Adam|Adam_\d+|RMSProp|RMSProp_\d+|ExponentialMovingAverage"
    r"|Adagrad|Ftrl|Ftrl_\d+)$|^(beta1_power|beta2_power)$|(^|/)bn_update_count$"
    r"|^(current_loss_scale|good_steps)$")  # float16 dynamic loss scaling

# Where `bn_stats.recompute` writes a run's checkpoint with recomputed BN statistics.
BN_RECOMPUTED_SUBDIR = "bn_recomputed"


class CheckpointError(errors.UserError):
    """A checkpoint that cannot be read or does not fit; the message names every offender."""


def listing(names, limit=20):
    """Sorted names, comma-separated, the first `limit` of them."""
    names = sorted(names)
    more = "" if len(names) <= limit else " ... (%d more)" % (len(names) - limit)
    return ", ".join(names[:limit]) + more


def is_training_state(name):
    return bool(TRAINING_STATE.search(name))


def _step_of(prefix):
    tail = os.path.basename(prefix).rsplit("-", 1)
    return int(tail[1]) if len(tail) == 2 and tail[1].isdigit() else None


def latest_training(model_dir):
    """The latest checkpoint a training run wrote in `model_dir` (its `checkpoint` index)."""
    latest = tf.train.latest_checkpoint(model_dir)
    if latest is None:
        raise CheckpointError("checkpoint directory %s holds no 'checkpoint' state file"
                              % model_dir)
    return latest


def resolve_path(path):
    """A checkpoint prefix from a prefix, a V1 file, a `.index`/`.data-*`/`.meta` file or a
    directory: its latest checkpoint, or the same step's checkpoint with recomputed BN statistics
    in `<dir>/bn_recomputed/` when there is one (logged). CheckpointError for a directory without
    a checkpoint."""
    if os.path.isdir(path):
        latest = latest_training(path)
        recomputed = tf.train.latest_checkpoint(os.path.join(path, BN_RECOMPUTED_SUBDIR))
        if recomputed and _step_of(recomputed) == _step_of(latest):
            logging.info("using the BN statistics recomputed after training: %s", recomputed)
            return recomputed
        if recomputed:
            logging.info("%s holds BN statistics recomputed for step %s, not for the latest "
                         "checkpoint %s: using the running statistics", path,
                         _step_of(recomputed), latest)
        return latest
    for suffix in (".index", ".meta"):
        if path.endswith(suffix):
            return path[:-len(suffix)]
    if ".data-" in os.path.basename(path):
        return path[:path.rindex(".data-")]
    return path


def require(path):
    """`resolve_path(path)`, checked to exist (a V2 `.index` or a V1 file)."""
    prefix = resolve_path(path)
    if not (tf.io.gfile.exists(prefix + ".index") or
            (tf.io.gfile.exists(prefix) and not tf.io.gfile.isdir(prefix))):
        raise CheckpointError("checkpoint %s not found (expected a V1 file, a V2 prefix with a "
                              ".index file, or a directory)" % path)
    return prefix


def read_shapes(path):
    """{name: [dims]} of every variable in the checkpoint at `path`."""
    prefix = require(path)
    try:
        return {name: list(shape) for name, shape in tf.train.list_variables(prefix)}
    except (tf.errors.OpError, ValueError) as e:
        raise CheckpointError("checkpoint %s cannot be read as a TF checkpoint: %s"
                              % (path, fileio.error_line(e)))


def read_arrays(path):
    """{name: numpy array} of every variable in the checkpoint at `path`."""
    prefix = require(path)
    try:
        reader = tf.train.load_checkpoint(prefix)
        return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}
    except (tf.errors.OpError, ValueError, IndexError, RuntimeError) as e:
        # A truncated or bit-flipped data file surfaces as any of these from the C++ reader.
        raise CheckpointError("checkpoint %s cannot be read as a TF checkpoint: %s"
                              % (path, fileio.error_line(e)))


def files_of(path):
    """The files that make up the checkpoint at `path` (V1 file, or V2 index and data shards)."""
    prefix = require(path)
    if tf.io.gfile.exists(prefix) and not tf.io.gfile.isdir(prefix):
        return [prefix]
    d, base = os.path.split(prefix)
    return sorted(os.path.join(d or ".", f) for f in os.listdir(d or ".")
                  if f == base + ".index" or f.startswith(base + ".data-"))


class Mismatch(collections.namedtuple("Mismatch", ["missing", "unexpected", "misshaped"])):
    """What differs between the variables a graph expects and those a source holds."""

    def __bool__(self):
        return bool(self.missing or self.unexpected or self.misshaped)

    def describe(self, what):
        """'missing from the <what> (N): ...; unexpected in the <what> (N): ...; mis-shaped ...'"""
        parts = []
        if self.missing:
            parts.append("missing from the %s (%d): %s" % (what, len(self.missing),
                                                           listing(self.missing)))
        if self.unexpected:
            parts.append("unexpected in the %s (%d): %s" % (what, len(self.unexpected),
                                                            listing(self.unexpected)))
        if self.misshaped:
            parts.append("mis-shaped (%d): %s" % (len(self.misshaped), listing(self.misshaped)))
        return "; ".join(parts)


def compare(expected, found, what, ignore=lambda name: False):
    """Compares `{name: shape}` a graph expects with `{name: shape}` a source holds.

    Args:
        expected: the graph's variables to fill.
        found: the source's variables (a checkpoint, or arrays a converter produced).
        what: the source's name in mis-shape lines ("checkpoint", "source").
        ignore: names of `found` that are not unexpected even though the graph lacks them.

    Returns:
        A `Mismatch` (false when everything fits).
    """
    missing = sorted(n for n in expected if n not in found)
    unexpected = sorted(n for n in found if n not in expected and not ignore(n))
    misshaped = sorted("%s: %s %s vs graph %s" % (n, what, list(found[n]), list(expected[n]))
                       for n in expected if n in found and list(found[n]) != list(expected[n]))
    return Mismatch(missing, unexpected, misshaped)


def _non_finite(arrays):
    return sorted(name for name, value in arrays.items()
                  if value.dtype.kind == "f" and not np.all(np.isfinite(value)))


def non_finite(path):
    """Names of the float variables of the checkpoint at `path` holding NaN or Inf."""
    return _non_finite(read_arrays(path))


def check_finite(prefix, arrays, what="checkpoint"):
    """CheckpointError naming the variables of `arrays` (the checkpoint at `prefix`, read) that
    hold NaN or Inf, if any."""
    bad = _non_finite(arrays)
    if bad:
        raise CheckpointError("%s %s holds NaN or Inf in %d variable(s): %s (the run that wrote "
                              "it diverged)" % (what, prefix, len(bad), listing(bad, 5)))


def last_finite(model_dir):
    """The newest checkpoint in `model_dir`'s index whose variables are all finite, or None."""
    state = tf.train.get_checkpoint_state(model_dir)
    for prefix in reversed(list(state.all_model_checkpoint_paths) if state else []):
        if not os.path.isabs(prefix):
            prefix = os.path.join(model_dir, prefix)
        try:
            if not non_finite(prefix):
                return prefix
        except CheckpointError:
            continue
    return None


_SAVED_FILE = re.compile(r"^(?P<prefix>.+-\d+)\.(?:index|meta|data-(?P<shard>\d+)-of-(?P<n>\d+))$")


def torn(model_dir):
    """The files of the torn checkpoints in `model_dir`: saves that were interrupted and that its
    `checkpoint` state does not list (so no run ever reads them), by their files alone.

    A Saver writes a checkpoint's data shards, then its `.index`, then the `.meta`, then the
    state. A `<prefix>-<step>` is torn when it has data shards without an `.index`, an `.index`
    with a data shard missing or written after it (a newer save of the same step killed between
    its data and its index: reading it gives "Checksum does not match"), or only a `.meta`.
    Complete unlisted checkpoints are left alone. Returns sorted file names.
    """
    if not os.path.isdir(model_dir):
        return []
    state = tf.train.get_checkpoint_state(model_dir)
    listed = {os.path.basename(p) for p in (state.all_model_checkpoint_paths if state else [])}
    groups = collections.defaultdict(list)
    for name in os.listdir(model_dir):
        match = _SAVED_FILE.match(name)
        if match and match.group("prefix") not in listed:
            groups[match.group("prefix")].append((name, match))
    out = []
    for prefix, files in groups.items():
        index = prefix + ".index"
        shards = {m.group("shard"): name for name, m in files if m.group("shard")}
        counts = {int(m.group("n")) for name, m in files if m.group("n")}
        names = [name for name, _ in files]
        if index not in names:
            complete = False
        elif len(counts) != 1 or len(shards) != counts.pop():
            complete = False
        else:
            mtime = os.stat(os.path.join(model_dir, index)).st_mtime_ns
            complete = all(os.stat(os.path.join(model_dir, n)).st_mtime_ns <= mtime
                           for n in shards.values())
        if not complete:
            out += names
    return sorted(out)
