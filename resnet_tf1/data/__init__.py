"""Input pipelines (tf.data) and the paper's preprocessing. Augmentation lives here, never in
the model.

The one switch over datasets: `spec(name)` says what a dataset is (classes, image size, whether it
has an evaluation set) and `make_dataset(...)` builds its pipeline; training, evaluation, the
benchmark and prediction all go through them.
"""

import collections
import os

from resnet_tf1.data import cifar10, imagenet, labels
from resnet_tf1.data.common import DataError
from resnet_tf1.data.tfrecords import SkippedRecords

DATASETS = ("cifar10", "imagenet", "synthetic")

DatasetSpec = collections.namedtuple("DatasetSpec", ["name", "num_classes", "image_size",
                                                     "has_eval"])
_SPECS = {
    "cifar10": DatasetSpec("cifar10", 10, 32, True),
    "imagenet": DatasetSpec("imagenet", 1000, 224, True),
    # Random tensors made on the device, shaped like ImageNet (benchmarks only).
    "synthetic": DatasetSpec("synthetic", 1000, 224, False),
}


def spec(name):
    """The `DatasetSpec` of `name`; DataError naming the choices for an unknown one."""
    if name not in _SPECS:
        raise DataError("unknown dataset %r: expected one of %s" % (name, ", ".join(DATASETS)))
    return _SPECS[name]


def make_dataset(name, data_dir, split, batch_size, training, num_classes=None, holdout=False,
                 ten_crop=False, seed=None, skips=None, full_image=False):
    """Batches of (images, labels) from a file-backed dataset.

    Args:
        name: "cifar10" or "imagenet".
        split: "train" or "eval" (CIFAR-10 with `holdout`: the paper's 45k / 5k split).
        training: shuffle, repeat and augment.
        num_classes: ImageNet: 1000 (labels shifted to 0..999) or 1001 (background class 0).
        ten_crop: ImageNet evaluation: images are [batch, 10, 224, 224, 3].
        full_image: ImageNet evaluation: whole images at their own size (batch_size 1); CIFAR-10's
            evaluation images are whole 32x32 images anyway.
        skips: a `SkippedRecords` that counts the records a TFRecord pipeline skips (ImageNet;
            CIFAR-10's fixed-size records are all read, or the file is refused).

    Returns:
        (tf.data.Dataset, number of examples or None when unknown).
    """
    s = spec(name)
    if not s.has_eval:
        raise DataError("--dataset=%s has no files to read (expected cifar10 or imagenet)" % name)
    if ten_crop and (name != "imagenet" or training):
        raise DataError("ten-crop evaluation applies to --dataset=imagenet evaluation only")
    if name == "cifar10":
        return cifar10.dataset(data_dir, split, batch_size, training, holdout=holdout, seed=seed)
    return imagenet.dataset(data_dir, split, batch_size, training,
                            num_classes=num_classes or s.num_classes, ten_crop=ten_crop,
                            seed=seed, skips=skips, full_image=full_image)


def inference_record(name, data_dir, num_classes, holdout=False):
    """What a training run on dataset `name` records so that predict and export preprocess and
    label images exactly as its evaluation pipeline did.

    Returns:
        (preprocessing record (`data.preprocessing`), labels record (`data.labels`),
         {file name: numpy array} to save beside the record: CIFAR-10's per-pixel mean image).
    """
    if name == "cifar10":
        root = os.path.join(data_dir, cifar10.SUBDIR)
        mean = cifar10.per_pixel_mean(root, holdout=holdout)
        return (dict(cifar10.PREPROCESSING), labels.for_dataset(name, num_classes, root),
                {cifar10.MEAN_IMAGE_FILE: mean})
    return dict(imagenet.RGB_MEAN_PREPROCESSING), labels.for_dataset(name, num_classes), {}


__all__ = ["DATASETS", "DataError", "DatasetSpec", "SkippedRecords", "inference_record",
           "make_dataset", "spec"]
