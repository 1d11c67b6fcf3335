"""Input pipelines (tf.data) and the paper's preprocessing. Augmentation lives here, never in
the model.

Each dataset module ends in one `Dataset` record (`common.Dataset`: its spec, its pipeline and
the inference record predict and export use); `DATASETS` lists them, and `spec` /
`make_dataset` / `inference_record` are the one switch over them that training, evaluation, the
BN recompute, the benchmark and prediction go through. Adding a dataset is one module and one
entry in `_MODULES`; an unknown name is refused, never taken for another.
"""

from resnet_tf1.data import cifar10, folder, image_records, imagenet, synthetic
from resnet_tf1.data.common import (OPTION_DEFAULTS, DataError, Dataset, DatasetSpec,
                                    Options, options)
from resnet_tf1.data.tfrecords import SkippedRecords

_MODULES = (cifar10, imagenet, folder, image_records, synthetic)
RECORDS = {m.DATASET.name: m.DATASET for m in _MODULES}
DATASETS = tuple(RECORDS)

_OPTION_NAMES = {"holdout": "--holdout_validation", "ten_crop": "--ten_crop",
                 "full_image": "--multi_scale", "image_size": "--image_size",
                 "preprocessing": "--preprocessing",
                 "validation_fraction": "--validation_fraction"}


def record(name):
    """The `Dataset` record of `name`; DataError naming the choices for an unknown one."""
    if name not in RECORDS:
        raise DataError("unknown dataset %r: expected one of %s" % (name, ", ".join(DATASETS)))
    return RECORDS[name]


def spec(name, data_dir=None):
    """The `DatasetSpec` of dataset `name` in `data_dir` (folder / tfrecords read their class
    count there)."""
    return record(name).spec(data_dir)


def has_files(name):
    """Whether dataset `name` reads files (and so has an evaluation set): not synthetic."""
    return record(name).pipeline is not None


def _checked(name, training, opts):
    rec = record(name)
    for option in ("holdout", "ten_crop", "full_image", "image_size", "preprocessing",
                   "validation_fraction"):
        if getattr(opts, option) and getattr(opts, option) != OPTION_DEFAULTS[option] \
                and option not in rec.options:
            if option == "ten_crop":
                raise DataError("ten-crop evaluation applies to --dataset=imagenet evaluation "
                                "only")
            raise DataError("%s does not apply to --dataset=%s" % (_OPTION_NAMES[option], name))
    if opts.ten_crop and training:
        raise DataError("ten-crop evaluation applies to --dataset=imagenet evaluation only")
    return rec


def make_dataset(name, data_dir, split, batch_size, training, **kwargs):
    """Batches of (images, labels) from a file-backed dataset.

    Args:
        name: one of DATASETS with files (not "synthetic").
        split: "train" or "eval" (CIFAR-10 with `holdout`: the paper's 45k / 5k split; a folder
            with `validation_fraction`: the files held out by path hash).
        training: shuffle, repeat and augment.
        kwargs: `common.Options` fields (num_classes, seed, skips, holdout, ten_crop,
            full_image, image_size, preprocessing, validation_fraction); one the dataset does
            not support is refused in one line naming its flag.

    Returns:
        (tf.data.Dataset, number of examples or None when unknown).
    """
    opts = options(**kwargs)
    rec = _checked(name, training, opts)
    if rec.pipeline is None:
        raise DataError("--dataset=%s has no files to read (expected one of %s)"
                        % (name, ", ".join(n for n in DATASETS if RECORDS[n].pipeline)))
    return rec.pipeline(data_dir, split, batch_size, training, opts)


def inference_record(name, data_dir, **kwargs):
    """What a training run on dataset `name` records so that predict and export preprocess and
    label images exactly as its evaluation pipeline did.

    Returns:
        (preprocessing record (`data.preprocessing`), labels record (`data.labels`),
         {file name: numpy array} to save beside the record: CIFAR-10's per-pixel mean image).
    """
    opts = options(**kwargs)
    return _checked(name, False, opts).inference_record(data_dir, opts)


__all__ = ["DATASETS", "DataError", "Dataset", "DatasetSpec", "Options", "RECORDS",
           "SkippedRecords", "has_files", "inference_record", "make_dataset", "record", "spec"]
