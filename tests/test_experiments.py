"""The paper's experiments: Fig. 7 layer responses and the Table 6 / Fig. 6 reproduction script."""

import json
import os

import numpy as np
import tensorflow as tf

from resnet_tf1 import model as model_lib
from resnet_tf1 import responses, run_config
from test_failures import ROOT, error_line, run, train_args

tf1 = tf.compat.v1


def _random_run(run_dir, depth=8, shortcut=None, seed=0):
    """A run directory holding a checkpoint of a CIFAR net with random weights and random BN
    parameters and statistics (so every layer's response has its own scale)."""
    kwargs = {"depth": depth, "num_classes": 10}
    if shortcut:
        kwargs["shortcut"] = shortcut
    rng = np.random.RandomState(seed)
    with tf.Graph().as_default():
        model = model_lib.ResNet(**kwargs)
        model(tf1.placeholder(tf.float32, [None, 32, 32, 3]), is_training=False)
        global_step = tf1.train.get_or_create_global_step()
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            for v in tf1.global_variables():
                name = v.op.name
                if name.endswith(("gamma", "moving_variance")):
                    v.load(rng.uniform(0.3, 3.0, v.shape.as_list()), sess)
                elif name.endswith(("beta", "moving_mean")):
                    v.load(rng.normal(0.0, 1.0, v.shape.as_list()), sess)
            sess.run(global_step.assign(7))
            tf1.train.Saver().save(sess, os.path.join(run_dir, "model.ckpt"), global_step=7)
    with open(os.path.join(run_dir, run_config.MODEL_CONFIG), "w") as f:
        json.dump({"model": kwargs}, f)
    return kwargs


def _captured_stds(params, kwargs, run_dir):
    """numpy's std of every 3x3 layer's BN output, captured batch by batch from the graph by op
    name (not through the code under test) and concatenated."""
    with tf.Graph().as_default() as graph:
        images, _, _ = run_config.input_batches(params, training=False)
        model = model_lib.ResNet(**kwargs)
        model(images, is_training=False)
        scope = model.resolve(32)["scope"]
        kernels = {v.op.name[len(scope) + 1:-len("/weights")]: v.shape.as_list()[0]
                   for v in tf1.global_variables() if v.op.name.endswith("/weights")}
        layers = [name for name, k in kernels.items() if k == 3]
        tensors = [graph.get_tensor_by_name("%s/%s/BatchNorm/FusedBatchNormV3:0" % (scope, name))
                   for name in layers]
        captured = [[] for _ in layers]
        with tf1.Session() as sess:
            tf1.train.Saver().restore(sess, tf.train.latest_checkpoint(run_dir))
            while True:
                try:
                    for c, value in zip(captured, sess.run(tensors)):
                        c.append(value.astype(np.float64))
                except tf.errors.OutOfRangeError:
                    break
    return {name: float(np.concatenate(c).std()) for name, c in zip(layers, captured)}, \
        sum(len(b) for b in captured[0])


def test_layer_responses_equal_numpy_on_captured_activations(cifar_dir, tmp_path):
    run_dir = str(tmp_path / "run")
    os.makedirs(run_dir)
    kwargs = _random_run(run_dir, shortcut="none")
    # 7 does not divide the evaluation set: batches of unequal size are combined exactly.
    params = run_config.RunParams(dataset="cifar10", data_dir=cifar_dir, depth=8, batch_size=7,
                                  model_dir=run_dir).validate()
    r = responses.compute(params, run_dir)
    expected, n = _captured_stds(params, kwargs, run_dir)
    assert n % 7 and r.num_examples == n
    assert r.label == "plain-8"
    # The stem and the two 3x3 convs of each of the 3 units, in the network's order.
    assert [name for name, _ in r.layers] == [
        "conv1", "block1/unit_1/basic/conv1", "block1/unit_1/basic/conv2",
        "block2/unit_1/basic/conv1", "block2/unit_1/basic/conv2",
        "block3/unit_1/basic/conv1", "block3/unit_1/basic/conv2"]
    got = dict(r.layers)
    assert sorted(got) == sorted(expected)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, err_msg=name)
    stds = list(got.values())
    assert max(stds) / min(stds) > 1.5  # random BN parameters: the layers really differ
    # The first batch only: a different number (the measurement is over the data it reads).
    first = responses.compute(params, run_dir, max_batches=1)
    assert first.num_examples == 7 and dict(first.layers) != got


