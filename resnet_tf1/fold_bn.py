"""Batch norm folded into the conv before it, for inference (export and the inference benchmark).

At inference BN is an affine map per channel: y = gamma * (x - mean) / sqrt(var + eps) + beta.
After a conv x = W * z (+ b) it folds into the conv:

    s  = gamma / sqrt(var + eps)        per output channel
    W' = W * s                          (scaling the kernel's last axis)
    b' = (b - mean) * s + beta          (b = 0 for convs without a bias)

`fold(arrays, epsilon)` does this on a checkpoint's arrays by name (`<conv>/weights`,
`<conv>/biases`, `<conv>/BatchNorm/{gamma,beta,moving_mean,moving_variance}`), in float64, and
returns the arrays of the graph `ResNet(...)(images, fold_batch_norm=True)` builds. epsilon is
the model's own, exactly (the unfolded inference graph normalises with it too, below
`tf.nn.fused_batch_norm`'s floor included: see `model.ResNet`'s bn_epsilon).
"""

import numpy as np

from resnet_tf1 import checkpoints
from resnet_tf1 import model as model_lib

_BN = "/%s/" % model_lib.BN_SCOPE
_BN_PARTS = model_lib.BN_PARAMETERS


def fold(arrays, epsilon):
    """{name: array} of a model's variables -> {name: array} of its BN-folded form.

    Raises:
        checkpoints.CheckpointError: a BN layer without its conv weights or one of its four
            tensors (naming it).
    """
    epsilon = float(epsilon)
    out = {}
    scopes = sorted({n.split(_BN)[0] for n in arrays if _BN in n})
    for name, value in arrays.items():
        if _BN not in name and not any(name == s + "/weights" or name == s + "/biases"
                                       for s in scopes):
            out[name] = value
    for scope in scopes:
        needed = ["%s%s%s" % (scope, _BN, p) for p in _BN_PARTS] + [scope + "/weights"]
        missing = [n for n in needed if n not in arrays]
        if missing:
            raise checkpoints.CheckpointError("cannot fold batch norm of %s: missing %s"
                                              % (scope, ", ".join(missing)))
        gamma, beta, mean, variance = (np.asarray(arrays["%s%s%s" % (scope, _BN, p)],
                                                  np.float64) for p in _BN_PARTS)
        weights = np.asarray(arrays[scope + "/weights"], np.float64)
        bias = np.asarray(arrays.get(scope + "/biases", np.zeros_like(mean)), np.float64)
        s = gamma / np.sqrt(variance + epsilon)
        out[scope + "/weights"] = (weights * s).astype(np.float32)
        out[scope + "/biases"] = ((bias - mean) * s + beta).astype(np.float32)
    return out


def folded_arrays(arrays, model):
    """The BN-folded arrays of `model`'s variables among a checkpoint's `arrays` ({name: array},
    read; training state such as optimizer slots and the step left out)."""
    return fold({n: a for n, a in arrays.items() if not checkpoints.is_training_state(n)},
                model.bn_epsilon)
