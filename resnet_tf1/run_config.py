"""One run configuration, shared by training, evaluation, the benchmark, prediction and export.

`RunParams` is the plain params object the libraries take (they never read absl flags); each of
its fields that is a command-line flag carries its help text, so `resnet_tf1.run_flags` generates
the flags from this one declaration. Beside it: the model a run builds, the session config, device
resolution and the input batches.
"""

import dataclasses
import math
import os

import tensorflow as tf
from absl import logging

from resnet_tf1 import data as data_lib
from resnet_tf1 import errors
from resnet_tf1 import model as model_lib
from resnet_tf1 import rundir
from resnet_tf1.data import synthetic

tf1 = tf.compat.v1


def _flag(default, help, choices=None, element=None):
    """A field that is also a command-line flag of train.py / evaluate.py.

    `choices` makes an enum flag; `element` (int, float or str) makes a comma-separated list flag
    whose value is a tuple of that type.
    """
    return dataclasses.field(default=default, metadata={
        "flag": True, "help": help, "choices": choices, "element": element})


@dataclasses.dataclass
class RunParams:
    """Everything a training or evaluation run needs; scripts fill it from flags.

    Field order is the order of `flags.txt`; names and defaults are the flags' (a contract:
    flagfiles in the wild use them).
    """
    # Data.
    dataset: str = _flag("cifar10", "Training / evaluation data.", choices=data_lib.DATASETS)
    data_dir: str = _flag("data/cifar10", "Where the dataset lives (CIFAR-10 is downloaded here "
                          "when absent).")
    holdout_validation: bool = _flag(False, "CIFAR-10: train on 45k, evaluate on the held-out "
                                     "5k (the paper's split) instead of training on 50k and "
                                     "evaluating on the test set.")
    model_dir: str = _flag(None, "Checkpoints, summaries, flags.txt; training resumes from the "
                           "latest checkpoint here.")
    # Model.
    depth: int = _flag(20, "ResNet depth: 18, 34, 50, 101, 152, 200 or CIFAR 6n+2.")
    variant: str = _flag("paper", "Where downsampling units stride.", choices=model_lib.VARIANTS)
    stem: str = _flag(None, "Stem override: 'cifar' (3x3, no pool) on an ImageNet depth gives the "
                      "seed-002 CIFAR ResNet-18.", choices=model_lib.STEMS)
    shortcut: str = _flag(None, "Shortcut option: the paper's A (zero-padded identity; CIFAR "
                          "default), B (projection where the shape changes; ImageNet default), "
                          "C (projection everywhere), or none (the paper's plain net).",
                          choices=model_lib.SHORTCUTS)
    dtype: str = _flag("float32", "Compute dtype (variables stay float32; BN statistics, the "
                       "loss and the softmax in float32).",
                       choices=model_lib.DTYPES)
    loss_scale: str = _flag("dynamic", "--dtype=float16 training: 'dynamic' (starts at 2^15; a "
                            "step whose gradients overflow is skipped and the scale halved; "
                            "doubled after 2000 good steps), a number (static) or 'none'. Other "
                            "dtypes need no scaling and ignore it.")
    data_format: str = _flag("NHWC", "Internal layout (NCHW for GPUs).",
                             choices=model_lib.DATA_FORMATS)
    bn_decay: float = _flag(0.997, "Decay of the BN running statistics (unbiased: a cumulative "
                            "average for the first 1/(1-decay) steps, then exponential). Short "
                            "runs want a short memory: the CIFAR recipes use 0.7.")
    # Optimisation.
    batch_size: int = _flag(128, "Global batch size (split across --num_gpus towers).")
    max_steps: int = _flag(64000, "Stop at this global step.")
    optimizer: str = _flag("momentum", "Optimizer.", choices=("momentum", "adam"))
    learning_rate: float = _flag(0.1, "Initial learning rate.")
    lr_boundaries: tuple = _flag((32000, 48000), "Steps where the rate changes.", element=int)
    lr_values: tuple = _flag((), "Rates for each interval (one more than boundaries); default "
                             "--learning_rate divided by 10 at each boundary.", element=float)
    warmup_steps: int = _flag(0, "Train at a tenth of the first rate for this many steps (the "
                              "paper's ResNet-110: 400).")
    momentum: float = _flag(0.9, "Momentum.")
    weight_decay: float = _flag(1e-4, "L2 weight decay on conv and FC weights.")
    # Placement and checkpoints.
    num_gpus: int = _flag(0, "Towers on /gpu:0../gpu:N-1 with averaged gradients (N>1).")
    device: str = _flag("/gpu:0", "Device of the model with one tower (soft placement falls back "
                        "to the CPU).")
    save_checkpoints_steps: int = _flag(1000, "Checkpoint every N steps.")
    log_every_n_steps: int = _flag(100, "Progress line and summaries every N steps.")
    init_checkpoint: str = _flag(None, "Fine-tune from this checkpoint (when model_dir has none).")
    exclude_scopes: tuple = _flag((), "Variable scopes not restored from --init_checkpoint, e.g. "
                                  "resnet50/logits.", element=str)
    seed: int = _flag(None, "Graph-level random seed, and the input stream's: with it the "
                      "shuffle order and every augmentation draw repeat from run to run (worker "
                      "k of a cluster uses seed + 1000 k; a run resumed at step n a stream of "
                      "its own, from seed, k and n). Unset: fresh each run.")
    recompute_bn_batches: int = _flag(80, "After training, recompute the BN statistics over this "
                                      "many training batches, as the paper's models were (80 x "
                                      "128 = 10,240 CIFAR images); 0 turns it off.")
    # Not flags.
    keep_checkpoint_max: int = 5
    # Overrides of the dataset's image size and class count (synthetic data shaped like CIFAR).
    image_size: int = None
    class_count: int = None

    def num_classes(self):
        return self.class_count or data_lib.spec(self.dataset).num_classes

    def resolved_image_size(self):
        return self.image_size or data_lib.spec(self.dataset).image_size

    def validate(self):
        """Raises errors.FlagError naming the flag of the first value outside its meaningful range.

        Nothing is written before this passes, so a bad flag never touches a run's files.
        """
        if not self.model_dir:
            raise errors.FlagError("--model_dir is required")
        if os.path.exists(self.model_dir) and not os.path.isdir(self.model_dir):
            raise errors.FlagError("--model_dir=%s is a file, expected a directory"
                                   % self.model_dir)
        try:
            model_lib.ResNet(depth=self.depth, variant=self.variant)
        except ValueError:
            raise errors.FlagError("--depth=%r is not a ResNet depth: expected 18, 34, 50, 101, "
                                   "152, 200 or a CIFAR depth 6n+2 (20, 32, 44, 56, 110, ...)"
                                   % (self.depth,))
        for name in ("batch_size", "max_steps", "log_every_n_steps", "save_checkpoints_steps"):
            if getattr(self, name) <= 0:
                raise errors.FlagError("--%s=%d must be positive" % (name, getattr(self, name)))
        for name in ("warmup_steps", "num_gpus", "weight_decay", "learning_rate"):
            if not getattr(self, name) >= 0:  # also rejects NaN
                raise errors.FlagError("--%s=%r must not be negative" % (name, getattr(self, name)))
        if not math.isfinite(self.learning_rate):
            raise errors.FlagError("--learning_rate=%r must be a finite number"
                                   % self.learning_rate)
        if self.optimizer == "momentum" and not 0 < self.momentum < 1:
            raise errors.FlagError("--momentum=%r must be in (0, 1) for --optimizer=momentum"
                                   % (self.momentum,))
        if any(not (v >= 0 and math.isfinite(v)) for v in self.lr_values):
            raise errors.FlagError("--lr_values must be finite and not negative: %s"
                                   % ",".join(str(v) for v in self.lr_values))
        if any(b <= 0 for b in self.lr_boundaries) or \
                list(self.lr_boundaries) != sorted(set(self.lr_boundaries)):
            raise errors.FlagError("--lr_boundaries must be positive steps in increasing order: %s"
                                   % ",".join(str(b) for b in self.lr_boundaries))
        if self.lr_values and len(self.lr_values) != len(self.lr_boundaries) + 1:
            raise errors.FlagError("--lr_values has %d values; --lr_boundaries has %d boundaries, "
                                   "so %d values were expected" % (len(self.lr_values),
                                                                   len(self.lr_boundaries),
                                                                   len(self.lr_boundaries) + 1))
        if self.loss_scale not in ("dynamic", "none"):
            try:
                ok = float(self.loss_scale) >= 1 and math.isfinite(float(self.loss_scale))
            except ValueError:
                ok = False
            if not ok:
                raise errors.FlagError("--loss_scale=%s: expected dynamic, none or a finite number "
                                       ">= 1" % self.loss_scale)
        if not 0 <= self.bn_decay < 1:
            raise errors.FlagError("--bn_decay=%r must be in [0, 1)" % (self.bn_decay,))
        if self.recompute_bn_batches < 0:
            raise errors.FlagError("--recompute_bn_batches=%d must be 0 (off) or positive"
                                   % self.recompute_bn_batches)
        return self


