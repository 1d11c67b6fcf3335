#!/usr/bin/env python
"""Throughput measured side by side in one run: our graph, TF-slim's and tf-keras' ResNets, a
large matmul (the machine's peak) and the input pipeline.

    python scripts/benchmark.py --depth=50 --batch_size=16 --mode=inference --compare=slim,keras
    python scripts/benchmark.py --depth=50 --batch_size=16 --mode=train --dtype=bfloat16 \
        --compare=slim,keras,slim_float32 --input_pipeline=imagenet --json
    python scripts/benchmark.py --depth=20 --batch_size=128 --input_pipeline=cifar10
    python scripts/benchmark.py --depth=50 --batch_size=16 --variant=slim --mode=train --per_layer

Each model lives in its own graph and session. All are built and warmed up first, then timed
round by round, alternating (A B C M A B C M ...), so that a machine whose speed drifts treats
them alike; per model it prints the median, min and max images/sec over the rounds, the peak
resident memory (each model run alone in a child process, batch as given; the median of
`--memory_runs` such processes, alternated) and the ratio ours / peer: of the medians, and the
median (min-max) of the rounds' own ratios, which cancels a drift between rounds. "of peak" is the
fraction of the machine's float arithmetic rate reached: our multiply-adds per image (x2 FLOPs;
x3 for a training step: forward, and backward for inputs and weights) times images/sec, over the
rate of an NxN matmul in the same precision, timed in the same rounds.

Our training step is the training library's own (`train_lib.build_train_op`: the same loss,
weight decay, optimizer, NaN guard and BN updates as scripts/train.py); the peers' step is their
logits with the same loss and a momentum optimizer, and their own BN updates. Data is synthetic,
made on the device. Precision: `--dtype` is ours (float32 master variables, compute in dtype);
peers have no low-precision graph, so with --dtype=bfloat16 they run with oneDNN's
auto_mixed_precision_onednn_bfloat16 rewrite (the same precision mode), and
`--compare=slim_float32,keras_float32` adds them in plain float32 (no rewrite) to the same run;
`--onednn_bf16_rewrite` turns that rewrite on for every float32 graph, ours included.
`--fold_bn` (inference) times our BN-folded graph (`fold_bn`, what export writes).
`--compare=ours_bfloat16` adds our graph in bfloat16 (BN folded with --fold_bn) to a float32 run.
`--compare=onnx_float32,onnx_int8` (inference) adds our ONNX export (scripts/export.py: the
BN-folded frozen graph through tf2onnx) run in ONNX Runtime, float32 and static int8 (QDQ,
per-channel; calibrated on a few random-pixel batches: the speed does not depend on the values),
timed in the same alternated rounds on the same batch (fed from numpy, the logits fetched);
`--threads` sets the intra-op threads of every session, TensorFlow's and ONNX Runtime's alike
(default: ONNX Runtime gets one per core, as TensorFlow's default does). With --batch_size=1 the
table adds the p50 / p99 latency of single calls.
`--per_layer` also times each of our convolutions alone (grouped by shape; conv + bias + ReLU, and
in training its gradients as our training graph builds them) in its own rounds, each after the
matmul, and prints their sum beside our whole step.
"""

import collections
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import resnet_tf1  # noqa: F401  (first: it sets TensorFlow's CPU options before TF loads)
import numpy as np
import tensorflow as tf
from absl import app, flags, logging
from tensorflow.core.protobuf import rewriter_config_pb2

from resnet_tf1 import data, kernels, manifest, model as model_lib, run_config, train_lib
from resnet_tf1.data import fake

tf1 = tf.compat.v1
FLAGS = flags.FLAGS
# slim_float32 / keras_float32: the peer in plain float32, without the bfloat16 rewrite even in a
# --dtype=bfloat16 run (the baseline of "bfloat16 is N x TF-slim float32", in the same run).
PEERS = ("slim", "keras", "slim_float32", "keras_float32")
OURS_EXTRA = ("ours_bfloat16", "onnx_float32", "onnx_int8")
MATMUL_SECONDS = 1.0  # how long each round times the peak matmul
# The matmul's fastest round over its slowest above which the run is flagged: the machine's own
# speed changed during it (other load; on a VM, its neighbours). Quiet runs here: 1.02-1.07.
DRIFT_WARNING = 1.15
# Without it a session's global_jit_level clusters GPU ops only: on a CPU, --xla did nothing.
XLA_CPU_FLAG = "--tf_xla_cpu_global_jit"
flags.DEFINE_integer("depth", 50, "ResNet depth (CIFAR depths 6n+2 run on 32x32).")
flags.DEFINE_enum("variant", "paper", model_lib.VARIANTS, "Our variant.")
flags.DEFINE_integer("batch_size", 32, "Batch size.", lower_bound=1)
flags.DEFINE_integer("steps", 5, "Timed steps per round.", lower_bound=1)
flags.DEFINE_integer("rounds", 5, "Rounds; the models alternate within each.", lower_bound=1)
flags.DEFINE_integer("warmup", 3, "Untimed steps per model first.", lower_bound=0)
flags.DEFINE_enum("mode", "train", ["train", "inference"], "What a step is.")
flags.DEFINE_enum("dtype", "float32", model_lib.DTYPES, "Our compute dtype.")
flags.DEFINE_enum("data_format", "NHWC", model_lib.DATA_FORMATS, "Our internal layout.")
flags.DEFINE_string("device", "/gpu:0", "Device (soft placement falls back to the CPU).")
flags.DEFINE_list("compare", [], "Peers measured in the same run: slim (TF-slim resnet_v1_<depth>),"
                  " keras (tf-keras applications.ResNet<depth>), in our precision mode; "
                  "slim_float32, keras_float32: the same in plain float32 (no bfloat16 rewrite); "
                  "bottleneck depths only. Ours in other forms: ours_bfloat16 (our graph in "
                  "bfloat16), onnx_float32, onnx_int8 (our ONNX export in ONNX Runtime; "
                  "inference).")
