"""tensorpack's ImageNet ResNet .npz files (issue 32): both layouts its sources define, ported
and checked against a numpy forward pass of its semantics."""

import os

import numpy as np
import pytest

from resnet_tf1.porting import PortError
from resnet_tf1.porting import convert as convert_lib
from resnet_tf1.references import tensorpack as tensorpack_ref

UNITS = {18: (2, 2, 2, 2), 50: (3, 4, 6, 3)}
IMAGES = np.random.RandomState(4).normal(0, 1, (2, 224, 224, 3)).astype(np.float32)


def tensorpack_npz(path, depth, rng, caffe=False, suffix=":0"):
    """An .npz named as tensorpack's resnet_model.py / load-resnet.py name their variables
    (written here from tensorpack's definition, not from the port), random weights and BN
    statistics, plus the training state a dump holds."""
    bottleneck = depth >= 50
    p = {}

    def conv(name, k, cin, cout):
        p[name + "/W"] = rng.normal(0, np.sqrt(2.0 / (k * k * cin)),
                                    (k, k, cin, cout)).astype(np.float32)
        p[name + "/bn/gamma"] = rng.uniform(0.5, 1.5, cout).astype(np.float32)
        p[name + "/bn/beta"] = rng.uniform(-0.2, 0.2, cout).astype(np.float32)
        p[name + "/bn/mean/EMA"] = rng.uniform(-0.2, 0.2, cout).astype(np.float32)
        p[name + "/bn/variance/EMA"] = rng.uniform(0.5, 1.5, cout).astype(np.float32)

    conv("conv0", 7, 3, 64)
    if caffe:
        p["conv0/b"] = rng.uniform(-0.2, 0.2, 64).astype(np.float32)
    cin = 64
    for g, n in enumerate(UNITS[depth]):
        ch = 64 * 2 ** g
        cout = ch * 4 if bottleneck else ch
        for b in range(n):
            name = "group%d/block%d/" % (g, b)
            if bottleneck:
                conv(name + "conv1", 1, cin, ch)
                conv(name + "conv2", 3, ch, ch)
                conv(name + "conv3", 1, ch, cout)
            else:
                conv(name + "conv1", 3, cin, ch)
                conv(name + "conv2", 3, ch, ch)
            if cin != cout:
                conv(name + "convshortcut", 1, cin, cout)
            cin = cout
    p["linear/W"] = rng.normal(0, 0.05, (cin, 1000)).astype(np.float32)
    p["linear/b"] = rng.normal(0, 0.1, 1000).astype(np.float32)
    p["global_step"] = np.array(100, np.int64)
    p["learning_rate"] = np.array(0.1, np.float32)
    np.savez(path, **{k + suffix: v for k, v in p.items()})
    return {k: v for k, v in p.items() if k not in ("global_step", "learning_rate")}


@pytest.mark.slow
@pytest.mark.parametrize("depth, caffe", [(18, False), (50, False), (50, True)])
def test_tensorpack_files_port_to_tensorpacks_logits(tmp_path, depth, caffe):
    path = str(tmp_path / ("ImageNet-ResNet%d.npz" % depth))
    params = tensorpack_npz(path, depth, np.random.RandomState(depth + caffe), caffe=caffe,
                            suffix="" if caffe else ":0")
    out = str(tmp_path / "ported")
    config, _ = convert_lib.convert("tensorpack", path, out)
    expected = ("paper", None, "SAME") if caffe else ("v1.5", "SAME", "SAME")
    assert (config["model"]["variant"], config["model"].get("conv_padding"),
            config["model"]["pool_padding"]) == expected
    assert config["source"]["tensorpack_layout"] == ("caffe" if caffe else "native")
    assert config["source"]["skipped_training_state"] == ["global_step", "learning_rate"]
    assert config["preprocessing"]["channel_order"] == "BGR"
    ours = convert_lib.run_ported(out, IMAGES)
    theirs = tensorpack_ref.forward(params, IMAGES, "caffe" if caffe else "native")
    err = np.abs(ours - theirs).max() / np.abs(theirs).max()
    print("tensorpack ResNet-%d (%s): max relative logit difference %.3g"
          % (depth, "caffe" if caffe else "native", err))
    assert err < 1e-4
    assert np.array_equal(ours.argmax(1), theirs.argmax(1))


def test_the_padding_rule_matters(tmp_path):
    """The same native file read as if it padded symmetrically is measurably off: the port's
    conv_padding is live, not a label."""
    path = str(tmp_path / "r18.npz")
    params = tensorpack_npz(path, 18, np.random.RandomState(0))
    theirs = tensorpack_ref.forward(params, IMAGES[:1], "native")
    out = str(tmp_path / "ported")
    convert_lib.convert("tensorpack", path, out)
    import json
    cfg_path = os.path.join(out, "config.json")
    cfg = json.load(open(cfg_path))
    assert np.abs(convert_lib.run_ported(out, IMAGES[:1]) - theirs).max() / \
        np.abs(theirs).max() < 1e-4
    cfg["model"]["conv_padding"] = "symmetric"
    json.dump(cfg, open(cfg_path, "w"))
    assert np.abs(convert_lib.run_ported(out, IMAGES[:1]) - theirs).max() / \
        np.abs(theirs).max() > 1e-2


def test_a_pickled_or_incomplete_tensorpack_file_gets_one_line(tmp_path):
    path = str(tmp_path / "bad.npz")
    np.savez(path, **{"conv0/W:0": np.array([object()], dtype=object)})
    with pytest.raises(PortError, match="cannot be read as a tensorpack ResNet .npz: it holds "
                                        "object \\(pickled\\) arrays, which are never loaded"):
        convert_lib.convert("tensorpack", path, str(tmp_path / "o1"))
    np.savez(path, **{"conv0/W:0": np.zeros((7, 7, 3, 64), np.float32)})
    with pytest.raises(PortError, match="tensorpack .npz has no linear/W"):
        convert_lib.convert("tensorpack", path, str(tmp_path / "o2"))
