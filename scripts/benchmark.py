#!/usr/bin/env python
"""Throughput measured side by side in one run: our graph, TF-slim's resnet_v1, the input pipeline.

    python scripts/benchmark.py --depth=50 --batch_size=32 --mode=train --peers=slim
    python scripts/benchmark.py --depth=20 --batch_size=128 --input_pipeline=cifar10

Training steps run on synthetic data made on the device (no input pipeline), with the same loss,
weight decay, momentum optimizer and BN updates as scripts/train.py. The input pipeline is timed
on its own (on the CPU, as in training), on real files in --data_dir or small files it writes.
Prints images/sec per measurement and the ratio ours / peer.
"""

import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from resnet_tf1 import model as model_lib  # noqa: E402
from resnet_tf1 import peers, train_lib  # noqa: E402
from resnet_tf1.data import cifar10, fake, imagenet, synthetic  # noqa: E402

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
    config = train_lib.session_config()
    if FLAGS.xla:
        config.graph_options.optimizer_options.global_jit_level = tf1.OptimizerOptions.ON_1
    return config


def _device():
    return train_lib.resolve_device(FLAGS.device)


def _time(sess, op, steps, warmup):
    for _ in range(warmup):
        sess.run(op)
    start = time.time()
    for _ in range(steps):
        sess.run(op)
    return FLAGS.batch_size * steps / (time.time() - start)


def _step(logits, labels, scope):
    if FLAGS.mode == "inference":
        return logits
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels,
                                                                         logits=logits))
    loss += model_lib.weight_decay_loss(1e-4, scope) if scope else 0.0
    opt = tf1.train.MomentumOptimizer(0.01, 0.9)
    with tf.control_dependencies(tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)):
        return opt.minimize(loss, global_step=tf1.train.get_or_create_global_step())


def bench_ours(size, num_classes):
    graph = tf.Graph()
    with graph.as_default():
        images, labels = synthetic.inputs(FLAGS.batch_size, size, num_classes, _device())
        model = model_lib.ResNet(FLAGS.depth, num_classes=num_classes, variant=FLAGS.variant,
                                 dtype=FLAGS.dtype, data_format=FLAGS.data_format,
                                 device=_device())
        logits, _ = model(images, is_training=FLAGS.mode == "train")
        op = _step(logits, labels, model.resolve(size)["scope"])
        with tf1.Session(config=_config()) as sess:
            sess.run([tf1.global_variables_initializer(), tf1.local_variables_initializer()])
            return _time(sess, op, FLAGS.steps, FLAGS.warmup)


def bench_slim(size, num_classes):
    tf_slim, resnet_v1 = peers.slim_resnet_v1()
    graph = tf.Graph()
    with graph.as_default():
        images, labels = synthetic.inputs(FLAGS.batch_size, size, num_classes, _device())
        with tf.device(_device()), tf_slim.arg_scope(resnet_v1.resnet_arg_scope()):
            net = getattr(resnet_v1, "resnet_v1_%d" % FLAGS.depth)
            logits, _ = net(images, num_classes, is_training=FLAGS.mode == "train")
            logits = tf.reshape(logits, [FLAGS.batch_size, num_classes])
            op = _step(logits, labels, None)
        with tf1.Session(config=_config()) as sess:
            sess.run([tf1.global_variables_initializer(), tf1.local_variables_initializer()])
            return _time(sess, op, FLAGS.steps, FLAGS.warmup)


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
    graph = tf.Graph()
    with graph.as_default():
        if kind == "cifar10":
            ds, _ = cifar10.dataset(data_dir, "train", FLAGS.batch_size, True, download=False)
        else:
            ds, _ = imagenet.dataset(data_dir, "train", FLAGS.batch_size, True)
        batch = tf1.data.make_one_shot_iterator(ds).get_next()
        with tf1.Session(config=_config()) as sess:
            rate = _time(sess, batch, FLAGS.steps, FLAGS.warmup)
    if tmp:
        tmp.cleanup()
    return rate


def main(argv):
    if len(argv) > 1:
        raise app.UsageError("unexpected arguments: %s" % " ".join(argv[1:]))
    cifar = FLAGS.depth not in model_lib.IMAGENET_UNITS
    size, num_classes = (32, 10) if cifar else (224, 1000)
    gpus = tf.config.list_physical_devices("GPU")
    logging.info("TensorFlow %s, %d GPU(s): %s", tf.__version__, len(gpus),
                 ", ".join(g.name for g in gpus) or "none (CPU)")
    what = "ResNet-%d %s %s %s batch %d on %s" % (FLAGS.depth, FLAGS.mode, FLAGS.dtype,
                                                  FLAGS.data_format, FLAGS.batch_size,
                                                  "GPU" if gpus else "CPU")
    ours = bench_ours(size, num_classes)
    print("ours (%s): %.1f images/sec" % (what, ours))
    for peer in FLAGS.peers:
        if peer != "slim":
            raise app.UsageError("--peers: unknown peer %r (expected slim)" % peer)
        if cifar or FLAGS.depth in model_lib.BASIC_DEPTHS:
            raise app.UsageError("--peers=slim needs a bottleneck depth (50, 101, 152, 200)")
        rate = bench_slim(size, num_classes)
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