def test_layer_responses_script_on_real_runs(cifar_dir, tmp_path):
    dirs = {}
    for name, extra in (("r8", []), ("p8", ["--shortcut=none"])):
        dirs[name] = tmp_path / name
        t = run("train.py", *train_args(cifar_dir, dirs[name], "--depth=8", "--max_steps=3",
                                        *extra))
        assert t.returncode == 0, t.stderr[-3000:]
    png, csv = tmp_path / "responses.png", tmp_path / "responses.csv"
    r = run("layer_responses.py", "--flagfile=%s" % (dirs["r8"] / "flags.txt"), str(dirs["p8"]),
            "--output=%s" % png, "--csv=%s" % csv)
    assert r.returncode == 0, r.stderr[-3000:]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = [line.split(",") for line in csv.read_text().splitlines()[1:]]
    assert [row[1] for row in rows] == ["ResNet-8"] * 7 + ["plain-8"] * 7
    for label in ("ResNet-8", "plain-8"):
        stds = [float(row[4]) for row in rows if row[1] == label]
        ranks = [int(row[5]) for row in rows if row[1] == label]
        assert all(s > 0 for s in stds)
        assert sorted(ranks) == list(range(1, 8))
        assert [stds[i] for i in np.argsort(ranks)] == sorted(stds, reverse=True)
    missing = run("layer_responses.py", "--flagfile=%s" % (dirs["r8"] / "flags.txt"),
                  str(tmp_path / "nothing"), "--csv=%s" % (tmp_path / "x.csv"))
    assert str(tmp_path / "nothing") in error_line(missing, "layer_responses")
    assert not (tmp_path / "x.csv").exists()


def _tiny_flagfile(path, kind, cifar_dir, depth=8):
    with open(path, "w") as f:
        f.write("--flagfile=%s\n--depth=%d\n--batch_size=8\n--max_steps=4\n--lr_boundaries=2,3\n"
                "--save_checkpoints_steps=2\n--log_every_n_steps=1\n--recompute_bn_batches=1\n"
                % (os.path.join(ROOT, "scripts", "flags", "cifar10_%s20.flags" % kind), depth))
    return str(path)


def test_reproduce_table6_skips_finished_runs_and_survives_a_failed_one(cifar_dir, tmp_path):
    out = tmp_path / "out"
    resnet = _tiny_flagfile(tmp_path / "tiny_resnet8.flags", "resnet", cifar_dir)
    plain = _tiny_flagfile(tmp_path / "tiny_plain8.flags", "plain", cifar_dir)
    broken = _tiny_flagfile(tmp_path / "tiny_broken.flags", "resnet", cifar_dir, depth=9)
    args = ["--data_dir=%s" % cifar_dir, "--out=%s" % out, "--log_every_secs=5"]
    # A net that fails is reported and the next one still runs; exit 1.
    first = run("reproduce_table6.py", *args, "--flagfiles=%s,%s" % (broken, resnet))
    line = error_line(first, "reproduce_table6")
    assert "1 of 2 nets did not finish: tiny_broken: training failed" in line and "depth" in line
    result = json.loads((out / "results" / "tiny_resnet8.json").read_text())
    metrics = json.loads((out / "runs" / "tiny_resnet8" / "eval" / "metrics.json").read_text())
    assert result["max_steps"] == metrics["global_step"] == 4
    assert result["label"] == "ResNet-8" and result["parameters"] == 75290
    assert result["test_error"] == 100.0 * (1.0 - metrics["top_1_accuracy"])
    assert "bn_recomputed" in metrics["checkpoint"]
    # evaluate.py --watch ran beside training (a test curve; how many checkpoints it saw
    # depends on timing, the last is always there).
    assert "step 4: top-1" in (out / "logs" / "tiny_resnet8.watch.log").read_text()
    table = (out / "table6.md").read_text()
    assert "| ResNet-8 | 8 | 75,290 | 4 |" in table and "Not finished: tiny_broken" in table
    stamp = os.path.getmtime(out / "results" / "tiny_resnet8.json")
    # Restarted with the broken net fixed away: the finished net is skipped, the new one runs.
    second = run("reproduce_table6.py", *args, "--flagfiles=%s,%s" % (resnet, plain))
    assert second.returncode == 0, second.stderr[-3000:]
    assert "tiny_resnet8: finished earlier" in second.stderr
    assert os.path.getmtime(out / "results" / "tiny_resnet8.json") == stamp
    table = (out / "table6.md").read_text()
    assert "| ResNet-8 | 8 | 75,290 | 4 |" in table and "| plain-8 | 8 | 75,290 | 4 |" in table
    assert "Not finished" not in table
    rows = [l.split(",") for l in (out / "fig6.csv").read_text().splitlines()[1:]]
    assert {r[1] for r in rows} == {"ResNet-8", "plain-8"}
    tests = sorted(int(r[3]) for r in rows if r[1] == "plain-8" and r[2] == "test")
    assert tests and tests[-1] == 4
    assert (out / "fig6.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
