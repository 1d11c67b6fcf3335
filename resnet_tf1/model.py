"""ResNet as legacy TF1 graph code on `tf.compat.v1`.

He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", arXiv:1512.03385 (2015),
called "the paper" below.

The model is pure graph code: it takes an image tensor and returns `(logits, end_points)`. It reads
no flags, opens no files and creates no sessions. Variable names are the checkpoint API and are set
explicitly, scope by scope:

    resnet50/conv1/weights
    resnet50/conv1/BatchNorm/{gamma,beta,moving_mean,moving_variance}
    resnet50/block{1..4}/unit_{k}/bottleneck/{shortcut,conv1,conv2,conv3}/weights (+ BatchNorm/...)
    resnet50/logits/{weights,biases}

Conventions that differ between the frameworks that published ResNet weights are explicit
constructor arguments (see `ResNet`), never defaults that change with the hardware found. The
convolutions are `kernels.conv2d`: the same numbers on every machine, their training gradients
built from whichever ops measured fastest on this one (that choice is `resnet_tf1.kernels`').
"""

import collections
import contextlib

import tensorflow as tf

from resnet_tf1 import kernels

tf1 = tf.compat.v1

# Kernels and FC weights (never BN parameters or biases) that weight decay applies to.
WEIGHT_DECAY_COLLECTION = "resnet_tf1_weight_decay"
# A batch-norm layer of a built graph: its scope, its input tensor (pre-BN conv output, in
# `data_format`), its moving-statistic variables, its output tensor (after BN, before any ReLU
# or addition: the paper's "response" of Fig. 7) and its conv's kernel size.
BNLayer = collections.namedtuple("BNLayer", ["scope", "inputs", "moving_mean",
                                             "moving_variance", "outputs", "kernel"])
# A BN layer's variables, "<conv scope>/BatchNorm/<parameter>": the names the porting maps, the BN
# fold and the statistics recompute read.
BN_SCOPE = "BatchNorm"
BN_PARAMETERS = ("gamma", "beta", "moving_mean", "moving_variance")
# tf.compat.v1.nn.fused_batch_norm's floor for epsilon (cuDNN's CUDNN_BN_MIN_EPSILON, 1e-5, with
# margin for float32 rounding).
FUSED_MIN_EPSILON = 1.001e-5

# One row of an architecture table: a stage of `num_units` residual units whose convolutions are
# `base_depth` wide (bottleneck units output 4 * base_depth channels). `stride` is the stage's
# downsampling factor; where in the stage it is applied depends on the variant.
Stage = collections.namedtuple("Stage", ["scope", "base_depth", "stride"])

# One residual unit of a built graph, as `ResNet.plan()` lists them: every decision the checkpoint
# names depend on (kind, widths, where it strides, whether it projects) in one printable record.
#   scope:            variable scope of the unit, e.g. "resnet50/block2/unit_1/bottleneck"
#   stage, index:     "block2", 1-based unit index within the stage
#   kind:             "bottleneck" (1x1 -> 3x3 -> 1x1, 4x expansion) or "basic" (3x3 -> 3x3)
#   depth_in, depth_bottleneck, depth_out: channels in, inner width, channels out
#   stride:           the unit's downsampling factor
#   stride_1x1, stride_3x3: where it is applied (bottleneck: first 1x1 / the 3x3; basic: None /
#                     the first 3x3)
#   projection:       the shortcut is a 1x1 conv + BN (scope "<unit>/shortcut")
#   shortcut:         "projection", "identity", "subsample" (strided identity), "zero_pad"
#                     (option A: subsampled identity with zero channels appended) or "none"
#                     (a plain net: no shortcut, no addition)
Unit = collections.namedtuple("Unit", [
    "scope", "stage", "index", "kind", "depth_in", "depth_bottleneck", "depth_out", "stride",
    "stride_1x1", "stride_3x3", "projection", "shortcut"])

# Shapes below are for a 224x224 input (ImageNet tables) and a 32x32 input (CIFAR table), in NHWC.
BOTTLENECK_STAGES = (
    Stage("block1", 64, 1),  # -> [batch, 56, 56, 256]
    Stage("block2", 128, 2),  # -> [batch, 28, 28, 512]
    Stage("block3", 256, 2),  # -> [batch, 14, 14, 1024]
    Stage("block4", 512, 2),  # -> [batch, 7, 7, 2048]
)
BASIC_STAGES = (
    Stage("block1", 64, 1),  # -> [batch, 56, 56, 64]
    Stage("block2", 128, 2),  # -> [batch, 28, 28, 128]
    Stage("block3", 256, 2),  # -> [batch, 14, 14, 256]
    Stage("block4", 512, 2),  # -> [batch, 7, 7, 512]
)
CIFAR_STAGES = (
    Stage("block1", 16, 1),  # -> [batch, 32, 32, 16]
    Stage("block2", 32, 2),  # -> [batch, 16, 16, 32]
    Stage("block3", 64, 2),  # -> [batch, 8, 8, 64]
)