flags.DEFINE_integer("threads", None, "Intra-op threads of every session (TensorFlow and ONNX "
                     "Runtime); default: each runtime's own (one per core).", lower_bound=1)
flags.DEFINE_string("onnx_models", None, "Internal: the directory of the ONNX models a --child "
                    "times.")
flags.DEFINE_bool("fold_bn", False, "Inference: our graph with batch norm folded into the convs.")
flags.DEFINE_bool("onednn_bf16_rewrite", False, "oneDNN's bfloat16 auto-mixed-precision rewrite "
                  "for every float32 graph (ours too).")
flags.DEFINE_bool("xla", False, "XLA auto-clustering (JIT) for every session, on the CPU too "
                  "(adds %s to TF_XLA_FLAGS)." % XLA_CPU_FLAG)
flags.DEFINE_integer("matmul_size", 1024, "N of the NxN matmul that measures the peak (0: off); "
                     "1024 measured faster than 2048 and 4096 on the 2-core machines here.")
flags.DEFINE_bool("memory", True, "Peak resident memory per model (a child process each).")
flags.DEFINE_integer("memory_runs", 3, "Child processes per model for --memory, alternated; the "
                     "median is reported (one run's peak varied by up to 5 %% for ResNet-50 "
                     "training at batch 32 here, more than the differences it is there to show).",
                     lower_bound=1)
flags.DEFINE_bool("per_layer", False, "Also time each of our convolutions alone (conv + bias + "
                  "ReLU; with --mode=train also its input and weight gradients), round by round "
                  "with the matmul: where our step's time goes, against the machine's peak.")
flags.DEFINE_enum("input_pipeline", "none", ["none", "cifar10", "imagenet", "folder",
                                             "tfrecords"],
                  "Also time this training input pipeline (folder and tfrecords need --data_dir).")
flags.DEFINE_integer("image_size", None, "Image size of the models and the pipeline (default: "
                     "the depth's, 224 or CIFAR's 32).", lower_bound=32)
flags.DEFINE_string("data_dir", None, "Data for --input_pipeline (default: small files written "
                    "to a temporary directory).")
flags.DEFINE_bool("json", False, "Print one JSON record of every number instead of the table.")
flags.DEFINE_string("child", None, "Internal: build and run one model, print its peak memory.")


def _cifar():
    return run_config.default_dataset(FLAGS.depth) == "cifar10"


def _params(dataset="synthetic", data_dir=None, dtype=None):
    spec = data.spec(run_config.default_dataset(FLAGS.depth))
    return run_config.RunParams(
        model_dir=None, dataset=dataset, data_dir=data_dir, depth=FLAGS.depth,
        variant=FLAGS.variant, dtype=dtype or FLAGS.dtype, data_format=FLAGS.data_format,
        batch_size=FLAGS.batch_size, learning_rate=0.01, lr_boundaries=(), device=FLAGS.device,
        image_size=FLAGS.image_size or spec.image_size,
        num_classes=(data.spec(dataset, data_dir).num_classes
                     if dataset in ("folder", "tfrecords") else spec.num_classes))


def _config(rewrite):
    config = run_config.session_config()
    if FLAGS.threads:
        config.intra_op_parallelism_threads = FLAGS.threads
        config.inter_op_parallelism_threads = 1
    if rewrite:
        config.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 = (
            rewriter_config_pb2.RewriterConfig.ON)
    if FLAGS.xla:
        config.graph_options.optimizer_options.global_jit_level = tf1.OptimizerOptions.ON_1
    return config


def _enable_xla():
    """--xla: TensorFlow JITs a session's graph with XLA on the CPU only if TF_XLA_FLAGS holds
    --tf_xla_cpu_global_jit when it first reads that variable, which it does once, when it sets
    up its devices (importing the peers' modules does). So a process started without it restarts
    itself (os.execv, same arguments) with the variable set; child processes inherit it. Then a
    probe graph must actually run through XLA: a run that asked for XLA and would time the graphs
    without it is a usage error, not a table."""
    current = os.environ.get("TF_XLA_FLAGS", "")
    if XLA_CPU_FLAG not in current.split():
        os.environ["TF_XLA_FLAGS"] = (current + " " + XLA_CPU_FLAG).strip()
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, [sys.executable] + sys.argv)
    if not _xla_compiles():
        raise app.UsageError("--xla: XLA did not compile a probe graph with TF_XLA_FLAGS=%r "
                             "(expected %s and no flag turning XLA off)"
                             % (current, XLA_CPU_FLAG))


def _xla_compiles():
    """Whether a session with our config (--xla's JIT level) runs a small graph through XLA."""
    graph = tf.Graph()
    with graph.as_default(), tf.device(run_config.resolve_device(FLAGS.device)):
        x = tf1.get_variable("x", [64, 64])
        y = tf.reduce_sum(tf.nn.relu(tf.matmul(x, x) * 2.0 + 1.0))
        with tf1.Session(graph=graph, config=_config(False)) as sess:
            sess.run(x.initializer)
            metadata = tf1.RunMetadata()
            sess.run(y, options=tf1.RunOptions(trace_level=tf1.RunOptions.FULL_TRACE),
                     run_metadata=metadata)
    return any(node.timeline_label.split(" = ")[-1].startswith("_XlaRun")
               for dev in metadata.step_stats.dev_stats for node in dev.node_stats)


