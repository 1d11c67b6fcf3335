"""A failing run never poisons what it leaves behind; every bad input gets one line.

Each test reproduces one reported defect at small scale (CIFAR ResNet-20, a few steps) and asserts
the exit code, that the message is a single line naming the thing, and what is on disk afterwards.
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from resnet_tf1 import (bn_stats, checkpoints, errors, eval_lib, run_config, rundir, serving,
                        train_lib)
from resnet_tf1 import export as export_lib
from resnet_tf1.porting import convert as convert_lib
from resnet_tf1.data import cifar10

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(script, *args):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", script)] + list(args),
                          capture_output=True, text=True, env=env, timeout=600)


def error_line(r, program):
    """The one `<program>: error:` line of a finished CLI, after asserting exit 1."""
    assert r.returncode == 1, (r.returncode, r.stderr[-3000:])
    lines = [l for l in r.stderr.splitlines() if l.startswith(program + ": error:")]
    assert len(lines) == 1, r.stderr[-3000:]
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    return lines[0]


def train_args(cifar_dir, model_dir, *extra):
    return ["--dataset=cifar10", "--data_dir=" + cifar_dir, "--model_dir=" + str(model_dir),
            "--depth=20", "--batch_size=8", "--lr_boundaries=", "--log_every_n_steps=1",
            "--recompute_bn_batches=0"] + list(extra)


def snapshot(directory):
    """{relative path: bytes} of every file under `directory`."""
    out = {}
    for dirpath, _, files in os.walk(directory):
        for f in files:
            path = os.path.join(dirpath, f)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, directory)] = fh.read()
    return out


def all_finite(prefix):
    return checkpoints.non_finite(prefix) == []


# ---- 1, 2: divergence never reaches a checkpoint ----------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("lr, save_steps", [("1e5", "5"), ("1e6", "1"), ("30", "2")])
def test_divergence_is_never_saved_and_names_a_good_checkpoint(cifar_dir, tmp_path, lr,
                                                               save_steps):
    model_dir = tmp_path / "run"
    r = run("train.py", *train_args(cifar_dir, model_dir, "--learning_rate=" + lr,
                                    "--save_checkpoints_steps=" + save_steps,
                                    "--max_steps=60"))
    line = error_line(r, "train")
    assert "NaN or Inf" in line and "Last good checkpoint: " in line, line
    good = line.rsplit("Last good checkpoint: ", 1)[1]
    assert good == tf.train.latest_checkpoint(str(model_dir))
    state = tf.train.get_checkpoint_state(str(model_dir))
    for prefix in state.all_model_checkpoint_paths:
        assert all_finite(os.path.join(str(model_dir), prefix)), prefix
    if lr != "1e6":
        return  # the resume below is the same for every rate: checked once
    # Resuming from it works: it restores (at a sane rate the run goes on; from weights that an
    # absurd rate made huge but finite it may diverge again, and then says so in one line).
    step = int(tf.train.load_checkpoint(good).get_tensor("global_step"))
    again = run("train.py", *train_args(cifar_dir, model_dir, "--learning_rate=0.001",
                                        "--save_checkpoints_steps=100",
                                        "--max_steps=%d" % (step + 2)))
    assert "resumed from step %d" % step in again.stderr, again.stderr[-3000:]
    if again.returncode:
        assert "Last good checkpoint: " + good in error_line(again, "train")
    for prefix in tf.train.get_checkpoint_state(str(model_dir)).all_model_checkpoint_paths:
        assert all_finite(os.path.join(str(model_dir), prefix)), prefix


def test_evaluate_refuses_a_checkpoint_with_non_finite_variables(cifar_dir, tmp_path):
    model_dir = tmp_path / "run"
    p = run_config.RunParams(model_dir=str(model_dir), data_dir=cifar_dir, batch_size=8,
                             max_steps=2, lr_boundaries=(), recompute_bn_batches=0)
    train_lib.train(p)
    # Poison one BN variance in a copy written as the latest checkpoint.
    arrays = checkpoints.read_arrays(str(model_dir))
    name = "cifar_resnet20/block2/unit_1/basic/conv1/BatchNorm/moving_variance"
    arrays[name] = np.full_like(arrays[name], np.inf)
    with tf.Graph().as_default():
        variables = {n: tf.compat.v1.Variable(v, name="v%d" % i)
                     for i, (n, v) in enumerate(arrays.items())}
        with tf.compat.v1.Session() as s:
            s.run(tf.compat.v1.global_variables_initializer())
            tf.compat.v1.train.Saver(variables).save(s, str(model_dir / "model.ckpt-3"))
    r = run("evaluate.py", "--data_dir=" + cifar_dir, "--model_dir=" + str(model_dir))
    line = error_line(r, "evaluate")
    assert "model.ckpt-3 holds NaN or Inf in 1 variable(s): " + name in line, line
    assert not (model_dir / "eval" / "metrics.json").exists()


@pytest.mark.parametrize("flag, message", [
    ("--learning_rate=-0.1", "--learning_rate=-0.1 must not be negative"),
    ("--momentum=0", "--momentum=0.0 must be in (0, 1) for --optimizer=momentum"),
    ("--weight_decay=-1", "--weight_decay=-1.0 must not be negative"),
    ("--lr_boundaries=500,100", "--lr_boundaries must be positive steps in increasing order"),
    ("--bn_decay=1.5", "--bn_decay=1.5 must be in [0, 1)"),
])
def test_numeric_flags_out_of_range_are_rejected_before_anything_is_written(cifar_dir, tmp_path,
                                                                            flag, message):
    r = run("train.py", *train_args(cifar_dir, tmp_path / "run", "--max_steps=1", flag))
    assert error_line(r, "train").startswith("train: error: " + message)
    assert not (tmp_path / "run").exists()


# ---- 3: a model mismatch leaves the run's record as it was ------------------------------------

@pytest.mark.slow
def test_resuming_with_another_model_changes_nothing(cifar_dir, tmp_path):
    model_dir = tmp_path / "run"
    args = train_args(cifar_dir, model_dir, "--max_steps=2", "--save_checkpoints_steps=2")
    flags_text = "".join(a + "\n" for a in args)
    train_lib.train(run_config.RunParams(
        model_dir=str(model_dir), dataset="cifar10", data_dir=cifar_dir, depth=20, batch_size=8,
        max_steps=2, save_checkpoints_steps=2, lr_boundaries=(), recompute_bn_batches=0),
        flags_text=flags_text)
    before = snapshot(model_dir)
    r = run("train.py", *train_args(cifar_dir, model_dir, "--max_steps=4", "--depth=32"))
    line = error_line(r, "train")
    assert line == ("train: error: --model_dir=%s holds a depth-20 CIFAR ResNet (10 classes); "
                    "this run asks for depth 32: use a new --model_dir or the same model flags"
                    % model_dir), line
    assert snapshot(model_dir) == before
    # The plain net of the same depth has the same variable names: it must not resume from it
    # (the same check, in-process; the line above is how train.py prints it).
    plain = run_config.RunParams(model_dir=str(model_dir), dataset="cifar10", data_dir=cifar_dir,
                                 depth=20, batch_size=8, max_steps=4, lr_boundaries=(),
                                 shortcut="none", recompute_bn_batches=0)
    with pytest.raises(errors.FlagError) as e:
        train_lib.train(plain)
    assert str(e.value).endswith("holds a depth-20 CIFAR ResNet (10 classes); this run asks for "
                                 "shortcut none: use a new --model_dir or the same model flags")
    assert snapshot(model_dir) == before
    assert run_config.describe_model(dict(depth=20, num_classes=10, shortcut="none")) == \
        "a depth-20 CIFAR plain net (10 classes)"
    ev = run("evaluate.py", "--data_dir=" + cifar_dir, "--model_dir=" + str(model_dir),
             "--depth=32")
    line = error_line(ev, "evaluate")
    assert line.startswith("evaluate: error: --model_dir=%s holds a depth-20 CIFAR ResNet"
                           % model_dir), line
    assert "variables missing" in line and len(line) < 400, line
    # The run's own flags still evaluate it.
    good = run("evaluate.py", "--flagfile=%s" % (model_dir / "flags.txt"))
    assert good.returncode == 0, good.stderr[-3000:]


# ---- 4: one line instead of a traceback ---------------------------------------------------------

def _script_with_library_raising(script, target, error, args):
    """Runs `script` in a child process whose library function `target` ("module.function")
    raises `error` (source text of an exception instance)."""
    module, function = target.rsplit(".", 1)
    code = ("import sys, importlib; sys.path.insert(0, %r); sys.argv = %r\n"
            "import resnet_tf1.%s as m\n"
            "def broken(*args, **kwargs):\n"
            "    from resnet_tf1 import errors, checkpoints\n"
            "    raise %s\n"
            "m.%s = broken\n"
            "from absl import app\n"
            "app.run(importlib.import_module(%r).main)\n"
            % (os.path.join(ROOT, "scripts"), [script + ".py"] + list(args), module, error,
               function, script))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=ROOT), timeout=300)


@pytest.mark.parametrize("script, target, args", [
    ("train", "train_lib.train", ["--model_dir=unused"]),
    ("evaluate", "eval_lib.evaluate", ["--model_dir=unused"]),
    ("predict", "serving.load", ["--model_dir=unused", "x.jpg"]),
    ("export", "serving.load", ["--model_dir=unused", "--export_dir=unused"]),
])
def test_a_bug_in_library_code_shows_its_traceback_and_a_user_error_one_line(script, target,
                                                                             args):
    """The scripts print one line only for the project's errors (errors.UserError) and
    TensorFlow's OpError: a TypeError or a ValueError raised by library code is a bug and keeps
    its traceback (EXPECTED_ERRORS once caught ValueError, OSError and RuntimeError, and so hid
    such bugs behind a "user error" line)."""
    for bug in ('TypeError("unsupported operand")', 'ValueError("a wrong call")'):
        r = _script_with_library_raising(script, target, bug, args)
        assert r.returncode != 0, r.stderr[-2000:]
        assert "Traceback (most recent call last)" in r.stderr, r.stderr[-2000:]
        assert bug.replace('("', ": ").rstrip('")') in r.stderr, r.stderr[-2000:]
        assert "%s: error:" % script not in r.stderr, r.stderr[-2000:]
    r = _script_with_library_raising(script, target,
                                     'checkpoints.CheckpointError("checkpoint x is bad")', args)
    assert error_line(r, script) == "%s: error: checkpoint x is bad" % script


def test_bad_model_dirs_and_files_get_one_line(cifar_dir, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    r = run("train.py", *train_args(cifar_dir, a_file, "--max_steps=1"))
    assert "--model_dir=%s is a file, expected a directory" % a_file in error_line(r, "train")
    r = run("train.py", *train_args(cifar_dir, a_file / "sub", "--max_steps=1"))
    assert str(a_file) in error_line(r, "train")
    out = tmp_path / "existing_file"
    out.write_text("keep me")
    r = run("convert_checkpoint.py", "--source=caffe", "--input=" + str(a_file),
            "--output=" + str(out))
    assert "convert_checkpoint: error:" in error_line(r, "convert_checkpoint")
    assert out.read_text() == "keep me"


def test_a_graph_op_error_is_shown_by_its_informative_line(tmp_path):
    from resnet_tf1 import fileio
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("x")
    with tf.Graph().as_default():
        v = tf.compat.v1.get_variable("v", [2])
        saver = tf.compat.v1.train.Saver([v])
        with tf.compat.v1.Session() as s:
            s.run(v.initializer)
            with pytest.raises(tf.errors.OpError) as info:  # the save op run directly
                s.run(saver.saver_def.save_tensor_name,
                      {saver.saver_def.filename_tensor_name: str(blocker / "model.ckpt")})
    assert str(info.value).startswith("Graph execution error")  # TF's boilerplate first
    line = fileio.error_line(info.value)
    assert str(blocker) in line and "Graph execution" not in line and "node" not in line, line


@contextlib.contextmanager
def _tmpfs(path, options):
    """A tmpfs mounted at `path` (a full disk or a read-only one, which root's permission bits
    cannot simulate); skips where mounting is not permitted."""
    os.makedirs(path)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN): %s"
                    % r.stderr.strip())
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


@pytest.mark.skipif(shutil.which("mount") is None, reason="no mount(8)")
def test_a_full_disk_and_a_read_only_model_dir_get_one_line(cifar_dir, tmp_path):
    # 5 MB: flags, graph and events fit; the first checkpoint (2.2 MB with its momentum slots)
    # does not.
    with _tmpfs(tmp_path / "full", "size=5M") as full:
        r = run("train.py", *train_args(cifar_dir, full / "run", "--max_steps=4",
                                        "--save_checkpoints_steps=2"))
        line = error_line(r, "train")
        assert "training failed (ResourceExhaustedError) in --model_dir=%s" % (full / "run") \
            in line and "No space left on device" in line, line
        assert not [f for f in os.listdir(full / "run") if "tempstate" in f or ".tmp" in f]
    with _tmpfs(tmp_path / "ro", "ro,size=1M") as ro:
        for model_dir in (ro, ro / "sub"):
            line = error_line(run("train.py", *train_args(cifar_dir, model_dir, "--max_steps=1")),
                              "train")
            assert "--model_dir=%s is not a writable directory" % model_dir in line, line
            assert "Read-only file system" in line, line


def _corrupt(path, how):
    data = bytearray(open(path, "rb").read())
    if how == "truncate":
        data = data[:len(data) // 2]
    else:
        for i in range(100, len(data), 997):
            data[i] ^= 0xFF
    open(path, "wb").write(bytes(data))


@pytest.mark.parametrize("how", ["truncate", "bitflip"])
def test_damaged_checkpoint_data_gets_one_line_in_evaluate_and_on_resume(cifar_dir, tmp_path,
                                                                         how):
    model_dir = tmp_path / "run"
    assert run("train.py", *train_args(cifar_dir, model_dir, "--max_steps=2",
                                       "--save_checkpoints_steps=2")).returncode == 0
    data = model_dir / "model.ckpt-2.data-00000-of-00001"
    _corrupt(str(data), how)
    for r, program in [(run("evaluate.py", "--flagfile=%s" % (model_dir / "flags.txt")),
                        "evaluate"),
                       (run("train.py", *train_args(cifar_dir, model_dir, "--max_steps=4")),
                        "train")]:
        line = error_line(r, program)
        assert "model.ckpt-2" in line, line


def test_cifar_labels_out_of_range_are_one_line_naming_the_file(cifar_dir, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(cifar_dir, bad)
    root = bad / cifar10.SUBDIR
    for f in os.listdir(root):
        if f.startswith("mean_"):
            os.remove(root / f)
    test = root / "test_batch.bin"
    raw = np.fromfile(test, np.uint8).reshape(-1, cifar10.RECORD_BYTES)
    raw[7, 0] = 254
    raw.tofile(test)
    model_dir = tmp_path / "run"
    assert run("train.py", *train_args(cifar_dir, model_dir, "--max_steps=1",
                                       "--save_checkpoints_steps=1")).returncode == 0
    r = run("evaluate.py", "--data_dir=" + str(bad), "--model_dir=" + str(model_dir))
    line = error_line(r, "evaluate")
    assert "%s is not a CIFAR-10 binary file: record 7 has label 254, expected 0-9" % test \
        in line, line
    train_file = root / "data_batch_3.bin"
    raw = np.fromfile(train_file, np.uint8).reshape(-1, cifar10.RECORD_BYTES)
    raw[:, 0] = 200
    raw.tofile(train_file)
    r = run("train.py", *train_args(str(bad), tmp_path / "run2", "--max_steps=1"))
    assert "%s is not a CIFAR-10 binary file: record 0 has label 200" % train_file \
        in error_line(r, "train")


def _flip_data_byte(path, record):
    """Flips one byte inside the data of the `record`-th record of a TFRecord file (its data
    checksum then fails; the framing stays intact)."""
    data = bytearray(open(path, "rb").read())
    offset = 0
    for _ in range(record):
        offset += 16 + int.from_bytes(data[offset:offset + 8], "little")
    data[offset + 12 + 40] ^= 0xFF
    open(path, "wb").write(data)


def test_skipped_imagenet_records_are_counted_by_file(tmp_path):
    from resnet_tf1.data import fake
    data_dir = tmp_path / "data"
    # 2 shards of 4: shard 0 holds one image that does not decode; in shard 1 the record at
    # index 1 fails its checksum, which costs it and the 2 records after it.
    fake.write_imagenet(str(data_dir), "validation", shards=2, per_shard=4, corrupt=1)
    shard0, shard1 = (str(data_dir / ("validation-%05d-of-00002" % i)) for i in (0, 1))
    _flip_data_byte(shard1, 1)
    model_dir = tmp_path / "run"
    p = run_config.RunParams(model_dir=str(model_dir), dataset="imagenet", depth=18,
                             data_dir=str(data_dir), device="/cpu:0")
    with tf.Graph().as_default():
        run_config.build_model(p)(tf.compat.v1.placeholder(tf.float32, [None, 224, 224, 3]))
        tf.compat.v1.train.get_or_create_global_step()
        with tf.compat.v1.Session() as s:
            s.run(tf.compat.v1.global_variables_initializer())
            tf.compat.v1.train.Saver().save(s, str(model_dir / "model.ckpt"))
    env_quiet = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")  # TF's own warnings are hidden
    r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "evaluate.py"),
                        "--dataset=imagenet", "--depth=18", "--batch_size=2",
                        "--data_dir=" + str(data_dir), "--model_dir=" + str(model_dir)],
                       capture_output=True, text=True, timeout=600,
                       env=dict(env_quiet, PYTHONPATH=ROOT))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "over 4 examples, 4 records skipped" in r.stdout, r.stdout
    lines = [l for l in r.stderr.splitlines() if ": skipped " in l]
    assert len(lines) == 2, r.stderr[-3000:]
    (line0,) = [l for l in lines if shard0 + ": skipped 1 record (3 kept)" in l]
    assert "1 record whose image does not decode" in line0
    (line1,) = [l for l in lines if shard1 + ": skipped 3 records (1 kept)" in l]
    assert "corrupt record at byte" in line1 and "it and the 2 records after it" in line1
    metrics = json.load(open(model_dir / "eval" / "metrics.json"))
    assert metrics["num_skipped"] == 4 and metrics["num_examples"] == 4


def test_skips_are_counted_on_every_training_pass_and_damaged_framing_counts_once(tmp_path):
    from resnet_tf1.data import fake, imagenet, tfrecords
    d = str(tmp_path)
    fake.write_imagenet(d, "train", shards=1, per_shard=3, corrupt=1)
    skips = tfrecords.SkippedRecords()
    with tf.Graph().as_default():
        ds, _ = imagenet.dataset(d, "train", 1, training=True, seed=0, skips=skips)
        nxt = tf.compat.v1.data.make_one_shot_iterator(ds).get_next()
        with tf.compat.v1.Session() as s:
            for _ in range(7):  # 2 good records per pass: at least 3 passes
                s.run(nxt)
    assert skips.total >= 3 and skips.total == sum(skips.files.values())
    # A shard whose length field is damaged: the rest cannot be walked; counted as one record.
    path = os.path.join(d, "train-00000-of-00001")
    data = bytearray(open(path, "rb").read())
    first = 16 + int.from_bytes(data[:8], "little")
    data[first + 5] ^= 0x7F  # a huge length for record 1
    open(path, "wb").write(data)
    assert tfrecords.remaining_records(path, first, len(data)) == (1, False)
    assert tfrecords.remaining_records(path, 0, len(data)) == (1, False)
    data[first + 5] ^= 0x7F
    open(path, "wb").write(data)
    assert tfrecords.remaining_records(path, first, len(data)) == (2, True)


# ---- 6: leftovers of an interrupted run are removed by the next one ---------------------------

def test_leftovers_of_an_interrupted_run_are_removed(cifar_dir, tmp_path):
    """What kills leave in a run directory: TF's and our temporaries, a partial BN recompute,
    and torn checkpoints the `checkpoint` state does not list (data without an index, an index
    older than its data). The next run removes them and says so; a complete unlisted checkpoint
    and the user's own files stay."""
    model_dir = tmp_path / "run"
    train_lib.train(run_config.RunParams(
        model_dir=str(model_dir), dataset="cifar10", data_dir=cifar_dir, depth=20, batch_size=8,
        max_steps=1, lr_boundaries=(), recompute_bn_batches=0))
    data, index = "model.ckpt-1.data-00000-of-00001", "model.ckpt-1.index"
    hexname = "0123456789abcdef" * 2
    files = {"model.ckpt-5.data-00000-of-00001.tempstate123456": "half",
             "graph.pbtxt.tmp9f8e": "half", "checkpoint.tmp" + hexname: "half",
             "model.ckpt-1.meta.tmp" + hexname: "half", "flags.txt.tmp-4242": "half",
             "model.ckpt-7.data-00000-of-00001": data,   # data, no index
             "model.ckpt-9.index": index, "model.ckpt-9.data-00000-of-00001": data,
             "model.ckpt-4.data-00000-of-00001": data, "model.ckpt-4.index": index,  # complete
             "keep.txt": "mine"}
    for name, source in files.items():
        if source in (data, index):
            shutil.copy(model_dir / source, model_dir / name)
        else:
            (model_dir / name).write_text(source)
    now = time.time()
    os.utime(model_dir / "model.ckpt-4.data-00000-of-00001", (now - 10, now - 10))
    os.utime(model_dir / "model.ckpt-9.index", (now - 10, now - 10))  # stale beside newer data
    (model_dir / ".bn_recomputed.tmp-abc").mkdir()
    r = run("train.py", *train_args(cifar_dir, model_dir, "--max_steps=2"))
    assert r.returncode == 0, r.stderr[-3000:]
    removed = sorted(set(files) - {"keep.txt", "model.ckpt-4.data-00000-of-00001",
                                   "model.ckpt-4.index"})
    assert ("removed %d leftover(s) of an interrupted run from %s: %s"
            % (len(removed), model_dir, ", ".join(removed))) in r.stderr, r.stderr[-3000:]
    assert "removed 1 leftover(s) of an interrupted BN recompute: .bn_recomputed.tmp-abc" \
        in r.stderr
    left = set(os.listdir(model_dir))
    assert not left & (set(removed) | {".bn_recomputed.tmp-abc"}), left
    assert {"keep.txt", "model.ckpt-4.index", "model.ckpt-2.index"} <= left
    assert all(".tmp" not in n and "tempstate" not in n for n in left), left


