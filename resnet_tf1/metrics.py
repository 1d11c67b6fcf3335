"""Accuracy helpers shared by training and evaluation."""

import tensorflow as tf


def in_top_k(scores, labels, k):
    """Whether each label is among the k highest scores, ties broken by class index.

    `tf.nn.in_top_k` counts every class tied at the k-th score as inside the top k, which
    inflates top-5 for the near-uniform softmax of an untrained net; `top_k` picks exactly k.

    Args:
        scores: float [batch, num_classes] logits or probabilities.
        labels: int [batch].
        k: int.

    Returns:
        bool [batch].
    """
    _, indices = tf.math.top_k(scores, k=k)
    return tf.reduce_any(tf.equal(indices, tf.cast(labels, indices.dtype)[:, None]), axis=1)