def _peer_rewrite():
    """Peers run float32 graphs: in a bfloat16 comparison, with oneDNN's rewrite."""
    return FLAGS.dtype == "bfloat16" or FLAGS.onednn_bf16_rewrite


def _train_op(logits, labels, update_ops, var_list=None):
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels,
                                                                         logits=logits))
    loss += tf.add_n(tf1.losses.get_regularization_losses() or [tf.constant(0.0)])
    optimizer = tf1.train.MomentumOptimizer(0.01, 0.9)
    with tf.control_dependencies(update_ops):
        return optimizer.minimize(loss, global_step=tf1.train.get_or_create_global_step(),
                                  var_list=var_list)


def build_ours(dtype=None):
    params = _params(dtype=dtype)
    images, labels, _ = run_config.input_batches(params, training=FLAGS.mode == "train")
    if FLAGS.mode == "inference":
        model = run_config.build_model(params)
        with tf.device(run_config.resolve_device(FLAGS.device)):
            logits, _ = model(images, is_training=False, fold_batch_norm=FLAGS.fold_bn)
        return logits
    global_step = tf1.train.get_or_create_global_step()
    op, _ = train_lib.build_train_op(params, images, labels, global_step)
    return op


def build_ours_bfloat16():
    return build_ours("bfloat16")


def export_onnx(directory):
    """Our model (random weights, BN folded) exported as export.py does, into `directory`:
    onnx_float32.onnx and onnx_int8.onnx (ONNX Runtime static quantization, calibrated on two
    batches of random pixels). Returns {key: path}."""
    from resnet_tf1 import export as export_lib, onnxrt, serving
    from resnet_tf1.data import labels as labels_lib, preprocessing
    params = _params(dtype="float32")
    size = params.resolved_image_size()
    kwargs = run_config.model_kwargs(params)
    graph = tf.Graph()
    with graph.as_default():
        model = model_lib.ResNet(**kwargs)
        model(tf1.placeholder(tf.float32, [None, size, size, 3]), is_training=False)
        with tf1.Session(graph=graph) as sess:
            sess.run(tf1.global_variables_initializer())
            variables = tf1.global_variables()
            weights = dict(zip([v.op.name for v in variables], sess.run(variables)))
    classes = params.resolved_num_classes()
    servable = serving.Servable(
        directory, "benchmark", kwargs, None,
        preprocessing.record(mean=(123.7, 116.3, 103.5), resize_shorter_side=None, crop=size),
        None, labels_lib.table(None, classes), weights)
    graph_def, io = export_lib._frozen(servable, size, 5, None)
    paths = {}
    for key in ("onnx_float32", "onnx_int8"):
        os.makedirs(os.path.join(directory, key))
    export_lib._onnx(graph_def, io, os.path.join(directory, "onnx_float32"))
    paths["onnx_float32"] = os.path.join(directory, "onnx_float32", export_lib.ONNX_MODEL)
    paths["onnx_int8"] = os.path.join(directory, "onnx_int8", export_lib.ONNX_MODEL)
    pixels = np.random.RandomState(0).uniform(0, 255, (2 * FLAGS.batch_size, size, size, 3))
    onnxrt.quantize(paths["onnx_float32"], paths["onnx_int8"], pixels.astype(np.float32))
    return paths


class OnnxCandidate:
    """Our ONNX export in an ONNX Runtime session, timed as `Candidate` (the logits fetched)."""

    def __init__(self, key, label, path):
        from resnet_tf1 import onnxrt
        self.key, self.label, self.rates, self.steps, self.calls = key, label, [], FLAGS.steps, []
        self.session = onnxrt.session(path, FLAGS.threads or os.cpu_count())
        size = _params().resolved_image_size()
        self.feed = {self.session.get_inputs()[0].name: np.random.RandomState(1).uniform(
            0, 255, (FLAGS.batch_size, size, size, 3)).astype(np.float32)}
        self.fetch = [o.name for o in self.session.get_outputs() if o.name.startswith("logits")]

    def run(self, steps, record=False):
        start = time.time()
        for _ in range(steps):
            t = time.time()
            self.session.run(self.fetch, self.feed)
            if record:
                self.calls.append(time.time() - t)
        return time.time() - start

    def close(self):
        self.session = None


def build_slim():
    from resnet_tf1.references import slim as slim_ref
    images, labels, _ = run_config.input_batches(_params(dtype="float32"), training=False)
    training = FLAGS.mode == "train"
    with tf.device(run_config.resolve_device(FLAGS.device)):
        logits, _ = slim_ref.logits(images, FLAGS.depth, 1000, is_training=training)
        if not training:
            return logits
        return _train_op(logits, labels, tf1.get_collection(tf1.GraphKeys.UPDATE_OPS))


def build_keras():
    from resnet_tf1.references import keras as keras_ref
    keras = keras_ref.tf_keras()
    images, labels, _ = run_config.input_batches(_params(dtype="float32"), training=False)
    training = FLAGS.mode == "train"
    with tf.device(run_config.resolve_device(FLAGS.device)):
        keras.backend.set_learning_phase(1 if training else 0)
        build = getattr(keras.applications, "ResNet%d" % FLAGS.depth)
        model = build(weights=None, input_tensor=images, classifier_activation=None)
        if not training:
            return model.output
        return _train_op(model.output, labels, model.updates, model.trainable_weights)


