"""Fine-tuning on your own images (issue 31): folder and TFRecord datasets, build_tfrecords.py,
converted checkpoints that train with only --init_checkpoint / --dataset / --num_classes, the
head alone, learning-rate schedules and label smoothing."""

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from peer_util import relative_error
from resnet_tf1 import checkpoints, errors, run_config, train_lib
from resnet_tf1 import data as data_lib
from resnet_tf1.data import fake, folder, image_records
from resnet_tf1.porting import convert as convert_lib

tf1 = tf.compat.v1
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSES = ["cat", "dog", "fish"]
ORIGINALS = {}  # path -> the RGB pixels make_folder encoded there


def run(script, *args, wrapper=()):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable] + list(wrapper) +
                          [os.path.join(ROOT, "scripts", script)] + list(args),
                          capture_output=True, text=True, env=env, timeout=900)


def _save(path, image, kind):
    from PIL import Image
    im = Image.fromarray(image)
    if kind == "cmyk":
        im.convert("CMYK").save(path, "JPEG", quality=95)
    elif kind == "grey":
        im.convert("L").save(path, "PNG")
    elif kind == "palette":
        im.convert("P").save(path, "GIF")
    elif kind == "rgba":
        im.convert("RGBA").save(path, "PNG")
    elif kind == "bmp":
        im.save(path, "BMP")
    elif kind == "png":
        im.save(path, "PNG")
    else:
        im.save(path, "JPEG", quality=95)


KINDS = {"jpg": "jpg", "png": "png", "cmyk": "jpg", "grey": "png", "palette": "gif",
         "rgba": "png", "bmp": "bmp"}


def make_folder(root, per_class=12, val_per_class=4, kinds=tuple(KINDS), size=(40, 48), seed=0,
                corrupt=True, validation=True):
    """A folder data set whose classes show in their colour, in every format and colour mode;
    one corrupt file in train/ and one in validation/."""
    rng = np.random.RandomState(seed)
    splits = [("train", per_class)] + ([("validation", val_per_class)] if validation else [])
    for split, n in splits:
        for c, name in enumerate(CLASSES):
            d = os.path.join(root, split, name)
            os.makedirs(d)
            images = fake.learnable_images(np.full(n, c), rng, size=max(size))
            for i, image in enumerate(images):
                kind = kinds[i % len(kinds)]
                path = os.path.join(d, "%s_%02d.%s" % (kind, i, KINDS[kind]))
                ORIGINALS[path] = np.ascontiguousarray(image[:size[0], :size[1]])
                _save(path, ORIGINALS[path], kind)
        if corrupt:
            with open(os.path.join(root, split, CLASSES[0], "broken.jpg"), "wb") as f:
                f.write(b"\xff\xd8\xff\xe0 not really a jpeg" * 4)
    return root


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return make_folder(str(tmp_path_factory.mktemp("photos") / "photos"))


def params(model_dir, data_dir, **kw):
    base = dict(model_dir=str(model_dir), dataset="folder", data_dir=data_dir, depth=20,
                image_size=32, batch_size=8, max_steps=6, learning_rate=0.05, lr_boundaries=(),
                save_checkpoints_steps=100, log_every_n_steps=3, seed=1, recompute_bn_batches=0)
    base.update(kw)
    return run_config.RunParams(**base)


# ---- datasets as records ---------------------------------------------------------------------

def test_every_dataset_is_one_record_and_an_unknown_name_is_refused():
    assert data_lib.DATASETS == ("cifar10", "imagenet", "folder", "tfrecords", "synthetic")
    for name, rec in data_lib.RECORDS.items():
        assert rec.name == name and rec.help
    with pytest.raises(data_lib.DataError, match="unknown dataset 'imagnet': expected one of "
                                                 "cifar10, imagenet, folder, tfrecords"):
        data_lib.make_dataset("imagnet", "/nonexistent", "train", 2, True)
    with pytest.raises(data_lib.DataError, match="--validation_fraction does not apply to "
                                                 "--dataset=imagenet"):
        data_lib.make_dataset("imagenet", "/nonexistent", "train", 2, True,
                              validation_fraction=0.1)


