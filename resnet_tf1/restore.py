"""Strict and partial checkpoint restore, shared by training, evaluation, prediction and export.

A checkpoint that does not fit the graph is an error that lists the missing, unexpected and
mis-shaped variables; nothing is ever restored partially by accident. Partial restore for
fine-tuning is explicit: `exclude_scopes` names what is left to its initializer (in the graph) and
ignored (in the checkpoint), and the report says so. Reading and comparing is the checkpoint
layer's (`resnet_tf1.checkpoints`); this module plans and runs the restore.
"""

import numpy as np
import tensorflow as tf

from resnet_tf1 import checkpoints
from resnet_tf1.checkpoints import listing

tf1 = tf.compat.v1


def _in_scopes(name, scopes):
    return any(name == s.rstrip("/") or name.startswith(s.rstrip("/") + "/") for s in scopes)


class Restorer:
    """Plans a restore at graph-construction time; `restore(sess)` runs it.

    Args:
        path: checkpoint prefix or directory.
        var_list: graph variables to fill; default the model variables of the graph
            (`tf.compat.v1.GraphKeys.MODEL_VARIABLES`).
        exclude_scopes: variable scopes (e.g. "resnet50/logits") to leave to their initializers;
            checkpoint variables under them are ignored. Empty means a strict restore.
        arrays: the checkpoint's variables, already read (`rundir.checkpoint(...).arrays`): they
            are restored from memory instead of being read from the files again.

    Raises:
        CheckpointError: anything missing, unexpected or mis-shaped outside `exclude_scopes`.
    """

    def __init__(self, path, var_list=None, exclude_scopes=(), arrays=None):
        self.path = checkpoints.require(path)
        if var_list is None:
            var_list = tf1.get_collection(tf1.GraphKeys.MODEL_VARIABLES)
        exclude_scopes = [s for s in exclude_scopes if s]
        graph = {v.op.name: v for v in var_list}
        ckpt = (checkpoints.read_shapes(self.path) if arrays is None
                else {n: list(a.shape) for n, a in arrays.items()})
        self.excluded = sorted(n for n in graph if _in_scopes(n, exclude_scopes))
        self.training_state = sorted(n for n in ckpt if n not in graph
                                     and checkpoints.is_training_state(n))
        self.ignored = sorted(n for n in ckpt if n not in graph and _in_scopes(n, exclude_scopes))
        wanted = {n: v for n, v in graph.items() if n not in self.excluded}
        training_state = set(self.training_state)
        mismatch = checkpoints.compare(
            {n: v.shape.as_list() for n, v in wanted.items()}, ckpt, "checkpoint",
            ignore=lambda n: n in training_state or _in_scopes(n, exclude_scopes))
        if mismatch:
            hint = "" if exclude_scopes else " (to fine-tune, exclude the scopes that differ)"
            error = checkpoints.CheckpointError(
                "checkpoint %s does not fit the graph%s: %s"
                % (self.path, hint, mismatch.describe("checkpoint")))
            error.mismatch = mismatch
            raise error
        self.restored = sorted(wanted)
        if arrays is not None:
            self._values = [(v, arrays[n]) for n, v in wanted.items()]
            self._saver = None
        else:
            self._values = None
            self._saver = tf1.train.Saver(var_list=wanted, sharded=False) if wanted else None

    def restore(self, sess):
        if self._values:
            assign(sess, self._values)
        elif self._saver is not None:
            self._saver.restore(sess, self.path)

    def summary(self):
        """One line for the log: what was restored, excluded and ignored."""
        line = "restored %d variables from %s" % (len(self.restored), self.path)
        if self.excluded:
            line += "; left to initializers (excluded): %s" % listing(self.excluded, 10)
        if self.ignored:
            line += "; ignored checkpoint variables under excluded scopes: %s" % listing(
                self.ignored, 10)
        if self.training_state:
            line += "; ignored %d training-state variables (step, optimizer slots)" % len(
                self.training_state)
        return line


def load_arrays(sess, arrays, var_list):
    """Assigns `{name: numpy array}` to the variables of `var_list` by name; all must match.

    Raises:
        CheckpointError: names missing or unexpected, or shapes that differ (all listed).
    """
    graph = {v.op.name: v for v in var_list}
    mismatch = checkpoints.compare({n: v.shape.as_list() for n, v in graph.items()},
                                   {n: list(a.shape) for n, a in arrays.items()}, "source")
    if mismatch:
        raise checkpoints.CheckpointError("the ported arrays do not fit the graph: %s"
                                          % mismatch.describe("ported arrays"))
    assign(sess, [(var, arrays[name]) for name, var in graph.items()])


def assign(sess, values):
    """Sets each variable of `values` ([(variable, numpy array)]) to its array in one session run.

    `Variable.load` is one run per variable, and each new feed/fetch signature costs the
    session a pass over the whole graph: 37 ms a variable for ResNet-101, 19 of the converter's
    23 s. Here every initializer runs at once, its initial value fed.
    """
    feeds = {var.initializer.inputs[1]: np.asarray(value,
                                                   var.dtype.base_dtype.as_numpy_dtype)
             for var, value in values}
    sess.run([var.initializer for var, _ in values], feeds)
