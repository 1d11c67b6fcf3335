"""Independent references for the conventions a one-line bug breaks silently (issue 36).

Every test here compares this project's code with something that shares no code with it and no
number it recorded itself (no golden file):

  - each recorded input convention end to end: an image *file* through `predict.py` and through
    both signatures of the SavedModel export, against the source's own network fed the array
    preprocessed in the source's own convention, written here from the source's documentation
    (BGR minus the MSRA mean for Caffe, Keras' own `preprocess_input`, RGB minus the VGG means
    for TF-slim, RGB / 255 with the ImageNet mean and std for torchvision-style checkpoints, the
    per-pixel mean of the raw CIFAR-10 files);
  - the ImageNet evaluation geometry against numpy (bilinear with half-pixel centres, the
    definition `tf.image.resize` documents; centre crop; no flip);
  - BN folding against its float64 closed form where epsilon matters (variances of the order of
    epsilon), for every epsilon the sources use;
  - the CIFAR ResNet with the paper's option A against a numpy forward pass written from the
    paper (stride-2 subsampling, zero channels appended), in the same regime, with the paper's
    epsilon, unfolded and folded;
  - the epsilon each port records against the source framework's own network built with its own
    defaults, in that regime.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import test_porting
from peer_util import random_value, relative_error
from resnet_tf1 import export as export_lib
from resnet_tf1 import fold_bn, restore, rundir, run_config, serving, train_lib
from resnet_tf1.data import cifar10, imagenet, preprocessing
from resnet_tf1.model import ResNet
from resnet_tf1.porting import convert as convert_lib
from resnet_tf1.references import caffe as caffe_ref
from resnet_tf1.references import keras as keras_ref
from resnet_tf1.references import official_r1 as reference_official_r1
from resnet_tf1.references import slim as slim_ref

tf1 = tf.compat.v1
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The sources' input conventions, from their own documentation (not read from this package).
CAFFE_MEAN_BGR = [103.0626238, 115.90288257, 123.15163084]  # ResNet_mean.binaryproto's averages
VGG_MEAN_RGB = [123.68, 116.78, 103.94]  # TF-slim vgg_preprocessing _R_MEAN, _G_MEAN, _B_MEAN
TORCH_MEAN, TORCH_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]  # torchvision, RGB / 255
PAPER_EPSILON = 1e-5  # Caffe's BatchNorm default, the paper's models
# Served probabilities against the reference's (ports agree to 1e-4 of the largest logit).
PROB_TOL = 5e-4


def picture(h, w, seed=0):
    """uint8 RGB that no channel permutation or mirror leaves unchanged: red rises left to
    right, green top to bottom, blue is a texture with a bright patch at the top left."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    rng = np.random.RandomState(seed)
    red = 255 * x / (w - 1)
    green = 255 * y / (h - 1)
    blue = 60 + 40 * np.sin(x / 7.0) * np.cos(y / 5.0) + rng.uniform(0, 30, (h, w))
    blue[:h // 4, :w // 4] = 250
    return np.clip(np.stack([red, green, blue], -1), 0, 255).round().astype(np.uint8)


def resize_bilinear(image, out_h, out_w):
    """numpy bilinear resize, half-pixel centres, no antialiasing (float64)."""
    def axis(n_in, n_out):
        src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        lo = np.floor(src).astype(int)
        return lo, np.minimum(lo + 1, n_in - 1), src - lo

    image = np.asarray(image, np.float64)
    lo, hi, f = axis(image.shape[0], out_h)
    image = image[lo] * (1 - f)[:, None, None] + image[hi] * f[:, None, None]
    lo, hi, f = axis(image.shape[1], out_w)
    return image[:, lo] * (1 - f)[None, :, None] + image[:, hi] * f[None, :, None]


def eval_geometry(rgb, shorter, crop):
    """The ImageNet evaluation geometry in numpy: shorter side to `shorter`, centre crop."""
    h, w = rgb.shape[:2]
    scale = shorter / min(h, w)
    nh, nw = int(round(h * scale)), int(round(w * scale))
    image = resize_bilinear(rgb, nh, nw)
    top, left = (nh - crop) // 2, (nw - crop) // 2
    return image[top:top + crop, left:left + crop]


def softmax(logits):
    z = np.exp(logits - logits.max())
    return z / z.sum()


def png(directory, rgb, name="picture.png"):
    path = os.path.join(str(directory), name)
    Image.fromarray(rgb).save(path)
    return path, np.asarray(Image.open(path).convert("RGB"))  # decoded by PIL, not TF


def run(script, *args):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", script)] + list(args),
                          capture_output=True, text=True, env=env, timeout=900)


