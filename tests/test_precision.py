"""Issue 14, item 5: the low-precision paths are correct (speed lives in scripts/benchmark.py).

float16 trains with loss scaling and recovers from an overflow without poisoning anything;
bfloat16 and float16 predict what float32 predicts (on this project's CPUs without native
bfloat16 a bfloat16 *training* run is too slow for the suite: its accuracy against float32 is
measured by scripts, see the closing notes of issue 14).
"""

import numpy as np
import pytest
import tensorflow as tf

from resnet_tf1 import checkpoints, errors, eval_lib, restore, run_config, train_lib

tf1 = tf.compat.v1


def _params(model_dir, cifar_dir, **kw):
    base = dict(model_dir=str(model_dir), dataset="cifar10", data_dir=cifar_dir, depth=20,
                batch_size=16, max_steps=40, learning_rate=0.05, lr_boundaries=(),
                save_checkpoints_steps=40, log_every_n_steps=10, seed=1,
                recompute_bn_batches=2)
    base.update(kw)
    return run_config.RunParams(**base)


def test_float16_dynamic_loss_scaling_recovers_from_an_injected_overflow(cifar_dir, tmp_path):
    p = _params(tmp_path / "unused", cifar_dir, dtype="float16")
    assert train_lib.loss_scale(p) == "dynamic"
    with tf.Graph().as_default():
        step = tf1.train.get_or_create_global_step()
        images, labels, _ = run_config.input_batches(p, training=True, seed=1)
        train_op, metrics = train_lib.build_train_op(p, images, labels, step)
        scale, = [v for v in tf1.global_variables() if v.op.name == "current_loss_scale"]
        assert checkpoints.is_training_state("current_loss_scale")
        weights = tf1.trainable_variables()
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            scale.load(2.0 ** 40, s)  # the injected overflow: float16 gradients become Inf
            before = s.run(weights)
            s.run(train_op)
            # The overflowing step is skipped: no weight, slot or step changed; scale halved.
            assert all(np.array_equal(a, b) for a, b in zip(before, s.run(weights)))
            assert s.run(step) == 0 and s.run(scale) == 2.0 ** 39
            losses = []
            for _ in range(60):
                losses.append(s.run([train_op, metrics["loss"]])[1])
            applied = s.run(step)
            assert 0 < applied < 60  # recovered: the later steps were applied
            assert 1 <= s.run(scale) <= 2.0 ** 16
            values = s.run(tf1.global_variables())
            assert all(np.isfinite(v).all() for v in values if v.dtype.kind == "f")
            assert all(np.isfinite(losses))
            assert not all(np.array_equal(a, b) for a, b in zip(before, s.run(weights)))


def _test_logits(p, checkpoint, dtype):
    """Logits over the whole CIFAR test set of `checkpoint`, computed in `dtype`."""
    p = run_config.RunParams(**dict(vars(p), dtype=dtype))
    with tf.Graph().as_default():
        images, _, _ = run_config.input_batches(p, training=False)
        logits, _ = run_config.build_model(p)(images)
        restorer = restore.Restorer(checkpoints.resolve_path(checkpoint))
        out = []
        with tf1.Session() as s:
            restorer.restore(s)
            while True:
                try:
                    out.append(s.run(logits))
                except tf.errors.OutOfRangeError:
                    return np.concatenate(out)


@pytest.mark.slow
def test_low_precision_predicts_what_float32_predicts(cifar_dir, tmp_path):
    # A float32 model trained on the learnable set, evaluated on its test set in each precision.
    # Issue 14 asks for top-1 agreement >= 99 %. On 100 images that is one flip, and a flip is
    # only possible where float32 itself has (nearly) no answer: after 160 steps most seeds leave
    # no image within 2 % of a tie, but some (one in eight at 80 steps; the CI run of stop 26 at
    # 160) leave a few look-alike images of two colour classes within 0.5 % of one, and
    # bfloat16 (8 significant bits) may flip any of those: stop 26 flipped three, at float32
    # margins 0.0021, 0.0004 and 0.0007. So the agreement is counted over the images float32
    # decides (its two best logits >= 2 % of its logit range apart), which must be nearly all of
    # them, and every flip must be a near-tie.
    p = _params(tmp_path / "run", cifar_dir, max_steps=160, batch_size=32, learning_rate=0.1,
                bn_decay=0.7)
    train_lib.train(p)
    reference = _test_logits(p, p.model_dir, "float32")
    accuracy = eval_lib.evaluate(p, p.model_dir)["top_1_accuracy"]
    # It learned (chance is 0.1; 0.88-1.0 over ten seeds): the agreement is about real predictions.
    assert accuracy > 0.7, accuracy
    top2 = np.sort(reference, axis=1)[:, -2:]
    margin = (top2[:, 1] - top2[:, 0]) / (reference.max(1) - reference.min(1))
    decided = margin >= 0.02
    assert decided.mean() >= 0.9, np.sort(margin)[:20]  # not a vacuous count
    for dtype in ("bfloat16", "float16"):
        logits = _test_logits(p, p.model_dir, dtype)
        differ = logits.argmax(1) != reference.argmax(1)
        print("%s: top-1 agreement with float32 %.3f over %d images, %.3f over the %d float32 "
              "decides; float32 top-2 margins of the disagreements: %s"
              % (dtype, 1 - differ.mean(), len(logits), 1 - differ[decided].mean(),
                 decided.sum(), np.round(margin[differ], 4)))
        assert np.abs(logits - reference).max() <= 0.05 * np.abs(reference).max(), dtype
        assert differ[decided].mean() <= 0.01, dtype  # issue 14: top-1 agreement >= 99 %
        # Only near-ties flip: where float32's two best logits are within 2 % of its logit range.
        assert (margin[differ] < 0.02).all(), (dtype, margin[differ])


@pytest.mark.slow
def test_float16_training_end_to_end(cifar_dir, tmp_path):
    # 60 steps of 32 at 0.1: evaluated top-1 0.68-1.00 over seeds 1-8 (0.83 for this one) on the
    # Xeon with AVX512-FP16. 20 steps of 16 at 0.05 gave 0.31-0.80 there, and 0.08 once in CI,
    # then with an unrepeatable augmentation stream: too close to chance for a CPU whose kernels
    # round differently.
    p = _params(tmp_path / "run", cifar_dir, dtype="float16", max_steps=60, batch_size=32,
                learning_rate=0.1, save_checkpoints_steps=30)
    assert train_lib.train(p) == 60
    latest = tf.train.latest_checkpoint(p.model_dir)
    arrays = checkpoints.read_arrays(latest)
    assert 1 <= arrays["current_loss_scale"] <= 2.0 ** 15  # checkpointed training state
    assert checkpoints.non_finite(latest) == []
    metrics = eval_lib.evaluate(p, p.model_dir)
    assert metrics["global_step"] == 60 and metrics["top_1_accuracy"] > 0.5, metrics  # chance 0.1


def test_loss_scale_flag_is_checked(tmp_path):
    for bad in ("0.5", "fast", "inf"):
        with pytest.raises(errors.FlagError, match="--loss_scale=%s: expected dynamic, none or a "
                           "finite number >= 1" % bad):
            _params(tmp_path, "x", loss_scale=bad).validate()
    assert train_lib.loss_scale(_params(tmp_path, "x", dtype="float16", loss_scale="128")) == 128
    assert train_lib.loss_scale(_params(tmp_path, "x", dtype="bfloat16")) is None
