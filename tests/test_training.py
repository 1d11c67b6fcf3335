"""Training and evaluation on small data the tests make: pipelines, learning, resume, SIGKILL,
NaN guard, towers, fine-tuning, metrics.json and the CLI's error lines."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from resnet_tf1 import errors, run_config, rundir, train_lib
from resnet_tf1.data import DataError, cifar10, imagenet
from resnet_tf1.data import common as data_common
from resnet_tf1.data import fake

tf1 = tf.compat.v1
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def params(model_dir, data_dir, **kw):
    base = dict(model_dir=str(model_dir), dataset="cifar10", data_dir=data_dir, depth=20,
                batch_size=16, max_steps=10, learning_rate=0.1, lr_boundaries=(),
                save_checkpoints_steps=5, log_every_n_steps=5, seed=1, recompute_bn_batches=0)
    base.update(kw)
    return run_config.RunParams(**base)


def take(make_dataset, n=1):
    """The first `n` batches of the dataset `make_dataset()` builds (in a fresh graph)."""
    with tf.Graph().as_default():
        nxt = tf1.data.make_one_shot_iterator(make_dataset()[0]).get_next()
        with tf1.Session() as s:
            return [s.run(nxt) for _ in range(n)]


# ---- data ------------------------------------------------------------------------------------

def test_cifar_pipeline_shapes_labels_and_augmentation(cifar_dir):
    root = os.path.join(cifar_dir, cifar10.SUBDIR)
    raw = np.fromfile(os.path.join(root, "data_batch_1.bin"), np.uint8).reshape(-1, 3073)
    with tf.Graph().as_default():
        assert cifar10.dataset(cifar_dir, "eval", 25, training=False, download=False)[1] == 100
    (images, labels), = take(lambda: cifar10.dataset(cifar_dir, "eval", 25, training=False,
                                                     download=False))
    assert images.shape == (25, 32, 32, 3) and images.dtype == np.float32
    assert labels.dtype == np.int32 and labels.min() >= 0 and labels.max() <= 9
    mean = np.load(os.path.join(root, "mean_train_300.npy"))
    all_train = np.concatenate([np.fromfile(os.path.join(root, f), np.uint8).reshape(-1, 3073)
                                for f in cifar10.TRAIN_FILES])
    expected = all_train[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).mean(0)
    np.testing.assert_allclose(mean, expected, rtol=1e-5)
    test = np.fromfile(os.path.join(root, "test_batch.bin"), np.uint8).reshape(-1, 3073)
    np.testing.assert_array_equal(labels, test[:25, 0])
    np.testing.assert_allclose(images[0], test[0, 1:].reshape(3, 32, 32).transpose(1, 2, 0)
                               - mean, atol=1e-4)
    batches = take(lambda: cifar10.dataset(cifar_dir, "train", 64, training=True, seed=3,
                                           download=False), 3)
    images = np.concatenate([b[0] for b in batches])
    # Augmented pixels are image - mean, or 0 where the 4-pixel zero pad shows.
    lo, hi = -mean.max() - 1e-3, 255 - mean.min() + 1e-3
    assert images.min() >= lo and images.max() <= hi
    assert np.any(np.all(images[:, :, 0, :] == 0, axis=-1)), "no padded column ever shown"
    assert len(raw) == 60


def test_seeded_augmentation_repeats_and_each_draw_has_its_own_key(cifar_dir, tmp_path):
    # --seed makes the input stream repeat, augmentation included: the draws are keyed by the
    # seed and the element's position, not taken from a generator the parallel map shares.
    def cifar(seed):
        return take(lambda: cifar10.dataset(cifar_dir, "train", 64, training=True, seed=seed,
                                            download=False), 3)
    first, again, other = cifar(3), cifar(3), cifar(4)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(first[0][0], other[0][0])
    d = str(tmp_path)
    fake.write_imagenet(d, "train", shards=2, per_shard=3, corrupt=0)
    imagenet_batches = [take(lambda: imagenet.dataset(d, "train", 4, training=True, seed=5))[0]
                        for _ in range(2)]
    np.testing.assert_array_equal(imagenet_batches[0][0], imagenet_batches[1][0])
    # The crop and the flip are independent draws: one image whose pixels name their own row and
    # column, augmented 2,000 times, shows every one of the 81 crop offsets with and without
    # its flip, at about the rates a uniform draw gives.
    rows, cols = np.meshgrid(np.arange(1, 33), np.arange(1, 33), indexing="ij")
    image = np.stack([rows, cols, np.zeros_like(rows)], axis=-1).astype(np.float32)
    with tf.Graph().as_default():
        ds = tf.data.Dataset.from_tensors(image).repeat(2000)
        ds = data_common.map_with_random_keys(ds, 7, cifar10.AUGMENT_KEYS, cifar10.augment)
        out = tf1.data.make_one_shot_iterator(ds.batch(2000)).get_next()
        with tf1.Session() as s:
            out = s.run(out)
    row16 = out[:, 16]  # rows 12..20 of the image whatever the offset: never padding
    dy = row16[:, 16, 0].astype(int) - 13
    flipped = row16[:, 17, 1] < row16[:, 16, 1]
    dx = np.where(flipped, row16[:, 15, 1], row16[:, 16, 1]).astype(int) - 13
    assert dy.min() == dx.min() == 0 and dy.max() == dx.max() == 8
    counts = np.zeros((9, 9, 2), int)
    np.add.at(counts, (dy, dx, flipped.astype(int)), 1)
    assert counts.min() >= 1 and counts.max() <= 3 * 2000 / 162, counts.max()  # mean 12.3
    assert 0.45 < flipped.mean() < 0.55


def test_cifar_holdout_split(cifar_dir):
    with tf.Graph().as_default():
        _, n_train = cifar10.dataset(cifar_dir, "train", 8, True, holdout=True,
                                     validation_size=50, download=False)
        _, n_val = cifar10.dataset(cifar_dir, "eval", 8, False, holdout=True,
                                   validation_size=50, download=False)
    assert (n_train, n_val) == (250, 50)
    with pytest.raises(DataError, match="needs 5000 of the 300 training records"):
        cifar10.dataset(cifar_dir, "train", 8, True, holdout=True, download=False)


def test_cifar_missing_offline_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(cifar10, "URL", "http://127.0.0.1:9/cifar-10-binary.tar.gz")
    with pytest.raises(DataError, match="has no CIFAR-10.*could not be downloaded"):
        cifar10.maybe_download(str(tmp_path))
    assert not any(f.endswith(".part") for f in os.listdir(tmp_path))


def test_cifar_archive_md5_is_checked(tmp_path):
    (tmp_path / "cifar-10-binary.tar.gz").write_bytes(b"truncated download")
    with pytest.raises(DataError, match="MD5 .* expected c32a1d4ab5d03f1284b67883e8d87530"):
        cifar10.maybe_download(str(tmp_path))


def test_imagenet_pipeline_skips_corrupt_records(tmp_path):
    d = str(tmp_path)
    good = fake.write_imagenet(d, "validation", shards=2, per_shard=3, corrupt=1)
    fake.write_imagenet(d, "train", shards=1, per_shard=4, corrupt=1)
    with tf.Graph().as_default():
        ds, _ = imagenet.dataset(d, "eval", 2, training=False)
        nxt = tf1.data.make_one_shot_iterator(ds).get_next()
        seen = []
        with tf1.Session() as s:
            while True:
                try:
                    images, labels = s.run(nxt)
                except tf.errors.OutOfRangeError:
                    break
                assert images.shape[1:] == (224, 224, 3)
                seen.extend(labels)
    assert len(seen) == good == 5
    assert all(0 <= label < 1000 for label in seen)
    (images, labels), = take(lambda: imagenet.dataset(d, "train", 3, training=True, seed=0))
    assert images.shape == (3, 224, 224, 3)
    (images, _), = take(lambda: imagenet.dataset(d, "eval", 2, training=False, ten_crop=True))
    assert images.shape == (2, 10, 224, 224, 3)
    np.testing.assert_allclose(images[0, 5], images[0, 0][:, ::-1], atol=1e-4)
    with pytest.raises(DataError, match="no ImageNet TFRecords matching"):
        imagenet.dataset(str(tmp_path / "empty"), "train", 2, True)


# ---- training ---------------------------------------------------------------------------------

def _scalars(model_dir):
    """{tag: [(step, value)]} of the scalar summaries in a run directory's event files."""
    from tensorboard.backend.event_processing import event_accumulator
    acc = event_accumulator.EventAccumulator(str(model_dir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_training_lowers_the_loss_and_writes_summaries(cifar_dir, tmp_path):
    p = params(tmp_path / "run", cifar_dir, max_steps=40, log_every_n_steps=5, learning_rate=0.01)
    assert train_lib.train(p) == 40
    scalars = _scalars(tmp_path / "run")
    losses = scalars["cross_entropy"]
    first, last = losses[0][1], np.mean([v for _, v in losses[-3:]])
    assert first == pytest.approx(np.log(10), rel=0.05)  # chance level for 10 classes
    assert last < 0.5 * first, losses
    assert {"loss", "top_1", "learning_rate", "images_per_sec"} <= set(scalars)


def test_resume_continues_the_global_step(cifar_dir, tmp_path, monkeypatch):
    seeds, real = [], run_config.input_batches
    monkeypatch.setattr(run_config, "input_batches",
                        lambda *a, **kw: seeds.append(kw["seed"]) or real(*a, **kw))
    p = params(tmp_path / "run", cifar_dir, max_steps=5)
    assert train_lib.train(p) == 5
    p.max_steps = 8
    assert train_lib.train(p) == 8
    steps = sorted(int(c.split("-")[-1]) for c in
                   tf.train.get_checkpoint_state(str(tmp_path / "run")).all_model_checkpoint_paths)
    assert steps == [0, 5, 8]  # MonitoredTrainingSession also saves when a run starts
    # The resumed run draws its own input stream (the iterator is not checkpointed: with the
    # fresh run's seed it would replay the first images); each is a function of the seed, the
    # worker and the step resumed at.
    assert seeds == [1, train_lib.input_seed(1, 0, 5)]
    assert len({train_lib.input_seed(1, k, n) for k in (0, 1) for n in (0, 5, 6)}) == 6
    assert train_lib.input_seed(1, 2) == 2001


def _cli(script, *args, **kw):
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, os.path.join(ROOT, "scripts", script)] + list(args),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            **kw)


