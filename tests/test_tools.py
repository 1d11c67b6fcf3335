"""The house: the import layers, and smoke runs of the tool CLIs (dump_graph, benchmark)."""

import ast
import json
import os
import subprocess
import sys

import pytest

from resnet_tf1 import manifest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "resnet_tf1")
GOLDEN = os.path.join(ROOT, "tests", "golden")

# The floors of the house, bottom first. A module imports only from lower floors (or from its own
# package, e.g. porting.slim -> porting.common); siblings on one floor never import each other.
LAYERS = [
    ["resnet_tf1.errors"],
    ["resnet_tf1.fileio", "resnet_tf1.cluster", "resnet_tf1.kernels"],
    ["resnet_tf1.model", "resnet_tf1.metrics", "resnet_tf1.references", "resnet_tf1.onnxrt"],
    ["resnet_tf1.data"],
    ["resnet_tf1.checkpoints", "resnet_tf1.manifest"],
    ["resnet_tf1.restore", "resnet_tf1.fold_bn", "resnet_tf1.rundir"],
    ["resnet_tf1.porting"],
    ["resnet_tf1.run_config"],
    ["resnet_tf1.bn_stats", "resnet_tf1.curves"],
    ["resnet_tf1.train_lib", "resnet_tf1.eval_lib", "resnet_tf1.serving", "resnet_tf1.responses"],
    ["resnet_tf1.exported"],
    ["resnet_tf1.export"],
    ["resnet_tf1.run_flags"],
]


def _module_name(path):
    rel = os.path.relpath(path, ROOT)[:-len(".py")].replace(os.sep, ".")
    return rel[:-len(".__init__")] if rel.endswith(".__init__") else rel


def _unit(module):
    """The layer entry a module belongs to (a package for modules inside it)."""
    for floor, units in enumerate(LAYERS):
        for unit in units:
            if module == unit or module.startswith(unit + "."):
                return floor, unit
    raise AssertionError("module %s is on no floor of LAYERS" % module)


def _imports():
    """{module: {imported resnet_tf1 modules}} for every module of the package."""
    out = {}
    for dirpath, _, files in os.walk(PACKAGE):
        for f in files:
            if not f.endswith(".py"):
                continue
            path = os.path.join(dirpath, f)
            name = _module_name(path)
            found = set()
            for node in ast.walk(ast.parse(open(path).read())):
                if isinstance(node, ast.Import):
                    found.update(a.name for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module:
                    found.add(node.module)
                    found.update("%s.%s" % (node.module, a.name) for a in node.names)
            out[name] = {m for m in found if m.startswith("resnet_tf1.") or m == "resnet_tf1"}
    return out


def test_no_import_runs_up_a_floor_or_sideways():
    problems = []
    for module, imported in sorted(_imports().items()):
        if module == "resnet_tf1":
            continue  # the package's public names re-export the model
        floor, unit = _unit(module)
        for target in imported:
            if target == "resnet_tf1" or target.rsplit(".", 1)[0] == "resnet_tf1" and \
                    target.rsplit(".", 1)[1] not in {u.split(".")[1] for f in LAYERS for u in f}:
                continue  # a name imported from the package root
            t_floor, t_unit = _unit(target)
            if t_unit == unit:
                continue
            if t_floor >= floor:
                problems.append("%s (floor %d) imports %s (floor %d)" % (module, floor, target,
                                                                         t_floor))
    assert problems == []


def _run(script, *args, **environ):
    env = dict(os.environ, PYTHONPATH=ROOT, **environ)
    return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", script)] + list(args),
                          capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.slow
def test_dump_graph_cli(tmp_path):
    r = _run("dump_graph.py", "--depth=20", "--format=text")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "trainable parameters: 269,722" in r.stdout
    with open(os.path.join(GOLDEN, "cifar_resnet20.json")) as f:
        golden = json.load(f)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model": {k: v for k, v in golden["model"].items()
                                            if not k.startswith("resolved_")}}))
    out = str(tmp_path / "m.json")
    assert _run("dump_graph.py", "--config=%s" % config, "--output=" + out).returncode == 0
    with open(out) as f:
        assert manifest.diff(golden, json.load(f)) == []
    same = _run("dump_graph.py", "--diff", out, os.path.join(GOLDEN, "cifar_resnet20.json"))
    assert same.returncode == 0 and "manifests agree" in same.stdout
    other = _run("dump_graph.py", "--diff", out, os.path.join(GOLDEN, "cifar_resnet32.json"))
    assert other.returncode == 1 and "+ variable cifar_resnet32/" in other.stdout
    plan = _run("dump_graph.py", "--depth=50", "--variant=v1.5", "--format=plan")
    rows = plan.stdout.splitlines()
    assert plan.returncode == 0 and len(rows) == 1 + 16
    assert rows[4].split() == ["resnet50/block2/unit_1/bottleneck", "bottleneck", "256", "128",
                               "512", "2", "1", "2", "projection"]
    bad = _run("dump_graph.py", "--config=" + str(tmp_path / "missing.json"))
    assert bad.returncode == 1 and "--config=" in bad.stderr