def assert_served_like(model_dir, image_path, pixels, want, tmp_path, signatures=True):
    """`predict.py --json` on the file, and (with `signatures`) the SavedModel's `image_bytes`
    on its bytes and `serving_default` on the reference's RGB `pixels`, give the reference
    probabilities `want`."""
    r = run("predict.py", "--model_dir=" + str(model_dir), "--json", "--top_k=5", image_path)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])["predictions"]
    classes = [p["class"] for p in got]
    assert classes[0] == int(np.argmax(want)), (classes, np.argsort(want)[::-1][:5])
    np.testing.assert_allclose([p["probability"] for p in got], want[classes], atol=PROB_TOL)
    if not signatures:
        return
    out = str(tmp_path / "export")
    export_lib.export(serving.load(str(model_dir)), out, "saved_model")
    with open(image_path, "rb") as f:
        encoded = f.read()
    with tf.Graph().as_default(), tf1.Session() as s:
        meta = tf1.saved_model.loader.load(s, ["serve"], out)
        for name, value in (("image_bytes", np.array([encoded], dtype=object)),
                            ("serving_default", pixels[None].astype(np.float32))):
            sig = meta.signature_def[name]
            (feed,) = sig.inputs.values()
            probs = s.run(sig.outputs["probabilities"].name, {feed.name: value})[0]
            np.testing.assert_allclose(probs, want, atol=PROB_TOL, err_msg=name)


def _moderate(logits):
    """The factor that gives `logits` a standard deviation of 2 (probabilities that are not one
    hot, so every input difference shows)."""
    return 2.0 / float(np.std(logits))


# ---- each recorded input convention, end to end ------------------------------------------------

@pytest.mark.slow
def test_caffe_bgr_and_mean_through_predict_and_export(tmp_path):
    blobs = test_porting.caffe_blobs(test_porting.CAFFE_R50_UNITS, np.random.RandomState(3),
                                     conv1_bias=False)
    path, rgb = png(tmp_path, picture(280, 330))
    pixels = eval_geometry(rgb, 256, 224)
    bgr = (pixels[..., ::-1] - CAFFE_MEAN_BGR)[None].astype(np.float32)
    logits = caffe_ref.forward(blobs, bgr, test_porting.CAFFE_R50_UNITS)[0].astype(np.float64)
    f = _moderate(logits)
    # fc1000 is linear: scaling its weights and bias by f scales the logits by f.
    blobs["fc1000/0"] = blobs["fc1000/0"] * np.float32(f)
    blobs["fc1000/1"] = blobs["fc1000/1"] * np.float32(f)
    want = softmax(logits * np.float32(f))
    assert want.max() < 0.5, want.max()
    np.savez(str(tmp_path / "ResNet-50.npz"), **blobs)
    convert_lib.convert("caffe", str(tmp_path / "ResNet-50.npz"), str(tmp_path / "ported"))
    assert_served_like(tmp_path / "ported", path, pixels, want, tmp_path)


@pytest.mark.slow
def test_keras_preprocess_input_through_predict_and_export(tmp_path):
    keras = keras_ref.tf_keras()
    model = keras.applications.ResNet50(weights=None, classifier_activation=None)
    rng = np.random.RandomState(4)
    for layer in model.layers:
        values = [random_value(w.name, w.shape, rng) for w in layer.weights]
        if values:
            layer.set_weights(values)
    path, rgb = png(tmp_path, picture(300, 260, seed=1))
    pixels = eval_geometry(rgb, 256, 224)

    def logits():  # Keras' own convention: resnet50.preprocess_input ("caffe" mode)
        x = keras.applications.resnet50.preprocess_input(pixels[None].astype(np.float32).copy())
        return model.predict(x, verbose=0)[0].astype(np.float64)

    dense = model.get_layer("predictions")
    f = _moderate(logits())
    dense.set_weights([w * np.float32(f) for w in dense.get_weights()])
    want = softmax(logits())
    assert want.max() < 0.5, want.max()
    model.save_weights(str(tmp_path / "keras.h5"))
    convert_lib.convert("keras", str(tmp_path / "keras.h5"), str(tmp_path / "ported"))
    assert_served_like(tmp_path / "ported", path, pixels, want, tmp_path, signatures=False)