def test_sigkill_then_restart_resumes_from_the_last_checkpoint(cifar_dir, tmp_path):
    model_dir = str(tmp_path / "run")
    args = ["--dataset=cifar10", "--data_dir=" + cifar_dir, "--model_dir=" + model_dir,
            "--depth=20", "--batch_size=8", "--lr_boundaries=", "--save_checkpoints_steps=3",
            "--log_every_n_steps=1"]
    proc = _cli("train.py", *args, "--max_steps=100000")
    deadline = time.time() + 300
    while time.time() < deadline:
        latest = tf.train.latest_checkpoint(model_dir)
        if latest and int(latest.split("-")[-1]) >= 6:
            break
        time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    latest = tf.train.latest_checkpoint(model_dir)
    assert latest, "no checkpoint before the kill"
    killed_at = int(tf.train.load_checkpoint(latest).get_tensor("global_step"))
    r = _cli("train.py", *args, "--max_steps=%d" % (killed_at + 2))
    out, _ = r.communicate(timeout=300)
    assert r.returncode == 0, out[-3000:]
    assert "resumed from step %d" % killed_at in out
    assert int(tf.train.load_checkpoint(model_dir).get_tensor("global_step")) == killed_at + 2
    flags_txt = open(os.path.join(model_dir, "flags.txt")).read()
    assert "--depth=20\n" in flags_txt and "--max_steps=%d\n" % (killed_at + 2) in flags_txt


