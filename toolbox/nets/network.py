"""A loaded network: its spec, its Keras model, its labels, and views onto its layers.

The Network owns every derived model (views onto chosen layers), layer shape and receptive
field, and builds each once: callers ask for what they need instead of cutting Keras
models of their own, so the graph walks and model builds happen in one place and are
shared by the probe, the engine, the jobs and the window.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

import keras
import numpy as np

from toolbox.errors import UserError
from toolbox.images import fit_square
from toolbox.nets.graph import is_relu, non_negative, pre_activation, pre_softmax, receptive_field
from toolbox.nets.spec import ModelSpec

if TYPE_CHECKING:
    from toolbox.nets.fields import Field

LOGITS = "logits"  # pseudo-layer name: the class scores before softmax
PROBS = "probs"  # the extra output of a view made ``with_probs``
PRE_RELU = ":pre_relu"  # suffix of a ``rectified_view`` layer name: its values before the ReLU


@dataclass(frozen=True, eq=False)
class Network:
    """``model`` maps a normalized image batch of any size (>= ``spec.min_size``) to class
    probabilities. ``normalize`` turns pixels in [0, 255] into that model's input."""

    spec: ModelSpec
    model: keras.Model
    labels: tuple[str, ...]
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

    def normalize(self, pixels):
        return (pixels - self.spec.mean) / self.spec.std

    def fit_input(self, image: np.ndarray, mode: str = "crop") -> np.ndarray:
        """The network's square input size view of an RGB image: centre-cropped or letterboxed."""
        return fit_square(image, self.spec.input_size, mode)

    def check_unit(self, layer: str, unit: int) -> None:
        channels = self.spec.layer(layer).channels
        if not 0 <= unit < channels:
            raise UserError(f"unit {unit} is out of range for layer {layer} (0..{channels - 1})")

    def layer_tensor(self, name: str, pre_relu: bool = False):
        """The KerasTensor of a spec layer (or LOGITS) in ``model``'s graph."""
        if name == LOGITS:
            return pre_softmax(self.model)
        self.spec.layer(name)  # a UserError naming the closest layers when unknown
        layer = self.model.get_layer(name)
        return pre_activation(layer) if pre_relu else layer.output

    def view(self, layers: Sequence[str], pre_relu: bool = False, with_probs: bool = False) -> keras.Model:
        """A model from the NORMALIZED image batch to ``{layer: activations}`` (plus ``PROBS``),
        cut after the deepest layer it needs; built once per set of layers and options.
        ``pre_relu`` reads the values before each layer's ReLU (see ``graph``)."""
        names = tuple(sorted(set(layers)))
        for name in names:
            if name != LOGITS:
                self.spec.layer(name)  # unknown names fail before anything is built or cached

        def make() -> keras.Model:
            outputs = {name: self.layer_tensor(name, pre_relu) for name in names}
            if with_probs:
                outputs[PROBS] = self.model.output
            return keras.Model(self.model.input, outputs, name=f"{self.name}_view")

        return self._once(("view", names, pre_relu, with_probs), make)

    def rectified_view(self, layers: Sequence[str],
                       rectifier: Callable[[keras.layers.Layer], keras.layers.Layer]) -> keras.Model:
        """``view(layers)`` of a copy of the model in which every ReLU / ReLU6 layer is
        ``rectifier(layer)``: a layer with the same forward values whose backward pass differs
        (the attribution rules). A name ending in PRE_RELU reads that layer before its ReLU
        (as ``pre_relu`` does in ``view``; the rectifier's layers must count as ReLUs for
        ``graph``), so one view can hold both. The other layers are copies holding the same
        weights: a separate graph, because reusing the model's own layers in a second graph
        would give them extra inbound nodes. Built once per rectifier and per set of layers."""
        names = tuple(sorted(set(layers)))
        for name in names:
            if name != LOGITS:
                self.spec.layer(name.removesuffix(PRE_RELU))

        def copy() -> keras.Model:
            clone = keras.models.clone_model(self.model, clone_function=lambda layer: rectifier(layer) if is_relu(
                layer) else layer.__class__.from_config(layer.get_config()))
            clone.set_weights(self.model.get_weights())
            return clone

        def tensor(clone: keras.Model, name: str):
            if name == LOGITS:
                return pre_softmax(clone)
            if name.endswith(PRE_RELU):
                return pre_activation(clone.get_layer(name[:-len(PRE_RELU)]))
            return clone.get_layer(name).output

        def make() -> keras.Model:
            clone = self._once(("rectified", rectifier), copy)
            outputs = {name: tensor(clone, name) for name in names}
            return keras.Model(clone.input, outputs, name=f"{self.name}_rectified_view")

        return self._once(("rectified_view", rectifier, names), make)

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
            maps = [layer.output for layer in self.model.layers
                    if not isinstance(layer, keras.layers.InputLayer) and len(layer._inbound_nodes) == 1
                    and not isinstance(layer.output, (list, tuple)) and len(layer.output.shape) == 4]
            every = keras.Model(self.model.input, maps)
            out = every.compute_output_spec(keras.KerasTensor((1, size, size, 3)))
            return tuple(tuple(int(d) for d in t.shape[1:]) for t in out)

        return self._once(("all_shapes", size), make)

    def non_negative(self, layer: str) -> bool:
        """Whether ``layer``'s values can never be negative (a ReLU output); signed layers are
        drawn centred on zero and have a "lowest" side."""
        self.spec.layer(layer)
        return self._once(("non_negative", layer), lambda: non_negative(self.model.get_layer(layer)))

    def receptive_field(self, layer: str) -> tuple[int, int]:
        """(size, stride) in input pixels of one unit of ``layer``."""
        self.spec.layer(layer)
        return self._once(("receptive_field", layer), lambda: receptive_field(self.model, layer))

    def unit_field(self, layer: str) -> Field:
        """Where in the input a unit of ``layer`` looks (size, stride and offset), measured
        once (``fields.unit_field``)."""
        from toolbox.nets.fields import unit_field

        self.spec.layer(layer)
        return self._once(("unit_field", layer), lambda: unit_field(self, layer))