def test_folder_listing_classes_and_refusals(tmp_path):
    root = make_folder(str(tmp_path / "p"), per_class=3, val_per_class=1, kinds=("jpg",),
                       corrupt=False)
    paths, labels, names = folder.listing(root, "train")
    assert names == CLASSES and len(paths) == 9 and labels == [0] * 3 + [1] * 3 + [2] * 3
    assert folder.listing(root, "eval")[1] == [0, 1, 2]
    os.rename(os.path.join(root, "validation"), os.path.join(root, "val"))  # accepted too
    assert len(folder.listing(root, "eval")[0]) == 3
    os.makedirs(os.path.join(root, "val", "bird"))
    with pytest.raises(data_lib.DataError, match=r"val has class folder\(s\) that .*train lacks: "
                                                 r"bird \(training has 3 classes: cat, dog, fish"):
        folder.listing(root, "eval")
    with pytest.raises(data_lib.DataError, match="has a validation folder"):
        folder.listing(root, "eval", validation_fraction=0.2)
    with pytest.raises(data_lib.DataError, match="has no train/ folder"):
        folder.listing(str(tmp_path), "train")


def test_the_validation_fraction_is_stable_when_files_are_added(tmp_path):
    root = make_folder(str(tmp_path / "p"), per_class=40, kinds=("jpg",), corrupt=False,
                       validation=False)
    with pytest.raises(data_lib.DataError, match="no validation/ or val/ folder to evaluate on"):
        folder.listing(root, "eval")
    held = set(folder.listing(root, "eval", 0.25)[0])
    train = set(folder.listing(root, "train", 0.25)[0])
    assert not held & train and len(held | train) == 120
    assert 15 <= len(held) <= 45  # a hash, not a count: about a quarter
    for i in range(20):  # new files leave every old file where it was
        with open(os.path.join(root, "train", "dog", "new_%d.jpg" % i), "wb") as f:
            f.write(b"")
    assert held <= set(folder.listing(root, "eval", 0.25)[0])
    assert train <= set(folder.listing(root, "train", 0.25)[0])


def _decoded(paths):
    from PIL import Image
    return {os.path.basename(p): np.asarray(Image.open(p).convert("RGB")) for p in paths}


def test_folder_images_decode_to_their_rgb_pixels_and_a_corrupt_one_is_counted(photos):
    """Every format and colour mode through the one decoder: lossless files to PIL's RGB
    conversion exactly (grey replicated, the palette's colours, alpha dropped); JPEGs, CMYK ones
    included, to the pixels that were encoded, within JPEG's loss at quality 95 on these noisy
    images (~10 levels on average; inverted CMYK would be ~200
    levels off). The corrupt file is skipped, counted and named."""
    paths, labels, _ = folder.listing(photos, "eval")
    skips = data_lib.SkippedRecords()
    with tf.Graph().as_default():
        ds = folder.decoded_images(paths, labels, skips, training=False)
        nxt = tf1.data.make_one_shot_iterator(ds).get_next()
        got = []
        with tf1.Session() as s:
            while True:
                try:
                    got.append(s.run(nxt))
                except tf.errors.OutOfRangeError:
                    break
    good = [p for p in paths if not p.endswith("broken.jpg")]
    assert [label for _, label in got] == [l for p, l in zip(paths, labels) if p in good]
    assert skips.total == 1 and list(skips.files) == [os.path.join(photos, "validation", "cat",
                                                                   "broken.jpg")]
    for (image, _), path in zip(got, good):
        if path.endswith(".jpg"):
            ref = ORIGINALS[path]
            assert image.shape == ref.shape
            assert np.abs(image.astype(int) - ref.astype(int)).mean() < 20, path
        else:
            ref = _decoded([path])[os.path.basename(path)]
            np.testing.assert_array_equal(image, ref, err_msg=path)


def _stream(ds):
    nxt = tf1.data.make_one_shot_iterator(ds).get_next()
    got = []
    with tf1.Session() as s:
        while True:
            try:
                got.append(s.run(nxt))
            except tf.errors.OutOfRangeError:
                return got


