"""int8 through ONNX Runtime (issue 34): the quantized export checked against float32 on images
it was not calibrated on, exports evaluated on the whole test set, predict in ONNX Runtime, the
benchmark's ONNX rows."""

import json
import os

import numpy as np
import pytest

from resnet_tf1 import export as export_lib
from resnet_tf1.data import cifar10, fake
from test_failures import error_line, run

pytest.importorskip("tf2onnx")
onnxruntime = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A CIFAR-layout ResNet-8 trained through train.py on learnable fake images (500 training,
    400 test): a small model that decides most of its test images."""
    root = tmp_path_factory.mktemp("int8")
    data_dir = str(root / "cifar")
    fake.write_cifar(data_dir, per_file=100, test=400, seed=3)
    model_dir = str(root / "run")
    r = run("train.py", "--dataset=cifar10", "--data_dir=" + data_dir, "--model_dir=" + model_dir,
            "--depth=8", "--batch_size=32", "--max_steps=150", "--learning_rate=0.05",
            "--lr_boundaries=100", "--save_checkpoints_steps=150", "--log_every_n_steps=50",
            "--seed=2", "--recompute_bn_batches=4")
    assert r.returncode == 0, r.stderr[-3000:]
    return {"root": root, "data_dir": data_dir, "model_dir": model_dir,
            "flagfile": os.path.join(model_dir, "flags.txt")}


def _metrics(r):
    assert r.returncode == 0, r.stderr[-3000:]
    line = [l for l in r.stdout.splitlines() if l.startswith("step ")]
    assert len(line) == 1, r.stdout
    return line[0]


def test_int8_export_agrees_with_float32_on_images_it_was_not_calibrated_on(trained):
    out = str(trained["root"] / "int8")
    r = run("export.py", "--model_dir=" + trained["model_dir"], "--export_dir=" + out,
            "--format=onnx", "--quantize=int8", "--calibration_batches=2", "--check_images=300")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "int8 (minmax) checked against the float32 session graph on 300 images" in r.stdout
    record = json.load(open(os.path.join(out, "export.json")))
    assert record["dtype"] == "int8" and record["float_dtype"] == "float32"
    q = record["quantization"]
    assert q["format"] == "QDQ" and q["calibration_images"] == 64
    assert "64 training images and 300 evaluation images, evaluation preprocessing, sampled" in \
        q["calibration_source"]
    check = record["check"]
    assert check["images"] == 300 and check["decided_images"] >= 200, check
    assert check["top_1_agreement_decided"] >= 0.99, check
    assert sorted(os.listdir(out)) == ["export.json", "model.onnx"]  # no float32 copy left
    # Really integer: int8 weights with per-channel scales, QDQ pairs around the convolutions.
    model = onnx.load(os.path.join(out, "model.onnx"))
    ops = [n.op_type for n in model.graph.node]
    int8 = [i for i in model.graph.initializer if i.data_type == onnx.TensorProto.INT8]
    assert ops.count("QuantizeLinear") >= 9 and ops.count("DequantizeLinear") >= 18, ops
    assert len(int8) >= 10  # 9 convolutions (and the logits) stored as int8
    per_channel = [i for i in model.graph.initializer if i.name.endswith("_scale")
                   and len(i.dims) == 1 and i.dims[0] in (16, 32, 64)]
    assert per_channel, "no per-channel weight scales"
    # The whole test set: int8 within 2 points (8 of 400 images) of the checkpoint's float32.
    want = _metrics(run("evaluate.py", "--flagfile=" + trained["flagfile"]))
    got = _metrics(run("evaluate.py", "--flagfile=" + trained["flagfile"], "--export_dir=" + out))
    assert "onnx int8 of" in got
    top1 = lambda line: float(line.split()[3])
    assert top1(want) > 0.5, want  # it learned
    assert abs(top1(got) - top1(want)) <= 0.02, (want, got)
    metrics = json.load(open(os.path.join(out, "eval", "metrics.json")))
    assert metrics["num_examples"] == 400 and metrics["dtype"] == "int8"
    assert np.sum(metrics["confusion_matrix"]) == 400


def test_evaluate_export_dir_reproduces_the_session_graphs_metrics(trained):
    """A float32 export evaluated on the pipeline's images turned back into pixels: the same
    top-1 count and confusion matrix as the checkpoint's evaluation (BN folded or not)."""
    want = _metrics(run("evaluate.py", "--flagfile=" + trained["flagfile"]))
    reference = json.load(open(os.path.join(trained["model_dir"], "eval", "metrics.json")))
    for fmt in ("onnx", "saved_model", "frozen_graph"):
        out = str(trained["root"] / ("f32_" + fmt))
        r = run("export.py", "--model_dir=" + trained["model_dir"], "--export_dir=" + out,
                "--format=" + fmt)
        assert r.returncode == 0, r.stderr[-3000:]
        got = _metrics(run("evaluate.py", "--flagfile=" + trained["flagfile"],
                           "--export_dir=" + out, "--runtime_threads=2"))
        assert got.split()[:8] == want.split()[:8], (fmt, got, want)
        metrics = json.load(open(os.path.join(out, "eval", "metrics.json")))
        assert metrics["confusion_matrix"] == reference["confusion_matrix"], fmt
        assert metrics["top_1_accuracy"] == reference["top_1_accuracy"], fmt
        assert metrics["global_step"] == reference["global_step"] == 150
        assert metrics["bn_statistics"]["kind"] == "recomputed"
    # Flags of checkpoint evaluation do not combine with an export.
    r = run("evaluate.py", "--flagfile=" + trained["flagfile"], "--export_dir=" + out,
            "--bn_stats=running")
    assert error_line(r, "evaluate") == ("evaluate: error: --bn_stats evaluates checkpoints: it "
                                         "does not combine with --export_dir")
    r = run("evaluate.py", "--flagfile=" + trained["flagfile"],
            "--export_dir=" + trained["model_dir"])
    assert error_line(r, "evaluate").startswith(
        "evaluate: error: --export_dir=%s is not an export directory (no export.json"
        % trained["model_dir"])


