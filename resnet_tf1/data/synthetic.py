"""Synthetic data for benchmarks: random tensors made on the device, no input pipeline."""

import tensorflow as tf

from resnet_tf1.data import imagenet, preprocessing
from resnet_tf1.data.common import Dataset, DatasetSpec


def inputs(batch_size, image_size, num_classes, device=None, seed=0):
    """(images [batch, size, size, 3] float32, labels [batch] int32), fixed after the first run.

    The tensors live in local (non-checkpointed) variables on `device`, so that a benchmark
    measures the model, not host-to-device copies.
    """
    with tf.device(device):
        images = tf.compat.v1.get_local_variable(
            "synthetic_images", initializer=tf.random.normal(
                [batch_size, image_size, image_size, 3], seed=seed), trainable=False)
        labels = tf.compat.v1.get_local_variable(
            "synthetic_labels", initializer=tf.random.uniform(
                [batch_size], 0, num_classes, tf.int32, seed=seed), trainable=False)
    return images.read_value(), labels.read_value()


def _inference_record(data_dir, opts):
    rec = preprocessing.at_size(opts.preprocessing or imagenet.RGB_MEAN_PREPROCESSING,
                                opts.image_size or 224)
    return rec, None, {}


DATASET = Dataset(
    "synthetic", "Random tensors made on the device, shaped like ImageNet (benchmarks only; no "
    "files, no evaluation set).",
    lambda data_dir: DatasetSpec("synthetic", 1000, 224, False), None, _inference_record,
    options=("image_size", "preprocessing"))
