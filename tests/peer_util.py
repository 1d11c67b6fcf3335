"""Random weights for the peer-parity tests: every variable, BN moving statistics included."""

import numpy as np


def random_value(name, shape, rng):
    """A value that keeps a deep random ResNet's activations in a sane range."""
    leaf = name.split("/")[-1].split(":")[0]
    if leaf in ("gamma",):
        return rng.uniform(0.5, 1.5, shape).astype(np.float32)
    if leaf in ("moving_variance", "running_std"):
        return rng.uniform(0.5, 2.0, shape).astype(np.float32)
    if leaf in ("beta", "moving_mean", "biases", "bias", "running_mean"):
        return rng.normal(0.0, 0.2, shape).astype(np.float32)
    fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
    return rng.normal(0.0, np.sqrt(1.0 / fan_in), shape).astype(np.float32)


def relative_error(ours, reference):
    """max |ours - reference| / max |reference|."""
    ours = np.asarray(ours, np.float64)
    reference = np.asarray(reference, np.float64)
    return float(np.max(np.abs(ours - reference)) / np.max(np.abs(reference)))
