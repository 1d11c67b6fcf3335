"""`--dataset=folder`: your own images, one folder per class (torchvision's ImageFolder layout).

    DIR/train/<class>/<images>           the classes are the sorted folder names of train/
    DIR/validation/<class>/<images>      (or DIR/val/): evaluation; every class must be a
                                         training class
    or no validation folder and --validation_fraction=F: the files whose relative path hashes
    below F are held out (stable when files are added or removed).

Images are JPEG, PNG, BMP or GIF of any size (found by extension, in any case, in the class
folder and below it); grey, palette, CMYK and alpha images become RGB through the one decoder
(`preprocessing.decode`). Training: the ImageNet scale augmentation at --image_size
(`imagenet.train_preprocess`); evaluation: shorter side image_size * 256/224, centre crop; both
normalised by the run's preprocessing record. A file that does not decode is skipped, logged
with its path once, and counted in the pipeline's `SkippedRecords` (the `num_skipped` of the
progress line and metrics.json); it never ends a run.
"""

import hashlib
import os

import numpy as np
import tensorflow as tf
from absl import logging

from resnet_tf1.data import common, imagenet, labels, preprocessing
from resnet_tf1.data.common import DataError, Dataset, DatasetSpec
from resnet_tf1.data.tfrecords import SkippedRecords

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
TRAIN_DIR = "train"
VALIDATION_DIRS = ("validation", "val")


def _subdirs(path):
    return sorted(e.name for e in os.scandir(path) if e.is_dir() and not e.name.startswith("."))


def classes(data_dir):
    """The class names: the sorted folder names of DIR/train. DataError when there are none."""
    root = os.path.join(data_dir, TRAIN_DIR)
    if not os.path.isdir(root):
        raise DataError("--data_dir=%s has no %s/ folder (--dataset=folder expects "
                        "DIR/train/<class>/<images> and DIR/validation/<class>/...)"
                        % (data_dir, TRAIN_DIR))
    names = _subdirs(root)
    if not names:
        raise DataError("%s has no class folders (expected %s/<class>/<images>)" % (root, root))
    return names


def validation_dir(data_dir):
    """DIR/validation or DIR/val, whichever exists (validation first), or None."""
    for name in VALIDATION_DIRS:
        path = os.path.join(data_dir, name)
        if os.path.isdir(path):
            return path
    return None


