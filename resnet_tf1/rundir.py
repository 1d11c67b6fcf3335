"""A directory this project writes a model into, of either kind, and its record: one owner.

- A training run, train.py's `--model_dir`:

      model_config.json     the record (below)
      flags.txt             a flagfile that reproduces the run
      model.ckpt-<step>.*   checkpoints, and TF's `checkpoint` index of them
      bn_recomputed/        model.ckpt-<step> with the BN statistics recomputed after training,
                            and bn_stats.json (`bn_stats`)
      eval/metrics.json     the last evaluation, beside its TensorBoard events
      per_pixel_mean.npy    CIFAR-10 runs: the mean image their preprocessing subtracts
      events.out.tfevents.* training summaries

- A converted checkpoint, convert_checkpoint.py's `--output`: `config.json` (the record plus the
  source it came from) and `model.ckpt.*`.

Both records hold `{"model": ResNet keyword arguments, "preprocessing": a data.preprocessing
record, "labels": a data.labels record}`. Everything that reads a model directory goes through
`read_record` for the record and `checkpoint` for its weights: one resolution of the path, one
read of the checkpoint, one finiteness check.

One writer per run: train.py (a cluster's chief) and recompute_bn.py hold `WriterLock` on the run
directory for as long as they may write in it; readers (evaluate.py --watch, predict.py,
export.py) take no lock, and only ever see whole files (every write is atomic).
"""

import collections
import json
import os

from absl import logging

from resnet_tf1 import checkpoints, errors, fileio

try:
    import fcntl
except ImportError:  # not a POSIX system: runs are not locked
    fcntl = None

RUN_RECORD = "model_config.json"
CONVERTED_RECORD = "config.json"
FLAGS_FILE = "flags.txt"
CHECKPOINT_NAME = "model.ckpt"  # a converted checkpoint's prefix; a run's are model.ckpt-<step>
# Named one floor down: resolving a run directory to its preferred checkpoint is the checkpoint
# layer's (`checkpoints.resolve_path`), and `restore` shares it.
BN_RECOMPUTED_SUBDIR = checkpoints.BN_RECOMPUTED_SUBDIR
EVAL_SUBDIR = "eval"
METRICS_FILE = "metrics.json"


class ModelDirError(errors.UserError):
    """A --model_dir that is neither a converted checkpoint nor a training run, or whose record
    cannot be read; the message names the directory or the file."""


