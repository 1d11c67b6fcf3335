#!/usr/bin/env python
"""Evaluate top-1 / top-5: python scripts/evaluate.py --flagfile=... --model_dir=...

Takes the training flagfile (model and data flags); evaluates the latest checkpoint in
--model_dir, or --checkpoint_path; writes <model_dir>/eval/metrics.json. --watch evaluates each
new checkpoint as training writes it. metrics.json holds top-1 / top-5, per-class accuracy and
the confusion matrix (--confusion_matrix=PATH.png draws it). Test protocols: single crop
(default), --ten_crop (ImageNet), or the paper's multi-scale fully-convolutional testing,
--multi_scale=224,256,384,480,640 [--flip] (Tables 4/5).

--export_dir=DIR evaluates an exported model instead (SavedModel, frozen graph, ONNX float32 or
int8; scripts/export.py) on the same evaluation set, in the same order, with the same metrics
(the pipeline's images turned back into the pixels an export takes); it writes
DIR/eval/metrics.json. --runtime_threads sets the session's intra-op threads.
"""

import os

from absl import app, flags, logging

from resnet_tf1 import errors, eval_lib, exported, run_flags, rundir

FLAGS = flags.FLAGS
run_flags.define()
flags.adopt_module_key_flags(run_flags)  # --helpshort lists them
flags.DEFINE_string("checkpoint_path", None, "A checkpoint prefix to evaluate instead of the "
                    "latest in --model_dir.")
flags.DEFINE_bool("ten_crop", False, "ImageNet: average over the paper's 10 crops.")
flags.DEFINE_string("multi_scale", None, "The paper's multi-scale testing: comma-separated "
                    "shorter-side sizes (e.g. 224,256,384,480,640); the network runs fully-"
                    "convolutionally on each whole resized image and the softmax is averaged.")
flags.DEFINE_bool("flip", False, "With --multi_scale, also average over the mirrored images.")
flags.DEFINE_enum("bn_stats", None, list(eval_lib.BN_STATS), "BN statistics of a run "
                  "directory: running (the training checkpoint's moving averages), recomputed "
                  "(bn_recomputed/, an error when absent) or batch (each evaluation batch of "
                  "--batch_size normalised by its own statistics, as in training: the reference); "
                  "default: recomputed when present.")
flags.DEFINE_string("export_dir", None, "Evaluate this export directory (scripts/export.py: "
                    "saved_model, frozen_graph, onnx float32 or int8) instead of a checkpoint.")
flags.DEFINE_integer("runtime_threads", None, "With --export_dir: intra-op threads of the "
                     "TensorFlow or ONNX Runtime session (default: the runtime's).",
                     lower_bound=1)
flags.DEFINE_bool("watch", False, "Evaluate each new checkpoint in --model_dir as it appears.")
flags.DEFINE_string("confusion_matrix", None, "Also draw the confusion matrix (rows: true "
                    "class, columns: predicted) to this PNG (needs matplotlib).")
flags.DEFINE_integer("watch_timeout", 3600, "With --watch, stop after this many seconds without "
                     "a new checkpoint.")


def _report(metrics):
    skipped = metrics.get("num_skipped")
    protocol = ""
    if metrics.get("multi_scale"):
        protocol = ", scales %s%s" % (",".join(map(str, metrics["multi_scale"])),
                                      " + flips" if metrics["flip"] else "")
    bn = metrics.get("bn_statistics")
    source = metrics["checkpoint"]
    if metrics.get("export_dir"):
        source = "export %s: %s %s of %s" % (metrics["export_dir"], metrics["format"],
                                            metrics["dtype"], metrics["checkpoint"])
    print("step %s: top-1 %.4f  top-5 %.4f  over %d examples%s%s (%s%s)"
          % (metrics["global_step"], metrics["top_1_accuracy"], metrics["top_5_accuracy"],
             metrics["num_examples"], protocol,
             ", %d records skipped" % skipped if skipped else "", source,
             "; BN statistics %s" % eval_lib.describe_bn_statistics(bn) if bn else ""))
    per_class = metrics.get("per_class_accuracy") or {}
    if 0 < len(per_class) <= 20:
        print("per class: " + ", ".join("%s %s" % (name, "%.3f" % acc if acc is not None else "-")
                                        for name, acc in per_class.items()))


def main(argv):
    if len(argv) > 1:
        raise app.UsageError("unexpected arguments: %s" % " ".join(argv[1:]))
    try:
        params = run_flags.params_from_flags()
        scales = eval_lib.parse_scales(FLAGS.multi_scale) if FLAGS.multi_scale else None
        eval_dir = rundir.eval_dir(params.model_dir)
        if FLAGS.export_dir:
            for flag in ("watch", "ten_crop", "multi_scale", "checkpoint_path", "bn_stats"):
                if FLAGS[flag].present:
                    raise errors.FlagError(
                        "--%s evaluates checkpoints: it does not combine with --export_dir"
                        % flag)
            metrics = exported.evaluate(params, FLAGS.export_dir, FLAGS.runtime_threads)
            path = eval_lib.write_metrics(metrics, os.path.join(FLAGS.export_dir, "eval"))
            if FLAGS.confusion_matrix:
                logging.info("wrote %s", eval_lib.plot_confusion_matrix(
                    metrics, FLAGS.confusion_matrix))
            _report(metrics)
            logging.info("wrote %s", path)
            return 0
        elif FLAGS.runtime_threads:
            raise errors.FlagError("--runtime_threads applies to --export_dir")
        if FLAGS.watch:
            for metrics in eval_lib.watch(params, params.model_dir, FLAGS.ten_crop,
                                          timeout=FLAGS.watch_timeout,
                                          max_steps=params.max_steps, scales=scales,
                                          flip=FLAGS.flip):
                _report(metrics)
            return 0
        metrics = eval_lib.evaluate(params, FLAGS.checkpoint_path or params.model_dir,
                                    FLAGS.ten_crop, scales, FLAGS.flip, FLAGS.bn_stats)
        path = eval_lib.write_metrics(metrics, eval_dir)
        if FLAGS.confusion_matrix:
            logging.info("wrote %s", eval_lib.plot_confusion_matrix(metrics,
                                                                    FLAGS.confusion_matrix))
    except run_flags.EXPECTED_ERRORS as e:
        return run_flags.report("evaluate", e)
    _report(metrics)
    logging.info("wrote %s", path)
    return 0


if __name__ == "__main__":
    app.run(main)