def build_matmul():
    n = FLAGS.matmul_size
    dtype = tf.bfloat16 if FLAGS.dtype == "bfloat16" else tf.as_dtype(FLAGS.dtype)
    with tf.device(run_config.resolve_device(FLAGS.device)):
        a = tf1.get_variable("a", [n, n], dtype, tf1.initializers.random_uniform(-1, 1))
        b = tf1.get_variable("b", [n, n], dtype, tf1.initializers.random_uniform(-1, 1))
        return tf.reduce_sum(tf.cast(tf.matmul(a, b)[:1, :1], tf.float32))


def _conv_layers():
    """Our graph's convolutions, grouped by what a kernel sees: a list of dicts (scopes, input
    shape before any explicit pad, paddings, kernel shape, strides, padding, data format, dtype,
    whether the input is the network's, multiply-adds per example), in the order the graph
    builds them."""
    graph = tf.Graph()
    with graph.as_default():
        model = run_config.build_model(_params())
        size = 32 if _cifar() else 224
        images = tf1.placeholder(tf.float32, [FLAGS.batch_size, size, size, 3])
        model(images, is_training=False, fold_batch_norm=FLAGS.fold_bn)
    rows = {}
    for op in graph.get_operations():
        if op.type != "Conv2D":
            continue
        net, kernel = op.inputs
        paddings = None
        if net.op.type == "Pad":
            paddings = tf.get_static_value(net.op.inputs[1]).tolist()
            net = net.op.inputs[0]
        data_format = op.get_attr("data_format").decode()
        out = op.outputs[0].shape.as_list()
        out_pixels, out_channels = ((out[1] * out[2], out[3]) if data_format == "NHWC"
                                    else (out[2] * out[3], out[1]))
        kh, kw, cin, _ = kernel.shape.as_list()
        key = (tuple(net.shape.as_list()), str(paddings), tuple(kernel.shape.as_list()),
               tuple(op.get_attr("strides")), op.get_attr("padding"), data_format)
        row = rows.setdefault(key, dict(
            scopes=[], input_shape=net.shape.as_list(), paddings=paddings,
            kernel_shape=kernel.shape.as_list(), strides=list(op.get_attr("strides")),
            padding=op.get_attr("padding").decode(), data_format=data_format,
            dtype=net.dtype.name, network_input=not _reads_variables(net),
            multiply_adds=out_pixels * out_channels * kh * kw * cin))
        row["scopes"].append(op.name.rsplit("/", 1)[0])
    return list(rows.values())


def _reads_variables(tensor):
    """Whether `tensor` depends on a variable (else it is computed from the input alone)."""
    seen, todo = set(), [tensor.op]
    while todo:
        op = todo.pop()
        if op.type in ("ReadVariableOp", "VariableV2", "VarHandleOp"):
            return True
        for t in op.inputs:
            if t.op.name not in seen:
                seen.add(t.op.name)
                todo.append(t.op)
    return False


def build_layer(row):
    """One of our convolutions alone, on variables (nothing constant-folds): conv + bias + ReLU;
    with --mode=train also its gradients in the forms our training graph builds (of its input
    too, unless that is the network's input). Returns (fetch, multiply-adds per run)."""
    dtype = tf.as_dtype(row["dtype"])
    init = tf1.initializers.random_uniform(-1, 1)
    with tf.device(run_config.resolve_device(FLAGS.device)):
        x = tf1.get_variable("x", row["input_shape"], dtype, init)
        kernel = tf1.get_variable("kernel", row["kernel_shape"], dtype, init)
        bias = tf1.get_variable("bias", row["kernel_shape"][-1:], dtype, init)
        net = tf.pad(x, row["paddings"]) if row["paddings"] else x
        # The model's own conv2d: in training, the gradient forms our step takes on this machine.
        y = kernels.conv2d(net, kernel, max(row["strides"]), row["padding"],
                           row["data_format"], is_training=FLAGS.mode == "train")
        outputs = [tf.nn.relu(tf.nn.bias_add(y, bias, data_format=row["data_format"]))]
        macs = row["multiply_adds"] * FLAGS.batch_size
        if FLAGS.mode == "train":
            d_y = tf1.get_variable("d_y", y.shape, dtype, init)
            wrt = [kernel, bias] + ([] if row["network_input"] else [x])
            outputs = tf.gradients(outputs, wrt, grad_ys=[d_y])
            macs *= 2 if row["network_input"] else 3
        # One element of each output: the session still computes all of it.
        return tf.add_n([tf.cast(tf.reshape(t, [-1])[0], tf.float32) for t in outputs]), macs


