"""Read a PyTorch state_dict saved in the legacy (pre-1.6, non-zip) format, without torch.

The legacy file is a sequence of pickles followed by raw storage data:

1. magic number, protocol version, system info (three small pickles);
2. the state dict itself, whose tensors refer to storages by persistent id;
3. the list of storage keys, in the order their data follows;
4. per storage: an int64 element count, then the raw little-endian elements.

Weights files come from anywhere, so the reader trusts nothing in them: the pickles are read
by ``torch_pickle``'s metered unpickler (it resolves only the handful of names a state dict
uses, so nothing in the file executes, and bounds what a pickle may read and build); every
tensor is checked against its storage and every storage against the bytes actually in the
file *before* any array is made, and arrays are then made by bounds-checked slicing and
indexing (``torch_pickle.materialize``): what a tensor costs is bounded by the bytes its
storage really has. Every refusal is a one-line UserError naming the file (``guards``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from toolbox.nets.formats.guards import Refused, refusals
from toolbox.nets.formats.torch_pickle import (
    StorageRef,
    TensorUnpickler,
    check_tensor,
    check_total,
    load_pickle,
    materialize,
)

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
_ZIP_MAGIC = b"PK\x03\x04"


def _load_pickle(f: BinaryIO, storages: dict[str, StorageRef] | None = None) -> Any:
    return load_pickle(TensorUnpickler(f, storages if storages is not None else {}))


def _read_storages(f: BinaryIO, keys: Any, storages: dict[str, StorageRef], file_size: int) -> dict[str, np.ndarray]:
    if not isinstance(keys, (list, tuple)) or not all(isinstance(k, str) for k in keys):
        raise Refused("the storage key list is malformed")
    if len(set(keys)) != len(keys) or set(keys) != set(storages):
        raise Refused("the storage key list does not match the storages the tensors use")
    data: dict[str, np.ndarray] = {}
    for key in keys:
        ref = storages[key]
        head = f.read(8)
        if len(head) < 8:
            raise Refused(f"truncated: storage {key} is missing")
        count = int(np.frombuffer(head, "<i8")[0])
        if count != ref.size:
            raise Refused(f"storage {key} holds {count} elements, its record says {ref.size}")
        nbytes = count * ref.dtype.itemsize
        if nbytes > file_size - f.tell():  # checked before reading: no huge allocation
            raise Refused(f"truncated: storage {key} needs {nbytes} bytes, {file_size - f.tell()} remain")
        raw = f.read(nbytes)
        if len(raw) != nbytes:
            raise Refused(f"truncated: storage {key} is short")
        data[key] = np.frombuffer(raw, dtype=ref.dtype)
    return data


def _read(f: BinaryIO, file_size: int) -> dict[str, np.ndarray]:
    if f.read(4) == _ZIP_MAGIC:
        raise Refused("it is a zip-format PyTorch file (PyTorch >= 1.6); only the legacy format is read")
    f.seek(0)
    if _load_pickle(f) != LEGACY_MAGIC:
        raise Refused("not a legacy PyTorch file (wrong magic number)")
    if _load_pickle(f) != LEGACY_PROTOCOL:
        raise Refused("unknown legacy protocol version")
    sys_info = _load_pickle(f)
    if isinstance(sys_info, dict) and sys_info.get("little_endian") is False:
        raise Refused("it was saved on a big-endian machine")
    storages: dict[str, StorageRef] = {}
    state = _load_pickle(f, storages)
    if not isinstance(state, dict):
        raise Refused("it holds no state dict")
    for name, t in state.items():
        check_tensor(name, t, storages)
    check_total(state)
    data = _read_storages(f, _load_pickle(f), storages, file_size)
    return {name: materialize(name, t, data[t.storage.key]) for name, t in state.items()}


def read_legacy_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Return {name: array} for every tensor in a legacy-format PyTorch state_dict file
    (floating-point tensors as float32)."""
    with refusals(path), open(path, "rb") as f:
        return _read(f, os.fstat(f.fileno()).st_size)
