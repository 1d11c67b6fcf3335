"""The one implementation of evaluation preprocessing: data pipelines, predict and export use it.

A model's preprocessing is a JSON record (a converted checkpoint's `config.json` "preprocessing",
a training run's `model_config.json` "preprocessing"):

    {"channel_order": "RGB" | "BGR",   # the order the network was fed
     "mean": [3 floats] | null,        # per-channel mean, in the 0..scale range, in that order
     "mean_image": "file.npy" | null,  # or a per-pixel mean [crop, crop, 3], RGB (CIFAR-10)
     "std": [3 floats],                # divided by after the mean is subtracted
     "scale": 255.0,                   # pixel range the mean and std are given in
     "resize_shorter_side": 256,       # evaluation: shorter side resized to this (bilinear)...
     "crop": 224}                      # ...then the centre crop x crop

Inputs are always RGB pixels in 0..255 (what a decoder gives and what an exported model takes);
`normalize` does the channel order, mean and std, `resize_and_crop` the geometry, `decode` turns
encoded JPEG / PNG / BMP / GIF bytes into RGB pixels (grey, palette, CMYK and alpha images
converted; a GIF's first frame).
"""

import os

import numpy as np
import tensorflow as tf

from resnet_tf1.data.common import DataError

KEYS = ("channel_order", "mean", "mean_image", "std", "scale", "resize_shorter_side", "crop")


def record(channel_order="RGB", mean=None, mean_image=None, std=(1.0, 1.0, 1.0), scale=255.0,
           resize_shorter_side=256, crop=224, **extra):
    """A preprocessing record (see the module docstring); `extra` keys are notes."""
    out = {"channel_order": channel_order, "mean": list(mean) if mean is not None else None,
           "mean_image": mean_image, "std": list(std), "scale": float(scale),
           "resize_shorter_side": resize_shorter_side, "crop": crop}
    out.update(extra)
    return out


# --preprocessing presets: how the common sources fed their networks (the geometry is the run's:
# `at_size`). A converted checkpoint records its own; these override it.
PRESETS = {
    # RGB minus the ImageNet channel means: TF-slim (vgg_preprocessing), the TF official models,
    # this project's ImageNet pipeline.
    "rgb_mean": record("RGB", [123.68, 116.78, 103.94]),
    # BGR minus the channel means in BGR order: Keras' preprocess_input mode "caffe" (its
    # ResNet50), close to the Caffe release's mean image.
    "caffe": record("BGR", [103.939, 116.779, 123.68]),
    # (x / 255 - mean) / std: torchvision.
    "torch": record("RGB", [0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225], scale=1.0),
    # x / 127.5 - 1: Keras' mode "tf", TF-slim's inception_preprocessing.
    "inception": record("RGB", [127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5]),
}


def preset(name):
    """The preprocessing record of preset `name`; DataError naming the choices otherwise."""
    if name not in PRESETS:
        raise DataError("unknown --preprocessing=%s: expected one of %s"
                        % (name, ", ".join(PRESETS)))
    return dict(PRESETS[name], preset=name)


def check(rec, where):
    """DataError naming `where` unless `rec` is a usable preprocessing record."""
    if not isinstance(rec, dict):
        raise DataError("%s has no preprocessing record (expected a dict with %s)"
                        % (where, ", ".join(KEYS)))
    if rec.get("channel_order") not in ("RGB", "BGR"):
        raise DataError("%s: preprocessing channel_order is %r, expected RGB or BGR"
                        % (where, rec.get("channel_order")))
    if rec.get("mean") is not None and len(rec["mean"]) != 3:
        raise DataError("%s: preprocessing mean must have 3 values" % where)
    if not isinstance(rec.get("crop"), int) or rec["crop"] <= 0:
        raise DataError("%s: preprocessing crop is %r, expected a positive integer"
                        % (where, rec.get("crop")))
    return rec


