#!/usr/bin/env python
"""Port a paper-era ResNet checkpoint into this project's graph.

    python scripts/convert_checkpoint.py --source=slim --input=resnet_v1_50.ckpt \
        --output=checkpoints/slim_resnet_v1_50 --verify

Writes DIR/model.ckpt (V2) and DIR/config.json; `resnet_tf1.ResNet(**config["model"])` rebuilds the
graph the checkpoint fits. Sources: slim, official, keras (.h5), caffe (.npz of the blobs),
torchvision (.pth / .pt in either torch.save format, or .safetensors; read without torch, no code
from the file is run).
"""

import sys

from absl import app, flags, logging

from resnet_tf1 import run_flags
from resnet_tf1.porting import SOURCES
from resnet_tf1.porting import convert as convert_lib

FLAGS = flags.FLAGS
flags.DEFINE_enum("source", None, SOURCES, "Format of --input.")
flags.DEFINE_string("input", None, "Source checkpoint: a TF prefix or V1 file (slim, official), "
                    "an .h5 file (keras) or an .npz of Caffe blobs (caffe).")
flags.DEFINE_string("output", None, "Output directory for model.ckpt and config.json.")
flags.DEFINE_integer("depth", None, "ResNet depth, only where the file cannot tell.")
flags.DEFINE_integer("num_classes", None, "Number of classes, only where the file cannot tell.")
flags.DEFINE_bool("verify", False, "Run the source's reference model beside the port on a fixed "
                  "batch and compare logits: TF-slim's own resnet_v1 (slim), tf-keras' own "
                  "ResNet (keras), official r1's model re-created on tf.compat.v1.layers "
                  "(official), a numpy forward pass with Caffe's semantics (caffe).")
flags.DEFINE_float("tolerance", 1e-4, "Largest relative logit difference --verify accepts.")
flags.DEFINE_bool("overwrite", False, "Replace a non-empty --output directory.")
flags.mark_flags_as_required(["source", "input", "output"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError("unexpected arguments: %s" % " ".join(argv[1:]))
    try:
        config, seconds = convert_lib.convert(FLAGS.source, FLAGS.input, FLAGS.output,
                                              depth=FLAGS.depth, num_classes=FLAGS.num_classes,
                                              overwrite=FLAGS.overwrite)
    except run_flags.EXPECTED_ERRORS as e:
        return run_flags.report("convert_checkpoint", e)
    m = config["model"]
    logging.info("converted %s %s -> %s in %.1f s (ResNet-%d, variant=%s, %d classes)",
                 FLAGS.source, FLAGS.input, FLAGS.output, seconds, m["depth"], m["variant"],
                 m["num_classes"])
    if config["source"]["skipped_training_state"]:
        logging.info("left behind %d training-state variables (step, optimizer slots)",
                     len(config["source"]["skipped_training_state"]))
    if not FLAGS.verify:
        return 0
    try:
        result = convert_lib.verify(FLAGS.source, FLAGS.input, FLAGS.output)
    except run_flags.EXPECTED_ERRORS as e:
        return run_flags.report("convert_checkpoint", "--verify: %s" % e)
    print("verify against %s: max abs logit difference %.3g, max relative %.3g, top-1 "
          "agreement %.0f%%" % (result["reference"], result["max_abs"], result["max_rel"],
                                100 * result["top1_agreement"]))
    if result["max_rel"] > FLAGS.tolerance:
        print("convert_checkpoint: error: --verify: relative difference %.3g is above "
              "--tolerance=%g" % (result["max_rel"], FLAGS.tolerance), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    app.run(main)
