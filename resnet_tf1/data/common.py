"""Shared input-pipeline pieces, and the record every dataset module ends in."""

import collections
import random

import tensorflow as tf

from resnet_tf1 import errors


class DataError(errors.UserError):
    """Data that is missing or unusable; the message says where it was expected."""


# What a dataset is, for a given --data_dir: its class count, native image size, and whether it
# has files to evaluate on (synthetic data has none).
DatasetSpec = collections.namedtuple("DatasetSpec", ["name", "num_classes", "image_size",
                                                     "has_eval"])

# The options a pipeline can be asked for (`make_dataset` fills the defaults). A dataset declares
# the ones it supports beyond num_classes / seed / skips in its record's `options`; asking another
# for one is refused.
Options = collections.namedtuple("Options", [
    "num_classes",          # width of the logits the labels index
    "seed",                 # the input stream's seed (shuffle order, augmentation draws)
    "skips",                # a tfrecords.SkippedRecords counting what the pipeline skips
    "holdout",              # CIFAR-10: the paper's 45k / 5k split
    "ten_crop",             # ImageNet evaluation: the paper's 10 crops
    "full_image",           # evaluation: whole images at their own size (batch size 1)
    "image_size",           # training crop / evaluation crop, in pixels
    "preprocessing",        # a data.preprocessing record: channel order, mean, std
    "validation_fraction",  # folder: held out by path hash when there is no validation folder
    "shuffled",             # evaluation: one pass in an order shuffled with `seed` (`shuffle_once`)
])
OPTION_DEFAULTS = dict(num_classes=None, seed=None, skips=None, holdout=False, ten_crop=False,
                       full_image=False, image_size=None, preprocessing=None,
                       validation_fraction=0.0, shuffled=False)


def options(opts=None, **overrides):
    """An `Options` from `opts` (or the defaults) with `overrides`."""
    base = opts._asdict() if opts is not None else dict(OPTION_DEFAULTS)
    unknown = set(overrides) - set(base)
    if unknown:
        raise TypeError("unknown dataset option(s): %s" % ", ".join(sorted(unknown)))
    base.update(overrides)
    return Options(**base)


class Dataset(collections.namedtuple("Dataset", ["name", "help", "spec", "pipeline",
                                                 "inference_record", "options"])):
    """The record a dataset module ends in (like porting's FORMAT records); `data.DATASETS`
    lists them.

    Fields:
        name: the --dataset value.
        help: one line for --helpfull.
        spec: data_dir -> DatasetSpec (reads at most a directory listing or a small file).
        pipeline: (data_dir, split "train" | "eval", batch_size, training, Options) ->
            (tf.data.Dataset of (images, labels) batches, number of examples or None); None for a
            dataset without files.
        inference_record: (data_dir, Options) -> (preprocessing record, labels record,
            {file name: numpy array} saved beside the run's record): what predict and export
            need to preprocess and label images as the evaluation pipeline did.
        options: the Options fields it supports beyond num_classes, seed and skips.
    """


def shuffle_and_repeat(dataset, training, seed=None, shuffle_buffer=10000, shuffled=False):
    """Training shuffles and repeats forever; evaluation is one ordered pass, or (`shuffled`)
    one pass shuffled once with `seed`."""
    if training:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        dataset = dataset.repeat()
    elif shuffled:
        dataset = shuffle_once(dataset, seed, shuffle_buffer)
    return dataset


def shuffle_once(dataset, seed, shuffle_buffer):
    """One pass of `dataset` in an order drawn with `seed` (the same order for the same seed):
    the BN recompute's evaluation-preprocessed input (`Options.shuffled`). Data sets are often
    stored sorted by class (MNIST-5k's files, every class folder), and a layer normalising with
    its batch statistics over one class at a time computes statistics of nothing the network
    ever saw in training."""
    if seed is None:
        raise ValueError("shuffle_once needs a seed: the same input must give the same order")
    return dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=False)


def map_with_random_keys(dataset, seed, count, fn):
    """`fn(element, keys)` over a (shuffled, repeated) stream, in a parallel map; `keys` is an
    int64 [count, 2] tensor of stateless-random keys for `tf.random.stateless_*` /
    `tf.image.stateless_random_*`, one per draw.

    The keys are a function of `seed` and the element's position in the stream, so a run with
    --seed draws the same augmentation for the same element whatever order the parallel map runs
    in, and each augmentation (crop, flip, ...) has its own key. Stateful random ops in a
    parallel map do neither: they share one generator, drawn from in scheduling order, and ops
    given the same seed draw the same numbers. Without a seed, a fresh one is drawn here.
    """
    if seed is None:
        seed = random.SystemRandom().randrange(2 ** 31)
    base = tf.constant(seed, tf.int64)

    def keyed(index, element):
        keys = tf.random.experimental.stateless_split(tf.stack([base, index]), count)
        return fn(element, keys)

    return dataset.enumerate().map(keyed, num_parallel_calls=tf.data.AUTOTUNE)


def batch_and_prefetch(dataset, batch_size, training):
    """Full batches for training; evaluation keeps the last partial batch."""
    dataset = dataset.batch(batch_size, drop_remainder=training)
    return dataset.prefetch(tf.data.AUTOTUNE)
