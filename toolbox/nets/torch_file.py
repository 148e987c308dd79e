"""Read a PyTorch state_dict saved in the legacy (pre-1.6, non-zip) format, without torch.

The legacy file is a sequence of pickles followed by raw storage data:

1. magic number, protocol version, system info (three small pickles);
2. the state dict itself, whose tensors refer to storages by persistent id;
3. the list of storage keys, in the order their data follows;
4. per storage: an int64 element count, then the raw little-endian elements.

Weights files come from anywhere, so the reader trusts nothing in them:

- the unpickler resolves only the handful of names a state dict uses (tensor rebuild,
  storage types, OrderedDict); anything else (``os.system``...) is refused, so nothing in
  the file executes;
- the unpickler is metered: a pickle may read at most ``MAX_PICKLE_BYTES`` and do at most
  ``MAX_PICKLE_WORK`` units of work (one per opcode, one per item a call or BUILD copies),
  so a few kilobytes that compress well cannot make it build millions of objects (the real
  pickles take under 7% of either);
- every tensor is checked against its storage (offset, shape, strides, last element
  reachable, no more elements than the storage holds, no stride of 0 along a real axis) and
  every storage against the bytes actually in the file *before* any array is made, and
  arrays are then made by bounds-checked slicing and indexing, never by ``as_strided``: a
  crafted file cannot make numpy read memory it does not own, and what a tensor costs is
  bounded by the bytes its storage really has.

Every refusal is a one-line UserError naming the file. The pieces that guard a pickle and its
tensors (``TensorUnpickler``, ``check_tensor``, ``materialize``, ``refusals``) are shared with
``torchscript_file``, the reader of TorchScript archives: one set of checks for both formats.
"""

from __future__ import annotations

import collections
import contextlib
import math
import os
import pickle
import pickletools
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, Iterator

import numpy as np

from toolbox.errors import UserError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
# per storage, over all storages and over all tensors: 256 MB of float32, 3x the largest net
# read here (the 2015 InceptionV3: 21.8 million; lite2 6.1 million)
MAX_ELEMENTS = 1 << 26
MAX_DIMS = 8  # a weight has at most 4
MAX_PICKLE_BYTES = 4 << 20  # one pickle; the largest real one (lite2's state dict) is 56 KB
MAX_PICKLE_WORK = 1 << 18  # opcodes run plus items copied; the real pickles take at most 18,000
_ZIP_MAGIC = b"PK\x03\x04"

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ByteStorage": np.uint8,
}


class Refused(Exception):
    """Why the file is not read; turned into a UserError naming the file at the top."""


class StorageRef:
    """Placeholder for a storage whose bytes come after the pickles."""

    def __init__(self, key: str, dtype: np.dtype, size: int) -> None:
        self.key, self.dtype, self.size = key, dtype, size


class TensorRef:
    """A view (offset, shape, strides) into a storage, resolved once storages are read."""

    def __init__(self, storage: Any, offset: Any, shape: Any, strides: Any) -> None:
        self.storage, self.offset, self.shape, self.strides = storage, offset, shape, strides


def _rebuild_tensor_v2(storage, offset, shape, strides, *_ignored):
    return TensorRef(storage, offset, shape, strides)