# Units per stage for the ImageNet depths (the paper's Table 1; 200 from He et al. 2016).
IMAGENET_UNITS = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
    200: (3, 24, 36, 3),
}
BASIC_DEPTHS = (18, 34)

VARIANTS = ("paper", "v1.5", "slim")
ARCHITECTURES = ("imagenet", "cifar")
SHORTCUTS = ("A", "B", "C", "none")
STEMS = ("imagenet", "cifar")
POOL_PADDINGS = ("SAME", "VALID", "symmetric")
CONV_PADDINGS = ("symmetric", "SAME")
DATA_FORMATS = ("NHWC", "NCHW")
DTYPES = ("float32", "float16", "bfloat16")


def unit_conv_parts(unit):
    """The conv scopes a planned `Unit` creates under `unit.scope`, in creation order (the
    projection first, if any), as `_bottleneck` and `_basic` build them."""
    convs = ["conv1", "conv2"] + (["conv3"] if unit.kind == "bottleneck" else [])
    return (["shortcut"] if unit.projection else []) + convs


def is_cifar_depth(depth):
    """True for the paper's CIFAR depths 6n+2 (Section 4.2)."""
    return isinstance(depth, int) and depth >= 8 and (depth - 2) % 6 == 0


def _choices(values):
    return ", ".join(repr(v) for v in values)


