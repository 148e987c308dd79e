"""Read the module tree and tensors of a TorchScript archive (``torch.jit.save``), without torch.

The archive is a zip whose one top folder holds:

- ``data.pkl``: the module tree, pickled. Each module is an object of a ``__torch__.*`` class
  (``NEWOBJ`` then ``BUILD`` with its attribute dict); tensors are rebuilt through
  ``torch._utils._rebuild_tensor_v2`` from storages named by persistent id
  ``('storage', FloatStorage, key, 'cpu', numel)``; int lists through
  ``torch.jit._pickle.build_intlist``;
- ``data/<key>``: each storage's raw little-endian elements;
- ``code/``: the forward passes in TorchScript's Python subset, for people to read (never run).

Nothing in the file is executed. The unpickler is ``torch_pickle``'s (metered: bounded bytes
and work; ``torch_file`` uses it too), which resolves only the tensor rebuild, the storage
types and OrderedDict, extended here by the names a module tree needs: ``__torch__.*``
classes (at most ``MAX_CLASSES``), which become inert ``ScriptObject``s holding their
attribute dict, and the ``build_*list`` helpers for lists of plain numbers. Any other name is
refused. Every tensor is checked against its storage record, every storage's declared element
count is capped (each and in all), and the zip entries' declared sizes are checked against
their records and limits, all before an entry is inflated; entries are read with bounded
reads, so a header that lies cannot inflate more than it declared. Arrays are made by
``torch_pickle.materialize`` (bounds-checked slicing and indexing only). Every refusal is a
one-line UserError naming the file (``guards``).
"""

from __future__ import annotations

import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from toolbox.nets.formats.guards import Refused, refusals
from toolbox.nets.formats.torch_pickle import (
    MAX_PICKLE_BYTES,
    StorageRef,
    TensorRef,
    TensorUnpickler,
    check_tensor,
    check_total,
    load_pickle,
    materialize,
)

MAX_DEPTH = 64  # modules inside modules
MAX_CLASSES = 1024  # distinct module classes; the 2015 InceptionV3 names 25 globals in all
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
_MANGLE = re.compile(r"\.___torch_mangle_\d+")
_LIST_BUILDERS = {"build_intlist": int, "build_doublelist": float, "build_boollist": bool}


class ScriptObject:
    """A module of the tree: its class name and its attribute dict, nothing callable."""

    qualified_name = "__torch__"

    def __init__(self) -> None:
        self.state: dict[str, Any] = {}

    def __setstate__(self, state: Any) -> None:  # pickle's BUILD
        if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
            raise Refused(f"module {self.qualified_name} has a malformed attribute dict")
        self.state = state


def _list_builder(name: str, kind: type):
    def build(values: Any) -> tuple:
        if not isinstance(values, list) or not all(type(v) is kind for v in values):
            raise Refused(f"{name} got something other than a list of {kind.__name__}s")
        return tuple(values)

    return build


class _ScriptUnpickler(TensorUnpickler):
    def __init__(self, f, storages: dict[str, StorageRef]) -> None:
        super().__init__(f, storages)
        self._classes: dict[str, type] = {}

    def extra_class(self, module: str, name: str) -> Any:
        if module == "torch.jit._pickle" and name in _LIST_BUILDERS:
            return _list_builder(name, _LIST_BUILDERS[name])
        qualified = f"{module}.{name}"
        if (module == "__torch__" or module.startswith("__torch__.")) and _NAME.match(qualified):
            if qualified not in self._classes:  # NEWOBJ needs a class: an inert one per name
                if len(self._classes) >= MAX_CLASSES:
                    raise Refused(f"its module tree names more than {MAX_CLASSES} classes")
                self._classes[qualified] = type("ScriptObject", (ScriptObject,), {"qualified_name": qualified})
            return self._classes[qualified]
        return super().extra_class(module, name)


