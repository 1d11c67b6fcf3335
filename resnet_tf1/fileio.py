"""Atomic file writes: write to a temporary name in the same directory, then rename.

Near the bottom of the house (it imports only `errors` of this package), so the data pipelines, the
checkpoint layer, training, evaluation and the scripts all write files one way. A reader never sees
a half-written file, and a run killed mid-write leaves the previous file (or none) in place.
`atomic_dir` does the same for whole directories (converted checkpoints, exports, recomputed BN
statistics); `recover_dir` completes (or undoes) a swap a kill interrupted, before anything else
looks at the directory; `output_dir_problem` is the one rule for which existing directory a tool
may replace. `error_line` is the one way an error (a full disk, a damaged file) is shown in one line.
"""

import contextlib
import fnmatch
import json
import os
import re
import shutil
import tempfile

import tensorflow as tf
from absl import logging

from resnet_tf1 import errors


# The temporary names write_bytes uses: "<file>.tmp-<pid>".
TEMP_FILE_PATTERN = "*.tmp-[0-9]*"


def _tmp_name(path):
    return "%s.tmp-%d" % (path, os.getpid())


def write_bytes(path, data):
    """Writes `data` (bytes) to `path` atomically. Works for any `tf.io.gfile` path."""
    tmp = _tmp_name(path)
    try:
        with tf.io.gfile.GFile(tmp, "wb") as f:
            f.write(data)
        tf.io.gfile.rename(tmp, path, overwrite=True)
    finally:
        if tf.io.gfile.exists(tmp):
            tf.io.gfile.remove(tmp)


def write_text(path, text):
    """Writes `text` (str) to `path` atomically."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path, obj):
    """Writes `obj` as indented, key-sorted JSON with a trailing newline, atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def make_temp_dir(final_path):
    """A fresh hidden directory beside `final_path`, to be renamed onto it when complete.

    It gets the permissions of an ordinary new directory (0777 less the umask), not mkdtemp's
    0700, so that the renamed result is readable like any other output. errors.FileError when
    the parent cannot be written.
    """
    final_path = os.path.abspath(final_path)
    parent = os.path.dirname(final_path)
    try:
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=temp_dir_prefix(final_path), dir=parent)
    except OSError as e:
        raise errors.FileError("cannot create %s: %s" % (final_path, e.strerror or e))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    return tmp


def temp_dir_prefix(final_path):
    """The name prefix of `make_temp_dir(final_path)`'s directories (for leftover clean-up)."""
    return ".%s.tmp-" % os.path.basename(os.path.abspath(final_path))


def _ready_prefix(final_path):
    return ".%s.new-" % os.path.basename(final_path)


def _old_prefix(final_path):
    return "%s.old-" % os.path.basename(final_path)


def dir_leftover_patterns(final_path):
    """What an interrupted `atomic_dir(final_path)` can leave beside it: its temporary directory
    (being filled), the complete new version waiting to be swapped in, and the previous version
    set aside during the swap."""
    return [temp_dir_prefix(final_path) + "*", _ready_prefix(final_path) + "*",
            _old_prefix(final_path) + "*"]


def _swap(new, final_path):
    """Renames the complete directory `new` onto `final_path`; an existing one is set aside
    (`<final>.old-<pid>`) and removed only once the new one is in place."""
    old = None
    try:
        if os.path.exists(final_path):
            old = "%s%d" % (os.path.join(os.path.dirname(final_path), _old_prefix(final_path)),
                            os.getpid())
            os.rename(final_path, old)
        os.rename(new, final_path)
    except OSError as e:
        if old and not os.path.exists(final_path) and os.path.exists(old):
            os.rename(old, final_path)
        raise errors.FileError("cannot write %s: %s" % (final_path, e.strerror or e))
    if old:
        shutil.rmtree(old, ignore_errors=True)


def _newest(directory, prefix):
    """The path of the newest (by modification time) entry of `directory` named `prefix*`."""
    paths = [os.path.join(directory, n) for n in os.listdir(directory) if n.startswith(prefix)]
    paths = [p for p in paths if os.path.isdir(p) and not os.path.islink(p)]
    return max(paths, key=lambda p: (os.stat(p).st_mtime_ns, p)) if paths else None


