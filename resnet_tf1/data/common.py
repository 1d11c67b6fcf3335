"""Shared input-pipeline pieces."""

import tensorflow as tf


class DataError(ValueError):
    """Data that is missing or unusable; the message says where it was expected."""


def shuffle_and_repeat(dataset, training, seed=None, shuffle_buffer=10000):
    """Training shuffles and repeats forever; evaluation is one ordered pass."""
    if training:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        dataset = dataset.repeat()
    return dataset


def batch_and_prefetch(dataset, batch_size, training):
    """Full batches for training; evaluation keeps the last partial batch."""
    dataset = dataset.batch(batch_size, drop_remainder=training)
    return dataset.prefetch(tf.data.AUTOTUNE)
