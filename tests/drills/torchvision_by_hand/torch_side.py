"""The issue-32 hand check (not part of the suite). Run by /usr/bin/python3 (Debian's torch 1.13 + torchvision): step 'save' writes randomised
torchvision resnet18/resnet50 in both torch.save formats with their logits; step 'load' loads our
export (model.safetensors, parsed by hand: no safetensors package here) with strict=True."""
import json, struct, sys
import numpy as np
import os
import torch, torchvision

DIR = os.environ.get("HAND_DIR", "/tmp/hand")

def randomise(m, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("bn1.weight") or ".bn" in name and name.endswith("weight") or "downsample.1.weight" in name:
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)
            elif p.dim() == 1:
                p.copy_(torch.rand(p.shape, generator=g) * 0.4 - 0.2)
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) * (2.0 / fan_in) ** 0.5)
        for name, b in m.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.rand(b.shape, generator=g) * 0.4 - 0.2)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
            elif name.endswith("num_batches_tracked"):
                b.fill_(int(torch.randint(1, 10**6, (1,), generator=g)))
    return m.eval()

def read_safetensors(path):
    data = open(path, "rb").read()
    n, = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    dtypes = {"F32": np.float32, "I64": np.int64, "F16": np.float16}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        arr = np.frombuffer(data[8 + n + a:8 + n + b], dtypes[v["dtype"]]).reshape(v["shape"])
        out[k] = torch.from_numpy(arr.copy())
    return out

x = torch.from_numpy(np.random.RandomState(0).normal(0, 1, (2, 3, 224, 224)).astype(np.float32))
np.save(DIR + "/x.npy", x.numpy())
if sys.argv[1] == "save":
    for depth, seed in ((18, 1), (50, 2)):
        m = randomise(getattr(torchvision.models, "resnet%d" % depth)(), seed)
        torch.save(m.state_dict(), DIR + "/resnet%d_zip.pth" % depth)
        torch.save(m.state_dict(), DIR + "/resnet%d_legacy.pth" % depth,
                   _use_new_zipfile_serialization=False)
        with torch.no_grad():
            np.save(DIR + "/logits%d.npy" % depth, m(x).numpy())
    print("torch", torch.__version__, "torchvision", torchvision.__version__, "saved")
else:
    path, depth, classes = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    m = getattr(torchvision.models, "resnet%d" % depth)(num_classes=classes)
    result = m.load_state_dict(read_safetensors(path), strict=True)
    m.eval()
    with torch.no_grad():
        np.save(path + ".torch_logits.npy", m(x).numpy())
    print("load_state_dict(strict=True):", result)
