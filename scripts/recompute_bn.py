#!/usr/bin/env python
"""Recompute a checkpoint's BN statistics over training images, as the paper's models were.

    python scripts/recompute_bn.py --flagfile=scripts/flags/cifar10_resnet20.flags \
        [--model_dir=DIR] [--checkpoint_path=PREFIX] [--num_batches=80] [--batch_size=128]

Takes the training flagfile (model and data flags). Runs --num_batches batches of the training
split (--bn_recompute_input=train, the default: the training augmentation with a fixed seed;
=eval: the evaluation preprocessing, one pass shuffled with the same fixed seed) through the
network with frozen weights, computes each BN layer's population mean and variance, and writes
<model_dir>/bn_recomputed/ (a checkpoint with only the BN statistics changed, plus
bn_stats.json), atomically. evaluate.py then uses it.
"""

from absl import app, flags, logging

from resnet_tf1 import bn_stats, errors, run_flags

FLAGS = flags.FLAGS
run_flags.define()
flags.adopt_module_key_flags(run_flags)
flags.DEFINE_string("checkpoint_path", None, "The checkpoint to recompute (default: the latest "
                    "training checkpoint in --model_dir).")
flags.DEFINE_integer("num_batches", 80, "Training batches to average over (80 x 128 = 10,240 "
                     "CIFAR images).")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError("unexpected arguments: %s" % " ".join(argv[1:]))
    try:
        params = run_flags.params_from_flags()
        if FLAGS.num_batches <= 0:
            raise errors.FlagError("--num_batches=%d must be positive" % FLAGS.num_batches)
        info = bn_stats.recompute(params, FLAGS.checkpoint_path, FLAGS.num_batches)
    except run_flags.EXPECTED_ERRORS as e:
        return run_flags.report("recompute_bn", e)
    if info is None:
        print("no BN layer trained (--trainable_scopes): nothing to recompute")
        return 0
    print("recomputed BN statistics over %d training images (%s input) in %.1f s: %s"
          % (info["num_images"], info["input"], info["seconds"], info["checkpoint"]))
    logging.info("source checkpoint %s is unchanged", info["source"])
    return 0


if __name__ == "__main__":
    app.run(main)
