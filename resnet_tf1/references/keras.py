"""tf-keras' own ResNets (Keras 2), and the 2016 Keras ResNet50 rebuilt with tf-keras layers."""

import os

from resnet_tf1 import errors


def tf_keras():
    """The tf-keras package (Keras 2), for `applications.ResNet50` and h5 weights."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    try:
        import tf_keras as keras
    except ImportError as e:
        raise errors.MissingPackageError("the Keras reference needs the tf-keras package (pip "
                                         "install tf-keras): %s" % e)
    return keras


def keras2016_resnet50(classes=1000):
    """The 2016 Keras ResNet50 of seed article 003, built with tf-keras, with a linear head.

    Layer names `conv1`, `bn_conv1`, `res2a_branch2a`, ...; BN epsilon 1e-3 (the Keras default
    then); `ZeroPadding2D(3)` + 7x7/2 VALID; 3x3/2 max-pool VALID (112 -> 55); `fc1000`.
    """
    keras = tf_keras()
    layers = keras.layers

    def unit(x, filters, stage, block, strides=None):
        f1, f2, f3 = filters
        conv, bn = "res%d%s_branch" % (stage, block), "bn%d%s_branch" % (stage, block)
        first = strides is not None
        s = strides or (1, 1)
        y = layers.Conv2D(f1, (1, 1), strides=s, name=conv + "2a")(x)
        y = layers.Activation("relu")(layers.BatchNormalization(epsilon=1e-3, name=bn + "2a")(y))
        y = layers.Conv2D(f2, 3, padding="same", name=conv + "2b")(y)
        y = layers.Activation("relu")(layers.BatchNormalization(epsilon=1e-3, name=bn + "2b")(y))
        y = layers.Conv2D(f3, (1, 1), name=conv + "2c")(y)
        y = layers.BatchNormalization(epsilon=1e-3, name=bn + "2c")(y)
        if first:
            x = layers.Conv2D(f3, (1, 1), strides=s, name=conv + "1")(x)
            x = layers.BatchNormalization(epsilon=1e-3, name=bn + "1")(x)
        return layers.Activation("relu")(layers.add([y, x]))

    inputs = layers.Input(shape=(224, 224, 3))
    x = layers.ZeroPadding2D((3, 3))(inputs)
    x = layers.Conv2D(64, (7, 7), strides=(2, 2), name="conv1")(x)
    x = layers.Activation("relu")(layers.BatchNormalization(epsilon=1e-3, name="bn_conv1")(x))
    x = layers.MaxPooling2D((3, 3), strides=(2, 2))(x)
    for stage, (units, width, stride) in enumerate(
            [(3, 64, 1), (4, 128, 2), (6, 256, 2), (3, 512, 2)], start=2):
        for k in range(units):
            x = unit(x, [width, width, 4 * width], stage, "abcdef"[k],
                     strides=(stride, stride) if k == 0 else None)
    x = layers.AveragePooling2D((7, 7), name="avg_pool")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(classes, name="fc1000")(x)
    return keras.models.Model(inputs, x, name="resnet50")


def application(depth, classes=1000):
    """tf-keras' `applications.ResNet<depth>` (50, 101, 152) with random weights and linear
    logits, the model whose `.h5` files the `keras` port reads."""
    keras = tf_keras()
    build = getattr(keras.applications, "ResNet%d" % depth)
    return build(weights=None, classes=classes, classifier_activation=None)
