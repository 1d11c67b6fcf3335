#!/usr/bin/env python
"""Export a converted checkpoint or a training run for serving.

    python scripts/export.py --model_dir=checkpoints/slim_resnet_v1_50 \
        --export_dir=exports/resnet50 --format=saved_model      # or frozen_graph, onnx

Inputs are RGB pixels in 0..255 (preprocessing inside the graph); outputs logits, probabilities,
classes, top_k_classes, top_k_probabilities, class_names. The SavedModel has a second signature,
`image_bytes`, taking encoded images. The frozen graph and the ONNX model have every batch norm
folded into its conv. `<export_dir>/export.json` names the input and output tensors and nodes;
they are also printed. --format=torchvision writes model.safetensors with torchvision's state-dict
names for `torchvision.models.resnet<depth>(num_classes=N)` (v1.5 graphs with torchvision's
paddings only; the preprocessing is the caller's, named in export.json). See
resnet_tf1/export.py.

int8 through ONNX Runtime (static quantization, QDQ, per-channel symmetric int8 weights,
activations calibrated on real images):

    python scripts/export.py --model_dir=runs/cifar10_resnet56 --export_dir=exports/r56_int8 \
        --format=onnx --quantize=int8 [--calibration_batches=8] [--calibration_method=minmax]
    python scripts/export.py --model_dir=checkpoints/tv_resnet50 --export_dir=exports/r50_int8 \
        --format=onnx --quantize=int8 --calibration_dir=my_photos/

A training run calibrates on its own training split (--calibration_batches x 32 images, the
evaluation preprocessing, sampled through a 10,000-image shuffle buffer with a fixed seed, so
that a split stored class by class gives every class) and is checked on --check_images of its
evaluation split, sampled the same way;
a converted checkpoint (or any model, with --calibration_dir) on the image files under
--calibration_dir (shuffled with a fixed seed; the first ones calibrate, the next --check_images
check). The export fails in one line when int8's top-1 agrees with float32 on fewer than
--min_agreement of the check images float32 decides; export.json records the agreement.
"""

import json
import os

import numpy as np
from absl import app, flags, logging

from resnet_tf1 import errors, exported, onnxrt
from resnet_tf1 import export as export_lib
from resnet_tf1 import run_flags, rundir, serving

flags.DEFINE_string("model_dir", None, "A converted checkpoint or a training run's --model_dir.")
flags.DEFINE_string("checkpoint_path", None, "A checkpoint other than the model_dir's latest.")
flags.DEFINE_string("export_dir", None, "Directory to create (written under a temporary name, "
                    "then renamed).")
flags.DEFINE_enum("format", "saved_model", list(export_lib.FORMATS), "Export format.")
flags.DEFINE_integer("input_size", None, "Square input size (default: the model's crop, e.g. "
                     "224); another size uses the network fully convolutionally.")
flags.DEFINE_integer("top_k", 5, "k of the top_k_* outputs.", lower_bound=1)
flags.DEFINE_enum("dtype", None, ["float32", "bfloat16", "float16"],
                  "Compute dtype (default: the model's).")
flags.DEFINE_bool("overwrite", False, "Replace an earlier export in --export_dir.")
flags.DEFINE_enum("quantize", None, list(export_lib.QUANTIZE), "With --format=onnx: quantize "
                  "the float32 model statically for ONNX Runtime (int8: QDQ, per-channel "
                  "symmetric int8 weights, int8 activations calibrated on real images).")
flags.DEFINE_integer("calibration_batches", 8, "--quantize: calibrate on this many batches of "
                     "%d images." % 32, lower_bound=1)
flags.DEFINE_enum("calibration_method", "minmax", list(onnxrt.CALIBRATION_METHODS),
                  "--quantize: how activation ranges are chosen from the calibration images.")
flags.DEFINE_string("calibration_dir", None, "--quantize: a directory of image files (searched "
                    "recursively) to calibrate and check on, instead of a training run's data "
                    "set (needed for a converted checkpoint).")
flags.DEFINE_integer("check_images", 500, "--quantize: images not used for calibration on "
                     "which int8 is checked against float32.", lower_bound=1)
flags.DEFINE_float("min_agreement", 0.99, "--quantize: the export fails when int8's top-1 "
                   "agrees with float32 on fewer of the check images float32 decides.")
flags.mark_flags_as_required(["model_dir", "export_dir"])
FLAGS = flags.FLAGS
CALIBRATION_BATCH = 32


def _image_files(directory):
    if not os.path.isdir(directory):
        raise errors.FlagError("--calibration_dir=%s is not a directory" % directory)
    out = []
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        out.extend(os.path.join(root, f) for f in sorted(files)
                   if f.lower().endswith(serving.IMAGE_EXTENSIONS))
    if not out:
        raise errors.FlagError("--calibration_dir=%s holds no image files (%s)" % (
            directory, ", ".join(serving.IMAGE_EXTENSIONS)))
    return out


