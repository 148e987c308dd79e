"""A Keras model file (``.keras`` / ``.h5``) as a deepvis network, with no spec to write.

``--model mine.keras`` loads the file safely (no Lambda, no code from the file or elsewhere:
``load_model_file``), rebuilds its graph from one input with nested models opened up
(``keras_graph``), finds the layers worth showing (``offered_layers``) and infers the rest of a
spec from the model itself (``infer``): input size, preprocessing, what its output is, the
dream layers. A YAML spec with ``builder: keras_file`` overrides any of those keys (the rest
are still inferred), and ``deepvis spec mine.keras -o models/mine.yaml`` writes the inferred
spec for a person to edit. A spec that does not fit its model is one line naming the
difference (``check_spec``), before any long work.

A model file comes from anywhere, so before Keras reads it (``_config``): every zip
member's declared size is held to what the archive can honestly hold (a config of a few MB,
no member inflating more than ``MAX_INFLATION`` times what it stores beyond a floor, a
compressed member proven to inflate to no more than it declares, read in bounded pieces), and
so is every HDF5 dataset's declared size; the config is parsed by the one JSON reader and its
parts that deepvis walks are type-checked. Each refusal is one line naming the file.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import io
import json
import logging
import math
import re
import struct
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from toolbox.errors import UserError, closest
from toolbox.files import check_regular_file, sha256_of
from toolbox.jsonfile import BadJSON, parse_json
from toolbox.names import safe_name
from toolbox.nets.keras_graph import Graph, functional, is_nested, nodes, producer, qualify_names, rebuild
from toolbox.nets.spec import PREPROCESSING, ModelSpec, parse_spec, read_labels, spec_yaml

log = logging.getLogger(__name__)

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")
FREE_INPUT_SIZE = 224  # the input size assumed for a model that takes any size
DREAM_STRIDE = 16  # default dream layer: the deepest offered layer at most this many pixels per unit

# keras.applications models (by their model name) that do not scale their own input, and the
# preprocessing (Keras' preprocess_input mode) they were trained with
_KNOWN_BASES = ((re.compile(r"mobilenet_|mobilenetv2|inception_v3|inception_resnet_v2|xception|nasnet|resnet\d+v2",
                            re.IGNORECASE), "tf"),
                (re.compile(r"resnet(50|101|152)$|vgg1[69]$", re.IGNORECASE), "caffe"),
                (re.compile(r"densenet\d+$", re.IGNORECASE), "torch"))
_SCALING_OPS = ("TrueDivide", "Divide", "Subtract", "Multiply", "Add")  # keras.ops on the input
_MERGES = ("Add", "Concatenate", "Multiply", "Average", "Maximum", "Minimum", "Subtract")
_NORMS = ("BatchNormalization", "LayerNormalization", "GroupNormalization")
_ACTIVATIONS = (keras.layers.ReLU, keras.layers.Activation, keras.layers.LeakyReLU, keras.layers.PReLU,
                keras.layers.ELU, keras.layers.Softmax)

# What a model file may declare, checked before anything is inflated or allocated. Keras
# writes its members stored (uncompressed), so an honest archive inflates about 1:1; a member
# recompressed by a zip tool stays far under MAX_INFLATION.
MAX_CONFIG_BYTES = 16 << 20  # config.json; NASNetLarge's, keras.applications' largest, is 1 MB
INFLATION_FLOOR = 64 << 20  # below this, any ratio: a small model may be mostly zeros
MAX_INFLATION = 20  # above the floor, declared bytes per stored byte (members, HDF5 datasets)
MAX_MEMBERS = 1000  # zip members; Keras writes 3 (more only with assets)
MAX_H5_OBJECTS = 1 << 17  # groups and datasets; a big model has a few thousand
MAX_NESTING = 32  # models inside models in a config
_CHUNK = 1 << 20


def is_model_file(name: str | None) -> bool:
    return bool(name) and Path(name).suffix.lower() in MODEL_SUFFIXES


# -- loading safely --------------------------------------------------------------------------


class _BadModelFile(Exception):
    """Why a model file is not read; made a one-line UserError naming the file."""


def _inflation_limit(stored: int) -> int:
    return max(INFLATION_FLOOR, MAX_INFLATION * stored)


def _check_members(archive: zipfile.ZipFile, size: int) -> None:
    """Every member declares sizes an archive of ``size`` bytes can honestly hold (checked on
    the central directory, before anything is inflated); a compressed member is inflated once,
    in bounded pieces, to prove it holds no more than it declares (zipfile reads a member whole
    in one call, so a header that lies would otherwise inflate without bound)."""
    members = archive.infolist()
    if len(members) > MAX_MEMBERS:
        raise _BadModelFile(f"it has {len(members)} members")
    for m in members:
        if m.filename == "config.json" and m.file_size > MAX_CONFIG_BYTES:
            raise _BadModelFile(f"its config.json declares {_mb(m.file_size)}; a model's config is a few MB at most")
        if m.file_size > _inflation_limit(m.compress_size):
            raise _BadModelFile(f"its {m.filename[:80]} declares {_mb(m.file_size)} from {_mb(m.compress_size)}")
    total = sum(m.file_size for m in members)
    if total > _inflation_limit(size):
        raise _BadModelFile(f"its members declare {_mb(total)} in all, from a {_mb(size)} file")
    for m in members:
        if m.compress_type != zipfile.ZIP_STORED and not m.is_dir():
            _check_inflates_as_declared(archive, m)


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _check_inflates_as_declared(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> None:
    probe = copy.copy(member)
    probe.file_size = member.file_size + 1  # zipfile stops at the declared size: ask one byte more,
    del probe.CRC  # and count it rather than fail on its CRC (Keras' own read checks the CRC)
    count = 0
    with archive.open(probe) as f:
        while count <= member.file_size:
            piece = f.read(_CHUNK)  # inflates at most this much per call
            if not piece:
                break
            count += len(piece)
    if count != member.file_size:
        raise _BadModelFile(f"its {member.filename[:80]} inflates to {'more' if count > member.file_size else 'less'} "
                            f"than the {member.file_size} bytes it declares")


def _read_member(archive: zipfile.ZipFile, name: str, limit: int) -> bytes:
    """The bytes of member ``name`` (checked by ``_check_members``), read no further than ``limit``."""
    with archive.open(name) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise _BadModelFile(f"its {name} is over {_mb(limit)}")
    return data


def _check_h5(h5, stored: int) -> None:
    """The HDF5 file's datasets declare no more than its ``stored`` bytes can honestly hold
    (a chunked, compressed dataset can declare gigabytes from a few bytes): their shapes are
    read, never their data."""
    import h5py

    declared, seen = 0, 0

    def visit(_name: str, obj) -> None:
        nonlocal declared, seen
        seen += 1
        if seen > MAX_H5_OBJECTS:
            raise _BadModelFile(f"its HDF5 data has more than {MAX_H5_OBJECTS} groups and datasets")
        if isinstance(obj, h5py.Dataset):
            declared += math.prod(obj.shape or ()) * obj.dtype.itemsize
            if declared > _inflation_limit(stored):
                raise _BadModelFile(f"its HDF5 datasets declare over {_mb(declared)} from {_mb(stored)}")

    h5.visititems(visit)


def _json_config(data: Any) -> Any:
    if isinstance(data, (bytes, str)):
        try:
            return parse_json(data)
        except BadJSON as e:
            raise _BadModelFile(f"its model config is {e}") from None
    raise _BadModelFile("its model config is not text")


def _read_keras_archive(path: Path) -> Any:
    import h5py

    with zipfile.ZipFile(path) as archive:
        _check_members(archive, path.stat().st_size)
        names = set(archive.namelist())
        if "config.json" not in names:
            raise _BadModelFile("it has no config.json (not a .keras model?)")
        config = _json_config(_read_member(archive, "config.json", MAX_CONFIG_BYTES))
        if "model.weights.h5" in names:
            info = archive.getinfo("model.weights.h5")
            with _member_file(path, archive, info) as f, h5py.File(f, "r") as h5:
                _check_h5(h5, info.compress_size)
        return config


class _Window(io.RawIOBase):
    """Bytes ``start`` to ``start + size`` of an open file, as a file (a stored zip member,
    for h5py, which seeks back and forth: zipfile would re-read from the start each time)."""

    def __init__(self, f, start: int, size: int) -> None:
        super().__init__()
        self._f, self._start, self._size, self._pos = f, start, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer) -> int:
        n = max(0, min(len(buffer), self._size - self._pos))
        self._f.seek(self._start + self._pos)
        data = self._f.read(n)
        buffer[:len(data)] = data
        self._pos += len(data)
        return len(data)


@contextlib.contextmanager
def _member_file(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo):
    """A seekable file of the member's bytes: a window on the archive for a stored member,
    else its bytes (already proven to inflate to its checked declared size) in memory."""
    if info.compress_type != zipfile.ZIP_STORED:
        yield io.BytesIO(_read_member(archive, info.filename, info.file_size))
        return
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        head = f.read(30)  # the local header: its name and extra field lengths end it
        if len(head) != 30 or head[:4] != b"PK\x03\x04":
            raise _BadModelFile(f"its {info.filename[:80]} has no local header")
        name_length, extra_length = struct.unpack("<HH", head[26:30])
        yield _Window(f, info.header_offset + 30 + name_length + extra_length, min(info.file_size, info.compress_size))


def _read_h5_file(path: Path) -> Any:
    import h5py

    with h5py.File(path, "r") as f:
        _check_h5(f, path.stat().st_size)
        text = f.attrs.get("model_config")
        return None if text is None else _json_config(text)


def _config(path: Path) -> Any:
    """The model's architecture as JSON (no layer is built), or None when the file has none;
    the file's declared sizes are checked first (``_check_members``, ``_check_h5``)."""
    try:
        return _read_keras_archive(path) if path.suffix.lower() == ".keras" else _read_h5_file(path)
    except _BadModelFile as e:
        raise UserError(f"refusing Keras model {path}: {' '.join(str(e).split())[:240]}") from None
    except Exception as e:  # noqa: BLE001 (zipfile, zlib and h5py fail in many ways on a damaged file)
        raise UserError(f"cannot read Keras model {path}: {type(e).__name__}: {' '.join(str(e).split())[:160]}") \
            from None