def test_a_shuffled_evaluation_pass_reads_every_image_once_in_a_seeded_order(photos):
    """`shuffled` (the BN recompute's eval input): the folder's files are listed class by class;
    one pass gives every decodable image exactly once, in an order that differs from the
    listing's, repeats for the same seed and changes with another; the corrupt file is still
    counted. Without a seed it is refused (the same checkpoint must give the same statistics)."""
    paths, labels, _ = folder.listing(photos, "train")
    digest = lambda image: hashlib.sha1(image.tobytes()).hexdigest()

    def one_pass(**kw):
        skips = data_lib.SkippedRecords()
        with tf.Graph().as_default():
            got = _stream(folder.decoded_images(paths, labels, skips, training=False, **kw))
        return [(digest(image), int(label)) for image, label in got], skips.total

    in_order, skipped = one_pass()
    first, skipped_1 = one_pass(seed=7, shuffled=True)
    again, _ = one_pass(seed=7, shuffled=True)
    other, _ = one_pass(seed=8, shuffled=True)
    assert sorted(first) == sorted(in_order) and len(set(first)) == len(in_order)
    assert first != in_order and first == again and other != first
    assert [l for _, l in in_order] == sorted(l for _, l in in_order)  # listed class by class
    assert skipped == skipped_1
    with pytest.raises(ValueError, match="needs a seed"):
        with tf.Graph().as_default():
            folder.decoded_images(paths, labels, data_lib.SkippedRecords(), False, shuffled=True)


def test_tfrecords_are_shuffled_as_bytes_and_decoded_after(tmp_path):
    """The shuffle holds serialized records and `parse` (the decode) runs after it: the first
    training element costs a few decodes, not a buffer of decoded photos (160 phone photos took
    18.8 GB that way). Each pass still gives every record once, passes differ, the same seed
    gives the same stream, and the buffer shrinks for large records."""
    from resnet_tf1.data import tfrecords
    paths = []
    for f in range(3):
        paths.append(str(tmp_path / ("train-%05d-of-00003" % f)))
        with tf.io.TFRecordWriter(paths[-1]) as w:
            for i in range(100):
                w.write(b"%d-%d" % (f, i))
    everything = sorted(b"%d-%d" % (f, i) for f in range(3) for i in range(100))
    decodes = []

    def parse(record):
        def decode(r):
            decodes.append(r)
            return r
        out = tf.py_function(decode, [record], tf.string)
        out.set_shape([])
        return (out,)

    def stream(order, seed, n):
        with tf.Graph().as_default():
            skips = tfrecords.SkippedRecords()
            nxt = tf1.data.make_one_shot_iterator(
                tfrecords.read(paths, parse, skips, order=order, seed=seed)).get_next()
            with tf1.Session() as s:
                first = s.run(nxt)[0]
                decoded_for_the_first = len(decodes)
                return [first] + [s.run(nxt)[0] for _ in range(n - 1)], decoded_for_the_first

    got, decoded_for_the_first = stream("train", 5, 600)
    assert decoded_for_the_first <= 32, decoded_for_the_first  # was 300: the whole buffer
    assert sorted(got[:300]) == everything and sorted(got[300:]) == everything
    assert got[:300] != got[300:] and got[:300] != everything
    del decodes[:]
    assert stream("train", 5, 600)[0] == got
    once, _ = stream("shuffled", 5, 300)
    assert sorted(once) == everything and once != everything
    with pytest.raises(ValueError, match="needs a seed"):
        tfrecords.read(paths, parse, tfrecords.SkippedRecords(), order="shuffled")
    # The buffer: 10,000 records, fewer when they are large; never fewer than 256.
    first_64 = [len(b"0-%d" % i) for i in range(64)]
    assert tfrecords.mean_record_bytes(paths[0]) == 16 + np.mean(first_64)
    big = str(tmp_path / "big")
    with tf.io.TFRecordWriter(big) as w:
        for _ in range(4):
            w.write(b"x" * 99984)  # 100,000 bytes with the framing
    assert tfrecords.shuffle_buffer([big]) == 10000  # 1 GiB would hold 10,737
    assert tfrecords.shuffle_buffer([big], max_bytes=10 ** 8) == 1000
    assert tfrecords.shuffle_buffer([big], max_bytes=10 ** 6) == 256
    assert tfrecords.shuffle_buffer(paths) == 10000


# ---- end to end: folder -> train -> evaluate -> predict ---------------------------------------

