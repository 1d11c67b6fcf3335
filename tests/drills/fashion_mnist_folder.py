"""Debian's Fashion-MNIST (apt-get install dataset-fashion-mnist: real 28x28 grey photographs of
clothing, Zalando's, in 10 classes) as a folder of PNG files, the layout --dataset=folder and
build_tfrecords.py read:

    python tests/drills/fashion_mnist_folder.py OUT [--train_per_class=600 --val_per_class=100]

writes OUT/train/<class>/<index>.png and OUT/validation/<class>/<index>.png (grey PNGs, as a
user's scans would be), the first N of each class from the training and the test files. Not part
of the suite: the issue-31 end-to-end run uses it.
"""

import gzip
import os
import sys

import numpy as np

SOURCE = "/usr/share/datasets/fashion-mnist"
CLASSES = ["t-shirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
           "bag", "ankle_boot"]


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def main(out, train_per_class=600, val_per_class=100):
    import tensorflow as tf
    for split, prefix, per_class in (("train", "train", train_per_class),
                                     ("validation", "t10k", val_per_class)):
        images = idx(os.path.join(SOURCE, "%s-images-idx3-ubyte.gz" % prefix))
        labels = idx(os.path.join(SOURCE, "%s-labels-idx1-ubyte.gz" % prefix))
        for c, name in enumerate(CLASSES):
            d = os.path.join(out, split, name)
            os.makedirs(d, exist_ok=True)
            for i in np.flatnonzero(labels == c)[:per_class]:
                png = tf.io.encode_png(images[i][:, :, None]).numpy()
                with open(os.path.join(d, "%05d.png" % i), "wb") as f:
                    f.write(png)
    print("wrote %s: %d training and %d validation images per class, %d classes"
          % (out, train_per_class, val_per_class, len(CLASSES)))


if __name__ == "__main__":
    args = dict(a.lstrip("-").split("=") for a in sys.argv[2:])
    main(sys.argv[1], **{k: int(v) for k, v in args.items()})