@pytest.mark.slow
def test_slim_rgb_and_mean_through_predict(tmp_path):
    path, rgb = png(tmp_path, picture(256, 256, seed=2))
    pixels = eval_geometry(rgb, 256, 224)
    x_in = (pixels - VGG_MEAN_RGB)[None].astype(np.float32)  # vgg_preprocessing, RGB
    with tf.Graph().as_default():
        x = tf1.placeholder(tf.float32, [None, 224, 224, 3])
        logits, _ = slim_ref.logits(x, 50, 1000)
        variables = tf1.global_variables()
        with tf1.Session() as s:
            rng = np.random.RandomState(5)
            restore.assign(s, [(v, random_value(v.op.name, v.shape.as_list(), rng))
                               for v in variables])
            head = [v for v in variables if v.op.name.startswith("resnet_v1_50/logits/")]
            f = _moderate(s.run(logits, {x: x_in}))
            restore.assign(s, [(v, s.run(v) * np.float32(f)) for v in head])
            want = softmax(s.run(logits, {x: x_in})[0].astype(np.float64))
            tf1.train.Saver(variables).save(s, str(tmp_path / "resnet_v1_50.ckpt"),
                                            write_meta_graph=False)
    assert want.max() < 0.5, want.max()
    convert_lib.convert("slim", str(tmp_path / "resnet_v1_50.ckpt"), str(tmp_path / "ported"))
    assert_served_like(tmp_path / "ported", path, pixels, want, tmp_path, signatures=False)


def test_rgb_mean_and_std_in_0_to_1_through_predict(tmp_path):
    """torchvision's convention (RGB / 255, minus the ImageNet mean, over its std) recorded on a
    converted checkpoint. The network is this package's own (no torchvision here): what is
    independent is the preprocessing, numpy from torchvision's documentation."""
    import test_serving
    rec = preprocessing.record("RGB", TORCH_MEAN, std=TORCH_STD, scale=1.0,
                               resize_shorter_side=72, crop=64)
    kwargs = dict(depth=18, num_classes=1000)
    model = ResNet(**kwargs)
    rng = np.random.RandomState(6)
    arrays = {n: (random_value(n, a.shape, rng) if n.endswith("/weights") else a)
              for n, a in test_serving.random_weights(model, 64, rng).items()}
    path, rgb = png(tmp_path, picture(90, 80, seed=3))
    pixels = eval_geometry(rgb, 72, 64)
    x_in = ((pixels / 255.0 - TORCH_MEAN) / TORCH_STD)[None].astype(np.float32)
    with tf.Graph().as_default():
        x = tf1.placeholder(tf.float32, [None, 64, 64, 3])
        logits, _ = model(x)
        with tf1.Session() as s:
            restore.load_arrays(s, arrays, tf1.get_collection(tf1.GraphKeys.MODEL_VARIABLES))
            logits = s.run(logits, {x: x_in})[0].astype(np.float64)
    f = _moderate(logits)  # the logits layer is linear: its weights and bias scale them
    for name in ("resnet18/logits/weights", "resnet18/logits/biases"):
        arrays[name] = arrays[name] * np.float32(f)
    want = softmax(logits * np.float32(f))
    assert want.max() < 0.5, want.max()
    model_dir = str(tmp_path / "model")
    test_serving.write_converted(model_dir, kwargs, "imagenet1000", rec, arrays=arrays)
    assert_served_like(model_dir, path, pixels, want, tmp_path, signatures=False)


