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
from resnet_tf1.data import preprocessing as preprocessing_lib
from resnet_tf1.data import synthetic

tf1 = tf.compat.v1

LR_SCHEDULES = ("piecewise", "cosine")
BN_RECOMPUTE_INPUTS = ("eval", "train")
WARMUPS = ("constant", "linear")


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
    dataset: str = _flag("cifar10", "Training / evaluation data: " + "; ".join(
        "%s: %s" % (name, rec.help) for name, rec in data_lib.RECORDS.items()),
        choices=data_lib.DATASETS)
    data_dir: str = _flag("data/cifar10", "Where the dataset lives (CIFAR-10 is downloaded here "
                          "when absent).")
    num_classes: int = _flag(None, "Width of the logits layer; default the dataset's (CIFAR-10 10, "
                             "ImageNet 1000, a folder its class folders, tfrecords its "
                             "labels.txt). With an --init_checkpoint of another width the logits "
                             "layer starts fresh (logged).")
    image_size: int = _flag(None, "Training and evaluation crop in pixels (>= 32) for imagenet, "
                            "folder, tfrecords and synthetic data; default the dataset's (224; "
                            "CIFAR-10 32). Evaluation resizes the shorter side to "
                            "image_size * 256/224 first.")
    validation_fraction: float = _flag(0.0, "--dataset=folder without a validation/ folder: hold "
                                       "out this fraction of train/ for evaluation, chosen by a "
                                       "hash of each file's relative path (stable when files are "
                                       "added).")
    preprocessing: str = _flag(None, "Input normalisation preset, overriding the one "
                               "--init_checkpoint records (default: the checkpoint's, else "
                               "rgb_mean): rgb_mean (RGB minus ImageNet means: TF-slim, official, "
                               "ours), caffe (BGR minus means: Keras ResNet50, the Caffe "
                               "release), torch ((x/255 - mean)/std: torchvision), inception "
                               "(x/127.5 - 1).", choices=tuple(preprocessing_lib.PRESETS))
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
    pool_padding: str = _flag(None, "The stem max-pool's padding: SAME (default; TF-slim, "
                              "official, Caffe), VALID (Keras 2016) or symmetric (torchvision, "
                              "Keras now; needed for export.py --format=torchvision). A "
                              "checkpoint's record fixes it.", choices=model_lib.POOL_PADDINGS)
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
    lr_schedule: str = _flag("piecewise", "piecewise: --lr_boundaries / --lr_values (the "
                             "paper's); cosine: from --learning_rate down to 0 at --max_steps "
                             "(after the warm-up).", choices=LR_SCHEDULES)
    warmup_steps: int = _flag(0, "Warm-up steps (see --warmup; the paper's ResNet-110: 400 at a "
                              "tenth of the rate).")
    warmup: str = _flag(None, "Warm-up shape: constant (a tenth of the first rate, the paper's "
                        "ResNet-110) or linear (from 0 up to the first rate); default constant "
                        "with --lr_schedule=piecewise, linear with cosine.", choices=WARMUPS)
    label_smoothing: float = _flag(0.0, "Cross-entropy against (1 - e) one-hot + e / classes.")
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
                                  "resnet50/logits (the logits are left out by themselves when "
                                  "--num_classes differs from the checkpoint's).", element=str)
    trainable_scopes: tuple = _flag((), "Train only the variables under these scopes (e.g. "
                                    "resnet50/logits: the head alone); BN layers outside them "
                                    "run in inference mode, so their statistics stay as loaded. "
                                    "Default: everything.", element=str)
    seed: int = _flag(None, "Graph-level random seed, and the input stream's: with it the "
                      "shuffle order and every augmentation draw repeat from run to run (worker "
                      "k of a cluster uses seed + 1000 k; a run resumed at step n a stream of "
                      "its own, from seed, k and n). Unset: fresh each run.")
    bn_recompute_input: str = _flag("train", "Images the BN statistics are recomputed over: "
                                    "train (the training pipeline's augmentation, with a fixed "
                                    "seed: the same checkpoint always gives the same "
                                    "statistics, as Precise-BN and MSRA's Caffe release compute "
                                    "them; the network's inputs in training) or eval (the "
                                    "training split with the evaluation preprocessing, one "
                                    "pass shuffled with the same fixed seed; the default "
                                    "before issue 33, which read it in file order). train was "
                                    "the better of the two on average over 25 measured runs "
                                    "(BUILD.md).",
                                    choices=BN_RECOMPUTE_INPUTS)
    recompute_bn_batches: int = _flag(80, "After training, recompute the BN statistics over this "
                                      "many training batches, as the paper's models were (80 x "
                                      "128 = 10,240 CIFAR images); 0 turns it off.")
    # Not flags.
    keep_checkpoint_max: int = 5
    # The flags given on the command line (or in a flagfile): they may not contradict a model
    # record. None (a RunParams built in code): the fields that differ from their defaults.
    explicit_flags: frozenset = None
    # Filled by `validate` from the records of --init_checkpoint / --model_dir (`adopt_records`):
    # model settings no flag sets (`SETTINGS`) and the checkpoint's preprocessing.
    model_settings: dict = None
    init_preprocessing: dict = None
    _adopted: bool = False

    def resolved_num_classes(self):
        return self.num_classes or data_lib.spec(self.dataset, self.data_dir).num_classes

    def resolved_image_size(self):
        return self.image_size or data_lib.spec(self.dataset, self.data_dir).image_size

    def preprocessing_record(self):
        """The run's normalisation (a data.preprocessing record), or None for the dataset's own:
        --preprocessing, else --init_checkpoint's (where the dataset takes one)."""
        if self.preprocessing:
            return preprocessing_lib.preset(self.preprocessing)
        if self.init_preprocessing and "preprocessing" in data_lib.record(self.dataset).options:
            return self.init_preprocessing
        return None

    def data_options(self):
        """The `data.Options` fields this run asks every pipeline for (beyond seed / skips)."""
        out = dict(num_classes=self.resolved_num_classes(), holdout=self.holdout_validation,
                   image_size=self.image_size, preprocessing=self.preprocessing_record())
        if self.validation_fraction:
            out["validation_fraction"] = self.validation_fraction
        return out

    def is_explicit(self, name):
        if self.explicit_flags is not None:
            return name in self.explicit_flags
        return getattr(self, name) != _DEFAULTS[name]

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
        if self.num_classes is not None and self.num_classes <= 0:
            raise errors.FlagError("--num_classes=%d must be positive" % self.num_classes)
        if self.image_size is not None and self.image_size < 32:
            raise errors.FlagError("--image_size=%d must be at least 32" % self.image_size)
        if not 0 <= self.validation_fraction < 1:
            raise errors.FlagError("--validation_fraction=%r must be in [0, 1)"
                                   % (self.validation_fraction,))
        if not 0 <= self.label_smoothing < 1:
            raise errors.FlagError("--label_smoothing=%r must be in [0, 1)"
                                   % (self.label_smoothing,))
        if self.lr_schedule == "cosine" and self.warmup_steps >= self.max_steps:
            raise errors.FlagError("--warmup_steps=%d leaves no steps to --max_steps=%d for "
                                   "--lr_schedule=cosine" % (self.warmup_steps, self.max_steps))
        if not self._adopted:
            adopt_records(self)
        return self

    def warmup_shape(self):
        return self.warmup or ("linear" if self.lr_schedule == "cosine" else "constant")


