"""Imports of the reference implementations ported checkpoints are checked against.

TF-slim's `nets` and `tf.compat.v1.layers` need the `tf-keras` package on TensorFlow 2.16+; slim's
nets import `tf_keras.legacy_tf_layers`, which tf-keras ships as `tf_keras.src.legacy_tf_layers`.
"""

import os
import sys


def slim_resnet_v1():
    """(tf_slim, tf_slim.nets.resnet_v1), or ImportError naming the missing package."""
    try:
        import tf_keras  # noqa: F401
        import tf_keras.src.legacy_tf_layers as legacy
    except ImportError as e:
        raise ImportError("TF-slim's nets need the tf-keras package (pip install tf-keras): %s"
                          % e)
    sys.modules.setdefault("tf_keras.legacy_tf_layers", legacy)
    import tf_slim
    from tf_slim.nets import resnet_v1
    return tf_slim, resnet_v1


def tf_keras():
    """The tf-keras package (Keras 2), for `applications.ResNet50` and h5 weights."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tf_keras as keras
    return keras