# ---- an interrupted replace loses nothing -----------------------------------------------------

def _killed_at_rename(marker, script, *args):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, os.path.join(ROOT, "tests", "kill_at_rename.py"),
                           marker, os.path.join(ROOT, "scripts", script)] + list(args),
                          capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.slow
@pytest.mark.parametrize("tool", ["convert_checkpoint", "export", "recompute_bn"])
def test_a_replace_killed_between_its_renames_is_completed_by_the_next_start(
        tool, cifar_dir, tmp_path):
    """The three tools that replace a directory (`fileio.atomic_dir`), SIGKILLed after the old
    copy was set aside and before the new one was renamed into place: neither is lost; the next
    start completes the swap before it cleans anything."""
    if tool == "convert_checkpoint":
        npz = str(tmp_path / "ResNet-50.npz")
        _caffe_npz(npz)
        final = tmp_path / "out"
        args = ["--source=caffe", "--input=" + npz, "--output=" + str(final), "--overwrite"]
        what, check = "conversion", lambda: checkpoints.read_shapes(str(final / "model.ckpt"))
    else:
        model_dir = tmp_path / "run"
        train_lib.train(run_config.RunParams(
            model_dir=str(model_dir), dataset="cifar10", data_dir=cifar_dir, depth=20,
            batch_size=8, max_steps=1, lr_boundaries=(), recompute_bn_batches=0))
        if tool == "export":
            final = tmp_path / "frozen"
            args = ["--model_dir=" + str(model_dir), "--export_dir=" + str(final),
                    "--format=frozen_graph", "--overwrite"]
            what, check = "export", lambda: json.load(open(final / "export.json"))
        else:
            final = model_dir / "bn_recomputed"
            args = ["--data_dir=" + cifar_dir, "--model_dir=" + str(model_dir), "--depth=20",
                    "--batch_size=8", "--num_batches=1"]
            what, check = ("BN recompute",
                           lambda: checkpoints.read_shapes(str(final / "model.ckpt-1")))
    if tool == "convert_checkpoint":  # the first output, in-process (the tool's own code)
        convert_lib.convert("caffe", npz, str(final))
    elif tool == "export":
        export_lib.export(serving.load(str(model_dir)), str(final), "frozen_graph")
    else:
        bn_stats.recompute(run_config.RunParams(
            model_dir=str(model_dir), dataset="cifar10", data_dir=cifar_dir, depth=20,
            batch_size=8, lr_boundaries=()), num_batches=1)
    killed = _killed_at_rename(".new-", tool + ".py", *args)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    beside = sorted(n for n in os.listdir(final.parent) if final.name in n and n != final.name)
    assert not final.exists() and len(beside) == 2, beside  # the old copy and the new one
    new = next(n for n in beside if ".new-" in n)
    # The next start completes the swap before it checks the output: without --overwrite the
    # recovered copy is refused like any earlier output (and kept).
    after = run(tool + ".py", *[a for a in args if a != "--overwrite"])
    if "--overwrite" in args:
        assert "pass --overwrite" in error_line(after, tool)
    else:
        assert after.returncode == 0, after.stderr[-3000:]
    assert "completed an interrupted %s: %s is now %s" % (what, new, final) in after.stderr
    assert [n for n in os.listdir(final.parent) if final.name in n] == [final.name]
    assert check()


