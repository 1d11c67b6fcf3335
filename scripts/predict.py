#!/usr/bin/env python
"""Classify images with a converted checkpoint or a training run, offline.

    python scripts/predict.py --model_dir=checkpoints/keras_resnet50_2016 elephant.jpg photos/

--model_dir is a converted checkpoint (config.json) or a training run's --model_dir
(model_config.json + its latest checkpoint; --checkpoint_path for another). Images (JPEG, PNG,
BMP, GIF; grey, palette, CMYK and alpha converted to RGB) are preprocessed exactly as the model
records (resnet_tf1/data/preprocessing.py, shared with the data pipelines and export). Per image
it prints the path, then the --top_k classes as Keras' decode_predictions does:

    elephant.jpg
      n01871265 tusker 0.4113
      n02504458 African_elephant 0.3342
      ...

--json prints one JSON record per image instead. A file that is not a readable image gets one
line on stderr; the other images are still classified, and the exit code is then 1.

--model_dir may also be an export directory (scripts/export.py): --runtime=onnxruntime runs an
ONNX export (float32 or int8) in ONNX Runtime, --runtime=tensorflow a SavedModel or frozen
graph; the lines printed are the same (the export's own top-k outputs and class names).
"""

import json
import sys
import time

from absl import app, flags, logging

import os

from resnet_tf1 import errors, exported, run_flags, serving

flags.DEFINE_string("model_dir", None, "A converted checkpoint or a training run's --model_dir.")
flags.DEFINE_string("checkpoint_path", None, "A checkpoint other than the model_dir's latest.")
flags.DEFINE_integer("batch_size", 32, "Images per batch.", lower_bound=1)
flags.DEFINE_integer("top_k", 5, "Classes printed per image.", lower_bound=1)
flags.DEFINE_bool("json", False, "One JSON record per image on stdout instead of text.")
flags.DEFINE_enum("dtype", None, ["float32", "bfloat16", "float16"],
                  "Compute dtype (default: the model's).")
flags.DEFINE_enum("runtime", "tensorflow", ["tensorflow", "onnxruntime"], "What runs the "
                  "model: TensorFlow (a model directory, a SavedModel or frozen-graph export) or "
                  "ONNX Runtime (an ONNX export directory, float32 or int8).")
flags.DEFINE_integer("runtime_threads", None, "Intra-op threads of an export's session "
                     "(default: the runtime's).", lower_bound=1)
flags.mark_flag_as_required("model_dir")
FLAGS = flags.FLAGS


def _print(prediction, servable):
    if FLAGS.json:
        record = {"image": prediction.path}
        if prediction.error:
            record["error"] = prediction.error
        elif servable is None:  # an export: its labels are the class_names it outputs
            record["predictions"] = [{"class": i, "label": label, "probability": round(p, 6)}
                                     for i, label, p in prediction.top_k]
        else:
            record["predictions"] = [
                {"class": i, "id": servable.labels.ids[i], "name": servable.labels.names[i],
                 "probability": round(p, 6)} for i, _, p in prediction.top_k]
        print(json.dumps(record), flush=True)
        return
    if not prediction.error:
        print(prediction.path)
        for _, label, p in prediction.top_k:
            print("  %s %.4f" % (label, p))
        sys.stdout.flush()


def _image_files(args):
    paths = serving.image_files(args)
    if not paths:
        raise serving.DataError("no image files (%s) in %s" % (
            ", ".join(serving.IMAGE_EXTENSIONS), " ".join(args)))
    return paths


def _export_predictions(paths):
    record = exported.read_record(FLAGS.model_dir)
    want = "onnxruntime" if record["format"] == "onnx" else "tensorflow"
    if record["format"] == "torchvision":
        raise errors.FlagError("--model_dir=%s is a torchvision state dict: load it in torch "
                               "(export.json says how)" % FLAGS.model_dir)
    if FLAGS.runtime != want:
        raise errors.FlagError("--runtime=%s: --model_dir=%s is a %s export, which runs in %s"
                               % (FLAGS.runtime, FLAGS.model_dir, record["format"], want))
    for flag in ("checkpoint_path", "dtype"):
        if FLAGS[flag].present:
            raise errors.FlagError("--%s applies to a model directory, not to the export %s"
                                   % (flag, FLAGS.model_dir))
    logging.info("%s export %s (%s) in %s: %d classes, input %dx%d; %d image(s)",
                 record["format"], FLAGS.model_dir, record.get("dtype"), want,
                 record["num_classes"], record["input_size"], record["input_size"], len(paths))
    runner = exported.load(FLAGS.model_dir, record, FLAGS.runtime_threads)
    return serving.predict_export(runner, record, paths, FLAGS.batch_size, FLAGS.top_k)


def main(argv):
    if len(argv) < 2:
        raise app.UsageError("expected image files or directories after the flags")
    try:
        servable = predictions = None
        if os.path.exists(os.path.join(FLAGS.model_dir, exported.EXPORT_RECORD)):
            predictions = _export_predictions(_image_files(argv[1:]))
        elif FLAGS.runtime == "onnxruntime":
            raise errors.FlagError("--runtime=onnxruntime runs an ONNX export: --model_dir=%s is "
                                   "not an export directory (scripts/export.py --format=onnx)"
                                   % FLAGS.model_dir)
        else:
            servable = serving.load(FLAGS.model_dir, FLAGS.checkpoint_path)
            paths = _image_files(argv[1:])
            logging.info("%s %s: %s, %d classes, input %dx%d; %d image(s)", servable.kind,
                         FLAGS.model_dir, servable.checkpoint, len(servable.labels),
                         servable.image_size, servable.image_size, len(paths))
            predictions = serving.predict(servable, paths, FLAGS.batch_size, FLAGS.top_k,
                                          FLAGS.dtype)
        failed = done = 0
        start = time.time()
        for prediction in predictions:
            if prediction.error:
                failed += 1
                print("predict: error: %s" % prediction.error, file=sys.stderr, flush=True)
            else:
                done += 1
            _print(prediction, servable)
    except run_flags.EXPECTED_ERRORS as e:
        return run_flags.report("predict", e)
    seconds = time.time() - start
    logging.info("classified %d image(s) in %.1f s (%.1f images/sec, batch %d)%s", done, seconds,
                 done / max(seconds, 1e-9), FLAGS.batch_size,
                 "; %d unreadable" % failed if failed else "")
    return 1 if failed else 0


if __name__ == "__main__":
    app.run(main)
