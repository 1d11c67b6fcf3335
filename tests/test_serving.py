"""Issue 9: predict with labels offline, export to SavedModel / frozen graph / ONNX, BN folding.

Models are small (CIFAR-shaped nets, some with ImageNet's 1000 / 1001 classes) with non-trivial
BN statistics, written as a converted checkpoint (config.json + model.ckpt) or trained for a few
steps as a run; images are written by the tests in each format and colour mode.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from resnet_tf1 import export as export_lib
from resnet_tf1 import fold_bn, restore, run_config, serving, train_lib
from resnet_tf1.data import cifar10, imagenet, labels as labels_lib, preprocessing
from resnet_tf1.model import ResNet

tf1 = tf.compat.v1
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(script, *args):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", script)] + list(args),
                          capture_output=True, text=True, env=env, timeout=900)


def random_weights(model, size, rng):
    """{name: array} of `model`'s variables with non-trivial BN statistics and biases."""
    with tf.Graph().as_default():
        model(tf1.placeholder(tf.float32, [None, size, size, 3]))
        variables = tf1.get_collection(tf1.GraphKeys.MODEL_VARIABLES)
        with tf1.Session() as s:
            s.run(tf1.variables_initializer(variables))
            arrays = {}
            for v in variables:
                a = s.run(v)
                name = v.op.name
                if name.endswith(("gamma", "moving_variance")):
                    a = rng.uniform(0.5, 1.5, a.shape)
                elif name.endswith(("beta", "moving_mean", "biases")):
                    a = rng.uniform(-0.3, 0.3, a.shape)
                arrays[name] = a.astype(np.float32)
    return arrays


def write_converted(directory, model_kwargs, labels, rec, arrays=None, seed=0):
    """A directory shaped like convert_checkpoint.py's output."""
    model = ResNet(**model_kwargs)
    arrays = arrays or random_weights(model, rec["crop"], np.random.RandomState(seed))
    os.makedirs(directory)
    with tf.Graph().as_default():
        model(tf1.placeholder(tf.float32, [None, rec["crop"], rec["crop"], 3]))
        variables = tf1.get_collection(tf1.GraphKeys.MODEL_VARIABLES)
        with tf1.Session() as s:
            restore.load_arrays(s, arrays, variables)
            tf1.train.Saver(variables).save(s, os.path.join(directory, "model.ckpt"),
                                            write_meta_graph=False)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump({"model": model_kwargs, "preprocessing": rec, "labels": labels,
                   "source": {"format": "test"}}, f)
    return arrays


# A CIFAR-shaped net with ImageNet's classes: ImageNet's labels and preprocessing at test speed.
SMALL_IMAGENET = preprocessing.record("RGB", imagenet.MEAN_RGB, resize_shorter_side=40, crop=36)


@pytest.fixture(scope="module")
def imagenet_dir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("converted") / "model")
    write_converted(d, dict(depth=20, num_classes=1000, architecture="cifar"), "imagenet1000",
                    SMALL_IMAGENET)
    return d


def _encode_all(directory, rng):
    """The same 48x64 picture in each format and colour mode; {file: PIL RGB reference}."""
    from PIL import Image
    base = Image.fromarray(rng.randint(0, 255, (48, 64, 3)).astype(np.uint8))
    os.makedirs(directory, exist_ok=True)
    variants = {
        "a_rgb.jpg": base, "b_cmyk.jpg": base.convert("CMYK"), "c_grey.png": base.convert("L"),
        "d_palette.png": base.convert("P"), "e_alpha.png": base.convert("RGBA"),
        "f_image.bmp": base, "g_grey.jpg": base.convert("L"), "h_still.gif": base,
    }
    refs = {}
    for name, image in variants.items():
        path = os.path.join(directory, name)
        image.save(path)
        refs[path] = np.asarray(Image.open(path).convert("RGB"), np.float32)
    animated = os.path.join(directory, "i_animated.gif")
    base.save(animated, save_all=True, append_images=[Image.fromarray(
        255 - np.asarray(base))])
    refs[animated] = np.asarray(Image.open(animated).convert("RGB"), np.float32)  # frame 1
    return refs