def recover_dir(final_path, what):
    """Finishes an interrupted `atomic_dir(final_path)`, then removes what it left.

    An interrupted swap leaves complete copies beside `final_path`: the new version (renamed to
    `.<final>.new-<pid>` only once complete) and, when killed between the two renames of the
    swap, the previous version set aside as `<final>.old-<pid>` with no `final_path` at all.
    The newest complete new version is renamed onto `final_path` (the interrupted write
    completes); with none, a missing `final_path` gets its previous version back. Only then are
    the rest (partial temporary directories, superseded copies) removed. Each step is logged.

    Returns:
        The names removed, sorted.
    """
    final_path = os.path.abspath(final_path)
    parent = os.path.dirname(final_path)
    if not os.path.isdir(parent):
        return []
    try:
        ready = _newest(parent, _ready_prefix(final_path))
        old = _newest(parent, _old_prefix(final_path))
        if ready:
            _swap(ready, final_path)
            logging.info("completed an interrupted %s: %s is now %s", what,
                         os.path.basename(ready), final_path)
        elif old and not os.path.exists(final_path):
            os.rename(old, final_path)
            logging.info("restored %s from %s (an interrupted %s had set it aside)", final_path,
                         os.path.basename(old), what)
        removed = remove_leftovers(parent, dir_leftover_patterns(final_path))
    except OSError as e:
        raise errors.FileError("cannot recover %s after an interrupted %s: %s"
                               % (final_path, what, e.strerror or e))
    if removed:
        logging.info("removed %d leftover(s) of an interrupted %s: %s", len(removed), what,
                     ", ".join(removed))
    return removed


@contextlib.contextmanager
def atomic_dir(final_path, what):
    """Writes a directory atomically: yields a fresh temporary directory beside `final_path` to
    fill; once filled it is renamed to a "complete" name, then swapped onto `final_path` (an
    existing one is set aside and removed only after the new one is in place). On an error
    nothing changes at `final_path` and the temporary directory is removed. An interrupted
    earlier `what` is first finished or undone by `recover_dir`: whenever the process is
    killed, the next start finds at `final_path` the old or the new version, complete."""
    final_path = os.path.abspath(final_path)
    recover_dir(final_path, what)
    tmp = make_temp_dir(final_path)
    try:
        yield tmp
        ready = "%s%d" % (os.path.join(os.path.dirname(final_path), _ready_prefix(final_path)),
                          os.getpid())
        try:
            os.rename(tmp, ready)
        except OSError as e:
            raise errors.FileError("cannot write %s: %s" % (final_path, e.strerror or e))
        try:
            _swap(ready, final_path)
        finally:
            if os.path.exists(ready):  # the swap failed: this write did not happen
                shutil.rmtree(ready, ignore_errors=True)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)


def output_dir_problem(path, flag, is_ours, what, marker, ours, overwrite):
    """None when the directory `path` may be written by a tool that replaces only its own
    output: absent, empty, or (with `overwrite`) `is_ours(path)`. Otherwise the one-line reason,
    naming `flag`; anything that is not the tool's own output is never replaced.

    Args:
        what: what the tool's output is ("a converted checkpoint").
        marker: how its output is recognised ("no config.json with a 'source' entry").
        ours: what --overwrite replaces ("converter output").
    """
    if not os.path.exists(path):
        return None
    if not os.path.isdir(path):
        return "%s=%s is a file, expected a directory to create" % (flag, path)
    if not os.listdir(path):
        return None
    if not is_ours(path):
        return ("%s=%s holds files that are not %s (%s): choose another directory; --overwrite "
                "replaces only %s" % (flag, path, what, marker, ours))
    if not overwrite:
        return "%s=%s holds %s (pass --overwrite to replace it)" % (flag, path, what)
    return None


def remove_leftovers(directory, patterns):
    """Removes the entries of `directory` whose names match one of the glob `patterns` (left by
    an interrupted writer: temporary files and directories of an atomic write).

    Returns:
        The names removed, sorted.
    """
    if not os.path.isdir(directory):
        return []
    removed = []
    for name in sorted(os.listdir(directory)):
        if any(fnmatch.fnmatchcase(name, p) for p in patterns):
            path = os.path.join(directory, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.remove(path)
            removed.append(name)
    return removed


# What TensorFlow wraps around a graph op's error message: never the informative line.
_BOILERPLATE = ("Graph execution error", "Detected at node", "Node:", 'File "', "[[", "Hint:",
                "Original stack trace", "Additional GRPC error information", "From /job:")


def error_line(error):
    """The one informative line of an exception's message (TensorFlow's "Graph execution
    error:", "Detected at node", "From /job:...:" and stack-frame lines skipped), or its type
    name."""
    text = getattr(error, "message", None) or str(error)
    for line in text.strip().splitlines():
        line = re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", line.strip())
        if line and not line.startswith(_BOILERPLATE):
            return line
    return type(error).__name__
