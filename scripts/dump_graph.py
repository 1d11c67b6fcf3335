#!/usr/bin/env python
"""Write or compare canonical graph manifests (graph regression tests).

    python scripts/dump_graph.py --depth=50 --variant=slim --output=resnet50_slim.json
    python scripts/dump_graph.py --depth=50 --format=text
    python scripts/dump_graph.py --depth=50 --variant=v1.5 --format=plan   # the unit plan
    python scripts/dump_graph.py --diff A.json B.json      # exit status 1 when they differ

A manifest lists every variable (name, shape, dtype, trainable), every end point, the parameter
count, multiply-adds per layer, the op-type histogram of the inference graph, the resolved model
configuration, the TensorFlow version and a fingerprint of the variable names and shapes.
"""

import json
import sys

from absl import app, flags

from resnet_tf1 import data, fileio, manifest, model, run_config

FLAGS = flags.FLAGS
flags.DEFINE_integer("depth", 50, "ResNet depth.")
flags.DEFINE_enum("variant", "paper", model.VARIANTS, "Where downsampling units stride.")
flags.DEFINE_enum("shortcut", None, model.SHORTCUTS, "Shortcut option (default A for CIFAR, B "
                  "for ImageNet; none: the paper's plain net).")
flags.DEFINE_integer("num_classes", None, "Logits width (default 1000; 10 for CIFAR depths).")
flags.DEFINE_integer("image_size", None, "Input height and width (default 224; 32 for CIFAR).")
flags.DEFINE_string("config", None, "JSON file with ResNet keyword arguments (e.g. a converted "
                    "checkpoint's config.json, whose \"model\" entry is used); overrides "
                    "--depth/--variant/--shortcut/--num_classes.")
flags.DEFINE_enum("format", "json", ["json", "text", "plan"], "Manifest as JSON, as a layer "
                  "table, or the model's unit plan (ResNet.plan(): one residual unit a line).")
flags.DEFINE_string("output", None, "Write here (atomically) instead of standard output.")
flags.DEFINE_bool("diff", False, "Compare the two manifest files given as arguments.")


def _load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise app.UsageError("--diff: %s is not a readable manifest: %s" % (path, e))


def format_plan(kwargs, image_size):
    """The model's unit plan as a table: one residual unit a line."""
    resnet = model.ResNet(**kwargs)
    plan = resnet.plan(image_size or resnet.default_image_size())
    header = ("scope", "kind", "in", "mid", "out", "stride", "1x1", "3x3", "shortcut")
    rows = [header] + [(u.scope, u.kind, u.depth_in, u.depth_bottleneck, u.depth_out, u.stride,
                        "-" if u.stride_1x1 is None else u.stride_1x1, u.stride_3x3, u.shortcut)
                       for u in plan]
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
    return "".join("  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip() + "\n"
                   for r in rows)


def main(argv):
    if FLAGS.diff:
        if len(argv) != 3:
            raise app.UsageError("--diff takes two manifest files: --diff A.json B.json")
        lines = manifest.diff(_load(argv[1]), _load(argv[2]))
        print("\n".join(lines) if lines else "manifests agree")
        return 1 if lines else 0
    if len(argv) > 1:
        raise app.UsageError("unexpected arguments: %s" % " ".join(argv[1:]))
    if FLAGS.config:
        try:
            with open(FLAGS.config) as f:
                kwargs = json.load(f)
        except (OSError, ValueError) as e:
            raise app.UsageError("--config=%s is not a readable JSON file: %s" % (FLAGS.config, e))
        kwargs = kwargs.get("model", kwargs) if isinstance(kwargs, dict) else kwargs
        if not isinstance(kwargs, dict):
            raise app.UsageError("--config=%s must hold a JSON object of ResNet arguments"
                                 % FLAGS.config)
    else:
        num_classes = FLAGS.num_classes
        if num_classes is None:
            num_classes = data.spec(run_config.default_dataset(FLAGS.depth)).num_classes
        kwargs = dict(depth=FLAGS.depth, variant=FLAGS.variant, num_classes=num_classes)
        if FLAGS.shortcut:
            kwargs["shortcut"] = FLAGS.shortcut
    try:
        if FLAGS.format == "plan":
            text = format_plan(kwargs, FLAGS.image_size)
        else:
            m = manifest.make(kwargs, FLAGS.image_size)
            text = manifest.dumps(m) if FLAGS.format == "json" else manifest.format_text(m)
    except (TypeError, ValueError) as e:
        raise app.UsageError("--config / model flags: %s" % e)
    if FLAGS.output:
        fileio.write_text(FLAGS.output, text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    app.run(main)
