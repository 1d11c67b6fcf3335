"""ONNX Runtime: sessions with the threads set, and static int8 quantization of our ONNX export.

`onnxruntime` is an optional extra (`pip install -e '.[onnx]'`); every entry point says so in one
line when it is missing.

int8 (`quantize`): ONNX Runtime's `quantize_static` in the QDQ format (QuantizeLinear /
DequantizeLinear pairs around each quantized op, which the CPU provider fuses into integer
kernels: VNNI / AMX-INT8 where the CPU has them), weights int8 per output channel and symmetric,
activations uint8 (asymmetric) with ranges calibrated on real images (`CalibrationMethod` MinMax,
Entropy or Percentile). uint8 activations with int8 weights (U8S8) are what ONNX Runtime's x86
integer kernels take natively: on the 2-core Xeon here (AVX512-VNNI, AMX-INT8) a ResNet-50 ran
3.0-3.6x faster as U8S8 than as S8S8 (106-116 against 30-32 images/sec at batch 16, alternated
in one run: tests/drills/int8_activation_types.py). On x86 CPUs without VNNI, ONNX Runtime warns
that U8S8 can saturate (its "reduce_range" option); every CPU measured here has VNNI.

The model is first pre-processed (`quant_pre_process`: shape inference and graph optimisation); the symbolic shape pass needs sympy and is skipped without it (our export's
shapes are static but for the batch).
"""

import importlib.util
import os
import tempfile

import numpy as np

from resnet_tf1 import errors, fileio

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")


class OnnxRuntimeError(errors.UserError):
    """onnxruntime missing, a model it cannot load or run, a quantization that fails."""


def _ort():
    try:
        import onnxruntime
    except ImportError:
        raise OnnxRuntimeError("onnxruntime is not installed: pip install -e '.[onnx]' "
                               "(tf2onnx and onnxruntime)")
    return onnxruntime


def available():
    return importlib.util.find_spec("onnxruntime") is not None


def session(path, threads=None):
    """An `onnxruntime.InferenceSession` on the CPU for the model at `path`; `threads` sets the
    intra-op pool (None: ONNX Runtime's default, one per core) and one inter-op thread, as our
    TensorFlow sessions are compared with."""
    ort = _ort()
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    try:
        return ort.InferenceSession(path, sess_options=options,
                                    providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's own error types
        raise OnnxRuntimeError("onnxruntime cannot load %s: %s" % (path, fileio.error_line(e)))


class Runner(object):
    """Runs an ONNX model on float32 pixel batches: `runner(images)` -> {output tensor name:
    array}."""

    def __init__(self, path, threads=None):
        self.path = path
        self.session = session(path, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, images, outputs=None):
        try:
            values = self.session.run(outputs, {self.input_name: np.asarray(images,
                                                                            np.float32)})
        except Exception as e:  # onnxruntime's own error types
            raise OnnxRuntimeError("onnxruntime cannot run %s: %s"
                                   % (self.path, fileio.error_line(e)))
        return dict(zip(outputs or self.output_names, values))


def _method(name):
    from onnxruntime.quantization import CalibrationMethod
    if name not in CALIBRATION_METHODS:
        raise errors.FlagError("--calibration_method=%s: expected one of %s"
                               % (name, ", ".join(CALIBRATION_METHODS)))
    return {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile}[name]


def quantize(float_path, int8_path, calibration, method="minmax", batch_size=16):
    """Writes the static int8 (QDQ: per-channel symmetric int8 weights, uint8 activations) form
    of the ONNX model
    `float_path` to `int8_path`, its activations calibrated on `calibration` (float32 pixels
    [N, H, W, 3], what the model's input takes). Returns a record of what was done."""
    _ort()
    from onnxruntime import quantization as q
    from onnxruntime.quantization.shape_inference import quant_pre_process
    calibration = np.asarray(calibration, np.float32)
    if not len(calibration):
        raise OnnxRuntimeError("int8 calibration needs images: none were given")
    input_name = session(float_path).get_inputs()[0].name

    class Reader(q.CalibrationDataReader):
        def __init__(self):
            self.batches = iter([calibration[i:i + batch_size]
                                 for i in range(0, len(calibration), batch_size)])

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {input_name: batch}

    sympy = importlib.util.find_spec("sympy") is not None
    calibrate_method = _method(method)
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(int8_path))) as tmp:
        prepared = os.path.join(tmp, "prepared.onnx")
        try:
            quant_pre_process(float_path, prepared, skip_symbolic_shape=not sympy)
            q.quantize_static(
                prepared, int8_path, Reader(), quant_format=q.QuantFormat.QDQ,
                per_channel=True, weight_type=q.QuantType.QInt8,
                activation_type=q.QuantType.QUInt8, calibrate_method=calibrate_method,
                extra_options={"WeightSymmetric": True, "ActivationSymmetric": False})
        except Exception as e:  # onnxruntime.quantization raises many kinds
            raise OnnxRuntimeError("onnxruntime could not quantize %s to int8: %s"
                                   % (float_path, fileio.error_line(e)))
    return {"format": "QDQ", "weights": "int8, per output channel, symmetric",
            "activations": "uint8, asymmetric, calibrated (%s)" % method, "calibration_method": method,
            "calibration_images": int(len(calibration)),
            "symbolic_shape_inference": bool(sympy),
            "onnxruntime_version": _ort().__version__}
