"""A numpy forward pass of the MSRA Caffe ResNet deploy net, with Caffe's own semantics.

NCHW, convolution with `pad` on both sides, BatchNorm with the moving-average factor blob plus a
separate Scale layer, pool1 3x3/2 with ceil rounding, 7x7 average pool, InnerProduct. It is the
reference the `caffe` port is checked against; it shares no code with the port.
"""

import re

import numpy as np

_UNIT = re.compile(r"^res(\d)([a-z])(\d*)_branch2a/0$")


def conv(x, w, b=None, stride=1, pad=0):
    n, c, h, wd = x.shape
    o, i, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho = (h + 2 * pad - kh) // stride + 1
    wo = (wd + 2 * pad - kw) // stride + 1
    s = xp.strides
    cols = np.lib.stride_tricks.as_strided(
        xp, (n, c, kh, kw, ho, wo), (s[0], s[1], s[2], s[3], s[2] * stride, s[3] * stride))
    out = np.tensordot(cols, w, axes=([1, 2, 3], [1, 2, 3])).transpose(0, 3, 1, 2)
    if b is not None:
        out = out + b[None, :, None, None]
    return out


def batch_norm_scale(x, blobs, bn, scale, eps=1e-5):
    factor = blobs[bn + "/2"][0]
    factor = 0.0 if factor == 0 else 1.0 / factor
    mean = blobs[bn + "/0"] * factor
    var = blobs[bn + "/1"] * factor
    x = (x - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + eps)
    return x * blobs[scale + "/0"][None, :, None, None] + blobs[scale + "/1"][None, :, None, None]


def max_pool_ceil(x, k=3, s=2):
    n, c, h, w = x.shape
    ho = int(np.ceil((h - k) / s)) + 1
    wo = int(np.ceil((w - k) / s)) + 1
    xp = np.full((n, c, (ho - 1) * s + k, (wo - 1) * s + k), -np.inf, x.dtype)
    xp[:, :, :h, :w] = x
    out = np.full((n, c, ho, wo), -np.inf, x.dtype)
    for i in range(k):
        for j in range(k):
            out = np.maximum(out, xp[:, :, i:i + s * ho:s, j:j + s * wo:s])
    return out


def unit_names(blobs):
    """Per stage, the Caffe unit names ('2a', '3b1', '4b22', ...) in order, read off the blobs."""
    matches = sorted((int(m.group(1)), m.group(2), int(m.group(3) or 0), m.group(3))
                     for m in map(_UNIT.match, blobs) if m)
    stages = sorted({stage for stage, _, _, _ in matches})
    return [["%d%s%s" % (stage, letter, text) for s, letter, _, text in matches if s == stage]
            for stage in stages]


def forward(blobs, images_bgr_nhwc, units=None):
    """Logits of the deploy net on BGR NHWC images. `units`: per stage, the Caffe unit names
    ('2a', '4b22'); default read off the blobs."""
    units = units or unit_names(blobs)
    relu = lambda t: np.maximum(t, 0)  # noqa: E731
    x = images_bgr_nhwc.transpose(0, 3, 1, 2).astype(np.float64)
    x = conv(x, blobs["conv1/0"], blobs.get("conv1/1"), stride=2, pad=3)
    x = relu(batch_norm_scale(x, blobs, "bn_conv1", "scale_conv1"))
    x = max_pool_ceil(x)
    for stage, names in enumerate(units):
        for k, u in enumerate(names):
            stride = 2 if (k == 0 and stage > 0) else 1
            br = "%s_branch" % u
            if "res%s1/0" % br in blobs:
                short = conv(x, blobs["res%s1/0" % br], stride=stride)
                short = batch_norm_scale(short, blobs, "bn%s1" % br, "scale%s1" % br)
            else:
                short = x
            y = conv(x, blobs["res%s2a/0" % br], stride=stride)
            y = relu(batch_norm_scale(y, blobs, "bn%s2a" % br, "scale%s2a" % br))
            y = conv(y, blobs["res%s2b/0" % br], pad=1)
            y = relu(batch_norm_scale(y, blobs, "bn%s2b" % br, "scale%s2b" % br))
            y = conv(y, blobs["res%s2c/0" % br])
            y = batch_norm_scale(y, blobs, "bn%s2c" % br, "scale%s2c" % br)
            x = relu(y + short)
    x = x.mean(axis=(2, 3))
    return x @ blobs["fc1000/0"].T + blobs["fc1000/1"]
