"""Graph regression: golden manifests, a golden checkpoint, and shape comments that cannot lie.

Regenerate the golden files (after a deliberate change to the graph, with the reason in the
commit message) with:

    RESNET_TF1_REGEN_GOLDEN=1 python -m pytest tests/test_graph_regression.py

Without that switch a golden file is only ever read.

Everything here compares with numbers this project recorded itself: it guards against change, not
against being wrong. The independent references (the sources' own networks, numpy passes written
from the paper and from Caffe, closed forms) are in test_porting.py and test_references.py.
"""

import ast
import inspect
import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf

import resnet_tf1
from resnet_tf1 import manifest
from resnet_tf1 import model as model_lib
from resnet_tf1.porting import torchvision as torchvision_port

tf1 = tf.compat.v1
GOLDEN = os.path.join(os.path.dirname(__file__), "golden")
REGEN = os.environ.get("RESNET_TF1_REGEN_GOLDEN") == "1"

IMAGENET = [dict(depth=d, variant=v) for d in (18, 34, 50, 101, 152, 200)
            for v in model_lib.VARIANTS]
CIFAR = [dict(depth=d, num_classes=10, architecture="cifar") for d in (20, 32, 44, 56, 110)]
# The paper's plain nets (shortcut="none").
PLAIN = [dict(depth=d, num_classes=10, architecture="cifar", shortcut="none") for d in (20, 56)] \
    + [dict(depth=34, variant="paper", shortcut="none")]


def golden_name(config):
    net = "plain" if config.get("shortcut") == "none" else "resnet"
    if config.get("architecture") == "cifar":
        return "cifar_%s%d.json" % (net, config["depth"])
    return "%s%d_%s.json" % (net, config["depth"], config["variant"].replace(".", ""))


# The graphs ports build with model options of their own: torchvision's (v1.5, the symmetric
# max-pool padding, BN epsilon 1e-5, 0.9 momentum).
PORTED = [("resnet%d_torchvision.json" % d, dict(depth=d, **torchvision_port.MODEL))
          for d in (18, 50)]


@pytest.mark.parametrize("name, config", PORTED, ids=[n for n, _ in PORTED])
def test_ported_graph_manifest_matches_golden(name, config):
    _check_golden(os.path.join(GOLDEN, name), config)


@pytest.mark.parametrize("config", IMAGENET + CIFAR + PLAIN, ids=golden_name)
def test_manifest_matches_golden(config):
    _check_golden(os.path.join(GOLDEN, golden_name(config)), config)


def _check_golden(path, config):
    today = manifest.make(config)
    if REGEN:
        with open(path + ".tmp", "w") as f:
            f.write(manifest.dumps(today))
        os.replace(path + ".tmp", path)
        return
    assert os.path.exists(path), "no golden manifest %s (regenerate: RESNET_TF1_REGEN_GOLDEN=1)" \
        % path
    with open(path) as f:
        golden = json.load(f)
    lines = manifest.diff(golden, today)
    assert not lines, "graph differs from %s:\n%s" % (path, "\n".join(lines))


def test_manifest_is_byte_stable():
    config = dict(depth=20, num_classes=10)
    assert manifest.dumps(manifest.make(config)) == manifest.dumps(manifest.make(config))


def test_diff_reports_renames_and_reshapes():
    a = manifest.make(dict(depth=20, num_classes=10))
    b = manifest.make(dict(depth=20, num_classes=7, scope="cifar_resnet20"))
    lines = manifest.diff(a, b)
    assert "~ variable cifar_resnet20/logits/weights shape: [64, 10] -> [64, 7]" in lines
    assert "~ trainable_parameters: 269,722 -> 269,527 (-195)" in lines
    c = manifest.make(dict(depth=20, num_classes=10, scope="renamed"))
    assert "+ variable renamed/conv1/weights [3, 3, 3, 16]" in manifest.diff(a, c)


# ---- shape comments ---------------------------------------------------------------------------

SHAPE_COMMENT = re.compile(r"#\s*->\s*\[([^\]]*)\]")
# Which built graphs each commented context of model.py is checked against (canonical inputs:
# 224x224 for ImageNet, 32x32 for CIFAR). The "slim" variant strides at the end of each stage,
# so its stage outputs differ from the paper's by design and the stage tables are not its.
PAPER_LAYOUTS = ("paper", "v1.5")
CONTEXTS = {
    "BOTTLENECK_STAGES": [dict(depth=d, variant=v) for d in (50, 101, 152, 200)
                          for v in PAPER_LAYOUTS],
    "BASIC_STAGES": [dict(depth=d, variant=v) for d in (18, 34) for v in PAPER_LAYOUTS],
    "CIFAR_STAGES": CIFAR,
    "_imagenet_stem": IMAGENET,
    "_cifar_stem": CIFAR,
    "__call__": IMAGENET + CIFAR,
}


def _contexts(tree):
    """line number -> name of the innermost module-level assignment or function around it."""
    spans = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            spans.append((node.lineno, node.end_lineno, node.name))
        elif isinstance(node, ast.Assign) and node in tree.body:
            for target in node.targets:
                if isinstance(target, ast.Name):
                    spans.append((node.lineno, node.end_lineno, target.id))
    line_context = {}
    for start, end, name in sorted(spans, key=lambda s: s[1] - s[0], reverse=True):
        for line in range(start, end + 1):
            line_context[line] = name  # narrower spans overwrite wider ones
    return line_context


