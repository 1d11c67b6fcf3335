"""Use what was ported or trained: one loader and one inference graph for predict and export.

`load(model_dir)` reads either kind of model directory:

- a converted checkpoint (`scripts/convert_checkpoint.py`): `config.json` + `model.ckpt`;
- a training run's `--model_dir`: `model_config.json` + its latest checkpoint (the recomputed-BN
  one of the same step when there is one), or `checkpoint_path`.

Both record the model, its preprocessing (`data.preprocessing`) and its labels (`data.labels`).
`inference_graph()` builds, on RGB pixels in 0..255, the normalisation, the network and the
outputs every consumer uses:

    logits               [batch, num_classes] float32, every logit (a 1001-class model's
                         background too: nothing is dropped)
    probabilities        [batch, C] float32, softmax over the C real classes (a 1001-class
                         model's background logit left out, so index i is WordNet id i)
    classes              [batch] int64, the top-1 real class
    top_k_classes        [batch, k] int64
    top_k_probabilities  [batch, k] float32
    class_names          [batch, k] string, the label of each top-k class
                         ("n01871265 tusker"; "cat" for a CIFAR-10 run)
"""

import collections
import os

import numpy as np
import tensorflow as tf

from resnet_tf1 import errors, fileio, fold_bn
from resnet_tf1 import model as model_lib
from resnet_tf1 import restore as restore_lib
from resnet_tf1 import run_config, rundir
from resnet_tf1.data import DataError, labels as labels_lib, preprocessing

tf1 = tf.compat.v1

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


class Servable(collections.namedtuple("Servable", [
        "model_dir", "kind", "model", "checkpoint", "preprocessing", "mean_image", "labels",
        "weights"])):
    """A model ready to serve: `model` (ResNet keyword arguments), `checkpoint` (a prefix),
    `preprocessing` (a record), `mean_image` (per-pixel mean or None), `labels` (a `Labels`),
    `weights` ({name: array} of the checkpoint, read once and checked finite); `kind` is
    "converted checkpoint" or "training run"."""

    @property
    def image_size(self):
        return self.preprocessing["crop"]

    def build_model(self, dtype=None):
        kwargs = dict(self.model)
        if dtype:
            kwargs["dtype"] = dtype
        return model_lib.ResNet(**kwargs)


def load(model_dir, checkpoint_path=None):
    """The `Servable` in `model_dir` (see the module docstring).

    Raises:
        checkpoints.CheckpointError: no checkpoint, an unreadable one, or one holding NaN or Inf.
        rundir.ModelDirError: not a model directory, or a record that is unreadable or records
            no preprocessing / labels.
    """
    record = rundir.read_record(model_dir)
    config, path = record.config, record.path
    try:
        num_classes = model_lib.ResNet(**config["model"]).num_classes  # checks every argument
    except (ValueError, TypeError) as e:
        raise rundir.ModelDirError("%s cannot be read as a model config: %s" % (path, e))
    if "preprocessing" not in config or "labels" not in config:
        raise rundir.ModelDirError(
            "%s records no preprocessing or labels (written by an earlier version): "
            "run python scripts/train.py --flagfile=%s once more; it resumes at its last step "
            "and records them" % (path, rundir.flags_path(model_dir)))
    rec = preprocessing.check(config["preprocessing"], path)
    mean_image = preprocessing.load_mean_image(rec, model_dir)
    labels = labels_lib.table(config["labels"], num_classes, where=path)
    ckpt = rundir.checkpoint(checkpoint_path or model_dir)
    return Servable(model_dir, record.kind, config["model"], ckpt.prefix, rec, mean_image,
                    labels, ckpt.arrays)


def input_size(servable, size=None):
    """The square input size to serve at: the record's crop, or `size` (fully convolutional use)
    when the network's strides allow it."""
    if size is None or size == servable.image_size:
        return servable.image_size
    if servable.mean_image is not None:
        raise errors.FlagError("--input_size=%d: this model subtracts a %dx%d per-pixel mean "
                               "image, so it serves at that size only"
                               % ((size,) + servable.mean_image.shape[:2]))
    model = servable.build_model()
    stride = 4 if model.resolve(None)["architecture"] == "cifar" else 32
    if size < stride:
        raise errors.FlagError("--input_size=%d is below the network's total stride %d"
                               % (size, stride))
    return size


