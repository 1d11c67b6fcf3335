#!/usr/bin/env python
"""The paper's CIFAR-10 comparison (Table 6, Fig. 6) in one unattended, restartable command.

    python scripts/reproduce_table6.py --data_dir=data/cifar10 --out=table6
    python scripts/reproduce_table6.py --data_dir=data/cifar10 --out=fig6 --depths=20,56 --plain

For each net (ResNet-20/32/44/56/110 by default; with --plain also the plain net of each depth,
Fig. 6 left) it trains `scripts/flags/cifar10_{resnet,plain}N.flags` into OUT/runs/<name> with
`evaluate.py --watch` beside it (the test-error curve), evaluates the final checkpoint (with the
recomputed BN statistics) and records the result in OUT/results/<name>.json. After every net it
rewrites OUT/table6.md (test error beside the paper's Table 6), OUT/fig6.png (training error
dashed, test error bold, as Fig. 6) and OUT/fig6.csv.

Restartable: a net with a result is skipped; an interrupted one resumes from its last
checkpoint (train.py resumes by itself). A net whose training fails is reported and the next one
runs; the exit status is then 1. Logs: OUT/logs/<name>.{train,watch,eval}.log.

--max_steps shortens the paper's 64k-step schedule for a small machine: the learning-rate
boundaries keep their place in the run (32k/48k of 64k -> 50 % / 75 %). --flagfiles replaces the
depth list with your own flagfiles (each must be a CIFAR-10 training flagfile).
"""

import glob
import json
import os
import re
import signal
import subprocess
import sys
import time

from absl import app, flags, logging

from resnet_tf1 import curves, errors, fileio
from resnet_tf1 import model as model_lib
from resnet_tf1 import run_flags as run_flags_lib
from resnet_tf1 import rundir

HERE = os.path.dirname(os.path.abspath(__file__))

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "The CIFAR-10 --data_dir every net trains on (required).")
flags.DEFINE_string("out", None, "Output directory: runs/, logs/, results/, table6.md, fig6.png "
                    "(required; reused on a restart).")
flags.DEFINE_list("depths", ["20", "32", "44", "56", "110"], "The depths (6n+2) to train.")
flags.DEFINE_bool("plain", False, "Also train the plain net of each depth (Fig. 6 left).")
flags.DEFINE_bool("residual", True, "Train the ResNets (--noresidual with --plain: plain only).")
flags.DEFINE_list("flagfiles", None, "Train these flagfiles instead of --depths (their order).")
flags.DEFINE_string("flags_dir", os.path.join(HERE, "flags"), "Where cifar10_{resnet,plain}N"
                    ".flags are.")
flags.DEFINE_integer("max_steps", None, "Train each net this many steps instead of its "
                     "flagfile's, with the learning-rate boundaries scaled to keep their place.",
                     lower_bound=1)
flags.DEFINE_integer("save_checkpoints_steps", None, "Checkpoint (and so test-error point) "
                     "interval; default: the flagfile's, or max_steps/16 with --max_steps.",
                     lower_bound=1)
flags.DEFINE_multi_string("extra_flag", [], "A flag passed on to train.py and evaluate.py, "
                          "e.g. --extra_flag=--batch_size=64 (repeatable).")
flags.DEFINE_bool("watch", True, "Evaluate every checkpoint beside training (the test curve); "
                  "--nowatch evaluates only the final one.")
flags.DEFINE_integer("log_every_secs", 60, "Report the training progress this often.",
                     lower_bound=1)

# The paper's Table 6: CIFAR-10 test error (%) and parameters; ResNet-110's is the best of 5
# runs (mean 6.61 +- 0.16). The plain nets are drawn in Fig. 6, not tabulated.
PAPER_TABLE6 = {20: (8.75, "0.27M"), 32: (7.51, "0.46M"), 44: (7.17, "0.66M"),
                56: (6.97, "0.85M"), 110: (6.43, "1.7M"), 1202: (7.93, "19.4M")}


class ReproduceError(errors.UserError):
    """One line naming the flag or file."""


def plan():
    """[(name, flagfile)] in training order."""
    if FLAGS.flagfiles:
        paths = FLAGS.flagfiles
    else:
        try:
            depths = [int(d) for d in FLAGS.depths]
        except ValueError:
            raise ReproduceError("--depths must be comma-separated integers: got %s"
                                 % ",".join(FLAGS.depths))
        bad = [d for d in depths if not model_lib.is_cifar_depth(d)]
        if bad:
            raise ReproduceError("--depths must be 6n+2 (20, 32, 44, 56, 110, ...): got %s"
                                 % ",".join(map(str, bad)))
        kinds = (["resnet"] if FLAGS.residual else []) + (["plain"] if FLAGS.plain else [])
        if not kinds:
            raise ReproduceError("--noresidual without --plain trains nothing")
        paths = [os.path.join(FLAGS.flags_dir, "cifar10_%s%d.flags" % (kind, d))
                 for kind in kinds for d in depths]
    runs = []
    for path in paths:
        if not os.path.exists(path):
            raise ReproduceError("flagfile %s does not exist" % path)
        params = run_flags_lib.params_from_argv(["--flagfile=" + path])
        if params.dataset != "cifar10":
            raise ReproduceError("%s trains --dataset=%s, expected cifar10"
                                 % (path, params.dataset))
        runs.append((os.path.splitext(os.path.basename(path))[0], path, params))
    names = [name for name, _, _ in runs]
    if len(set(names)) != len(names):
        raise ReproduceError("two flagfiles have the same name: %s" % ", ".join(names))
    return runs


