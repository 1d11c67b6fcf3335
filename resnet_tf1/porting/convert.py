"""Convert a source checkpoint into `DIR/model.ckpt` + `DIR/config.json`, and verify the port."""

import hashlib
import json
import os
import time

import numpy as np
import tensorflow as tf

from resnet_tf1 import fileio
from resnet_tf1 import model as model_lib
from resnet_tf1 import restore, rundir
from resnet_tf1.porting import PortError, source_format

tf1 = tf.compat.v1


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
    _check_output(output_dir, overwrite)
    with fileio.atomic_dir(output_dir, "conversion") as tmp:
        graph = tf.Graph()
        with graph.as_default():
            model = model_lib.ResNet(**result.model)
            model(tf1.placeholder(tf.float32, [None, 224, 224, 3]))
            var_list = tf1.get_collection(tf1.GraphKeys.MODEL_VARIABLES)
            saver = tf1.train.Saver(var_list=var_list, save_relative_paths=True)
            with tf1.Session() as sess:
                restore.load_arrays(sess, result.arrays, var_list)
                saver.save(sess, os.path.join(tmp, rundir.CHECKPOINT_NAME),
                           write_meta_graph=False)
        config = {
            "model": result.model,
            "preprocessing": result.preprocessing,
            "labels": result.labels,
            "source": {"format": source, "path": os.path.abspath(input_path),
                       "sha256": sha256(source_format(source).source_files(input_path)),
                       "skipped_training_state": result.skipped},
            "tensorflow_version": tf.__version__,
        }
        if result.extra:
            config["source"].update(result.extra)
        rundir.write_converted_record(tmp, config)
    return config


def is_converter_output(directory):
    """True for a directory this converter wrote: its config.json has a "source" entry."""
    try:
        with open(os.path.join(directory, rundir.CONVERTED_RECORD)) as f:
            return isinstance(json.load(f).get("source"), dict)
    except (OSError, ValueError, AttributeError):
        return False


def _check_output(output_dir, overwrite):
    """PortError unless `output_dir` may be written: absent, an empty directory, or (with
    overwrite) a directory this converter wrote. Anything else is never deleted. An
    interrupted earlier conversion into it is completed first (`fileio.recover_dir`), so the
    check sees what is really there."""
    fileio.recover_dir(output_dir, "conversion")
    problem = fileio.output_dir_problem(
        output_dir, "--output", is_converter_output, "a converted checkpoint",
        "no config.json with a 'source' entry", "converter output", overwrite)
    if problem:
        raise PortError(problem)


def convert(source, input_path, output_dir, depth=None, num_classes=None, overwrite=False):
    """Reads, ports and writes; returns (config, seconds)."""
    start = time.time()
    fmt = source_format(source)
    arrays = fmt.read(input_path)
    result = fmt.to_target(arrays, depth=depth, num_classes=num_classes)
    config = write(result, output_dir, source, input_path, overwrite=overwrite)
    return config, time.time() - start


def load_config(output_dir):
    with open(os.path.join(output_dir, rundir.CONVERTED_RECORD)) as f:
        return json.load(f)


def run_ported(output_dir, images):
    """Logits of the converted checkpoint in `output_dir` on NHWC float32 `images`."""
    config = load_config(output_dir)
    graph = tf.Graph()
    with graph.as_default():
        x = tf1.placeholder(tf.float32, [None] + list(images.shape[1:]))
        logits, _ = model_lib.ResNet(**config["model"])(x)
        restorer = restore.Restorer(os.path.join(output_dir, rundir.CHECKPOINT_NAME))
        with tf1.Session() as sess:
            restorer.restore(sess)
            return sess.run(logits, {x: images})


def verify(source, input_path, output_dir, batch=2, seed=0):
    """Runs the source's reference model and the port on one fixed batch; returns the
    differences and what the reference was."""
    fmt = source_format(source)
    rng = np.random.RandomState(seed)
    images = rng.uniform(-100.0, 100.0, (batch, 224, 224, 3)).astype(np.float32)
    ours = run_ported(output_dir, images).astype(np.float64)
    ref = np.asarray(fmt.reference(input_path, images), np.float64).reshape(len(images), -1)
    diff = np.abs(ours - ref)
    return {"max_abs": float(diff.max()),
            "max_rel": float(diff.max() / np.abs(ref).max()),
            "top1_agreement": float(np.mean(ours.argmax(-1) == ref.argmax(-1))),
            "reference": fmt.reference_name}
