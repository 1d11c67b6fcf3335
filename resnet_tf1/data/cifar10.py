"""CIFAR-10 in its binary layout, with the paper's augmentation (Section 4.2).

`cifar-10-batches-bin/data_batch_{1..5}.bin` and `test_batch.bin`: records of 1 label byte and
3072 image bytes (3 x 32 x 32, channel-major). Training: per-pixel mean subtracted (the mean of the
training split, cached beside the data), 4-pixel zero pad, random 32x32 crop, random horizontal
flip. The paper's 45k/5k train/validation split is selectable.
"""

import hashlib
import io
import os
import shutil
import tarfile
import tempfile
import urllib.request

import numpy as np
import tensorflow as tf

from resnet_tf1 import fileio
from resnet_tf1.data import labels, preprocessing
from resnet_tf1.data.common import (DataError, Dataset, DatasetSpec, batch_and_prefetch,
                                    map_with_random_keys, shuffle_and_repeat)

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
SUBDIR = "cifar-10-batches-bin"
TRAIN_FILES = ["data_batch_%d.bin" % i for i in range(1, 6)]
TEST_FILES = ["test_batch.bin"]
RECORD_BYTES = 1 + 32 * 32 * 3
NUM_CLASSES = 10
VALIDATION_SIZE = 5000  # the paper's 45k/5k split
META_FILE = "batches.meta.txt"  # the class names, one per line
# What a training run records (with its mean image saved beside it as MEAN_IMAGE_FILE) so that
# predict and export feed the network exactly what the pipeline below fed it; a photo of another
# size is resized (shorter side 32) and centre-cropped first.
MEAN_IMAGE_FILE = "per_pixel_mean.npy"
PREPROCESSING = preprocessing.record("RGB", mean=None, mean_image=MEAN_IMAGE_FILE,
                                     resize_shorter_side=32, crop=32)


