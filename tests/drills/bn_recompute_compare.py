"""Issue 33's measurement, the evaluation half (not part of the suite): every finished run under
the given directories (run directories with flags.txt and a training checkpoint) evaluated on its
test set with four kinds of BN statistics:

    running     the training checkpoint's moving averages (--bn_stats=running)
    eval        recomputed over the training split with the evaluation preprocessing, one pass
                shuffled with the fixed seed (4,000 images on MNIST-5k)
    train       recomputed over 80 x 128 = 10,240 images of the training augmentation, seed 1512
                (the default)
    batch       the test set in batches of 1,000, each normalised by its own statistics
                (--bn_stats=batch --batch_size=1000; MNIST-5k's test file is sorted by class, so
                batches of 128 would each hold one or two classes)

    python tests/drills/bn_recompute_compare.py OUT.jsonl [--test_dir=FROM:TO] RUN_DIR...

--test_dir=FROM:TO evaluates (and recomputes) the runs trained on FROM with the data directory
TO instead: the same training files and a larger test file (Fashion-5k's 1,000 test images ->
the whole 10,000 of `prepare_mnist5k.py --source=fashion_mnist --test_per_class=1000`), where
differences of a few tenths of a point are above the test set's noise.

One JSON line per run (appended; runs already in OUT.jsonl are skipped) and a table at the end.
Rows written before the eval input was shuffled carry its file-order result as "eval_file_order".
The run directory is left with the train-input recompute (the default) in bn_recomputed/.
"""

import dataclasses
import json
import os
import sys

from absl import logging

from resnet_tf1 import bn_stats, eval_lib, run_flags


def measure(run, test_dirs):
    p = run_flags.params_from_argv(["--flagfile=%s" % os.path.join(run, "flags.txt"),
                                    "--model_dir=%s" % run]).validate()
    p = dataclasses.replace(p, data_dir=test_dirs.get(p.data_dir.rstrip("/"), p.data_dir))
    out = {"run": run, "depth": p.depth, "variant": p.variant, "seed": p.seed,
           "steps": p.max_steps, "data_dir": p.data_dir}
    top1 = lambda m: round(100 * m["top_1_accuracy"], 2)
    running = eval_lib.evaluate(p, run, bn_stats="running")
    out["running"], out["test_images"] = top1(running), running["num_examples"]
    out["batch"] = top1(eval_lib.evaluate(dataclasses.replace(p, batch_size=1000), run,
                                          bn_stats="batch"))
    for source in ("eval", "train"):
        q = dataclasses.replace(p, bn_recompute_input=source)
        info = bn_stats.recompute(q, None, 80)
        out[source] = top1(eval_lib.evaluate(q, run, bn_stats="recomputed"))
        out[source + "_images"] = info["num_images"]
    return out


def main(argv):
    logging.set_verbosity(logging.WARNING)
    out_path = argv[1]
    test_dirs = dict(a.split("=", 1)[1].rstrip("/").split(":", 1) for a in argv[2:]
                     if a.startswith("--test_dir="))
    runs = [a for a in argv[2:] if not a.startswith("--")]
    done = set()
    if os.path.exists(out_path):
        with open(out_path) as f:
            done = {json.loads(line)["run"] for line in f if line.strip()}
    for run in runs:
        if run in done or not os.path.exists(os.path.join(run, "checkpoint")):
            continue
        row = measure(run, test_dirs)
        with open(out_path, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)
    with open(out_path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    print("%-40s %8s %8s %8s %8s" % ("run", "running", "eval", "train", "batch"))
    for r in rows:
        print("%-40s %8.2f %8.2f %8.2f %8.2f" % (os.path.relpath(r["run"], "/tmp/m33"),
              r["running"], r["eval"], r["train"], r["batch"]))
    summary(rows)


def summary(rows):
    """Per (data set, steps, net): each column's mean over the seeds and its range, and the
    issue's criterion: recomputed (train) within 0.3 points of running or better."""
    groups = {}
    for r in rows:
        net = ("plain-%d" if r["variant"] == "plain" or "plain" in r["run"] else "ResNet-%d") \
            % r["depth"]
        data = "%s (%d test)" % (os.path.basename(r["data_dir"].rstrip("/")),
                                 r.get("test_images", 1000))
        groups.setdefault((data, r["steps"], net), []).append(r)
    keys = ("running", "eval", "train", "batch")
    print("\n| data | steps | net | seeds | running | recomputed, eval input | recomputed, train "
          "input | batch statistics | train - running |")
    print("|---|---|---|---|---|---|---|---|---|")
    worst = None
    for (data, steps, net), rs in sorted(groups.items()):
        cells = []
        for key in keys:
            v = [r[key] for r in rs]
            cells.append("%.2f (%.1f–%.1f)" % (sum(v) / len(v), min(v), max(v)) if len(v) > 1
                         else "%.2f" % v[0])
        gaps = [r["train"] - r["running"] for r in rs]
        worst = min(gaps + ([worst] if worst is not None else []))
        print("| %s | %d | %s | %d | %s | %s |" % (data, steps, net, len(rs), " | ".join(cells),
                                                 ", ".join("%+.2f" % g for g in gaps)))
    mean = lambda key: sum(r[key] for r in rows) / len(rows)
    within = sum(r["train"] - r["running"] >= -0.3 - 1e-9 for r in rows)
    print("\n%d runs; means: running %.2f, eval %.2f, train %.2f, batch %.2f; train within 0.3 "
          "of running or above in %d of %d; the worst train - running: %+.2f points"
          % (len(rows), mean("running"), mean("eval"), mean("train"), mean("batch"), within,
             len(rows), worst))


if __name__ == "__main__":
    main(sys.argv)
