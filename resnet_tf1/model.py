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
constructor arguments (see `ResNet`), never defaults that change with the hardware found.
"""

import collections
import contextlib
import functools

import tensorflow as tf

tf1 = tf.compat.v1

# Kernels and FC weights (never BN parameters or biases) that weight decay applies to.
WEIGHT_DECAY_COLLECTION = "resnet_tf1_weight_decay"
# A batch-norm layer of a built graph: its scope, its input tensor (pre-BN conv output, in
# `data_format`), its moving-statistic variables, its output tensor (after BN, before any ReLU
# or addition: the paper's "response" of Fig. 7) and its conv's kernel size.
BNLayer = collections.namedtuple("BNLayer", ["scope", "inputs", "moving_mean",
                                             "moving_variance", "outputs", "kernel"])
# Whether training graphs take the input gradient of every stride-1 convolution as a forward
# convolution (`_conv_with_gradients`) rather than TF's own Conv2DBackpropInput (same numbers,
# to 1e-6).
# None: only where it measured faster, i.e. when oneDNN is off (with oneDNN on, its
# backward-data kernel runs at the forward rate and the rotated kernel's transposes cost ~1.5 %:
# BUILD.md, "Speed"). True or False forces it.
FORWARD_CONV_INPUT_GRADIENT = None
# Whether they take the weight gradient of stride-1 convolutions as a forward convolution
# (`_filter_gradient_as_conv`); None: only where it was measured faster, NHWC with oneDNN on and
# no GPU: float32 3x3 layers at 14x14 and below on a CPU with AVX2 but no AVX-512, bfloat16
# layers at 7x7 on a CPU with AVX512-BF16 but no AMX (`_forward_conv_filter_gradient`; BUILD.md,
# "Speed"). True forces it for every stride-1 NHWC convolution (tests).
FORWARD_CONV_FILTER_GRADIENT = None
# Whether they take the weight gradient of 1x1 convolutions (any stride) and of stride-1 ones as
# MatMuls (`_filter_gradient_as_matmul`); None: only where it was measured faster, NHWC with
# oneDNN on and no GPU: bfloat16 on a CPU with AMX, 1x1 kernels and 3x3 ones at 14x14 and below
# (`_matmul_filter_gradient`; BUILD.md, "Speed"). True forces it for every such NHWC convolution
# (tests); it takes precedence over the forward-conv form.
MATMUL_FILTER_GRADIENT = None
# Whether a float16 training graph takes the weight gradient of every convolution in float32
# (`_filter_gradient_in_float32`: TF's Conv2DBackpropFilter on float32 copies of the input and the
# output gradient, rounded to float16); None: only where it was measured faster, with oneDNN on
# a CPU with AVX512-FP16 and no GPU, where oneDNN takes TF's float16 convolutions and its
# float16 backward-weights kernel is the reference one (`ref:any`): 400-900 ms a layer where the
# float32 kernel takes under 1 ms (`_float32_filter_gradient`; BUILD.md, "Speed"). True forces
# it for every float16 or bfloat16 convolution (tests).
FLOAT32_FILTER_GRADIENT = None

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
DATA_FORMATS = ("NHWC", "NCHW")
DTYPES = ("float32", "float16", "bfloat16")


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
        bn_epsilon: BN epsilon: 1e-5 (Caffe, slim, official), 1.001e-5 (Keras now), 1e-3 (Keras
            2016). `tf.nn.fused_batch_norm` raises anything below 1.001e-5 to 1.001e-5, as TF-slim
            does; the difference is below float32 resolution for real BN variances.
        bn_decay: moving-average decay of the BN statistics (0.997 slim/official, 0.99 Keras,
            0.9 Torch). The running estimate has no pull toward its initial 0 / 1: the k-th
            update averages with weight max(1 - bn_decay, 1 / k), a cumulative average while
            fewer than 1 / (1 - bn_decay) updates were seen, then the exponential one (Caffe's
            factor-normalised average does the same). The update count lives in
            `<scope>/bn_update_count`, a global (checkpointed) variable outside
            `MODEL_VARIABLES`, created by training builds only.
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
                 scope=None):
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
                            data_format=data_format, dtype=dtype, device=device, scope=scope)
        self.depth = depth
        self.num_classes = num_classes
        self.variant = variant
        self.conv_bias = conv_bias
        self.bn_epsilon = float(bn_epsilon)
        self.bn_decay = float(bn_decay)
        self.pool_padding = pool_padding
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
        """The constructor's keyword arguments, JSON-serialisable: `ResNet(**config)`."""
        return dict(self._config)

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

    def __call__(self, images, is_training=False, reuse=None, fold_batch_norm=False):
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
            if is_training:
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
        if stride > 1 and kernel > 1:
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
        net = conv2d(net, self._cast(weights), stride, padding, self.data_format,
                     self._is_training)
        if self.conv_bias or self._folded:
            biases = self._variable("biases", [filters], tf1.zeros_initializer())
            net = tf.nn.bias_add(net, self._cast(biases), data_format=self.data_format)
        return net

    def _batch_norm(self, net, kernel):
        depth = net.shape[self._channel_axis]
        with tf1.variable_scope("BatchNorm"):
            gamma = self._variable("gamma", [depth], tf1.ones_initializer())
            beta = self._variable("beta", [depth], tf1.zeros_initializer())
            moving_mean = self._variable("moving_mean", [depth], tf1.zeros_initializer(),
                                         trainable=False)
            moving_variance = self._variable("moving_variance", [depth], tf1.ones_initializer(),
                                             trainable=False)
            inputs = net
            if not self._is_training:
                net, _, _ = tf1.nn.fused_batch_norm(
                    net, gamma, beta, mean=moving_mean, variance=moving_variance,
                    epsilon=self.bn_epsilon, data_format=self.data_format, is_training=False)
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