def _kind_of(value: Any) -> str:
    """The JSON name of a value's type, for messages."""
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number")


def _layer_entries(config: Any) -> list[dict]:
    """Every layer entry of a model config, nested models' layers included, with the parts that
    deepvis reads type-checked (an entry and its ``config`` objects, ``class_name`` a string,
    ``module`` and ``registered_name`` strings or null, ``layers`` and ``inbound_nodes``
    arrays); TypeError naming the first part of the wrong type, ValueError for nesting too deep."""
    found: list[dict] = []
    todo: list[tuple[Any, str, int]] = [(config, "the model", 0)]
    while todo:
        entry, where, depth = todo.pop()
        if depth > MAX_NESTING:
            raise ValueError(f"models are nested deeper than {MAX_NESTING}")
        if not isinstance(entry, dict):
            raise TypeError(f"{where} is a JSON {_kind_of(entry)}, not an object")
        checks = (("class_name", (str,)), ("module", (str, type(None))), ("registered_name", (str, type(None))),
                  ("config", (dict, type(None))), ("inbound_nodes", (list,)))
        for key, kinds in checks:
            if key in entry and not isinstance(entry[key], kinds):
                raise TypeError(f"{where}'s {key} is a JSON {_kind_of(entry[key])}")
        if depth and not isinstance(entry.get("class_name"), str):
            raise TypeError(f"{where} has no class_name")
        inner = entry.get("config") or {}
        name = inner.get("name", "?")
        if not isinstance(name, str):
            raise TypeError(f"{where}'s name is a JSON {_kind_of(name)}")
        if depth:
            found.append(entry)
        layers = inner.get("layers")
        if layers is None:
            continue
        if not isinstance(layers, list):
            raise TypeError(f"the layers of {name} are a JSON {_kind_of(layers)}, not an array")
        todo.extend((layer, f"layer {i} of {name}", depth + 1) for i, layer in reversed(list(enumerate(layers))))
    return found


