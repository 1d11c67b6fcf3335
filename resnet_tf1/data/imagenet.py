"""ImageNet as TFRecords in the standard layout, with the paper's preprocessing (Section 3.4).

Files `train-?????-of-?????` and `validation-?????-of-?????` in --data_dir; features
`image/encoded` (JPEG) and `image/class/label` in 1..1000. Training: scale augmentation (shorter
side random in [256, 480]), random 224x224 crop, horizontal flip, the AlexNet PCA colour
augmentation, per-channel mean subtracted (standing in for the per-pixel mean). Evaluation: shorter
side 256, centre 224 crop; or the paper's 10 crops (4 corners + centre, and their flips).
A record that cannot be read or parsed, or an image that cannot be decoded, is skipped; each
shard's skips are logged with its file name and counted (`tfrecords.SkippedRecords`).
"""

import os

import tensorflow as tf

from resnet_tf1.data import common, labels, preprocessing, tfrecords
from resnet_tf1.data.common import (DataError, Dataset, DatasetSpec, batch_and_prefetch,
                                    map_with_random_keys)

MEAN_RGB = [123.68, 116.78, 103.94]
# AlexNet's PCA lighting noise (Krizhevsky et al. 2012), in the 0..255 scale.
EIGVAL = [55.46, 4.794, 1.148]
EIGVEC = [[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]]
PATTERNS = {"train": "train-*-of-*", "eval": "validation-*-of-*"}


def preprocessing_record(channel_order, mean, **extra):
    """The `preprocessing` entry of a converted checkpoint's config.json: how the network's
    framework fed it (0..255 pixels in `channel_order`, minus `mean`; shorter side resized to
    256, centre 224 crop). See `data.preprocessing`."""
    return preprocessing.record(channel_order, mean, resize_shorter_side=256, crop=224, **extra)


# RGB minus the ImageNet channel means: TF-slim (its "vgg_preprocessing"), the TF official models
# and this project's own ImageNet pipeline.
RGB_MEAN_PREPROCESSING = preprocessing_record("RGB", MEAN_RGB)
# BGR minus the same means in BGR order: what Keras' `preprocess_input` calls mode "caffe".
BGR_MEAN_PREPROCESSING = preprocessing_record("BGR", [103.939, 116.779, 123.68])


def files(data_dir, split, what="ImageNet TFRecords"):
    pattern = os.path.join(data_dir, PATTERNS[split])
    found = sorted(tf.io.gfile.glob(pattern))
    if not found:
        raise DataError("--data_dir=%s has no %s matching %s (the standard "
                        "layout: train-00000-of-01024 ..., validation-00000-of-00128 ...)"
                        % (data_dir, what, PATTERNS[split]))
    return found


def _parse(record, label_offset):
    features = tf.io.parse_single_example(record, {
        "image/encoded": tf.io.FixedLenFeature([], tf.string),
        "image/class/label": tf.io.FixedLenFeature([], tf.int64),
    })
    image = preprocessing.decode(features["image/encoded"])
    label = tf.cast(features["image/class/label"], tf.int32) - label_offset
    return image, label


TRAIN_KEYS = 4


def train_preprocess(image, keys, crop=224, rec=RGB_MEAN_PREPROCESSING):
    """Scale augmentation at crops of `crop` pixels: the shorter side resized to a random size in
    [crop * 256/224, crop * 480/224] ([256, 480] at 224), a random crop x crop crop, a random
    horizontal flip, the AlexNet PCA lighting noise, then `rec`'s normalisation (channel order,
    mean, std). `keys`: [TRAIN_KEYS, 2] stateless-random keys (`common.map_with_random_keys`),
    one per draw."""
    min_size = int(round(crop * 256 / 224.0))
    max_size = int(round(crop * 480 / 224.0))
    size = tf.random.stateless_uniform([], keys[0], min_size, max_size + 1, dtype=tf.int32)
    image = preprocessing.resize_shorter(image, size)
    image = tf.image.stateless_random_crop(image, [crop, crop, 3], seed=keys[1])
    image = tf.image.stateless_random_flip_left_right(image, seed=keys[2])
    alpha = tf.random.stateless_normal([3], keys[3], stddev=0.1)
    image = image + tf.linalg.matvec(tf.constant(EIGVEC), alpha * tf.constant(EIGVAL))
    return preprocessing.normalize(image, rec)