def test_nan_stops_cleanly_and_keeps_the_last_good_checkpoint(cifar_dir, tmp_path):
    p = params(tmp_path / "run", cifar_dir, max_steps=3, save_checkpoints_steps=3)
    train_lib.train(p)
    p.max_steps, p.learning_rate = 200, 1e12
    with pytest.raises(train_lib.NanLossError, match="NaN or Inf.*Last good checkpoint: .*-3"):
        train_lib.train(p)
    reader = tf.train.load_checkpoint(str(tmp_path / "run"))
    assert int(reader.get_tensor("global_step")) == 3
    for name in reader.get_variable_to_shape_map():
        value = reader.get_tensor(name)
        assert np.all(np.isfinite(value)), name


def _one_step(num_gpus, images, labels):
    p = run_config.RunParams(model_dir="unused", dataset="cifar10", depth=20, batch_size=8,
                             num_gpus=num_gpus, learning_rate=0.5, lr_boundaries=(),
                             device="/cpu:0")
    g = tf.Graph()
    with g.as_default():
        tf1.set_random_seed(7)
        step = tf1.train.get_or_create_global_step()
        train_op, _ = train_lib.build_train_op(p, tf.constant(images), tf.constant(labels), step)
        with tf1.Session(config=run_config.session_config()) as s:
            s.run(tf1.global_variables_initializer())
            s.run(train_op)
            return {v.op.name: s.run(v) for v in tf1.global_variables()
                    if "Momentum" not in v.op.name}


def test_two_towers_give_the_same_update_as_one_tower_on_the_concatenated_batch():
    rng = np.random.RandomState(0)
    half = rng.normal(0, 50, (4, 32, 32, 3)).astype(np.float32)
    labels = rng.randint(0, 10, 4).astype(np.int32)
    # Equal halves, so that per-tower BN statistics equal the whole batch's.
    images, labels = np.concatenate([half, half]), np.concatenate([labels, labels])
    one, two = _one_step(1, images, labels), _one_step(2, images, labels)
    assert set(one) == set(two)
    init = _initial(7)
    for name in one:
        a, b = one[name], two[name]
        if name.endswith("moving_variance"):
            # The first update takes the batch statistics whole (no pull toward the initial 1).
            # Fused BN stores the unbiased variance, n/(n-1) times the batch's: a tower sees half
            # the values per channel. Compare the biased batch variances both updates came from.
            n = np.prod(images.shape[:3]) // (32 * 32) * _spatial(name)
            a = a * (n - 1) / n
            b = b * (n // 2 - 1) / (n // 2)
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6, err_msg=name)
    moved = [n for n in one if "weights" in n]
    assert any(np.max(np.abs(one[n] - init[n])) > 1e-4 for n in moved)


@pytest.mark.parametrize("num_gpus", [1, 2])
def test_a_training_step_is_sgd_on_cross_entropy_plus_weight_decay(num_gpus):
    """The weight decay's gradient is added per variable, after the cross-entropy's (to keep it
    out of the backward pass's memory peak): the first momentum step still moves every variable
    by -lr * d(cross-entropy + weight decay)/dw, as tf.gradients of the whole loss says."""
    rng = np.random.RandomState(1)
    images = rng.normal(0, 50, (8, 32, 32, 3)).astype(np.float32)
    labels = rng.randint(0, 10, 8).astype(np.int32)
    p = run_config.RunParams(model_dir="unused", dataset="cifar10", depth=8, batch_size=8,
                             num_gpus=num_gpus, learning_rate=0.1, lr_boundaries=(),
                             weight_decay=0.05, device="/cpu:0")
    with tf.Graph().as_default():
        tf1.set_random_seed(3)
        step = tf1.train.get_or_create_global_step()
        train_op, metrics = train_lib.build_train_op(p, tf.constant(images), tf.constant(labels),
                                                     step)
        variables = tf1.trainable_variables()
        whole = tf.gradients(metrics["cross_entropy"] + metrics["weight_decay"], variables)
        xent_only = tf.gradients(metrics["cross_entropy"], variables)
        with tf1.Session(config=run_config.session_config()) as s:
            s.run(tf1.global_variables_initializer())
            before, grads, plain, lr = s.run([variables, whole, xent_only,
                                              metrics["learning_rate"]])
            s.run(train_op)
            after = s.run(variables)
    decayed = 0
    for v, b, g, x, a in zip(variables, before, grads, plain, after):
        np.testing.assert_allclose(a, b - lr * g, rtol=1e-4, atol=1e-6, err_msg=v.op.name)
        decayed += "weights" in v.op.name and np.abs(g - x).max() > 1e-3 * np.abs(x).max()
    # Every conv kernel and the FC weights decay; BN parameters and biases do not.
    assert decayed == sum("weights" in v.op.name for v in variables) > 5