# The model arguments that make a run's checkpoints what they are; dtype, data_format and
# bn_decay can change between sessions of one run.
_IDENTITY = ("depth", "num_classes", "variant", "stem", "shortcut")


def describe_model(kwargs):
    """'a depth-20 CIFAR ResNet' (+ the non-default variant / stem / classes)."""
    model = model_lib.ResNet(**{k: kwargs.get(k) for k in _IDENTITY if kwargs.get(k) is not None})
    r = model.resolve(32 if model.default_image_size() == 32 else 224)
    text = "a depth-%d %s %s" % (model.depth, "CIFAR" if r["architecture"] == "cifar"
                                 else "ImageNet", "plain net" if r["shortcut"] == "none"
                                 else "ResNet")
    extra = ["variant %s" % model.variant] if model.variant != "paper" else []
    extra += ["%s stem" % r["stem"]] if r["stem"] != r["architecture"] else []
    extra.append("%d classes" % model.num_classes)
    return "%s (%s)" % (text, ", ".join(extra))


def model_dir_mismatch(params):
    """None when `params.model_dir` holds no run or a run of the same model; else one line that
    leads with the model difference."""
    if not os.path.exists(os.path.join(params.model_dir, rundir.RUN_RECORD)):
        return None
    try:
        held = rundir.read_record(params.model_dir).config["model"]
    except rundir.ModelDirError as e:
        return "%s: use a new --model_dir" % e
    wanted = model_kwargs(params)
    diffs = [k for k in _IDENTITY if held.get(k) != wanted.get(k)]
    if not diffs:
        return None
    asks = ", ".join("%s %s" % (k, wanted.get(k)) for k in diffs)
    return ("--model_dir=%s holds %s; this run asks for %s: use a new --model_dir or the same "
            "model flags" % (params.model_dir, describe_model(held), asks))