class _StorageType:
    def __init__(self, name: str) -> None:
        self.name = name


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def int_tuple(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and all(is_int(v) for v in value)


class _Budget:
    """The file a pickle is read from, allowed ``limit`` bytes in all: an opcode that declares
    a longer string or frame is refused before anything of its size is read or allocated."""

    def __init__(self, f: BinaryIO, limit: int) -> None:
        self._f, self._left, self._limit = f, limit, limit

    def _take(self, n: int) -> None:
        if n > self._left:
            raise Refused(f"a pickle longer than {self._limit >> 20} MB (more than a weights file needs)")

    def read(self, n: int = -1) -> bytes:
        self._take(n if n is not None and n >= 0 else self._left + 1)
        data = self._f.read(n)
        self._left -= len(data)
        return data

    def readinto(self, buffer) -> int:
        self._take(len(buffer))
        count = self._f.readinto(buffer)
        self._left -= count
        return count

    def readline(self) -> bytes:
        line = self._f.readline(self._left + 1)
        self._take(len(line))
        self._left -= len(line)
        return line


def _size(value: Any) -> int:
    """How many items copying ``value`` touches, one level down (a call's arguments, a state)."""
    if not isinstance(value, (tuple, list, dict, set, frozenset)):
        return 0
    return len(value) + sum(len(v) for v in value if isinstance(v, (tuple, list, dict, set, frozenset)))


# opcodes that hand over what is on top of the stack to a call or to BUILD, which may copy it
_COPYING = {pickle.REDUCE[0], pickle.BUILD[0], pickle.NEWOBJ[0], pickle.NEWOBJ_EX[0]}
# pickle protocols 0-4: protocol 5's out-of-band buffers allocate what they declare before reading
_OPCODES = {op.code.encode("latin-1")[0] for op in pickletools.opcodes if op.proto <= 4}


def _metered(code: int, load: Any) -> Any:
    def run(self: TensorUnpickler) -> None:
        self.spend(1 + (_size(self.stack[-1]) if code in _COPYING and self.stack else 0))
        load(self)

    return run


class TensorUnpickler(pickle._Unpickler):
    """Unpickles tensors (as ``TensorRef``s into ``StorageRef``s) and plain data, nothing else:
    ``find_class`` knows the tensor rebuild, the storage types and OrderedDict, and asks
    ``extra_class`` (a subclass's hook) for any other name; the default refuses it. Every
    opcode is metered (``spend``) and reads come from a ``_Budget``: a hostile pickle is
    refused after a bounded amount of memory and time, whatever it declares."""

    dispatch: ClassVar[dict] = {code: _metered(code, load) for code, load in pickle._Unpickler.dispatch.items()
                if code in _OPCODES}

    def __init__(self, f: BinaryIO, storages: dict[str, StorageRef]) -> None:
        super().__init__(_Budget(f, MAX_PICKLE_BYTES), encoding="latin1")
        self._storages = storages
        self._work = 0

    def spend(self, units: int) -> None:
        self._work += units
        if self._work > MAX_PICKLE_WORK:
            raise Refused(f"its pickle makes more than {MAX_PICKLE_WORK} objects (more than a weights file needs)")

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        return self.extra_class(module, name)

    def extra_class(self, module: str, name: str) -> Any:
        raise Refused(f"it names {module}.{name}, which a weights file has no use for")

    def persistent_load(self, pid: Any) -> StorageRef:
        # ('storage', storage_type, key, location, numel, view_metadata)
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise Refused(f"unknown persistent id {str(pid)[:60]}")
        _tag, storage_type, key, _location, size = pid[:5]
        if not isinstance(storage_type, _StorageType) or not isinstance(key, str) or not is_int(size):
            raise Refused(f"malformed storage record {str(pid)[:60]}")
        if len(pid) == 6 and pid[5] is not None:
            raise Refused(f"storage {key} is a view of another storage (not supported)")
        if not 0 <= size <= MAX_ELEMENTS:
            raise Refused(f"storage {key} claims {size if size.bit_length() <= 64 else 'over 2**64'} elements")
        ref = StorageRef(key, np.dtype(_STORAGE_DTYPES[storage_type.name]).newbyteorder("<"), size)
        known = self._storages.setdefault(key, ref)
        if (known.dtype, known.size) != (ref.dtype, ref.size):
            raise Refused(f"storage {key} is declared twice, differently")
        return known


def load_pickle(unpickler: pickle.Unpickler) -> Any:
    """``unpickler.load()``, any failure but a refusal reported as a damaged pickle."""
    try:
        return unpickler.load()
    except Refused:
        raise
    except Exception as e:  # a malformed pickle fails in many ways; all of them mean "not readable"
        raise Refused(f"damaged pickle ({type(e).__name__}: {' '.join(str(e).split())[:120]})") from None


def _load_pickle(f: BinaryIO, storages: dict[str, StorageRef] | None = None) -> Any:
    return load_pickle(TensorUnpickler(f, storages if storages is not None else {}))


def check_tensor(name: Any, t: Any, storages: dict[str, StorageRef]) -> None:
    """The tensor lies inside its storage; raises Refused naming what is wrong."""
    if not isinstance(name, str) or not isinstance(t, TensorRef):
        raise Refused(f"entry {str(name)[:60]} is not a tensor")
    if not isinstance(t.storage, StorageRef) or storages.get(t.storage.key) is not t.storage:
        raise Refused(f"tensor {name} has no storage")
    if not (is_int(t.offset) and int_tuple(t.shape) and int_tuple(t.strides) and len(t.shape) == len(t.strides)):
        raise Refused(f"tensor {name} has a malformed offset, shape or strides")
    if len(t.shape) > MAX_DIMS:
        raise Refused(f"tensor {name} has {len(t.shape)} dimensions")
    if t.offset < 0 or any(n < 0 for n in t.shape) or any(s < 0 for s in t.strides):
        raise Refused(f"tensor {name} has a negative offset, size or stride")
    if any(n > MAX_ELEMENTS for n in t.shape):
        raise Refused(f"tensor {name} has an axis of more than {MAX_ELEMENTS} elements")
    numel = math.prod(t.shape)  # of at most MAX_DIMS numbers below MAX_ELEMENTS: quick
    if numel > MAX_ELEMENTS:
        raise Refused(f"tensor {name} claims {numel} elements")
    if numel == 0:
        return
    last = t.offset + sum((n - 1) * s for n, s in zip(t.shape, t.strides))
    if last >= t.storage.size:
        shown = last if last.bit_length() <= 64 else "past 2**64"
        raise Refused(f"tensor {name} reaches element {shown} of storage {t.storage.key}, "
                      f"which holds {t.storage.size}")
    # a weight's elements are distinct elements of its storage: with a stride of 0, or axes
    # that overlap, a few stored numbers could claim gigabytes once copied out
    if any(s == 0 for n, s in zip(t.shape, t.strides) if n > 1):
        raise Refused(f"tensor {name} repeats its storage's elements (a stride of 0)")
    if numel > t.storage.size:
        raise Refused(f"tensor {name} claims {numel} elements; its storage {t.storage.key} holds "
                      f"{t.storage.size}")


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


def materialize(name: str, t: TensorRef, flat: np.ndarray) -> np.ndarray:
    """A copy of the tensor's elements, by bounds-checked slicing or indexing only: even a
    tensor that slipped past ``check_tensor`` could raise here, never read foreign memory."""
    shape, strides = tuple(t.shape), tuple(t.strides)
    contiguous = [math.prod(shape[i + 1:]) for i in range(len(shape))]
    try:
        if all(n <= 1 or s == c for n, s, c in zip(shape, strides, contiguous)):
            values = flat[t.offset:t.offset + math.prod(shape)].reshape(shape)
        else:
            index = np.full(shape, t.offset, np.int64)
            for axis, (n, s) in enumerate(zip(shape, strides)):
                along = [1] * len(shape)
                along[axis] = n
                step = s if n > 1 else 0  # a length-1 axis may carry any stride; it is never used
                index += (np.arange(n, dtype=np.int64) * step).reshape(along)
            values = flat[index]
    except (IndexError, ValueError, MemoryError) as e:
        raise Refused(f"tensor {name} cannot be read ({type(e).__name__})") from None
    return np.array(values, dtype=np.float32 if flat.dtype.kind == "f" else flat.dtype.newbyteorder("="))


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


def check_total(tensors: dict[str, TensorRef]) -> None:
    """All tensors together, and all the storages they use, stay under the element cap
    (checked before any storage is read): what reading the file costs is bounded whatever
    it declares."""
    total = sum(math.prod(t.shape) for t in tensors.values())
    if total > MAX_ELEMENTS:
        raise Refused(f"its tensors claim {total} elements in all")
    storages = {id(t.storage): t.storage for t in tensors.values()}.values()
    stored = sum(s.size for s in storages)
    if stored > MAX_ELEMENTS:
        raise Refused(f"its storages claim {stored} elements in all")


@contextlib.contextmanager
def refusals(path: str | Path) -> Iterator[None]:
    """Turns a refusal or a read failure inside the block into a one-line UserError naming ``path``."""
    try:
        yield
    except Refused as e:
        reason = " ".join(str(e).split())[:300]
        raise UserError(f"refusing weights file {path}: {reason}") from None
    except OSError as e:
        raise UserError(f"cannot read weights file {path}: {e.strerror or e}") from None


def read_legacy_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Return {name: array} for every tensor in a legacy-format PyTorch state_dict file
    (floating-point tensors as float32)."""
    with refusals(path), open(path, "rb") as f:
        return _read(f, os.fstat(f.fileno()).st_size)
