"""scripts/plot_curves.py: Fig. 6-style curves from the event files of real runs."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from resnet_tf1 import curves
from test_failures import error_line, run, train_args

tf1 = tf.compat.v1


def _events(directory, tag, points):
    with tf.Graph().as_default():
        writer = tf1.summary.FileWriter(directory)
        for step, value in points:
            writer.add_summary(tf1.Summary(value=[tf1.Summary.Value(tag=tag,
                                                                    simple_value=value)]), step)
        writer.close()


def test_curves_read_the_summaries_smoothed_and_in_percent(tmp_path):
    run_dir = str(tmp_path / "run")
    train = [(1, 0.1), (11, 0.3), (21, 0.5), (31, 0.4)]
    _events(run_dir, "top_1", train)
    _events(os.path.join(run_dir, "eval"), "top_1_accuracy", [(20, 0.45), (40, 0.55)])
    with open(os.path.join(run_dir, "model_config.json"), "w") as f:
        json.dump({"model": {"depth": 56, "num_classes": 10, "shortcut": "none"}}, f)
    c = curves.read_run(run_dir, "error", smoothing=0.5)
    assert c.label == "plain-56"
    ema, expected = None, []
    for step, value in train:
        ema = value if ema is None else 0.5 * ema + 0.5 * value
        expected.append((step, 100 * (1 - ema)))
    assert [s for s, _ in c.train] == [1, 11, 21, 31]
    np.testing.assert_allclose([v for _, v in c.train], [v for _, v in expected], rtol=1e-6)
    np.testing.assert_allclose(c.test, [(20, 55.0), (40, 45.0)], rtol=1e-6)
    accuracy = curves.read_run(run_dir, "accuracy", smoothing=0)
    np.testing.assert_allclose([v for _, v in accuracy.train], [10, 30, 50, 40], rtol=1e-6)


def test_plot_curves_on_a_real_run(cifar_dir, tmp_path):
    model_dir = tmp_path / "r20"
    t = run("train.py", *train_args(cifar_dir, model_dir, "--depth=8", "--max_steps=4",
                                     "--save_checkpoints_steps=4"))
    assert t.returncode == 0, t.stderr[-3000:]
    e = run("evaluate.py", "--flagfile=%s" % (model_dir / "flags.txt"))
    assert e.returncode == 0, e.stderr[-3000:]
    metrics = json.load(open(str(model_dir / "eval" / "metrics.json")))
    png, csv = tmp_path / "curves.png", tmp_path / "points.csv"
    r = run("plot_curves.py", str(model_dir), "--output=%s" % png, "--csv=%s" % csv,
            "--smoothing=0")
    assert r.returncode == 0, r.stderr[-3000:]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = [line.split(",") for line in csv.read_text().splitlines()[1:]]
    train = [(int(r[3]), float(r[4])) for r in rows if r[2] == "train"]
    test = [(int(r[3]), float(r[4])) for r in rows if r[2] == "test"]
    # Every logged step's training summary (--log_every_n_steps=1), and the one evaluation.
    assert rows[0][1] == "ResNet-8"
    assert [s for s, _ in train] == sorted(s for s, _ in train) and 1 <= len(train) <= 4
    assert all(0 <= v <= 100 for _, v in train)
    assert test == [(4, pytest.approx(100 * (1 - metrics["top_1_accuracy"]), abs=1e-4))]


def test_a_directory_without_summaries_is_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    r = run("plot_curves.py", str(tmp_path / "empty"), "--output=%s" % (tmp_path / "c.png"))
    assert error_line(r, "plot_curves").startswith(
        "plot_curves: error: %s holds no training summaries" % (tmp_path / "empty"))
    assert not (tmp_path / "c.png").exists()