def decode_graph(servable, encoded, size=None):
    """[batch] encoded images (string) -> [batch, size, size, 3] float32 RGB pixels in 0..255:
    decoded, shorter side resized and centre-cropped as the model's preprocessing says (the
    resize scaled with `size` when it is not the record's crop)."""
    rec = _geometry(servable.preprocessing, size)
    return tf.map_fn(lambda b: preprocessing.resize_and_crop(preprocessing.decode(b), rec),
                     encoded, fn_output_signature=tf.TensorSpec([rec["crop"], rec["crop"], 3],
                                                                tf.float32))


def _geometry(rec, size):
    rec = dict(rec)
    if size and size != rec["crop"]:
        if rec.get("resize_shorter_side"):
            rec["resize_shorter_side"] = int(round(rec["resize_shorter_side"] * size /
                                                   rec["crop"]))
        rec["crop"] = size
    return rec


def inference_graph(servable, images, fold=False, top_k=5, dtype=None, reuse=None):
    """The outputs (module docstring) on `images`, RGB pixels in 0..255 [batch, H, W, 3].

    Args:
        fold: build the BN-folded form (`fold_bn`); its weights come from `restorer(..., fold)`.
        reuse: True for a second input path sharing the first one's variables.
    """
    rec = servable.preprocessing
    mean_image = servable.mean_image
    if mean_image is not None and images.shape[1] != mean_image.shape[0]:
        raise errors.FlagError("this model subtracts a %dx%d per-pixel mean image: it serves at "
                               "that size only" % mean_image.shape[:2])
    x = preprocessing.normalize(images, rec, mean_image)
    logits, _ = servable.build_model(dtype)(x, reuse=reuse, fold_batch_norm=fold)
    offset = servable.labels.offset
    real = logits[:, offset:] if offset else logits
    probabilities = tf.nn.softmax(real)
    k = min(top_k, len(servable.labels))
    top = tf.nn.top_k(probabilities, k)
    names = tf.constant(servable.labels.labels())
    return collections.OrderedDict([
        ("logits", logits),
        ("probabilities", probabilities),
        ("classes", tf.argmax(probabilities, axis=1)),
        ("top_k_classes", tf.cast(top.indices, tf.int64)),
        ("top_k_probabilities", top.values),
        ("class_names", tf.gather(names, top.indices)),
    ])


def model_variables():
    return tf1.get_collection(tf1.GraphKeys.MODEL_VARIABLES)


def restorer(servable, fold=False):
    """A function(session) that loads the servable's weights into the graph's model variables:
    strictly (every variable, nothing left over but training state), folded if `fold`."""
    if fold:
        arrays = fold_bn.folded_arrays(servable.weights, servable.build_model())

        def load_folded(sess):
            restore_lib.load_arrays(sess, arrays, model_variables())
        return load_folded
    r = restore_lib.Restorer(servable.checkpoint, var_list=model_variables(),
                             arrays=servable.weights)
    return r.restore


def image_files(paths):
    """The image files `paths` name: files as given, directories expanded to their image files
    (by extension, sorted). DataError for a path that does not exist."""
    out = []
    for path in paths:
        if os.path.isdir(path):
            out.extend(sorted(os.path.join(path, f) for f in os.listdir(path)
                              if f.lower().endswith(IMAGE_EXTENSIONS)
                              and os.path.isfile(os.path.join(path, f))))
        elif os.path.exists(path):
            out.append(path)
        else:
            raise DataError("%s does not exist (expected an image file or a directory)" % path)
    return out


