"""Porting: real source graphs, saved in their real formats, converted through the CLI.

For each source, build the source model (TF-slim's resnet_v1, tf-keras' ResNet50, the seed-003
Keras architecture, a re-creation of TF official r1 on tf.compat.v1.layers, or the MSRA Caffe
blob layout with a numpy Caffe forward pass), randomise every weight including BN moving
statistics, save, convert with scripts/convert_checkpoint.py, restore into
`resnet_tf1.ResNet(**config["model"])` and compare logits to the source's: 1e-4 relative.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from peer_util import random_value, relative_error
from resnet_tf1 import checkpoints, restore
from resnet_tf1.porting import PortError, caffe, official
from resnet_tf1.porting import convert as convert_lib
from resnet_tf1.references import caffe as reference_caffe
from resnet_tf1.references import keras as keras_ref
from resnet_tf1.references import official_r1 as reference_official_r1
from resnet_tf1.references import slim as slim_ref

tf1 = tf.compat.v1
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOL = 1e-4
IMAGES = np.random.RandomState(0).uniform(-100, 100, (2, 224, 224, 3)).astype(np.float32)


def cli(*args):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "convert_checkpoint.py")]
                          + list(args), capture_output=True, text=True, env=env, timeout=600)


def convert_ok(*args):
    r = cli(*args)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def _randomise_and_save(graph_vars, sess, path, rng, v1=False):
    restore.assign(sess, [(v, random_value(v.op.name, v.shape.as_list(), rng))
                          for v in graph_vars])
    version = tf1.train.SaverDef.V1 if v1 else tf1.train.SaverDef.V2
    tf1.train.Saver(graph_vars, write_version=version).save(sess, path, write_meta_graph=False)


def slim_checkpoint(tmp, depth, v1, seed):
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [None, 224, 224, 3])
        logits, _ = slim_ref.logits(x, depth, 1000)
        tf1.train.get_or_create_global_step()
        with tf1.Session() as s:
            path = os.path.join(tmp, "resnet_v1_%d%s.ckpt" % (depth, "_v1" if v1 else ""))
            _randomise_and_save(tf1.global_variables(), s, path, np.random.RandomState(seed), v1)
            return path, s.run(logits, {x: IMAGES})


def ported_logits(out_dir):
    with open(os.path.join(out_dir, "config.json")) as f:
        config = json.load(f)
    return convert_lib.run_ported(out_dir, IMAGES), config


# The V1 checkpoint format is read by the same code at every depth: ResNet-101 runs in V2 only.
@pytest.mark.slow
@pytest.mark.parametrize("depth, v1", [(50, False), (50, True), (101, False)])
def test_slim(tmp_path, depth, v1):
    path, ref = slim_checkpoint(str(tmp_path), depth, v1, seed=depth + v1)
    out = str(tmp_path / "out")
    r = convert_ok("--source=slim", "--input=" + path, "--output=" + out,
                   *(["--verify"] if (depth, v1) == (50, True) else []))
    ours, config = ported_logits(out)
    err = relative_error(ours, ref)
    print("slim resnet_v1_%d %s: max relative logit difference %.3g" % (depth, "V1" if v1 else
                                                                        "V2", err))
    assert err < TOL
    assert config["model"]["variant"] == "slim" and config["model"]["depth"] == depth
    assert config["labels"] == "imagenet1000"
    assert config["source"]["skipped_training_state"] == ["global_step"]
    assert len(config["source"]["sha256"]) == 64
    assert sorted(os.listdir(out)) == ["checkpoint", "config.json",
                                       "model.ckpt.data-00000-of-00001", "model.ckpt.index"]
    if "--verify" in r.args:
        assert "verify against TF-slim's own nets.resnet_v1: max abs logit difference" in r.stdout
        assert "top-1 agreement 100%" in r.stdout


def keras_h5(tmp, model, name, rng):
    for layer in model.layers:
        names = [w.name for w in layer.weights]
        values = [random_value(n, w.shape, rng) for n, w in zip(names, layer.get_weights())]
        if values:
            layer.set_weights(values)
    path = os.path.join(tmp, name)
    model.save_weights(path)
    return path, model.predict(IMAGES, verbose=0)


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["keras", "keras2016"])
def test_keras(tmp_path, scheme):
    keras = keras_ref.tf_keras()
    if scheme == "keras":
        model = keras.applications.ResNet50(weights=None, classifier_activation=None)
    else:
        model = keras_ref.keras2016_resnet50()
    path, ref = keras_h5(str(tmp_path), model, scheme + ".h5", np.random.RandomState(7))
    out = str(tmp_path / "out")
    convert_ok("--source=keras", "--input=" + path, "--output=" + out, "--verify")
    ours, config = ported_logits(out)
    err = relative_error(ours, ref)
    print("keras %s ResNet50: max relative logit difference %.3g" % (scheme, err))
    assert err < TOL
    expected = {"keras": (1.001e-5, "symmetric"), "keras2016": (1e-3, "VALID")}[scheme]
    assert (config["model"]["bn_epsilon"], config["model"]["pool_padding"]) == expected
    assert config["model"]["conv_bias"] is True
    assert config["preprocessing"]["channel_order"] == "BGR"


def test_keras_port_is_sensitive_to_pool_padding(tmp_path):
    """Negative control: the same weights in a graph with TF 'SAME' pooling do not match."""
    keras = keras_ref.tf_keras()
    model = keras.applications.ResNet50(weights=None, classifier_activation=None)
    path, ref = keras_h5(str(tmp_path), model, "k.h5", np.random.RandomState(8))
    from resnet_tf1.porting import keras as keras_port
    result = keras_port.to_target(keras_port.read(path))
    config = dict(result.model, pool_padding="SAME")
    g = tf.Graph()
    with g.as_default():
        import resnet_tf1
        logits, _ = resnet_tf1.ResNet(**config)(tf.constant(IMAGES))
        with tf1.Session() as s:
            restore.load_arrays(s, result.arrays, tf1.global_variables())
            assert relative_error(s.run(logits), ref) > 100 * TOL


def test_official(tmp_path):
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [None, 224, 224, 3])
        logits = reference_official_r1.resnet_v1_official(x)
        tf1.train.get_or_create_global_step()
        names = [v.op.name for v in tf1.global_variables()]
        assert "resnet_model/conv2d_52/kernel" in names and "resnet_model/dense/kernel" in names
        with tf1.Session() as s:
            path = str(tmp_path / "model.ckpt-112603")
            _randomise_and_save(tf1.global_variables(), s, path, np.random.RandomState(9))
            ref = s.run(logits, {x: IMAGES})
    out = str(tmp_path / "out")
    r = convert_ok("--source=official", "--input=" + str(tmp_path), "--output=" + out, "--verify")
    assert "verify against official r1 resnet_model" in r.stdout, r.stdout
    assert "top-1 agreement 100%" in r.stdout
    ours, config = ported_logits(out)
    err = relative_error(ours, ref)
    print("official r1 ResNet-50: max relative logit difference %.3g" % err)
    assert err < TOL
    assert config["model"]["variant"] == "v1.5" and config["model"]["num_classes"] == 1001
    assert config["labels"] == "imagenet1001"


CAFFE_R50_UNITS = [["2a", "2b", "2c"], ["3a", "3b", "3c", "3d"],
                   ["4a", "4b", "4c", "4d", "4e", "4f"], ["5a", "5b", "5c"]]
CAFFE_R101_UNITS = [["2a", "2b", "2c"], ["3a", "3b1", "3b2", "3b3"],
                    ["4a"] + ["4b%d" % i for i in range(1, 23)], ["5a", "5b", "5c"]]


def caffe_blobs(units, rng, conv1_bias=True):
    """Blobs with the MSRA release's names and layouts ([out, in, kh, kw]; BN mean, var, factor)."""
    blobs = {}

    def conv_bn(conv, bn, scale, cin, cout, k, bias=False):
        blobs[conv + "/0"] = random_value("w", [k, k, cin, cout], rng).transpose(3, 2, 0, 1).copy()
        if bias:
            blobs[conv + "/1"] = rng.normal(0, 0.2, cout).astype(np.float32)
        factor = np.float32(rng.uniform(0.5, 2.0))
        blobs[bn + "/0"] = random_value("moving_mean", [cout], rng) * factor
        blobs[bn + "/1"] = random_value("moving_variance", [cout], rng) * factor
        blobs[bn + "/2"] = np.array([factor], np.float32)
        blobs[scale + "/0"] = random_value("gamma", [cout], rng)
        blobs[scale + "/1"] = random_value("beta", [cout], rng)

    conv_bn("conv1", "bn_conv1", "scale_conv1", 3, 64, 7, bias=conv1_bias)
    cin = 64
    for stage, names in enumerate(units):
        width = 64 * 2 ** stage
        for k, u in enumerate(names):
            br = u + "_branch"
            if k == 0:
                conv_bn("res%s1" % br, "bn%s1" % br, "scale%s1" % br, cin, 4 * width, 1)
            conv_bn("res%s2a" % br, "bn%s2a" % br, "scale%s2a" % br, cin, width, 1)
            conv_bn("res%s2b" % br, "bn%s2b" % br, "scale%s2b" % br, width, width, 3)
            conv_bn("res%s2c" % br, "bn%s2c" % br, "scale%s2c" % br, width, 4 * width, 1)
            cin = 4 * width
    blobs["fc1000/0"] = random_value("w", [2048, 1000], rng).T.copy()
    blobs["fc1000/1"] = rng.normal(0, 0.2, 1000).astype(np.float32)
    return blobs


