"""The TF official models r1 ResNet ("v1", bottleneck), as `official/r1/resnet/resnet_model.py`
builds it: `tf.compat.v1.layers` with their automatic `conv2d_N` / `batch_normalization_N` names.

Used as the reference that the `official` port is checked against: the names come from TF's own
layer numbering, not from our map.
"""

import tensorflow as tf

tf1 = tf.compat.v1


def _batch_norm(inputs, training):
    return tf1.layers.batch_normalization(inputs=inputs, axis=3, momentum=0.997, epsilon=1e-5,
                                          center=True, scale=True, training=training, fused=True)


def _fixed_padding(inputs, kernel_size):
    pad_total = kernel_size - 1
    pad_beg = pad_total // 2
    pad_end = pad_total - pad_beg
    return tf.pad(inputs, [[0, 0], [pad_beg, pad_end], [pad_beg, pad_end], [0, 0]])


def _conv2d_fixed_padding(inputs, filters, kernel_size, strides):
    if strides > 1:
        inputs = _fixed_padding(inputs, kernel_size)
    return tf1.layers.conv2d(inputs=inputs, filters=filters, kernel_size=kernel_size,
                             strides=strides, padding=("SAME" if strides == 1 else "VALID"),
                             use_bias=False,
                             kernel_initializer=tf1.variance_scaling_initializer())


def _bottleneck_block_v1(inputs, filters, training, projection_shortcut, strides):
    shortcut = inputs
    if projection_shortcut is not None:
        shortcut = projection_shortcut(inputs)
        shortcut = _batch_norm(shortcut, training)
    inputs = _conv2d_fixed_padding(inputs, filters, 1, 1)
    inputs = tf.nn.relu(_batch_norm(inputs, training))
    inputs = _conv2d_fixed_padding(inputs, filters, 3, strides)
    inputs = tf.nn.relu(_batch_norm(inputs, training))
    inputs = _conv2d_fixed_padding(inputs, 4 * filters, 1, 1)
    inputs = _batch_norm(inputs, training)
    return tf.nn.relu(inputs + shortcut)


def _block_layer(inputs, filters, blocks, strides, training):
    def projection_shortcut(x):
        return _conv2d_fixed_padding(x, 4 * filters, 1, strides)
    inputs = _bottleneck_block_v1(inputs, filters, training, projection_shortcut, strides)
    for _ in range(1, blocks):
        inputs = _bottleneck_block_v1(inputs, filters, training, None, 1)
    return inputs


def resnet_v1_official(inputs, block_sizes=(3, 4, 6, 3), num_classes=1001, training=False):
    with tf1.variable_scope("resnet_model"):
        x = _conv2d_fixed_padding(inputs, 64, 7, 2)
        x = tf.nn.relu(_batch_norm(x, training))
        x = tf1.layers.max_pooling2d(x, pool_size=3, strides=2, padding="SAME")
        for i, blocks in enumerate(block_sizes):
            x = _block_layer(x, 64 * 2 ** i, blocks, 1 if i == 0 else 2, training)
        x = tf.reduce_mean(x, [1, 2], keepdims=True)
        x = tf.squeeze(x, [1, 2])
        return tf1.layers.dense(x, num_classes)
