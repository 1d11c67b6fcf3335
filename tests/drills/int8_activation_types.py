"""Issue 34: ONNX Runtime int8 with int8 (S8S8) or uint8 (U8S8, with and without reduce_range)
activations, ResNet-50 random weights at batch 16, alternated in one run, 2 threads. Not part of
the suite: python tests/drills/int8_activation_types.py (writes /tmp/x34/r50)."""
import os, sys, time
sys.path.insert(0, "scripts")
import numpy as np
from absl import flags
import benchmark as b
from resnet_tf1 import onnxrt
from onnxruntime import quantization as q
from onnxruntime.quantization.shape_inference import quant_pre_process
flags.FLAGS(["x", "--depth=50", "--batch_size=16", "--mode=inference"])
d = "/tmp/x34/r50"
if not os.path.exists(d + "/onnx_float32/model.onnx"):
    os.makedirs(d, exist_ok=True)
    b.export_onnx(d)
f32 = d + "/onnx_float32/model.onnx"
pre = d + "/pre.onnx"
if not os.path.exists(pre):
    quant_pre_process(f32, pre, skip_symbolic_shape=True)
x = np.random.RandomState(0).uniform(0, 255, (16, 224, 224, 3)).astype(np.float32)
class R(q.CalibrationDataReader):
    def __init__(s): s.it = iter([{"images:0": x}])
    def get_next(s): return next(s.it, None)
configs = {"s8s8": (q.QuantType.QInt8, {}), "u8s8": (q.QuantType.QUInt8, {}),
           "u8s8_reduce": (q.QuantType.QUInt8, {"reduce_range": True})}
for name, (act, kw) in configs.items():
    out = d + "/%s.onnx" % name
    if not os.path.exists(out):
        q.quantize_static(pre, out, R(), quant_format=q.QuantFormat.QDQ, per_channel=True,
                          weight_type=q.QuantType.QInt8, activation_type=act,
                          extra_options={"WeightSymmetric": True, "ActivationSymmetric": False}, **kw)
paths = {"f32": f32}
paths.update({n: d + "/%s.onnx" % n for n in configs})
sess = {n: onnxrt.session(p, 2) for n, p in paths.items()}
for n, s in sess.items():
    s.run(None, {"images:0": x})
for r in range(3):
    line = []
    for n, s in sess.items():
        t = time.time()
        for _ in range(3):
            s.run(["logits:0"], {"images:0": x})
        line.append("%s %.1f" % (n, 48 / (time.time() - t)))
    print("  ".join(line), flush=True)