def conv2d(net, kernel, stride, padding, data_format, is_training):
    """`tf.nn.conv2d` as the model builds it: in a training graph, the gradients take the forms
    measured fastest on this machine (`_forward_conv_input_gradient` for a 'SAME' convolution of
    stride 1, `_filter_gradient_form`; BUILD.md, "Speed"), else TF's own.
    `benchmark.py --per_layer` times each of our convolutions through this function.

    Args:
        net: [batch, h, w, c] input in `data_format` (already padded for 'VALID').
        kernel: [k, k, c, filters], in the compute dtype.
        stride: int; padding: "SAME" or "VALID"; data_format: "NHWC" or "NCHW".
        is_training: Python bool.
    """
    size = kernel.shape[0]
    forward_input, filter_form = False, None
    if is_training:
        forward_input = (padding == "SAME" and size % 2 == 1 and stride == 1
                         and _forward_conv_input_gradient())
        filter_form = _filter_gradient_form(net, size, stride, padding, data_format)
    if forward_input or filter_form:
        return _conv_with_gradients(data_format, stride, padding, forward_input,
                                    filter_form)(net, kernel)
    strides = [1, stride, stride, 1] if data_format == "NHWC" else [1, 1, stride, stride]
    return tf.nn.conv2d(net, kernel, strides, padding, data_format=data_format)


def _onednn_enabled():
    """Whether TensorFlow's oneDNN CPU kernels are on in this process (TF_ENABLE_ONEDNN_OPTS, as
    TensorFlow read it when it loaded)."""
    from tensorflow.python.util import _pywrap_util_port
    return bool(_pywrap_util_port.IsMklEnabled())


def _onednn_cpu_only():
    """Whether convolutions run on oneDNN's CPU kernels here: oneDNN on and no GPU visible (the
    condition of every measured gradient form but the forward-conv input gradient's)."""
    return _onednn_enabled() and not tf.config.list_physical_devices("GPU")