class ResNet:
    """A ResNet graph builder; call it on an image tensor to build the graph.

    Example:
        model = ResNet(depth=50, num_classes=1000, variant="paper")
        logits, end_points = model(images, is_training=False)

    All constructor arguments are JSON-serialisable, so `ResNet(**model.get_config())` rebuilds the
    same graph (same variable names and shapes, same computation).

    Args:
        depth: ImageNet depths 18, 34 (basic units), 50, 101, 152, 200 (bottleneck units), or a
            CIFAR depth 6n+2 (20, 32, 44, 56, 110, 1202, ...).
        num_classes: width of the logits layer (1000; 1001 for checkpoints with a background class;
            10 for CIFAR-10).
        variant: where a downsampling unit strides.
            "paper": on the first 1x1 conv of the first unit of a stage (MSRA Caffe, Keras).
            "v1.5": on the 3x3 conv of the first unit (torchvision, TF official models, NVIDIA).
            "slim": on the 3x3 conv of the *last* unit of the previous stage, with the identity
                shortcut subsampled (TF-slim `resnet_v1`). Subsampling commutes with 1x1 convs, BN
                and ReLU, so "paper" and "slim" compute the same function from the same weights.
        architecture: "imagenet" or "cifar"; None chooses CIFAR for depths 6n+2 that are not
            ImageNet depths, and for depth 50 (= 6*8+2) only when the input is 32x32.
        shortcut: the paper's option "A" (identity, zero-padded channels), "B" (projection where
            the shape changes) or "C" (projection everywhere). None: "A" for CIFAR, "B" for
            ImageNet. "none": the paper's *plain* net of that depth (Fig. 3 middle, Table 2,
            Fig. 6): the same layers and variable names, no shortcut additions; its parameters
            are option A's.
        stem: "imagenet" (7x7/2 conv + 3x3/2 max-pool) or "cifar" (3x3/1 conv, no pool: the CIFAR
            nets of the paper, and the CIFAR ResNet-18 of seed article 002 when combined with an
            ImageNet depth). None follows the architecture.
        conv_bias: give every conv a bias (Keras' ResNet50 weights carry them).
        bn_epsilon: BN epsilon: 1e-5 (Caffe, slim, official, torchvision), 1.001e-5 (Keras now),
            1e-3 (Keras 2016). Inference normalises with exactly this epsilon, as the source
            network does: `tf.nn.fused_batch_norm` raises anything below 1.001e-5 (cuDNN's
            minimum, with float32 margin) to 1.001e-5, so the inference graph adds
            epsilon - 1.001e-5 to the moving variance it passes (`FUSED_MIN_EPSILON`); that
            matters where a channel's variance is of the order of epsilon. Training normalises
            with the batch's own variance + max(epsilon, 1.001e-5).
        bn_decay: moving-average decay of the BN statistics (0.997 slim/official, 0.99 Keras,
            0.9 Torch). The running estimate has no pull toward its initial 0 / 1: the k-th
            update averages with weight max(1 - bn_decay, 1 / k), a cumulative average while
            fewer than 1 / (1 - bn_decay) updates were seen, then the exponential one (Caffe's
            factor-normalised average does the same). The update count lives in
            `<scope>/bn_update_count`, a global (checkpointed) variable outside
            `MODEL_VARIABLES`, created by training builds only.
        conv_padding: padding of the strided k x k convolutions (the stem's 7x7, v1.5's 3x3):
            "symmetric" ((k - 1) / 2 on both sides, as Caffe, PyTorch and TF-slim's conv2d_same)
            or "SAME" (TF's own, (0, 1) / (2, 3) on even inputs: tensorpack's ImageNet ResNets).
        pool_padding: padding of the stem's 3x3/2 max-pool: "SAME" (slim, official, Caffe's ceil
            mode: same windows on even inputs), "VALID" (Keras 2016: 112 -> 55), "symmetric"
            (explicit 1-pixel zero pad then VALID, Keras now: 112 -> 56, windows shifted by one).
        data_format: "NHWC" or "NCHW" for the graph's internal layout. Inputs are always NHWC.
            Never switched by the hardware found. End points are in this layout.
        dtype: compute dtype, "float32", "float16" or "bfloat16". Variables stay float32 and are
            cast on use (mixed precision); logits are returned as float32.
        device: device string for the model's ops, e.g. "/gpu:0" (use soft placement in the
            session config to fall back to the CPU), or None for the caller's placement.
        scope: root variable scope; default "resnet{depth}" ("cifar_resnet{depth}" for CIFAR).

    Raises:
        ValueError: an argument outside its allowed values (the message names the argument).
    """

    def __init__(self, depth, num_classes=1000, variant="paper", architecture=None,
                 shortcut=None, stem=None, conv_bias=False, bn_epsilon=1e-5, bn_decay=0.997,
                 pool_padding="SAME", data_format="NHWC", dtype="float32", device=None,
                 scope=None, conv_padding="symmetric"):
        if isinstance(dtype, tf.DType):
            dtype = dtype.name
        self._check(isinstance(depth, int) and not isinstance(depth, bool)
                    and (depth in IMAGENET_UNITS or is_cifar_depth(depth)),
                    "depth", depth,
                    "one of %s or a CIFAR depth 6n+2 (20, 32, 44, 56, 110, 1202, ...)"
                    % ", ".join(str(d) for d in IMAGENET_UNITS))
        self._check(isinstance(num_classes, int) and num_classes > 0, "num_classes", num_classes,
                    "a positive integer")
        self._check(variant in VARIANTS, "variant", variant, "one of " + _choices(VARIANTS))
        self._check(architecture is None or architecture in ARCHITECTURES, "architecture",
                    architecture, "None or one of " + _choices(ARCHITECTURES))
        if architecture == "imagenet":
            self._check(depth in IMAGENET_UNITS, "depth", depth,
                        "an ImageNet depth (%s) for architecture='imagenet'"
                        % ", ".join(str(d) for d in IMAGENET_UNITS))
        if architecture == "cifar":
            self._check(is_cifar_depth(depth), "depth", depth,
                        "a CIFAR depth 6n+2 (20, 32, 44, ...) for architecture='cifar'")
        self._check(shortcut is None or shortcut in SHORTCUTS, "shortcut", shortcut,
                    "None or one of " + _choices(SHORTCUTS))
        self._check(stem is None or stem in STEMS, "stem", stem,
                    "None or one of " + _choices(STEMS))
        self._check(isinstance(conv_bias, bool), "conv_bias", conv_bias, "True or False")
        self._check(isinstance(bn_epsilon, (int, float)) and bn_epsilon > 0, "bn_epsilon",
                    bn_epsilon, "a positive number")
        self._check(isinstance(bn_decay, (int, float)) and 0 <= bn_decay < 1, "bn_decay", bn_decay,
                    "a number in [0, 1)")
        self._check(pool_padding in POOL_PADDINGS, "pool_padding", pool_padding,
                    "one of " + _choices(POOL_PADDINGS))
        self._check(conv_padding in CONV_PADDINGS, "conv_padding", conv_padding,
                    "one of " + _choices(CONV_PADDINGS))
        self._check(data_format in DATA_FORMATS, "data_format", data_format,
                    "one of " + _choices(DATA_FORMATS))
        self._check(dtype in DTYPES, "dtype", dtype, "one of " + _choices(DTYPES))
        self._check(device is None or isinstance(device, str), "device", device,
                    "None or a device string such as '/gpu:0'")
        self._check(scope is None or (isinstance(scope, str) and scope), "scope", scope,
                    "None or a non-empty string")
        self._config = dict(depth=depth, num_classes=num_classes, variant=variant,
                            architecture=architecture, shortcut=shortcut, stem=stem,
                            conv_bias=conv_bias, bn_epsilon=float(bn_epsilon),
                            bn_decay=float(bn_decay), pool_padding=pool_padding,
                            data_format=data_format, dtype=dtype, device=device, scope=scope,
                            conv_padding=conv_padding)
        self.depth = depth
        self.num_classes = num_classes
        self.variant = variant
        self.conv_bias = conv_bias
        self.bn_epsilon = float(bn_epsilon)
        self.bn_decay = float(bn_decay)
        self.pool_padding = pool_padding
        self.conv_padding = conv_padding
        self.data_format = data_format
        self.dtype = tf.as_dtype(dtype)
        self.device = device
        # The channel axis, looked up once for the whole graph.
        self._channel_axis = 3 if data_format == "NHWC" else 1

    @staticmethod
    def _check(ok, name, value, expected):
        if not ok:
            raise ValueError("ResNet argument %s=%r is invalid: expected %s."
                             % (name, value, expected))

    def get_config(self):
        """The constructor's keyword arguments, JSON-serialisable: `ResNet(**config)`. Options
        added after the graph goldens were first written (conv_padding) appear only when they
        differ from their default, so a manifest of an unchanged graph stays byte-identical."""
        config = dict(self._config)
        if config["conv_padding"] == "symmetric":
            del config["conv_padding"]
        return config

    def resolve(self, image_size=None):
        """Resolves the automatic choices for an input of `image_size` (int, or None if unknown).

        Returns:
            A dict with the concrete `architecture`, `shortcut`, `stem` and `scope`.
        """
        c = self._config
        architecture = c["architecture"]
        if architecture is None:
            if self.depth not in IMAGENET_UNITS:
                architecture = "cifar"
            elif is_cifar_depth(self.depth) and image_size == 32:
                architecture = "cifar"
            else:
                architecture = "imagenet"
        shortcut = c["shortcut"] or ("A" if architecture == "cifar" else "B")
        stem = c["stem"] or architecture
        scope = c["scope"] or ("cifar_resnet%d" % self.depth if architecture == "cifar"
                               else "resnet%d" % self.depth)
        return dict(architecture=architecture, shortcut=shortcut, stem=stem, scope=scope)

    def stages(self, architecture):
        """The architecture table and units per stage: ([Stage, ...], [num_units, ...])."""
        if architecture == "cifar":
            n = (self.depth - 2) // 6
            return CIFAR_STAGES, (n, n, n)
        table = BASIC_STAGES if self.depth in BASIC_DEPTHS else BOTTLENECK_STAGES
        return table, IMAGENET_UNITS[self.depth]

    def default_image_size(self):
        """224 for the ImageNet architecture, 32 for CIFAR (and for CIFAR-stemmed ImageNet
        depths): the input the shape comments and golden manifests are written for."""
        r = self.resolve(None)
        return 32 if r["architecture"] == "cifar" or r["stem"] == "cifar" else 224

    def plan(self, image_size=None):
        """The residual units this model builds, in order: a list of `Unit` records.

        The one place where the paper's rules are applied: the first unit of a stage strides
        (where, depends on the variant; see `unit_strides`) and, with option B, projects where the
        shape changes; option C projects everywhere; option A pads zeros instead. The graph
        builder, the porting name maps and `dump_graph.py --format=plan` read this list.

        Args:
            image_size: the input's height = width, or None; it only matters for depth 50, whose
                architecture is chosen from the input (CIFAR for 32x32).
        """
        r = self.resolve(image_size)
        table, units = self.stages(r["architecture"])
        basic = r["architecture"] == "cifar" or self.depth in BASIC_DEPTHS
        kind = "basic" if basic else "bottleneck"
        # The ImageNet stem is 64 wide; the CIFAR stem is as wide as the first stage.
        depth_in = 64 if r["stem"] == "imagenet" else table[0].base_depth
        plan = []
        for stage, strides in zip(table, self.unit_strides(table, units)):
            depth_out = stage.base_depth if basic else 4 * stage.base_depth
            for k, stride in enumerate(strides):
                projection = r["shortcut"] == "C" or (r["shortcut"] == "B"
                                                      and depth_in != depth_out)
                if basic:
                    stride_1x1, stride_3x3 = None, stride
                elif self.variant == "paper":
                    stride_1x1, stride_3x3 = stride, 1
                else:
                    stride_1x1, stride_3x3 = 1, stride
                if r["shortcut"] == "none":
                    shortcut = "none"
                elif projection:
                    shortcut = "projection"
                elif depth_in != depth_out:
                    shortcut = "zero_pad"
                else:
                    shortcut = "subsample" if stride > 1 else "identity"
                plan.append(Unit(
                    scope="%s/%s/unit_%d/%s" % (r["scope"], stage.scope, k + 1, kind),
                    stage=stage.scope, index=k + 1, kind=kind, depth_in=depth_in,
                    depth_bottleneck=stage.base_depth, depth_out=depth_out, stride=stride,
                    stride_1x1=stride_1x1, stride_3x3=stride_3x3, projection=projection,
                    shortcut=shortcut))
                depth_in = depth_out
        return plan

    def __call__(self, images, is_training=False, reuse=None, fold_batch_norm=False,
                 bn_training_scopes=None):
        """Builds the graph.

        Args:
            images: float tensor [batch, height, width, 3], NHWC whatever `data_format` is; the
                batch size may be unknown.
            is_training: Python bool. True uses batch statistics in BN and adds the moving-average
                updates to `tf.compat.v1.GraphKeys.UPDATE_OPS`.
            reuse: passed to the root `variable_scope` (True to share the variables of an
                earlier build, e.g. an evaluation graph beside a training graph, or a second tower).
            fold_batch_norm: build the inference form with every BN folded into the conv before
                it: each such conv gets `<conv scope>/biases` and there are no BN variables or
                ops. Its weights are `fold_bn.fold(...)` of this model's checkpoint. Inference
                only (is_training=False).
            bn_training_scopes: with is_training, only the BN layers under these variable scopes
                (e.g. ["resnet50/block4"]) use batch statistics and update their moving averages;
                the others run in inference mode, their statistics as loaded (fine-tuning part
                of a network). None: every BN layer trains.

        Returns:
            logits: float32 [batch, num_classes].
            end_points: ordered dict from scope names ("resnet50/conv1", "resnet50/pool1",
                "resnet50/block1" ... "resnet50/global_pool", "resnet50/logits", "predictions")
                to tensors; spatial end points are in `data_format`.

        Raises:
            ValueError: `images` is not a rank-4 NHWC tensor with 3 channels.
            TypeError: `is_training` is not a Python bool.
        """
        images = tf.convert_to_tensor(images)
        shape = images.shape
        if shape.rank != 4:
            raise ValueError("ResNet input images must be a rank-4 NHWC tensor [batch, height, "
                             "width, 3]; got shape %s." % (shape,))
        if shape[3] != 3:
            raise ValueError("ResNet input images must have 3 channels in the last (NHWC) axis; "
                             "got shape %s." % (shape,))
        if not isinstance(is_training, bool):
            raise TypeError("ResNet is_training must be a Python bool; got %r." % (is_training,))
        if fold_batch_norm and is_training:
            raise ValueError("ResNet fold_batch_norm=True builds the inference form: it needs "
                             "is_training=False.")
        image_size = shape[1] if shape[1] == shape[2] else None
        r = self.resolve(image_size)
        self._is_training = is_training
        self._bn_training_scopes = (None if bn_training_scopes is None else
                                    [s.rstrip("/") for s in bn_training_scopes])
        self._folded = bool(fold_batch_norm)
        end_points = collections.OrderedDict()

        def end_point(name, tensor):
            end_points["%s/%s" % (r["scope"], name)] = tensor
            return tensor

        # tf.device(None) would clear the caller's placement (towers, a cluster's device setter).
        placement = tf.device(self.device) if self.device else contextlib.nullcontext()
        with placement, tf1.variable_scope(r["scope"], reuse=reuse):
            self._bn_updates = []
            self.bn_layers = []  # this build's BNLayer records, in order (see `bn_stats`)
            if is_training:
                self._bn_count = tf1.get_variable(
                    "bn_update_count", [], tf.int64, tf1.zeros_initializer(), trainable=False,
                    collections=[tf1.GraphKeys.GLOBAL_VARIABLES], use_resource=True)
                count = tf.cast(self._bn_count.read_value(), tf.float32)
                self._bn_rate = tf.maximum(1.0 - self.bn_decay, 1.0 / (count + 1.0),
                                           name="bn_update_rate")
            net = tf.cast(images, self.dtype) if images.dtype != self.dtype else images
            if self.data_format == "NCHW":
                net = tf.transpose(net, [0, 3, 1, 2])
            plan = self.plan(image_size)
            if r["stem"] == "imagenet":
                net = self._imagenet_stem(net, end_point)
            else:
                net = self._cifar_stem(net, plan[0].depth_in, end_point)
            for stage in _stages_of(plan):
                net = self._block(net, stage)
                end_point(stage[0].stage, net)
            spatial = [1, 2] if self.data_format == "NHWC" else [2, 3]
            net = tf.reduce_mean(net, spatial, name="global_pool")
            end_point("global_pool", net)  # [batch, channels of the last stage]
            logits = self._dense(net, self.num_classes, "logits")  # -> [batch, num_classes]
            logits = tf.cast(logits, tf.float32) if logits.dtype != tf.float32 else logits
            end_point("logits", logits)
            if is_training and self._bn_updates:
                # Counted once per step, after every layer's update has read the count.
                with tf.control_dependencies(self._bn_updates):
                    tf1.add_to_collection(tf1.GraphKeys.UPDATE_OPS, tf1.assign_add(
                        self._bn_count, 1, name="update_bn_count").op)
        end_points["predictions"] = tf.nn.softmax(logits, name="predictions")
        return logits, end_points

    def score_map(self, images, reuse=None):
        """The fully-convolutional form (the paper's multi-scale testing, Section 3.4, after
        VGG): the network up to its last stage, then the FC layer applied at every spatial
        position, as a 1x1 convolution whose kernel is the FC's weights.

        Builds the whole network (`__call__`, is_training=False; `reuse` as there) and returns
        (score map float32 [batch, h, w, num_classes] in NHWC, end_points). Its mean over the
        positions equals the logits of the global-pooled network (the FC is linear), so at the
        single-crop input size it gives the single-crop prediction.
        """
        _, end_points = self(images, is_training=False, reuse=reuse)
        names = list(end_points)
        scope = names[0].split("/")[0]
        features = end_points[names[names.index(scope + "/global_pool") - 1]]
        if self.data_format == "NCHW":
            features = tf.transpose(features, [0, 2, 3, 1])
        with tf1.variable_scope(scope, reuse=True), tf1.variable_scope("logits"):
            weights = tf1.get_variable("weights")
            biases = tf1.get_variable("biases")
        kernel = tf.reshape(self._cast(weights), [1, 1, weights.shape[0], weights.shape[1]])
        scores = tf.nn.bias_add(tf.nn.conv2d(features, kernel, 1, "VALID"), self._cast(biases))
        return tf.cast(scores, tf.float32), end_points

    # ---- stems -------------------------------------------------------------------------------

    def _imagenet_stem(self, net, end_point):
        net = self._conv_bn(net, 64, 7, 2, "conv1")
        end_point("conv1", net)  # -> [batch, 112, 112, 64]
        net = self._max_pool(net)
        return end_point("pool1", net)  # -> [batch, 56, 56, 64]

    def _cifar_stem(self, net, width, end_point):
        net = self._conv_bn(net, width, 3, 1, "conv1")
        return end_point("conv1", net)  # -> [batch, 32, 32, 16]

    # ---- stages and units --------------------------------------------------------------------

    def unit_strides(self, table, units):
        """Per-stage lists of per-unit strides.

        The rule of the paper, written once: the first unit of a stage strides (and, with
        option B, projects). TF-slim moves each stage's stride to the last unit of the stage
        before it, where its identity shortcut is subsampled instead of projected.
        """
        if self.variant != "slim":
            return [[s.stride] + [1] * (n - 1) for s, n in zip(table, units)]
        strides = [[1] * n for n in units]
        strides[0][0] = table[0].stride
        for i in range(1, len(table)):
            strides[i - 1][-1] = table[i].stride
        return strides

    def _block(self, net, units):
        """One stage ("block" as in TF-slim): its residual units under `<root>/<stage>/unit_<k>`.

        Args:
            net: the stage's input, [batch, h, w, units[0].depth_in] (in `data_format`).
            units: the stage's `Unit` records from `plan()`.
        """
        unit_fn = self._basic if units[0].kind == "basic" else self._bottleneck
        with tf1.variable_scope(units[0].stage):
            for unit in units:
                with tf1.variable_scope("unit_%d" % unit.index):
                    net = unit_fn(net, unit)
        return net

    def _bottleneck(self, net, unit):
        """1x1 -> 3x3 -> 1x1 bottleneck unit (the paper's Fig. 5, right) with 4x expansion."""
        with tf1.variable_scope("bottleneck"):
            short = self._shortcut(net, unit)
            res = self._conv_bn(net, unit.depth_bottleneck, 1, unit.stride_1x1, "conv1")
            res = self._conv_bn(res, unit.depth_bottleneck, 3, unit.stride_3x3, "conv2")
            res = self._conv_bn(res, unit.depth_out, 1, 1, "conv3", relu=False)
            return tf.nn.relu(res if short is None else short + res)

    def _basic(self, net, unit):
        """3x3 -> 3x3 basic unit (the paper's Fig. 5, left)."""
        with tf1.variable_scope("basic"):
            short = self._shortcut(net, unit)
            res = self._conv_bn(net, unit.depth_out, 3, unit.stride_3x3, "conv1")
            res = self._conv_bn(res, unit.depth_out, 3, 1, "conv2", relu=False)
            return tf.nn.relu(res if short is None else short + res)

    def _shortcut(self, net, unit):
        """The unit's shortcut branch, or None for a plain net's unit (no addition)."""
        if unit.shortcut == "none":
            return None
        if unit.projection:
            return self._conv_bn(net, unit.depth_out, 1, unit.stride, "shortcut", relu=False)
        if unit.stride > 1:
            if self.data_format == "NHWC":
                # A 1x1 max-pool with a stride picks the same pixels as net[:, ::s, ::s, :] and
                # is TF-slim's `subsample`; on CPUs it is ~5x faster than the strided slice
                # (profiled: 93 ms against 18 ms for ResNet-50's three, batch 16).
                net = tf.nn.max_pool2d(net, 1, unit.stride, "VALID", name="subsample")
            else:
                net = net[:, :, ::unit.stride, ::unit.stride]
        if unit.shortcut == "zero_pad":
            # Option A: the extra channels are zeros (appended at the end, as fb.resnet.torch).
            pad = [[0, 0]] * 4
            pad[self._channel_axis] = [0, unit.depth_out - unit.depth_in]
            net = tf.pad(net, pad)
        return net

    # ---- layers ------------------------------------------------------------------------------

    def _variable(self, name, shape, initializer, trainable=True, decay=False):
        collections_ = [tf1.GraphKeys.GLOBAL_VARIABLES, tf1.GraphKeys.MODEL_VARIABLES]
        if not trainable:
            collections_.append(tf1.GraphKeys.MOVING_AVERAGE_VARIABLES)
        var = tf1.get_variable(name, shape, tf.float32, initializer, trainable=trainable,
                               collections=collections_)
        if decay and not any(v is var for v in tf1.get_collection(WEIGHT_DECAY_COLLECTION)):
            tf1.add_to_collection(WEIGHT_DECAY_COLLECTION, var)
        return var

    def _cast(self, var):
        return tf.cast(var, self.dtype) if self.dtype != tf.float32 else var

    def _conv(self, net, filters, kernel, stride):
        depth_in = net.shape[self._channel_axis]
        weights = self._variable(
            "weights", [kernel, kernel, depth_in, filters],
            tf1.initializers.variance_scaling(2.0, "fan_in", "untruncated_normal"), decay=True)
        if stride > 1 and kernel > 1 and self.conv_padding == "symmetric":
            # TF's 'SAME' pads (0, 1) for a strided 3x3 and (2, 3) for a 7x7 on even inputs,
            # shifting the sampling grid by one pixel against Caffe, PyTorch and TF-slim's
            # conv2d_same. Pad symmetrically, as they do, so their checkpoints reproduce.
            pad_beg = (kernel - 1) // 2
            pad_end = kernel - 1 - pad_beg
            pads = [[0, 0], [pad_beg, pad_end], [pad_beg, pad_end], [0, 0]]
            if self.data_format == "NCHW":
                pads = [pads[0], pads[3], pads[1], pads[2]]
            net = tf.pad(net, pads)
            padding = "VALID"
        else:
            padding = "SAME"
        net = kernels.conv2d(net, self._cast(weights), stride, padding, self.data_format,
                             self._is_training)
        if self.conv_bias or self._folded:
            biases = self._variable("biases", [filters], tf1.zeros_initializer())
            net = tf.nn.bias_add(net, self._cast(biases), data_format=self.data_format)
        return net

    def _batch_norm(self, net, kernel):
        depth = net.shape[self._channel_axis]
        with tf1.variable_scope(BN_SCOPE):
            gamma = self._variable("gamma", [depth], tf1.ones_initializer())
            beta = self._variable("beta", [depth], tf1.zeros_initializer())
            moving_mean = self._variable("moving_mean", [depth], tf1.zeros_initializer(),
                                         trainable=False)
            moving_variance = self._variable("moving_variance", [depth], tf1.ones_initializer(),
                                             trainable=False)
            inputs = net
            if not self._is_training or not self.bn_trains(tf1.get_variable_scope().name):
                variance = moving_variance
                if self.bn_epsilon < FUSED_MIN_EPSILON:  # the op's floor: normalise with ours
                    variance = moving_variance + (self.bn_epsilon - FUSED_MIN_EPSILON)
                net, _, _ = tf1.nn.fused_batch_norm(
                    net, gamma, beta, mean=moving_mean, variance=variance,
                    epsilon=max(self.bn_epsilon, FUSED_MIN_EPSILON), data_format=self.data_format,
                    is_training=False)
                self.bn_layers.append(BNLayer(tf1.get_variable_scope().name, inputs, moving_mean,
                                              moving_variance, net, kernel))
                return net
            net, mean, variance = tf1.nn.fused_batch_norm(
                net, gamma, beta, epsilon=self.bn_epsilon, data_format=self.data_format,
                is_training=True)
            self.bn_layers.append(BNLayer(tf1.get_variable_scope().name, inputs, moving_mean,
                                          moving_variance, net, kernel))
            updates = [
                tf1.assign_sub(moving_mean, (moving_mean - mean) * self._bn_rate,
                               name="update_moving_mean"),
                tf1.assign_sub(moving_variance, (moving_variance - variance) * self._bn_rate,
                               name="update_moving_variance")]
            for update in updates:
                tf1.add_to_collection(tf1.GraphKeys.UPDATE_OPS, update)
            self._bn_updates.extend(updates)
            return net

    def bn_trains(self, scope):
        """Whether the BN layer in variable scope `scope` trains (see `bn_training_scopes`)."""
        if self._bn_training_scopes is None:
            return True
        return any(scope == s or scope.startswith(s + "/") for s in self._bn_training_scopes)

    def _conv_bn(self, net, filters, kernel, stride, scope, relu=True):
        """conv -> BN (-> ReLU): BN after every conv, before the activation (the paper, 3.4)."""
        with tf1.variable_scope(scope):
            net = self._conv(net, filters, kernel, stride)
            if not self._folded:  # folded: the conv's weights and bias carry the BN
                net = self._batch_norm(net, kernel)
        return tf.nn.relu(net) if relu else net

    def _max_pool(self, net):
        padding = self.pool_padding
        if padding == "symmetric":
            pads = [[0, 0], [1, 1], [1, 1], [0, 0]]
            if self.data_format == "NCHW":
                pads = [pads[0], pads[3], pads[1], pads[2]]
            # Zero padding is exact here: the input is post-ReLU, so never below the pad value.
            net = tf.pad(net, pads)
            padding = "VALID"
        ksize = [1, 3, 3, 1] if self.data_format == "NHWC" else [1, 1, 3, 3]
        strides = [1, 2, 2, 1] if self.data_format == "NHWC" else [1, 1, 2, 2]
        return tf.nn.max_pool2d(net, ksize, strides, padding, data_format=self.data_format,
                                name="pool1")

    def _dense(self, net, units, scope):
        with tf1.variable_scope(scope):
            weights = self._variable("weights", [net.shape[-1], units],
                                     tf1.initializers.random_normal(stddev=0.01), decay=True)
            biases = self._variable("biases", [units], tf1.zeros_initializer())
            return tf.nn.bias_add(tf.matmul(net, self._cast(weights)), self._cast(biases))