@pytest.mark.slow
def test_a_folder_trains_evaluates_and_predicts_with_class_names(photos, tmp_path):
    model_dir = str(tmp_path / "run")
    r = run("train.py", "--dataset=folder", "--data_dir=" + photos, "--depth=20",
            "--image_size=32", "--model_dir=" + model_dir, "--max_steps=30", "--batch_size=12",
            "--learning_rate=0.05", "--lr_schedule=cosine", "--warmup_steps=5",
            "--label_smoothing=0.1", "--log_every_n_steps=10", "--seed=3",
            "--recompute_bn_batches=3")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "broken.jpg: skipped: the image does not decode" in r.stderr
    assert "num_skipped" in r.stderr
    record = json.load(open(os.path.join(model_dir, "model_config.json")))
    assert record["labels"]["names"] == CLASSES
    assert record["preprocessing"]["crop"] == 32
    r = run("evaluate.py", "--flagfile=" + os.path.join(model_dir, "flags.txt"),
            "--confusion_matrix=" + str(tmp_path / "cm.png"))
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.load(open(os.path.join(model_dir, "eval", "metrics.json")))
    assert metrics["num_examples"] == 12 and metrics["num_skipped"] == 1
    assert metrics["class_names"] == CLASSES
    assert sum(map(sum, metrics["confusion_matrix"])) == 12
    assert metrics["top_1_accuracy"] >= 2 / 3.0, metrics  # colours: learnt in 30 steps
    assert os.path.getsize(str(tmp_path / "cm.png")) > 1000
    assert "per class: cat " in r.stdout
    image = os.path.join(photos, "validation", "fish", "jpg_00.jpg")
    r = run("predict.py", "--model_dir=" + model_dir, image)
    assert r.returncode == 0, r.stderr[-3000:]
    assert any(name in r.stdout for name in CLASSES), r.stdout


# ---- build_tfrecords.py ------------------------------------------------------------------------

def _records(directory, pattern):
    out = {}
    for path in sorted(tf.io.gfile.glob(os.path.join(directory, pattern))):
        for raw in tf.data.TFRecordDataset(path):
            ex = tf.train.Example.FromString(raw.numpy())
            f = ex.features.feature
            name = "%s/%s" % (f["image/class/synset"].bytes_list.value[0].decode(),
                              f["image/filename"].bytes_list.value[0].decode())
            assert name not in out, "duplicate " + name
            out[name] = (f["image/encoded"].bytes_list.value[0],
                         f["image/class/label"].int64_list.value[0],
                         f["image/class/synset"].bytes_list.value[0].decode(),
                         f["image/height"].int64_list.value[0],
                         f["image/width"].int64_list.value[0],
                         f["image/format"].bytes_list.value[0])
    return out