def run_flags(name, flagfile, params):
    """The flags train.py and evaluate.py get for one net (its flagfile's `params`), and its
    max_steps."""
    out = os.path.abspath(FLAGS.out)
    argv = ["--flagfile=%s" % os.path.abspath(flagfile),
            "--data_dir=%s" % os.path.abspath(FLAGS.data_dir),
            "--model_dir=%s" % os.path.join(out, "runs", name)]
    max_steps = params.max_steps
    if FLAGS.max_steps:
        if params.lr_boundaries:
            scaled = [max(1, int(round(b * FLAGS.max_steps / max_steps)))
                      for b in params.lr_boundaries]
            argv.append("--lr_boundaries=%s" % ",".join(map(str, scaled)))
        max_steps = FLAGS.max_steps
        argv.append("--max_steps=%d" % max_steps)
        argv.append("--save_checkpoints_steps=%d" % (FLAGS.save_checkpoints_steps or
                                                     max(1, max_steps // 16)))
    elif FLAGS.save_checkpoints_steps:
        argv.append("--save_checkpoints_steps=%d" % FLAGS.save_checkpoints_steps)
    return argv + list(FLAGS.extra_flag), max_steps


def _script(name):
    return [sys.executable, os.path.join(HERE, name)]


def _spawn(cmd, log_path):
    log = open(log_path, "ab")
    log.write(("\n$ %s\n" % " ".join(cmd)).encode())
    log.flush()
    # Its own process group: an interrupted driver takes its children down with it (below).
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc, grace=30):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _last_line(path, pattern):
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 20000))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if re.search(pattern, line):
            return line.strip()
    return None


def _error_line(log_path):
    return (_last_line(log_path, r"^(train|evaluate): error: ") or
            _last_line(log_path, r"Error") or "see %s" % log_path)