def weight_decay_loss(weight_decay, scope=None):
    """L2 weight decay over conv kernels and FC weights (not BN parameters, not biases).

    Args:
        weight_decay: the coefficient (the paper: 1e-4).
        scope: optional variable-scope prefix to filter the collection (one model of several).

    Returns:
        A float32 scalar: weight_decay * sum(||w||^2 / 2).
    """
    variables = tf1.get_collection(WEIGHT_DECAY_COLLECTION, scope)
    if not variables:
        return tf.constant(0.0)
    return tf.multiply(weight_decay, tf.add_n([tf.nn.l2_loss(v) for v in variables]),
                       name="weight_decay_loss")


def _stages_of(plan):
    """The plan's units grouped by stage, in order."""
    stages = []
    for unit in plan:
        if not stages or stages[-1][0].stage != unit.stage:
            stages.append([])
        stages[-1].append(unit)
    return stages


class _FixedDepth(ResNet):
    """A ResNet preset: `DEPTH` fixed, every other argument as `ResNet`'s (keywords only).

    `get_config()` still holds `depth`, so `type(model)(**model.get_config())` round-trips; a
    different `depth` is an error.
    """

    DEPTH = None
    DEFAULTS = {}

    def __init__(self, **kwargs):
        depth = kwargs.pop("depth", self.DEPTH)
        if depth != self.DEPTH:
            raise ValueError("%s argument depth=%r is invalid: expected %d (the preset's depth; "
                             "use ResNet(depth=...) for another)" % (type(self).__name__, depth,
                                                                     self.DEPTH))
        merged = dict(self.DEFAULTS)
        merged.update(kwargs)
        super().__init__(depth=self.DEPTH, **merged)


