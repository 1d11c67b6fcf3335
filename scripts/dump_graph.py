#!/usr/bin/env python
"""Write or compare canonical graph manifests (graph regression tests).

    python scripts/dump_graph.py --depth=50 --variant=slim --output=resnet50_slim.json
    python scripts/dump_graph.py --depth=50 --format=text
    python scripts/dump_graph.py --diff A.json B.json      # exit status 1 when they differ

A manifest lists every variable (name, shape, dtype, trainable), every end point, the parameter
count, multiply-adds per layer, the op-type histogram of the inference graph, the resolved model
configuration, the TensorFlow version and a fingerprint of the variable names and shapes.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from resnet_tf1 import manifest, model  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("depth", 50, "ResNet depth.")
flags.DEFINE_enum("variant", "paper", model.VARIANTS, "Where downsampling units stride.")
flags.DEFINE_integer("num_classes", None, "Logits width (default 1000; 10 for CIFAR depths).")
flags.DEFINE_integer("image_size", None, "Input height and width (default 224; 32 for CIFAR).")
flags.DEFINE_string("config", None, "JSON file with ResNet keyword arguments (e.g. a converted "
                    "checkpoint's config.json, whose \"model\" entry is used); overrides "
                    "--depth/--variant/--num_classes.")
flags.DEFINE_enum("format", "json", ["json", "text"], "Manifest as JSON or as a layer table.")
flags.DEFINE_string("output", None, "Write here (atomically) instead of standard output.")
flags.DEFINE_bool("diff", False, "Compare the two manifest files given as arguments.")


def _load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise app.UsageError("--diff: %s is not a readable manifest: %s" % (path, e))


def _write(text, path):
    tmp = "%s.tmp-%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


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
            num_classes = 1000 if FLAGS.depth in model.IMAGENET_UNITS else 10
        kwargs = dict(depth=FLAGS.depth, variant=FLAGS.variant, num_classes=num_classes)
    try:
        m = manifest.make(kwargs, FLAGS.image_size)
    except (TypeError, ValueError) as e:
        raise app.UsageError("--config / model flags: %s" % e)
    text = manifest.dumps(m) if FLAGS.format == "json" else manifest.format_text(m)
    if FLAGS.output:
        _write(text, FLAGS.output)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    app.run(main)
