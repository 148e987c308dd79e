"""One graph of a Keras model, nested models included: every layer's output reachable from
the model's (outer) input.

The tensors inside a nested functional or Sequential model belong to that model's own graph,
which is not connected to the outer model's input: a view onto an inner layer built from
them fails ("not connected to inputs"). ``rebuild`` makes one graph instead: from a new
input it calls every layer of the outer model and, in place of each nested model, every
layer inside it, on the new tensors. The layers are the model's own objects, so the weights
are shared (nothing is copied, a 300-layer model rebuilds in a fraction of a second); a
``replace`` function can substitute some of them (the attribution rules' ReLUs).

Names: a layer inside a nested model is named ``<model>.<layer>`` (``mobilenetv2_1.00_224.
block_13_expand_relu``; deeper nesting adds more parts); ``qualify_names`` renames the inner
layer objects so once, because a Keras graph needs unique names. Layer names go into file
names, so the separator is a dot, never a slash.

The new input takes images of any size with three channels; a model that needs one channel
gets the luminance, and a model whose head depends on its input's fixed size (a Flatten or
Reshape) gets every image resized to that size inside the graph (``Graph.resized_to``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import keras
import numpy as np
from keras import tree

from toolbox.errors import UserError
from toolbox.names import safe_name

SEPARATOR = "."
# what turns a feature map into a vector whose length depends on the map's size
_SIZE_BOUND = ("Flatten", "Reshape")


@dataclass(frozen=True)
class Record:
    """One call in the graph: ``op`` applied to ``inputs`` gave ``output``."""

    name: str
    op: Any  # a keras Operation (usually a Layer)
    inputs: tuple[Any, ...]  # KerasTensors
    output: Any  # a KerasTensor, or a list of them for ops with several outputs


@dataclass(frozen=True, eq=False)
class Graph:
    """``input`` (normalized RGB images of any size) -> ``outputs``; ``records`` every call in
    execution order (nested models' layers in place of the model), ``tensors`` each named
    layer's (first) output."""

    input: Any
    outputs: tuple[Any, ...]
    records: tuple[Record, ...]
    resized_to: tuple[int, int] | None = None  # the fixed input size images are resized to inside
    entry: Any = None  # the tensor the model itself receives (after the gray or resize stage); None: input
    tensors: dict[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        tensors: dict[str, Any] = {}
        for r in self.records:
            if not isinstance(r.output, (list, tuple)):
                tensors.setdefault(r.name, r.output)
        object.__setattr__(self, "tensors", tensors)
        if self.entry is None:
            object.__setattr__(self, "entry", self.input)

    @property
    def class_output(self):
        """The output read as class scores (or features): the first vector-valued one, else the first."""
        return next((t for t in self.outputs if len(t.shape) == 2), self.outputs[0])


class _WithoutActivation:
    """A stand-in for a layer, read by its class's ``call``: the layer's every attribute except
    its activation (none)."""

    activation = None

    def __init__(self, layer) -> None:
        object.__setattr__(self, "_layer", layer)

    def __getattr__(self, name: str):
        return getattr(self._layer, name)


class LinearPart(keras.layers.Layer):
    """What a convolution or Dense with a built-in ReLU computes before that ReLU, with the
    layer's own weights (shared, not copied). ``rebuild`` calls it and then a separate ReLU, so
    the values before the ReLU can be read and the ReLU's gradient replaced, as for a model
    built with ReLU layers of their own."""

    def __init__(self, layer, **kwargs) -> None:
        super().__init__(name=f"{safe_name(layer.name)}_linear", dtype=layer.dtype_policy, **kwargs)
        self._inner = [layer]  # in a list: not tracked, its weights stay the layer's own
        for shape in ("kernel_size", "strides", "dilation_rate"):  # what receptive fields are made of
            if hasattr(layer, shape):
                setattr(self, shape, tuple(getattr(layer, shape)))

    def call(self, inputs):
        layer = self._inner[0]
        return type(layer).call(_WithoutActivation(layer), inputs)


_SPLITTABLE = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D, keras.layers.Conv2DTranspose,
               keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D, keras.layers.Dense)


def fused_relu(op) -> bool:
    """Whether ``op`` is a convolution or Dense with a ReLU (or ReLU6) built in."""
    return isinstance(op, _SPLITTABLE) and getattr(op.activation, "__name__", "") in ("relu", "relu6")


def producer(tensor) -> tuple[Any, Any]:
    """(operation, node) that made ``tensor`` in whichever graph it belongs to; (None, None) at an input."""
    op, index, _ = tensor._keras_history
    if op is None:
        return None, None
    node = op._inbound_nodes[index]
    return (None, None) if node.is_input else (op, node)


def is_nested(op) -> bool:
    return isinstance(op, keras.Model)


def functional(model):
    """The functional graph that runs ``model``: itself, or a Sequential's inner one."""
    if isinstance(model, keras.Sequential):
        if model._functional is None:
            raise UserError(f"the Sequential model {model.name} was saved without an input shape; "
                            f"rebuild it with keras.Input(shape) as its first layer")
        return model._functional
    if not hasattr(model, "_nodes_by_depth"):
        raise UserError(f"{model.name} is a subclassed Keras model ({type(model).__name__}); deepvis reads "
                        f"functional and Sequential models")
    return model


def nodes(function) -> list:
    """The nodes of a functional graph in execution order (deepest first), inputs left out."""
    found = []
    for depth in sorted(function._nodes_by_depth, reverse=True):
        found.extend(n for n in function._nodes_by_depth[depth] if n.operation is not None and not n.is_input)
    return found


def has_nested(model) -> bool:
    return any(is_nested(n.operation) for n in nodes(functional(model)))


def qualify_names(model) -> dict[str, str]:
    """Rename the layers inside nested models ``<model>.<layer>``, and any layer whose name
    cannot be a TensorFlow name scope (``odd<name>``, 300 characters) by ``names.safe_name``,
    once per model object; return {name given: name now} for the inner names that are
    unambiguous and the renamed ones, so a user may still ask for a layer by its own name."""
    done = getattr(model, "_deepvis_aliases", None)
    if done is not None:
        return dict(done)
    plain: dict[str, list[str]] = {}
    taken = {n.operation.name for n in nodes(functional(model)) if not is_nested(n.operation)}
    seen: set[int] = set()

    def walk(function, prefix: str) -> None:
        for node in nodes(function):
            op = node.operation
            if is_nested(op):
                walk(functional(op), f"{prefix}{op.name}{SEPARATOR}")
            elif id(op) not in seen:
                seen.add(id(op))
                name = new = safe_name(f"{prefix}{op.name}")
                if new == op.name:
                    continue
                n = 1
                while new in taken:  # a top-level layer already called that (a dot in its own name)
                    n += 1
                    new = f"{name}_{n}"
                plain.setdefault(op.name, []).append(new)
                taken.discard(op.name)
                op.name = new
                taken.add(new)

    walk(functional(model), "")
    aliases = {short: names[0] for short, names in plain.items() if len(names) == 1 and short not in taken}
    model._deepvis_aliases = aliases
    return dict(aliases)


def input_stage(model) -> tuple[int, tuple[int, int] | None]:
    """(channels, fixed size to resize to or None) of ``model``'s one image input."""
    inputs = functional(model).inputs
    if len(inputs) != 1:
        raise UserError(f"{model.name} takes {len(inputs)} inputs; deepvis shows networks of one image input")
    shape = tuple(inputs[0].shape)
    if len(shape) != 4:
        raise UserError(f"{model.name} takes inputs of shape {shape[1:]}; deepvis shows networks of images "
                        f"(height, width, channels)")
    channels = shape[3]
    if channels not in (1, 3):
        raise UserError(f"{model.name} takes images of {channels} channels; deepvis shows RGB (3) or gray (1)")
    fixed = shape[1] is not None and shape[2] is not None
    return channels, (int(shape[1]), int(shape[2])) if fixed and size_bound(model) else None


def size_bound(model) -> bool:
    """Whether some layer's result depends on the input's exact size (a Flatten, a Reshape)."""
    def walk(function) -> bool:
        return any(walk(functional(n.operation)) if is_nested(n.operation)
                   else type(n.operation).__name__ in _SIZE_BOUND for n in nodes(function))

    return walk(functional(model))


def rebuild(model, replace: Callable[[Any], Any] | None = None) -> Graph:
    """``model``'s graph called afresh from a new input of any size, nested models' layers
    called one by one; ``replace(op)`` (when given) is called instead of each layer, once per
    layer object. A convolution or Dense with a built-in ReLU is called as its ``LinearPart``
    and a ReLU Activation layer of the same name. ``qualify_names`` first when names should be
    unique (it is idempotent)."""
    channels, resized_to = input_stage(model)
    pixels = keras.Input((None, None, 3), name="deepvis_input")
    x = pixels
    if channels == 1:  # the luminance of the RGB image (ITU-R BT.601)
        # a product, not ``x * weights``: Keras marks that KerasTensor sparse, and every layer after it fails
        x = keras.ops.matmul(x, np.array([[0.299], [0.587], [0.114]], np.float32))
    if resized_to is not None:
        x = keras.ops.image.resize(x, resized_to, interpolation="bilinear")
    records: list[Record] = []
    replaced: dict[int, Any] = {}

    def call(op):
        if replace is None:
            return op
        if id(op) not in replaced:
            replaced[id(op)] = replace(op)
        return replaced[id(op)]

    def run(function, inputs: list) -> list:
        values = {id(t): v for t, v in zip(function.inputs, inputs)}
        for node in nodes(function):
            if any(id(t) not in values for t in node.input_tensors):
                continue  # a branch that does not lead from these inputs
            args, kwargs = node.arguments.fill_in(values)
            op = node.operation
            if is_nested(op):
                inner = args[0] if args else kwargs.get("inputs")
                out = run(functional(op), tree.flatten(inner))
                out = out[0] if len(out) == 1 else out
            elif fused_relu(op):
                linear = LinearPart(op)(*args)
                out = call(keras.layers.Activation(op.activation, name=op.name, dtype=op.dtype_policy))(linear)
                records.append(Record(op.name, op, tuple(values[id(t)] for t in node.input_tensors), out))
            else:
                out = call(op)(*args, **kwargs)
                records.append(Record(op.name, op, tuple(values[id(t)] for t in node.input_tensors), out))
            for t, v in zip(node.outputs, tree.flatten(out)):
                values[id(t)] = v
        return [values[id(t)] for t in function.outputs]

    outputs = run(functional(model), [x])
    return Graph(pixels, tuple(outputs), tuple(records), resized_to, x)


def own_graph(model) -> Graph:
    """The graph ``model`` was built with, as it is (a plain functional model of RGB images of any size)."""
    function = functional(model)
    records = []
    for node in nodes(function):
        out = node.outputs[0] if len(node.outputs) == 1 else list(node.outputs)
        records.append(Record(node.operation.name, node.operation, tuple(node.input_tensors), out))
    return Graph(function.inputs[0], tuple(function.outputs), tuple(records))


def needs_rebuild(model) -> bool:
    """Whether ``model``'s own graph cannot serve as it is: nested models, a Sequential, or an
    input other than RGB images of any size."""
    shape = tuple(functional(model).inputs[0].shape) if len(functional(model).inputs) == 1 else ()
    return (isinstance(model, keras.Sequential) or has_nested(model) or len(shape) != 4
            or shape[1:] != (None, None, 3))


def graph_of(model) -> Graph:
    """The graph a Network reads ``model`` through: its own when that will do, else rebuilt."""
    qualify_names(model)  # names a graph can run with, before either graph is read
    if needs_rebuild(model):
        return rebuild(model)
    return own_graph(model)