def _preset(name, depth, doc, base=_FixedDepth):
    return type(name, (base,), {"DEPTH": depth, "__doc__": doc, "__module__": __name__})


class _CifarPreset(_FixedDepth):
    DEFAULTS = {"num_classes": 10, "architecture": "cifar"}


_ARGS = "; arguments as `ResNet` (keywords only)."
ResNet18 = _preset("ResNet18", 18, "ResNet-18: basic units 2-2-2-2 (the paper's Table 1)" + _ARGS)
ResNet34 = _preset("ResNet34", 34, "ResNet-34: basic units 3-4-6-3" + _ARGS)
ResNet50 = _preset("ResNet50", 50, "ResNet-50: bottleneck units 3-4-6-3" + _ARGS)
ResNet101 = _preset("ResNet101", 101, "ResNet-101: bottleneck units 3-4-23-3" + _ARGS)
ResNet152 = _preset("ResNet152", 152, "ResNet-152: bottleneck units 3-8-36-3" + _ARGS)
ResNet200 = _preset("ResNet200", 200, "ResNet-200: bottleneck units 3-24-36-3 (He et al. "
                    "2016)" + _ARGS)
_CIFAR = " basic units per stage (Section 4.2), 10 classes by default" + _ARGS
CifarResNet20 = _preset("CifarResNet20", 20, "CIFAR ResNet-20: 3 x 3" + _CIFAR, _CifarPreset)
CifarResNet32 = _preset("CifarResNet32", 32, "CIFAR ResNet-32: 3 x 5" + _CIFAR, _CifarPreset)
CifarResNet44 = _preset("CifarResNet44", 44, "CIFAR ResNet-44: 3 x 7" + _CIFAR, _CifarPreset)
CifarResNet56 = _preset("CifarResNet56", 56, "CIFAR ResNet-56: 3 x 9" + _CIFAR, _CifarPreset)
CifarResNet110 = _preset("CifarResNet110", 110, "CIFAR ResNet-110: 3 x 18" + _CIFAR,
                         _CifarPreset)
CifarResNet1202 = _preset("CifarResNet1202", 1202, "CIFAR ResNet-1202: 3 x 200" + _CIFAR,
                          _CifarPreset)
