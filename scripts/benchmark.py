#!/usr/bin/env python
"""Throughput measured side by side in one run: our graph, TF-slim's resnet_v1, the input pipeline.

    python scripts/benchmark.py --depth=50 --batch_size=32 --mode=train --peers=slim
    python scripts/benchmark.py --depth=20 --batch_size=128 --input_pipeline=cifar10

Our training step is the training library's own (`train_lib.build_train_op`: the same loss,
weight decay, momentum optimizer, NaN guard and BN updates as scripts/train.py), on synthetic data
made on the device (no input pipeline). The peer's step is its logits with the same loss and
optimizer. The input pipeline is timed on its own (on the CPU, as in training), on real files in
--data_dir or small files it writes. Prints images/sec per measurement and the ratio ours / peer.
"""

import tempfile
import time

import tensorflow as tf
from absl import app, flags, logging

from resnet_tf1 import data, model as model_lib, run_config, train_lib
from resnet_tf1.data import fake
from resnet_tf1.references import slim as slim_ref

tf1 = tf.compat.v1
FLAGS = flags.FLAGS
flags.DEFINE_integer("depth", 50, "ResNet depth (CIFAR depths 6n+2 run on 32x32).")
flags.DEFINE_enum("variant", "paper", model_lib.VARIANTS, "Our variant.")
flags.DEFINE_integer("batch_size", 32, "Batch size.")
flags.DEFINE_integer("steps", 20, "Timed steps.")
flags.DEFINE_integer("warmup", 5, "Untimed steps first.")
flags.DEFINE_enum("mode", "train", ["train", "inference"], "What a step is.")
flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16", "float16"], "Compute dtype.")
flags.DEFINE_enum("data_format", "NHWC", model_lib.DATA_FORMATS, "Our internal layout.")
flags.DEFINE_string("device", "/gpu:0", "Device (soft placement falls back to the CPU).")
flags.DEFINE_list("peers", [], "Peers measured in the same run: slim (TF-slim resnet_v1_<depth>, "
                  "bottleneck depths only).")
flags.DEFINE_enum("input_pipeline", "none", ["none", "cifar10", "imagenet"],
                  "Also time this training input pipeline.")
flags.DEFINE_string("data_dir", None, "Data for --input_pipeline (default: small files written "
                    "to a temporary directory).")
flags.DEFINE_integer("xla", 0, "1 to enable XLA JIT for the session.")


def _config():
    config = run_config.session_config()
    if FLAGS.xla:
        config.graph_options.optimizer_options.global_jit_level = tf1.OptimizerOptions.ON_1
    return config


def _params(dataset="synthetic", data_dir=None):
    """The run the benchmark times: FLAGS' model on `dataset`, a constant learning rate."""
    spec = data.spec(run_config.default_dataset(FLAGS.depth))
    return run_config.RunParams(
        model_dir=None, dataset=dataset, data_dir=data_dir, depth=FLAGS.depth,
        variant=FLAGS.variant, dtype=FLAGS.dtype, data_format=FLAGS.data_format,
        batch_size=FLAGS.batch_size, learning_rate=0.01, lr_boundaries=(), device=FLAGS.device,
        image_size=spec.image_size, class_count=spec.num_classes)


def _num_classes():
    return data.spec(run_config.default_dataset(FLAGS.depth)).num_classes


def _time(sess, op, steps, warmup):
    for _ in range(warmup):
        sess.run(op)
    start = time.time()
    for _ in range(steps):
        sess.run(op)
    return FLAGS.batch_size * steps / (time.time() - start)


def _run(op):
    with tf1.Session(config=_config()) as sess:
        sess.run([tf1.global_variables_initializer(), tf1.local_variables_initializer()])
        return _time(sess, op, FLAGS.steps, FLAGS.warmup)


def bench_ours():
    params = _params()
    with tf.Graph().as_default():
        images, labels, _ = run_config.input_batches(params, training=FLAGS.mode == "train")
        if FLAGS.mode == "inference":
            model = run_config.build_model(params)
            with tf.device(run_config.resolve_device(FLAGS.device)):
                op, _ = model(images, is_training=False)
        else:
            global_step = tf1.train.get_or_create_global_step()
            op, _ = train_lib.build_train_op(params, images, labels, global_step)
        return _run(op)


def bench_slim():
    params = _params()
    with tf.Graph().as_default():
        images, labels, _ = run_config.input_batches(params, training=False)
        training = FLAGS.mode == "train"
        with tf.device(run_config.resolve_device(FLAGS.device)):
            logits, _ = slim_ref.logits(images, FLAGS.depth, _num_classes(), is_training=training)
            if not training:
                return _run(logits)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=labels, logits=logits))
            loss += tf1.losses.get_regularization_loss()  # slim's own weight decay
            optimizer = tf1.train.MomentumOptimizer(0.01, 0.9)
            with tf.control_dependencies(tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)):
                op = optimizer.minimize(loss, global_step=tf1.train.get_or_create_global_step())
        return _run(op)


def bench_pipeline(kind):
    data_dir = FLAGS.data_dir
    tmp = None
    if not data_dir:
        tmp = tempfile.TemporaryDirectory()
        data_dir = tmp.name
        if kind == "cifar10":
            fake.write_cifar(data_dir, per_file=2000, test=10)
        else:
            fake.write_imagenet(data_dir, "train", shards=4, per_shard=64, corrupt=0)
    try:
        with tf.Graph().as_default():
            images, labels, _ = run_config.input_batches(_params(kind, data_dir), training=True)
            return _run([images, labels])
    finally:
        if tmp:
            tmp.cleanup()


def main(argv):
    if len(argv) > 1:
        raise app.UsageError("unexpected arguments: %s" % " ".join(argv[1:]))
    for peer in FLAGS.peers:
        if peer != "slim":
            raise app.UsageError("--peers: unknown peer %r (expected slim)" % peer)
        if FLAGS.depth not in model_lib.IMAGENET_UNITS or FLAGS.depth in model_lib.BASIC_DEPTHS:
            raise app.UsageError("--peers=slim needs a bottleneck depth (50, 101, 152, 200)")
    gpus = tf.config.list_physical_devices("GPU")
    logging.info("TensorFlow %s, %d GPU(s): %s", tf.__version__, len(gpus),
                 ", ".join(g.name for g in gpus) or "none (CPU)")
    what = "ResNet-%d %s %s %s batch %d on %s" % (FLAGS.depth, FLAGS.mode, FLAGS.dtype,
                                                  FLAGS.data_format, FLAGS.batch_size,
                                                  "GPU" if gpus else "CPU")
    ours = bench_ours()
    print("ours (%s): %.1f images/sec" % (what, ours))
    if "slim" in FLAGS.peers:
        rate = bench_slim()
        print("TF-slim resnet_v1_%d (%s, NHWC): %.1f images/sec" % (FLAGS.depth, FLAGS.mode,
                                                                    rate))
        print("ratio ours / slim: %.3f" % (ours / rate))
    if FLAGS.input_pipeline != "none":
        rate = bench_pipeline(FLAGS.input_pipeline)
        print("input pipeline %s (training preprocessing, batch %d): %.1f images/sec"
              % (FLAGS.input_pipeline, FLAGS.batch_size, rate))
        print("ratio pipeline / ours: %.2f" % (rate / ours))
    return 0


if __name__ == "__main__":
    app.run(main)