@functools.lru_cache(maxsize=None)
def _cpu_flags():
    """The CPU's feature flags as Linux reports them ("avx2", "avx512f", "amx_bf16", ...); empty
    where /proc/cpuinfo is not readable."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "flags":
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def _forward_conv_input_gradient():
    if FORWARD_CONV_INPUT_GRADIENT is None:
        return not _onednn_enabled()
    return bool(FORWARD_CONV_INPUT_GRADIENT)


def _filter_gradient_form(net, kernel, stride, padding, data_format):
    """How a training graph builds the weight gradient of a convolution: None (TF's own
    Conv2DBackpropFilter), "float32" (TF's op in float32, for a float16 one), or, for a 'SAME' one
    of stride 1 or with a 1x1 kernel, "matmul" (as MatMuls) or "conv" (a stride-1 one's as a
    forward convolution); each only where it measured faster."""
    if _float32_filter_gradient(net):
        return "float32"
    if data_format != "NHWC" or padding != "SAME" or kernel % 2 == 0 or (
            stride != 1 and kernel != 1):
        return None
    if _matmul_filter_gradient(net, kernel):
        return "matmul"
    if stride == 1 and _forward_conv_filter_gradient(net, kernel, data_format):
        return "conv"
    return None


def _matmul_filter_gradient(net, kernel):
    """Whether a convolution's weight gradient (a 1x1 kernel's, or a stride-1 one's) is built as
    MatMuls (`_filter_gradient_as_matmul`). Only where it measured faster (BUILD.md, "Speed"), on
    a CPU with oneDNN (no GPU measured): bfloat16 with AMX, where the MatMuls run on the AMX
    tiles and oneDNN's bfloat16 Conv2DBackpropFilter did not keep up (batch 16, ResNet-50's
    layers): 1x1 kernels at 63-153 GFLOP/s against the MatMul's 80-368, 1.3-3.1x slower at every
    shape; 3x3 kernels 3.0x slower at 7x7 and 1.4x at 14x14 than the nine shifted MatMuls, faster
    at 28x28 and above. Off in float32 (whole step equal with and without it, 1x1 MatMuls) and
    without AMX (AVX512-BF16 alone, Zen 4: 1x1 within 8 % op by op, equal over a step).
    """
    known = None not in net.shape[1:3]  # the shifted MatMuls of a k x k kernel need the size
    if MATMUL_FILTER_GRADIENT is not None:
        return bool(MATMUL_FILTER_GRADIENT) and (kernel == 1 or known)
    if not _onednn_cpu_only():
        return False
    if net.dtype != tf.bfloat16 or "amx_bf16" not in _cpu_flags():
        return False
    return kernel == 1 or (known and net.shape[1] * net.shape[2] <= 14 * 14)


def _float32_filter_gradient(net):
    """Whether a convolution's weight gradient is computed in float32
    (`_filter_gradient_in_float32`).
    Only where it measured faster (BUILD.md, "Speed"): float16 with oneDNN on, on a CPU with
    AVX512-FP16 and no GPU (Intel Xeon with AMX, ONEDNN_VERBOSE=1): oneDNN takes TF's float16
    convolutions there, and runs their forward and backward-data passes with its JIT kernels but
    the backward-weights pass with its reference kernel, `ref:any`: 400-900 ms for one of
    ResNet-20's 3x3 layers at batch 16, 7.1 of the step's 9.3 s of op time. In float32 the same
    gradient takes under 1 ms. Without AVX512-FP16, TF runs float16 on its own kernels.
    """
    if net.dtype not in (tf.float16, tf.bfloat16):
        return False
    if FLOAT32_FILTER_GRADIENT is not None:
        return bool(FLOAT32_FILTER_GRADIENT)
    if net.dtype != tf.float16 or not _onednn_cpu_only():
        return False
    return "avx512_fp16" in _cpu_flags()


def _forward_conv_filter_gradient(net, kernel, data_format):
    """Whether a stride-1 convolution's weight gradient is built as a forward convolution
    (`_filter_gradient_as_conv`). Only where it measured faster (BUILD.md, "Speed"), NHWC on a
    CPU with oneDNN (no GPU was measured):
    - float32, AVX2 without AVX-512: oneDNN's Conv2DBackpropFilter runs 3x3 kernels at about half
      its forward rate, and for ResNet's 3x3 layers at 14x14 and 7x7 the forward-convolution
      form took 0.70-0.84 of its time (at 28x28 equal, at 56x56 and for every 1x1 slower). With
      AVX-512 (AMD Zen 4) Conv2DBackpropFilter runs within 10 % of the forward rate and the
      forward form took 1.2-1.4x its time at every size: off.
    - bfloat16 with AVX512-BF16 and no AMX (Zen 4): at 7x7 the forward form took 0.74 of the
      time of oneDNN's bfloat16 Conv2DBackpropFilter for 3x3 kernels and 0.76-0.90 for 1x1; at
      14x14 and above equal or slower. With AMX (Xeon) it was slower at every size: 1.2-4.9x
      oneDNN's time for 3x3 kernels, and the 1x1 ones take the MatMul form there.
    """
    if FORWARD_CONV_FILTER_GRADIENT is not None:
        return bool(FORWARD_CONV_FILTER_GRADIENT) and data_format == "NHWC"
    spatial = net.shape[1:3] if data_format == "NHWC" else net.shape[2:4]
    if data_format != "NHWC" or None in spatial or not _onednn_cpu_only():
        return False
    flags, pixels = _cpu_flags(), spatial[0] * spatial[1]
    if net.dtype == tf.float32:
        return (kernel == 3 and pixels <= 14 * 14
                and "avx2" in flags and "avx512f" not in flags)
    if net.dtype == tf.bfloat16:
        return pixels <= 7 * 7 and "avx512_bf16" in flags and "amx_bf16" not in flags
    return False


def _filter_gradient_as_conv(inputs, d_outputs, kernel_size):
    """d(loss)/d(kernel) of a stride-1 'SAME' NHWC convolution as one forward convolution.

    dW[i, j, ci, co] = sum_{n, h, w} x_pad[n, h + i, w + j, ci] * dy[n, h, w, co]: a 'VALID'
    convolution of the padded input with batch and channels swapped ([ci, H + k - 1, W + k - 1,
    N]) by the output gradient as a [H, W, N, co] kernel, giving [ci, k, k, co].
    """
    pad = (kernel_size - 1) // 2
    # Gated on the output gradient: otherwise the executor pads and transposes the input as soon
    # as the forward pass produces it, and the copy lives until the backward pass reaches it
    # (+140 MB peak memory for ResNet-50 at batch 32).
    with tf.control_dependencies([d_outputs]):
        padded = tf.pad(inputs, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    d_kernel = tf.nn.conv2d(tf.transpose(padded, [3, 1, 2, 0]),
                            tf.transpose(d_outputs, [1, 2, 0, 3]), 1, "VALID")
    return tf.transpose(d_kernel, [1, 2, 0, 3])


def _filter_gradient_as_matmul(inputs, d_outputs, kernel_size, stride):
    """d(loss)/d(kernel) of a 'SAME' NHWC convolution as MatMuls: a 1x1 kernel's (any stride) as
    one, dW[0, 0] = X^T dY, with X the input pixels the convolution reads (every `stride`-th,
    [N * H' * W', Cin]) and dY the output gradient ([N * H' * W', Cout]); a stride-1 k x k
    kernel's as k * k, dW[i, j] = X_ij^T dY, with X_ij the zero-padded input shifted by (i, j).
    """
    cin, cout = inputs.shape[-1], d_outputs.shape[-1]
    flat = tf.reshape(d_outputs, [-1, cout])
    if kernel_size == 1 and stride == 1:
        d_kernel = tf.matmul(tf.reshape(inputs, [-1, cin]), flat, transpose_a=True)
        return tf.reshape(d_kernel, [1, 1, cin, cout])
    # Gated on the output gradient, like the forward-conv form's pad: else the subsampled or
    # padded copy is made in the forward pass and held until the backward pass reaches it.
    with tf.control_dependencies([d_outputs]):
        if kernel_size == 1:
            subsampled = tf.nn.max_pool2d(inputs, 1, stride, "VALID")
            d_kernel = tf.matmul(tf.reshape(subsampled, [-1, cin]), flat, transpose_a=True)
            return tf.reshape(d_kernel, [1, 1, cin, cout])
        pad = (kernel_size - 1) // 2
        padded = tf.pad(inputs, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    height, width = inputs.shape[1], inputs.shape[2]
    taps = [tf.matmul(tf.reshape(padded[:, i:i + height, j:j + width, :], [-1, cin]), flat,
                      transpose_a=True)
            for i in range(kernel_size) for j in range(kernel_size)]
    return tf.reshape(tf.stack(taps), [kernel_size, kernel_size, cin, cout])


def _filter_gradient_in_float32(inputs, d_outputs, kernel, strides, padding, data_format):
    """d(loss)/d(kernel) of a float16 (or bfloat16) convolution by TF's Conv2DBackpropFilter on
    float32 copies of its input and output gradient, rounded to the compute dtype (so a gradient
    that overflows float16 still becomes Inf for the loss scale to see)."""
    # Gated on the output gradient: else the float32 copy of the input is made in the forward
    # pass and held until the backward pass reaches it.
    with tf.control_dependencies([d_outputs]):
        wide_inputs = tf.cast(inputs, tf.float32)
    d_kernel = tf1.nn.conv2d_backprop_filter(wide_inputs, tf.shape(kernel),
                                             tf.cast(d_outputs, tf.float32), strides, padding,
                                             data_format=data_format)
    return tf.cast(d_kernel, kernel.dtype)


def _conv_with_gradients(data_format, stride, padding, forward_input_gradient,
                         filter_gradient_form):
    """A convolution whose gradients may be built in other forms than TensorFlow's own ops.

    d(loss)/d(input) of a stride-1 'SAME' convolution with an odd kernel is itself a stride-1
    'SAME' convolution of the output gradient with the kernel rotated by 180 degrees and its input
    and output channels swapped (`forward_input_gradient`, only for those). TensorFlow computes it
    with Conv2DBackpropInput, which TF's own CPU kernels run at well under their forward rate
    (profiled with oneDNN off: 1.2-2.9x slower than the same arithmetic as a forward Conv2D for
    ResNet-50's layers at batch 16). The weight gradient is TF's Conv2DBackpropFilter unless
    `filter_gradient_form` is "float32" (`_filter_gradient_in_float32`: any convolution), "conv"
    (`_filter_gradient_as_conv`, 'SAME', stride 1) or "matmul" (`_filter_gradient_as_matmul`:
    'SAME', 1x1 kernels at any stride, other odd kernels at stride 1).
    """
    strides = [1, stride, stride, 1] if data_format == "NHWC" else [1, 1, stride, stride]

    @tf.custom_gradient
    def conv(inputs, kernel):
        outputs = tf.nn.conv2d(inputs, kernel, strides, padding, data_format=data_format)

        def grad(d_outputs):
            if forward_input_gradient:
                with tf.control_dependencies([d_outputs]):
                    flipped = tf.transpose(tf.reverse(kernel, [0, 1]), [0, 1, 3, 2])
                d_inputs = tf.nn.conv2d(d_outputs, flipped, 1, "SAME", data_format=data_format)
            else:
                d_inputs = tf1.nn.conv2d_backprop_input(tf.shape(inputs), kernel, d_outputs,
                                                        strides, padding,
                                                        data_format=data_format)
            if filter_gradient_form == "float32":
                d_kernel = _filter_gradient_in_float32(inputs, d_outputs, kernel, strides,
                                                       padding, data_format)
            elif filter_gradient_form == "matmul":
                d_kernel = _filter_gradient_as_matmul(inputs, d_outputs, kernel.shape[0], stride)
            elif filter_gradient_form == "conv":
                d_kernel = _filter_gradient_as_conv(inputs, d_outputs, kernel.shape[0])
            else:
                d_kernel = tf1.nn.conv2d_backprop_filter(inputs, tf.shape(kernel), d_outputs,
                                                         strides, padding,
                                                         data_format=data_format)
            return d_inputs, d_kernel
        return outputs, grad
    return conv
