"""TF-slim's own `resnet_v1` networks.

TF-slim's `nets` and `tf.compat.v1.layers` need the `tf-keras` package on TensorFlow 2.16+; slim's
nets import `tf_keras.legacy_tf_layers`, which tf-keras ships as `tf_keras.src.legacy_tf_layers`.
"""

import sys

import tensorflow as tf

from resnet_tf1 import errors


def nets():
    """(tf_slim, tf_slim.nets.resnet_v1), or errors.MissingPackageError naming the missing
    package."""
    try:
        import tf_keras  # noqa: F401
        import tf_keras.src.legacy_tf_layers as legacy
    except ImportError as e:
        raise errors.MissingPackageError("TF-slim's nets need the tf-keras package (pip install "
                                         "tf-keras): %s" % e)
    sys.modules.setdefault("tf_keras.legacy_tf_layers", legacy)
    import tf_slim
    from tf_slim.nets import resnet_v1
    return tf_slim, resnet_v1


def logits(images, depth, num_classes, is_training=False):
    """Builds `resnet_v1_<depth>` under its arg_scope in the current graph.

    Args:
        images: float32 [batch, 224, 224, 3].

    Returns:
        (logits [batch, num_classes], end_points); variables under `resnet_v1_<depth>/`.
    """
    tf_slim, resnet_v1 = nets()
    with tf_slim.arg_scope(resnet_v1.resnet_arg_scope()):
        net = getattr(resnet_v1, "resnet_v1_%d" % depth)
        out, end_points = net(images, num_classes=num_classes, is_training=is_training)
    return tf.reshape(out, [-1, num_classes]), end_points
