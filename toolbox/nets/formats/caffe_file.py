"""Read the weights of a Caffe ``.caffemodel`` without Caffe: a small protobuf wire-format
reader for the few fields a weights file needs.

A caffemodel is one ``NetParameter`` message (field numbers from Caffe's public
``caffe.proto``)::

    NetParameter      name = 1, layers = 2 (V1LayerParameter, old), layer = 100 (LayerParameter)
    LayerParameter    name = 1, type = 2 (string), blobs = 7
    V1LayerParameter  name = 4, type = 5 (enum), blobs = 6
    BlobProto         num, channels, height, width = 1..4 (old shape), data = 5 (floats),
                      shape = 7 (BlobShape: dim = 1, int64), double_data = 8

Everything else in the file (layer parameters, ``diff``...) is skipped unread. Weights
files come from anywhere: every length is checked against the bytes that are actually
there before anything is sliced (``protobuf``), element counts are capped (``guards``), so
are the counts of layers and blobs (an empty one is two bytes of the file and an object of
a hundred), and nothing in the file is executed or interpreted beyond these fields. Every
refusal is a one-line UserError naming the file.
"""

from __future__ import annotations

import array
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from toolbox.errors import UserError
from toolbox.nets.formats.guards import MAX_ARRAY_ELEMENTS, Refused, read_bytes, refusals
from toolbox.nets.formats.protobuf import BYTES, FIXED32, FIXED64, VARINT, fields, varint

MAX_LAYERS = 1 << 14  # bvlc_googlenet has 150
MAX_BLOBS = 8  # per layer; a convolution has 2


def _string(buf: bytes, a: int, b: int) -> str:
    return bytes(buf[a:b]).decode("utf-8", errors="replace")


# -- NetParameter -> {layer name: blobs} ------------------------------------------------------------


@dataclass(frozen=True)
class CaffeNet:
    name: str
    layers: dict[str, list[np.ndarray]]  # layers that carry blobs, in file order
    types: dict[str, str]  # their type: a string (new format) or the V1 enum number as text


def _packed(buf: bytes, a: int, b: int, dtype: str) -> np.ndarray:
    item = np.dtype(dtype)
    if (b - a) % item.itemsize:
        raise Refused("damaged (packed numbers of a partial size)")
    return np.frombuffer(buf, dtype=item, count=(b - a) // item.itemsize, offset=a)


def _blob(buf: bytes, a: int, b: int, where: str) -> np.ndarray:
    legacy = {1: 0, 2: 0, 3: 0, 4: 0}  # num, channels, height, width
    shape: list[int] | None = None
    parts: list[np.ndarray] = []  # packed runs of data / double_data, as views of ``buf``
    singles = array.array("d")  # values written one per field (legal, if unusual)
    count = 0
    for number, wire, x, y in fields(buf, a, b):
        if number in legacy and wire == VARINT:
            if x >= 1 << 31:
                raise Refused(f"{where} has a negative size")
            legacy[number] = x
        elif number == 7 and wire == BYTES:
            shape = []
            for dim_number, dim_wire, p, q in fields(buf, x, y):
                if dim_number == 1 and dim_wire == VARINT:
                    shape.append(p)
                elif dim_number == 1 and dim_wire == BYTES:
                    while p < q:
                        dim, p = varint(buf, p, q)
                        shape.append(dim)
        elif number in (5, 8):  # data (float), double_data (double)
            dtype = "<f4" if number == 5 else "<f8"
            if wire == BYTES:
                parts.append(_packed(buf, x, y, dtype))
                count += parts[-1].size
            elif (wire, number) in ((FIXED32, 5), (FIXED64, 8)):
                singles.append(float(np.frombuffer(buf, dtype, 1, x)[0]))
                count += 1
            else:
                raise Refused(f"{where} has data of the wrong wire type")
            if count > MAX_ARRAY_ELEMENTS:
                raise Refused(f"{where} claims more than {MAX_ARRAY_ELEMENTS} elements")
    if shape is None:
        shape = list(legacy.values()) if any(legacy.values()) else [count]
    if any(n > MAX_ARRAY_ELEMENTS for n in shape) or math.prod(shape) != count:
        raise Refused(f"{where} has shape {tuple(shape)} but {count} values")
    if singles:
        parts.append(np.frombuffer(singles, np.float64))
    values = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    return values.astype(np.float32).reshape(shape)


def _layer(buf: bytes, a: int, b: int, v1: bool) -> tuple[str, str, list[tuple[int, int]]]:
    name_field, type_field, blob_field = (4, 5, 6) if v1 else (1, 2, 7)
    name, kind, blobs = "", "", []
    for number, wire, x, y in fields(buf, a, b):
        if number == name_field and wire == BYTES:
            name = _string(buf, x, y)
        elif number == type_field:
            kind = str(x) if wire == VARINT else _string(buf, x, y)
        elif number == blob_field and wire == BYTES:
            blobs.append((x, y))
            if len(blobs) > MAX_BLOBS:
                raise Refused(f"layer {name[:60] or '?'} has more than {MAX_BLOBS} blobs")
    return name, kind, blobs


def parse_net(buf: bytes) -> CaffeNet:
    """The layers with weights of the NetParameter in ``buf``; raises Refused."""
    name, layers, types, count = "", {}, {}, 0
    for number, wire, a, b in fields(buf):
        if number == 1 and wire == BYTES:
            name = _string(buf, a, b)
        elif number in (2, 100) and wire == BYTES:
            count += 1
            if count > MAX_LAYERS:
                raise Refused(f"it has more than {MAX_LAYERS} layers")
            layer, kind, blobs = _layer(buf, a, b, v1=number == 2)
            if not blobs:
                continue
            if layer in layers:
                raise Refused(f"layer {layer[:60]} has weights twice")
            layers[layer] = [_blob(buf, x, y, f"blob {i} of layer {layer[:60]}") for i, (x, y) in enumerate(blobs)]
            types[layer] = kind
    return CaffeNet(name, layers, types)


def read_caffemodel(path: str | Path, data: bytes | None = None) -> CaffeNet:
    """The layers with weights of a ``.caffemodel`` (``data``: its bytes, when already read)."""
    buf = read_bytes(path, "Caffe weights file") if data is None else data
    with refusals(path, "Caffe weights file"):
        net = parse_net(buf)
    if not net.layers:
        raise UserError(f"refusing Caffe weights file {path}: it holds no layer with weights (not a .caffemodel?)")
    return net
