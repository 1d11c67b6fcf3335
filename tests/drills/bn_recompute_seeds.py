"""Issue 33: how much do the recomputed statistics themselves vary with the augmentation draw?
Recomputes one run's BN statistics over the training augmentation with other input seeds than
bn_stats.TRAIN_INPUT_SEED and evaluates each (not part of the suite):

    python tests/drills/bn_recompute_seeds.py RUN_DIR [SEED...]

The run is left with the default recompute (seed 1512) in bn_recomputed/."""

import sys

from absl import logging

from resnet_tf1 import bn_stats, eval_lib, run_flags


def main(argv):
    logging.set_verbosity(logging.WARNING)
    run, seeds = argv[1], [int(s) for s in argv[2:]] or [1, 2, 3, 4]
    p = run_flags.params_from_argv(["--flagfile=%s/flags.txt" % run,
                                    "--model_dir=%s" % run]).validate()
    default = bn_stats.TRAIN_INPUT_SEED
    out = []
    for seed in seeds + [default]:
        bn_stats.TRAIN_INPUT_SEED = seed
        bn_stats.recompute(p, None, 80)
        top1 = eval_lib.evaluate(p, run, bn_stats="recomputed")["top_1_accuracy"]
        out.append((seed, 100 * top1))
        print("%s: train-input seed %d: top-1 %.2f" % (run, seed, 100 * top1), flush=True)
    values = [v for _, v in out]
    print("%s: %.2f-%.2f over %d seeds" % (run, min(values), max(values), len(values)))


if __name__ == "__main__":
    main(sys.argv)
