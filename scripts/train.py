#!/usr/bin/env python
"""Train a ResNet with sessions: python scripts/train.py --flagfile=scripts/flags/<recipe>.flags

Resumes from the latest checkpoint in --model_dir; writes --model_dir/flags.txt, a flagfile that
reproduces the run; TensorBoard summaries in --model_dir. Flags: `resnet_tf1.run_config.RunParams`.
"""

import os

from absl import app, flags, logging

from resnet_tf1 import run_flags, train_lib

run_flags.define()
flags.adopt_module_key_flags(run_flags)  # --helpshort lists them


def main(argv):
    if len(argv) > 1:
        raise app.UsageError("unexpected arguments: %s" % " ".join(argv[1:]))
    try:
        params = run_flags.params_from_flags()
        logging.info("training %s ResNet-%d on %s into %s (flags in %s)", params.variant,
                     params.depth, params.dataset, params.model_dir,
                     os.path.join(params.model_dir, train_lib.FLAGS_FILE))
        step = train_lib.train(params, flags_text=run_flags.flagfile_text())
    except run_flags.EXPECTED_ERRORS as e:
        return run_flags.report("train", e)
    logging.info("done at step %d; checkpoints in %s", step, params.model_dir)
    return 0


if __name__ == "__main__":
    app.run(main)
