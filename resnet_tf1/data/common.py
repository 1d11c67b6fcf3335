"""Shared input-pipeline pieces."""

import random

import tensorflow as tf

from resnet_tf1 import errors


class DataError(errors.UserError):
    """Data that is missing or unusable; the message says where it was expected."""


def shuffle_and_repeat(dataset, training, seed=None, shuffle_buffer=10000):
    """Training shuffles and repeats forever; evaluation is one ordered pass."""
    if training:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        dataset = dataset.repeat()
    return dataset


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
