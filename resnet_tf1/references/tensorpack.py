"""A numpy forward pass of tensorpack's ImageNet ResNets (examples/ResNet), inference mode, on an
.npz's own tensors and names.

NHWC as tensorpack's default; "native" (imagenet-resnet.py): every convolution padded the TF
"SAME" way (for stride s, kernel k, input n: total max((ceil(n / s) - 1) s + k - n, 0), the
smaller half first), the 3x3/2 max-pool SAME, bottlenecks strided on conv2, basic blocks on
conv1. "caffe" (load-resnet.py): the input padded (3, 2) then a VALID 7x7/2 with conv0's bias,
pool SAME, bottlenecks strided on conv1 (stride_first). BatchNorm ε 1e-5 with mean/EMA and
variance/EMA; `convshortcut` where the channel count changes; global average pool; linear. It is
the reference the `tensorpack` port is checked against and shares no code with it (the
convolution is `references.caffe.conv`, another reference's).
"""

import re

import numpy as np

from resnet_tf1.references.caffe import conv as nchw_conv

_BLOCK = re.compile(r"^group(\d)/block(\d+)/conv1/W$")


def _same_pads(n, k, s):
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def conv(x, w, stride, same=True, pads=None):
    """x NHWC float64, w HWIO."""
    k = w.shape[0]
    if pads is None:
        pads = (_same_pads(x.shape[1], k, stride), _same_pads(x.shape[2], k, stride)) if same \
            else ((0, 0), (0, 0))
    x = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    y = nchw_conv(x.transpose(0, 3, 1, 2), np.asarray(w, np.float64).transpose(3, 2, 0, 1),
                  stride=stride)
    return y.transpose(0, 2, 3, 1)


def bn(x, p, name, eps=1e-5):
    def g(k):
        return np.asarray(p["%s/bn/%s" % (name, k)], np.float64)
    return (x - g("mean/EMA")) / np.sqrt(g("variance/EMA") + eps) * g("gamma") + g("beta")


def max_pool_same(x, k=3, s=2):
    (t, b), (l, r) = _same_pads(x.shape[1], k, s), _same_pads(x.shape[2], k, s)
    xp = np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)), constant_values=-np.inf)
    ho, wo = -(-x.shape[1] // s), -(-x.shape[2] // s)
    out = np.full((x.shape[0], ho, wo, x.shape[3]), -np.inf)
    for i in range(k):
        for j in range(k):
            out = np.maximum(out, xp[:, i:i + s * ho:s, j:j + s * wo:s, :])
    return out


def forward(p, images_nhwc, layout="native"):
    """Logits of the tensorpack ResNet with variables `p` on network-input NHWC images."""
    relu = np.maximum
    x = np.asarray(images_nhwc, np.float64)
    if layout == "caffe":
        bias = np.asarray(p["conv0/b"], np.float64)
        x = conv(x, p["conv0/W"], 2, pads=((3, 2), (3, 2))) + bias
    else:
        x = conv(x, p["conv0/W"], 2)
    x = max_pool_same(relu(bn(x, p, "conv0"), 0))
    blocks = sorted((int(m.group(1)), int(m.group(2))) for m in map(_BLOCK.match, p) if m)
    bottleneck = any(n.endswith("/conv3/W") for n in p)
    for g, b in blocks:
        name = "group%d/block%d/" % (g, b)
        stride = 2 if (b == 0 and g > 0) else 1
        short = x
        if name + "convshortcut/W" in p:
            short = bn(conv(x, p[name + "convshortcut/W"], stride), p, name + "convshortcut")
        if bottleneck:
            s1, s2 = (stride, 1) if layout == "caffe" else (1, stride)
            y = relu(bn(conv(x, p[name + "conv1/W"], s1), p, name + "conv1"), 0)
            y = relu(bn(conv(y, p[name + "conv2/W"], s2), p, name + "conv2"), 0)
            y = bn(conv(y, p[name + "conv3/W"], 1), p, name + "conv3")
        else:
            y = relu(bn(conv(x, p[name + "conv1/W"], stride), p, name + "conv1"), 0)
            y = bn(conv(y, p[name + "conv2/W"], 1), p, name + "conv2")
        x = relu(y + short, 0)
    x = x.mean(axis=(1, 2))
    return x @ np.asarray(p["linear/W"], np.float64) + np.asarray(p["linear/b"], np.float64)