def test_every_format_and_colour_mode_decodes_to_its_rgb_pixels(tmp_path):
    refs = _encode_all(str(tmp_path), np.random.RandomState(1))
    for path, ref in refs.items():
        with open(path, "rb") as f:
            got = preprocessing.decode(tf.constant(f.read())).numpy().astype(np.float32)
        assert got.shape == ref.shape, path
        # Lossless formats exactly; JPEG within its decoders' rounding differences.
        tolerance = 4 if path.endswith(".jpg") else 0
        assert np.abs(got - ref).max() <= tolerance, (path, np.abs(got - ref).max())


def test_predict_prints_labelled_top5_and_one_line_for_a_corrupt_file(imagenet_dir, tmp_path):
    images = str(tmp_path / "photos")
    refs = _encode_all(images, np.random.RandomState(2))
    with open(os.path.join(images, "c_broken.jpg"), "wb") as f:
        f.write(b"\xff\xd8\xff\xe0 not really a jpeg")
    with open(os.path.join(images, "notes.txt"), "w") as f:
        f.write("not an image file: never read")
    r = run("predict.py", "--model_dir=" + imagenet_dir, "--batch_size=4", images)
    assert r.returncode == 1, r.stderr[-3000:]
    errors = [l for l in r.stderr.splitlines() if l.startswith("predict: error:")]
    assert len(errors) == 1 and errors[0].startswith(
        "predict: error: %s is not a readable image: " % os.path.join(images, "c_broken.jpg")), \
        r.stderr[-3000:]
    lines = r.stdout.splitlines()
    ids, _ = labels_lib.imagenet()
    blocks = [lines[i:i + 6] for i in range(0, len(lines), 6)]
    assert [b[0] for b in blocks] == sorted(refs), lines  # in order, the broken one left out
    for block in blocks:
        probs = []
        for line in block[1:]:
            wnid, name, p = line.split()
            assert wnid in ids and name and line.startswith("  n"), line
            probs.append(float(p))
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001
    j = run("predict.py", "--model_dir=" + imagenet_dir, "--json", "--top_k=3",
            os.path.join(images, "a_rgb.jpg"), os.path.join(images, "c_broken.jpg"))
    records = [json.loads(l) for l in j.stdout.splitlines()]
    assert j.returncode == 1 and len(records) == 2 and "error" in records[1]
    top = records[0]["predictions"]
    assert len(top) == 3 and top[0]["id"] == ids[top[0]["class"]]
    assert blocks[0][1].split()[:2] == [top[0]["id"], top[0]["name"]]


def test_the_imagenet_label_table():
    table = labels_lib.table("imagenet1000", 1000)
    entries = table.labels()
    assert len(entries) == 1000 == len(set(entries)) == len(set(table.ids))
    assert entries[0] == "n01440764 tench"
    assert entries[-1] == "n15075141 toilet_tissue"
    assert table.label(101) == "n01871265 tusker"  # seed article 003's top class
    background = labels_lib.table("imagenet1001", 1001)
    assert background.offset == 1 and background.labels() == entries
    with pytest.raises(labels_lib.DataError, match="has 1001 classes, but its labels are "
                                                   "imagenet1000"):
        labels_lib.table("imagenet1000", 1001)


def _eval_logits(p, checkpoint, n):
    """The first `n` logits of the evaluation pipeline on `checkpoint` (as evaluate.py runs)."""
    with tf.Graph().as_default():
        images, _, _ = run_config.input_batches(p, training=False)
        logits, _ = run_config.build_model(p)(images)
        restorer = restore.Restorer(checkpoint)
        out = []
        with tf1.Session() as s:
            restorer.restore(s)
            while len(out) < n:
                out.extend(s.run(logits))
    return np.array(out[:n])


