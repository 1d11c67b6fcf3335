#!/usr/bin/env python
"""Training curves like the paper's Fig. 6 from train.py runs' TensorBoard event files.

    python scripts/plot_curves.py runs/cifar10_plain20 runs/cifar10_plain56 --output=curves.png
    python scripts/plot_curves.py RUN_DIR [RUN_DIR ...] --output=curves.png --csv=points.csv

Each RUN_DIR is a train.py --model_dir: the smoothed training top-1 error (dashed) comes from its
summaries, the test error (bold) from `evaluate.py` runs on it (`<RUN_DIR>/eval`; run
`evaluate.py --watch` beside training for a series). One colour per run, labelled with its model
("plain-56", "ResNet-56"); linear axes like the paper's. matplotlib is an optional extra:
pip install -e '.[plots]'.
"""

import sys

from absl import app, flags, logging

from resnet_tf1 import curves

FLAGS = flags.FLAGS
flags.DEFINE_string("output", None, "The PNG to write (atomically).")
flags.DEFINE_enum("metric", "error", ["error", "accuracy"], "Top-1 error (Fig. 6) or accuracy, "
                  "in %.")
flags.DEFINE_string("csv", None, "Also write the points here: run,label,series,step,value.")
flags.DEFINE_float("smoothing", 0.6, "Exponential-moving-average weight of the training series "
                   "(0: raw batch accuracies).", lower_bound=0.0, upper_bound=0.99)
flags.DEFINE_string("title", None, "Plot title.")


def main(argv):
    run_dirs = argv[1:]
    if not run_dirs:
        raise app.UsageError("give one or more RUN_DIRs (train.py --model_dir directories)")
    if not FLAGS.output and not FLAGS.csv:
        raise app.UsageError("give --output=<file.png> (and/or --csv=<file.csv>)")
    try:
        runs = [curves.read_run(d, FLAGS.metric, FLAGS.smoothing) for d in run_dirs]
    except curves.CurvesError as e:
        print("plot_curves: error: %s" % e, file=sys.stderr)
        return 1
    for c in runs:
        logging.info("%s (%s): %d training points, %d test points%s", c.label, c.run_dir,
                     len(c.train), len(c.test),
                     "" if c.test else " (no evaluate.py results in <RUN_DIR>/eval)")
    if FLAGS.csv:
        curves.write_csv(runs, FLAGS.csv)
        logging.info("wrote %s", FLAGS.csv)
    if FLAGS.output:
        try:
            curves.plot(runs, FLAGS.output, FLAGS.metric, FLAGS.title)
        except ImportError:
            print("plot_curves: error: --output needs matplotlib: pip install -e '.[plots]' "
                  "(or use --csv only)", file=sys.stderr)
            return 1
        logging.info("wrote %s", FLAGS.output)
    return 0


if __name__ == "__main__":
    app.run(main)
