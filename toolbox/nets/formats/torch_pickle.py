"""What the two PyTorch readers share: the metered unpickler that builds nothing but tensor
records and plain data, and the checks that hold every tensor inside its storage.

``torch_file`` (legacy state dicts) and ``torchscript_file`` (TorchScript archives) both
pickle their tensors as ``torch._utils._rebuild_tensor_v2(storage, offset, shape, strides)``
over storages named by persistent id. Here:

- ``TensorUnpickler`` resolves only the tensor rebuild, the storage types and OrderedDict
  (a subclass may allow more through ``extra_class``); anything else (``os.system``...) is
  refused, so nothing in a file executes. It is metered: a pickle may read at most
  ``MAX_PICKLE_BYTES`` and do at most ``MAX_PICKLE_WORK`` units of work (one per opcode, one
  per item a call or BUILD copies), so a few kilobytes that compress well cannot make it
  build millions of objects (the real pickles take under 7% of either);
- ``check_tensor`` and ``check_total`` hold every tensor against its storage (offset, shape,
  strides, last element reachable, no more elements than the storage holds, no stride of 0
  along a real axis) and everything against ``guards.MAX_TENSOR_ELEMENTS`` before any
  storage is read;
- ``materialize`` makes arrays by bounds-checked slicing and indexing, never by
  ``as_strided``: a crafted file cannot make numpy read memory it does not own.
"""

from __future__ import annotations

import collections
import math
import pickle
import pickletools
from typing import Any, BinaryIO, ClassVar

import numpy as np

from toolbox.nets.formats.guards import MAX_TENSOR_ELEMENTS, Refused

MAX_DIMS = 8  # a weight has at most 4
MAX_PICKLE_BYTES = 4 << 20  # one pickle; the largest real one (lite2's state dict) is 56 KB
MAX_PICKLE_WORK = 1 << 18  # opcodes run plus items copied; the real pickles take at most 18,000

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ByteStorage": np.uint8,
}


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
        if not 0 <= size <= MAX_TENSOR_ELEMENTS:
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
    if any(n > MAX_TENSOR_ELEMENTS for n in t.shape):
        raise Refused(f"tensor {name} has an axis of more than {MAX_TENSOR_ELEMENTS} elements")
    numel = math.prod(t.shape)  # of at most MAX_DIMS numbers below MAX_TENSOR_ELEMENTS: quick
    if numel > MAX_TENSOR_ELEMENTS:
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


def check_total(tensors: dict[str, TensorRef]) -> None:
    """All tensors together, and all the storages they use, stay under the element cap
    (checked before any storage is read): what reading the file costs is bounded whatever
    it declares."""
    total = sum(math.prod(t.shape) for t in tensors.values())
    if total > MAX_TENSOR_ELEMENTS:
        raise Refused(f"its tensors claim {total} elements in all")
    storages = {id(t.storage): t.storage for t in tensors.values()}.values()
    stored = sum(s.size for s in storages)
    if stored > MAX_TENSOR_ELEMENTS:
        raise Refused(f"its storages claim {stored} elements in all")


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