def _spatial(name):
    """Spatial positions per example at a CIFAR ResNet-20 BN layer."""
    return {"block2": 16 * 16, "block3": 8 * 8}.get(name.split("/")[1], 32 * 32)


def _initial(seed):
    g = tf.Graph()
    with g.as_default():
        tf1.set_random_seed(seed)
        step = tf1.train.get_or_create_global_step()
        p = run_config.RunParams(model_dir="unused", depth=20, batch_size=8, lr_boundaries=(),
                                 device="/cpu:0")
        train_lib.build_train_op(p, tf.zeros([8, 32, 32, 3]), tf.zeros([8], tf.int32), step)
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            return {v.op.name: s.run(v) for v in tf1.global_variables()}


def test_fine_tuning_restores_all_but_the_excluded_scopes(cifar_dir, tmp_path):
    base = params(tmp_path / "base", cifar_dir, max_steps=2)
    train_lib.train(base)
    tuned = params(tmp_path / "tuned", cifar_dir, max_steps=1, learning_rate=0.0,
                   init_checkpoint=str(tmp_path / "base"),
                   exclude_scopes=("cifar_resnet20/logits",), seed=99)
    train_lib.train(tuned)
    a = tf.train.load_checkpoint(str(tmp_path / "base"))
    b = tf.train.load_checkpoint(str(tmp_path / "tuned"))
    np.testing.assert_array_equal(a.get_tensor("cifar_resnet20/conv1/weights"),
                                  b.get_tensor("cifar_resnet20/conv1/weights"))
    assert not np.array_equal(a.get_tensor("cifar_resnet20/logits/weights"),
                              b.get_tensor("cifar_resnet20/logits/weights"))


def test_evaluate_writes_metrics_that_match_the_predictions(cifar_dir, tmp_path):
    p = params(tmp_path / "run", cifar_dir, max_steps=5, batch_size=16)
    train_lib.train(p)
    r = _cli("evaluate.py", "--dataset=cifar10", "--data_dir=" + cifar_dir,
             "--model_dir=" + str(tmp_path / "run"), "--depth=20", "--batch_size=30")
    out, _ = r.communicate(timeout=300)
    assert r.returncode == 0, out[-3000:]
    metrics = json.load(open(tmp_path / "run" / "eval" / "metrics.json"))
    assert metrics["num_examples"] == 100 and metrics["global_step"] == 5
    # The same numbers from the raw test file and the restored logits, computed here.
    root = os.path.join(cifar_dir, cifar10.SUBDIR)
    test = np.fromfile(os.path.join(root, "test_batch.bin"), np.uint8).reshape(-1, 3073)
    mean = np.load(os.path.join(root, "mean_train_300.npy"))
    images = test[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).astype(np.float32) - mean
    import resnet_tf1
    with tf.Graph().as_default():
        logits, _ = resnet_tf1.ResNet(**run_config.model_kwargs(p))(tf.constant(images))
        from resnet_tf1 import restore
        restorer = restore.Restorer(str(tmp_path / "run"))
        with tf1.Session() as s:
            restorer.restore(s)
            out_logits = s.run(logits)
    top1 = np.mean(out_logits.argmax(1) == test[:, 0])
    top5 = np.mean([label in np.argsort(-row, kind="stable")[:5]
                    for row, label in zip(out_logits, test[:, 0])])
    assert metrics["top_1_accuracy"] == pytest.approx(top1)
    assert metrics["top_5_accuracy"] == pytest.approx(top5)
    assert "top-1 %.4f" % top1 in out
    # The confusion matrix and per-class accuracy, from the same logits with numpy.
    truth = test[:, 0].astype(int)
    confusion = np.zeros([10, 10], int)
    np.add.at(confusion, (truth, out_logits.argmax(1)), 1)
    assert metrics["confusion_matrix"] == confusion.tolist()
    assert metrics["class_names"] == fake.CIFAR10_NAMES
    for i, name in enumerate(fake.CIFAR10_NAMES):
        n = (truth == i).sum()
        assert metrics["per_class_examples"][name] == n
        assert metrics["per_class_accuracy"][name] == (
            pytest.approx(confusion[i, i] / n) if n else None)


@pytest.mark.parametrize("flag, message", [
    ("--depth=51", "train: error: --depth=51 is not a ResNet depth"),
    ("--lr_values=0.1,0.01", "train: error: --lr_values has 2 values; --lr_boundaries has 2"),
    ("--lr_boundaries=a,b", "train: error: --lr_boundaries must be comma-separated integers: "
                            "got a,b"),
])
def test_bad_flags_get_one_line_and_exit_1(cifar_dir, tmp_path, flag, message):
    r = _cli("train.py", "--data_dir=" + cifar_dir, "--model_dir=" + str(tmp_path / "m"),
             "--max_steps=1", flag)
    out, _ = r.communicate(timeout=300)
    assert r.returncode == 1
    assert [l for l in out.splitlines() if l.startswith("train: error:")][0].startswith(message)


