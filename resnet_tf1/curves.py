"""Training curves like the paper's Fig. 6, read from the TensorBoard event files of runs.

A run directory is a `train.py --model_dir`: its event files hold the training summaries (`top_1`,
the training batch's top-1 accuracy, every --log_every_n_steps), and `<model_dir>/eval` holds
`evaluate.py`'s (`top_1_accuracy` of each evaluated checkpoint: `evaluate.py --watch` during
training gives the series). The training series is smoothed (an exponential moving average, as
TensorBoard's slider does), since one batch's accuracy is noisy.
"""

import collections
import glob
import io
import os

import tensorflow as tf

from resnet_tf1 import errors, fileio, rundir

TRAIN_TAG = "top_1"
TEST_TAG = "top_1_accuracy"

# label: "ResNet-56" / "plain-56"; train, test: lists of (step, value) in the chosen metric.
Curves = collections.namedtuple("Curves", ["run_dir", "label", "train", "test"])


class CurvesError(errors.UserError):
    """A run directory without the summaries a curve needs; the message is one line."""


def read_scalars(directory, tag):
    """[(step, value)] of `tag` in the event files directly in `directory`, by step; a step
    written twice (a resumed run) keeps the last value."""
    points = {}
    for path in sorted(glob.glob(os.path.join(directory, "events.out.tfevents.*"))):
        try:
            for event in tf.compat.v1.train.summary_iterator(path):
                for value in event.summary.value:
                    if value.tag == tag:
                        points[int(event.step)] = float(value.simple_value)
        except tf.errors.DataLossError:
            pass  # a file being written (a run still training) ends in a partial record
    return sorted(points.items())


def read_wall_times(path, tag):
    """[(step, wall_time)] of `tag` in one event file, in the order written."""
    out = []
    try:
        for event in tf.compat.v1.train.summary_iterator(path):
            if any(value.tag == tag for value in event.summary.value):
                out.append((int(event.step), float(event.wall_time)))
    except tf.errors.DataLossError:
        pass  # a file still being written
    return out


def smooth(points, weight):
    """Exponential moving average of the values (weight 0: none)."""
    out, last = [], None
    for step, value in points:
        last = value if last is None else weight * last + (1 - weight) * value
        out.append((step, last))
    return out


def read_run(run_dir, metric="error", smoothing=0.6):
    """The run's Curves in `metric` ("error" or "accuracy", in %). CurvesError (one line) when
    it holds no training summaries."""
    if not os.path.isdir(run_dir):
        raise CurvesError("%s is not a directory (expected a train.py --model_dir)" % run_dir)
    train = read_scalars(run_dir, TRAIN_TAG)
    if not train:
        raise CurvesError("%s holds no training summaries (no '%s' scalar in its event files; "
                          "expected a train.py --model_dir)" % (run_dir, TRAIN_TAG))
    test = read_scalars(rundir.eval_dir(run_dir), TEST_TAG)

    def convert(points):
        if metric == "error":
            return [(s, 100.0 * (1.0 - v)) for s, v in points]
        return [(s, 100.0 * v) for s, v in points]
    return Curves(run_dir, rundir.label(run_dir), convert(smooth(train, smoothing)), convert(test))


def write_csv(curves, path):
    lines = ["run,label,series,step,value"]
    for c in curves:
        for series, points in (("train", c.train), ("test", c.test)):
            lines += ["%s,%s,%s,%d,%.6g" % (c.run_dir, c.label, series, s, v) for s, v in points]
    fileio.write_text(path, "\n".join(lines) + "\n")


def pyplot():
    """matplotlib's pyplot, drawing off-screen (Agg); matplotlib is an optional extra: pip install
    -e '.[plots]' (ImportError without it)."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    return plt


def save_png(fig, path):
    """Lays out `fig`, writes it to `path` as a PNG atomically and closes it; returns `path`."""
    plt = pyplot()
    fig.tight_layout()
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png")
    finally:
        plt.close(fig)
    fileio.write_bytes(path, buffer.getvalue())
    return path


def plot(curves, path, metric="error", title=None):
    """Fig. 6's style: training error dashed, test error bold, one colour per run, linear axes
    (iterations; error in %). Writes a PNG atomically."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=120)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, c in enumerate(curves):
        colour = colours[i % len(colours)]
        ax.plot(*zip(*c.train), linestyle="--", linewidth=1, color=colour)
        # Markers too: an evaluation run once at the end is a single point.
        ax.plot(*(zip(*c.test) if c.test else ([], [])), linestyle="-", linewidth=2.2,
                marker="o", markersize=3, color=colour, label=c.label)
    ax.set_xlabel("iter.")
    ax.set_ylabel("%s (%%)" % metric)
    ax.grid(True, linewidth=0.3)
    ax.legend(title="dashed: training, bold: test", fontsize=8, title_fontsize=8)
    if title:
        ax.set_title(title)
    return save_png(fig, path)
