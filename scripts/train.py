#!/usr/bin/env python
"""Train a ResNet with sessions: python scripts/train.py --flagfile=scripts/flags/<recipe>.flags

Resumes from the latest checkpoint in --model_dir; writes --model_dir/flags.txt, a flagfile that
reproduces the run; TensorBoard summaries in --model_dir. Flags: `resnet_tf1.run_config.RunParams`.

On a cluster (TensorFlow's gRPC runtime; see `resnet_tf1.cluster` and BUILD.md), every task runs
this script with the same flags plus its role:
    python scripts/train.py --flagfile=... --job_name=ps --task_index=0 \
        --ps_hosts=h0:2222 --worker_hosts=h1:2222,h2:2222
    python scripts/train.py --flagfile=... --job_name=worker --task_index=0 ...   # the chief
or with TF_CONFIG set instead of the four cluster flags. --batch_size is per worker.
--variable_update=collective_all_reduce needs no parameter servers (workers only).
scripts/launch_local_cluster.py starts such a cluster on this machine.
"""

import os
import sys

from absl import app, flags, logging

from resnet_tf1 import cluster, run_flags, rundir, train_lib

run_flags.define()
run_flags.define_cluster()
flags.adopt_module_key_flags(run_flags)  # --helpshort lists them


def main(argv):
    if len(argv) > 1:
        raise app.UsageError("unexpected arguments: %s" % " ".join(argv[1:]))
    config = None
    try:
        params = run_flags.params_from_flags()
        config, job = run_flags.job_from_flags()
        if config is not None and config.job_name == "ps":
            cluster.run_parameter_server(config)
            return _end(config, 0)
        logging.info("training %s ResNet-%d on %s into %s (flags in %s)", params.variant,
                     params.depth, params.dataset, params.model_dir,
                     rundir.flags_path(params.model_dir))
        step = train_lib.train(params, flags_text=run_flags.flagfile_text(params), job=job)
    except run_flags.EXPECTED_ERRORS as e:
        return _end(config, run_flags.report("train", e))
    if job is not None and not job.is_chief:
        logging.info("%s done; the chief writes the checkpoints in %s",
                     cluster.task_name(job.config), params.model_dir)
    else:
        logging.info("done at step %d; checkpoints in %s", step, params.model_dir)
    return _end(config, 0)


def _end(config, code):
    """The exit code; a cluster task ends right here: TensorFlow's gRPC teardown at interpreter
    exit can block for long on a peer that is gone or busy, and everything is written."""
    if config is None:
        return code
    logging.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    app.run(main)