def test_watch_evaluates_each_checkpoint_until_max_steps(cifar_dir, tmp_path):
    from resnet_tf1 import eval_lib
    p = params(tmp_path / "run", cifar_dir, max_steps=4, save_checkpoints_steps=4)
    train_lib.train(p)
    seen = [m["global_step"] for m in eval_lib.watch(p, str(tmp_path / "run"), timeout=5,
                                                     max_steps=4)]
    assert seen == [4]  # the latest checkpoint when watching starts, then stop at max_steps
    metrics = json.load(open(tmp_path / "run" / "eval" / "metrics.json"))
    assert metrics["global_step"] == 4 and metrics["num_examples"] == 100


def test_learning_rate_warm_up_and_steps_follow_the_paper():
    # ResNet-110 (Section 4.2): 0.01 until step 400, then 0.1, divided by 10 at 32k and 48k
    # (tf.train.piecewise_constant keeps the old rate on the boundary step itself).
    p = run_config.RunParams(learning_rate=0.1, lr_boundaries=(32000, 48000), warmup_steps=400)
    with tf.Graph().as_default():
        step = tf1.placeholder(tf.int64, [])
        lr = train_lib.learning_rate_schedule(p, step)
        with tf1.Session() as s:
            got = {k: s.run(lr, {step: k}) for k in (0, 399, 400, 32000, 32001, 48000, 48001,
                                                     64000)}
    expected = {0: 0.01, 399: 0.01, 400: 0.1, 32000: 0.1, 32001: 0.01, 48000: 0.01,
                48001: 0.001, 64000: 0.001}
    for k, v in expected.items():
        assert got[k] == pytest.approx(v, rel=1e-6), (k, got[k])


def _ten_crops(jpeg):
    """The paper's 10 crops, cut and flipped in numpy (decode and resize eagerly in TF)."""
    image = tf.io.decode_jpeg(jpeg, channels=3).numpy().astype(np.float32)
    h, w = image.shape[:2]
    scale = 256.0 / min(h, w)
    size = [int(round(h * scale)), int(round(w * scale))]
    image = tf.image.resize(image, size, method="bilinear").numpy() - imagenet.MEAN_RGB
    H, W = image.shape[:2]
    top, left = (H - 224) // 2, (W - 224) // 2
    crops = [image[:224, :224], image[:224, W - 224:], image[H - 224:, :224],
             image[H - 224:, W - 224:], image[top:top + 224, left:left + 224]]
    return np.stack(crops + [c[:, ::-1] for c in crops])


def _ten_crop_scores(logits):
    """(mean softmax over the 10 crops, the centre crop's logits)."""
    logits = logits.astype(np.float64)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    return probs.mean(0), logits[4]


def test_ten_crop_evaluation_averages_the_ten_crops(tmp_path):
    from resnet_tf1 import eval_lib
    rng = np.random.RandomState(5)
    jpegs = [tf.io.encode_jpeg(rng.randint(0, 255, (rng.randint(230, 300),
                                                    rng.randint(230, 300), 3)).astype(
        np.uint8)).numpy() for _ in range(4)]
    p = run_config.RunParams(model_dir=str(tmp_path / "run"), dataset="imagenet",
                             data_dir=str(tmp_path / "data"), depth=18, batch_size=2,
                             device="/cpu:0")
    crops = [_ten_crops(j) for j in jpegs]
    with tf.Graph().as_default():
        tf1.set_random_seed(3)
        x = tf1.placeholder(tf.float32, [None, 224, 224, 3])
        logits, _ = run_config.build_model(p)(x)
        tf1.train.get_or_create_global_step()
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            tf1.train.Saver().save(s, str(tmp_path / "run" / "model.ckpt"))
            refs = [_ten_crop_scores(s.run(logits, {x: c})) for c in crops]
    ten = [int(np.argmax(r[0])) for r in refs]
    centre = [int(np.argmax(r[1])) for r in refs]
    # Labels (1-based in the files) are the ten-crop predictions: ten-crop top-1 must be 1.0.
    os.makedirs(tmp_path / "data")
    with tf.io.TFRecordWriter(str(tmp_path / "data" / "validation-00000-of-00001")) as w:
        for jpeg, label in zip(jpegs, ten):
            w.write(tf.train.Example(features=tf.train.Features(feature={
                "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[jpeg])),
                "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(
                    value=[label + 1]))})).SerializeToString())
    metrics = eval_lib.evaluate(p, str(tmp_path / "run"), ten_crop=True)
    assert metrics["num_examples"] == 4 and metrics["ten_crop"]
    assert metrics["top_1_accuracy"] == 1.0
    single = eval_lib.evaluate(p, str(tmp_path / "run"), ten_crop=False)
    assert single["top_1_accuracy"] == pytest.approx(np.mean(np.equal(ten, centre)))


# ---- batch-norm statistics ---------------------------------------------------------------------