def bench_layers(matmul, matmul_flops):
    """--per_layer: each of our convolutions alone (`build_layer`) in one session, timed round by
    round, each round after the peak matmul. Returns the JSON record."""
    rows = _conv_layers()
    graph = tf.Graph()
    with graph.as_default():
        fetches = []
        for i, row in enumerate(rows):
            with tf1.variable_scope("layer%d" % i):
                fetches.append(build_layer(row))
        init = tf1.global_variables_initializer()
    times, rates = [[] for _ in rows], []
    with tf1.Session(graph=graph, config=_config(FLAGS.onednn_bf16_rewrite
                                                 and FLAGS.dtype == "float32")) as sess:
        sess.run(init)
        for fetch, _ in fetches:
            for _ in range(max(FLAGS.warmup, 1)):
                sess.run(fetch)
        for r in range(FLAGS.rounds):
            if matmul:
                rates.append(matmul.steps / matmul.run(matmul.steps) * matmul_flops)
            for (fetch, _), seconds in zip(fetches, times):
                start = time.time()
                for _ in range(FLAGS.steps):
                    sess.run(fetch)
                seconds.append((time.time() - start) / FLAGS.steps)
            logging.info("per-layer round %d/%d: %d convolutions, %.0f ms", r + 1, FLAGS.rounds,
                         sum(len(row["scopes"]) for row in rows),
                         1e3 * sum(len(row["scopes"]) * t[-1] for row, t in zip(rows, times)))
    peak = statistics.median(rates) if rates else None
    layers = []
    for row, (_, macs), seconds in zip(rows, fetches, times):
        t = statistics.median(seconds)
        entry = {k: row[k] for k in ("scopes", "input_shape", "paddings", "kernel_shape",
                                     "strides", "padding")}
        entry.update(count=len(row["scopes"]), ms=1e3 * t, gflops=2 * macs / t / 1e9,
                     multiply_adds=macs)
        if peak:
            entry["fraction_of_matmul_peak"] = 2 * macs / t / peak
        layers.append(entry)
    record = {"layers": layers, "rounds": FLAGS.rounds,
              "convolutions": sum(e["count"] for e in layers),
              "sum_ms": sum(e["count"] * e["ms"] for e in layers),
              "gradients": FLAGS.mode == "train",
              "matmul_gflops": peak / 1e9 if peak else None}
    if peak:
        record["at_matmul_peak_ms"] = 1e3 * sum(e["count"] * 2 * e["multiply_adds"]
                                                for e in layers) / peak
    return record


def _print_layers(record):
    what = "conv + bias + ReLU" + (", and its input and weight gradients"
                                   if record["gradients"] else "")
    print("per layer: each of our convolutions alone (%s), ms per batch of %d, median of %d "
          "rounds%s" % (what, FLAGS.batch_size, record["rounds"],
                        "; matmul %.1f GFLOP/s in the same rounds" % record["matmul_gflops"]
                        if record["matmul_gflops"] else ""))
    print("%-50s %5s %-20s %-14s %8s %8s %8s %8s" % ("layer", "count", "input", "kernel", "ms",
                                                     "GFLOP/s", "of peak", "ms, all"))
    for e in record["layers"]:
        name = e["scopes"][0] + (" (+%d)" % (e["count"] - 1) if e["count"] > 1 else "")
        shape = "x".join(str(d) for d in e["input_shape"]) + (" pad" if e["paddings"] else "")
        stride = max(e["strides"])
        kernel = "x".join(str(d) for d in e["kernel_shape"]) + ("/%d" % stride if stride > 1
                                                                else "")
        print("%-50s %5d %-20s %-14s %8.2f %8.1f %8s %8.1f" % (
            name, e["count"], shape, kernel, e["ms"], e["gflops"],
            "%.1f%%" % (100 * e["fraction_of_matmul_peak"]) if "fraction_of_matmul_peak" in e
            else "-", e["count"] * e["ms"]))
    line = "all %d convolutions: %.0f ms per batch" % (record["convolutions"], record["sum_ms"])
    if "at_matmul_peak_ms" in record:
        line += " at %.1f%% of the matmul's rate (%.0f ms at that rate)" % (
            100 * record["at_matmul_peak_ms"] / record["sum_ms"], record["at_matmul_peak_ms"])
    print(line + "; our whole step: %.0f ms" % record["step_ms"])


class Candidate:
    """One model in its own graph and session, timed round by round."""

    def __init__(self, key, label, build, rewrite):
        self.key, self.label, self.rates, self.steps, self.calls = key, label, [], FLAGS.steps, []
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.op = build()
            init = [tf1.global_variables_initializer(), tf1.local_variables_initializer()]
        self.session = tf1.Session(graph=self.graph, config=_config(rewrite))
        self.session.run(init)

    def run(self, steps, record=False):
        start = time.time()
        for _ in range(steps):
            t = time.time()
            self.session.run(self.op)
            if record:
                self.calls.append(time.time() - t)
        return time.time() - start

    def close(self):
        self.session.close()


def make_candidate(key, label, build, rewrite, onnx_paths=None):
    if key.startswith("onnx_"):
        return OnnxCandidate(key, label, onnx_paths[key])
    return Candidate(key, label, build, rewrite)


def _candidates():
    """(key, label, build, rewrite) for every model measured, ours first."""
    ours = "ours (%s%s, %s%s)" % (FLAGS.variant, ", BN folded" if FLAGS.fold_bn else "",
                                  FLAGS.dtype, ", bf16 rewrite" if FLAGS.onednn_bf16_rewrite
                                  and FLAGS.dtype == "float32" else "")
    peer_mode = "float32%s" % (", bf16 rewrite" if _peer_rewrite() else "")
    out = [("ours", ours, build_ours, FLAGS.onednn_bf16_rewrite and FLAGS.dtype == "float32")]
    if "ours_bfloat16" in FLAGS.compare:
        out.append(("ours_bfloat16", "ours (%s%s, bfloat16)" % (
            FLAGS.variant, ", BN folded" if FLAGS.fold_bn else ""), build_ours_bfloat16, False))
    for key, what in (("onnx_float32", "float32"), ("onnx_int8", "int8 QDQ per-channel")):
        if key in FLAGS.compare:
            out.append((key, "ours, ONNX Runtime %s" % what, None, False))
    for key, label, build in (("slim", "TF-slim resnet_v1_%d" % FLAGS.depth, build_slim),
                              ("keras", "tf-keras ResNet%d" % FLAGS.depth, build_keras)):
        if key in FLAGS.compare:
            out.append((key, "%s (%s)" % (label, peer_mode), build, _peer_rewrite()))
        if key + "_float32" in FLAGS.compare:
            out.append((key + "_float32", "%s (float32)" % label, build, False))
    return out


