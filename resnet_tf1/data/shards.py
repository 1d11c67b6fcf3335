"""Writing image sets as TFRecord shards with the standard features (`scripts/build_tfrecords.py`).

The features are those of TF's classic `build_imagenet_data.py` (`image_records.FEATURES`, plus
image/colorspace and image/channels), so its shards and ours are read alike (`--dataset=imagenet`
for ILSVRC-2012 with labels 1..1000, `--dataset=tfrecords` for anything with a labels.txt).
JPEG files are stored as they are, except CMYK ones; PNG, BMP and GIF files and CMYK JPEGs are
decoded to RGB and re-encoded as JPEG: quality 100 as the classic tool did, and without chroma
subsampling (on the tests' noisy images 2.5 levels from the original on average rather than 10).
A file that does not decode is left out, named in the log and counted.

A build is a plan (`plan`: every shard's files, fixed by the input listing) and its shards. Each
shard is written under a temporary name and renamed when complete; `build_manifest.json` records
the plan's digest, so a re-run of the same build skips the shards it finds, and a different build
into the same directory is refused.
"""

import collections
import hashlib
import json
import os
import random

import tensorflow as tf

from resnet_tf1 import fileio
from resnet_tf1.data import folder, image_records
from resnet_tf1.data.common import DataError

MANIFEST = "build_manifest.json"
LAYOUTS = ("folder", "ilsvrc2012")
# build_imagenet_data.py's shuffle of the training files, so that every shard mixes classes.
SHUFFLE_SEED = 12345

# One image to write: its path, its stored label, its class id (a WordNet id or the folder name)
# and its human-readable class name.
Item = collections.namedtuple("Item", ["path", "label", "synset", "text"])
Shard = collections.namedtuple("Shard", ["name", "items"])


def _class_text(metadata_file):
    """{wnid: text} from an ImageNet metadata file ("n01440764<TAB>tench, Tinca tinca")."""
    if not metadata_file:
        return {}
    out = {}
    with open(metadata_file) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            wnid, sep, text = line.rstrip("\n").partition("\t")
            if not sep:
                raise DataError("%s line %d: expected \"<wnid><TAB><text>\", got %r"
                                % (metadata_file, number, line.rstrip("\n")))
            out[wnid] = text
    return out


def list_folder(input_dir, label_offset, validation_fraction=0.0):
    """{"train": [Item], "validation": [Item]} and the class names of a folder data set
    (`data.folder`'s layout and rules)."""
    splits = {}
    train, train_labels, names = folder.listing(input_dir, "train", validation_fraction)
    splits["train"] = [Item(p, label + label_offset, names[label], names[label])
                       for p, label in zip(train, train_labels)]
    if folder.validation_dir(input_dir) or validation_fraction:
        paths, label_ids, _ = folder.listing(input_dir, "eval", validation_fraction)
        splits["validation"] = [Item(p, label + label_offset, names[label], names[label])
                                for p, label in zip(paths, label_ids)]
    return splits, names


def list_ilsvrc(input_dir, label_offset, validation_labels_file=None, metadata_file=None):
    """The ILSVRC-2012 layout: train/<wnid>/*.JPEG, and validation/*.JPEG whose ground-truth
    WordNet ids are `validation_labels_file`'s lines in sorted file-name order (the classic
    tool's imagenet_2012_validation_synset_labels.txt)."""
    text = _class_text(metadata_file)
    train_root = os.path.join(input_dir, "train")
    wnids = folder.classes(input_dir)
    index = {w: i for i, w in enumerate(wnids)}
    splits = {"train": []}
    for wnid in wnids:
        for path in folder.images_under(os.path.join(train_root, wnid)):
            splits["train"].append(Item(path, index[wnid] + label_offset, wnid,
                                        text.get(wnid, wnid)))
    val_root = folder.validation_dir(input_dir)
    if val_root:
        if not validation_labels_file:
            raise DataError("--layout=ilsvrc2012: %s needs --validation_labels_file (one WordNet "
                            "id per line, in sorted file-name order)" % val_root)
        with open(validation_labels_file) as f:
            truth = [line.strip() for line in f if line.strip()]
        files = sorted(p for p in os.listdir(val_root)
                       if p.lower().endswith(folder.EXTENSIONS))
        if len(files) != len(truth):
            raise DataError("--validation_labels_file=%s has %d labels for the %d images of %s"
                            % (validation_labels_file, len(truth), len(files), val_root))
        unknown = sorted(set(truth) - set(index))
        if unknown:
            raise DataError("--validation_labels_file=%s names %d class(es) %s lacks: %s"
                            % (validation_labels_file, len(unknown), train_root,
                               ", ".join(unknown[:5])))
        splits["validation"] = [Item(os.path.join(val_root, name), index[w] + label_offset, w,
                                     text.get(w, w)) for name, w in zip(files, truth)]
    return splits, wnids


