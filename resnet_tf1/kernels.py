"""Which ops a training graph's convolution gradients are built from, on this machine.

The same numbers either way: a convolution's input and weight gradients are TensorFlow's own
Conv2DBackpropInput / Conv2DBackpropFilter, or the same sums in another form that measured faster
for a compute dtype, a CPU's instruction set and a layer's shape (BUILD.md, "Speed", has every
measurement):

  input gradient   "tf"            TF's op
                   "forward_conv"  a stride-1 'SAME' convolution's, as a forward convolution of
                                   the output gradient with the rotated kernel (default: only with
                                   oneDNN off)
  weight gradient  "tf"            TF's op
                   "conv"          a stride-1 'SAME' NHWC convolution's, as one forward
                                   convolution (default: float32 3x3 layers at 14x14 and below on
                                   AVX2 without AVX-512; bfloat16 at 7x7 on AVX512-BF16 without
                                   AMX)
                   "matmul"        a 1x1 kernel's (any stride) or a stride-1 one's, as MatMuls
                                   (default: bfloat16 with AMX, 1x1 kernels and 3x3 ones at 14x14
                                   and below)
                   "float32"       a float16 / bfloat16 convolution's, by TF's op on float32
                                   copies (default: float16 with AVX512-FP16, where oneDNN's
                                   float16 backward-weights kernel is its reference one)

Every default needs oneDNN on and no GPU, except "forward_conv", which needs oneDNN off.
`override()` forces a form (and the CPU flags the defaults read) for the graphs built inside it;
nothing else changes them. Near the bottom of the house: it imports nothing of this package.
"""

import collections
import contextlib
import contextvars
import functools

import tensorflow as tf

tf1 = tf.compat.v1

INPUT_GRADIENT_FORMS = ("tf", "forward_conv")
FILTER_GRADIENT_FORMS = ("tf", "conv", "matmul", "float32")

# What `override()` forces; None fields keep the measured default.
_Override = collections.namedtuple("_Override", ["input_gradient", "filter_gradient",
                                                 "cpu_flags"])
_OVERRIDE = contextvars.ContextVar("resnet_tf1_kernels_override",
                                   default=_Override(None, None, None))


@contextlib.contextmanager
def override(input_gradient=None, filter_gradient=None, cpu_flags=None):
    """Forces the gradient forms of the training graphs built inside the `with` block.

    Args:
        input_gradient: None (the measured default) or one of INPUT_GRADIENT_FORMS; a form is
            applied to every convolution it can take, TF's op to the others.
        filter_gradient: None or one of FILTER_GRADIENT_FORMS, likewise.
        cpu_flags: None (this CPU's) or the flags (e.g. {"avx512_bf16", "amx_bf16"}) the
            defaults are chosen for, as if on that CPU.

    Raises:
        ValueError: a form that does not exist.
    """
    if input_gradient not in (None,) + INPUT_GRADIENT_FORMS:
        raise ValueError("kernels.override input_gradient=%r: expected None or one of %s"
                         % (input_gradient, ", ".join(INPUT_GRADIENT_FORMS)))
    if filter_gradient not in (None,) + FILTER_GRADIENT_FORMS:
        raise ValueError("kernels.override filter_gradient=%r: expected None or one of %s"
                         % (filter_gradient, ", ".join(FILTER_GRADIENT_FORMS)))
    token = _OVERRIDE.set(_Override(input_gradient, filter_gradient,
                                    None if cpu_flags is None else frozenset(cpu_flags)))
    try:
        yield
    finally:
        _OVERRIDE.reset(token)


def onednn_enabled():
    """Whether TensorFlow's oneDNN CPU kernels are on in this process (TF_ENABLE_ONEDNN_OPTS, as
    TensorFlow read it when it loaded)."""
    from tensorflow.python.util import _pywrap_util_port
    return bool(_pywrap_util_port.IsMklEnabled())


def onednn_cpu_only():
    """Whether convolutions run on oneDNN's CPU kernels here: oneDNN on and no GPU visible (the
    condition of every measured weight-gradient form)."""
    return onednn_enabled() and not tf.config.list_physical_devices("GPU")


@functools.lru_cache(maxsize=None)
def _proc_cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "flags":
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def cpu_flags():
    """The CPU's feature flags as Linux reports them ("avx2", "avx512f", "amx_bf16", ...), or
    those `override(cpu_flags=...)` sets; empty where /proc/cpuinfo is not readable."""
    forced = _OVERRIDE.get().cpu_flags
    return _proc_cpu_flags() if forced is None else forced