def load_mean_image(rec, directory):
    """The per-pixel mean image a record names (a .npy beside its config), or None."""
    name = rec.get("mean_image")
    if not name:
        return None
    path = os.path.join(directory, name)
    try:
        mean = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError("%s (the preprocessing mean image) cannot be read: %s" % (path, e))
    if mean.shape != (rec["crop"], rec["crop"], 3):
        raise DataError("%s has shape %s, expected [%d, %d, 3]" % (path, mean.shape, rec["crop"],
                                                                  rec["crop"]))
    return mean.astype(np.float32)


def decode(encoded):
    """RGB uint8 [height, width, 3] from JPEG / PNG / BMP / GIF bytes (a scalar string tensor).

    Grey and palette images are expanded, alpha dropped, CMYK JPEGs converted; a GIF gives its
    first frame. Raises InvalidArgumentError (when run) for bytes that are no such image.
    """
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def resize_shorter(image, size):
    """Float image [h, w, c] (or a batch [n, h, w, c] of one size) with its shorter side resized
    to `size` (bilinear), the aspect ratio kept."""
    shape = tf.cast(tf.shape(image)[-3:-1], tf.float32)
    scale = tf.cast(size, tf.float32) / tf.reduce_min(shape)
    new = tf.cast(tf.round(shape * scale), tf.int32)
    return tf.image.resize(tf.cast(image, tf.float32), new, method="bilinear")


def centre_crop(image, size):
    shape = tf.shape(image)
    top = (shape[0] - size) // 2
    left = (shape[1] - size) // 2
    return image[top:top + size, left:left + size, :]


def resize_and_crop(image, rec):
    """The record's evaluation geometry on one image: float32 [crop, crop, 3]."""
    image = tf.cast(image, tf.float32)
    if rec.get("resize_shorter_side"):
        image = resize_shorter(image, rec["resize_shorter_side"])
    image = centre_crop(image, rec["crop"])
    image.set_shape([rec["crop"], rec["crop"], 3])
    return image


def normalize(images, rec, mean_image=None):
    """RGB pixels in 0..255 ([..., 3], any leading shape) -> what the network was fed."""
    images = tf.cast(images, tf.float32)
    scale = float(rec.get("scale", 255.0))
    if scale != 255.0:
        images = images * (scale / 255.0)
    if mean_image is not None:  # per-pixel, stored RGB
        images = images - tf.constant(mean_image, tf.float32)
    if rec["channel_order"] == "BGR":
        images = tf.reverse(images, axis=[-1])
    if rec.get("mean") is not None:  # per-channel, in the network's channel order
        images = images - tf.constant(rec["mean"], tf.float32)
    std = rec.get("std") or [1.0, 1.0, 1.0]
    if any(s != 1.0 for s in std):
        images = images / tf.constant(std, tf.float32)
    return images


def denormalize(images, rec, mean_image=None):
    """The inverse of `normalize`: what the network was fed -> RGB pixels in 0..255 (float32;
    exact up to float rounding). An exported model takes pixels, a data pipeline gives
    normalised images: this feeds one with the other (evaluate --export_dir, int8
    calibration)."""
    images = tf.cast(images, tf.float32)
    std = rec.get("std") or [1.0, 1.0, 1.0]
    if any(s != 1.0 for s in std):
        images = images * tf.constant(std, tf.float32)
    if rec.get("mean") is not None:
        images = images + tf.constant(rec["mean"], tf.float32)
    if rec["channel_order"] == "BGR":
        images = tf.reverse(images, axis=[-1])
    if mean_image is not None:
        images = images + tf.constant(mean_image, tf.float32)
    scale = float(rec.get("scale", 255.0))
    if scale != 255.0:
        images = images * (255.0 / scale)
    return images


def at_size(rec, image_size):
    """`rec` with its evaluation geometry scaled to crops of `image_size` (the ImageNet ratio:
    shorter side image_size * 256 / 224, then the centre crop)."""
    out = dict(rec)
    out.update(resize_shorter_side=int(round(image_size * 256 / 224.0)), crop=int(image_size))
    return out


def for_eval(image, rec, mean_image=None):
    """Decoded RGB pixels of one image -> the network's input: geometry, then normalisation."""
    return normalize(resize_and_crop(image, rec), rec, mean_image)
