"""PyTorch state dicts as numpy arrays, without torch and without running any code from the file.

Formats (`read_state_dict`):
- `torch.save`'s zip archive (torch >= 1.6): `<name>/data.pkl` (a pickle whose tensors point at
  storages by persistent id `('storage', <storage type>, <key>, <location>, <numel>)`) and
  `<name>/data/<key>` (each storage's raw little-endian bytes; `<name>/byteorder` may say "big").
- The older single stream (torch < 1.6; the original 2017 torchvision weights): the pickles of a
  magic number, a protocol version and sys_info, the main pickle (persistent ids
  `('storage', <type>, <key>, <location>, <numel>, <view metadata>)`), the pickle of the storage
  keys, then per key an 8-byte little-endian element count and the raw bytes.
- `.safetensors`, through the `safetensors` package's numpy API (an optional extra).

Pickles are read by an unpickler that resolves only the globals a tensor state dict needs
(`ALLOWED`: OrderedDict, torch's tensor and parameter rebuilders, the storage types); any other
global (`os.system`, a model class, ...) is refused with its name before anything runs. A full
training checkpoint that holds the state dict under "state_dict" or "model" is unwrapped, and
DataParallel's "module." prefix is dropped.
"""

import collections
import io
import os
import pickle
import struct
import zipfile
import zlib

import numpy as np

from resnet_tf1 import errors
from resnet_tf1.porting.common import PortError

LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
LEGACY_PROTOCOL = 1001

_STORAGES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
             "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32,
             "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
             "BoolStorage": np.bool_}


class _StorageType:
    def __init__(self, name):
        self.name = name
        dtype = _STORAGES[name]
        if dtype == "bfloat16":
            import ml_dtypes  # installed with TensorFlow
            dtype = ml_dtypes.bfloat16
        self.dtype = np.dtype(dtype)


class _Storage:
    """A storage the pickle refers to; its bytes are filled in by the format's reader."""

    def __init__(self, storage_type, key, numel):
        self.type, self.key, self.numel = storage_type, key, numel
        self.array = None


class _View:
    def __init__(self, storage, offset, numel):
        self.storage, self.offset, self.numel = storage, offset, numel