@dataclass(frozen=True)
class ScriptModule:
    """An archive's module tree, flattened to dotted paths from the root module (``""``).

    ``types``: module path -> class name, TorchScript's ``___torch_mangle_N`` parts removed
    (``net.layers.mixed_10`` -> ``__torch__.inceptionv3.InceptionE``); ``tensors``: tensor
    path -> array (floating point as float32); ``attributes``: every other attribute (ints,
    floats, bools, strings, None, tuples of numbers)."""

    types: dict[str, str]
    tensors: dict[str, np.ndarray]
    attributes: dict[str, Any]

    def children(self, path: str) -> list[str]:
        """The names of the modules directly inside ``path``, in the file's order."""
        prefix = f"{path}." if path else ""
        return [p[len(prefix):] for p in self.types if p.startswith(prefix) and p != path
                and "." not in p[len(prefix):]]


def _plain(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    return isinstance(value, tuple) and all(isinstance(v, (bool, int, float)) for v in value)


def _flatten(root: Any) -> tuple[dict[str, str], dict[str, TensorRef], dict[str, Any]]:
    if not isinstance(root, ScriptObject):
        raise Refused("its data.pkl holds no module")
    types: dict[str, str] = {}
    tensors: dict[str, TensorRef] = {}
    attributes: dict[str, Any] = {}
    seen: set[int] = set()

    def walk(obj: ScriptObject, path: str, depth: int) -> None:
        if id(obj) in seen:
            raise Refused(f"module {path or 'root'} appears twice in the tree")
        if depth > MAX_DEPTH:
            raise Refused(f"modules are nested deeper than {MAX_DEPTH}")
        seen.add(id(obj))
        types[path] = _MANGLE.sub("", obj.qualified_name)
        for key, value in obj.state.items():
            name = f"{path}.{key}" if path else key
            if isinstance(value, ScriptObject):
                walk(value, name, depth + 1)
            elif isinstance(value, TensorRef):
                tensors[name] = value
            elif _plain(value):
                attributes[name] = value
            else:
                raise Refused(f"attribute {name} holds a {type(value).__name__}")

    walk(root, "", 0)
    return types, tensors, attributes


def _top_folder(archive: zipfile.ZipFile) -> str:
    tops = [n[:-len("/data.pkl")] for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(tops) != 1:
        raise Refused("not a TorchScript archive (no single <folder>/data.pkl)")
    return tops[0]


def _entry(archive: zipfile.ZipFile, name: str, size: int) -> bytes:
    """The bytes of entry ``name``, which must hold exactly ``size`` bytes (checked first)."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise Refused(f"{name} is missing") from None
    if info.file_size != size:
        raise Refused(f"{name} holds {info.file_size} bytes, its record says {size}")
    with archive.open(info) as f:
        raw = f.read(size)
    if len(raw) != size:
        raise Refused(f"{name} is short")
    return raw


def _read(archive: zipfile.ZipFile) -> ScriptModule:
    top = _top_folder(archive)
    info = archive.getinfo(f"{top}/data.pkl")
    if info.file_size > MAX_PICKLE_BYTES:  # the unpickler reads no more than this either
        raise Refused(f"its data.pkl claims {info.file_size} bytes")
    storages: dict[str, StorageRef] = {}
    with archive.open(info) as f:
        root = load_pickle(_ScriptUnpickler(f, storages))
    types, refs, attributes = _flatten(root)
    for name, t in refs.items():
        check_tensor(name, t, storages)
    check_total(refs)
    data: dict[str, np.ndarray] = {}
    for key in sorted({t.storage.key for t in refs.values()}):
        ref = storages[key]
        if "/" in key or key in ("", ".", ".."):
            raise Refused(f"storage key {key[:40]} is not a plain name")
        raw = _entry(archive, f"{top}/data/{key}", ref.size * ref.dtype.itemsize)
        data[key] = np.frombuffer(raw, dtype=ref.dtype)
    tensors = {name: materialize(name, t, data[t.storage.key]) for name, t in refs.items()}
    return ScriptModule(types, tensors, attributes)


def read_torchscript(path: str | Path) -> ScriptModule:
    """The module tree of the TorchScript archive at ``path``: its classes, tensors and
    plain attributes by dotted path. Nothing in the file is run."""
    with refusals(path):
        try:
            with zipfile.ZipFile(path) as archive:
                return _read(archive)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, NotImplementedError, RuntimeError,
                EOFError) as e:
            # a damaged or unsupported zip (bad CRC, unknown compression, encryption...)
            raise Refused(f"not a readable zip archive ({type(e).__name__}: {e})") from None

