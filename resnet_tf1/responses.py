"""Layer responses like the paper's Fig. 7: the standard deviation of each 3x3 layer's response.

The paper (Section 4.2): "the responses are the outputs of each 3x3 layer, after BN and before
other nonlinearity (ReLU/addition)", on the CIFAR-10 test set; Fig. 7 draws their standard
deviations in the original layer order (top) and sorted by magnitude (bottom). Here a layer's
std is over every element of its response (images x positions x channels) across the whole
evaluation set, in inference mode (BN with the checkpoint's statistics, the recomputed ones when
training wrote them); it is accumulated per batch (mean and sum of squared deviations, combined
across batches in float64), so it does not depend on the batch size.
"""

import collections

import numpy as np
import tensorflow as tf

from resnet_tf1 import curves, errors, fileio
from resnet_tf1 import data as data_lib
from resnet_tf1 import model as model_lib
from resnet_tf1 import restore as restore_lib
from resnet_tf1 import run_config, rundir

tf1 = tf.compat.v1

# label: "plain-56" / "ResNet-56"; layers: [(scope, std)] in the network's order.
Responses = collections.namedtuple("Responses", ["run_dir", "label", "checkpoint", "layers",
                                                 "num_examples"])


def model_kwargs(params, run_dir):
    """The run's model from its model_config.json (float32 for the measurement), else the one
    the flags describe."""
    if rundir.kind_of(run_dir) == "training run":
        kwargs = dict(rundir.read_record(run_dir).config["model"])
    else:
        kwargs = run_config.model_kwargs(params)
    kwargs["dtype"] = "float32"
    return kwargs


def _moments(tensor):
    """(count, mean, sum of squared deviations) of all elements, in float32 graph ops."""
    x = tf.cast(tensor, tf.float32)
    mean = tf.reduce_mean(x)
    return tf.size(x, out_type=tf.int64), mean, tf.reduce_sum(tf.square(x - mean))


class _Running:
    """Chan et al.'s pairwise combination of (count, mean, M2), in float64."""

    def __init__(self):
        self.n, self.mean, self.m2 = 0, 0.0, 0.0

    def add(self, n, mean, m2):
        n, mean, m2 = int(n), float(mean), float(m2)
        total = self.n + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.n * n / total
        self.n = total

    def std(self):
        return float(np.sqrt(self.m2 / self.n))


def compute(params, run_dir, checkpoint=None, max_batches=0, kernel=3):
    """The run's Responses over the evaluation set of `params` (its first `max_batches` batches
    when > 0): the std of the response of every `kernel` x `kernel` conv's BN, in layer order.

    Raises:
        checkpoints.CheckpointError: no checkpoint, a non-finite one, or one that does not fit
            the model.
        errors.FlagError: a data set without an evaluation set, or no layers of that kernel.
    """
    if not data_lib.has_files(params.dataset):
        raise errors.FlagError("--dataset=%s has no evaluation set (expected one of %s)"
                               % (params.dataset, ", ".join(
                                   n for n in data_lib.DATASETS if data_lib.has_files(n))))
    ckpt = rundir.checkpoint(checkpoint or run_dir)
    kwargs = model_kwargs(params, run_dir)
    graph = tf.Graph()
    with graph.as_default():
        images, _, _ = run_config.input_batches(params, training=False)
        model = model_lib.ResNet(**kwargs)
        model(images, is_training=False)
        layers = [layer for layer in model.bn_layers if layer.kernel == kernel]
        if not layers:
            raise errors.FlagError("%s has no %dx%d layers with BN" % (run_dir, kernel, kernel))
        fetches = [_moments(layer.outputs) for layer in layers]
        restorer = restore_lib.Restorer(ckpt.prefix, arrays=ckpt.arrays)
        running = [_Running() for _ in layers]
        examples = 0
        with tf1.Session(config=run_config.session_config()) as sess:
            restorer.restore(sess)
            batch = 0
            while not max_batches or batch < max_batches:
                try:
                    values, n = sess.run([fetches, tf.shape(images)[0]])
                except tf.errors.OutOfRangeError:
                    break
                for r, moments in zip(running, values):
                    r.add(*moments)
                examples += int(n)
                batch += 1
    if not examples:
        raise data_lib.DataError("the evaluation set of --dataset=%s in %s is empty"
                                 % (params.dataset, params.data_dir))
    # "cifar_resnet20/block1/unit_1/basic/conv1/BatchNorm" -> "block1/unit_1/basic/conv1"
    names = [layer.scope.split("/", 1)[-1].rsplit("/BatchNorm", 1)[0] for layer in layers]
    return Responses(run_dir, rundir.label(run_dir), ckpt.prefix,
                     [(name, r.std()) for name, r in zip(names, running)], examples)


def write_csv(results, path):
    """run,label,layer_index,layer,std,sorted_rank (rank 1: the largest std of the run)."""
    lines = ["run,label,layer_index,layer,std,sorted_rank"]
    for r in results:
        order = np.argsort([-std for _, std in r.layers], kind="stable")
        rank = np.empty(len(order), np.int64)
        rank[order] = np.arange(1, len(order) + 1)
        lines += ["%s,%s,%d,%s,%.6g,%d" % (r.run_dir, r.label, i + 1, name, std, rank[i])
                  for i, (name, std) in enumerate(r.layers)]
    fileio.write_text(path, "\n".join(lines) + "\n")


def plot(results, path, title=None):
    """Fig. 7's two panels: std against the layer index (top) and sorted by magnitude (bottom),
    one line per run. Writes a PNG atomically."""
    plt = curves.pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 6), dpi=120)
    for r in results:
        stds = [std for _, std in r.layers]
        index = np.arange(1, len(stds) + 1)
        top.plot(index, stds, marker=".", linewidth=1, label=r.label)
        bottom.plot(index, sorted(stds, reverse=True), marker=".", linewidth=1, label=r.label)
    top.set_xlabel("layer index (original)")
    bottom.set_xlabel("layer index (sorted by magnitude)")
    for ax in (top, bottom):
        ax.set_ylabel("std")
        ax.grid(True, linewidth=0.3)
        ax.legend(fontsize=8)
    if title:
        top.set_title(title)
    return curves.save_png(fig, path)
