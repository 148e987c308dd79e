"""A loaded network: its spec, its Keras model, its labels, and views onto its layers.

The Network owns every derived model (views onto chosen layers), layer shape and receptive
field, and builds each once: callers ask for what they need instead of cutting Keras
models of their own, so the graph walks and model builds happen in one place and are
shared by the probe, the engine, the jobs and the window.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import keras
import numpy as np

from toolbox.errors import UserError
from toolbox.images import fit_square
from toolbox.nets.fields import Field, unit_field
from toolbox.nets.graph import ends_in_relu, is_relu, logits_of, non_negative, pre_activation, receptive_field
from toolbox.nets.keras_graph import Graph, graph_of, rebuild
from toolbox.nets.spec import ModelSpec

LOGITS = "logits"  # pseudo-layer name: the class scores before softmax
PROBS = "probs"  # the extra output of a view made ``with_probs``
PRE_RELU = ":pre_relu"  # suffix of a ``rectified_view`` layer name: its values before the ReLU


def relu_side(ends_in_relu: bool, pre_relu: bool) -> str:
    """How every pane, command and page says which of a unit's values a number is: " (before
    ReLU)" or " (after ReLU)" for a layer that ends in a ReLU, "" for one that does not (an add
    layer: its values are the same on both sides). E.g. f"mean {value:.3g}{relu_side(...)}"
    after "mean" (over the unit's positions), "max" (at its strongest) or "sum"."""
    return f" ({'before' if pre_relu else 'after'} ReLU)" if ends_in_relu else ""


@dataclass(frozen=True, eq=False)
class Network:
    """``model`` maps a normalized image batch of any size (>= ``spec.min_size``) to what
    ``spec.outputs`` says: class probabilities, logits or features. ``normalize`` turns pixels
    in [0, 255] into that model's input. Everything is read through ``graph`` (the model's own
    graph, or for nested, Sequential and fixed-size models one rebuilt from a free-size input:
    ``keras_graph``), given by the loader or made on first use."""

    spec: ModelSpec
    model: keras.Model
    labels: tuple[str, ...]
    given_graph: Graph | None = field(default=None, repr=False, compare=False)
    # what the methods below derived from the model, built once (the model never changes)
    _derived: dict[tuple, Any] = field(default_factory=dict, init=False, repr=False, compare=False)
    _lock: Any = field(default_factory=threading.RLock, init=False, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.spec.name

    def _once(self, key: tuple, make):
        with self._lock:  # the window's worker and the main thread may both ask
            if key not in self._derived:
                self._derived[key] = make()
            return self._derived[key]

    @property
    def graph(self) -> Graph:
        return self.given_graph or self._once(("graph",), lambda: graph_of(self.model))

    @property
    def fixed_input(self) -> bool:
        """Whether the network sees every image resized to ``spec.input_size`` (its head needs
        that size); then any size may be fed, but only that one shows it at full detail."""
        return self.graph.resized_to is not None

    def normalize(self, pixels):
        spec = self.spec
        if spec.bgr:
            pixels = pixels[..., ::-1]
        if isinstance(spec.mean, tuple) or isinstance(spec.std, tuple):
            return (pixels - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
        return (pixels - spec.mean) / spec.std

    def fit_input(self, image: np.ndarray, mode: str = "crop") -> np.ndarray:
        """The network's square input size view of an RGB image: centre-cropped or letterboxed."""
        return fit_square(image, self.spec.input_size, mode)

    def check_unit(self, layer: str, unit: int) -> None:
        channels = self.spec.layer(layer).channels
        if not 0 <= unit < channels:
            raise UserError(f"unit {unit} is out of range for layer {layer} (0..{channels - 1})")

    def _class_tensor(self, graph: Graph, which: str):
        """LOGITS or PROBS of ``graph``; probabilities of a logits model are its softmax, and
        logits of a probabilities model the scores before its softmax (their log when the
        softmax cannot be found: equal up to a constant per image)."""
        self.spec.require_classifier("reading class scores")
        out = graph.class_output
        if self.spec.outputs == "logits":
            return out if which == LOGITS else keras.ops.softmax(out, axis=-1)
        if which == PROBS:
            return out
        logits = logits_of(out)
        return logits if logits is not None else keras.ops.log(keras.ops.maximum(out, 1e-12))

    def _tensor(self, graph: Graph, name: str, pre_relu: bool = False):
        if name == LOGITS:
            return self._class_tensor(graph, LOGITS)
        tensor = graph.tensors.get(name)
        if tensor is None:
            raise UserError(f"{self.name}: layer {name} is not in the model's graph")
        return pre_activation(tensor) if pre_relu else tensor

    def _ours(self, name: str) -> str:
        """The graph's name of a spec layer (or LOGITS) known by ``name`` (an alias, say); a
        UserError naming the closest layers when there is none."""
        return name if name == LOGITS else self.spec.layer(name).name

    def layer_tensor(self, name: str, pre_relu: bool = False):
        """The KerasTensor of a spec layer (or LOGITS) in the network's graph."""
        return self._tensor(self.graph, self._ours(name), pre_relu)

    def view(self, layers: Sequence[str], pre_relu: bool = False, with_probs: bool = False) -> keras.Model:
        """A model from the NORMALIZED image batch to ``{layer: activations}`` (plus ``PROBS``),
        cut after the deepest layer it needs; built once per set of layers and options.
        ``pre_relu`` reads the values before each layer's ReLU (see ``graph``)."""
        names = tuple(sorted(set(layers)))
        ours = {name: self._ours(name) for name in names}  # unknown names fail before anything is built

        def make() -> keras.Model:
            graph = self.graph
            outputs = {name: self._tensor(graph, ours[name], pre_relu) for name in names}
            if with_probs:
                outputs[PROBS] = self._class_tensor(graph, PROBS)
            return keras.Model(graph.input, outputs, name=f"{self.name}_view")

        return self._once(("view", names, pre_relu, with_probs), make)

    def rectified_view(self, layers: Sequence[str],
                       rectifier: Callable[[keras.layers.Layer], keras.layers.Layer]) -> keras.Model:
        """``view(layers)`` of the network's graph called again with every ReLU / ReLU6 layer
        replaced by ``rectifier(layer)``: a layer with the same forward values whose backward
        pass differs (the attribution rules). A name ending in PRE_RELU reads that layer before
        its ReLU (as ``pre_relu`` does in ``view``; the rectifier's layers must count as ReLUs
        for ``graph``), so one view can hold both. The other layers are the network's own
        (weights shared, nested models included: ``keras_graph.rebuild``); the walks of
        ``graph`` follow tensors, so the extra calls do not confuse them. Built once per
        rectifier and per set of layers."""
        names = tuple(sorted(set(layers)))
        ours = {name: self._ours(name.removesuffix(PRE_RELU)) for name in names}

        def tensor(graph: Graph, name: str):
            return self._tensor(graph, ours[name], pre_relu=name.endswith(PRE_RELU))

        def make() -> keras.Model:
            self.graph  # noqa: B018 (names made unique first: qualify_names)
            graph = self._once(("rectified", rectifier), lambda: rebuild(
                self.model, replace=lambda layer: rectifier(layer) if is_relu(layer) else layer))
            outputs = {name: tensor(graph, name) for name in names}
            return keras.Model(graph.input, outputs, name=f"{self.name}_rectified_view")

        return self._once(("rectified_view", rectifier, names), make)

    def masked_view(self, masked: str, layers: Sequence[str]) -> keras.Model:
        """``view(layers, pre_relu=True)`` of the network's graph called again with its layer
        ``masked`` multiplied, channel by channel, by the mask of ``ablation.channel_mask``
        (n, C): switching channels off to see what they did (the check of ``optvis.circuits``).
        Weights shared, as in ``rectified_view``. Built once per layer and set of layers."""
        from toolbox.nets.ablation import Masked

        names = tuple(sorted(set(layers)))
        ours = {name: self._ours(name) for name in names}
        masked = self._ours(masked)

        def make() -> keras.Model:
            self.graph  # noqa: B018 (names made unique first: qualify_names)
            graph = self._once(("masked", masked), lambda: rebuild(
                self.model, replace=lambda layer: Masked(layer) if layer.name == masked else layer))
            outputs = {name: self._tensor(graph, ours[name], pre_relu=True) for name in names}
            return keras.Model(graph.input, outputs, name=f"{self.name}_masked_view")

        return self._once(("masked_view", masked, names), make)

    def activations(self, pixels_batch: np.ndarray, layers: Sequence[str],
                    pre_relu: bool = False) -> dict[str, np.ndarray]:
        """{layer: (n, h, w, c)} for an (n, h, w, 3) batch of pixels in [0, 255], computed
        eagerly: for one-off use (a guide image); repeated calls belong in a ``Probe``."""
        batch = self.normalize(np.asarray(pixels_batch, np.float32))
        out = self.view(layers, pre_relu)(batch, training=False)
        return {name: np.asarray(value) for name, value in out.items()}

    def layer_shapes(self, size: int | None = None) -> dict[str, tuple[int, int, int]]:
        """{layer: (h, w, c)} of every spec layer for a ``size`` x ``size`` input (default
        ``spec.input_size``), worked out symbolically: nothing is run."""
        size = self.spec.input_size if size is None else int(size)
        if size < self.spec.min_size:
            raise UserError(f"input side {size} is below the smallest {self.name} accepts ({self.spec.min_size})")

        def make() -> dict[str, tuple[int, int, int]]:
            out = self.view(self.spec.layer_names).compute_output_spec(keras.KerasTensor((1, size, size, 3)))
            return {name: tuple(int(d) for d in out[name].shape[1:]) for name in self.spec.layer_names}

        return dict(self._once(("shapes", size), make))

    def all_layer_shapes(self, size: int | None = None) -> tuple[tuple[int, int, int], ...]:
        """(h, w, c) of every feature map in the model (not only the spec's layers) for a
        ``size`` x ``size`` input, worked out symbolically: what memory estimates add up."""
        size = self.spec.input_size if size is None else int(size)

        def make() -> tuple[tuple[int, int, int], ...]:
            graph = self.graph
            maps = [r.output for r in graph.records
                    if not isinstance(r.output, (list, tuple)) and len(r.output.shape) == 4]
            every = keras.Model(graph.input, maps)
            out = every.compute_output_spec(keras.KerasTensor((1, size, size, 3)))
            return tuple(tuple(int(d) for d in t.shape[1:]) for t in out)

        return self._once(("all_shapes", size), make)

    def non_negative(self, layer: str) -> bool:
        """Whether ``layer``'s values can never be negative (a ReLU output); signed layers are
        drawn centred on zero and have a "lowest" side."""
        name = self.spec.layer(layer).name
        return self._once(("non_negative", name), lambda: non_negative(self._tensor(self.graph, name)))

    def ends_in_relu(self, layer: str) -> bool:
        """Whether ``layer``'s values before its ReLU (``pre_relu``) differ from its output."""
        name = self.spec.layer(layer).name
        return self._once(("ends_in_relu", name), lambda: ends_in_relu(self._tensor(self.graph, name)))

    def relu_side(self, layer: str, pre_relu: bool) -> str:
        """Which of a unit's values a number is, said the same way everywhere (``relu_side``)."""
        return relu_side(self.ends_in_relu(layer), pre_relu)

    def receptive_field(self, layer: str) -> tuple[int, int]:
        """(size, stride) in input pixels of one unit of ``layer``."""
        name = self.spec.layer(layer).name
        return self._once(("receptive_field", name), lambda: receptive_field(self._tensor(self.graph, name)))

    def unit_field(self, layer: str) -> Field:
        """Where in the input a unit of ``layer`` looks (size, stride and offset), measured
        once (``fields.unit_field``)."""
        name = self.spec.layer(layer).name
        return self._once(("unit_field", name), lambda: unit_field(self, name))