def _batch_statistics_top1(p, checkpoint, images, labels):
    """Top-1 with every BN layer normalising by the statistics of its (evaluation) batch."""
    with tf.Graph().as_default():
        x = tf1.placeholder(tf.float32, [None, 32, 32, 3])
        logits, _ = run_config.build_model(p)(x, is_training=True)
        from resnet_tf1 import restore
        restorer = restore.Restorer(checkpoint)
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            restorer.restore(s)
            return float(np.mean(s.run(logits, {x: images}).argmax(1) == labels))


def _cifar_arrays(cifar_dir, files):
    root = os.path.join(cifar_dir, cifar10.SUBDIR)
    raw = np.concatenate([np.fromfile(os.path.join(root, f), np.uint8).reshape(-1, 3073)
                          for f in files])
    mean = np.load(os.path.join(root, "mean_train_300.npy"))
    images = raw[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).astype(np.float32) - mean
    return images, raw[:, 0].astype(np.int64)


@pytest.mark.slow
def test_running_statistics_evaluate_like_batch_statistics_after_a_short_run(cifar_dir,
                                                                             tmp_path):
    from resnet_tf1 import eval_lib
    # 200 steps, the rate divided by 10 for the last 50 as in the paper's schedules.
    p = params(tmp_path / "run", cifar_dir, max_steps=200, batch_size=32, learning_rate=0.05,
               lr_boundaries=(150,), bn_decay=0.9, recompute_bn_batches=0,
               save_checkpoints_steps=200, log_every_n_steps=50)
    train_lib.train(p)
    running = eval_lib.evaluate(p, str(tmp_path / "run"))
    assert running["checkpoint"].endswith("run/model.ckpt-200")  # nothing recomputed
    images, labels = _cifar_arrays(cifar_dir, cifar10.TEST_FILES)
    batch = _batch_statistics_top1(p, running["checkpoint"], images, labels)
    print("top-1 with running statistics %.3f, with batch statistics %.3f"
          % (running["top_1_accuracy"], batch))
    assert batch > 0.5, batch  # it learned
    assert abs(running["top_1_accuracy"] - batch) <= 0.02, (running["top_1_accuracy"], batch)
    # evaluate.py --bn_stats=batch, the whole test set as one batch: the helper's number.
    whole = eval_lib.evaluate(dataclasses.replace(p, batch_size=len(labels)),
                              str(tmp_path / "run"), bn_stats="batch")
    assert whole["top_1_accuracy"] == batch, (whole["top_1_accuracy"], batch)
    assert whole["bn_statistics"] == {"kind": "batch", "batch_size": len(labels)}
    assert whole["checkpoint"] == running["checkpoint"]
    with pytest.raises(errors.FlagError, match="--bn_stats=batch .* --ten_crop"):
        eval_lib.evaluate(p, str(tmp_path / "run"), bn_stats="batch", scales=[32])
    count = tf.train.load_checkpoint(running["checkpoint"]).get_tensor(
        "cifar_resnet20/bn_update_count")
    assert count == 200
    # Negative control: the same weights with the statistics at their initial 0 / 1 (where a
    # biased average starts) evaluate far worse, so the comparison above measures them.
    from resnet_tf1 import bn_stats, checkpoints
    arrays = checkpoints.read_arrays(running["checkpoint"])
    initial = {n: (np.zeros_like(v) if n.endswith("moving_mean") else np.ones_like(v))
               for n, v in arrays.items() if n.endswith(("moving_mean", "moving_variance"))}
    bn_stats.write(running["checkpoint"], initial, str(tmp_path / "initial"), {})
    p.model_dir = str(tmp_path / "initial")
    biased = eval_lib.evaluate(p, str(tmp_path / "initial"))["top_1_accuracy"]
    assert biased < batch - 0.2, (biased, batch)


def _assert_population_statistics(stats, layers, captured):
    """`stats` (moving-statistic name: value) equal numpy's mean and variance of each layer's
    input over the captured batches ([per batch: [per layer: activations]]), to 1e-4."""
    for k, layer in enumerate(layers):
        acts = np.concatenate([c[k] for c in captured]).astype(np.float64)
        mean, var = acts.mean((0, 1, 2)), acts.var((0, 1, 2))
        np.testing.assert_allclose(stats[layer.moving_mean.op.name], mean, rtol=1e-4,
                                   atol=1e-4 * np.abs(mean).max(), err_msg=layer.scope)
        np.testing.assert_allclose(stats[layer.moving_variance.op.name], var, rtol=1e-4,
                                   err_msg=layer.scope)