def test_benchmark_peers_run_in_our_precision_mode_or_in_plain_float32():
    """In a bfloat16 run the peers run with oneDNN's bfloat16 rewrite; their _float32 twins run
    without it (the baseline of "bfloat16 is N x TF-slim float32", timed in the same run)."""
    code = ("import sys, json; sys.path.insert(0, %r); import benchmark as b; "
            "b.FLAGS(['b', '--dtype=bfloat16', '--variant=slim', "
            "'--compare=slim,keras,slim_float32,keras_float32']); "
            "print(json.dumps([(k, l, r) for k, l, _, r in b._candidates()]))"
            % os.path.join(ROOT, "scripts"))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout.splitlines()[-1]) == [
        ["ours", "ours (slim, bfloat16)", False],
        ["slim", "TF-slim resnet_v1_50 (float32, bf16 rewrite)", True],
        ["slim_float32", "TF-slim resnet_v1_50 (float32)", False],
        ["keras", "tf-keras ResNet50 (float32, bf16 rewrite)", True],
        ["keras_float32", "tf-keras ResNet50 (float32)", False]]
    bad = _run("benchmark.py", "--compare=slim,caffe")
    assert bad.returncode != 0
    assert ("--compare: unknown peer 'caffe' (expected slim, keras, slim_float32, keras_float32, "
            "ours_bfloat16, onnx_float32, onnx_int8)") in bad.stderr


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["train", "inference"])
def test_benchmark_cli_smoke(mode):
    common = ["--depth=20", "--batch_size=8", "--steps=2", "--rounds=2", "--warmup=1",
              "--matmul_size=256", "--mode=" + mode]
    if mode == "train":
        r = _run("benchmark.py", *common, "--input_pipeline=cifar10", "--memory_runs=2",
                 "--per_layer")
        assert r.returncode == 0, r.stderr[-2000:]
        lines = r.stdout.splitlines()
        assert lines[0].startswith("ResNet-20 train float32 NHWC batch 8 on CPU (")
        assert lines[1].split() == ["model", "median", "min", "max", "peak", "MB", "ours/this",
                                    "per-round", "ours/this", "of", "peak"]
        row = lines[2].split()
        assert lines[2].startswith("ours (paper, float32)") and float(row[3]) > 0
        assert float(row[6]) > 100 and row[-1].endswith("%")  # peak MB of the child process
        assert lines[3].startswith("matmul 256x256 float32: ") and "GFLOP/s" in lines[3]
        assert lines[-1].startswith("input pipeline cifar10 (training preprocessing, batch 8)")
        assert lines[-2].startswith("all 19 convolutions: ") and "of the matmul's rate" in lines[-2]
        assert lines[-10].startswith("per layer: each of our convolutions alone (conv + bias + "
                                     "ReLU, and its input and weight gradients), ms per batch of 8")
        assert lines[-8].split()[:4] == ["cifar_resnet20/conv1", "1", "8x32x32x3", "3x3x3x16"]
        return
    r = _run("benchmark.py", *common, "--fold_bn", "--json", "--nomemory")
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads(r.stdout)
    ours = result["models"]["ours"]
    assert ours["label"] == "ours (paper, BN folded, float32)"
    rates = ours["images_per_sec"]
    assert 0 < rates["min"] <= rates["median"] <= rates["max"]
    assert result["multiply_adds_per_image"] == 40_551_040  # CIFAR ResNet-20 (the manifest's)
    assert 0 < ours["fraction_of_matmul_peak"] < 5
    assert 0 < result["matmul_gflops_min"] <= result["matmul_gflops"] <= result["matmul_gflops_max"]


