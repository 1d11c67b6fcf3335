"""Strict and partial checkpoint restore, shared by training, evaluation, prediction and export.

A checkpoint that does not fit the graph is an error that lists the missing, unexpected and
mis-shaped variables; nothing is ever restored partially by accident. Partial restore for
fine-tuning is explicit: `exclude_scopes` names what is left to its initializer (in the graph) and
ignored (in the checkpoint), and the report says so.
"""

import tensorflow as tf

from resnet_tf1.porting import tf_checkpoint
from resnet_tf1.porting.common import TRAINING_STATE, PortError, listing

tf1 = tf.compat.v1


class RestoreError(ValueError):
    """A checkpoint that does not fit the graph; the message lists every offending variable."""


def _in_scopes(name, scopes):
    return any(name == s.rstrip("/") or name.startswith(s.rstrip("/") + "/") for s in scopes)


def checkpoint_path(path):
    """A restorable checkpoint prefix from a prefix, a checkpoint file or a directory (its latest
    checkpoint); RestoreError when there is none."""
    try:
        prefix = tf_checkpoint.resolve_path(path)
    except PortError as e:
        raise RestoreError(str(e))
    if not (tf.io.gfile.exists(prefix + ".index") or tf.io.gfile.exists(prefix)):
        raise RestoreError("checkpoint %s not found (expected a prefix with a .index file, or "
                           "a directory)" % path)
    return prefix


class Restorer:
    """Plans a restore at graph-construction time; `restore(sess)` runs it.

    Args:
        path: checkpoint prefix or directory.
        var_list: graph variables to fill; default the model variables of the graph
            (`tf.compat.v1.GraphKeys.MODEL_VARIABLES`).
        exclude_scopes: variable scopes (e.g. "resnet50/logits") to leave to their initializers;
            checkpoint variables under them are ignored. Empty means a strict restore.

    Raises:
        RestoreError: anything missing, unexpected or mis-shaped outside `exclude_scopes`.
    """

    def __init__(self, path, var_list=None, exclude_scopes=()):
        self.path = checkpoint_path(path)
        if var_list is None:
            var_list = tf1.get_collection(tf1.GraphKeys.MODEL_VARIABLES)
        exclude_scopes = [s for s in exclude_scopes if s]
        graph = {v.op.name: v for v in var_list}
        try:
            ckpt = dict(tf.train.list_variables(self.path))
        except (tf.errors.OpError, ValueError) as e:
            raise RestoreError("checkpoint %s cannot be read: %s"
                               % (self.path, str(e).strip().splitlines()[0]))
        self.excluded = sorted(n for n in graph if _in_scopes(n, exclude_scopes))
        self.training_state = sorted(n for n in ckpt if n not in graph and TRAINING_STATE.search(n))
        self.ignored = sorted(n for n in ckpt if n not in graph and _in_scopes(n, exclude_scopes))
        wanted = {n: v for n, v in graph.items() if n not in self.excluded}
        missing = sorted(n for n in wanted if n not in ckpt)
        unexpected = sorted(n for n in ckpt if n not in graph and n not in self.ignored
                            and n not in self.training_state)
        misshaped = sorted("%s: checkpoint %s vs graph %s" % (n, list(ckpt[n]),
                                                              wanted[n].shape.as_list())
                           for n in wanted if n in ckpt
                           and list(ckpt[n]) != wanted[n].shape.as_list())
        problems = []
        if missing:
            problems.append("missing from the checkpoint (%d): %s" % (len(missing),
                                                                      listing(missing)))
        if unexpected:
            problems.append("unexpected in the checkpoint (%d): %s" % (len(unexpected),
                                                                       listing(unexpected)))
        if misshaped:
            problems.append("mis-shaped (%d): %s" % (len(misshaped), listing(misshaped)))
        if problems:
            hint = "" if exclude_scopes else " (to fine-tune, exclude the scopes that differ)"
            raise RestoreError("checkpoint %s does not fit the graph%s: %s"
                               % (self.path, hint, "; ".join(problems)))
        self.restored = sorted(wanted)
        self._saver = tf1.train.Saver(var_list=wanted, sharded=False) if wanted else None

    def restore(self, sess):
        if self._saver is not None:
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
        RestoreError: names missing or unexpected, or shapes that differ (all listed).
    """
    graph = {v.op.name: v for v in var_list}
    missing = sorted(set(graph) - set(arrays))
    unexpected = sorted(set(arrays) - set(graph))
    misshaped = sorted("%s: %s vs graph %s" % (n, list(arrays[n].shape), graph[n].shape.as_list())
                       for n in set(graph) & set(arrays)
                       if list(arrays[n].shape) != graph[n].shape.as_list())
    if missing or unexpected or misshaped:
        raise RestoreError("arrays do not fit the graph: missing %s; unexpected %s; "
                           "mis-shaped %s" % (listing(missing) or "none",
                                              listing(unexpected) or "none",
                                              listing(misshaped) or "none"))
    for name, var in graph.items():
        var.load(arrays[name].astype(var.dtype.base_dtype.as_numpy_dtype), sess)