def test_recompute_gives_exact_population_statistics(cifar_dir, tmp_path):
    from resnet_tf1 import bn_stats, checkpoints, eval_lib
    from resnet_tf1 import data as data_lib
    model_dir = tmp_path / "run"
    p = params(model_dir, cifar_dir, max_steps=6, batch_size=32, recompute_bn_batches=3,
               bn_recompute_input="eval")
    assert train_lib.train(p) == 6  # recomputes over 3 x 32 training images at the end
    original = checkpoints.read_arrays(str(model_dir / "model.ckpt-6"))
    recomputed_path = str(model_dir / "bn_recomputed" / "model.ckpt-6")
    recomputed = checkpoints.read_arrays(recomputed_path)
    info = json.load(open(model_dir / "bn_recomputed" / "bn_stats.json"))
    assert info["num_images"] == 96 and info["source"].endswith("run/model.ckpt-6")
    assert set(original) == set(recomputed)
    changed = sorted(n for n in original if not np.array_equal(original[n], recomputed[n]))
    assert changed and all(n.endswith(("/moving_mean", "/moving_variance")) for n in changed)
    assert len(changed) == 2 * 19  # every BN layer's statistics, nothing else
    assert (info["input"], info["seed"]) == ("eval", bn_stats.TRAIN_INPUT_SEED)
    # The 96 images are training records with the evaluation preprocessing, one pass in an order
    # shuffled with the fixed seed (a split stored class by class would otherwise give batches
    # of one class): located among the files' own records read by numpy.
    records, _ = _cifar_arrays(cifar_dir, cifar10.TRAIN_FILES)
    with tf.Graph().as_default():
        ds, _ = data_lib.make_dataset("cifar10", cifar_dir, "train", 32, False, shuffled=True,
                                      seed=bn_stats.TRAIN_INPUT_SEED)
        nxt = tf1.data.make_one_shot_iterator(ds).get_next()
        with tf1.Session() as s:
            streamed = np.concatenate([s.run(nxt)[0] for _ in range(3)])
    flat = records.reshape(len(records), -1)
    order = [int(np.flatnonzero((flat == image.reshape(1, -1)).all(1))[0]) for image in streamed]
    assert len(set(order)) == 96 and order != list(range(96)), order  # distinct, shuffled
    images = records[order]
    with tf.Graph().as_default():
        x = tf1.placeholder(tf.float32, [None, 32, 32, 3])
        model = run_config.build_model(p)
        model(x, is_training=True)
        layers = model.bn_layers
        picked = [layers[0], layers[9], layers[-1]]
        from resnet_tf1 import restore
        restorer = restore.Restorer(str(model_dir / "model.ckpt-6"))
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            restorer.restore(s)
            captured = [s.run([l.inputs for l in picked], {x: images[i:i + 32]})
                        for i in range(0, 96, 32)]
    _assert_population_statistics(recomputed, picked, captured)
    # The same checkpoint and seed give the same statistics again, bit for bit.
    again, _ = bn_stats.compute(p, str(model_dir / "model.ckpt-6"), 3, 32)
    assert all(np.array_equal(again[k].astype(recomputed[k].dtype), recomputed[k]) for k in again)
    # Loading the run's directory now uses the recomputed statistics.
    assert rundir.checkpoint(str(model_dir)).prefix == recomputed_path
    assert eval_lib.evaluate(p, str(model_dir))["checkpoint"] == recomputed_path


def test_recompute_over_the_training_augmentation(cifar_dir, tmp_path):
    """--bn_recompute_input=train: the statistics are numpy's moments of each layer's input over
    the augmented training images the seeded pipeline gives (captured here with the same seed),
    the same twice, and evaluation names which statistics it used."""
    from resnet_tf1 import bn_stats, eval_lib
    from resnet_tf1 import data as data_lib
    model_dir = tmp_path / "run"
    p = params(model_dir, cifar_dir, max_steps=4, batch_size=32)
    train_lib.train(p)
    t = p
    ckpt = rundir.checkpoint(str(model_dir / "model.ckpt-4"))
    first, n = bn_stats.compute(t, ckpt, 2)
    second, _ = bn_stats.compute(t, ckpt, 2)
    assert n == 64 and all(first[k].tobytes() == second[k].tobytes() for k in first)
    eval_input, _ = bn_stats.compute(dataclasses.replace(p, bn_recompute_input="eval"), ckpt, 2)
    assert any(not np.allclose(first[k], eval_input[k]) for k in first)  # the input matters
    assert p.bn_recompute_input == "train"  # the default (issue 33's measurement)
    with tf.Graph().as_default():
        ds, _ = data_lib.make_dataset("cifar10", cifar_dir, "train", 32, True,
                                      seed=bn_stats.TRAIN_INPUT_SEED)
        nxt = tf1.data.make_one_shot_iterator(ds).get_next()
        with tf1.Session() as s:
            augmented = [s.run(nxt)[0] for _ in range(2)]
    with tf.Graph().as_default():
        x = tf1.placeholder(tf.float32, [None, 32, 32, 3])
        model = run_config.build_model(p)
        model(x, is_training=True)
        picked = [model.bn_layers[0], model.bn_layers[-1]]
        from resnet_tf1 import restore
        restorer = restore.Restorer(ckpt.prefix)
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            restorer.restore(s)
            captured = [s.run([l.inputs for l in picked], {x: b}) for b in augmented]
    _assert_population_statistics(first, picked, captured)
    info = bn_stats.recompute(t, None, 2)
    assert (info["input"], info["seed"], info["num_images"]) == ("train", 1512, 64)
    recomputed = eval_lib.evaluate(p, str(model_dir))
    assert recomputed["bn_statistics"] == {"kind": "recomputed", "input": "train",
                                           "num_images": 64, "seed": 1512}
    running = eval_lib.evaluate(p, str(model_dir), bn_stats="running")
    assert running["bn_statistics"] == {"kind": "running"}
    assert running["checkpoint"] == str(model_dir / "model.ckpt-4")
    assert eval_lib.describe_bn_statistics(recomputed["bn_statistics"]) == \
        "recomputed over 64 images (train input)"