def _refuse_unsafe(path: Path, config: Any) -> None:
    """One line for a Lambda layer (its Python code would run) or a layer class that is not
    Keras' own (deepvis runs no code from model files or from modules it would have to import)."""
    if config is None:
        return
    try:
        entries = _layer_entries(config)
    except (TypeError, ValueError) as e:
        raise UserError(f"refusing Keras model {path}: its config is not a Keras model's ({e})") from None
    for entry in entries:
        cls, module = str(entry.get("class_name", "")), str(entry.get("module") or "")
        name = (entry.get("config") or {}).get("name", "?")
        if cls == "Lambda":
            raise UserError(f"{path.name} has a Lambda layer ({name}): its Python code would run on loading, "
                            f"which deepvis refuses (safe mode); rebuild the model with Keras layers "
                            f"(e.g. Rescaling for a scaling Lambda)")
        registered = str(entry.get("registered_name") or "")
        if (module and not module.startswith("keras")) or ">" in cls or ">" in registered:
            shown = registered if ">" in registered else cls
            raise UserError(f"{path.name} uses the custom layer class {shown} (layer {name}"
                            f"{', module ' + module if module else ''}), which deepvis cannot rebuild: it loads "
                            f"Keras' own layers only, never code from model files or other modules")


@dataclass(frozen=True)
class Loaded:
    path: Path
    model: keras.Model
    graph: Graph  # rebuilt from one free-size input, nested models opened up
    aliases: dict[str, str]  # plain inner layer name -> its qualified name, where unambiguous
    seconds: float  # to rebuild the graph and find its layers (the load itself not counted)
    sha256: str  # of the file's bytes: two files of one name, or a retrained one, are different networks

    @property
    def network_name(self) -> str:
        """The network's name when no spec names it: the file's stem and the start of its
        digest (so ``a/mine.keras`` and ``b/mine.keras`` never share a unit-image folder)."""
        return f"{self.path.stem}-{self.sha256[:8]}"


