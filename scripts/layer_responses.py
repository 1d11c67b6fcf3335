#!/usr/bin/env python
"""Layer responses like the paper's Fig. 7, from trained runs' checkpoints.

    python scripts/layer_responses.py --flagfile=runs/cifar10_resnet56/flags.txt \\
        --output=responses.png --csv=responses.csv
    python scripts/layer_responses.py --flagfile=runs/cifar10_resnet20/flags.txt \\
        runs/cifar10_plain20 runs/cifar10_plain56 runs/cifar10_resnet56 --output=responses.png

For the run in --model_dir and each further RUN_DIR (each a train.py --model_dir; its model comes
from its model_config.json, the data from the flags): the standard deviation, over the
evaluation set, of each 3x3 layer's response ("after BN and before other nonlinearity
(ReLU/addition)", the paper's definition), in layer order and sorted by magnitude. Reads the
latest checkpoint (with the recomputed BN statistics when training wrote them). matplotlib is an
optional extra for --output: pip install -e '.[plots]'.
"""

import os

from absl import app, flags, logging

from resnet_tf1 import errors, responses, run_flags

FLAGS = flags.FLAGS
run_flags.define()
flags.adopt_module_key_flags(run_flags)
flags.DEFINE_string("output", None, "The PNG to write (atomically): Fig. 7's two panels.")
flags.DEFINE_string("csv", None, "Also write the numbers here: run,label,layer_index,layer,std,"
                    "sorted_rank.")
flags.DEFINE_integer("max_batches", 0, "Use only this many evaluation batches (0: all).",
                     lower_bound=0)
flags.DEFINE_string("title", None, "Plot title.")


def main(argv):
    if not FLAGS.output and not FLAGS.csv:
        raise app.UsageError("give --output=<file.png> and/or --csv=<file.csv>")
    try:
        params = run_flags.params_from_flags()
        run_dirs = []
        for run_dir in ([params.model_dir] if params.model_dir else []) + argv[1:]:
            if os.path.normpath(run_dir) not in map(os.path.normpath, run_dirs):
                run_dirs.append(run_dir)  # the flagfile's run may be among the RUN_DIRs too
        if not run_dirs:
            raise errors.FlagError("give --model_dir (or --flagfile=<run>/flags.txt) or RUN_DIRs")
        results = []
        for run_dir in run_dirs:
            r = responses.compute(params, run_dir, max_batches=FLAGS.max_batches)
            stds = [std for _, std in r.layers]
            logging.info("%s (%s): %d layers over %d examples; std first %.3f, last %.3f, "
                         "max %.3f, min %.3f (%s)", r.label, run_dir, len(stds),
                         r.num_examples, stds[0], stds[-1], max(stds), min(stds), r.checkpoint)
            results.append(r)
        if FLAGS.csv:
            responses.write_csv(results, FLAGS.csv)
            logging.info("wrote %s", FLAGS.csv)
        if FLAGS.output:
            try:
                responses.plot(results, FLAGS.output, FLAGS.title)
            except ImportError:
                raise errors.MissingPackageError("--output needs matplotlib: pip install -e "
                                                 "'.[plots]' (or use --csv only)")
            logging.info("wrote %s", FLAGS.output)
    except run_flags.EXPECTED_ERRORS as e:
        return run_flags.report("layer_responses", e)
    return 0


if __name__ == "__main__":
    app.run(main)