def test_batch_moments_do_not_overflow_for_finite_activations():
    """Squaring 3e19 in float32 gives Inf (tf.nn.moments on the activations themselves); the
    scaled moments give the float64 population statistics of the same values."""
    from resnet_tf1 import bn_stats
    rng = np.random.RandomState(0)
    batches = [rng.normal(5.0, 2.0, (4, 3, 3, 2)).astype(np.float32) for _ in range(3)]
    batches[1][0, 0, 0, 0] = 3e19   # one outlier: its square is beyond float32
    batches[2][:, :, :, 1] = 0.0    # an all-zero channel in one batch
    with tf.Graph().as_default():
        x = tf1.placeholder(tf.float32, [None, 3, 3, 2])
        fetch = bn_stats.moments(x, [0, 1, 2])
        naive = tf.nn.moments(x, [0, 1, 2])[1]
        with tf1.Session() as s:
            got = [s.run(fetch, {x: b}) for b in batches]
            assert not np.isfinite(s.run(naive, {x: batches[1]})[0])  # what it replaces
    mean, var = bn_stats.population([b[..., 0].size for b in batches], got)
    every = np.concatenate(batches).astype(np.float64).reshape(-1, 2)
    np.testing.assert_allclose(mean, every.mean(0), rtol=1e-6)
    np.testing.assert_allclose(var, every.var(0), rtol=1e-6)
    assert np.isfinite(var).all() and var[0] < np.finfo(np.float32).max


def test_recompute_refuses_statistics_beyond_float32_and_writes_nothing(cifar_dir, tmp_path):
    """A finite checkpoint whose activations are ~1e30 (the first kernel scaled, as a diverging
    run leaves it): variances ~1e60 do not fit float32, so nothing is written, and the run's own
    checkpoint stays the one every loader uses."""
    from resnet_tf1 import bn_stats, checkpoints
    model_dir = tmp_path / "run"
    p = params(model_dir, cifar_dir, max_steps=2, recompute_bn_batches=0)
    train_lib.train(p)
    prefix = str(model_dir / "model.ckpt-2")
    arrays = checkpoints.read_arrays(prefix)
    kernel = "cifar_resnet20/conv1/weights"
    huge = tmp_path / "huge"
    bn_stats.write(prefix, {kernel: arrays[kernel] * 1e30}, str(huge), {})
    p.model_dir = str(huge)
    with pytest.raises(bn_stats.BNStatsError) as e:
        bn_stats.recompute(p, str(huge / "model.ckpt-2"), num_batches=2)
    line = str(e.value)
    assert "\n" not in line and "moving_variance" in line and "beyond float32" in line, line
    assert "the run that wrote it diverged" in line, line
    assert not (huge / "bn_recomputed").exists()
    assert not [n for n in os.listdir(huge) if "tmp" in n or "old" in n]
    # A UserError: the scripts print it as their one `<prog>: error:` line and exit 1.
    from resnet_tf1 import run_flags
    assert isinstance(e.value, run_flags.EXPECTED_ERRORS)


@pytest.mark.slow
def test_sigkill_during_recompute_leaves_the_original_usable(cifar_dir, tmp_path):
    from resnet_tf1 import checkpoints
    model_dir = tmp_path / "run"
    train_lib.train(params(model_dir, cifar_dir, max_steps=2, recompute_bn_batches=0))
    before = checkpoints.read_arrays(str(model_dir / "model.ckpt-2"))
    args = ["--data_dir=" + cifar_dir, "--model_dir=" + str(model_dir), "--depth=20",
            "--batch_size=1", "--num_batches=300"]
    for delay in (4.0, 9.0):
        proc = _cli("recompute_bn.py", *args)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        after = checkpoints.read_arrays(str(model_dir / "model.ckpt-2"))
        assert all(np.array_equal(before[n], after[n]) for n in before)
        assert tf.train.latest_checkpoint(str(model_dir)).endswith("model.ckpt-2")
        result = model_dir / "bn_recomputed"
        if result.exists():  # finished before the kill: then it is complete
            assert len(checkpoints.read_arrays(str(result / "model.ckpt-2"))) == len(before)
            assert (result / "bn_stats.json").exists()
    r = _cli("recompute_bn.py", *args[:-2], "--batch_size=50", "--num_batches=2")
    out, _ = r.communicate(timeout=300)
    assert r.returncode == 0, out[-2000:]
    assert "recomputed BN statistics over 100 training images (train input)" in out


def test_towers_keep_their_placement_inside_the_model(monkeypatch):
    """The model's own device scope must not clear the caller's: tower k's ops on /gpu:k, the
    shared variables on the CPU (built only; no GPU needed)."""
    monkeypatch.setattr(run_config, "resolve_device", lambda device: device)
    p = run_config.RunParams(model_dir="unused", dataset="cifar10", depth=8, batch_size=4,
                             num_gpus=2, lr_boundaries=())
    g = tf.Graph()
    with g.as_default():
        step = tf1.train.get_or_create_global_step()
        train_lib.build_train_op(p, tf.zeros([4, 32, 32, 3]), tf.zeros([4], tf.int32), step)
    def on(device):
        spec = tf.DeviceSpec.from_string(device)
        return spec.device_type, spec.device_index

    convs = {op.name: on(op.device) for op in g.get_operations() if op.type == "Conv2D"
             and "gradients" not in op.name}
    assert len(convs) > 10 and all(d == ("GPU", int(n.split("/")[0][-1]))
                                   for n, d in convs.items()), convs
    weights = [on(v.device) for v in g.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES)
               if v.op.name.endswith("weights")]
    assert weights and all(d == ("CPU", 0) for d in weights), weights