def test_predict_on_a_trained_run_agrees_with_evaluation(cifar_dir, tmp_path):
    model_dir = tmp_path / "run"
    p = run_config.RunParams(model_dir=str(model_dir), dataset="cifar10", data_dir=cifar_dir,
                             depth=20, batch_size=16, max_steps=20, learning_rate=0.1,
                             lr_boundaries=(), save_checkpoints_steps=20, log_every_n_steps=10,
                             seed=1, recompute_bn_batches=2)
    train_lib.train(p)
    recorded = json.load(open(model_dir / "model_config.json"))
    assert recorded["labels"]["names"][3] == "cat"
    assert os.path.exists(model_dir / cifar10.MEAN_IMAGE_FILE)
    # The first 24 test images as PNG files, then a fresh copy of the run without the data.
    raw = np.fromfile(os.path.join(cifar_dir, cifar10.SUBDIR, "test_batch.bin"),
                      np.uint8).reshape(-1, cifar10.RECORD_BYTES)[:24]
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, record in enumerate(raw):
        image = record[1:].reshape(3, 32, 32).transpose(1, 2, 0)
        (photos / ("%02d.png" % i)).write_bytes(tf.io.encode_png(image).numpy())
    r = run("predict.py", "--model_dir=" + str(model_dir), "--json", "--batch_size=5",
            str(photos))
    assert r.returncode == 0, r.stderr[-3000:]
    records = [json.loads(l) for l in r.stdout.splitlines()]
    predicted = [rec["predictions"][0]["class"] for rec in records]
    top1_prob = np.array([rec["predictions"][0]["probability"] for rec in records])
    checkpoint = str(model_dir / "bn_recomputed" / "model.ckpt-20")
    assert "bn_recomputed/model.ckpt-20" in r.stderr  # the checkpoint evaluate uses
    logits = _eval_logits(p, checkpoint, 24)
    assert predicted == list(logits.argmax(1))
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    np.testing.assert_allclose(top1_prob, probs.max(1), atol=2e-6)
    assert records[0]["predictions"][0]["name"] == cifar10.class_names(
        os.path.join(cifar_dir, cifar10.SUBDIR))[predicted[0]]


def _session_outputs(servable, images=None, encoded=None):
    """The session graph's outputs (unfolded) on pixels or on encoded bytes."""
    with tf.Graph().as_default():
        if encoded is not None:
            x = tf1.placeholder(tf.string, [None])
            pixels = serving.decode_graph(servable, x)
            feed = encoded
        else:
            x = pixels = tf1.placeholder(tf.float32, [None] + list(images.shape[1:]))
            feed = images
        outputs = serving.inference_graph(servable, pixels)
        load = serving.restorer(servable)
        with tf1.Session() as s:
            load(s)
            return s.run(dict(outputs), {x: feed})


def _assert_same_top_k(got_classes, want_classes, probabilities, atol=1e-6):
    """Top-k lists agree up to ties: the classes `got_classes` picks have, rank by rank, the
    probabilities (from the reference `probabilities`) of the wanted ones. Two runtimes may order
    classes whose probabilities differ by rounding either way; any other choice fails."""
    got_classes = np.asarray(got_classes)
    assert got_classes.shape == want_classes.shape, (got_classes.shape, want_classes.shape)
    np.testing.assert_allclose(np.take_along_axis(probabilities, got_classes, 1),
                               np.take_along_axis(probabilities, want_classes, 1), atol=atol,
                               err_msg="top-k classes %s, wanted %s" % (got_classes.tolist(),
                                                                       want_classes.tolist()))


