"""torchvision in and out (issue 32): torch.save's two formats and safetensors read without torch
(an allow-list unpickler), ported logits against a numpy forward pass with torchvision's
semantics, the export back to torchvision's state dict bit for bit, and the refusals."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import torch_writer
from resnet_tf1 import export, serving
from resnet_tf1.porting import PortError, torch_files
from resnet_tf1.porting import convert as convert_lib
from resnet_tf1.references import torchvision as torchvision_ref

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNITS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3)}


def state_dict(depth, rng, num_classes=1000):
    """A torchvision ResNet state dict with random weights and BN statistics, named and shaped
    as torchvision/models/resnet.py registers them (written here from torchvision's definition,
    not from the port's table)."""
    bottleneck = depth >= 50
    sd = {}

    def conv(name, o, i, k):
        sd[name + ".weight"] = rng.normal(0, np.sqrt(2.0 / (i * k * k)),
                                          (o, i, k, k)).astype(np.float32)

    def bn(name, c):
        sd[name + ".weight"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
        sd[name + ".bias"] = rng.uniform(-0.2, 0.2, c).astype(np.float32)
        sd[name + ".running_mean"] = rng.uniform(-0.2, 0.2, c).astype(np.float32)
        sd[name + ".running_var"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
        sd[name + ".num_batches_tracked"] = np.array(rng.randint(1, 10 ** 6), np.int64)

    conv("conv1", 64, 3, 7)
    bn("bn1", 64)
    inp = 64
    for layer, n in enumerate(UNITS[depth]):
        width = 64 * 2 ** layer
        out = width * (4 if bottleneck else 1)
        for k in range(n):
            p = "layer%d.%d." % (layer + 1, k)
            conv(p + "conv1", width, inp, 1 if bottleneck else 3)
            bn(p + "bn1", width)
            conv(p + "conv2", width, width, 3)
            bn(p + "bn2", width)
            if bottleneck:
                conv(p + "conv3", out, width, 1)
                bn(p + "bn3", out)
            if k == 0 and (inp != out or layer > 0):
                conv(p + "downsample.0", out, inp, 1)
                bn(p + "downsample.1", out)
            inp = out
    sd["fc.weight"] = rng.normal(0, 0.05, (num_classes, inp)).astype(np.float32)
    sd["fc.bias"] = rng.normal(0, 0.1, num_classes).astype(np.float32)
    return sd


IMAGES = np.random.RandomState(3).normal(0, 1, (2, 224, 224, 3)).astype(np.float32)


def _write(sd, path, fmt, **kwargs):
    if fmt == "safetensors":
        torch_files.write_safetensors(sd, path)
        return path
    return torch_writer.save(sd, path, legacy=(fmt == "legacy"), **kwargs)


@pytest.mark.slow
@pytest.mark.parametrize("depth, fmt", [(18, "zip"), (18, "legacy"), (18, "safetensors"),
                                        (50, "zip")])
def test_torchvision_files_port_to_torchvisions_logits(tmp_path, depth, fmt):
    sd = state_dict(depth, np.random.RandomState(depth))
    path = _write(sd, str(tmp_path / ("r%d.%s" % (depth, "safetensors" if fmt == "safetensors"
                                                  else "pth"))), fmt)
    back = torch_files.read_state_dict(path)
    assert set(back) == set(sd)
    assert all(back[k].dtype == sd[k].dtype and back[k].shape == sd[k].shape and
               np.array_equal(back[k], sd[k]) for k in sd)
    out = str(tmp_path / "ported")
    config, _ = convert_lib.convert("torchvision", path, out)
    assert config["model"]["variant"] == "v1.5" and config["model"]["pool_padding"] == "symmetric"
    assert config["preprocessing"]["std"] == [0.229, 0.224, 0.225]
    ours = convert_lib.run_ported(out, IMAGES)
    theirs = torchvision_ref.forward(sd, IMAGES)
    err = np.abs(ours - theirs).max() / np.abs(theirs).max()
    print("torchvision resnet%d (%s): max relative logit difference %.3g" % (depth, fmt, err))
    assert err < 1e-4
    assert np.array_equal(ours.argmax(1), theirs.argmax(1))
    # Out again: torchvision's own names, shapes and dtypes, every tensor bit for bit.
    record = export.export(serving.load(out), str(tmp_path / "export"), "torchvision")
    again = torch_files.read_state_dict(str(tmp_path / "export" / "model.safetensors"))
    assert set(again) == set(sd)
    for name, value in sd.items():
        assert again[name].dtype == value.dtype and again[name].shape == value.shape, name
        assert again[name].tobytes() == value.tobytes(), name
    assert record["constructor"] == "torchvision.models.resnet%d(num_classes=1000)" % depth
    assert record["check"]["max_relative_logit_difference"] < 1e-4
    assert record["check"]["top_1_identical"]
    assert json.load(open(str(tmp_path / "export" / "export.json")))["preprocessing"]["scale"] \
        == 1.0


def test_a_full_checkpoint_with_a_dataparallel_prefix_is_unwrapped(tmp_path):
    sd = {"module.fc.weight": np.ones((3, 4), np.float32), "module.fc.bias": np.zeros(3,
                                                                                    np.float32)}
    path = torch_writer.save(sd, str(tmp_path / "ckpt.pth"), wrap="state_dict")
    assert sorted(torch_files.read_state_dict(path)) == ["fc.bias", "fc.weight"]


def test_a_pickle_that_calls_another_global_is_refused_before_it_runs(tmp_path):
    marker = str(tmp_path / "pwned")
    path = str(tmp_path / "evil.pth")
    for legacy in (False, True):
        torch_writer.save({"fc.weight": np.ones(2, np.float32)}, path, legacy=legacy,
                          evil=("os", "system"))
        with pytest.raises(PortError, match=r"evil.pth is refused: its pickle calls "
                                            r"(posix|os)\.system, which a tensor state dict never "
                                            r"needs .*nothing from the file was run"):
            torch_files.read_state_dict(path)
        assert not os.path.exists(marker)


def _cli(*args):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, os.path.join(ROOT, "scripts",
                                                        "convert_checkpoint.py")] + list(args),
                          capture_output=True, text=True, env=env, timeout=600)


def test_damaged_and_mismatched_files_get_one_line(tmp_path):
    sd = state_dict(34, np.random.RandomState(0))
    path = torch_writer.save(sd, str(tmp_path / "r34.pth"))
    with open(path, "rb") as f:
        data = f.read()
    cut = str(tmp_path / "cut.pth")
    with open(cut, "wb") as f:
        f.write(data[:len(data) // 2])
    r = _cli("--source=torchvision", "--input=" + cut, "--output=" + str(tmp_path / "o1"))
    assert r.returncode == 1
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("convert_checkpoint: error: ") and "cut.pth" in line, line
    # A resnet34 file converted as 50: the missing, unexpected and mis-shaped names listed.
    with pytest.raises(PortError) as e:
        convert_lib.convert("torchvision", path, str(tmp_path / "o2"), depth=50)
    message = str(e.value)
    assert message.startswith("torchvision state dict does not fit "
                              "torchvision.models.resnet50(num_classes=1000): ")
    for part in ("missing", "layer1.0.conv3.weight", "mis-shaped", "layer1.0.conv1.weight"):
        assert part in message, message
    del sd["fc.weight"]
    torch_writer.save(sd, path)
    with pytest.raises(PortError, match="torchvision state dict has no fc.weight"):
        convert_lib.convert("torchvision", path, str(tmp_path / "o3"))


def test_export_refuses_a_graph_torchvision_does_not_compute(tmp_path):
    from test_serving import SMALL_IMAGENET, write_converted
    for kwargs, message in [
            (dict(depth=50, variant="paper", pool_padding="symmetric"),
             "torchvision strides a stage's first unit on its 3x3 \\(v1.5\\); this model is "
             "variant paper"),
            (dict(depth=18, variant="v1.5", pool_padding="SAME"),
             "pool_padding symmetric\\); this model's pool_padding is SAME"),
            (dict(depth=20), "torchvision's ResNet is the ImageNet architecture")]:
        d = str(tmp_path / ("m%d" % len(os.listdir(str(tmp_path)))))
        write_converted(d, dict(num_classes=1000, **kwargs), "imagenet1000", SMALL_IMAGENET)
        with pytest.raises(export.ExportError, match="^--format=torchvision: .*" + message):
            export.export(serving.load(d), str(tmp_path / "never"), "torchvision")
        assert not os.path.exists(str(tmp_path / "never"))