def load_model_file(path: str | Path) -> Loaded:
    """The model in ``path`` with its graph; loaded once per process (per file version)."""
    path = Path(path).expanduser()
    if path.suffix.lower() not in MODEL_SUFFIXES:
        raise UserError(f"{path.name}: a Keras model file ends in {', '.join(MODEL_SUFFIXES)}")
    check_regular_file(path, "model file")  # not found, a folder, a pipe or a device: one line
    stat = path.stat()
    return _load(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _load(path_text: str, size: int, mtime_ns: int) -> Loaded:
    path = Path(path_text)
    _refuse_unsafe(path, _config(path))
    try:
        model = keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as e:  # Keras fails in many ways on a foreign or damaged file
        text = " ".join(str(e).split())
        unknown = re.search(r"Unknown (?:layer|object)[^']*'([^']+)'", text)
        if unknown:
            raise UserError(f"{path.name} uses the custom layer class {unknown.group(1)}, which deepvis cannot "
                            f"rebuild: it loads Keras' own layers only") from None
        raise UserError(f"cannot load Keras model {path}: {type(e).__name__}: {text[:200]}") from None
    if not isinstance(model, keras.Model):
        raise UserError(f"{path.name} holds no Keras model")
    start = time.perf_counter()
    aliases = qualify_names(model)
    graph = rebuild(model)
    offered_layers(graph)
    return Loaded(path, model, graph, aliases, time.perf_counter() - start, sha256_of(path))


# -- the layers people look at ---------------------------------------------------------------


def _kind(record) -> str | None:
    op, cls = record.op, type(record.op).__name__
    if isinstance(op, keras.layers.InputLayer):
        return None
    if isinstance(op, _ACTIVATIONS):
        return "activation"
    if cls in _NORMS:
        return "norm"
    if "Conv" in cls:
        return "conv"
    if cls in _MERGES and len(record.inputs) >= 2:
        return "merge"
    if cls in ("MaxPooling2D", "AveragePooling2D"):
        return "pool"
    return None


def _spatial(tensor) -> bool:
    shape = tuple(tensor.shape)
    return len(shape) == 4 and shape[-1] is not None and (shape[1], shape[2]) != (1, 1)


@functools.lru_cache(maxsize=8)
def offered_layers(graph: Graph) -> tuple[tuple[str, int], ...]:
    """(name, channels) of the layers worth showing, in graph order: convolutions, activations,
    normalizations, merges (block outputs) and poolings with a spatial map, except those whose
    only use is an activation or normalization (which shows the same channels)."""
    consumers: dict[int, list] = {}
    for r in graph.records:
        for t in r.inputs:
            consumers.setdefault(id(t), []).append(r)
    outputs = {id(t) for t in graph.outputs}
    found: dict[str, int] = {}
    for r in graph.records:
        if isinstance(r.output, (list, tuple)) or r.name in found or not _spatial(r.output) or _kind(r) is None:
            continue
        users = consumers.get(id(r.output), [])
        if len(users) == 1 and id(r.output) not in outputs and _kind(users[0]) in ("activation", "norm"):
            continue
        found[r.name] = int(r.output.shape[-1])
    return tuple(found.items())


# -- inferring a spec ------------------------------------------------------------------------


@dataclass(frozen=True)
class Inferred:
    """A spec's mapping as ``models/<name>.yaml`` holds it, and why each key has its value."""

    mapping: dict[str, Any]
    why: dict[str, str]
    aliases: dict[str, str]


def _shapes(graph: Graph, names: list[str], size: int) -> list[tuple[int, ...]] | None:
    """The (h, w, c) of ``names`` for a size x size input, worked out symbolically; None when
    the model cannot take that size."""
    try:
        view = keras.Model(graph.input, [graph.tensors[n] for n in names])
        out = view.compute_output_spec(keras.KerasTensor((1, size, size, 3)))
    except Exception:  # noqa: BLE001 (any layer may refuse a size, each in its own words)
        return None
    out = out if isinstance(out, (list, tuple)) else [out]
    shapes = [tuple(int(d) for d in t.shape[1:]) for t in out]
    return shapes if all(min(s) >= 1 for s in shapes) else None


def _sizes(loaded: Loaded, layers: list[str]) -> tuple[int, int, list[tuple[int, ...]], str]:
    """(input size, min size, shapes of ``layers`` at the input size, why)."""
    graph = loaded.graph
    shape = tuple(functional(loaded.model).inputs[0].shape)
    fixed = (shape[1], shape[2]) if shape[1] is not None and shape[2] is not None else None
    size = max(fixed) if fixed else FREE_INPUT_SIZE
    shapes = _shapes(graph, layers, size)
    if shapes is None:
        raise UserError(f"{loaded.path.name} does not run on a {size}x{size} input")
    if graph.resized_to is not None:
        return size, size, shapes, (f"it takes only {fixed[0]}x{fixed[1]} inputs, its head flattening the feature "
                                    f"map; other sizes are resized to it inside the network")
    why = f"its Input is {fixed[0]}x{fixed[1]}, other sizes work too" if fixed else \
        f"its Input takes any size; {size} assumed"
    stride = max(1, max(math.ceil(size / s[0]) for s in shapes))
    low = max(8, stride)
    while low < size and _shapes(graph, layers, low) is None:
        low *= 2
    return size, min(low, size), shapes, why


def _preprocess(loaded: Loaded) -> tuple[str, str]:
    """(preprocessing name, why) from how the model treats its input."""
    graph = loaded.graph
    for r in graph.records:
        if any(t is graph.entry for t in r.inputs):
            if isinstance(r.op, (keras.layers.Rescaling, keras.layers.Normalization)):
                return "raw", f"it starts with its own {type(r.op).__name__} layer, {r.name}"
            if type(r.op).__name__ in _SCALING_OPS and not isinstance(r.op, keras.layers.Layer):
                return "raw", f"it scales its input itself: {r.name}"
    bases = [loaded.model.name] + [n.operation.name for n in nodes(functional(loaded.model))
                                   if is_nested(n.operation)]
    for base in bases:
        for pattern, name in _KNOWN_BASES:
            if pattern.match(base):
                return name, f"keras.applications' {base} expects it"
    return "unit", "a guess: it does not scale its input itself; give --preprocess if it was trained otherwise"


def _outputs(graph: Graph) -> tuple[str, int, str]:
    """(outputs kind, how many values, why) of the model's class output."""
    out = graph.class_output
    many = f"; of its {len(graph.outputs)} outputs deepvis reads this one" if len(graph.outputs) > 1 else ""
    op, _ = producer(out)
    name = getattr(op, "name", "?")
    if len(out.shape) != 2:
        return "features", 0, f"its output, {name}, is a feature map{many}"
    n = int(out.shape[-1])
    activation = getattr(getattr(op, "activation", None), "__name__", "")
    if isinstance(op, keras.layers.Softmax) or activation in ("softmax", "sigmoid"):
        return "probabilities", n, f"{n} values from a {activation or 'softmax'}, {name}{many}"
    if isinstance(op, keras.layers.Dense) and activation in ("linear", ""):
        return "logits", n, (f"{n} values from a Dense without softmax, {name}: class probabilities are their "
                             f"softmax{many}")
    return "features", n, f"its output, {name} ({n} values), is not class scores{many}"


def infer(loaded: Loaded, name: str) -> Inferred:
    """The spec of ``loaded``'s model, inferred from the model alone."""
    offered = list(offered_layers(loaded.graph))
    if not offered:
        raise UserError(f"{loaded.path.name} has no convolution or activation with a spatial map for deepvis to show")
    names = [n for n, _ in offered]
    size, min_size, shapes, size_why = _sizes(loaded, names)
    near = [n for n, s in zip(names, shapes) if math.ceil(size / s[0]) <= DREAM_STRIDE]
    dream = near[-1] if near else names[0]
    preprocess, pre_why = _preprocess(loaded)
    outputs, classes, out_why = _outputs(loaded.graph)
    mapping = {"name": name, "builder": "keras_file", "source": {"path": str(loaded.path)},
               "input_size": size, "min_size": min_size, "preprocess": preprocess, "outputs": outputs,
               "labels": None, "dream_layers": {dream: 1.0},
               "layers": [{"name": n, "channels": c} for n, c in offered]}
    why = {"input_size": size_why, "preprocess": pre_why, "outputs": out_why,
           "labels": f"a file of {classes} class names, one a line; null: 'class N'" if classes else "no classes",
           "dream_layers": f"the deepest offered layer at most {DREAM_STRIDE} px per unit"}
    return Inferred(mapping, why, loaded.aliases)


# -- a spec against its model ----------------------------------------------------------------


def _canonical(name: str, graph: Graph, aliases: dict[str, str]) -> str:
    return name if name in graph.tensors else aliases.get(name, name)


def check_spec(spec: ModelSpec, graph: Graph, labels: int | None) -> str | None:
    """How ``spec`` disagrees with its model, or None."""
    for layer in spec.layers:
        tensor = graph.tensors.get(layer.name)
        if tensor is None:
            return f"it has no layer {layer.name}{closest(layer.name, list(graph.tensors))}"
        if len(tensor.shape) != 4:
            return f"its layer {layer.name} has no spatial map (shape {tuple(tensor.shape)[1:]})"
        if tensor.shape[-1] != layer.channels:
            return f"its layer {layer.name} has {tensor.shape[-1]} channels, the spec says {layer.channels}"
    for dream, _ in spec.dream_layers:
        spec.layer(dream)
    if spec.has_classifier:
        out = graph.class_output
        if len(out.shape) != 2:
            return f"its output has shape {tuple(out.shape)[1:]}, not class scores (say outputs: features)"
        if labels is not None and labels != out.shape[-1]:
            return f"it has {out.shape[-1]} outputs, the labels list {labels}"
    return None


def network_from_file(model_file: str | Path, given: dict[str, Any], spec_file: Path | None,
                      overrides: dict[str, Any], needs_classifier: str | None):
    """The Network of a Keras model file: the inferred spec, with ``given`` (a keras_file spec's
    own keys, from ``spec_file``) and then ``overrides`` (settings: preprocess, labels) over it."""
    return network_of(load_model_file(model_file), given, spec_file, overrides, needs_classifier)


def loaded_model(model: keras.Model) -> Loaded:
    """A ``keras.Model`` in memory (one a user just trained), taken as a model file is, with
    nothing written to disk: its graph rebuilt (layers inside nested models renamed
    ``<model>.<layer>`` on the model itself, as for a file), named by its name and a digest
    of its architecture and weights, so a retrained model never shares another's unit images."""
    start = time.perf_counter()
    aliases = qualify_names(model)
    graph = rebuild(model)
    offered_layers(graph)
    digest = hashlib.sha256(json.dumps(model.get_config(), sort_keys=True, default=str).encode())
    for weight in model.weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
    return Loaded(Path(f"{safe_name(model.name)}.keras"), model, graph, aliases, time.perf_counter() - start,
                  digest.hexdigest())


def network_from_model(model: keras.Model, overrides: dict[str, Any], needs_classifier: str | None):
    """The Network of a ``keras.Model`` in memory, as ``network_from_file`` makes one of a file."""
    if not isinstance(model, keras.Model):
        raise UserError(f"expected a keras.Model, got {type(model).__name__}")
    return network_of(loaded_model(model), {}, None, overrides, needs_classifier)


def network_of(loaded: Loaded, given: dict[str, Any], spec_file: Path | None, overrides: dict[str, Any],
               needs_classifier: str | None):
    """The Network of a loaded model: the inferred spec, with ``given`` and ``overrides`` over it."""
    from toolbox.nets.network import Network

    name = str(given.get("name") or (spec_file.stem if spec_file else loaded.network_name))
    inferred = infer(loaded, name)
    mapping = {**inferred.mapping, **given, **overrides}
    aliases = {**inferred.aliases, **{str(k): str(v) for k, v in (given.get("aliases") or {}).items()}}
    try:
        mapping["layers"] = [{**d, "name": _canonical(str(d["name"]), loaded.graph, aliases)}
                             for d in mapping["layers"]]
        mapping["dream_layers"] = {_canonical(str(k), loaded.graph, aliases): v
                                   for k, v in (mapping["dream_layers"] or {}).items()}
    except (KeyError, TypeError, AttributeError) as e:
        raise UserError(f"model spec {spec_file} is malformed: {e}") from None
    mapping["aliases"] = aliases
    spec = parse_spec(mapping, spec_file or loaded.path)
    if needs_classifier:
        spec.require_classifier(needs_classifier)
    out = loaded.graph.class_output
    classes = int(out.shape[-1]) if spec.has_classifier and len(out.shape) == 2 else 0
    labels = tuple(read_labels(spec, classes))
    where = f"model spec {spec_file}" if spec_file else f"{loaded.path.name}"
    reason = check_spec(spec, loaded.graph, len(labels) if spec.labels_file is not None else None)
    if reason:
        raise UserError(f"{where} does not fit the model in {loaded.path.name}: {reason}")
    # say what was chosen: all of it for a bare model file; for a spec, what it leaves out, except
    # the outputs it has always been taken to mean when it says nothing (probabilities)
    keys = ("input_size", "preprocess") + (("outputs",) if spec_file is None or mapping["outputs"] != "probabilities"
                                           else ())
    said = [f"{key.replace('_', ' ')} {mapping[key]} ({inferred.why[key]})" for key in keys
            if key not in given and key not in overrides]
    if said:
        log.info("%s: %s", name, "; ".join(said))
    log.debug("%s: %d layers offered; graph rebuilt and layers found in %.3f s", name, len(spec.layers),
              loaded.seconds)
    return Network(spec=spec, model=loaded.model, labels=labels, given_graph=loaded.graph)


def spec_text(model_file: str | Path, name: str, overrides: dict[str, Any]) -> tuple[str, Inferred]:
    """The YAML of the spec inferred for a model file (with ``overrides`` over it), for a person
    to edit, and what was inferred."""
    loaded = load_model_file(model_file)
    inferred = infer(loaded, name)
    mapping = {**inferred.mapping, **overrides}
    comments = {"input_size": inferred.why["input_size"],
                "min_size": "the smallest input side at which every layer below still has a map",
                "preprocess": f"{' | '.join(PREPROCESSING)} or {{mean, std, bgr}}: "
                              + ("given" if "preprocess" in overrides else inferred.why["preprocess"]),
                "outputs": f"probabilities | logits | features: {inferred.why['outputs']}",
                "labels": "given" if "labels" in overrides else inferred.why["labels"],
                "dream_layers": inferred.why["dream_layers"],
                "layers": "in graph order; delete the ones you do not want offered"}
    nested = "\nLayers inside nested models are named <model>.<layer>; the plain inner name works where\n" \
             "it is unambiguous." if inferred.aliases else ""
    header = (f"deepvis model spec for {loaded.path.name}, inferred by `deepvis spec`: edit freely.\n"
              f"A key you delete is inferred again from the model; one you keep overrides it.{nested}")
    return spec_yaml(mapping, comments, header), inferred