@pytest.mark.slow
def test_build_tfrecords_matches_the_folder_and_survives_a_kill(photos, tmp_path):
    out = str(tmp_path / "records")
    args = ["--input_dir=" + photos, "--output_dir=" + out, "--num_shards=3",
            "--validation_shards=1", "--num_workers=1", "--label_offset=1"]
    # Killed as it renames its second training shard into place: one shard written.
    r = run("build_tfrecords.py", *args,
            wrapper=[os.path.join(ROOT, "tests", "kill_at_rename.py"), "train-00001"])
    assert r.returncode == -9, r.stderr[-2000:]
    assert [n for n in os.listdir(out) if n.startswith("train-")] == ["train-00000-of-00003"]
    assert any(".tmp-" in n for n in os.listdir(out))
    r = run("build_tfrecords.py", *args)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "(1 already written)" not in r.stderr and "already written" in r.stderr
    assert sorted(os.listdir(out)) == ["build_manifest.json", "labels.txt",
                                       "train-00000-of-00003", "train-00001-of-00003",
                                       "train-00002-of-00003", "validation-00000-of-00001"]
    assert image_records.read_labels(out) == (1, CLASSES)
    for split, pattern in (("train", "train-*"), ("eval", "validation-*")):
        records = _records(out, pattern)
        paths, labels, _ = folder.listing(photos, split)
        good = {"%s/%s" % (CLASSES[l], os.path.basename(p)): (p, l)
                for p, l in zip(paths, labels) if not p.endswith("broken.jpg")}
        assert len(records) == len(good)  # no duplicates, no partial shard, the corrupt one out
        names_of = {}
        for name, (p, label) in good.items():
            encoded, stored, synset, height, width, fmt = records[name]
            assert stored == label + 1 and synset == CLASSES[label] and fmt == b"JPEG"
            names_of[name] = p
            ours = tf.io.decode_image(encoded, channels=3).numpy()
            theirs = tf.io.decode_image(open(p, "rb").read(), channels=3,
                                        expand_animations=False).numpy()
            assert (height, width) == theirs.shape[:2]
            if os.path.basename(name).startswith("jpg_"):  # stored as it was: the same pixels
                np.testing.assert_array_equal(ours, theirs)
            else:  # re-encoded as an RGB JPEG, quality 100, no chroma subsampling (~2.5 levels)
                assert np.abs(ours.astype(int) - theirs.astype(int)).mean() < 4.0, name
    # A different build into the same directory is refused.
    r = run("build_tfrecords.py", *args[:2], "--num_shards=2", "--num_workers=1")
    assert r.returncode == 1 and "holds shards of another build" in r.stderr
    # --dataset=tfrecords reads them with labels.txt's classes: the same labels as the folder.
    with tf.Graph().as_default():
        ds, _ = data_lib.make_dataset("tfrecords", out, "eval", 50, False, image_size=32)
        tf_labels = tf1.data.make_one_shot_iterator(ds).get_next()[1]
        with tf1.Session() as s:
            got = sorted(s.run(tf_labels).tolist())
    assert got == sorted(l for p, l in zip(*folder.listing(photos, "eval")[:2])
                         if not p.endswith("broken.jpg"))
    assert data_lib.spec("tfrecords", out).num_classes == 3
    # One shuffled pass (the BN recompute's eval input) over the shards: every record once.
    passes = []
    for kw in ({}, dict(shuffled=True, seed=5), dict(shuffled=True, seed=5)):
        with tf.Graph().as_default():
            ds, _ = data_lib.make_dataset("tfrecords", out, "train", 1, False, image_size=32, **kw)
            passes.append([(hashlib.sha1(image.tobytes()).hexdigest(), int(label[0]))
                           for image, label in _stream(ds)])
    assert sorted(passes[1]) == sorted(passes[0]) and len(set(passes[1])) == len(passes[0])
    assert passes[1] != passes[0] and passes[1] == passes[2]


def test_labels_txt_offsets(tmp_path):
    d = str(tmp_path)
    with open(os.path.join(d, "labels.txt"), "w") as f:
        f.write("1:cat\n2:dog\n")
    assert image_records.read_labels(d) == (1, ["cat", "dog"])
    assert image_records.label_shift(d, 2) == 1 and image_records.label_shift(d, 3) == 0
    with pytest.raises(data_lib.DataError, match="--num_classes=5 does not fit"):
        image_records.label_shift(d, 5)
    with open(os.path.join(d, "labels.txt"), "w") as f:
        f.write("0:cat\n0:dog\n")
    with pytest.raises(data_lib.DataError, match="line 2: expected"):
        image_records.read_labels(d)


# ---- fine-tuning a converted checkpoint ----------------------------------------------------------

def _source(tmp, source):
    """A small source checkpoint of each kind, as the porting tests make them."""
    import test_porting as tp
    rng = np.random.RandomState(5)
    if source == "slim":
        return tp.slim_checkpoint(tmp, 50, False, seed=1)[0]
    if source == "official":
        from resnet_tf1.references import official_r1
        with tf.Graph().as_default():
            official_r1.resnet_v1_official(tf1.placeholder(tf.float32, [None, 224, 224, 3]))
            tf1.train.get_or_create_global_step()
            with tf1.Session() as s:
                tp._randomise_and_save(tf1.global_variables(), s,
                                       os.path.join(tmp, "model.ckpt-5"), rng)
        return tmp
    if source == "keras":
        from resnet_tf1.references import keras as keras_ref
        model = keras_ref.tf_keras().applications.ResNet50(weights=None,
                                                           classifier_activation=None)
        path = os.path.join(tmp, "resnet50.h5")
        model.save_weights(path)
        return path
    path = os.path.join(tmp, "ResNet-50.npz")
    np.savez(path, **tp.caffe_blobs(tp.CAFFE_R50_UNITS, rng))
    return path


def _arrays(prefix):
    return checkpoints.read_arrays(checkpoints.require(prefix))