_DEFAULTS = {f.name: f.default for f in dataclasses.fields(RunParams)}

# The model arguments that make a run's checkpoints what they are; dtype, data_format and
# bn_decay can change between sessions of one run.
_IDENTITY = ("depth", "num_classes", "variant", "stem", "shortcut")
# Of those, the ones a flag sets and a checkpoint's record fixes (num_classes may differ: the
# logits start fresh).
RECORDED_FLAGS = ("depth", "variant", "stem", "shortcut")
# Model settings only a record sets (a converted checkpoint's source framework fixes them; the
# architecture is resolved at the record's own image size, so that a depth-50 ImageNet ResNet
# stays one when it is fine-tuned at 32x32, where depth 50 = 6n+2 would otherwise mean CIFAR).
SETTINGS = ("conv_bias", "bn_epsilon", "pool_padding", "conv_padding", "scope", "architecture")


def _resolved(kwargs, image_size, architecture=None):
    """{identity field: concrete value} (stem and shortcut resolved as the model would)."""
    model = model_lib.ResNet(architecture=architecture,
                             **{k: kwargs.get(k) for k in RECORDED_FLAGS if kwargs.get(k)
                                is not None})
    r = model.resolve(image_size)
    return dict(depth=model.depth, variant=model.variant, stem=r["stem"],
                shortcut=r["shortcut"])