def test_benchmark_per_layer_times_every_convolution_of_our_graph_once():
    """--per_layer: our graph's convolutions, grouped by shape, each timed alone. Every conv of
    the manifest is there once, and the multiply-adds add up to the manifest's: x3 with the
    gradients, except the first conv, whose input (the images) has no gradient."""
    r = _run("benchmark.py", "--depth=20", "--batch_size=8", "--steps=1", "--rounds=2",
             "--warmup=0", "--matmul_size=256", "--mode=train", "--per_layer", "--nomemory",
             "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    record = json.loads(r.stdout)["per_layer"]
    convs = [row for row in manifest.make({"depth": 20}, 32)["layers"] if row["op"] == "Conv2D"]
    scopes = [scope for e in record["layers"] for scope in e["scopes"]]
    assert sorted(scopes) == sorted(row["scope"] for row in convs) and len(scopes) == 19
    forward = sum(row["multiply_adds"] for row in convs)
    assert forward == 40_551_040 - 64 * 10  # the manifest's, less the dense layer
    stem = 32 * 32 * 16 * 3 * 3 * 3
    assert sum(e["count"] * e["multiply_adds"] for e in record["layers"]) == \
        8 * (3 * forward - stem)
    assert [e["kernel_shape"] for e in record["layers"]][:3] == [
        [3, 3, 3, 16], [3, 3, 16, 16], [3, 3, 16, 32]]
    assert record["layers"][2]["strides"] == [1, 2, 2, 1] and record["layers"][2]["paddings"]
    assert record["sum_ms"] == pytest.approx(sum(e["count"] * e["ms"] for e in record["layers"]))
    assert all(e["gflops"] > 0 and e["fraction_of_matmul_peak"] > 0 for e in record["layers"])
    assert record["step_ms"] > 0 and record["at_matmul_peak_ms"] > 0


def test_benchmark_flags_a_run_whose_machine_changed_speed():
    """The peak matmul is timed every round; when its rate moved by more than 15 % the run says
    so (in the table, the log and the JSON), naming the range."""
    code = ("import sys, json; sys.path.insert(0, %r); import benchmark as b; "
            "print(json.dumps([b._drift([200e9, 207e9, 204e9]), b._drift([207e9]), "
            "b._drift([207.3e9, 110.4e9, 205e9])]))" % os.path.join(ROOT, "scripts"))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout.splitlines()[-1]) == [
        None, None, "the peak matmul ran at 110-207 GFLOP/s across the rounds (1.88x): the "
        "machine's speed changed during this run, so its ratios are less reliable; run it again"]


def test_benchmark_per_round_ratio_cancels_a_drift_between_rounds():
    """Ours 1.10x the peer in every round while the machine's speed spreads fourfold across the
    rounds: the rounds' own ratios are 1.10, median, min and max alike."""
    code = ("import sys, json; sys.path.insert(0, %r); import benchmark as b; "
            "print(json.dumps(b._per_round([11.0, 22.0, 44.0], [10.0, 20.0, 40.0])))"
            % os.path.join(ROOT, "scripts"))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.splitlines()[-1])
    assert got == pytest.approx({"median": 1.1, "min": 1.1, "max": 1.1})


def test_benchmark_xla_compiles_on_the_cpu_or_stops():
    """--xla reaches the CPU: a session's JIT level alone clusters GPU ops only (the flag timed
    plain graphs), so the benchmark restarts itself with --tf_xla_cpu_global_jit in TF_XLA_FLAGS
    and checks that a probe graph runs through XLA; where XLA stays off it stops with one line."""
    common = ["--depth=20", "--batch_size=8", "--steps=1", "--rounds=1", "--warmup=1",
              "--matmul_size=256", "--mode=inference", "--nomemory", "--xla"]
    r = _run("benchmark.py", *common, "--json", TF_XLA_FLAGS="")
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads(r.stdout)
    assert result["xla"] is True and result["what"].endswith("on CPU, XLA")
    assert result["models"]["ours"]["images_per_sec"]["median"] > 0
    off = _run("benchmark.py", *common, TF_XLA_FLAGS="--tf_xla_auto_jit=-1")
    assert off.returncode == 1
    assert ("--xla: XLA did not compile a probe graph with TF_XLA_FLAGS='--tf_xla_auto_jit=-1 "
            "--tf_xla_cpu_global_jit' (expected --tf_xla_cpu_global_jit and no flag turning XLA "
            "off)") in off.stderr