def test_predict_in_onnx_runtime_prints_what_tensorflow_prints(trained):
    out = str(trained["root"] / "f32_onnx")
    if not os.path.exists(out):
        r = run("export.py", "--model_dir=" + trained["model_dir"], "--export_dir=" + out,
                "--format=onnx")
        assert r.returncode == 0, r.stderr[-3000:]
    import tensorflow as tf
    raw = np.fromfile(os.path.join(trained["data_dir"], cifar10.SUBDIR, "test_batch.bin"),
                      np.uint8).reshape(-1, cifar10.RECORD_BYTES)[:6]
    photos = trained["root"] / "photos"
    photos.mkdir(exist_ok=True)
    for i, record in enumerate(raw):
        image = record[1:].reshape(3, 32, 32).transpose(1, 2, 0)
        (photos / ("%d.png" % i)).write_bytes(tf.io.encode_png(image).numpy())
    tf_run = run("predict.py", "--model_dir=" + trained["model_dir"], "--top_k=3", str(photos))
    ort_run = run("predict.py", "--model_dir=" + out, "--runtime=onnxruntime", "--top_k=3",
                  str(photos))
    assert tf_run.returncode == 0 and ort_run.returncode == 0, ort_run.stderr[-3000:]

    def parse(stdout):
        lines = stdout.splitlines()
        assert len(lines) == 6 * 4, stdout
        return [(l.split()[0], float(l.split()[1])) if l.startswith("  ") else (l, None)
                for l in lines]
    for (a, p), (b, q) in zip(parse(tf_run.stdout), parse(ort_run.stdout)):
        assert a == b
        assert (p is None) == (q is None) and (p is None or abs(p - q) <= 2e-4), (a, p, q)
    # The runtime must fit the directory, in one line.
    r = run("predict.py", "--model_dir=" + trained["model_dir"], "--runtime=onnxruntime",
            str(photos))
    assert "is not an export directory" in error_line(r, "predict")
    r = run("predict.py", "--model_dir=" + out, "--top_k=3", str(photos))
    assert error_line(r, "predict") == ("predict: error: --runtime=tensorflow: --model_dir=%s is "
                                        "a onnx export, which runs in onnxruntime" % out)


