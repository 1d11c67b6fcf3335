"""Issue 33: how much do BN statistics estimated from a sample of the training stream vary with
the draw? Recomputes one run's BN statistics over the training augmentation with other input
seeds than bn_stats.TRAIN_INPUT_SEED and evaluates each (not part of the suite):

    python tests/drills/bn_recompute_seeds.py RUN_DIR [--batches=80] [--test_dir=FROM:TO] [SEED...]

--batches=80 is the end-of-run recompute's size (10,240 images at batch 128). A few batches
stand in for the running statistics: with --bn_decay=0.7 (the CIFAR flagfiles) the moving
average weighs the last batches by 0.3, 0.21, 0.147, ..., an effective sample of
(1 + 0.7) / (1 - 0.7) = 5.7 batches, so --batches=6 over several seeds shows how far the running
statistics may land from the population by the draw alone. --test_dir as in
bn_recompute_compare.py (a larger test file beside the same training files).

The run is left with the default recompute (seed 1512, 80 batches) in bn_recomputed/."""

import dataclasses
import sys

from absl import logging

from resnet_tf1 import bn_stats, eval_lib, run_flags


def main(argv):
    logging.set_verbosity(logging.WARNING)
    run = argv[1]
    batches = 80
    test_dirs = {}
    seeds = []
    for a in argv[2:]:
        if a.startswith("--batches="):
            batches = int(a.split("=", 1)[1])
        elif a.startswith("--test_dir="):
            source, target = a.split("=", 1)[1].split(":", 1)
            test_dirs[source.rstrip("/")] = target
        else:
            seeds.append(int(a))
    seeds = seeds or [1, 2, 3, 4]
    p = run_flags.params_from_argv(["--flagfile=%s/flags.txt" % run,
                                    "--model_dir=%s" % run]).validate()
    p = dataclasses.replace(p, data_dir=test_dirs.get(p.data_dir.rstrip("/"), p.data_dir))
    default = bn_stats.TRAIN_INPUT_SEED
    out = []
    running = 100 * eval_lib.evaluate(p, run, bn_stats="running")["top_1_accuracy"]
    print("%s: running statistics: top-1 %.2f" % (run, running), flush=True)
    try:
        for seed in seeds:
            bn_stats.TRAIN_INPUT_SEED = seed
            bn_stats.recompute(p, None, batches)
            top1 = eval_lib.evaluate(p, run, bn_stats="recomputed")["top_1_accuracy"]
            out.append(100 * top1)
            print("%s: train-input seed %d, %d batches: top-1 %.2f" % (run, seed, batches,
                                                                       100 * top1), flush=True)
    finally:
        bn_stats.TRAIN_INPUT_SEED = default
        bn_stats.recompute(p, None, 80)
    mean = sum(out) / len(out)
    sd = (sum((v - mean) ** 2 for v in out) / max(len(out) - 1, 1)) ** 0.5
    print("%s: %d batches over %d seeds: %.2f-%.2f, mean %.2f, sd %.2f; running %.2f"
          % (run, batches, len(out), min(out), max(out), mean, sd, running))


if __name__ == "__main__":
    main(sys.argv)