def images_under(path):
    """The image files (by extension, any case) in `path` and below it, sorted; hidden entries
    skipped."""
    out = []
    for root, dirs, files in os.walk(path, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out += [os.path.join(root, f) for f in sorted(files)
                if f.lower().endswith(EXTENSIONS) and not f.startswith(".")]
    return out


def held_out(relative_path, fraction):
    """Whether the file at `relative_path` (to DIR/train) is in the validation split: the first
    8 bytes of its SHA-1, as a fraction of 2^64, below `fraction`."""
    digest = hashlib.sha1(relative_path.replace(os.sep, "/").encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64 < fraction


def listing(data_dir, split, validation_fraction=0.0):
    """(paths, labels, class names) of `split` ("train" or "eval"), in sorted order.

    Raises:
        DataError: no train folder or classes; a validation class that training lacks; an empty
            split; a validation split asked for where there is neither a validation folder nor
            --validation_fraction (or both).
    """
    names = classes(data_dir)
    index = {n: i for i, n in enumerate(names)}
    train_root = os.path.join(data_dir, TRAIN_DIR)
    val_root = validation_dir(data_dir)
    if val_root and validation_fraction:
        raise DataError("--validation_fraction=%g holds out training files, but --data_dir=%s "
                        "has a validation folder (%s): use one or the other"
                        % (validation_fraction, data_dir, val_root))
    paths, label_ids = [], []
    if split == "eval" and val_root:
        extra = [n for n in _subdirs(val_root) if n not in index]
        if extra:
            raise DataError("%s has class folder(s) that %s lacks: %s (training has %d classes: "
                            "%s)" % (val_root, train_root, ", ".join(extra), len(names),
                                     ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")))
        for name in _subdirs(val_root):
            found = images_under(os.path.join(val_root, name))
            paths += found
            label_ids += [index[name]] * len(found)
    elif split == "eval" and not validation_fraction:
        raise DataError("--data_dir=%s has no validation/ or val/ folder to evaluate on: add one "
                        "(validation/<class>/<images>) or hold out training files with "
                        "--validation_fraction (e.g. 0.1)" % data_dir)
    else:
        for name in names:
            for path in images_under(os.path.join(train_root, name)):
                if validation_fraction and held_out(os.path.relpath(path, train_root),
                                                    validation_fraction) != (split == "eval"):
                    continue
                paths.append(path)
                label_ids.append(index[name])
    if not paths:
        where = val_root if split == "eval" and val_root else train_root
        what = ("held-out " if split == "eval" and not val_root else "") + "images"
        raise DataError("%s: no %s found for the %s split (extensions %s)"
                        % (where, what, "evaluation" if split == "eval" else "training",
                           ", ".join(EXTENSIONS)))
    return paths, label_ids, names


class _Skips:
    """Which files of a pass did not decode: each element that passes the decoder marks its
    index; at the end-of-pass marker the unmarked ones are reported to `skips` (logged with
    their path the first time)."""

    def __init__(self, paths, skips):
        self._paths = paths
        self._skips = skips
        self._seen = np.zeros(len(paths), bool)
        self._reported = set()

    def __call__(self, index):
        index = int(index.numpy() if hasattr(index, "numpy") else index)
        if index >= 0:
            self._seen[index] = True
            return 0
        missing = np.flatnonzero(~self._seen)
        self._seen[:] = False
        for i in missing:
            path = self._paths[i]
            first = path not in self._reported
            self._reported.add(path)
            self._skips.item_skipped(path, "the image does not decode", log=first)
        return 0


def decoded_images(paths, label_ids, skips, training, seed=None, shuffled=False):
    """(RGB uint8 image, label) for every file that decodes, in order (training: shuffled each
    pass, repeated; `shuffled`: one pass shuffled once with `seed`); the rest are counted in
    `skips` at the end of each pass."""
    n = len(paths)
    table = tf.constant(paths)
    label_table = tf.constant(label_ids, tf.int32)
    order = tf.data.Dataset.range(n)
    if training:
        order = order.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    elif shuffled:
        order = common.shuffle_once(order, seed, n)
    order = order.concatenate(tf.data.Dataset.from_tensors(tf.constant(-1, tf.int64)))
    if training:
        order = order.repeat()

    def decode(index):
        image = tf.cond(index < 0, lambda: tf.zeros([1, 1, 3], tf.uint8),
                        lambda: preprocessing.decode(tf.io.read_file(table[tf.maximum(index, 0)])))
        return image, label_table[tf.maximum(index, 0)], index

    ds = order.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.ignore_errors()  # a file that does not decode (or vanished)
    account = _Skips(paths, skips)

    def mark(image, label, index):
        done = tf.py_function(account, [index], tf.int64)
        with tf.control_dependencies([done]):
            return tf.identity(image), label, index

    ds = ds.map(mark).filter(lambda image, label, index: index >= 0)
    return ds.map(lambda image, label, index: (image, label))


def dataset(data_dir, split, batch_size, training, opts=None, **options):
    """Batches of (images [batch, size, size, 3] float32, labels [batch] int32) and the number
    of files listed for the split."""
    opts = common.options(opts, **options)
    paths, label_ids, names = listing(data_dir, split, opts.validation_fraction)
    _check_classes(data_dir, names, opts.num_classes)
    logging.info("--dataset=folder: %d %s images in %d classes under %s", len(paths),
                 "training" if split == "train" else "evaluation", len(names), data_dir)
    skips = opts.skips if opts.skips is not None else SkippedRecords()
    ds = decoded_images(paths, label_ids, skips, training, opts.seed, opts.shuffled)
    return imagenet.photo_pipeline(ds, batch_size, training, opts), len(paths)


def _check_classes(data_dir, names, num_classes):
    if num_classes is not None and num_classes < len(names):
        raise DataError("--num_classes=%d is fewer than the %d class folders of %s"
                        % (num_classes, len(names), os.path.join(data_dir, TRAIN_DIR)))


def _spec(data_dir):
    return DatasetSpec("folder", len(classes(data_dir)), 224, True)


def _inference_record(data_dir, opts):
    rec = preprocessing.at_size(opts.preprocessing or imagenet.RGB_MEAN_PREPROCESSING,
                                opts.image_size or 224)
    names = classes(data_dir)
    return rec, (labels.names_record(names, "folders of " + os.path.join(data_dir, TRAIN_DIR))
                 if (opts.num_classes or len(names)) == len(names) else None), {}


DATASET = Dataset(
    "folder", "Your images: --data_dir/train/<class>/*.jpg|png|bmp|gif and validation/ (or val/, "
    "or --validation_fraction).", _spec, dataset, _inference_record,
    options=("image_size", "preprocessing", "validation_fraction"))