# ---- one writer per run; a refused run changes nothing ----------------------------------------

def test_a_refused_run_leaves_model_dir_byte_identical_or_absent(cifar_dir, tmp_path):
    model_dir = tmp_path / "run"
    train_lib.train(run_config.RunParams(
        model_dir=str(model_dir), dataset="cifar10", data_dir=cifar_dir, depth=20, batch_size=8,
        max_steps=1, lr_boundaries=(), recompute_bn_batches=0), flags_text="--depth=20\n")
    before = snapshot(model_dir)
    # The fixture's 300 training records cannot hold the paper's 5,000-image validation split:
    # found while the graph is built, before flags.txt or anything else is written.
    r = run("train.py", *train_args(cifar_dir, model_dir, "--max_steps=5",
                                    "--holdout_validation"))
    assert "the validation split needs 5000 of the" in error_line(r, "train")
    assert snapshot(model_dir) == before
    missing = tmp_path / "no_data"
    r = run("train.py", *train_args(str(missing), tmp_path / "new_run", "--max_steps=1"))
    error_line(r, "train")
    assert not (tmp_path / "new_run").exists()


def _wait_for_step(proc, model_dir, timeout=180):
    """Waits until the training process `proc` has saved a checkpoint in `model_dir`."""
    deadline = time.time() + timeout
    while tf.train.latest_checkpoint(str(model_dir)) is None:
        assert proc.poll() is None and time.time() < deadline, proc.returncode
        time.sleep(0.5)