@pytest.mark.slow
@pytest.mark.parametrize("source", ["slim", "official", "keras", "caffe"])
def test_each_converted_checkpoint_fine_tunes_with_three_flags(photos, tmp_path, source):
    """Only --init_checkpoint, --dataset and --num_classes (plus where to write and how long):
    the model settings, the preprocessing and the fresh logits come from the checkpoint."""
    src = str(tmp_path / "src")
    os.makedirs(src)
    ported = str(tmp_path / "ported")
    convert_lib.convert(source, _source(src, source), ported)
    config = convert_lib.load_config(ported)
    p = run_config.RunParams(init_checkpoint=ported, dataset="folder", data_dir=photos,
                             num_classes=3, model_dir=str(tmp_path / "run"), image_size=32,
                             batch_size=4, max_steps=2, recompute_bn_batches=1,
                             explicit_flags=frozenset(["init_checkpoint", "dataset", "data_dir",
                                                       "num_classes", "model_dir", "image_size",
                                                       "batch_size", "max_steps",
                                                       "recompute_bn_batches"])).validate()
    assert train_lib.train(p) == 2
    record = json.load(open(str(tmp_path / "run" / "model_config.json")))
    for key in ("depth", "variant", "conv_bias", "bn_epsilon", "pool_padding", "scope"):
        assert record["model"].get(key) == config["model"].get(key), key
    assert record["model"]["num_classes"] == 3
    for key in ("channel_order", "mean", "std"):
        assert record["preprocessing"][key] == config["preprocessing"][key]
    assert record["labels"]["names"] == CLASSES
    before, after = _arrays(ported), _arrays(str(tmp_path / "run"))
    scope = [n for n in after if n.endswith("logits/weights")][0].rsplit("/", 2)[0]
    assert after[scope + "/logits/weights"].shape[-1] == 3
    trunk = [n for n in before if "/logits/" not in n]
    assert all(n in after for n in trunk)
    # It trained: a kernel moved (a kernel, because a converted bias or mean can be all zeros).
    kernel = [n for n in trunk if n.endswith("/weights")][0]
    assert relative_error(after[kernel], before[kernel]) > 0, kernel
    assert os.path.isdir(str(tmp_path / "run" / "bn_recomputed"))


def test_a_contradicting_flag_is_refused_in_one_line(tmp_path):
    from test_serving import SMALL_IMAGENET, write_converted
    ported = str(tmp_path / "ported")
    write_converted(ported, dict(depth=18, num_classes=1000, variant="slim", conv_bias=False,
                                 bn_epsilon=1e-5, pool_padding="SAME"), "imagenet1000",
                    SMALL_IMAGENET)
    base = dict(init_checkpoint=ported, dataset="synthetic", model_dir=str(tmp_path / "run"))
    with pytest.raises(errors.FlagError) as e:
        run_config.RunParams(variant="paper", explicit_flags=frozenset(["variant"]),
                             **base).validate()
    assert str(e.value) == (
        "--variant=paper contradicts --init_checkpoint=%s, which holds a depth-18 ImageNet "
        "ResNet (variant slim, 1000 classes) (variant slim): drop the flag (the checkpoint fixes "
        "it) or use another checkpoint" % ported)
    with pytest.raises(errors.FlagError, match="^--depth=34 contradicts --init_checkpoint="):
        run_config.RunParams(depth=34, **base).validate()
    # Unset flags come from the record; the same value given explicitly is no contradiction.
    p = run_config.RunParams(variant="slim", explicit_flags=frozenset(["variant"]),
                             **base).validate()
    assert (p.depth, p.variant, run_config.model_kwargs(p)["bn_epsilon"]) == (18, "slim", 1e-5)
    r = run("train.py", "--init_checkpoint=" + ported, "--dataset=synthetic", "--depth=50",
            "--model_dir=" + str(tmp_path / "cli"))
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1].startswith(
        "train: error: --depth=50 contradicts --init_checkpoint=")
    assert not os.path.exists(str(tmp_path / "cli"))
    # Accepted, the run's flags.txt holds what the record fixed, so it reproduces the run.
    run_dir = str(tmp_path / "ok")
    r = run("train.py", "--init_checkpoint=" + ported, "--dataset=synthetic", "--image_size=32",
            "--batch_size=2", "--max_steps=1", "--model_dir=" + run_dir)
    assert r.returncode == 0, r.stderr[-3000:]
    text = open(os.path.join(run_dir, "flags.txt")).read()
    assert "--depth=18\n" in text and "--variant=slim\n" in text
    from resnet_tf1 import run_flags
    again = run_flags.params_from_argv(["--flagfile=" + os.path.join(run_dir, "flags.txt")])
    again.validate()
    assert run_config.model_kwargs(again) == json.load(
        open(os.path.join(run_dir, "model_config.json")))["model"]