def seconds_per_step(run_dir):
    """Median wall time per step between consecutive training summaries of one process (a
    restart's gap and start-up are left out), from the event files; None without two."""
    rates = []
    for path in sorted(glob.glob(os.path.join(run_dir, "events.out.tfevents.*"))):
        last = None
        for step, wall in curves.read_wall_times(path, curves.TRAIN_TAG):
            if last is not None and step > last[0]:
                rates.append((wall - last[1]) / (step - last[0]))
            last = (step, wall)
    if not rates:
        return None
    rates.sort()
    return rates[len(rates) // 2]


def count_parameters(run_dir):
    """The trainable parameters of the run's model (from model_config.json)."""
    import tensorflow as tf
    kwargs = rundir.read_record(run_dir).config["model"]
    with tf.Graph().as_default():
        net = model_lib.ResNet(**kwargs)
        net(tf.compat.v1.placeholder(tf.float32, [1, 32, 32, 3]), is_training=False)
        return int(sum(v.shape.num_elements() for v in tf.compat.v1.trainable_variables()))


def train_one(index, total, name, flagfile, params):
    """Trains and evaluates one net; returns its result dict (also written to results/)."""
    out = FLAGS.out
    argv, max_steps = run_flags(name, flagfile, params)
    run_dir = os.path.join(out, "runs", name)
    logs = os.path.join(out, "logs")
    logging.info("[%d/%d] %s: training to step %d (%s); logs in %s/%s.*.log", index, total, name,
                 max_steps, flagfile, logs, name)
    start = time.time()
    train = _spawn(_script("train.py") + argv, os.path.join(logs, name + ".train.log"))
    watch = None
    if FLAGS.watch:
        watch = _spawn(_script("evaluate.py") + argv + ["--watch", "--watch_timeout=86400"],
                       os.path.join(logs, name + ".watch.log"))
    try:
        while True:
            try:
                train.wait(FLAGS.log_every_secs)
                break
            except subprocess.TimeoutExpired:
                progress = _last_line(os.path.join(logs, name + ".train.log"), r"step \d+")
                logging.info("[%d/%d] %s: %s", index, total, name,
                             progress[progress.find("step"):] if progress else "starting")
    finally:
        _stop(train)
        if watch is not None:
            # --watch ends by itself once it has evaluated max_steps (a minute or two).
            if train.returncode == 0:
                try:
                    watch.wait(600)
                except subprocess.TimeoutExpired:
                    pass
            _stop(watch)
    if train.returncode != 0:
        raise ReproduceError("%s: training failed (exit %d): %s"
                             % (name, train.returncode,
                                _error_line(os.path.join(logs, name + ".train.log"))))
    # The final evaluation reads <run_dir>/bn_recomputed when training wrote it.
    evaluate = _spawn(_script("evaluate.py") + argv, os.path.join(logs, name + ".eval.log"))
    if evaluate.wait() != 0:
        raise ReproduceError("%s: evaluation failed (exit %d): %s"
                             % (name, evaluate.returncode,
                                _error_line(os.path.join(logs, name + ".eval.log"))))
    with open(rundir.metrics_path(run_dir)) as f:
        metrics = json.load(f)
    if metrics["global_step"] != max_steps:
        raise ReproduceError("%s: the final checkpoint is at step %s, expected %d"
                             % (name, metrics["global_step"], max_steps))
    model = rundir.read_record(run_dir).config["model"]
    result = {"name": name, "flagfile": os.path.abspath(flagfile),
              "label": rundir.label(run_dir), "depth": model["depth"],
              "plain": model.get("shortcut") == "none", "max_steps": max_steps,
              "flags": argv, "test_error": 100.0 * (1.0 - metrics["top_1_accuracy"]),
              "num_examples": metrics["num_examples"], "checkpoint": metrics["checkpoint"],
              "parameters": count_parameters(run_dir),
              "seconds_per_step": seconds_per_step(run_dir),
              "wall_seconds_this_invocation": round(time.time() - start, 1)}
    fileio.write_json(os.path.join(out, "results", name + ".json"), result)
    logging.info("[%d/%d] %s: test error %.2f %% at step %d (%.0f s)", index, total, name,
                 result["test_error"], max_steps, time.time() - start)
    return result


def finished(name, max_steps):
    path = os.path.join(FLAGS.out, "results", name + ".json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        result = json.load(f)
    return result if result.get("max_steps") == max_steps else None


def write_table(results, failed):
    lines = ["# CIFAR-10: test error against the paper's Table 6", "",
             "Data: `%s`. Each net trained by `scripts/reproduce_table6.py` with its flagfile%s; "
             "test error of the final checkpoint with BN statistics recomputed over training "
             "batches (the paper's way)." % (os.path.abspath(FLAGS.data_dir),
                                             " and --max_steps=%d (learning-rate boundaries "
                                             "scaled)" % FLAGS.max_steps if FLAGS.max_steps
                                             else ""), "",
             "| net | layers | params | steps | s/step | test error (%) | paper (%) |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        paper = PAPER_TABLE6.get(r["depth"]) if not r["plain"] else None
        lines.append("| %s | %d | %s | %d | %s | %.2f | %s |" % (
            r["label"], r["depth"], "{:,}".format(r["parameters"]), r["max_steps"],
            "%.3f" % r["seconds_per_step"] if r["seconds_per_step"] else "-",
            r["test_error"], "%.2f (%s)" % paper if paper else
            ("Fig. 6 only" if r["plain"] else "-")))
    if failed:
        lines += ["", "Not finished: " + "; ".join(failed)]
    lines += ["", "Paper (He et al. 2015, Table 6): trained 64k steps at batch 128 on 45k/5k; "
              "ResNet-110's 6.43 is the best of 5 runs (mean 6.61 +- 0.16). s/step: median wall "
              "time per training step from the event files, on the machine that ran it.", ""]
    fileio.write_text(os.path.join(FLAGS.out, "table6.md"), "\n".join(lines))


def write_figure(results):
    run_dirs = [os.path.join(FLAGS.out, "runs", r["name"]) for r in results]
    runs = [curves.read_run(d) for d in run_dirs]
    curves.write_csv(runs, os.path.join(FLAGS.out, "fig6.csv"))
    try:
        curves.plot(runs, os.path.join(FLAGS.out, "fig6.png"), title="CIFAR-10 (%s)"
                    % os.path.basename(os.path.normpath(FLAGS.data_dir)))
    except ImportError:
        logging.warning("fig6.png not drawn: matplotlib is not installed (pip install -e "
                        "'.[plots]'); fig6.csv holds the points")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError("unexpected arguments: %s" % " ".join(argv[1:]))
    for name in ("data_dir", "out"):
        if not FLAGS[name].value:
            raise app.UsageError("--%s is required" % name)
    try:
        runs = plan()
        for sub in ("runs", "logs", "results"):
            os.makedirs(os.path.join(FLAGS.out, sub), exist_ok=True)
        results, failed = [], []
        for index, (name, flagfile, params) in enumerate(runs, 1):
            _, max_steps = run_flags(name, flagfile, params)
            result = finished(name, max_steps)
            if result:
                logging.info("[%d/%d] %s: finished earlier (test error %.2f %%); skipped", index,
                             len(runs), name, result["test_error"])
            else:
                try:
                    result = train_one(index, len(runs), name, flagfile, params)
                except ReproduceError as e:
                    logging.error("%s", e)
                    failed.append(str(e))
                    continue
            results.append(result)
            write_table(results, failed)
            write_figure(results)
        write_table(results, failed)
    except (errors.UserError, OSError) as e:
        print("reproduce_table6: error: %s" % fileio.error_line(e), file=sys.stderr)
        return 1
    logging.info("wrote %s", os.path.join(FLAGS.out, "table6.md"))
    if failed:
        print("reproduce_table6: error: %d of %d nets did not finish: %s"
              % (len(failed), len(runs), failed[0]), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    app.run(main)
