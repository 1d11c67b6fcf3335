"""resnet_tf1: the 2015 ResNet as legacy TF1-style graph code on `tf.compat.v1`."""

from resnet_tf1.model import (  # noqa: F401
    ARCHITECTURES, DATA_FORMATS, DTYPES, POOL_PADDINGS, SHORTCUTS, STEMS, VARIANTS,
    WEIGHT_DECAY_COLLECTION, CifarResNet20, CifarResNet32, CifarResNet44, CifarResNet56,
    CifarResNet110, CifarResNet1202, ResNet, ResNet18, ResNet34, ResNet50, ResNet101, ResNet152,
    ResNet200, weight_decay_loss)

__version__ = "0.1.0"