def test_caffe_resnet50(tmp_path):
    blobs = caffe_blobs(CAFFE_R50_UNITS, np.random.RandomState(10))
    path = str(tmp_path / "ResNet-50.npz")
    np.savez(path, **blobs)
    bgr = IMAGES[:1]
    ref = reference_caffe.forward(blobs, bgr, CAFFE_R50_UNITS)
    out = str(tmp_path / "out")
    r = convert_ok("--source=caffe", "--input=" + path, "--output=" + out, "--verify")
    assert "verify against a numpy forward pass with Caffe's semantics" in r.stdout, r.stdout
    assert "top-1 agreement 100%" in r.stdout
    ours = convert_lib.run_ported(out, bgr)
    err = relative_error(ours, ref)
    print("caffe ResNet-50: max relative logit difference %.3g" % err)
    assert err < TOL
    config = convert_lib.load_config(out)
    assert config["preprocessing"]["channel_order"] == "BGR"


def test_official_depths_come_from_the_plan():
    # 1 stem conv + 3 per unit + 4 projections: ResNet-200 has 1 + 3 * 66 + 4 = 203 kernels.
    counts = {d: official._conv_count(d) for d in (50, 101, 152, 200)}
    assert counts == {50: 53, 101: 104, 152: 155, 200: 203}
    names = {"resnet_model/conv2d%s/kernel" % ("" if i == 0 else "_%d" % i): 0
             for i in range(203)}
    assert official.detect_depth(names) == 200