def class_names(root):
    """The class names of `root/batches.meta.txt` (the data set's own), or None without it."""
    path = os.path.join(root, META_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        names = [line.strip() for line in f if line.strip()]
    if len(names) != NUM_CLASSES:
        raise DataError("%s names %d classes, expected %d" % (path, len(names), NUM_CLASSES))
    return names


def _md5(path):
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def maybe_download(data_dir):
    """Returns the directory of the binary files, downloading and checking the archive if needed.

    Raises:
        DataError: the files are absent and the archive cannot be fetched or fails its MD5.
    """
    root = os.path.join(data_dir, SUBDIR)
    if all(os.path.exists(os.path.join(root, f)) for f in TRAIN_FILES + TEST_FILES):
        return root
    archive = os.path.join(data_dir, os.path.basename(URL))
    if not os.path.exists(archive):
        # Download beside nothing of the user's: a temporary file elsewhere, moved into
        # --data_dir (created then) only once complete, so a failure leaves no trace.
        fd, tmp = tempfile.mkstemp(suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f, urllib.request.urlopen(URL, timeout=60) as r:
                shutil.copyfileobj(r, f)
        except OSError as e:
            os.remove(tmp)
            raise DataError(
                "--data_dir=%s has no CIFAR-10 (%s/{%s,test_batch.bin}) and %s could not be "
                "downloaded (%s). Download it elsewhere and extract it into %s."
                % (data_dir, SUBDIR, ",".join(TRAIN_FILES), URL, e, data_dir))
        os.makedirs(data_dir, exist_ok=True)
        shutil.move(tmp, archive)
    digest = _md5(archive)
    if digest != MD5:
        raise DataError("%s has MD5 %s, expected %s: delete it and download again"
                        % (archive, digest, MD5))
    with tempfile.TemporaryDirectory(dir=data_dir) as tmp:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(tmp, filter="data")
        if os.path.exists(root):
            shutil.rmtree(root)
        os.replace(os.path.join(tmp, SUBDIR), root)
    return root


def _records(root, files):
    paths = [os.path.join(root, f) for f in files]
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise DataError("CIFAR-10 file(s) missing: %s" % ", ".join(missing))
    for p in paths:
        if os.path.getsize(p) % RECORD_BYTES:
            raise DataError("%s is not a CIFAR-10 binary file: its size %d is not a multiple of "
                            "%d bytes" % (p, os.path.getsize(p), RECORD_BYTES))
        _check_labels(p)
    return paths, sum(os.path.getsize(p) // RECORD_BYTES for p in paths)


def _check_labels(path):
    """DataError naming the file and the first record whose label byte is not 0..9."""
    labels = np.memmap(path, np.uint8, mode="r")[::RECORD_BYTES]
    bad = np.flatnonzero(labels >= NUM_CLASSES)
    if bad.size:
        raise DataError("%s is not a CIFAR-10 binary file: record %d has label %d, expected 0-9 "
                        "(%d of %d records are out of range)" % (path, bad[0], labels[bad[0]],
                                                                 bad.size, labels.size))


# The record ranges of the CIFAR-10 files: all 50k training records, the paper's first 45k and
# last 5k of them, and the 10k test records. `dataset(split=..., holdout=...)` picks one.
SUBSETS = ("train", "train45k", "validation", "test")


def subset_files(root, subset, validation_size=VALIDATION_SIZE):
    """(files, skip, take) of a subset: 'train' (all 50k), 'train45k', 'validation' (the last
    5k of the training files) or 'test'."""
    if subset == "test":
        paths, n = _records(root, TEST_FILES)
        return paths, 0, n
    paths, n = _records(root, TRAIN_FILES)
    if subset in ("train45k", "validation") and not 0 < validation_size < n:
        raise DataError("the validation split needs %d of the %d training records in %s"
                        % (validation_size, n, root))
    if subset == "train":
        return paths, 0, n
    if subset == "train45k":
        return paths, 0, n - validation_size
    if subset == "validation":
        return paths, n - validation_size, validation_size
    raise DataError("unknown CIFAR-10 subset %r: expected one of %s" % (subset, ", ".join(SUBSETS)))


def _decode(record):
    raw = tf.io.decode_raw(record, tf.uint8)
    label = tf.cast(raw[0], tf.int32)
    image = tf.transpose(tf.reshape(raw[1:], [3, 32, 32]), [1, 2, 0])
    return tf.cast(image, tf.float32), label


def per_pixel_mean(root, validation_size=VALIDATION_SIZE, holdout=False):
    """The [32, 32, 3] mean image of the training split, computed once and cached as .npy."""
    paths, skip, take = subset_files(root, "train45k" if holdout else "train", validation_size)
    cache = os.path.join(root, "mean_%s_%d.npy" % ("train45k" if holdout else "train", take))
    if os.path.exists(cache):
        return np.load(cache)
    data = np.concatenate([np.fromfile(p, np.uint8).reshape(-1, RECORD_BYTES) for p in paths])
    images = data[skip:skip + take, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    mean = images.astype(np.float64).mean(axis=0).astype(np.float32)
    buffer = io.BytesIO()
    np.save(buffer, mean)
    fileio.write_bytes(cache, buffer.getvalue())
    return mean


AUGMENT_KEYS = 2


def augment(image, keys):
    """The paper's: 4-pixel zero pad, random 32x32 crop, random horizontal flip.

    `keys`: [AUGMENT_KEYS, 2] stateless-random keys (`common.map_with_random_keys`), one per
    draw.
    """
    image = tf.pad(image, [[4, 4], [4, 4], [0, 0]])
    image = tf.image.stateless_random_crop(image, [32, 32, 3], seed=keys[0])
    return tf.image.stateless_random_flip_left_right(image, seed=keys[1])


def dataset(data_dir, split, batch_size, training, holdout=False, seed=None,
            validation_size=VALIDATION_SIZE, download=True, shuffled=False):
    """Batches of (images [batch, 32, 32, 3] float32 minus the mean, labels [batch] int32).

    Args:
        split: "train" or "eval"; with `holdout` they are the paper's 45k/5k split, else the 50k
            training files and the 10k test file.
        shuffled: evaluation only: one pass over the split's records shuffled with `seed`.
    """
    root = maybe_download(data_dir) if download else os.path.join(data_dir, SUBDIR)
    if split not in ("train", "eval"):
        raise DataError("unknown CIFAR-10 split %r: expected train or eval" % split)
    subset = {("train", False): "train", ("train", True): "train45k",
              ("eval", False): "test", ("eval", True): "validation"}[(split, holdout)]
    paths, skip, take = subset_files(root, subset, validation_size)
    mean = per_pixel_mean(root, validation_size, holdout)
    ds = tf.data.FixedLengthRecordDataset(paths, RECORD_BYTES).skip(skip).take(take)
    ds = shuffle_and_repeat(ds, training, seed=seed, shuffle_buffer=min(take, 50000),
                            shuffled=shuffled)

    def preprocess(record, keys=None):
        image, label = _decode(record)
        image = preprocessing.normalize(image, PREPROCESSING, mean)
        if training:
            image = augment(image, keys)
        return image, label

    if training:
        ds = map_with_random_keys(ds, seed, AUGMENT_KEYS, preprocess)
    else:
        ds = ds.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE)
    return batch_and_prefetch(ds, batch_size, training), take


def _pipeline(data_dir, split, batch_size, training, opts):
    """`dataset` for `data.make_dataset` (full_image is what CIFAR-10's evaluation gives anyway:
    whole 32x32 images)."""
    if opts.image_size not in (None, 32):
        raise DataError("--image_size=%d: CIFAR-10 images are 32x32 (--dataset=cifar10 trains "
                        "and evaluates at 32)" % opts.image_size)
    return dataset(data_dir, split, batch_size, training, holdout=opts.holdout, seed=opts.seed,
                   shuffled=opts.shuffled)


def _inference_record(data_dir, opts):
    root = os.path.join(data_dir, SUBDIR)
    mean = per_pixel_mean(root, holdout=opts.holdout)
    names = class_names(root)
    return (dict(PREPROCESSING), labels.names_record(names, META_FILE) if names else None,
            {MEAN_IMAGE_FILE: mean})


DATASET = Dataset(
    "cifar10", "CIFAR-10 binary files (downloaded into --data_dir when absent).",
    lambda data_dir: DatasetSpec("cifar10", NUM_CLASSES, 32, True), _pipeline,
    _inference_record, options=("holdout", "image_size", "full_image"))
