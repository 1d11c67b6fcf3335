"""Resident memory of the photo input pipelines on phone-size photos: the training stream of
`--dataset=tfrecords` and `--dataset=folder` over the same images, each in its own process.

    python tests/drills/input_memory.py WORK [--photos=160 --batches=41]

writes WORK/photos/train/{a,b}/*.jpg (4000x3000 synthetic JPEGs: patterns that compress like
photos, ~1.4 MB a record at build_tfrecords.py's quality 100), builds WORK/tfrecords with
`scripts/build_tfrecords.py`, then for each pipeline reads `--batches` training batches of 8 at
224x224 and prints the peak resident set size (ru_maxrss) and the seconds to the first batch.
Not part of the suite: the figures are BUILD.md's "TFRecord shuffles hold bytes, not pixels".
"""

import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)


def make_photos(out, count):
    import numpy as np
    import tensorflow as tf
    y, x = np.mgrid[0:3000, 0:4000]
    for i in range(count):
        d = os.path.join(out, "train", "ab"[i % 2])
        os.makedirs(d, exist_ok=True)
        image = np.stack([(x * (i + 1) // 37) % 256, (y * (i + 3) // 29) % 256,
                          ((x + y) // (i + 5)) % 256], -1).astype(np.uint8)
        with open(os.path.join(d, "%04d.jpg" % i), "wb") as f:
            f.write(tf.io.encode_jpeg(image, quality=85).numpy())


def measure(name, data_dir, batches):
    """One pipeline in this process: peak RSS and time to the first batch."""
    from resnet_tf1.data import RECORDS, options
    ds, _ = RECORDS[name].pipeline(data_dir, "train", 8, True,
                                   options(num_classes=2, seed=1, image_size=224))
    start = time.time()
    it = iter(ds)
    next(it)
    first = time.time() - start
    for _ in range(batches - 1):
        next(it)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kB -> GB
    print("%-9s peak RSS %.2f GB, first batch after %.1f s, %d batches in %.1f s"
          % (name, peak, first, batches, time.time() - start), flush=True)


def main(argv):
    args = dict(a.lstrip("-").split("=", 1) for a in argv[2:])
    if len(argv) > 1 and argv[1] == "--measure":
        return measure(args["name"], args["data_dir"], int(args["batches"]))
    work = argv[1]
    photos, records = os.path.join(work, "photos"), os.path.join(work, "tfrecords")
    if not os.path.isdir(photos):
        make_photos(photos, int(args.get("photos", 160)))
    if not os.path.isdir(records):
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "build_tfrecords.py"),
                        "--input_dir=" + photos, "--output_dir=" + records, "--num_shards=8",
                        "--num_workers=2"], check=True)
    for name, data_dir in (("tfrecords", records), ("folder", photos)):
        subprocess.run([sys.executable, os.path.abspath(__file__), "--measure", "--name=" + name,
                        "--data_dir=" + data_dir, "--batches=" + args.get("batches", "41")],
                       check=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))


if __name__ == "__main__":
    main(sys.argv)