def test_caffe_resnet101_names():
    blobs = caffe_blobs(CAFFE_R101_UNITS, np.random.RandomState(11), conv1_bias=False)
    result = caffe.to_target(blobs)
    assert result.model["depth"] == 101
    assert "resnet101/block3/unit_23/bottleneck/conv3/weights" in result.arrays


def test_caffe_npz_with_pickles_is_refused(tmp_path):
    path = str(tmp_path / "evil.npz")
    np.savez(path, **{"conv1/0": np.array([{"a": 1}], dtype=object)})
    r = cli("--source=caffe", "--input=" + path, "--output=" + str(tmp_path / "o"))
    assert r.returncode == 1
    lines = [l for l in r.stderr.splitlines() if l.startswith("convert_checkpoint: error:")]
    assert len(lines) == 1 and "cannot be read as an .npz of Caffe blobs" in lines[0], r.stderr
    assert not os.path.exists(tmp_path / "o")


def test_leftover_and_missing_variables_are_listed():
    rng = np.random.RandomState(12)
    blobs = caffe_blobs(CAFFE_R50_UNITS, rng, conv1_bias=False)
    extra = dict(blobs, **{"res6a_branch2a/0": np.zeros((1, 1, 1, 1), np.float32)})
    with pytest.raises(PortError, match="map to nothing.*res6a_branch2a/0"):
        caffe.to_target(extra, depth=50)
    missing = dict(blobs)
    del missing["scale3b_branch2b/1"]
    with pytest.raises(PortError, match="no variable 'scale3b_branch2b/1'"):
        caffe.to_target(missing)


