"""Convert a source checkpoint into `DIR/model.ckpt` + `DIR/config.json`, and verify the port."""

import hashlib
import json
import os
import shutil
import tempfile
import time

import numpy as np
import tensorflow as tf

from resnet_tf1 import model as model_lib
from resnet_tf1 import restore
from resnet_tf1.porting import caffe, keras, official, slim, tf_checkpoint
from resnet_tf1.porting.common import PortError

tf1 = tf.compat.v1

_MODULES = {"slim": slim, "official": official, "keras": keras, "caffe": caffe}
_READERS = {"slim": tf_checkpoint.read, "official": tf_checkpoint.read, "keras": keras.read,
            "caffe": caffe.read}


def read_source(source, path):
    if source not in _MODULES:
        raise PortError("unknown source %r: expected one of %s" % (source, ", ".join(_MODULES)))
    if not os.path.exists(path) and source in ("keras", "caffe"):
        raise PortError("%s file %s not found" % (source, path))
    return _READERS[source](path)


def port(source, arrays, depth=None, num_classes=None):
    kwargs = {"num_classes": num_classes}
    if source != "keras":
        kwargs["depth"] = depth
    return _MODULES[source].to_target(arrays, **kwargs)


def _source_files(source, path):
    if source in ("keras", "caffe"):
        return [path]
    prefix = tf_checkpoint.resolve_path(path)
    if os.path.exists(prefix) and not os.path.isdir(prefix):
        return [prefix]  # V1 single file
    d, base = os.path.split(prefix)
    return sorted(os.path.join(d or ".", f) for f in os.listdir(d or ".")
                  if f == base + ".index" or f.startswith(base + ".data-"))


def sha256(files):
    h = hashlib.sha256()
    for f in files:
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def write(result, output_dir, source, input_path, overwrite=False):
    """Writes the ported arrays as a V2 checkpoint plus config.json, atomically (tmp + rename)."""
    output_dir = os.path.abspath(output_dir)
    if os.path.exists(output_dir) and os.listdir(output_dir) and not overwrite:
        raise PortError("output directory %s exists and is not empty (pass --overwrite)"
                        % output_dir)
    parent = os.path.dirname(output_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".%s.tmp-" % os.path.basename(output_dir), dir=parent)
    try:
        graph = tf.Graph()
        with graph.as_default():
            model = model_lib.ResNet(**result.model)
            model(tf1.placeholder(tf.float32, [None, 224, 224, 3]))
            var_list = tf1.get_collection(tf1.GraphKeys.MODEL_VARIABLES)
            saver = tf1.train.Saver(var_list=var_list, save_relative_paths=True)
            with tf1.Session() as sess:
                restore.load_arrays(sess, result.arrays, var_list)
                saver.save(sess, os.path.join(tmp, "model.ckpt"), write_meta_graph=False)
        config = {
            "model": result.model,
            "preprocessing": result.preprocessing,
            "labels": result.labels,
            "source": {"format": source, "path": os.path.abspath(input_path),
                       "sha256": sha256(_source_files(source, input_path)),
                       "skipped_training_state": result.skipped},
            "tensorflow_version": tf.__version__,
        }
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump(config, f, indent=2, sort_keys=True)
            f.write("\n")
        if os.path.exists(output_dir):
            old = output_dir + ".old-%d" % os.getpid()
            os.rename(output_dir, old)
            os.rename(tmp, output_dir)
            shutil.rmtree(old)
        else:
            os.rename(tmp, output_dir)
        return config
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)


def convert(source, input_path, output_dir, depth=None, num_classes=None, overwrite=False):
    """Reads, ports and writes; returns (config, seconds)."""
    start = time.time()
    arrays = read_source(source, input_path)
    result = port(source, arrays, depth=depth, num_classes=num_classes)
    config = write(result, output_dir, source, input_path, overwrite=overwrite)
    return config, time.time() - start


def load_config(output_dir):
    with open(os.path.join(output_dir, "config.json")) as f:
        return json.load(f)


def run_ported(output_dir, images):
    """Logits of the converted checkpoint in `output_dir` on NHWC float32 `images`."""
    config = load_config(output_dir)
    graph = tf.Graph()
    with graph.as_default():
        x = tf1.placeholder(tf.float32, [None] + list(images.shape[1:]))
        logits, _ = model_lib.ResNet(**config["model"])(x)
        restorer = restore.Restorer(os.path.join(output_dir, "model.ckpt"))
        with tf1.Session() as sess:
            restorer.restore(sess)
            return sess.run(logits, {x: images})


def run_source(source, input_path, images):
    """Logits of the source framework's own model on `images` (slim and keras only)."""
    from resnet_tf1 import peers
    if source == "slim":
        tf_slim, resnet_v1 = peers.slim_resnet_v1()
        depth = slim.detect_depth(tf_checkpoint.read(input_path))
        graph = tf.Graph()
        with graph.as_default():
            x = tf1.placeholder(tf.float32, [None] + list(images.shape[1:]))
            with tf_slim.arg_scope(resnet_v1.resnet_arg_scope()):
                net = getattr(resnet_v1, "resnet_v1_%d" % depth)
                logits, _ = net(x, num_classes=_slim_classes(input_path, depth),
                                is_training=False)
            saver = tf1.train.Saver()
            with tf1.Session() as sess:
                saver.restore(sess, tf_checkpoint.resolve_path(input_path))
                return sess.run(logits, {x: images}).reshape(len(images), -1)
    if source == "keras":
        keras_mod = peers.tf_keras()
        arrays = keras.read(input_path)
        scheme = keras.detect_scheme(arrays)
        classes = int(arrays[("predictions" if scheme == "keras" else "fc1000") + "/0"].shape[-1])
        if scheme == "keras2016":
            model = peers.keras2016_resnet50(classes)
        else:
            depth = keras.detect_depth(arrays, scheme)
            build = getattr(keras_mod.applications, "ResNet%d" % depth)
            model = build(weights=None, classes=classes, classifier_activation=None)
        model.load_weights(input_path)
        return model.predict(images, verbose=0)
    raise PortError("--verify needs the source framework, which for %r is not installable "
                    "here (only slim and keras can be verified)" % source)


def _slim_classes(input_path, depth):
    shape = dict(tf.train.list_variables(tf_checkpoint.resolve_path(input_path)))[
        "resnet_v1_%d/logits/weights" % depth]
    return shape[-1]


def verify(source, input_path, output_dir, batch=2, seed=0):
    """Runs the source model and the port on one fixed batch; returns the differences."""
    rng = np.random.RandomState(seed)
    images = rng.uniform(-100.0, 100.0, (batch, 224, 224, 3)).astype(np.float32)
    ours = run_ported(output_dir, images).astype(np.float64)
    ref = run_source(source, input_path, images).astype(np.float64)
    diff = np.abs(ours - ref)
    return {"max_abs": float(diff.max()),
            "max_rel": float(diff.max() / np.abs(ref).max()),
            "top1_agreement": float(np.mean(ours.argmax(-1) == ref.argmax(-1)))}
