"""Atomic file writes: write to a temporary name in the same directory, then rename.

The bottom of the house: it imports nothing of this package, so the data pipelines, the checkpoint
layer, training, evaluation and the scripts all write files one way. A reader never sees a
half-written file, and a run killed mid-write leaves the previous file (or none) in place.
"""

import json
import os
import tempfile

import tensorflow as tf


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
    """A fresh hidden directory beside `final_path`, to be renamed onto it when complete."""
    final_path = os.path.abspath(final_path)
    parent = os.path.dirname(final_path)
    os.makedirs(parent, exist_ok=True)
    return tempfile.mkdtemp(prefix=".%s.tmp-" % os.path.basename(final_path), dir=parent)