def test_cifar_per_pixel_mean_of_the_raw_files_through_predict(cifar_dir, tmp_path):
    model_dir = tmp_path / "run"
    train_lib.train(run_config.RunParams(
        model_dir=str(model_dir), dataset="cifar10", data_dir=cifar_dir, depth=20,
        batch_size=16, max_steps=3, lr_boundaries=(), recompute_bn_batches=0, seed=1))
    raw = np.concatenate([np.fromfile(os.path.join(cifar_dir, cifar10.SUBDIR, f), np.uint8)
                          .reshape(-1, 3073) for f in cifar10.TRAIN_FILES])
    mean = raw[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).astype(np.float64).mean(0)
    path, rgb = png(tmp_path, picture(32, 32, seed=4))
    with tf.Graph().as_default():
        x = tf1.placeholder(tf.float32, [None, 32, 32, 3])
        logits, _ = ResNet(depth=20, num_classes=10)(x)
        with tf1.Session() as s:
            ckpt = rundir.checkpoint(str(model_dir))
            restore.Restorer(ckpt.prefix, tf1.get_collection(tf1.GraphKeys.MODEL_VARIABLES),
                             arrays=ckpt.arrays).restore(s)
            want = softmax(s.run(logits, {x: (rgb - mean)[None].astype(np.float32)})[0]
                           .astype(np.float64))
    assert_served_like(model_dir, path, rgb, want, tmp_path, signatures=False)


def test_imagenet_evaluation_pipeline_against_numpy():
    """Shorter side 256 (bilinear, half-pixel centres), centre 224 crop, no flip, RGB minus the
    channel means: `imagenet.eval_preprocess`, which evaluation, predict and export share."""
    for h, w in ((280, 330), (331, 257), (256, 256), (500, 300)):
        rgb = picture(h, w, seed=h)
        with tf.Graph().as_default(), tf1.Session() as s:
            got = s.run(imagenet.eval_preprocess(tf.constant(rgb)))
        want = eval_geometry(rgb, 256, 224) - VGG_MEAN_RGB
        np.testing.assert_allclose(got, want, atol=2e-3, err_msg="%dx%d" % (h, w))
        assert np.abs(got - want[:, ::-1]).max() > 50  # a mirror would show


# ---- BN folding where epsilon matters ---------------------------------------------------------

@pytest.mark.parametrize("epsilon", [1e-5, 1.001e-5, 1e-3])  # Caffe/slim/torch, Keras, Keras 2016
def test_folding_is_the_float64_closed_form_where_epsilon_matters(epsilon):
    rng = np.random.RandomState(7)
    c = 16
    variance = epsilon * rng.uniform(0.0, 3.0, c)
    variance[0] = 0.0  # a dead channel: its scale is gamma / sqrt(epsilon)
    arrays = {"net/conv/weights": rng.normal(0, 1, (3, 3, 8, c)),
              "net/conv/biases": rng.normal(0, 0.1, c),
              "net/conv/BatchNorm/gamma": rng.uniform(0.5, 1.5, c),
              "net/conv/BatchNorm/beta": rng.normal(0, 0.3, c),
              "net/conv/BatchNorm/moving_mean": rng.normal(0, 0.01, c),
              "net/conv/BatchNorm/moving_variance": variance}
    arrays = {n: a.astype(np.float32) for n, a in arrays.items()}
    folded = fold_bn.fold(arrays, epsilon)
    a = {n: v.astype(np.float64) for n, v in arrays.items()}
    variance = a["net/conv/BatchNorm/moving_variance"]
    scale = a["net/conv/BatchNorm/gamma"] / np.sqrt(variance + epsilon)
    np.testing.assert_allclose(folded["net/conv/weights"], a["net/conv/weights"] * scale,
                               rtol=1.2e-7)
    np.testing.assert_allclose(
        folded["net/conv/biases"],
        (a["net/conv/biases"] - a["net/conv/BatchNorm/moving_mean"]) * scale
        + a["net/conv/BatchNorm/beta"], rtol=1.2e-7, atol=1e-7)


# ---- option A and the default epsilon, against a numpy CIFAR ResNet ----------------------------