def conv2d(net, kernel, stride, padding, data_format, is_training):
    """`tf.nn.conv2d` as the model builds it: in a training graph, its gradients take the forms
    `input_gradient_form` and `filter_gradient_form` choose, else TF's own.
    `benchmark.py --per_layer` times each of our convolutions through this function.

    Args:
        net: [batch, h, w, c] input in `data_format` (already padded for 'VALID').
        kernel: [k, k, c, filters], in the compute dtype.
        stride: int; padding: "SAME" or "VALID"; data_format: "NHWC" or "NCHW".
        is_training: Python bool.
    """
    size = kernel.shape[0]
    input_form, filter_form = "tf", "tf"
    if is_training:
        input_form = input_gradient_form(size, stride, padding)
        filter_form = filter_gradient_form(net, size, stride, padding, data_format)
    if input_form != "tf" or filter_form != "tf":
        return _conv_with_gradients(data_format, stride, padding, input_form, filter_form)(
            net, kernel)
    strides = [1, stride, stride, 1] if data_format == "NHWC" else [1, 1, stride, stride]
    return tf.nn.conv2d(net, kernel, strides, padding, data_format=data_format)


def input_gradient_form(kernel, stride, padding):
    """"forward_conv" or "tf" for a convolution's input gradient (module docstring)."""
    if not (padding == "SAME" and kernel % 2 == 1 and stride == 1):
        return "tf"
    forced = _OVERRIDE.get().input_gradient
    if forced is not None:
        return forced
    return "tf" if onednn_enabled() else "forward_conv"


def filter_gradient_form(net, kernel, stride, padding, data_format):
    """"tf", "conv", "matmul" or "float32" for a convolution's weight gradient (module docstring).

    Args:
        net: the convolution's input (its dtype and static shape decide).
        kernel: the kernel's size; stride, padding, data_format: the convolution's.
    """
    reduced = net.dtype in (tf.float16, tf.bfloat16)
    # The MatMul and forward-conv forms: 'SAME' NHWC with an odd kernel, stride 1 or a 1x1
    # kernel; the shifted MatMuls of a k x k kernel need the spatial size.
    same = data_format == "NHWC" and padding == "SAME" and kernel % 2 == 1
    known = None not in net.shape[1:3]
    can_matmul = same and (kernel == 1 or (stride == 1 and known))
    can_conv = same and stride == 1
    forced = _OVERRIDE.get().filter_gradient
    if forced is not None:
        possible = {"tf": True, "float32": reduced, "matmul": can_matmul, "conv": can_conv}
        return forced if possible[forced] else "tf"
    if not onednn_cpu_only():
        return "tf"
    flags = cpu_flags()
    # float16 on AVX512-FP16: oneDNN's float16 backward-weights kernel is its reference one.
    if net.dtype == tf.float16:
        return "float32" if "avx512_fp16" in flags else "tf"
    pixels = net.shape[1] * net.shape[2] if known else None
    if net.dtype == tf.bfloat16:
        if "amx_bf16" in flags:
            if can_matmul and (kernel == 1 or pixels <= 14 * 14):
                return "matmul"
            return "tf"
        if can_conv and known and pixels <= 7 * 7 and "avx512_bf16" in flags:
            return "conv"
        return "tf"
    # float32: the forward-conv form for small 3x3 layers where oneDNN's kernel is slow (AVX2).
    if (can_conv and known and kernel == 3 and pixels <= 14 * 14 and "avx2" in flags
            and "avx512f" not in flags):
        return "conv"
    return "tf"


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


def _conv_with_gradients(data_format, stride, padding, input_form, filter_form):
    """A convolution whose gradients are built in the given forms (module docstring).

    d(loss)/d(input) of a stride-1 'SAME' convolution with an odd kernel is itself a stride-1
    'SAME' convolution of the output gradient with the kernel rotated by 180 degrees and its input
    and output channels swapped ("forward_conv").
    """
    strides = [1, stride, stride, 1] if data_format == "NHWC" else [1, 1, stride, stride]

    @tf.custom_gradient
    def conv(inputs, kernel):
        outputs = tf.nn.conv2d(inputs, kernel, strides, padding, data_format=data_format)

        def grad(d_outputs):
            if input_form == "forward_conv":
                with tf.control_dependencies([d_outputs]):
                    flipped = tf.transpose(tf.reverse(kernel, [0, 1]), [0, 1, 3, 2])
                d_inputs = tf.nn.conv2d(d_outputs, flipped, 1, "SAME", data_format=data_format)
            else:
                d_inputs = tf1.nn.conv2d_backprop_input(tf.shape(inputs), kernel, d_outputs,
                                                        strides, padding,
                                                        data_format=data_format)
            if filter_form == "float32":
                d_kernel = _filter_gradient_in_float32(inputs, d_outputs, kernel, strides,
                                                       padding, data_format)
            elif filter_form == "matmul":
                d_kernel = _filter_gradient_as_matmul(inputs, d_outputs, kernel.shape[0], stride)
            elif filter_form == "conv":
                d_kernel = _filter_gradient_as_conv(inputs, d_outputs, kernel.shape[0])
            else:
                d_kernel = tf1.nn.conv2d_backprop_filter(inputs, tf.shape(kernel), d_outputs,
                                                         strides, padding,
                                                         data_format=data_format)
            return d_inputs, d_kernel
        return outputs, grad
    return conv