@pytest.mark.slow
def test_head_only_fine_tuning_leaves_every_other_tensor_bit_identical(photos, tmp_path):
    from test_serving import SMALL_IMAGENET, write_converted
    ported = str(tmp_path / "ported")
    write_converted(ported, dict(depth=18, num_classes=1000), "imagenet1000", SMALL_IMAGENET)
    p = params(tmp_path / "run", photos, init_checkpoint=ported, num_classes=3,
               trainable_scopes=("resnet18/logits",), max_steps=4, recompute_bn_batches=2,
               learning_rate=0.1).validate()
    assert p.exclude_scopes == ("resnet18/logits",)  # 1000 -> 3 classes: fresh
    assert train_lib.train(p) == 4
    before, after = _arrays(ported), _arrays(str(tmp_path / "run"))
    first = _arrays(os.path.join(str(tmp_path / "run"), "model.ckpt-0"))
    for name, value in before.items():
        if not name.startswith("resnet18/logits/"):
            assert after[name].tobytes() == value.tobytes(), name  # BN statistics included
    for name in ("resnet18/logits/weights", "resnet18/logits/biases"):
        assert not np.array_equal(after[name], first[name]), name
    assert not any("Momentum" in n and "logits" not in n for n in after)
    # No BN layer trained: nothing recomputed.
    assert not os.path.exists(str(tmp_path / "run" / "bn_recomputed"))
    with pytest.raises(errors.FlagError, match="--trainable_scopes: resnet18/head holds no "
                                               "trainable variable of the model"):
        train_lib.train(params(tmp_path / "bad", photos, init_checkpoint=ported, num_classes=3,
                               trainable_scopes=("resnet18/head",)))


# ---- schedules and the loss -----------------------------------------------------------------

def test_cosine_schedule_with_linear_warmup_and_the_paper_warmup():
    def rates(**kw):
        p = run_config.RunParams(model_dir="/tmp/unused", dataset="synthetic", **kw)
        with tf.Graph().as_default():
            step = tf1.placeholder(tf.int64, [])
            lr = train_lib.learning_rate_schedule(p, step)
            with tf1.Session() as s:
                return [float(s.run(lr, {step: i})) for i in (0, 4, 10, 55, 100)]
    cosine = rates(lr_schedule="cosine", learning_rate=0.2, warmup_steps=10, max_steps=100)
    expected = [0.2 * 1 / 10, 0.2 * 5 / 10, 0.2, 0.1, 0.0]
    np.testing.assert_allclose(cosine, expected, rtol=1e-6, atol=1e-9)
    paper = rates(learning_rate=0.1, warmup_steps=10, lr_boundaries=(50,), max_steps=100)
    np.testing.assert_allclose(paper, [0.01, 0.01, 0.1, 0.01, 0.01], rtol=1e-6)
    linear = rates(learning_rate=0.1, warmup_steps=10, lr_boundaries=(50,), warmup="linear")
    np.testing.assert_allclose(linear[:3], [0.01, 0.05, 0.1], rtol=1e-6)


def test_label_smoothing_is_the_smoothed_cross_entropy():
    logits = np.random.RandomState(0).normal(0, 3, (5, 4)).astype(np.float32)
    labels = np.array([0, 1, 2, 3, 1])
    e = 0.2
    target = np.full((5, 4), e / 4) + np.eye(4)[labels] * (1 - e)
    log_softmax = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    expected = -(target * log_softmax).sum(1).mean()

    class Fixed:
        def __call__(self, images, **kwargs):
            return tf.constant(logits), None

    p = run_config.RunParams(model_dir="/tmp/unused", dataset="synthetic", label_smoothing=e,
                             weight_decay=0.0)
    with tf.Graph().as_default():
        _, _, xent, _ = train_lib._tower_loss(p, Fixed(), "x", None, tf.constant(labels))
        with tf1.Session() as s:
            assert s.run(xent) == pytest.approx(expected, rel=1e-6)