def numpy_cifar_resnet(arrays, scope, n, images, epsilon):
    """The paper's CIFAR ResNet-(6n+2) with option A, in numpy (NCHW, float64): 3x3 convs
    padded 1 on every side; 16, 32, 64 filters; the first unit of stages 2 and 3 strides 2 and
    its shortcut takes every second pixel and appends zero channels; global average pooling and
    a fully connected layer. Weights by checkpoint name (HWIO kernels)."""
    def conv(x, name, stride):
        w = arrays[name + "/weights"].astype(np.float64).transpose(3, 2, 0, 1)
        return caffe_ref.conv(x, w, stride=stride, pad=1)

    def bn(x, name):
        g, b, m, v = (arrays["%s/BatchNorm/%s" % (name, p)].astype(np.float64)[None, :, None, None]
                      for p in ("gamma", "beta", "moving_mean", "moving_variance"))
        return g * (x - m) / np.sqrt(v + epsilon) + b

    def relu(t):
        return np.maximum(t, 0)

    x = np.asarray(images, np.float64).transpose(0, 3, 1, 2)
    x = relu(bn(conv(x, scope + "/conv1", 1), scope + "/conv1"))
    for stage in range(3):
        for i in range(n):
            unit = "%s/block%d/unit_%d/basic" % (scope, stage + 1, i + 1)
            stride = 2 if stage and not i else 1
            h = relu(bn(conv(x, unit + "/conv1", stride), unit + "/conv1"))
            h = bn(conv(h, unit + "/conv2", 1), unit + "/conv2")
            shortcut = x[:, :, ::stride, ::stride]
            extra = h.shape[1] - shortcut.shape[1]
            shortcut = np.concatenate([shortcut, np.zeros((shortcut.shape[0], extra) +
                                                          shortcut.shape[2:])], axis=1)
            x = relu(h + shortcut)
    pooled = x.mean(axis=(2, 3))
    return pooled @ arrays[scope + "/logits/weights"] + arrays[scope + "/logits/biases"]


def epsilon_regime_weights(model, size, rng, kernel_scale=3e-3):
    """{name: array} for `model` with BN variances of the order of the paper's epsilon: every
    conv's output has a standard deviation of ~3e-3 (kernels scaled), the moving variances are
    1e-5 x U(0.3, 3) and the means ~3e-3, so sqrt(variance + epsilon) depends on epsilon."""
    with tf.Graph().as_default():
        model(tf1.placeholder(tf.float32, [None, size, size, 3]))
        variables = tf1.get_collection(tf1.GraphKeys.MODEL_VARIABLES)
        shapes = {v.op.name: v.shape.as_list() for v in variables}
    out = {}
    for name, shape in shapes.items():
        leaf = name.split("/")[-1]
        if leaf == "moving_variance":
            out[name] = PAPER_EPSILON * rng.uniform(0.3, 3.0, shape)
        elif leaf == "moving_mean":
            out[name] = rng.normal(0, 3e-3, shape)
        elif leaf == "weights" and len(shape) == 4:
            first = name.endswith("/conv1/weights") and name.count("/") == 2
            out[name] = random_value(name, shape, rng) * (kernel_scale / (60.0 if first else 1))
        else:
            out[name] = random_value(name, shape, rng)
    return {n: a.astype(np.float32) for n, a in out.items()}


@pytest.mark.parametrize("fold", [False, True])
def test_option_a_and_the_default_epsilon_against_a_numpy_cifar_resnet(fold):
    model = ResNet(depth=20, num_classes=10)  # the defaults: option A, epsilon
    assert model.resolve(32)["shortcut"] == "A"
    rng = np.random.RandomState(8)
    arrays = epsilon_regime_weights(model, 32, rng)
    images = rng.uniform(-120, 130, (2, 32, 32, 3)).astype(np.float32)
    want = numpy_cifar_resnet(arrays, "cifar_resnet20", 3, images, PAPER_EPSILON)
    with tf.Graph().as_default():
        x = tf1.placeholder(tf.float32, [None, 32, 32, 3])
        logits, _ = model(x, fold_batch_norm=fold)
        with tf1.Session() as s:
            restore.load_arrays(s, fold_bn.fold(arrays, model.bn_epsilon) if fold else arrays,
                                tf1.get_collection(tf1.GraphKeys.MODEL_VARIABLES))
            got = s.run(logits, {x: images})
    err = relative_error(got, want)
    # The regime is live: the same network with TF's floor (1.001e-5) instead of the paper's
    # epsilon is 30x the tolerance away.
    off = relative_error(numpy_cifar_resnet(arrays, "cifar_resnet20", 3, images, 1.001e-5), want)
    print("option A, epsilon %g%s: relative logit error %.3g (epsilon 1.001e-5 instead: %.3g)"
          % (model.bn_epsilon, " folded" if fold else "", err, off))
    assert off > 1e-4, off
    assert err < 1e-5, err