class WriterLock:
    """An exclusive OS advisory lock (flock) on a run directory itself, held by its one writer.

    Locking the directory (not a file in it) writes nothing: a run that is refused leaves the
    directory byte-identical. The kernel releases the lock when the holder's process ends, so a
    SIGKILLed writer never leaves a stale lock. Within one process the lock is re-entrant
    (train.py's BN recompute runs under the training run's lock).

    `acquire()` locks the directory if it exists (a new run calls it again once it has created
    it) and raises ModelDirError, naming the holder's PID and command line, when another process
    holds it. Where the file system cannot lock (some network file systems) the run goes on
    unlocked, with one warning. Use as a context manager: `with WriterLock(dir) as lock:`.
    """

    _held = {}  # (st_dev, st_ino) -> [fd, count]: this process's locks

    def __init__(self, model_dir, flag="--model_dir"):
        self.model_dir = model_dir
        self.flag = flag
        self._key = None

    def acquire(self):
        if self._key is not None or fcntl is None or "://" in self.model_dir:
            return self
        if not os.path.isdir(self.model_dir):
            return self
        fd = os.open(self.model_dir, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        st = os.fstat(fd)
        key = (st.st_dev, st.st_ino)
        if key in self._held:
            os.close(fd)
            self._held[key][1] += 1
            self._key = key
            return self
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ModelDirError(
                "%s=%s is in use by another writer (%s holds its lock): one run writes a run "
                "directory at a time; wait for it to end or stop it (a killed writer's lock is "
                "released with it)" % (self.flag, self.model_dir, _lock_holder(st)))
        except OSError as e:
            os.close(fd)
            logging.warning("cannot lock %s=%s (%s): a second writer would not be detected",
                            self.flag, self.model_dir, e.strerror or e)
            return self
        self._held[key] = [fd, 1]
        self._key = key
        return self

    def release(self):
        if self._key is None:
            return
        held = self._held[self._key]
        held[1] -= 1
        if not held[1]:
            del self._held[self._key]
            os.close(held[0])  # closing the last descriptor releases the flock
        self._key = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def _lock_holder(st):
    """"PID 1234 (python scripts/train.py ...)" for the process holding a flock on the file of
    stat result `st`, from /proc/locks (Linux); "another process" where that cannot be told."""
    try:
        with open("/proc/locks") as f:
            lines = f.read().splitlines()
    except OSError:
        return "another process"
    for line in lines:
        fields = line.split()
        if "->" in fields or len(fields) < 6 or fields[1] != "FLOCK":
            continue
        try:
            major, minor, inode = fields[5].split(":")
            if int(inode) != st.st_ino or (int(major, 16), int(minor, 16)) != (
                    os.major(st.st_dev), os.minor(st.st_dev)):
                continue
            pid = int(fields[4])
        except ValueError:
            continue
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                command = " ".join(f.read().replace(b"\0", b" ").decode("utf-8", "replace")
                                   .split())
        except OSError:
            command = ""
        return "PID %d%s" % (pid, " (%s)" % command[:120] if command else "")
    return "another process"


# A model directory's record: its kind, the file it was read from, and the parsed JSON.
Record = collections.namedtuple("Record", ["model_dir", "kind", "path", "config"])


def kind_of(model_dir):
    """"converted checkpoint", "training run" or None, by the record the directory holds."""
    if os.path.exists(os.path.join(model_dir, CONVERTED_RECORD)):
        return "converted checkpoint"
    if os.path.exists(os.path.join(model_dir, RUN_RECORD)):
        return "training run"
    return None


def read_record(model_dir):
    """The `Record` of `model_dir` (either kind).

    Raises:
        ModelDirError: not a directory, no record, or a record that is not a JSON object with a
            "model" entry.
    """
    if not os.path.isdir(model_dir):
        raise ModelDirError("--model_dir=%s is not a directory (expected a converted checkpoint "
                            "or a training run)" % model_dir)
    kind = kind_of(model_dir)
    if kind is None:
        raise ModelDirError("--model_dir=%s holds neither %s (a converted checkpoint) nor %s (a "
                            "training run)" % (model_dir, CONVERTED_RECORD, RUN_RECORD))
    path = os.path.join(model_dir, CONVERTED_RECORD if kind == "converted checkpoint"
                        else RUN_RECORD)
    try:
        with open(path) as f:
            config = json.load(f)
        if not isinstance(config.get("model"), dict):
            raise ValueError("no 'model' entry")
    except (OSError, ValueError, AttributeError) as e:
        raise ModelDirError("%s cannot be read as a model config: %s" % (path, e))
    return Record(model_dir, kind, path, config)


def write_run_record(model_dir, model, preprocessing, labels, files=None):
    """<model_dir>/model_config.json (atomically), and `files` ({name: bytes}, e.g. the
    per-pixel mean image) beside it."""
    for name, data in (files or {}).items():
        fileio.write_bytes(os.path.join(model_dir, name), data)
    fileio.write_json(os.path.join(model_dir, RUN_RECORD),
                      {"model": model, "preprocessing": preprocessing, "labels": labels})


def write_converted_record(directory, config):
    """<directory>/config.json of a converted checkpoint (the record plus its "source")."""
    fileio.write_json(os.path.join(directory, CONVERTED_RECORD), config)


def label(model_dir):
    """"ResNet-56" or "plain-56" from the run's record; else the directory name."""
    try:
        model = read_record(model_dir).config["model"]
        return "%s-%d" % ("plain" if model.get("shortcut") == "none" else "ResNet",
                          model["depth"])
    except (ModelDirError, KeyError, TypeError):
        return os.path.basename(os.path.normpath(model_dir))


def flags_path(model_dir):
    return os.path.join(model_dir, FLAGS_FILE)


def eval_dir(model_dir):
    return os.path.join(model_dir, EVAL_SUBDIR)


def metrics_path(model_dir):
    return os.path.join(eval_dir(model_dir), METRICS_FILE)


# A checkpoint read once: its prefix, its global step (None where it has none) and every
# variable as a numpy array, all finite.
Checkpoint = collections.namedtuple("Checkpoint", ["prefix", "step", "arrays"])


def resolve(path):
    """The checkpoint prefix `path` means: a converted checkpoint's directory -> its model.ckpt;
    a training run's directory -> its latest checkpoint, or that step's recomputed-BN one when
    there is one (`checkpoints.resolve_path`, logged); a prefix or a checkpoint file -> its
    prefix. checkpoints.CheckpointError when nothing is there."""
    if os.path.isdir(path) and kind_of(path) == "converted checkpoint":
        path = os.path.join(path, CHECKPOINT_NAME)
    return checkpoints.require(path)


def checkpoint(path, what="checkpoint"):
    """The `Checkpoint` at `path` (`resolve`): resolved once, read once, checked finite.

    Raises:
        checkpoints.CheckpointError: nothing there, unreadable, or NaN / Inf in any variable
            ("<what> <prefix> holds NaN or Inf in ...").
    """
    prefix = resolve(path)
    arrays = checkpoints.read_arrays(prefix)
    checkpoints.check_finite(prefix, arrays, what)
    step = arrays.get("global_step")
    return Checkpoint(prefix, None if step is None else int(step), arrays)
