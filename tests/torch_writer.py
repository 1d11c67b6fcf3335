"""torch.save's two file formats, written without torch, by the published layout (the tests' own
writer; torch itself is not a test dependency):

- zip (torch >= 1.6): `archive/data.pkl` (pickle protocol 2; each tensor reduces to
  `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad,
  backward_hooks)`, each storage a persistent id `('storage', torch.FloatStorage, key, 'cpu',
  numel)`), `archive/data/<key>` (raw little-endian bytes), `archive/version` ("3").
- legacy (torch < 1.6): pickles of the magic number, protocol version 1001 and sys_info, the main
  pickle (persistent ids with a sixth field, view metadata None), the pickle of the storage keys,
  then per storage an 8-byte little-endian element count and its bytes.

The pickle must name torch's globals; stand-in modules `torch` / `torch._utils` are installed in
sys.modules while it is written and removed after.
"""

import collections
import contextlib
import io
import pickle
import struct
import sys
import types
import zipfile

import numpy as np

_DTYPES = {np.dtype(np.float32): "FloatStorage", np.dtype(np.float64): "DoubleStorage",
           np.dtype(np.float16): "HalfStorage", np.dtype(np.int64): "LongStorage",
           np.dtype(np.int32): "IntStorage", np.dtype(np.uint8): "ByteStorage"}


@contextlib.contextmanager
def _fake_torch(extra_globals=()):
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called")

    for f in (_rebuild_tensor_v2,):
        f.__module__, f.__qualname__ = "torch._utils", f.__name__
        setattr(utils, f.__name__, f)
    for name in _DTYPES.values():
        setattr(torch, name, type(name, (), {"__module__": "torch"}))
    torch._utils = utils
    saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
    sys.modules["torch"], sys.modules["torch._utils"] = torch, utils
    try:
        yield torch, utils
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


class _Tensor:
    def __init__(self, key, array, torch, utils):
        self.key, self.array, self.torch, self.utils = key, array, torch, utils

    def __reduce__(self):
        a = self.array
        stride = tuple(s // a.itemsize for s in a.strides) if a.ndim else ()
        return (self.utils._rebuild_tensor_v2,
                (_StorageRef(self.key, a, self.torch), 0, tuple(a.shape), stride, False,
                 collections.OrderedDict()))


class _StorageRef:
    def __init__(self, key, array, torch):
        self.key, self.array, self.type = key, array, getattr(torch, _DTYPES[array.dtype])


def _pickle(obj, legacy):
    buffer = io.BytesIO()
    p = pickle.Pickler(buffer, protocol=2)

    def persistent_id(o):
        if isinstance(o, _StorageRef):
            pid = ("storage", o.type, o.key, "cpu", o.array.size)
            return pid + (None,) if legacy else pid
        return None

    p.persistent_id = persistent_id
    p.dump(obj)
    return buffer.getvalue()


def save(state_dict, path, legacy=False, wrap=None, evil=None):
    """Writes `state_dict` ({name: numpy array}) as torch.save would. `wrap`: a key to nest it
    under (a full checkpoint); `evil`: a (module, name) global the pickle calls instead."""
    with _fake_torch() as (torch, utils):
        arrays = {str(i): np.require(v, requirements="C") for i, v in
                  enumerate(state_dict.values())}
        obj = collections.OrderedDict(
            (k, _Tensor(str(i), arrays[str(i)], torch, utils))
            for i, k in enumerate(state_dict))
        if wrap:
            obj = {wrap: obj, "epoch": 90}
        if evil:
            obj = _Evil(*evil)
        data = _pickle(obj, legacy)
    if legacy:
        with open(path, "wb") as f:
            for header in (0x1950a86a20f9469cfc6c, 1001,
                           {"protocol_version": 1001, "little_endian": True}):
                f.write(pickle.dumps(header, protocol=2))
            f.write(data)
            f.write(pickle.dumps(list(arrays), protocol=2))
            for key, a in arrays.items():
                f.write(struct.pack("<q", a.size))
                f.write(a.astype(a.dtype.newbyteorder("<")).tobytes())
        return path
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", data)
        z.writestr("archive/byteorder", "little")
        for key, a in arrays.items():
            z.writestr("archive/data/%s" % key, a.tobytes())
        z.writestr("archive/version", "3\n")
    return path


class _Evil:
    def __init__(self, module, name):
        self.module, self.name = module, name

    def __reduce__(self):
        import importlib
        return getattr(importlib.import_module(self.module), self.name), ("echo pwned",)
