"""resnet_tf1: the 2015 ResNet as legacy TF1-style graph code on `tf.compat.v1`."""

import os

# oneDNN's CPU kernels (fused conv + bias + residual add + ReLU among them). TensorFlow turns
# them on by itself only on x86 CPUs with AVX-512 VNNI/BF16 or AMX; on an AVX2-only AMD EPYC they
# measured +6-8 % at inference for our graph and no loss in training (BUILD.md, "Speed"). Read
# once, when TensorFlow loads: this applies when resnet_tf1 is imported first, as every script
# here does; TF_ENABLE_ONEDNN_OPTS=0 in the environment turns it off.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from resnet_tf1.model import (  # noqa: F401
    ARCHITECTURES, DATA_FORMATS, DTYPES, POOL_PADDINGS, SHORTCUTS, STEMS, VARIANTS,
    WEIGHT_DECAY_COLLECTION, CifarResNet20, CifarResNet32, CifarResNet44, CifarResNet56,
    CifarResNet110, CifarResNet1202, ResNet, ResNet18, ResNet34, ResNet50, ResNet101, ResNet152,
    ResNet200, weight_decay_loss)

__version__ = "0.1.0"