def shape_comments(source):
    """[(line number, context, end-point name, [dims])] for every `# -> [...]` comment."""
    tree = ast.parse(source)
    contexts = _contexts(tree)
    strings = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            strings.setdefault(node.lineno, []).append(node.value)
    out = []
    for number, line in enumerate(source.splitlines(), start=1):
        m = SHAPE_COMMENT.search(line)
        if m:
            dims = [d.strip() for d in m.group(1).split(",")]
            out.append((number, contexts.get(number), strings.get(number, []), dims))
    return out


_BUILT = {}  # the graphs depend on the model code only, not on the source text being checked


def _built_shapes(config):
    key = json.dumps(config, sort_keys=True)
    if key not in _BUILT:
        _BUILT[key] = _build_shapes(config)
    return _BUILT[key]


def _build_shapes(config):
    size = 32 if config.get("architecture") == "cifar" else 224
    g = tf.Graph()
    with g.as_default():
        model = resnet_tf1.ResNet(**config)
        _, end_points = model(tf1.placeholder(tf.float32, [None, size, size, 3]))
        scope = model.resolve(size)["scope"]
    return {k[len(scope) + 1:]: v.shape.as_list() for k, v in end_points.items()
            if k.startswith(scope + "/")}


def check_shape_comments(source):
    """Problems found: each comment tied to one end point and equal to it in every graph."""
    problems = []
    comments = shape_comments(source)
    if not comments:
        return ["no shape comments found"]
    for number, context, strings, dims in comments:
        where = "model.py:%d" % number
        if context not in CONTEXTS:
            problems.append("%s: comment in %r, which no checked graph is tied to" % (where,
                                                                                      context))
            continue
        configs = CONTEXTS[context]
        for config in configs:
            shapes = _built_shapes(config)
            names = [s for s in strings if s in shapes]
            if len(names) != 1:
                problems.append("%s: comment not tied to exactly one end point (strings on the "
                                "line: %s)" % (where, strings))
                break
            want = [None if d == "batch" else config.get("num_classes", 1000)
                    if d == "num_classes" else int(d) for d in dims]
            if shapes[names[0]] != want:
                problems.append("%s: comment says [%s] for %s but %s builds %s" % (
                    where, ", ".join(dims), names[0], config, shapes[names[0]]))
    return problems


@pytest.mark.slow
def test_shape_comments_match_the_built_graph():
    source = inspect.getsource(model_lib)
    comments = shape_comments(source)
    # Every stage row of every table and the stems carry one.
    assert len(comments) >= 4 + 4 + 3 + 3 + 1
    assert check_shape_comments(source) == []


def test_a_wrong_shape_comment_is_caught():
    source = inspect.getsource(model_lib)
    broken = source.replace('Stage("block3", 256, 2),  # -> [batch, 14, 14, 1024]',
                            'Stage("block3", 256, 2),  # -> [batch, 14, 14, 1000]')
    assert broken != source
    assert any("14, 14, 1000" in p for p in check_shape_comments(broken))
    orphan = source.replace('    return end_point("pool1", net)  # -> [batch, 56, 56, 64]',
                            '    return net  # -> [batch, 56, 56, 64]')
    assert orphan != source
    assert any("not tied" in p for p in check_shape_comments(orphan))


# ---- golden checkpoint ------------------------------------------------------------------------

CKPT_DIR = os.path.join(GOLDEN, "cifar_resnet20_ckpt")


def golden_input():
    return np.random.RandomState(20151210).uniform(-2, 2, (4, 32, 32, 3)).astype(np.float32)


def test_golden_checkpoint_restores_with_the_same_logits():
    g = tf.Graph()
    with g.as_default():
        tf1.set_random_seed(1512)
        logits, _ = resnet_tf1.CifarResNet20()(tf.constant(golden_input()))
        variables = tf1.get_collection(tf1.GraphKeys.MODEL_VARIABLES)
        with tf1.Session() as s:
            if REGEN:
                s.run(tf1.global_variables_initializer())
                # Non-trivial BN statistics, so that a change in BN maths shows in the logits.
                rng = np.random.RandomState(3)
                for v in variables:
                    if "moving_" in v.op.name or v.op.name.endswith(("gamma", "beta")):
                        base = 1.0 if v.op.name.endswith(("gamma", "moving_variance")) else 0.0
                        v.load(base + rng.uniform(-0.3, 0.3, v.shape.as_list()), s)
                os.makedirs(CKPT_DIR, exist_ok=True)
                tf1.train.Saver(variables, save_relative_paths=True).save(
                    s, os.path.join(CKPT_DIR, "model.ckpt"), write_meta_graph=False)
                np.save(os.path.join(CKPT_DIR, "expected_logits.npy"), s.run(logits))
                with open(os.path.join(CKPT_DIR, "VERSION"), "w") as f:
                    f.write("written by resnet_tf1 %s with TensorFlow %s\n"
                            % (resnet_tf1.__version__, tf.__version__))
                return
            from resnet_tf1 import restore
            restore.Restorer(os.path.join(CKPT_DIR, "model.ckpt")).restore(s)
            got = s.run(logits)
    expected = np.load(os.path.join(CKPT_DIR, "expected_logits.npy"))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