def test_saved_model_serves_pixels_and_jpeg_bytes_in_eager_and_in_sessions(imagenet_dir,
                                                                           tmp_path):
    servable = serving.load(imagenet_dir)
    out = str(tmp_path / "export")
    record = export_lib.export(servable, out, "saved_model")
    assert json.load(open(os.path.join(out, "export.json"))) == json.loads(json.dumps(record))
    rng = np.random.RandomState(4)
    pixels = rng.uniform(0, 255, (3, 36, 36, 3)).astype(np.float32)
    jpegs = [tf.io.encode_jpeg(rng.randint(0, 255, (50 + 7 * i, 60, 3)).astype(np.uint8))
             .numpy() for i in range(3)]
    want = _session_outputs(servable, images=pixels)
    want_bytes = _session_outputs(servable, encoded=np.array(jpegs, dtype=object))
    loaded = tf.saved_model.load(out)  # TF2, eager
    got = loaded.signatures["serving_default"](images=tf.constant(pixels))
    np.testing.assert_allclose(got["probabilities"].numpy(), want["probabilities"], atol=1e-5)
    assert got["probabilities"].shape == (3, 1000)
    _assert_same_top_k(got["top_k_classes"].numpy(), want["top_k_classes"],
                       want["probabilities"])
    names = got["class_names"].numpy()
    assert names.shape == (3, 5) and names[0, 0].decode() == servable.labels.label(
        int(want["classes"][0]))
    got_bytes = loaded.signatures["image_bytes"](image_bytes=tf.constant(jpegs))
    np.testing.assert_allclose(got_bytes["probabilities"].numpy(), want_bytes["probabilities"],
                               atol=1e-5)
    with tf.Graph().as_default(), tf1.Session() as s:  # TF1 sessions
        meta = tf1.saved_model.loader.load(s, ["serve"], out)
        sig = meta.signature_def["serving_default"]
        probs = s.run(sig.outputs["probabilities"].name, {sig.inputs["images"].name: pixels})
    np.testing.assert_allclose(probs, want["probabilities"], atol=1e-5)
    again = run("export.py", "--model_dir=" + imagenet_dir, "--export_dir=" + out)
    assert "holds an export (pass --overwrite to replace it)" in again.stderr
    assert again.returncode == 1


