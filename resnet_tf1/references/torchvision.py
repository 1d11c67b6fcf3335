"""A numpy forward pass of torchvision's ResNet (torchvision/models/resnet.py, eval mode), on a
state dict's own tensors and names.

NCHW; `Conv2d(k, stride=s, padding=k // 2, bias=False)`; `BatchNorm2d(eps=1e-5)` with the running
statistics; `MaxPool2d(3, stride=2, padding=1)` (padding with -inf); bottlenecks stride on conv2,
basic blocks on conv1, the projection is `downsample.0` (1x1, stride s) + `downsample.1`;
`AdaptiveAvgPool2d(1)`; `fc`. It is the reference the `torchvision` port and export are checked
against; it shares no code with either (the convolution is `references.caffe.conv`, another
reference's).
"""

import re

import numpy as np

from resnet_tf1.references.caffe import conv

_BLOCK = re.compile(r"^layer(\d)\.(\d+)\.conv1\.weight$")


def batch_norm(x, sd, name, eps=1e-5):
    def g(k):
        return np.asarray(sd["%s.%s" % (name, k)], np.float64)[None, :, None, None]
    return (x - g("running_mean")) / np.sqrt(g("running_var") + eps) * g("weight") + g("bias")


def max_pool(x, k=3, s=2, pad=1):
    n, c, h, w = x.shape
    xp = np.full((n, c, h + 2 * pad, w + 2 * pad), -np.inf)
    xp[:, :, pad:pad + h, pad:pad + w] = x
    ho, wo = (h + 2 * pad - k) // s + 1, (w + 2 * pad - k) // s + 1
    out = np.full((n, c, ho, wo), -np.inf)
    for i in range(k):
        for j in range(k):
            out = np.maximum(out, xp[:, :, i:i + s * ho:s, j:j + s * wo:s])
    return out


def _conv(x, sd, name, stride):
    w = np.asarray(sd[name + ".weight"], np.float64)
    return conv(x, w, stride=stride, pad=w.shape[-1] // 2)


def forward(sd, images_nhwc):
    """Logits of torchvision's ResNet with state dict `sd` on network-input NHWC images."""
    relu = np.maximum
    x = np.asarray(images_nhwc, np.float64).transpose(0, 3, 1, 2)
    x = relu(batch_norm(_conv(x, sd, "conv1", 2), sd, "bn1"), 0)
    x = max_pool(x)
    blocks = sorted((int(m.group(1)), int(m.group(2))) for m in map(_BLOCK.match, sd) if m)
    bottleneck = any(k.endswith(".conv3.weight") for k in sd)
    for layer, k in blocks:
        p = "layer%d.%d." % (layer, k)
        stride = 2 if (k == 0 and layer > 1) else 1
        short = x
        if p + "downsample.0.weight" in sd:
            short = batch_norm(_conv(x, sd, p + "downsample.0", stride), sd, p + "downsample.1")
        if bottleneck:
            y = relu(batch_norm(_conv(x, sd, p + "conv1", 1), sd, p + "bn1"), 0)
            y = relu(batch_norm(_conv(y, sd, p + "conv2", stride), sd, p + "bn2"), 0)
            y = batch_norm(_conv(y, sd, p + "conv3", 1), sd, p + "bn3")
        else:
            y = relu(batch_norm(_conv(x, sd, p + "conv1", stride), sd, p + "bn1"), 0)
            y = batch_norm(_conv(y, sd, p + "conv2", 1), sd, p + "bn2")
        x = relu(y + short, 0)
    x = x.mean(axis=(2, 3))
    return x @ np.asarray(sd["fc.weight"], np.float64).T + np.asarray(sd["fc.bias"], np.float64)
