"""Pieces shared by the per-format porting modules."""

import collections
import os

import numpy as np
import tensorflow as tf

from resnet_tf1 import checkpoints
from resnet_tf1 import model as model_lib
from resnet_tf1.checkpoints import listing

# `extra`: source facts config.json keeps under "source" (e.g. torchvision's per-layer
# num_batches_tracked, which an export writes back).
Port = collections.namedtuple("Port", ["arrays", "model", "preprocessing", "labels", "skipped",
                                       "extra"], defaults=(None,))

# One record per source format; adding a source touches its own module and the list in
# `porting/__init__.py`, nothing else.
#   name:         the --source value
#   read:         path -> {source name: numpy array}; PortError for an unreadable file
#   to_target:    (arrays, depth=None, num_classes=None) -> Port
#   source_files: path -> the files whose sha256 config.json records
#   reference:    (path, images NHWC float32) -> the source model's own logits, for --verify
#   reference_name: what `reference` runs, for messages
SourceFormat = collections.namedtuple("SourceFormat", [
    "name", "read", "to_target", "source_files", "reference", "reference_name"])


class PortError(checkpoints.CheckpointError):
    """A source that cannot be ported exactly; the message lists the offending names."""


def single_file(path):
    """`[path]`, or PortError when it does not exist (the formats stored as one file)."""
    if not os.path.isfile(path):
        raise PortError("input file %s not found" % path)
    return [path]


class Consumer:
    """Takes source arrays by name, exactly once each, and reports what was never taken."""

    def __init__(self, arrays, what):
        self._arrays = dict(arrays)
        self._taken = set()
        self._what = what
        self.skipped = sorted(n for n in self._arrays if checkpoints.is_training_state(n))
        self._taken.update(self.skipped)

    def __contains__(self, name):
        return name in self._arrays

    def take(self, name, shape=None):
        if name not in self._arrays:
            raise PortError("%s has no variable %r (needed for the target graph)"
                            % (self._what, name))
        if name in self._taken:
            raise PortError("%s variable %r would be used twice" % (self._what, name))
        self._taken.add(name)
        value = np.asarray(self._arrays[name])
        if shape is not None and tuple(value.shape) != tuple(shape):
            raise PortError("%s variable %r has shape %s, expected %s"
                            % (self._what, name, list(value.shape), list(shape)))
        return value

    def finish(self):
        left = set(self._arrays) - self._taken
        if left:
            raise PortError("%s has %d variable(s) that map to nothing in the target graph: %s"
                            % (self._what, len(left), listing(left)))


def bn_names(prefix):
    """Our BN variable names under a conv scope, in `model.BN_PARAMETERS` order (gamma, beta,
    mean, variance)."""
    return ["%s/%s/%s" % (prefix, model_lib.BN_SCOPE, k) for k in model_lib.BN_PARAMETERS]


def unit_convs(unit):
    """Our conv scopes of a planned unit, in creation order: the projection first, if any."""
    return ["%s/%s" % (unit.scope, c) for c in model_lib.unit_conv_parts(unit)]


def imagenet_labels(num_classes):
    """The labels record of an ImageNet checkpoint: 1001 classes carry the background class."""
    return "imagenet1001" if num_classes == 1001 else "imagenet1000"


def stage_number(unit):
    """1 for a unit of our "block1" (Caffe's and Keras' stage 2, "res2" / "conv2"), 2 for
    "block2", ..."""
    return int(unit.stage[len("block"):])


def bottleneck_depth(units_per_stage, what):
    """The bottleneck ResNet depth with `units_per_stage` ({stage 2..5: units}), or PortError."""
    key = tuple(units_per_stage.get(s, 0) for s in (2, 3, 4, 5))
    known = {d: u for d, u in model_lib.IMAGENET_UNITS.items()
             if d not in model_lib.BASIC_DEPTHS}
    for depth, table in known.items():
        if table == key:
            return depth
    raise PortError("%s has units per stage %s, which match no bottleneck ResNet (%s)"
                    % (what, key, ", ".join("%d: %s" % (d, u) for d, u in known.items())))


def depth_from_blocks(names, pattern, first_stage, what):
    """The ImageNet ResNet depth whose units per stage and unit kind match the source names:
    `pattern` matches a unit's convolution with groups (stage, unit index from 0, conv number);
    stages are numbered from `first_stage`; a conv number 3 means bottleneck units. PortError
    naming `what` when nothing matches."""
    units, bottleneck = {}, False
    for name in names:
        m = pattern.match(name)
        if m:
            stage, unit, conv = int(m.group(1)), int(m.group(2)), int(m.group(3))
            units[stage] = max(units.get(stage, 0), unit + 1)
            bottleneck = bottleneck or conv == 3
    key = tuple(units.get(first_stage + s, 0) for s in range(4))
    for depth, table in model_lib.IMAGENET_UNITS.items():
        if tuple(table) == key and (depth not in model_lib.BASIC_DEPTHS) == bottleneck:
            return depth
    raise PortError("%s has %s %s units per stage, which match no ResNet (18: 2-2-2-2 basic, "
                    "34: 3-4-6-3 basic, 50: 3-4-6-3, 101: 3-4-23-3, 152: 3-8-36-3 bottleneck)"
                    % (what, "-".join(map(str, key)), "bottleneck" if bottleneck else "basic"))


def run_checkpoint_graph(path, images, build, scope):
    """Logits of a reference network on `images`, its `scope` variables restored from `path`.

    Args:
        build: placeholder [None, h, w, 3] -> logits; builds the network in a fresh graph.
    """
    tf1 = tf.compat.v1
    with tf.Graph().as_default():
        x = tf1.placeholder(tf.float32, [None] + list(images.shape[1:]))
        logits = build(x)
        saver = tf1.train.Saver([v for v in tf1.global_variables()
                                 if v.op.name.startswith(scope + "/")])
        with tf1.Session() as sess:
            saver.restore(sess, checkpoints.require(path))
            return sess.run(logits, {x: images})