class _Tensor:
    """A tensor to materialise once every storage is read."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), \
            tuple(stride)

    def numpy(self):
        storage, offset = self.storage, self.offset
        if isinstance(storage, _View):
            offset += storage.offset
            storage = storage.storage
        data = storage.array
        if data is None:
            raise PortError("storage %s is referenced but not in the file" % storage.key)
        if not self.size:
            return np.array(data[offset])
        needed = offset + 1 + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if needed > data.size:
            raise PortError("a tensor of shape %s reaches past its storage %s (%d elements)"
                            % (list(self.size), storage.key, data.size))
        view = np.lib.stride_tricks.as_strided(
            data[offset:], self.size, [s * data.itemsize for s in self.stride])
        return np.array(view)


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    return _Tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *unused):
    return data


ALLOWED = {("collections", "OrderedDict"): collections.OrderedDict,
           ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
           ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
           ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
           ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter}
ALLOWED.update({("torch", name): _StorageType(name) for name in _STORAGES})


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, path, persistent):
        super().__init__(file, encoding="latin1")
        self._path = path
        self._persistent = persistent

    def find_class(self, module, name):
        if (module, name) in ALLOWED:
            return ALLOWED[(module, name)]
        raise PortError("%s is refused: its pickle calls %s.%s, which a tensor state dict "
                        "never needs (only %s are resolved; nothing from the file was run)"
                        % (self._path, module, name, ", ".join(
                            "%s.%s" % k for k in sorted(ALLOWED) if k[0] != "torch")))

    def persistent_load(self, pid):
        return self._persistent(pid)


def _materialise(value):
    if isinstance(value, _Tensor):
        return value.numpy()
    if isinstance(value, dict):
        return collections.OrderedDict((k, _materialise(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(_materialise(v) for v in value)
    return value


def _storage_from_pid(pid, storages, path):
    if not isinstance(pid, tuple) or not pid or pid[0] != "storage" or len(pid) < 5:
        raise PortError("%s has a persistent id %r that is no tensor storage" % (path, pid))
    storage_type, key, numel = pid[1], str(pid[2]), int(pid[4])
    if not isinstance(storage_type, _StorageType):
        raise PortError("%s: storage %s has no storage type" % (path, key))
    storage = storages.setdefault(key, _Storage(storage_type, key, numel))
    view = pid[5] if len(pid) > 5 else None
    if view is not None:  # (view key, offset, size)
        return _View(storage, int(view[1]), int(view[2]))
    return storage


def _read_zip(path):
    try:
        archive = zipfile.ZipFile(path)
        names = archive.namelist()
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise PortError("%s cannot be read as a torch.save zip archive: %s" % (path, e))
    with archive:
        pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise PortError("%s is a zip archive without one data.pkl (found %d): not a "
                            "torch.save file" % (path, len(pickles)))
        prefix = pickles[0][:-len("data.pkl")]
        big = False
        if prefix + "byteorder" in names:
            big = archive.read(prefix + "byteorder").strip() == b"big"
        storages = {}
        try:
            result = _Unpickler(io.BytesIO(archive.read(pickles[0])), path,
                                lambda pid: _storage_from_pid(pid, storages, path)).load()
            for key, storage in storages.items():
                data = archive.read("%sdata/%s" % (prefix, key))
                dtype = storage.type.dtype.newbyteorder(">") if big else storage.type.dtype
                storage.array = np.frombuffer(data, dtype).astype(storage.type.dtype)
        except (zipfile.BadZipFile, KeyError, EOFError, zlib.error) as e:
            raise PortError("%s is a damaged torch.save archive: %s" % (path, e))
        except (pickle.UnpicklingError, ValueError, TypeError, AttributeError) as e:
            raise PortError("%s cannot be unpickled as a state dict: %s" % (path, e))
    return result


def _read_legacy(path):
    storages = {}
    with open(path, "rb") as f:
        try:
            def load():
                return _Unpickler(f, path, lambda pid: _storage_from_pid(pid, storages, path)) \
                    .load()
            if load() != LEGACY_MAGIC:
                raise PortError("%s is not a torch.save file (no zip archive, no legacy magic "
                                "number)" % path)
            if load() != LEGACY_PROTOCOL:
                raise PortError("%s: unsupported legacy torch.save protocol" % path)
            load()  # sys_info
            result = load()
            keys = load()
            for key in keys:
                storage = storages.get(str(key))
                header = f.read(8)
                if storage is None or len(header) != 8:
                    raise PortError("%s is cut short or damaged at storage %s" % (path, key))
                numel, = struct.unpack("<q", header)
                size = numel * storage.type.dtype.itemsize
                data = f.read(size)
                if len(data) != size:
                    raise PortError("%s is cut short in storage %s (%d of %d bytes)"
                                    % (path, key, len(data), size))
                storage.array = np.frombuffer(data, storage.type.dtype)
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
                IndexError) as e:
            raise PortError("%s cannot be read as a torch.save file: %s" % (path, e))
    return result


def _read_safetensors(path):
    try:
        from safetensors.numpy import load_file
    except ImportError:
        raise errors.MissingPackageError("%s: reading .safetensors needs the safetensors package: "
                                         "pip install -e '.[torch]'" % path)
    try:
        return collections.OrderedDict(load_file(path).items())
    except Exception as e:  # the package raises its own SafetensorError and OSError
        raise PortError("%s cannot be read as safetensors: %s" % (path, e))


def unwrap(obj, path):
    """The state dict of a torch.save result: itself, or under "state_dict" / "model"; without
    DataParallel's "module." prefix. PortError for anything else."""
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        raise PortError("%s holds no state dict (a dict of tensor names to tensors, or one "
                        "under 'state_dict' or 'model'): got %s" % (path, type(obj).__name__))
    out = collections.OrderedDict()
    for name, value in obj.items():
        name = str(name)
        if name.startswith("module."):
            name = name[len("module."):]
        if not isinstance(value, np.ndarray):
            raise PortError("%s: %r is a %s, not a tensor" % (path, name, type(value).__name__))
        out[name] = value
    return out


def read_state_dict(path):
    """{name: numpy array} of a torchvision-style state dict file (module docstring)."""
    if not os.path.isfile(path):
        raise PortError("input file %s not found" % path)
    if path.endswith(".safetensors"):
        return unwrap(_read_safetensors(path), path)
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic[:2] == b"PK":
        result = _read_zip(path)
    else:
        result = _read_legacy(path)
    return unwrap(_materialise(result), path)


def write_safetensors(arrays, path, metadata=None):
    """Writes {name: array} as safetensors bytes to `path` (the caller renames it into place)."""
    try:
        from safetensors.numpy import save
    except ImportError:
        raise errors.MissingPackageError("writing .safetensors needs the safetensors package: "
                                         "pip install -e '.[torch]'")
    # np.require keeps 0-d arrays 0-d (num_batches_tracked); ascontiguousarray would make them 1-d.
    data = save({k: np.require(v, requirements="C") for k, v in arrays.items()},
                metadata=metadata)
    with open(path, "wb") as f:
        f.write(data)
