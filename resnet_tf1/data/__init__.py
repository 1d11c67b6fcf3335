"""Input pipelines (tf.data) and the paper's preprocessing. Augmentation lives here, never in
the model."""

from resnet_tf1.data.common import DataError  # noqa: F401

DATASETS = ("cifar10", "imagenet", "synthetic")
NUM_CLASSES = {"cifar10": 10, "imagenet": 1000}
IMAGE_SIZE = {"cifar10": 32, "imagenet": 224}