def check_model_dir(params):
    """errors.FlagError (one line) when `params.model_dir` holds a run of another model."""
    mismatch = model_dir_mismatch(params)
    if mismatch:
        raise errors.FlagError(mismatch)


def flag_fields():
    """The `RunParams` fields that are flags, in flags.txt order."""
    return [f for f in dataclasses.fields(RunParams) if f.metadata.get("flag")]


def model_kwargs(params):
    """The `ResNet` keyword arguments a run's parameters describe (JSON-serialisable)."""
    return dict(depth=params.depth, num_classes=params.num_classes(), variant=params.variant,
                stem=params.stem, shortcut=params.shortcut, dtype=params.dtype,
                data_format=params.data_format, bn_decay=params.bn_decay)


def build_model(params):
    return model_lib.ResNet(**model_kwargs(params))


def session_config():
    """Soft placement (a /gpu:0 graph runs on a CPU-only machine) and on-demand GPU memory."""
    config = tf1.ConfigProto(allow_soft_placement=True)
    config.gpu_options.allow_growth = True
    return config


def resolve_device(device):
    """`device`, or "/cpu:0" for a GPU device on a machine without GPUs.

    Soft placement would fall back to the CPU anyway, but it logs a warning per moved resource;
    this falls back once, with one log line.
    """
    if device and "gpu" in device.lower() and not tf.config.list_physical_devices("GPU"):
        logging.log_first_n(logging.INFO, "no GPU found: %s falls back to /cpu:0", 1, device)
        return "/cpu:0"
    return device


def tower_devices(params):
    """One device per tower: /gpu:0../gpu:N-1 with --num_gpus=N, else the one --device."""
    if params.num_gpus > 1:
        return [resolve_device("/gpu:%d" % i) for i in range(params.num_gpus)]
    return [resolve_device(params.device)]


def input_batches(params, training, seed=None, ten_crop=False, skips=None, full_image=False):
    """(images, labels) tensors of one global batch, and the number of examples (or None).

    File-backed data is read and preprocessed on the CPU; synthetic data lives on the device.
    `skips` (a `data.SkippedRecords`) counts the records the pipeline skips.
    """
    if params.dataset == "synthetic":
        images, labels = synthetic.inputs(params.batch_size, params.resolved_image_size(),
                                          params.num_classes(),
                                          device=resolve_device(params.device))
        return images, labels, None
    ds, n = data_lib.make_dataset(params.dataset, params.data_dir,
                                  "train" if training else "eval", params.batch_size, training,
                                  num_classes=params.num_classes(),
                                  holdout=params.holdout_validation, ten_crop=ten_crop, seed=seed,
                                  skips=skips, full_image=full_image)
    with tf.device("/cpu:0"):
        images, labels = tf1.data.make_one_shot_iterator(ds).get_next()
    return images, labels, n


def default_dataset(depth):
    """The dataset a depth is usually trained on: CIFAR-10 for 6n+2 depths that are not ImageNet
    depths, else ImageNet (used by tools that take only --depth)."""
    return "imagenet" if depth in model_lib.IMAGENET_UNITS else "cifar10"