@pytest.mark.slow
def test_a_second_writer_is_refused_and_a_killed_holder_does_not_block(cifar_dir, tmp_path):
    """Two train.py started together on one new --model_dir: one trains, the other gets one line
    naming the holder's PID; recompute_bn.py is refused too; a reader is not. The holder is then
    SIGKILLed: its lock goes with it, and the next run resumes."""
    model_dir = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=ROOT)
    args = train_args(cifar_dir, model_dir, "--max_steps=100000", "--save_checkpoints_steps=2")
    procs = [subprocess.Popen([sys.executable, os.path.join(ROOT, "scripts", "train.py")] + args,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env=env) for _ in range(2)]
    try:
        deadline = time.time() + 300
        while all(p.poll() is None for p in procs):
            assert time.time() < deadline
            time.sleep(0.5)
        loser = next(p for p in procs if p.poll() is not None)
        holder = next(p for p in procs if p is not loser)
        line = error_line(subprocess.CompletedProcess(loser.args, loser.returncode, "",
                                                      loser.stderr.read()), "train")
        assert ("--model_dir=%s is in use by another writer (PID %d (" % (model_dir, holder.pid)
                in line), line
        _wait_for_step(holder, model_dir)
        params = run_config.RunParams(model_dir=str(model_dir), dataset="cifar10",
                                      data_dir=cifar_dir, depth=20, batch_size=8,
                                      lr_boundaries=())
        with pytest.raises(rundir.ModelDirError, match="is in use by another writer \\(PID %d "
                           % holder.pid):
            bn_stats.recompute(params, num_batches=1)  # what recompute_bn.py runs
        assert not (model_dir / "bn_recomputed").exists()
        # Readers take no lock: the running job's latest checkpoint evaluates.
        assert eval_lib.evaluate(params, str(model_dir))["top_1_accuracy"] >= 0
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    step = int(tf.train.latest_checkpoint(str(model_dir)).rsplit("-", 1)[1])
    r = run("train.py", *train_args(cifar_dir, model_dir, "--max_steps=%d" % (step + 1)))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resumed from step %d" % step in r.stderr


