#!/usr/bin/env python
"""Write an image set as sharded TFRecords with the standard features.

    python scripts/build_tfrecords.py --input_dir=photos --output_dir=photos_tfrecords \
        --num_shards=16 --num_workers=2
    python scripts/train.py --dataset=tfrecords --data_dir=photos_tfrecords ...

--layout=folder (default): DIR/train/<class>/<images> and DIR/validation/<class>/... (or val/,
or --validation_fraction), as `--dataset=folder` reads it. --layout=ilsvrc2012: DIR/train/<wnid>/
*.JPEG and DIR/validation/*.JPEG with --validation_labels_file (one WordNet id per line, in sorted
file-name order; the classic tool's imagenet_2012_validation_synset_labels.txt) and optionally
--imagenet_metadata_file (wnid<TAB>text) for image/class/text.

Writes train-NNNNN-of-MMMMM and validation-NNNNN-of-KKKKK (the features of TF's classic
build_imagenet_data.py: image/encoded, image/format, image/class/label, image/class/synset,
image/class/text, image/height, image/width, image/filename, ...), labels.txt ("<label>:<name>"
per class) and build_manifest.json. Stored labels are the class index + --label_offset (default 0
for a folder, 1 for ILSVRC-2012 as the classic tool wrote them: label 0 is a 1001-class model's
background). Each shard is written under a temporary name and renamed when complete; re-running
the same command after an interruption writes only the shards that are missing.
"""

import multiprocessing
import os
import time

from absl import app, flags, logging

FLAGS = flags.FLAGS
flags.DEFINE_string("input_dir", None, "The image set (see --layout).")
flags.DEFINE_string("output_dir", None, "Where the shards, labels.txt and build_manifest.json "
                    "go (new, empty, or an interrupted build of the same command).")
flags.DEFINE_enum("layout", "folder", ["folder", "ilsvrc2012"], "folder: train/<class>/... and "
                  "validation/<class>/...; ilsvrc2012: train/<wnid>/*.JPEG and validation/*.JPEG "
                  "with --validation_labels_file.")
flags.DEFINE_integer("num_shards", 16, "Training shards (the classic ImageNet build: 1024).",
                     lower_bound=1)
flags.DEFINE_integer("validation_shards", None, "Validation shards (default: --num_shards / 8, "
                     "at least 1; the classic ImageNet build: 128).", lower_bound=1)
flags.DEFINE_integer("num_workers", 2, "Worker processes, each writing whole shards.",
                     lower_bound=1)
flags.DEFINE_integer("label_offset", None, "Added to each class index to give the stored label: "
                     "1 leaves label 0 to a 1001-class model's background. Default: 0 for "
                     "--layout=folder, 1 for ilsvrc2012 (the classic tool's labels 1..1000).",
                     lower_bound=0)
flags.DEFINE_float("validation_fraction", 0.0, "--layout=folder without a validation folder: "
                   "write this fraction of train/ (chosen by a hash of each file's relative "
                   "path, as --dataset=folder holds it out) as the validation shards.")
flags.DEFINE_string("validation_labels_file", None, "--layout=ilsvrc2012: the validation "
                    "images' WordNet ids, one per line in sorted file-name order.")
flags.DEFINE_string("imagenet_metadata_file", None, "--layout=ilsvrc2012: wnid<TAB>text lines "
                    "for image/class/text (default: the wnid).")


def _write(job):
    """A worker's one shard (runs in a spawned process: TensorFlow is imported there, its C++
    start-up notices silenced)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from resnet_tf1.data import shards
    start = time.time()
    name, written, skipped = shards.write_shard(*job)
    return name, written, skipped, time.time() - start


def build(output_dir, todo, total_images, num_workers):
    """Writes the shards `todo` with `num_workers` processes, logging each as it completes with
    images/sec and the ETA. Returns (images written, [paths skipped])."""
    jobs = [(output_dir, shard) for shard in todo]
    remaining = sum(len(s.items) for s in todo)
    logging.info("writing %d shard(s) of %d image(s) (%d already written) with %d worker(s)",
                 len(todo), remaining, total_images - remaining, num_workers)
    written = done_items = 0
    skipped = []
    start = time.time()

    def report(result, index):
        nonlocal written, done_items
        name, n, bad, _ = result
        written += n
        done_items += n + len(bad)
        skipped.extend(bad)
        for path in bad:
            logging.warning("%s: skipped: the image does not decode", path)
        elapsed = time.time() - start
        rate = done_items / elapsed if elapsed else 0.0
        logging.info("shard %d/%d %s: %d images  %.1f images/sec  ETA %ds", index, len(jobs),
                     name, n, rate, (remaining - done_items) / rate if rate else 0)

    if num_workers == 1 or len(jobs) == 1:
        for i, job in enumerate(jobs, 1):
            report(_write(job), i)
    else:
        context = multiprocessing.get_context("spawn")
        with context.Pool(min(num_workers, len(jobs))) as pool:
            for i, result in enumerate(pool.imap_unordered(_write, jobs), 1):
                report(result, i)
    return written, skipped


def main(argv):
    if len(argv) > 1:
        raise app.UsageError("unexpected arguments: %s" % " ".join(argv[1:]))
    from resnet_tf1 import errors, run_flags
    from resnet_tf1.data import shards
    try:
        for name in ("input_dir", "output_dir"):
            if not FLAGS[name].value:
                raise errors.FlagError("--%s is required" % name)
        if not os.path.isdir(FLAGS.input_dir):
            raise errors.FlagError("--input_dir=%s is not a directory" % FLAGS.input_dir)
        if not 0 <= FLAGS.validation_fraction < 1:
            raise errors.FlagError("--validation_fraction=%r must be in [0, 1)"
                                   % FLAGS.validation_fraction)
        offset = FLAGS.label_offset
        if offset is None:
            offset = 1 if FLAGS.layout == "ilsvrc2012" else 0
        if FLAGS.layout == "folder":
            splits, names = shards.list_folder(FLAGS.input_dir, offset,
                                               FLAGS.validation_fraction)
        else:
            splits, names = shards.list_ilsvrc(FLAGS.input_dir, offset,
                                               FLAGS.validation_labels_file,
                                               FLAGS.imagenet_metadata_file)
        counts = {"train": FLAGS.num_shards,
                  "validation": FLAGS.validation_shards or max(1, FLAGS.num_shards // 8)}
        plan = shards.plan(splits, counts)
        logging.info("%s: %s in %d classes (stored labels %d..%d)", FLAGS.input_dir,
                     ", ".join("%d %s images" % (len(v), k) for k, v in sorted(splits.items())),
                     len(names), offset, offset + len(names) - 1)
        todo = shards.prepare_output(FLAGS.output_dir, plan, offset, names,
                                     os.path.abspath(FLAGS.input_dir))
        written, skipped = build(FLAGS.output_dir, todo, sum(len(s.items) for s in plan),
                                 FLAGS.num_workers)
    except run_flags.EXPECTED_ERRORS + (OSError,) as e:
        return run_flags.report("build_tfrecords", e)
    logging.info("done: %d shard(s) in %s (%d image(s) written now%s); labels in %s",
                 len(plan), FLAGS.output_dir, written,
                 ", %d skipped: they do not decode (logged above)" % len(skipped)
                 if skipped else "", os.path.join(FLAGS.output_dir, "labels.txt"))
    return 0


if __name__ == "__main__":
    app.run(main)
