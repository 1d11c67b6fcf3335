"""Issue 33's measurement, the evaluation half (not part of the suite): every finished run under
the given directories (run directories with flags.txt and a training checkpoint) evaluated on its
test set with four kinds of BN statistics:

    running     the training checkpoint's moving averages (--bn_stats=running)
    eval        recomputed over the training split with the evaluation preprocessing (one pass,
                file order: 4,000 images on MNIST-5k)
    train       recomputed over 80 x 128 = 10,240 images of the training augmentation, seed 1512
    train31     the same over 31 x 128 = 3,968 images (about eval's count: is it the input or the
                number of images?)
    batch       the whole test set (1,000 images) as one batch normalised by its own statistics
                (--bn_stats=batch --batch_size=1000; MNIST-5k's test file is sorted by class, so
                batches of 128 would each hold one or two classes)

    python tests/drills/bn_recompute_compare.py OUT.jsonl RUN_DIR...

One JSON line per run (appended; runs already in OUT.jsonl are skipped) and a table at the end.
The run directory is left with the train-input recompute (the default) in bn_recomputed/.
"""

import dataclasses
import json
import os
import sys

from absl import logging

from resnet_tf1 import bn_stats, eval_lib, run_flags


def measure(run):
    p = run_flags.params_from_argv(["--flagfile=%s" % os.path.join(run, "flags.txt"),
                                    "--model_dir=%s" % run]).validate()
    out = {"run": run, "depth": p.depth, "variant": p.variant, "seed": p.seed,
           "steps": p.max_steps, "data_dir": p.data_dir}
    top1 = lambda m: round(100 * m["top_1_accuracy"], 2)
    out["running"] = top1(eval_lib.evaluate(p, run, bn_stats="running"))
    out["batch"] = top1(eval_lib.evaluate(dataclasses.replace(p, batch_size=1000), run,
                                          bn_stats="batch"))
    for name, source, batches in (("eval", "eval", 80), ("train31", "train", 31),
                                  ("train", "train", 80)):
        q = dataclasses.replace(p, bn_recompute_input=source)
        info = bn_stats.recompute(q, None, batches)
        out[name] = top1(eval_lib.evaluate(q, run, bn_stats="recomputed"))
        out[name + "_images"] = info["num_images"]
    return out


def main(argv):
    logging.set_verbosity(logging.WARNING)
    out_path, runs = argv[1], argv[2:]
    done = set()
    if os.path.exists(out_path):
        with open(out_path) as f:
            done = {json.loads(line)["run"] for line in f if line.strip()}
    for run in runs:
        if run in done or not os.path.exists(os.path.join(run, "checkpoint")):
            continue
        row = measure(run)
        with open(out_path, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)
    with open(out_path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    print("%-40s %8s %8s %8s %8s %8s" % ("run", "running", "eval", "train", "train31", "batch"))
    for r in rows:
        print("%-40s %8.2f %8.2f %8.2f %8.2f %8.2f" % (os.path.relpath(r["run"], "/tmp/m33"),
              r["running"], r["eval"], r["train"], r["train31"], r["batch"]))
    summary(rows)


def summary(rows):
    """Per (data set, steps, net): each column's mean over the seeds and its range, and the
    issue's criterion: recomputed (train) within 0.3 points of running or better."""
    groups = {}
    for r in rows:
        net = ("plain-%d" if r["variant"] == "plain" or "plain" in r["run"] else "ResNet-%d") \
            % r["depth"]
        data = os.path.basename(r["data_dir"].rstrip("/"))
        groups.setdefault((data, r["steps"], net), []).append(r)
    print("\n| data | steps | net | seeds | running | recomputed, eval input | recomputed, train "
          "input | batch statistics | train - running |")
    print("|---|---|---|---|---|---|---|---|---|")
    worst = None
    for (data, steps, net), rs in sorted(groups.items()):
        cells = []
        for key in ("running", "eval", "train", "batch"):
            v = [r[key] for r in rs]
            cells.append("%.2f (%.1f–%.1f)" % (sum(v) / len(v), min(v), max(v)) if len(v) > 1
                         else "%.2f" % v[0])
        gaps = [r["train"] - r["running"] for r in rs]
        worst = min(gaps + ([worst] if worst is not None else []))
        print("| %s | %d | %s | %d | %s | %s |" % (data, steps, net, len(rs), " | ".join(cells),
                                                 ", ".join("%+.1f" % g for g in gaps)))
    mean = lambda key: sum(r[key] for r in rows) / len(rows)
    print("\n%d runs; means: running %.2f, eval %.2f, train %.2f, batch %.2f; the worst "
          "train - running: %+.1f points" % (len(rows), mean("running"), mean("eval"),
                                             mean("train"), mean("batch"), worst))


if __name__ == "__main__":
    main(sys.argv)