def test_frozen_graph_and_onnx_fold_batch_norm_and_match(imagenet_dir, tmp_path):
    servable = serving.load(imagenet_dir)
    out = str(tmp_path / "frozen")
    r = run("export.py", "--model_dir=" + imagenet_dir, "--export_dir=" + out,
            "--format=frozen_graph")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "input  images" in r.stdout and "tensor probabilities:0" in r.stdout
    record = json.load(open(os.path.join(out, "export.json")))
    assert record["inputs"]["images"]["node"] == "images"
    assert record["inputs"]["images"]["shape"] == [None, 36, 36, 3]
    graph_def = tf1.GraphDef()
    graph_def.ParseFromString(open(os.path.join(out, "frozen_graph.pb"), "rb").read())
    ops = {n.op for n in graph_def.node}
    assert not [o for o in ops if "BatchNorm" in o or "Variable" in o], ops
    pixels = np.random.RandomState(5).uniform(0, 255, (4, 36, 36, 3)).astype(np.float32)
    want = _session_outputs(servable, images=pixels)
    got = export_lib.run_frozen(graph_def, record, pixels)
    np.testing.assert_allclose(got["logits"], want["logits"],
                               atol=1e-4 * np.abs(want["logits"]).max())
    np.testing.assert_allclose(got["probabilities"], want["probabilities"], atol=1e-4)
    pytest.importorskip("tf2onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    out = str(tmp_path / "onnx")
    record = export_lib.export(servable, out, "onnx")
    assert record["check"]["max_abs_probability_difference"] <= 1e-4
    session = onnxruntime.InferenceSession(os.path.join(out, "model.onnx"),
                                           providers=["CPUExecutionProvider"])
    results = dict(zip([o.name for o in session.get_outputs()],
                       session.run(None, {"images:0": pixels})))
    np.testing.assert_allclose(results["probabilities:0"], want["probabilities"], atol=1e-4)
    _assert_same_top_k(results["top_k_classes:0"], want["top_k_classes"], want["probabilities"])


def test_a_1001_class_model_exports_every_logit_and_maps_ids(tmp_path):
    model_kwargs = dict(depth=20, num_classes=1001, architecture="cifar")
    arrays = random_weights(ResNet(**model_kwargs), 36, np.random.RandomState(6))
    arrays["cifar_resnet20/logits/weights"][:] = 0  # logits = biases, whatever the image
    bias = arrays["cifar_resnet20/logits/biases"]
    bias[:] = 0
    bias[0] = 500.0  # the background: the largest logit, never a class
    bias[1 + 101] = 100.0  # logit 102 is real class 101, n01871265 tusker
    d = str(tmp_path / "slim_like")
    write_converted(d, model_kwargs, "imagenet1001", SMALL_IMAGENET, arrays=arrays)
    servable = serving.load(d)
    out = str(tmp_path / "frozen")
    record = export_lib.export(servable, out, "frozen_graph", top_k=3)
    assert record["background_class"] and record["num_classes"] == 1000
    assert record["outputs"]["logits"]["shape"] == [None, 1001]  # nothing dropped
    assert record["outputs"]["probabilities"]["shape"] == [None, 1000]
    graph_def = tf1.GraphDef()
    graph_def.ParseFromString(open(os.path.join(out, "frozen_graph.pb"), "rb").read())
    pixels = np.random.RandomState(7).uniform(0, 255, (2, 36, 36, 3)).astype(np.float32)
    got = export_lib.run_frozen(graph_def, record, pixels)
    assert got["logits"].shape == (2, 1001) and got["logits"].argmax(1).tolist() == [0, 0]
    assert got["classes"].tolist() == [101, 101]
    assert [n.decode() for n in got["class_names"][:, 0]] == ["n01871265 tusker"] * 2
    np.testing.assert_allclose(got["probabilities"].sum(1), 1.0, atol=1e-5)
    photo = tmp_path / "photo.png"
    photo.write_bytes(tf.io.encode_png(pixels[0].astype(np.uint8)).numpy())
    r = run("predict.py", "--model_dir=" + d, str(photo))
    assert r.returncode == 0 and r.stdout.splitlines()[1].startswith("  n01871265 tusker 1.0000")
    assert "background" not in r.stdout


@pytest.mark.parametrize("model_kwargs, size", [
    (dict(depth=20, num_classes=10), 32),
    (dict(depth=18), 64),
    (dict(depth=50, conv_bias=True, bn_epsilon=1e-3, pool_padding="symmetric"), 64),  # Keras
])
def test_folding_batch_norm_keeps_the_logits(model_kwargs, size):
    model = ResNet(**model_kwargs)
    arrays = random_weights(model, size, np.random.RandomState(8))
    images = np.random.RandomState(9).uniform(-120, 130, (3, size, size, 3)).astype(np.float32)
    results = []
    for fold in (False, True):
        with tf.Graph().as_default():
            x = tf1.placeholder(tf.float32, [None, size, size, 3])
            logits, _ = model(x, fold_batch_norm=fold)
            variables = tf1.get_collection(tf1.GraphKeys.MODEL_VARIABLES)
            ops = {o.type for o in tf1.get_default_graph().get_operations()}
            with tf1.Session() as s:
                restore.load_arrays(s, fold_bn.fold(arrays, model.bn_epsilon) if fold else arrays,
                                    variables)
                results.append(s.run(logits, {x: images}))
        assert fold == (not any("BatchNorm" in o for o in ops)), ops
    unfolded, folded = results
    assert np.abs(folded - unfolded).max() <= 1e-4 * np.abs(unfolded).max()
    with pytest.raises(ValueError, match="fold_batch_norm=True builds the inference form"):
        model(tf.zeros([1, size, size, 3]), is_training=True, fold_batch_norm=True)