def test_misshaped_source_names_both_shapes(tmp_path):
    blobs = caffe_blobs(CAFFE_R50_UNITS, np.random.RandomState(13), conv1_bias=False)
    blobs["fc1000/0"] = blobs["fc1000/0"][:, :1024].copy()  # a classifier on 1024 features
    result = caffe.to_target(blobs)
    out = tmp_path / "out"
    with pytest.raises(checkpoints.CheckpointError,
                       match=r"resnet50/logits/weights: source \[1024, 1000\] vs graph "
                             r"\[2048, 1000\]"):
        convert_lib.write(result, str(out), "caffe", "ResNet-50.npz")
    assert not out.exists() and os.listdir(tmp_path) == []  # nothing half-written


def test_damaged_file_gets_one_clear_line(tmp_path):
    bad = tmp_path / "resnet_v1_50.ckpt"
    bad.write_bytes(b"not a checkpoint" * 100)
    r = cli("--source=slim", "--input=" + str(bad), "--output=" + str(tmp_path / "o"))
    assert r.returncode == 1
    lines = [l for l in r.stderr.splitlines() if l.startswith("convert_checkpoint: error:")]
    assert len(lines) == 1 and str(bad) in lines[0]
    h5 = tmp_path / "w.h5"
    h5.write_bytes(b"\x89HDF\r\n" + b"0" * 100)
    r = cli("--source=keras", "--input=" + str(h5), "--output=" + str(tmp_path / "o"))
    assert r.returncode == 1 and "cannot be read as HDF5" in r.stderr
    assert not os.path.exists(tmp_path / "o")


def test_strict_restore_lists_missing_unexpected_and_misshaped(tmp_path):
    import resnet_tf1
    g = tf.Graph()
    with g.as_default():
        resnet_tf1.CifarResNet20()(tf1.placeholder(tf.float32, [None, 32, 32, 3]))
        extra = tf1.get_variable("not_in_model", [3])
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            tf1.train.Saver().save(s, str(tmp_path / "a.ckpt"))
    g = tf.Graph()
    with g.as_default():
        resnet_tf1.ResNet(20, num_classes=5)(tf1.placeholder(tf.float32, [None, 32, 32, 3]))
        with pytest.raises(checkpoints.CheckpointError) as e:
            restore.Restorer(str(tmp_path / "a.ckpt"))
        msg = str(e.value)
        assert "unexpected in the checkpoint (1): not_in_model" in msg
        assert "mis-shaped (2): cifar_resnet20/logits/biases: checkpoint [10] vs graph [5]" in msg
        r = restore.Restorer(str(tmp_path / "a.ckpt"), exclude_scopes=["cifar_resnet20/logits",
                                                                       "not_in_model"])
        assert "excluded" in r.summary() and len(r.excluded) == 2
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            r.restore(s)
    del extra
