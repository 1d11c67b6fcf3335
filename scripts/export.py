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
"""

import json

from absl import app, flags, logging

from resnet_tf1 import export as export_lib
from resnet_tf1 import run_flags, serving

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
flags.mark_flags_as_required(["model_dir", "export_dir"])
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError("unexpected arguments: %s" % " ".join(argv[1:]))
    try:
        servable = serving.load(FLAGS.model_dir, FLAGS.checkpoint_path)
        record = export_lib.export(servable, FLAGS.export_dir, FLAGS.format, FLAGS.input_size,
                                   FLAGS.top_k, FLAGS.dtype, FLAGS.overwrite)
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
    if c:
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
