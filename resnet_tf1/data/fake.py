"""Small datasets in the real layouts, for tests and benchmarks where the real data is absent:
CIFAR-10 binary files and ImageNet-style JPEG TFRecords."""

import os

import numpy as np
import tensorflow as tf

from resnet_tf1.data import cifar10


# The names in the real archive's batches.meta.txt.
CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                 "truck"]


def learnable_images(labels, rng, size=32):
    """Images whose class shows in their colour: learnable in a few steps."""
    palette = np.array([[250, 20, 20], [20, 250, 20], [20, 20, 250], [250, 250, 20],
                        [250, 20, 250], [20, 250, 250], [130, 130, 130], [250, 130, 20],
                        [20, 130, 250], [130, 20, 130]], np.float32)
    base = palette[labels % len(palette)][:, None, None, :]
    noise = rng.normal(0, 20, (len(labels), size, size, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def write_cifar(data_dir, per_file=60, test=100, seed=0):
    """CIFAR-10 binary layout: 1 label byte + 3072 CHW bytes per record."""
    rng = np.random.RandomState(seed)
    root = os.path.join(data_dir, cifar10.SUBDIR)
    os.makedirs(root, exist_ok=True)
    for name, n in [(f, per_file) for f in cifar10.TRAIN_FILES] + [("test_batch.bin", test)]:
        labels = rng.randint(0, 10, n).astype(np.uint8)
        images = learnable_images(labels, rng).transpose(0, 3, 1, 2).reshape(n, -1)
        np.concatenate([labels[:, None], images], axis=1).tofile(os.path.join(root, name))
    with open(os.path.join(root, cifar10.META_FILE), "w") as f:  # as the real archive has it
        f.write("".join(n + "\n" for n in CIFAR10_NAMES) + "\n")
    return root


def write_imagenet(data_dir, split="validation", shards=2, per_shard=3, corrupt=1, seed=0):
    """JPEG TFRecords in the standard layout; `corrupt` records carry bytes that are no JPEG."""
    rng = np.random.RandomState(seed)
    os.makedirs(data_dir, exist_ok=True)
    count = 0
    for shard in range(shards):
        path = os.path.join(data_dir, "%s-%05d-of-%05d" % (split, shard, shards))
        with tf.io.TFRecordWriter(path) as w:
            for i in range(per_shard):
                h, wd = rng.randint(200, 400), rng.randint(200, 400)
                image = rng.randint(0, 255, (h, wd, 3)).astype(np.uint8)
                encoded = tf.io.encode_jpeg(image).numpy()
                if shard == 0 and i < corrupt:
                    encoded = b"\xff\xd8 this is not a jpeg" * 10
                else:
                    count += 1
                label = int(rng.randint(1, 1001))
                ex = tf.train.Example(features=tf.train.Features(feature={
                    "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(
                        value=[encoded])),
                    "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(
                        value=[label])),
                }))
                w.write(ex.SerializeToString())
    return count