def _tf_source_in_epsilon_regime(build, first_conv, path, images, rng):
    """Builds a TF source network (`build(x)` -> logits) with its own defaults, gives it
    weights in the epsilon regime (`epsilon_regime_weights`), saves it to `path`; its logits."""
    with tf.Graph().as_default():
        x = tf1.placeholder(tf.float32, [None, 224, 224, 3])
        logits = build(x)
        variables = tf1.global_variables()
        with tf1.Session() as s:
            values = []
            for v in variables:
                leaf, shape = v.op.name.split("/")[-1], v.shape.as_list()
                if leaf == "moving_variance":
                    value = PAPER_EPSILON * rng.uniform(0.3, 3.0, shape)
                elif leaf == "moving_mean":
                    value = rng.normal(0, 3e-3, shape)
                elif len(shape) == 4 and "logits" not in v.op.name:
                    value = random_value(v.op.name, shape, rng) * (
                        3e-3 / (60.0 if v.op.name == first_conv else 1))
                else:
                    value = random_value(v.op.name, shape, rng)
                values.append((v, np.asarray(value, np.float32)))
            restore.assign(s, values)
            want = s.run(logits, {x: images})
            tf1.train.Saver(variables).save(s, path, write_meta_graph=False)
    return want


@pytest.mark.slow
@pytest.mark.parametrize("source", ["slim", "official", "caffe"])
def test_each_port_computes_with_its_sources_epsilon(source, tmp_path):
    """The source's own network, built with its own defaults (TF-slim's resnet_v1 under its
    arg_scope, the official r1 model on tf.compat.v1.layers, the numpy Caffe pass with Caffe's
    1e-5), with BN variances of the order of epsilon, against the port at the epsilon it
    records (1e-5 for all three: neither TF-slim's nor Keras' batch norm takes TF's fused-op
    floor at that epsilon)."""
    rng = np.random.RandomState(9)
    images = rng.uniform(-100, 100, (1, 224, 224, 3)).astype(np.float32)
    if source == "slim":
        path = str(tmp_path / "resnet_v1_50.ckpt")
        want = _tf_source_in_epsilon_regime(lambda x: slim_ref.logits(x, 50, 1000)[0],
                                            "resnet_v1_50/conv1/weights", path, images, rng)
    elif source == "official":
        path = str(tmp_path / "model.ckpt-112603")

        def build(x):
            logits = reference_official_r1.resnet_v1_official(x)
            tf1.train.get_or_create_global_step()
            return logits
        want = _tf_source_in_epsilon_regime(build, "resnet_model/conv2d/kernel", path, images,
                                            rng)
        path = str(tmp_path)
    else:
        blobs = test_porting.caffe_blobs(test_porting.CAFFE_R50_UNITS, rng, conv1_bias=False)
        for name in list(blobs):
            if name.startswith("bn") and name.endswith("/1"):  # variance x the factor blob
                factor = blobs[name[:-2] + "/2"][0]
                shape = blobs[name].shape
                blobs[name] = (PAPER_EPSILON * rng.uniform(0.3, 3.0, shape) * factor)
                blobs[name[:-2] + "/0"] = rng.normal(0, 3e-3, shape) * factor
            elif name.startswith(("res", "conv1")) and name.endswith("/0"):
                blobs[name] = blobs[name] * (3e-3 / (60.0 if name == "conv1/0" else 1))
        blobs = {n: np.asarray(a, np.float32) for n, a in blobs.items()}
        images = images[..., ::-1].copy()  # Caffe's BGR; the port is fed the same
        want = caffe_ref.forward(blobs, images, test_porting.CAFFE_R50_UNITS)
        path = str(tmp_path / "ResNet-50.npz")
        np.savez(path, **blobs)
    convert_lib.convert(source, path, str(tmp_path / "ported"))
    got = convert_lib.run_ported(str(tmp_path / "ported"), images)
    err = relative_error(got, want)
    epsilon = convert_lib.load_config(str(tmp_path / "ported"))["model"]["bn_epsilon"]
    print("%s port at epsilon %g: relative logit error %.3g" % (source, epsilon, err))
    assert err < 1e-5, err
