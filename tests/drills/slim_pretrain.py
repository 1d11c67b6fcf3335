"""A stand-in for a downloaded TF-slim checkpoint (this machine has no internet): TF-slim's own
resnet_v1_50, trained with TF-slim's own layers on real images of another task (MNIST-5k digits,
`scripts/prepare_mnist5k.py`), saved as a TF-slim checkpoint with TF-slim's names. The issue-31
end-to-end run converts it (`convert_checkpoint.py --source=slim`) and fine-tunes it on
Fashion-MNIST, so the transfer it measures is real: digit features carried to clothing.

    python tests/drills/slim_pretrain.py /tmp/mnist5k /tmp/slim_digits [--steps=400 --size=64]

Preprocessing as TF-slim's vgg_preprocessing: RGB minus the ImageNet channel means (what the
converter records for --source=slim). Not part of the suite.
"""

import os
import sys
import time

import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from resnet_tf1.data import cifar10  # noqa: E402
from resnet_tf1.references import slim as slim_ref  # noqa: E402

tf1 = tf.compat.v1
MEAN = np.array([123.68, 116.78, 103.94], np.float32)


def load(root, files):
    raw = np.concatenate([np.fromfile(os.path.join(root, f), np.uint8) for f in files])
    raw = raw.reshape(-1, cifar10.RECORD_BYTES)
    images = raw[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).astype(np.float32)
    return images - MEAN, raw[:, 0].astype(np.int64)


def main(data_dir, out_dir, steps=400, size=64, batch=32, lr=0.05):
    root = os.path.join(data_dir, cifar10.SUBDIR)
    train_x, train_y = load(root, cifar10.TRAIN_FILES)
    test_x, test_y = load(root, cifar10.TEST_FILES)
    tf_slim, resnet_v1 = slim_ref.nets()
    rng = np.random.RandomState(0)
    with tf.Graph().as_default():
        tf1.set_random_seed(0)
        x = tf1.placeholder(tf.float32, [None, 32, 32, 3])
        y = tf1.placeholder(tf.int64, [None])
        training = tf1.placeholder_with_default(False, [])
        images = tf.image.resize(x, [size, size])
        # A short memory for the BN moving averages (TF-slim's default 0.997 needs thousands of
        # steps before inference mode is usable).
        with tf_slim.arg_scope(resnet_v1.resnet_arg_scope(batch_norm_decay=0.9)):
            logits, _ = resnet_v1.resnet_v1_50(images, num_classes=10, is_training=training)
        logits = tf.squeeze(logits, [1, 2])
        xent = tf1.losses.sparse_softmax_cross_entropy(y, logits)
        loss = xent + tf1.losses.get_regularization_loss()
        step = tf1.train.get_or_create_global_step()
        with tf.control_dependencies(tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)):
            train_op = tf1.train.MomentumOptimizer(lr, 0.9).minimize(loss, step)
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, 1), y), tf.int32))
        saver = tf1.train.Saver(tf1.model_variables() + [step])  # as TF-slim released them
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            start = time.time()
            for i in range(1, steps + 1):
                idx = rng.randint(0, len(train_x), batch)
                value, _ = s.run([xent, train_op], {x: train_x[idx], y: train_y[idx],
                                                    training: True})
                if i % 50 == 0:
                    print("step %d/%d  cross-entropy %.4f  %.1f images/sec" % (
                        i, steps, value, i * batch / (time.time() - start)), flush=True)
            right = sum(s.run(correct, {x: test_x[j:j + 100], y: test_y[j:j + 100]})
                        for j in range(0, len(test_x), 100))
            print("TF-slim resnet_v1_50 on the MNIST-5k test split: top-1 %.4f (%d images)"
                  % (right / len(test_x), len(test_x)))
            os.makedirs(out_dir, exist_ok=True)
            path = saver.save(s, os.path.join(out_dir, "resnet_v1_50.ckpt"),
                              write_meta_graph=False)
            print("saved", path)


if __name__ == "__main__":
    args = dict(a.lstrip("-").split("=") for a in sys.argv[3:])
    main(sys.argv[1], sys.argv[2], **{k: (float if k == "lr" else int)(v)
                                      for k, v in args.items()})