def plan(splits, num_shards):
    """[Shard] for `splits` ({split name: [Item]}; `num_shards` {split name: count}): the
    training files shuffled with the classic tool's seed, each split cut into contiguous,
    near-equal ranges."""
    shards = []
    for split, items in sorted(splits.items()):
        items = list(items)
        if split == "train":
            random.Random(SHUFFLE_SEED).shuffle(items)
        n = min(num_shards[split], max(len(items), 1))
        bounds = [round(i * len(items) / n) for i in range(n + 1)]
        for i in range(n):
            shards.append(Shard("%s-%05d-of-%05d" % (split, i, n), items[bounds[i]:bounds[i + 1]]))
    return shards


def digest(shards, label_offset):
    h = hashlib.sha256()
    h.update(str(label_offset).encode())
    for shard in shards:
        h.update(shard.name.encode())
        for item in shard.items:
            h.update(("%s\0%d\0%s\0%s\n" % item).encode("utf-8"))
    return h.hexdigest()


def _bytes(value):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int(value):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))


def encode(path):
    """(JPEG bytes, height, width) of the image at `path`: a JPEG as it is (a CMYK one
    converted), anything else decoded to RGB and re-encoded. tf.errors.OpError / OSError when it
    does not decode."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:3] == b"\xff\xd8\xff":
        shape = tf.io.extract_jpeg_shape(data).numpy()
        if shape[2] != 4:  # CMYK JPEGs are the ones with 4 channels
            tf.io.decode_jpeg(data, channels=3)  # raises when the data does not decode
            return data, int(shape[0]), int(shape[1])
    image = tf.io.decode_image(data, channels=3, expand_animations=False)
    return (tf.io.encode_jpeg(image, quality=100, chroma_downsampling=False).numpy(),
            int(image.shape[0]), int(image.shape[1]))


def example(item, encoded, height, width):
    return tf.train.Example(features=tf.train.Features(feature={
        "image/encoded": _bytes(encoded),
        "image/format": _bytes(b"JPEG"),
        "image/colorspace": _bytes(b"RGB"),
        "image/channels": _int(3),
        "image/class/label": _int(item.label),
        "image/class/synset": _bytes(item.synset.encode("utf-8")),
        "image/class/text": _bytes(item.text.encode("utf-8")),
        "image/height": _int(height),
        "image/width": _int(width),
        "image/filename": _bytes(os.path.basename(item.path).encode("utf-8")),
    }))


def write_shard(output_dir, shard):
    """Writes one shard under a temporary name, renamed when complete.

    Returns:
        (shard name, images written, [paths that do not decode]).
    """
    final = os.path.join(output_dir, shard.name)
    tmp = "%s.tmp-%d" % (os.path.join(output_dir, "." + shard.name), os.getpid())
    skipped, written = [], 0
    try:
        with tf.io.TFRecordWriter(tmp) as writer:
            for item in shard.items:
                try:
                    encoded, height, width = encode(item.path)
                except (tf.errors.OpError, OSError, ValueError):
                    skipped.append(item.path)
                    continue
                writer.write(example(item, encoded, height, width).SerializeToString())
                written += 1
        os.rename(tmp, final)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return shard.name, written, skipped


def labels_text(names, label_offset):
    """labels.txt: "<label>:<class name>" per class (TF-slim's label file)."""
    return "".join("%d:%s\n" % (i + label_offset, n) for i, n in enumerate(names))


def prepare_output(output_dir, shards, label_offset, names, source):
    """Creates `output_dir` (or checks it holds this same build), removes interrupted shards'
    temporaries, writes the manifest and labels.txt. Returns the shards still to write.

    Raises:
        DataError: `output_dir` holds another build or files that are no build's.
    """
    key = digest(shards, label_offset)
    manifest_path = os.path.join(output_dir, MANIFEST)
    if os.path.isdir(output_dir) and os.listdir(output_dir):
        if not os.path.exists(manifest_path):
            raise DataError("--output_dir=%s holds files that are not a build_tfrecords.py "
                            "output (no %s): choose an empty or new directory"
                            % (output_dir, MANIFEST))
        with open(manifest_path) as f:
            held = json.load(f)
        if held.get("digest") != key:
            raise DataError("--output_dir=%s holds shards of another build (%d shards from %s; "
                            "a different file list, shard count or label offset): choose a new "
                            "directory or delete it" % (output_dir, len(held.get("shards", [])),
                                                        held.get("source")))
    os.makedirs(output_dir, exist_ok=True)
    fileio.remove_leftovers(output_dir, [".*.tmp-[0-9]*", fileio.TEMP_FILE_PATTERN])
    fileio.write_json(manifest_path, {
        "digest": key, "source": source, "label_offset": label_offset,
        "num_classes": len(names),
        "shards": {s.name: len(s.items) for s in shards}})
    fileio.write_text(os.path.join(output_dir, image_records.LABELS_FILE),
                      labels_text(names, label_offset))
    return [s for s in shards if not os.path.exists(os.path.join(output_dir, s.name))]