def calibration(servable, size):
    """The `export.Calibration` the flags ask for."""
    n = FLAGS.calibration_batches * CALIBRATION_BATCH
    if FLAGS.calibration_dir:
        paths = _image_files(FLAGS.calibration_dir)
        paths = [paths[i] for i in np.random.RandomState(0).permutation(len(paths))]
        paths = paths[:n + FLAGS.check_images]
        pixels, unreadable = serving.read_pixels(servable, paths, size)
        for path, reason in unreadable:
            logging.warning("calibration: %s is not a readable image (%s): left out", path,
                            reason)
        if not len(pixels):
            raise errors.FlagError("--calibration_dir=%s: none of its %d image files can be "
                                   "read" % (FLAGS.calibration_dir, len(paths)))
        return export_lib.Calibration(
            pixels[:n], pixels[n:], "%d + %d image files under %s (shuffled, seed 0)"
            % (min(n, len(pixels)), max(0, len(pixels) - n), FLAGS.calibration_dir))
    if servable.kind != "training run":
        raise errors.FlagError("--quantize=%s of a %s needs --calibration_dir (a directory of "
                               "images like the ones it will classify)"
                               % (FLAGS.quantize, servable.kind))
    if size != servable.image_size:
        raise errors.FlagError("--quantize with --input_size=%d calibrates on --calibration_dir "
                               "images (the run's data set gives %dx%d)"
                               % (size, servable.image_size, servable.image_size))
    params = run_flags.params_from_argv([
        "--flagfile=%s" % rundir.flags_path(FLAGS.model_dir),
        "--model_dir=%s" % FLAGS.model_dir]).validate()
    images, _ = exported.pixels(params, "train", n, CALIBRATION_BATCH, sample=True)
    check, _ = exported.pixels(params, "eval", FLAGS.check_images, CALIBRATION_BATCH,
                               sample=True)
    return export_lib.Calibration(
        images, check, "--dataset=%s in %s: %d training images and %d evaluation images, "
        "evaluation preprocessing, sampled through a %d-image shuffle buffer (seed 0)"
        % (params.dataset, params.data_dir, len(images), len(check), exported.SAMPLE_BUFFER))


def main(argv):
    if len(argv) > 1:
        raise app.UsageError("unexpected arguments: %s" % " ".join(argv[1:]))
    try:
        servable = serving.load(FLAGS.model_dir, FLAGS.checkpoint_path)
        calib = None
        if FLAGS.quantize:
            export_lib.check_quantize(servable, FLAGS.format, FLAGS.quantize, FLAGS.dtype,
                                      FLAGS.calibration_method, FLAGS.min_agreement)
            calib = calibration(servable, serving.input_size(servable, FLAGS.input_size))
        elif FLAGS.calibration_dir:
            raise errors.FlagError("--calibration_dir applies to --quantize")
        record = export_lib.export(servable, FLAGS.export_dir, FLAGS.format, FLAGS.input_size,
                                   FLAGS.top_k, FLAGS.dtype, FLAGS.overwrite, FLAGS.quantize,
                                   calib, FLAGS.calibration_method, FLAGS.min_agreement)
    except run_flags.EXPECTED_ERRORS as e:
        return run_flags.report("export", e)
    logging.info("exported %s (%s) to %s", FLAGS.model_dir, servable.checkpoint,
                 FLAGS.export_dir)
    if FLAGS.format == "torchvision":
        print("torchvision: %s with %d tensors for %s; then %s"
              % (record["file"], record["tensors"], record["constructor"], record["load"]))
    signatures = record.get("signatures") or ({"(graph)": record} if "inputs" in record else {})
    for name, sig in signatures.items():
        print("%s %s:" % (FLAGS.format, name))
        for kind in ("inputs", "outputs"):
            for key, io in sig[kind].items():
                print("  %-6s %-20s tensor %-28s %s %s" % (kind[:-1], key, io["tensor"],
                                                           io["dtype"], json.dumps(io["shape"])))
    c = record.get("check")
    if c and FLAGS.quantize:
        print("int8 (%s) checked against the float32 session graph on %d images not used for "
              "calibration: top-1 agrees on %.2f %% of all and %.2f %% of the %d float32 "
              "decides; max abs probability difference %.3g"
              % (record["quantization"]["calibration_method"], c["images"],
                 100 * c["top_1_agreement"], 100 * c["top_1_agreement_decided"],
                 c["decided_images"], c["max_abs_probability_difference"]))
    elif c:
        top = "top-1" if "top_1_identical" in c else "top-k"
        same = c.get("top_k_identical", c.get("top_1_identical"))
        print("checked against the session graph on %d images: max abs probability difference "
              "%.3g, max relative logit difference %.3g, %s %s"
              % (c["images"], c["max_abs_probability_difference"],
                 c["max_relative_logit_difference"], top, "identical" if same else "different"))
    print("wrote %s" % FLAGS.export_dir)
    return 0


if __name__ == "__main__":
    app.run(main)