def decoded_files(rec, paths):
    """Yields (path, float32 RGB pixels [S, S, 3] or None, one-line reason or None) for each of
    `paths`, in order: decoded, resized and cropped as `rec` (a preprocessing record) says. A
    file that cannot be opened or is not an image gives None and its reason; the rest go on."""
    graph = tf.Graph()
    with graph.as_default():
        encoded = tf1.placeholder(tf.string, [], name="encoded")
        pixels = preprocessing.resize_and_crop(preprocessing.decode(encoded), rec)
    with tf1.Session(graph=graph, config=run_config.session_config()) as sess:
        for path in paths:
            try:
                with open(path, "rb") as f:
                    data = f.read()
                result = (path, sess.run(pixels, {encoded: data}), None)
            except (OSError, tf.errors.OpError) as e:
                result = (path, None, getattr(e, "strerror", None) or fileio.error_line(e))
            yield result


def read_pixels(servable, paths, size=None):
    """(float32 RGB pixels [N, S, S, 3] of the readable image files among `paths`, decoded,
    resized and cropped exactly as predict does; [(path, one-line reason)] of the others)."""
    rec = _geometry(servable.preprocessing, size)
    out, unreadable = [], []
    for path, pixels, reason in decoded_files(rec, paths):
        if reason:
            unreadable.append((path, reason))
        else:
            out.append(pixels)
    crop = rec["crop"]
    return (np.stack(out) if out else np.zeros([0, crop, crop, 3], np.float32)), unreadable


Prediction = collections.namedtuple("Prediction", ["path", "top_k", "error"])


def predict(servable, paths, batch_size=32, top_k=5, dtype=None):
    """Classifies the image files `paths`; yields a `Prediction` per file, in order.

    `top_k` is [(class index, label, probability)]; a file that is not a readable image gives
    `error` (one line) and no `top_k`, and the others are still classified.
    """
    graph = tf.Graph()
    with graph.as_default():
        size = servable.image_size
        images = tf1.placeholder(tf.float32, [None, size, size, 3], name="images")
        outputs = inference_graph(servable, images, top_k=top_k, dtype=dtype)
        load = restorer(servable)
        fetch = [outputs["top_k_classes"], outputs["top_k_probabilities"]]
        with tf1.Session(config=run_config.session_config()) as sess:
            load(sess)

            def classify(batch):
                classes, probs = sess.run(fetch, {images: batch})
                return [[(int(i), servable.labels.label(int(i)), float(q))
                         for i, q in zip(c, p)] for c, p in zip(classes, probs)]

            yield from classify_files(servable.preprocessing, classify, paths, batch_size)


def predict_export(runner, record, paths, batch_size=32, top_k=5):
    """`predict` through an exported model (`exported.load`'s runner and its export.json
    record): the export's own top_k_classes / top_k_probabilities / class_names outputs."""
    outputs = record.get("outputs") or record["signatures"]["serving_default"]["outputs"]
    k = outputs["top_k_classes"]["shape"][-1]
    if top_k > k:
        raise errors.FlagError("--top_k=%d: this export gives the top %d (export it with "
                               "--top_k=%d)" % (top_k, k, top_k))

    def classify(batch):
        out = runner(batch)
        return [[(int(i), (n.decode("utf-8") if isinstance(n, bytes) else str(n)), float(q))
                 for i, q, n in list(zip(c, p, names))[:top_k]]
                for c, p, names in zip(out["top_k_classes"], out["top_k_probabilities"],
                                       out["class_names"])]

    rec = _geometry(record["preprocessing"], record["input_size"])
    yield from classify_files(rec, classify, paths, batch_size)


def classify_files(rec, classify, paths, batch_size):
    """Decodes each file as `rec` says (`decoded_files`) and yields its `Prediction`, in order;
    `classify([batch, S, S, 3] pixels)` -> per image [(class, label, probability)]."""
    pending = []  # (path, pixels or None, error or None), in the order given

    def flush():
        ready = [p for _, p, _ in pending if p is not None]
        results = iter(classify(np.stack(ready)) if ready else [])
        for path, pixel, error in pending:
            if error:
                yield Prediction(path, None, error)
            else:
                yield Prediction(path, next(results), None)
        del pending[:]

    for path, pixels, reason in decoded_files(rec, paths):
        error = "%s is not a readable image: %s" % (path, reason) if reason else None
        pending.append((path, pixels, error))
        if sum(p is not None for _, p, _ in pending) == batch_size:
            yield from flush()
    if pending:
        yield from flush()