def _peak_memory_mb(key, onnx_dir=None):
    """Peak resident memory of a child process that builds `key` alone and runs a few steps."""
    args = [a for a in sys.argv[1:] if not a.startswith(("--child", "--json", "--memory",
                                                          "--onnx_models"))]
    if onnx_dir:
        args.append("--onnx_models=" + onnx_dir)
    r = subprocess.run([sys.executable, os.path.abspath(__file__), "--child=" + key,
                        "--nomemory"] + args, capture_output=True, text=True, timeout=3600)
    if r.returncode != 0:
        logging.warning("memory of %s not measured: %s", key, r.stderr.strip()[-300:])
        return None
    return json.loads(r.stdout.strip().splitlines()[-1])["peak_rss_mb"]


def _child(key):
    build = {k: b for k, _, b, _ in _candidates()}
    build["matmul"] = build_matmul
    rewrite = {k: r for k, _, _, r in _candidates()}.get(key, False)
    paths = None
    if key.startswith("onnx_"):
        paths = {key: os.path.join(FLAGS.onnx_models, key, "model.onnx")}
    c = make_candidate(key, key, build[key], rewrite, paths)
    c.run(FLAGS.warmup + 2)
    print(json.dumps({"peak_rss_mb": _peak_rss_mb()}))


def _peak_rss_mb():
    """This process's resident-memory high-water mark. /proc's VmHWM belongs to the process's own
    address space; getrusage's ru_maxrss can include the parent's when the child was spawned
    with vfork (as subprocess does), so it is only the fallback."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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
        graph = tf.Graph()
        with graph.as_default():
            images, labels, _ = run_config.input_batches(_params(kind, data_dir), training=True)
            with tf1.Session(graph=graph) as sess:
                for _ in range(FLAGS.warmup):
                    sess.run([images, labels])
                start = time.time()
                steps = FLAGS.steps * FLAGS.rounds
                for _ in range(steps):
                    sess.run([images, labels])
                return FLAGS.batch_size * steps / (time.time() - start)
    finally:
        if tmp:
            tmp.cleanup()


def _per_round(ours, peer):
    """The ratio ours / peer of each round's rates: its median, min and max. The models alternate
    within a round, so a round's ratio cancels a drift of the machine's speed between rounds."""
    ratios = [a / b for a, b in zip(ours, peer)]
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}


def _drift(rates):
    """A warning line when the matmul's rate varied across rounds by more than DRIFT_WARNING, else
    None. The models alternate within each round, so a slowdown hits them alike, but one that
    comes and goes within a round does not: such a run's ratios are less reliable."""
    if len(rates) < 2 or max(rates) <= DRIFT_WARNING * min(rates):
        return None
    return ("the peak matmul ran at %.0f-%.0f GFLOP/s across the rounds (%.2fx): the machine's "
            "speed changed during this run, so its ratios are less reliable; run it again"
            % (min(rates) / 1e9, max(rates) / 1e9, max(rates) / min(rates)))