def adopt_records(params):
    """Fills `params` from the model records it points at (once; `validate` calls it):

    - --init_checkpoint's record (a converted checkpoint's config.json, a training run's
      model_config.json; a checkpoint prefix inside either): depth, variant, stem and shortcut
      where no flag set them (errors.FlagError, one line naming both values, where one
      contradicts), the model settings no flag sets, and the preprocessing. A logits layer of
      another width than --num_classes is added to --exclude_scopes (logged).
    - --model_dir's own record (a run being resumed or evaluated): the model settings it was
      built with.
    """
    params._adopted = True
    own = _record_at(params.model_dir) if params.model_dir else None
    init = _record_for(params.init_checkpoint) if params.init_checkpoint else None
    if own is not None:
        params.model_settings = _settings(own)
    if init is None:
        return params
    model = init.config["model"]
    where = "--init_checkpoint=%s" % params.init_checkpoint
    size = params.image_size or 224
    architecture = _settings(init)["architecture"]
    held = _resolved(model, size, architecture)
    for name in RECORDED_FLAGS:
        if not params.is_explicit(name):
            setattr(params, name, model.get(name, _DEFAULTS[name]))
    try:
        wanted = _resolved({k: getattr(params, k) for k in RECORDED_FLAGS}, size, architecture)
    except ValueError as e:
        raise errors.FlagError("%s: %s" % (where, e))
    for name in RECORDED_FLAGS:
        if wanted[name] != held[name]:
            raise errors.FlagError(
                "--%s=%s contradicts %s, which holds %s (%s %s): drop the flag (the checkpoint "
                "fixes it) or use another checkpoint"
                % (name, getattr(params, name), where, describe_model(model), name, held[name]))
    if own is None:
        params.model_settings = _settings(init)
    held_pool = params.model_settings.get("pool_padding", "SAME")
    if params.pool_padding and params.pool_padding != held_pool:
        raise errors.FlagError(
            "--pool_padding=%s contradicts %s, which holds %s (pool_padding %s): drop the flag "
            "(the checkpoint fixes it) or use another checkpoint"
            % (params.pool_padding, where, describe_model(model), held_pool))
    rec = init.config.get("preprocessing")
    if isinstance(rec, dict) and rec.get("mean_image"):
        if "preprocessing" in data_lib.record(params.dataset).options and \
                not params.preprocessing:
            raise errors.FlagError(
                "%s was trained with a per-pixel mean image (%s), which --dataset=%s cannot "
                "apply: choose --preprocessing (one of %s)"
                % (where, rec["mean_image"], params.dataset,
                   ", ".join(preprocessing_lib.PRESETS)))
        rec = None
    params.init_preprocessing = rec
    held_classes = model.get("num_classes")
    classes = params.resolved_num_classes()
    if held_classes is not None and held_classes != classes:
        scope = "%s/logits" % model_lib.ResNet(**_build_args(params)).resolve(
            params.resolved_image_size())["scope"]
        if scope not in params.exclude_scopes:
            params.exclude_scopes = tuple(params.exclude_scopes) + (scope,)
        logging.info("%s has %d classes and this run %d: %s starts fresh (not restored)",
                     where, held_classes, classes, scope)
    return params


def _settings(record):
    """The SETTINGS a model record fixes; the architecture resolved at the record's crop."""
    model = record.config["model"]
    out = {k: model[k] for k in SETTINGS if model.get(k) is not None}
    if "architecture" not in out:
        crop = (record.config.get("preprocessing") or {}).get("crop")
        try:
            out["architecture"] = model_lib.ResNet(
                **{k: model[k] for k in _IDENTITY if model.get(k) is not None}).resolve(
                    crop)["architecture"]
        except (ValueError, TypeError) as e:
            raise errors.FlagError("%s: %s" % (record.path, e))
    return out


def _record_at(directory):
    if not os.path.isdir(directory) or rundir.kind_of(directory) is None:
        return None
    return rundir.read_record(directory)


def _record_for(path):
    """The record that describes checkpoint `path` (a model directory, or a prefix inside one or
    in its bn_recomputed/), or None (a bare checkpoint: the flags describe it)."""
    if os.path.isdir(path):
        return _record_at(path)
    parent = os.path.dirname(os.path.abspath(path))
    for directory in (parent, os.path.dirname(parent)):
        record = _record_at(directory)
        if record is not None:
            return record
    return None


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
    """The `ResNet` keyword arguments a run's parameters describe (JSON-serialisable): the
    flags', and the settings its records fix (`adopt_records`)."""
    kwargs = dict(depth=params.depth, num_classes=params.resolved_num_classes(),
                  variant=params.variant, stem=params.stem, shortcut=params.shortcut,
                  dtype=params.dtype, data_format=params.data_format, bn_decay=params.bn_decay)
    settings = params.model_settings or {}
    kwargs.update(settings)
    if params.pool_padding and "pool_padding" not in settings:
        kwargs["pool_padding"] = params.pool_padding
    return kwargs


def _build_args(params):
    return {k: v for k, v in model_kwargs(params).items() if k in _IDENTITY + SETTINGS}


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
                                          params.resolved_num_classes(),
                                          device=resolve_device(params.device))
        return images, labels, None
    ds, n = data_lib.make_dataset(params.dataset, params.data_dir,
                                  "train" if training else "eval", params.batch_size, training,
                                  ten_crop=ten_crop, seed=seed, skips=skips,
                                  full_image=full_image, **params.data_options())
    with tf.device("/cpu:0"):
        images, labels = tf1.data.make_one_shot_iterator(ds).get_next()
    return images, labels, n


def default_dataset(depth):
    """The dataset a depth is usually trained on: CIFAR-10 for 6n+2 depths that are not ImageNet
    depths, else ImageNet (used by tools that take only --depth)."""
    return "imagenet" if depth in model_lib.IMAGENET_UNITS else "cifar10"