def test_calibration_that_cannot_be_read_is_one_line_and_writes_nothing(trained, tmp_path):
    base = ["export.py", "--model_dir=" + trained["model_dir"], "--format=onnx",
            "--quantize=int8"]
    out = tmp_path / "out"
    r = run(*base, "--export_dir=%s" % out, "--calibration_dir=%s" % (tmp_path / "nowhere"))
    assert error_line(r, "export") == ("export: error: --calibration_dir=%s is not a directory"
                                       % (tmp_path / "nowhere"))
    broken = tmp_path / "broken" / "cats"
    broken.mkdir(parents=True)
    for i in range(3):
        (broken / ("%d.jpg" % i)).write_bytes(b"\xff\xd8 not a jpeg at all" * 8)
    r = run(*base, "--export_dir=%s" % out, "--calibration_dir=%s" % broken.parent)
    assert error_line(r, "export") == ("export: error: --calibration_dir=%s: none of its 3 image "
                                       "files can be read" % broken.parent)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    r = run(*base, "--export_dir=%s" % out, "--calibration_dir=%s" % empty)
    assert error_line(r, "export").startswith("export: error: --calibration_dir=%s holds no "
                                              "image files (.jpg" % empty)
    r = run("export.py", "--model_dir=" + trained["model_dir"], "--format=saved_model",
            "--quantize=int8", "--export_dir=%s" % out)
    assert error_line(r, "export") == ("export: error: --quantize=int8 runs in ONNX Runtime: use "
                                       "it with --format=onnx, not --format=saved_model")
    r = run(*base, "--export_dir=%s" % out, "--dtype=bfloat16")
    assert "--quantize=int8 quantizes a float32 graph; this export computes in bfloat16" in \
        error_line(r, "export")
    assert not out.exists() and not [p for p in os.listdir(tmp_path) if p.startswith(".out")]


def test_agreement_counts_only_the_images_float32_decides():
    want = np.array([[0.9, 0.05, 0.05],    # decided: 0.85 ahead
                     [0.5, 0.45, 0.05],    # undecided: 0.05 ahead
                     [0.1, 0.8, 0.1],      # decided
                     [0.34, 0.33, 0.33]])  # undecided
    got = np.array([[0.8, 0.1, 0.1],       # agrees
                    [0.45, 0.5, 0.05],     # flips an undecided image: not held against it
                    [0.5, 0.4, 0.1],       # flips a decided one
                    [0.33, 0.34, 0.33]])
    a = export_lib.agreement(want, got)
    assert a["decided_images"] == 2 and a["top_1_agreement_decided"] == 0.5
    assert a["top_1_agreement"] == 0.25
    assert a["max_abs_probability_difference"] == pytest.approx(0.4)


@pytest.mark.slow
def test_benchmark_times_our_onnx_export_in_the_same_rounds():
    r = run("benchmark.py", "--depth=20", "--batch_size=1", "--steps=4", "--rounds=2",
            "--warmup=1", "--matmul_size=0", "--mode=inference", "--fold_bn", "--nomemory",
            "--threads=2", "--compare=onnx_float32,onnx_int8", "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout)
    models = result["models"]
    assert sorted(models) == ["onnx_float32", "onnx_int8", "ours"]
    assert models["onnx_int8"]["label"] == "ours, ONNX Runtime int8 QDQ per-channel"
    for e in models.values():
        assert e["latency_ms"]["calls"] == 8 and 0 < e["latency_ms"]["p50"] <= \
            e["latency_ms"]["p99"]
    assert models["onnx_int8"]["speedup_over_ours"] == pytest.approx(
        models["onnx_int8"]["images_per_sec"]["median"] / models["ours"]["images_per_sec"][
            "median"])
    r = run("benchmark.py", "--depth=20", "--compare=onnx_int8")
    assert "--compare=onnx_int8 times inference: add --mode=inference" in r.stderr