def _machine():
    """CPU model, cores, the vector / matrix extensions that matter here, GPUs, TF version."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                    break
    except OSError:
        pass
    have = kernels.cpu_flags()
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile",
              "amx_bf16", "amx_fp16")
    return {"cpu": model, "cores": os.cpu_count(), "cpu_flags": [f for f in wanted if f in have],
            "gpus": [g.name for g in tf.config.list_physical_devices("GPU")],
            "tensorflow": tf.__version__, "onednn": kernels.onednn_enabled()}


def _check_flags(argv):
    if len(argv) > 1:
        raise app.UsageError("unexpected arguments: %s" % " ".join(argv[1:]))
    if FLAGS.input_pipeline in ("folder", "tfrecords") and not FLAGS.data_dir:
        raise app.UsageError("--input_pipeline=%s needs --data_dir (your images)"
                             % FLAGS.input_pipeline)
    for peer in FLAGS.compare:
        if peer in OURS_EXTRA:
            if peer.startswith("onnx_") and FLAGS.mode != "inference":
                raise app.UsageError("--compare=%s times inference: add --mode=inference" % peer)
            if peer.startswith("onnx_") and FLAGS.data_format != "NHWC":
                raise app.UsageError("--compare=%s exports the NHWC graph: drop --data_format"
                                     % peer)
            if peer == "ours_bfloat16" and FLAGS.dtype != "float32":
                raise app.UsageError("--compare=ours_bfloat16 is for a --dtype=float32 run")
            continue
        if peer not in PEERS:
            raise app.UsageError("--compare: unknown peer %r (expected %s)" % (
                peer, ", ".join(PEERS + OURS_EXTRA)))
        if FLAGS.depth not in model_lib.IMAGENET_UNITS or FLAGS.depth in model_lib.BASIC_DEPTHS:
            raise app.UsageError("--compare=%s needs a bottleneck depth (50, 101, 152%s)"
                                 % (peer, ", 200" if peer.startswith("slim") else ""))
        if peer.startswith("keras") and FLAGS.depth == 200:
            raise app.UsageError("--compare=%s: tf-keras has no ResNet200" % peer)
    if any(p.startswith("onnx_") for p in FLAGS.compare):
        from resnet_tf1 import onnxrt
        if not onnxrt.available():
            raise app.UsageError("--compare=onnx_*: onnxruntime is not installed (pip install -e "
                                 "'.[onnx]')")
    if FLAGS.fold_bn and FLAGS.mode != "inference":
        raise app.UsageError("--fold_bn applies to --mode=inference")


# What one run measured: per model key its label and steps/sec of each round (ours first); the
# matmul's FLOP/s per round; and, when asked for, the per-layer times, the child processes'
# peak memory (MB per run) and the input pipeline's images/sec.
Measured = collections.namedtuple("Measured", ["labels", "rates", "matmul_rates", "per_layer",
                                               "memory", "pipeline", "latency"])


def measure():
    """Times every candidate (and the matmul) in alternated rounds, then the optional extras."""
    onnx_tmp = onnx_paths = None
    if any(key.startswith("onnx_") for key, _, _, _ in _candidates()):
        onnx_tmp = tempfile.TemporaryDirectory()
        logging.info("exporting our model to ONNX (float32, int8) in %s", onnx_tmp.name)
        onnx_paths = export_onnx(onnx_tmp.name)
    candidates = [make_candidate(*c, onnx_paths=onnx_paths) for c in _candidates()]
    matmul = Candidate("matmul", "matmul %dx%d %s" % (FLAGS.matmul_size, FLAGS.matmul_size,
                                                      FLAGS.dtype), build_matmul, False) \
        if FLAGS.matmul_size else None
    timed = candidates + ([matmul] if matmul else [])
    for c in timed:
        c.run(FLAGS.warmup)
    if matmul:
        # One matmul takes milliseconds: `--steps` of them would time mostly the thread pool
        # waking up after the model before it. Each round times MATMUL_SECONDS of them.
        matmul.steps = max(FLAGS.steps, math.ceil(MATMUL_SECONDS / (matmul.run(5) / 5)))
    matmul_flops = 2 * FLAGS.matmul_size ** 3
    for r in range(FLAGS.rounds):
        for c in timed:
            c.rates.append(c.steps / c.run(c.steps, record=c is not matmul))  # steps/sec
        logging.info("round %d/%d: %s", r + 1, FLAGS.rounds, "  ".join(
            "%s %.1f" % (c.key, c.rates[-1] * FLAGS.batch_size) if c is not matmul else
            "matmul %.1f GFLOP/s" % (c.rates[-1] * matmul_flops / 1e9) for c in timed))
    for c in candidates:
        c.close()
    per_layer = bench_layers(matmul, matmul_flops) if FLAGS.per_layer else None
    if matmul:
        matmul.session.close()
    memory = None
    if FLAGS.memory:
        memory = {c.key: [] for c in candidates}
        for _ in range(FLAGS.memory_runs):  # alternated, like the rounds
            for key in memory:
                mb = _peak_memory_mb(key, onnx_tmp.name if onnx_tmp else None)
                if mb is not None:
                    memory[key].append(mb)
    if onnx_tmp:
        onnx_tmp.cleanup()
    pipeline = (bench_pipeline(FLAGS.input_pipeline) if FLAGS.input_pipeline != "none"
                else None)
    return Measured(collections.OrderedDict((c.key, c.label) for c in candidates),
                    collections.OrderedDict((c.key, c.rates) for c in candidates),
                    [r * matmul_flops for r in matmul.rates] if matmul else [],  # FLOP/s
                    per_layer, memory, pipeline,
                    collections.OrderedDict((c.key, c.calls) for c in candidates))


def _percentile(sorted_values, q):
    """The q-th percentile of sorted values (linear interpolation, numpy's default)."""
    return float(np.percentile(sorted_values, q))


def record(what, machine, m):
    """The run's record (what --json prints): medians, ranges and ratios of `m` (Measured)."""
    size = 32 if _cifar() else 224
    config = dict(depth=FLAGS.depth, variant=FLAGS.variant,
                  num_classes=data.spec(run_config.default_dataset(FLAGS.depth)).num_classes)
    macs = manifest.make(config, size)["multiply_adds"]
    flops_per_image = 2 * macs * (3 if FLAGS.mode == "train" else 1)
    peak = statistics.median(m.matmul_rates) if m.matmul_rates else None
    drift = _drift(m.matmul_rates)
    if drift:
        logging.warning(drift)
    result = {"what": what, "machine": machine, "batch_size": FLAGS.batch_size,
              "mode": FLAGS.mode, "dtype": FLAGS.dtype, "xla": FLAGS.xla, "rounds": FLAGS.rounds,
              "steps_per_round": FLAGS.steps, "multiply_adds_per_image": macs,
              "matmul_gflops": peak / 1e9 if peak else None,
              "matmul_gflops_min": min(m.matmul_rates) / 1e9 if peak else None,
              "matmul_gflops_max": max(m.matmul_rates) / 1e9 if peak else None,
              "drift_warning": drift, "models": {}}
    models = result["models"]
    for key, steps in m.rates.items():
        rates = [r * FLAGS.batch_size for r in steps]
        median = statistics.median(rates)
        entry = {"label": m.labels[key], "images_per_sec": {"median": median, "min": min(rates),
                                                            "max": max(rates)}}
        if key == "ours" and peak:
            entry["fraction_of_matmul_peak"] = median * flops_per_image / peak
        calls = sorted(m.latency.get(key) or [])
        if calls:
            entry["latency_ms"] = {"p50": 1e3 * _percentile(calls, 50),
                                   "p99": 1e3 * _percentile(calls, 99), "calls": len(calls)}
        models[key] = entry
    ours = models["ours"]["images_per_sec"]["median"]
    if m.per_layer is not None:
        result["per_layer"] = m.per_layer
        result["per_layer"]["step_ms"] = 1e3 * FLAGS.batch_size / ours
    for key, steps in m.rates.items():
        if key != "ours":
            entry = models[key]
            entry["ratio_ours_to_this"] = ours / entry["images_per_sec"]["median"]
            entry["speedup_over_ours"] = entry["images_per_sec"]["median"] / ours
            entry["ratio_ours_to_this_per_round"] = _per_round(m.rates["ours"], steps)
    if m.memory is not None:
        for key, mbs in m.memory.items():
            models[key]["peak_rss_mb"] = statistics.median(mbs) if mbs else None
            models[key]["peak_rss_mb_runs"] = mbs
        if m.memory["ours"]:
            for key, entry in models.items():
                if key != "ours" and entry["peak_rss_mb"]:
                    entry["memory_ratio_ours_to_this"] = (models["ours"]["peak_rss_mb"]
                                                          / entry["peak_rss_mb"])
    if m.pipeline is not None:
        result["input_pipeline"] = {"dataset": FLAGS.input_pipeline, "images_per_sec": m.pipeline,
                                    "ratio_to_ours": m.pipeline / ours}
    return result


def print_table(result):
    """The record as the table the README and BUILD.md quote."""
    machine = result["machine"]
    print("%s (%s, %d cores, %s; oneDNN %s)" % (result["what"], machine["cpu"], machine["cores"],
                                                " ".join(machine["cpu_flags"]) or "no AVX-512",
                                                "on" if machine["onednn"] else "off"))
    print("%-46s %9s %8s %8s %9s %10s %20s %8s" % ("model", "median", "min", "max", "peak MB",
                                                   "ours/this", "per-round ours/this",
                                                   "of peak"))
    for key, e in result["models"].items():
        ips = e["images_per_sec"]
        per_round = e.get("ratio_ours_to_this_per_round")
        print("%-46s %9.1f %8.1f %8.1f %9s %10s %20s %8s" % (
            e["label"], ips["median"], ips["min"], ips["max"],
            "%.0f" % e["peak_rss_mb"] if e.get("peak_rss_mb") else "-",
            "%.3f" % e["ratio_ours_to_this"] if "ratio_ours_to_this" in e else "-",
            "%.3f (%.2f-%.2f)" % (per_round["median"], per_round["min"], per_round["max"])
            if per_round else "-",
            "%.1f%%" % (100 * e["fraction_of_matmul_peak"]) if "fraction_of_matmul_peak" in e
            else "-"))
    if result["matmul_gflops"]:
        flops_per_image = 2 * result["multiply_adds_per_image"] * (
            3 if result["mode"] == "train" else 1)
        print("matmul %dx%d %s: %.1f GFLOP/s, %.1f-%.1f over the rounds (our step: %.2f GFLOP "
              "per image, %s)" % (FLAGS.matmul_size, FLAGS.matmul_size, FLAGS.dtype,
                                  result["matmul_gflops"], result["matmul_gflops_min"],
                                  result["matmul_gflops_max"], flops_per_image / 1e9,
                                  "x3 for training" if FLAGS.mode == "train" else "forward"))
        if result["drift_warning"]:
            print("warning: " + result["drift_warning"])
    faster = ["%s %.2fx" % (key, e["speedup_over_ours"]) for key, e in result["models"].items()
              if key in OURS_EXTRA]
    if faster:
        print("images/sec over ours (%s): %s" % (result["models"]["ours"]["label"],
                                                 ", ".join(faster)))
    if FLAGS.batch_size == 1:
        lat = ["%s p50 %.1f ms, p99 %.1f ms" % (key, e["latency_ms"]["p50"], e["latency_ms"]["p99"])
               for key, e in result["models"].items() if "latency_ms" in e]
        print("latency of one image (%d calls each): %s" % (
            result["models"]["ours"]["latency_ms"]["calls"], "; ".join(lat)))
        ours_p50 = result["models"]["ours"]["latency_ms"]["p50"]
        print("p50 latency, ours / this: %s" % ", ".join(
            "%s %.2fx" % (key, ours_p50 / e["latency_ms"]["p50"])
            for key, e in result["models"].items() if key != "ours" and "latency_ms" in e))
    ratios = ["%s %.3f" % (key, e["memory_ratio_ours_to_this"])
              for key, e in result["models"].items() if "memory_ratio_ours_to_this" in e]
    if ratios:
        print("peak memory, ours/this (median of %d child processes each): %s"
              % (FLAGS.memory_runs, ", ".join(ratios)))
    if "per_layer" in result:
        _print_layers(result["per_layer"])
    if "input_pipeline" in result:
        p = result["input_pipeline"]
        print("input pipeline %s (training preprocessing, batch %d): %.1f images/sec, %.2fx ours"
              % (p["dataset"], FLAGS.batch_size, p["images_per_sec"], p["ratio_to_ours"]))


def main(argv):
    _check_flags(argv)
    if FLAGS.xla:
        _enable_xla()  # may restart the process
    if FLAGS.child:
        _child(FLAGS.child)
        return 0
    machine = _machine()
    what = "ResNet-%d %s %s %s batch %d on %s%s" % (FLAGS.depth, FLAGS.mode, FLAGS.dtype,
                                                    FLAGS.data_format, FLAGS.batch_size,
                                                    "GPU" if machine["gpus"] else "CPU",
                                                    ", XLA" if FLAGS.xla else "")
    logging.info("%s; %s, %d cores, %s; TensorFlow %s, oneDNN %s", what, machine["cpu"],
                 machine["cores"], " ".join(machine["cpu_flags"]) or "no AVX-512",
                 machine["tensorflow"], "on" if machine["onednn"] else "off")
    result = record(what, machine, measure())
    if FLAGS.json:
        print(json.dumps(result, indent=1, sort_keys=True))
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    app.run(main)
