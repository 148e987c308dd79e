"""Read constants and node attributes of a frozen TensorFlow graph (a ``GraphDef`` ``.pb``),
without importing or running the graph.

The file is parsed with TensorFlow's own protobuf classes; nothing in it is executed
(no session, no ``import_graph_def``). Before it is parsed, its nodes and their fields are
counted on the wire (``check_counts``, walking ``protobuf``): a protobuf object costs far more memory than the two
bytes an empty one takes in the file, so millions of them would cost gigabytes. A ``Const``
node's tensor is checked (float32, a sane rank and element count, its data as long as its
shape says) before ``tf.make_ndarray`` turns it into an array, and a list attribute's length
before it is read, so a crafted shape cannot make the reader allocate gigabytes.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from toolbox.errors import UserError
from toolbox.nets.formats.guards import MAX_ARRAY_ELEMENTS, Refused, read_bytes
from toolbox.nets.formats.protobuf import BYTES, fields

DT_FLOAT = 1  # tensorflow/core/framework/types.proto
# A constant may give one value for all of its elements (TensorFlow repeats it): fine for a
# small fill, but a 70-byte file could declare gigabytes that way. Weights are stored whole.
MAX_FILLED = 1 << 16
# inception5h's graph has about 400 nodes of a few fields each
MAX_NODES = 1 << 16
MAX_NODE_FIELDS = 1 << 20  # over all nodes: name, op, inputs, attributes...
MAX_LIST = 64  # a list attribute (strides, ksize: 4 numbers)
MAX_RANK = 8


def check_counts(buf: bytes) -> str | None:
    """Why the GraphDef in ``buf`` has more nodes, or its nodes more fields, than a network's
    graph has, or None: counted on the wire before anything is parsed into objects. Damage
    found on the way is left to the parser, which names it."""
    nodes = node_fields = 0
    try:
        for number, wire, a, b in fields(buf):
            if number != 1 or wire != BYTES:
                continue
            nodes += 1
            if nodes > MAX_NODES:
                return f"it has more than {MAX_NODES} nodes"
            for _field in fields(buf, a, b):
                node_fields += 1
                if node_fields > MAX_NODE_FIELDS:
                    return f"its nodes have more than {MAX_NODE_FIELDS} fields"
    except Refused:
        return None
    return None


class FrozenGraph:
    """The nodes of a parsed GraphDef, by name."""

    def __init__(self, path: Path, nodes: dict[str, Any]) -> None:
        self.path, self.nodes = path, nodes
        self._consumers: dict[str, list[str]] = {}
        for node in nodes.values():
            for tensor in node.input:
                if not tensor.startswith("^"):  # control inputs carry no data
                    self._consumers.setdefault(tensor.split(":")[0], []).append(node.name)

    def op(self, name: str) -> str | None:
        node = self.nodes.get(name)
        return node.op if node is not None else None

    def consumers(self, name: str) -> list[str]:
        """The nodes that read ``name``'s output, looking through Identity nodes."""
        found, todo, seen = [], [name], {name}
        while todo:
            for user in self._consumers.get(todo.pop(), []):
                if self.nodes[user].op != "Identity":
                    found.append(user)
                elif user not in seen:  # a crafted graph may loop
                    seen.add(user)
                    todo.append(user)
        return found

    def attr(self, name: str, key: str, default: Any = None) -> Any:
        """A node attribute as a plain Python value (int, float, str, list of ints), or
        ``default`` when the node does not set it (frozen graphs may strip defaults)."""
        node = self.nodes[name]
        if key not in node.attr:
            return default
        value = node.attr[key]
        kind = value.WhichOneof("value")
        if kind == "list":
            if len(value.list.i) > MAX_LIST:
                raise ValueError(f"node {name} has a {key} of {len(value.list.i)} numbers")
            return list(value.list.i)
        if kind == "s":
            return value.s.decode("utf-8", errors="replace")
        return getattr(value, kind) if kind in ("i", "f", "b") else default

    def constant(self, name: str) -> np.ndarray:
        """The float32 value of Const node ``name``; KeyError when there is none, ValueError
        when it is not a float tensor of the size its shape says."""
        import tensorflow as tf

        node = self.nodes.get(name)
        if node is None or node.op != "Const" or "value" not in node.attr:
            raise KeyError(name)
        tensor = node.attr["value"].tensor
        if tensor.dtype != DT_FLOAT:
            raise ValueError(f"constant {name} is not float32")
        if len(tensor.tensor_shape.dim) > MAX_RANK:
            raise ValueError(f"constant {name} has {len(tensor.tensor_shape.dim)} dimensions")
        shape = [d.size for d in tensor.tensor_shape.dim]
        if any(n < 0 or n > MAX_ARRAY_ELEMENTS for n in shape) or math.prod(shape) > MAX_ARRAY_ELEMENTS:
            raise ValueError(f"constant {name} has shape {shape}")
        count = math.prod(shape)
        if tensor.tensor_content:
            if len(tensor.tensor_content) != 4 * count:
                raise ValueError(f"constant {name} has {len(tensor.tensor_content)} bytes for shape {shape}")
        elif len(tensor.float_val) not in (1, count):
            raise ValueError(f"constant {name} has {len(tensor.float_val)} values for shape {shape}")
        elif len(tensor.float_val) < count and count > MAX_FILLED:  # one value repeated: no weights look so
            raise ValueError(f"constant {name} declares {count:,} values from one (shape {shape})")
        return np.array(tf.make_ndarray(tensor), dtype=np.float32)


def read_frozen_graph(path: str | Path, data: bytes | None = None) -> FrozenGraph:
    """Parse a frozen GraphDef file (``data``: its bytes, when already read)."""
    from google.protobuf.message import DecodeError
    from tensorflow.core.framework import graph_pb2

    buf = read_bytes(path, "TensorFlow graph") if data is None else data
    too_many = check_counts(buf)
    if too_many:
        raise UserError(f"refusing TensorFlow graph {path}: {too_many}")
    graph = graph_pb2.GraphDef()
    try:
        graph.ParseFromString(buf)
    except (DecodeError, ValueError, RuntimeError) as e:
        reason = " ".join(str(e).split())[:120] or type(e).__name__
        raise UserError(f"refusing TensorFlow graph {path}: not a complete GraphDef (truncated or damaged: "
                        f"{reason})") from None
    nodes = {}
    for node in graph.node:
        if node.name in nodes:
            raise UserError(f"refusing TensorFlow graph {path}: node {node.name[:60]} appears twice")
        nodes[node.name] = node
    return FrozenGraph(Path(path), nodes)
