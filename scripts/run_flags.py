"""Flags shared by train.py and evaluate.py, so that one flagfile drives both.

Only scripts read FLAGS; `params_from_flags()` turns them into the library's plain TrainParams.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # noqa: E402

from resnet_tf1 import data, model, train_lib  # noqa: E402

FLAGS = flags.FLAGS

# Data.
flags.DEFINE_enum("dataset", "cifar10", data.DATASETS, "Training / evaluation data.")
flags.DEFINE_string("data_dir", "data/cifar10", "Where the dataset lives (CIFAR-10 is downloaded "
                    "here when absent).")
flags.DEFINE_bool("holdout_validation", False, "CIFAR-10: train on 45k, evaluate on the held-out "
                  "5k (the paper's split) instead of training on 50k and evaluating on the test "
                  "set.")
flags.DEFINE_string("model_dir", None, "Checkpoints, summaries, flags.txt; training resumes from "
                    "the latest checkpoint here.")
# Model.
flags.DEFINE_integer("depth", 20, "ResNet depth: 18, 34, 50, 101, 152, 200 or CIFAR 6n+2.")
flags.DEFINE_enum("variant", "paper", model.VARIANTS, "Where downsampling units stride.")
flags.DEFINE_enum("stem", None, model.STEMS, "Stem override: 'cifar' (3x3, no pool) on an "
                  "ImageNet depth gives the seed-002 CIFAR ResNet-18.")
flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Compute dtype (variables stay "
                  "float32).")
flags.DEFINE_enum("data_format", "NHWC", model.DATA_FORMATS, "Internal layout (NCHW for GPUs).")
# Optimisation.
flags.DEFINE_integer("batch_size", 128, "Global batch size (split across --num_gpus towers).")
flags.DEFINE_integer("max_steps", 64000, "Stop at this global step.")
flags.DEFINE_enum("optimizer", "momentum", ["momentum", "adam"], "Optimizer.")
flags.DEFINE_float("learning_rate", 0.1, "Initial learning rate.")
flags.DEFINE_list("lr_boundaries", ["32000", "48000"], "Steps where the rate changes.")
flags.DEFINE_list("lr_values", [], "Rates for each interval (one more than boundaries); default "
                  "--learning_rate divided by 10 at each boundary.")
flags.DEFINE_integer("warmup_steps", 0, "Train at a tenth of the first rate for this many steps "
                     "(the paper's ResNet-110: 400).")
flags.DEFINE_float("momentum", 0.9, "Momentum.")
flags.DEFINE_float("weight_decay", 1e-4, "L2 weight decay on conv and FC weights.")
# Placement and checkpoints.
flags.DEFINE_integer("num_gpus", 0, "Towers on /gpu:0../gpu:N-1 with averaged gradients (N>1).")
flags.DEFINE_string("device", "/gpu:0", "Device of the model with one tower (soft placement "
                    "falls back to the CPU).")
flags.DEFINE_integer("save_checkpoints_steps", 1000, "Checkpoint every N steps.")
flags.DEFINE_integer("log_every_n_steps", 100, "Progress line and summaries every N steps.")
flags.DEFINE_string("init_checkpoint", None, "Fine-tune from this checkpoint (when model_dir has "
                    "none).")
flags.DEFINE_list("exclude_scopes", [], "Variable scopes not restored from --init_checkpoint, "
                  "e.g. resnet50/logits.")
flags.DEFINE_integer("seed", None, "Graph-level random seed.")

RUN_FLAGS = ["dataset", "data_dir", "holdout_validation", "model_dir", "depth", "variant",
             "stem", "dtype", "data_format", "batch_size", "max_steps", "optimizer",
             "learning_rate", "lr_boundaries", "lr_values", "warmup_steps", "momentum",
             "weight_decay", "num_gpus", "device", "save_checkpoints_steps", "log_every_n_steps",
             "init_checkpoint", "exclude_scopes", "seed"]


def _ints(name, values):
    try:
        return tuple(int(v) for v in values)
    except ValueError:
        raise flags.ValidationError("--%s must be integers: %s" % (name, ",".join(values)))


def _floats(name, values):
    try:
        return tuple(float(v) for v in values)
    except ValueError:
        raise flags.ValidationError("--%s must be numbers: %s" % (name, ",".join(values)))


def params_from_flags():
    """TrainParams from FLAGS; raises ValueError naming the flag on bad values."""
    if not FLAGS.model_dir:
        raise ValueError("--model_dir is required")
    try:
        model.ResNet(depth=FLAGS.depth, variant=FLAGS.variant)
    except ValueError:
        raise ValueError("--depth=%d is not a ResNet depth: expected 18, 34, 50, 101, 152, 200 "
                         "or a CIFAR depth 6n+2 (20, 32, 44, 56, 110, ...)" % FLAGS.depth)
    for name in ("batch_size", "max_steps", "log_every_n_steps", "save_checkpoints_steps"):
        if getattr(FLAGS, name) <= 0:
            raise ValueError("--%s=%d must be positive" % (name, getattr(FLAGS, name)))
    return train_lib.TrainParams(
        model_dir=FLAGS.model_dir, dataset=FLAGS.dataset, data_dir=FLAGS.data_dir,
        holdout_validation=FLAGS.holdout_validation, depth=FLAGS.depth, variant=FLAGS.variant,
        stem=FLAGS.stem, dtype=FLAGS.dtype, data_format=FLAGS.data_format,
        batch_size=FLAGS.batch_size, max_steps=FLAGS.max_steps, optimizer=FLAGS.optimizer,
        learning_rate=FLAGS.learning_rate,
        lr_boundaries=_ints("lr_boundaries", FLAGS.lr_boundaries),
        lr_values=_floats("lr_values", FLAGS.lr_values), warmup_steps=FLAGS.warmup_steps,
        momentum=FLAGS.momentum, weight_decay=FLAGS.weight_decay, num_gpus=FLAGS.num_gpus,
        device=FLAGS.device, save_checkpoints_steps=FLAGS.save_checkpoints_steps,
        log_every_n_steps=FLAGS.log_every_n_steps, init_checkpoint=FLAGS.init_checkpoint,
        exclude_scopes=tuple(FLAGS.exclude_scopes), seed=FLAGS.seed)


def flagfile_text():
    """The effective run flags as a flagfile that reproduces the run."""
    return "".join(FLAGS[name].serialize() + "\n" for name in RUN_FLAGS
                   if FLAGS[name].value is not None and FLAGS[name].serialize())
