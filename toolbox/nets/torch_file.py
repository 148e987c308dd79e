"""Read a PyTorch state_dict saved in the legacy (pre-1.6, non-zip) format, without torch.

The legacy file is a sequence of pickles followed by raw storage data:

1. magic number, protocol version, system info (three small pickles);
2. the state dict itself, whose tensors refer to storages by persistent id;
3. the list of storage keys, in the order their data follows;
4. per storage: an int64 element count, then the raw little-endian elements.

Only what a plain state_dict of float tensors needs is implemented.
"""

from __future__ import annotations

import collections
import pickle
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ByteStorage": np.uint8,
}


class _StorageRef:
    """Placeholder for a storage whose bytes come after the pickles."""

    def __init__(self, key: str, dtype: type, size: int) -> None:
        self.key, self.dtype, self.size = key, dtype, size


class _TensorRef:
    """A view (offset, shape, strides) into a storage, resolved once storages are read."""

    def __init__(self, storage: _StorageRef, offset: int, shape: tuple, strides: tuple) -> None:
        self.storage, self.offset, self.shape, self.strides = storage, offset, tuple(shape), tuple(strides)


def _rebuild_tensor_v2(storage, offset, shape, strides, *_ignored):
    return _TensorRef(storage, offset, shape, strides)


class _StorageType:
    def __init__(self, name: str) -> None:
        self.name = name


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"unsupported object in weights file: {module}.{name}")

    def persistent_load(self, pid: Any) -> _StorageRef:
        # ('storage', storage_type, key, location, numel[, view_metadata])
        _tag, storage_type, key, _location, size = pid[:5]
        return self._storages.setdefault(key, _StorageRef(key, _STORAGE_DTYPES[storage_type.name], size))


def _load_pickle(f: BinaryIO, storages: dict | None = None) -> Any:
    unpickler = _Unpickler(f, encoding="latin1")
    unpickler._storages = storages if storages is not None else {}
    return unpickler.load()


def read_legacy_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Return {name: array} for every tensor in a legacy-format PyTorch state_dict file."""
    storages: dict[str, _StorageRef] = {}
    with open(path, "rb") as f:
        if _load_pickle(f) != LEGACY_MAGIC:
            raise ValueError(f"{path} is not a legacy PyTorch file")
        _load_pickle(f)  # protocol version
        _load_pickle(f)  # system info (endianness, type sizes)
        state = _load_pickle(f, storages)
        keys = _load_pickle(f)
        data: dict[str, np.ndarray] = {}
        for key in keys:
            ref = storages[key]
            count = int(np.frombuffer(f.read(8), "<i8")[0])
            itemsize = np.dtype(ref.dtype).itemsize
            data[key] = np.frombuffer(f.read(count * itemsize), dtype=np.dtype(ref.dtype).newbyteorder("<"))
    tensors: dict[str, np.ndarray] = {}
    for name, t in state.items():
        flat = data[t.storage.key]
        itemsize = flat.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[t.offset:], shape=t.shape, strides=[s * itemsize for s in t.strides]
        )
        tensors[name] = np.array(view, dtype=np.float32 if flat.dtype.kind == "f" else flat.dtype)
    return tensors
