"""Pieces shared by the per-format porting modules."""

import collections
import re

import numpy as np

# Variables that checkpoints carry beside the model and that a port leaves behind on purpose:
# the step counter and optimizer / moving-average slots (training state, not weights).
TRAINING_STATE = re.compile(
    r"(^|/)global_step$|/(Momentum|Adam|Adam_\d+|RMSProp|RMSProp_\d+|ExponentialMovingAverage"
    r"|Adagrad|Ftrl|Ftrl_\d+)$|^(beta1_power|beta2_power)$")

Port = collections.namedtuple("Port", ["arrays", "model", "preprocessing", "labels", "skipped"])

# Preprocessing records written to config.json.
VGG_RGB = {"channel_order": "RGB", "mean": [123.68, 116.78, 103.94], "std": [1.0, 1.0, 1.0],
           "scale": 255.0, "resize_shorter_side": 256, "crop": 224}
CAFFE_BGR = {"channel_order": "BGR", "mean": [103.939, 116.779, 123.68], "std": [1.0, 1.0, 1.0],
             "scale": 255.0, "resize_shorter_side": 256, "crop": 224}


class PortError(ValueError):
    """A source that cannot be ported exactly; the message lists the offending names."""


def listing(names, limit=20):
    """Sorted names, comma-separated, the first `limit` of them."""
    names = sorted(names)
    more = "" if len(names) <= limit else " ... (%d more)" % (len(names) - limit)
    return ", ".join(names[:limit]) + more


class Consumer:
    """Takes source arrays by name, exactly once each, and reports what was never taken."""

    def __init__(self, arrays, what):
        self._arrays = dict(arrays)
        self._taken = set()
        self._what = what
        self.skipped = sorted(n for n in self._arrays if TRAINING_STATE.search(n))
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
    """Our BN variable names under a conv scope, in (gamma, beta, mean, variance) order."""
    return ["%s/BatchNorm/%s" % (prefix, k)
            for k in ("gamma", "beta", "moving_mean", "moving_variance")]


def bottleneck_depth(units_per_stage, what):
    """The bottleneck ResNet depth with `units_per_stage` ({stage 2..5: units}), or PortError."""
    from resnet_tf1 import model as model_lib
    key = tuple(units_per_stage.get(s, 0) for s in (2, 3, 4, 5))
    for depth, table in model_lib.IMAGENET_UNITS.items():
        if table == key and depth not in model_lib.BASIC_DEPTHS:
            return depth
    raise PortError("%s has units per stage %s, which match no bottleneck ResNet (50: (3, 4, 6, "
                    "3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3), 200: (3, 24, 36, 3))"
                    % (what, key))


def unit_scopes(model):
    """[(stage_index, unit_index, our unit scope, has_projection)] for an ImageNet ResNet.

    Derived from the architecture table, not from the order a graph happens to create variables.
    """
    r = model.resolve(224)
    table, units = model.stages(r["architecture"])
    basic = model.depth in (18, 34)
    kind = "basic" if basic else "bottleneck"
    out = []
    depth_in = 64
    for s, (stage, n) in enumerate(zip(table, units)):
        depth = stage.base_depth if basic else 4 * stage.base_depth
        for k in range(n):
            projection = r["shortcut"] == "C" or (r["shortcut"] == "B" and depth_in != depth)
            out.append((s, k, "%s/%s/unit_%d/%s" % (r["scope"], stage.scope, k + 1, kind),
                        projection))
            depth_in = depth
    return out