# ---- 7, 8: the converter -------------------------------------------------------------------------

def _caffe_npz(path):
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    import test_porting
    blobs = test_porting.caffe_blobs(test_porting.CAFFE_R50_UNITS, np.random.RandomState(1),
                                     conv1_bias=False)
    np.savez(path, **blobs)


@pytest.mark.slow
def test_overwrite_replaces_only_converter_output(tmp_path):
    npz = str(tmp_path / "ResNet-50.npz")
    _caffe_npz(npz)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "README.md").write_text("notes")
    r = run("convert_checkpoint.py", "--source=caffe", "--input=" + npz,
            "--output=" + str(mixed), "--overwrite")
    assert "holds files that are not a converted checkpoint" in error_line(r,
                                                                           "convert_checkpoint")
    assert (mixed / "README.md").read_text() == "notes"
    out = tmp_path / "out"
    (tmp_path / ".out.tmp-leftover").mkdir()
    assert run("convert_checkpoint.py", "--source=caffe", "--input=" + npz,
               "--output=" + str(out)).returncode == 0
    assert oct(os.stat(out).st_mode & 0o777) == oct(0o777 & ~_umask())
    assert not (tmp_path / ".out.tmp-leftover").exists()
    again = run("convert_checkpoint.py", "--source=caffe", "--input=" + npz,
                "--output=" + str(out))
    assert "pass --overwrite" in error_line(again, "convert_checkpoint")
    assert run("convert_checkpoint.py", "--source=caffe", "--input=" + npz,
               "--output=" + str(out), "--overwrite").returncode == 0
    assert json.load(open(out / "config.json"))["source"]["format"] == "caffe"


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("content, message", [
    (None, "is an empty .npz: it holds no Caffe blobs"),
    (b"hello world" * 10, "is not an .npz of Caffe blobs (not a zip archive): dump the "
                          ".caffemodel with the script in checkpoints/README.md"),
])
def test_caffe_inputs_that_are_no_blobs(tmp_path, content, message):
    path = tmp_path / "ResNet-50.npz"
    if content is None:
        np.savez(path)
    else:
        path.write_bytes(content)
    r = run("convert_checkpoint.py", "--source=caffe", "--input=" + str(path),
            "--output=" + str(tmp_path / "o"))
    line = error_line(r, "convert_checkpoint")
    assert str(path) in line and message in line and "unsafely" not in line, line
    assert not (tmp_path / "o").exists()


def test_failed_download_creates_no_data_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(cifar10, "URL", "http://127.0.0.1:9/cifar-10-binary.tar.gz")
    missing = tmp_path / "not" / "there"
    with pytest.raises(cifar10.DataError, match="could not be downloaded"):
        cifar10.maybe_download(str(missing))
    assert not (tmp_path / "not").exists()
