import os
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# As `import resnet_tf1` sets it for the scripts, before any test module imports TensorFlow.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: an end-to-end test of 15 s or more on a 2-core CPU (a quick local loop: "
        "-m 'not slow'; CI runs every test)")


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory):
    """Small CIFAR-10 binary files in the real layout (learnable colours), once per module."""
    from resnet_tf1.data import fake
    d = str(tmp_path_factory.mktemp("cifar"))
    fake.write_cifar(d)
    return d