def photo_pipeline(ds, batch_size, training, opts):
    """Decoded (RGB image of any size, label) pairs -> batches of the network's input: training
    with `train_preprocess` at opts.image_size, evaluation at the record's geometry scaled to it
    (shorter side image_size * 256/224, centre crop), or (`full_image`) each whole image
    normalised. Shared by the ImageNet, folder and TFRecord datasets."""
    rec = opts.preprocessing or RGB_MEAN_PREPROCESSING
    size = opts.image_size or 224
    if training:
        ds = map_with_random_keys(
            ds, opts.seed, TRAIN_KEYS,
            lambda element, keys: (train_preprocess(element[0], keys, size, rec), element[1]))
        return batch_and_prefetch(ds, batch_size, training)
    eval_rec = preprocessing.at_size(rec, size)

    def preprocess(image, label):
        if opts.full_image:
            return preprocessing.normalize(image, rec), label
        if opts.ten_crop:
            return ten_crop_preprocess(image, eval_rec), label
        return preprocessing.for_eval(image, eval_rec), label

    ds = ds.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE)
    return batch_and_prefetch(ds, batch_size, training)


def eval_preprocess(image, rec=RGB_MEAN_PREPROCESSING):
    """Shorter side 256, centre 224 crop, channel means subtracted (`data.preprocessing`: the
    same function predict and export use)."""
    return preprocessing.for_eval(image, rec)


def ten_crop_preprocess(image, rec=RGB_MEAN_PREPROCESSING):
    """[10, crop, crop, 3]: the 4 corners and the centre, and their horizontal flips."""
    crop = rec["crop"]
    image = preprocessing.normalize(
        preprocessing.resize_shorter(image, rec["resize_shorter_side"]), rec)
    shape = tf.shape(image)
    h, w = shape[0], shape[1]
    crops = [image[:crop, :crop], image[:crop, w - crop:], image[h - crop:, :crop],
             image[h - crop:, w - crop:], preprocessing.centre_crop(image, crop)]
    crops = tf.stack(crops)
    return tf.concat([crops, tf.reverse(crops, axis=[2])], axis=0)


def dataset(data_dir, split, batch_size, training, opts=None, **options):
    """Batches of (images, labels). Labels are 0-based for 1000 classes, as stored for 1001.

    With `ten_crop`, images are [batch, 10, crop, crop, 3]. With `full_image` (evaluation; the
    multi-scale protocol resizes later), the whole image, normalised, at its own size: use
    batch_size 1. Records that are skipped (a corrupt record and the rest of its shard, an image
    that does not decode) are logged per file and counted in `opts.skips` (a
    `tfrecords.SkippedRecords`) when given.
    """
    opts = common.options(opts, **options)
    paths = files(data_dir, split)
    label_offset = 1 if (opts.num_classes or 1000) == 1000 else 0
    skips = opts.skips if opts.skips is not None else tfrecords.SkippedRecords()
    ds = tfrecords.read(paths, lambda record: _parse(record, label_offset), skips,
                        order=tfrecords.pipeline_order(training, opts.shuffled), seed=opts.seed)
    return photo_pipeline(ds, batch_size, training, opts), None


def _spec(data_dir):
    return DatasetSpec("imagenet", 1000, 224, True)


def _inference_record(data_dir, opts):
    rec = preprocessing.at_size(opts.preprocessing or RGB_MEAN_PREPROCESSING,
                                opts.image_size or 224)
    num_classes = opts.num_classes or 1000
    return rec, labels.for_imagenet(num_classes), {}


DATASET = Dataset(
    "imagenet", "ILSVRC-2012 as TFRecords (train-*-of-*, validation-*-of-*; labels 1..1000).",
    _spec, dataset, _inference_record,
    options=("ten_crop", "full_image", "image_size", "preprocessing"))
