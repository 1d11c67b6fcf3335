"""`--dataset=tfrecords`: any image set written as TFRecords with the standard features.

    DIR/train-00000-of-00128 ...        (`scripts/build_tfrecords.py`, or TF's classic
    DIR/validation-00000-of-00016 ...    build_imagenet_data.py: the same features)
    DIR/labels.txt                      "<label>:<class name>" per line (TF-slim's label file)

Features read: `image/encoded` (JPEG, PNG, ...) and `image/class/label`. The class count and
names come from labels.txt; the smallest label there is the label offset (1 for shards written
for 1001-class models, whose label 0 is the background): a model with exactly as many classes as
labels.txt names gets label - offset, one with offset more (e.g. 1001) gets the stored label.
Preprocessing as `--dataset=folder` (`imagenet.photo_pipeline`); unreadable records and images
that do not decode are skipped and counted per shard (`tfrecords`).
"""

import os

import tensorflow as tf

from resnet_tf1.data import common, imagenet, labels, preprocessing, tfrecords
from resnet_tf1.data.common import DataError, Dataset, DatasetSpec

LABELS_FILE = "labels.txt"

# The standard features (TF's build_imagenet_data.py; scripts/build_tfrecords.py writes them).
FEATURES = ("image/encoded", "image/format", "image/class/label", "image/class/synset",
            "image/class/text", "image/height", "image/width", "image/filename")


def read_labels(data_dir):
    """(label offset, [class names]) from DIR/labels.txt; DataError naming the file and line."""
    path = os.path.join(data_dir, LABELS_FILE)
    if not tf.io.gfile.exists(path):
        raise DataError("--data_dir=%s has no %s (\"<label>:<class name>\" per line; "
                        "scripts/build_tfrecords.py writes it beside the shards)"
                        % (data_dir, LABELS_FILE))
    with tf.io.gfile.GFile(path) as f:
        lines = [line.rstrip("\n") for line in f]
    entries = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        label, sep, name = line.partition(":")
        try:
            label = int(label)
        except ValueError:
            label = None
        if not sep or label is None or label < 0 or label in entries:
            raise DataError("%s line %d: expected \"<label>:<class name>\" with a new label >= 0, "
                            "got %r" % (path, number, line))
        entries[label] = name
    if not entries:
        raise DataError("%s names no classes" % path)
    offset = min(entries)
    if sorted(entries) != list(range(offset, offset + len(entries))):
        raise DataError("%s: labels must be consecutive from %d; got %d labels up to %d"
                        % (path, offset, len(entries), max(entries)))
    return offset, [entries[k] for k in sorted(entries)]


def label_shift(data_dir, num_classes):
    """What is subtracted from a stored label for a model with `num_classes` logits."""
    offset, names = read_labels(data_dir)
    if num_classes in (None, len(names)):
        return offset
    if num_classes == len(names) + offset:
        return 0
    raise DataError("--num_classes=%d does not fit %s: it names %d classes from label %d "
                    "(expected --num_classes=%d%s)"
                    % (num_classes, os.path.join(data_dir, LABELS_FILE), len(names), offset,
                       len(names), ", or %d with the stored labels" % (len(names) + offset)
                       if offset else ""))


def _parse(record, shift):
    features = tf.io.parse_single_example(record, {
        "image/encoded": tf.io.FixedLenFeature([], tf.string),
        "image/class/label": tf.io.FixedLenFeature([], tf.int64),
    })
    image = preprocessing.decode(features["image/encoded"])
    return image, tf.cast(features["image/class/label"], tf.int32) - shift


def dataset(data_dir, split, batch_size, training, opts=None, **options):
    """Batches of (images, labels) from the shards of `split` (train-* or validation-*)."""
    opts = common.options(opts, **options)
    shift = label_shift(data_dir, opts.num_classes)
    paths = imagenet.files(data_dir, split, "TFRecord shards")
    skips = opts.skips if opts.skips is not None else tfrecords.SkippedRecords()
    ds = tfrecords.read(paths, lambda record: _parse(record, shift), skips,
                        order=tfrecords.pipeline_order(training, opts.shuffled), seed=opts.seed)
    return imagenet.photo_pipeline(ds, batch_size, training, opts), None


def _spec(data_dir):
    return DatasetSpec("tfrecords", len(read_labels(data_dir)[1]), 224, True)


def _inference_record(data_dir, opts):
    rec = preprocessing.at_size(opts.preprocessing or imagenet.RGB_MEAN_PREPROCESSING,
                                opts.image_size or 224)
    offset, names = read_labels(data_dir)
    source = os.path.join(data_dir, LABELS_FILE)
    num_classes = opts.num_classes or len(names)
    if num_classes == len(names):
        record = labels.names_record(names, source)
    elif num_classes == len(names) + offset:  # stored labels; the leading ones are no class
        record = labels.names_record(["background_%d" % i for i in range(offset)] + names,
                                     source)
    else:
        record = None
    return rec, record, {}


DATASET = Dataset(
    "tfrecords", "TFRecord shards with the standard features and a labels.txt "
    "(scripts/build_tfrecords.py).", _spec, dataset, _inference_record,
    options=("image_size", "preprocessing"))
