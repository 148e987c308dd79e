"""A loaded network: its spec, its Keras model, its labels, and views onto its layers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import keras
import numpy as np

from toolbox.errors import UserError
from toolbox.images import fit_square
from toolbox.nets.graph import pre_activation, pre_softmax
from toolbox.nets.spec import ModelSpec

LOGITS = "logits"  # pseudo-layer name: the class scores before softmax


@dataclass(frozen=True, eq=False)
class Network:
    """``model`` maps a normalized image batch of any size (>= ``spec.min_size``) to class
    probabilities. ``normalize`` turns pixels in [0, 255] into that model's input."""

    spec: ModelSpec
    model: keras.Model
    labels: tuple[str, ...]
    origin: str = ""  # where the weights came from, for messages

    @property
    def name(self) -> str:
        return self.spec.name

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
        if name == LOGITS:
            return pre_softmax(self.model)
        self.spec.layer(name)  # a UserError naming the closest layers when unknown
        layer = self.model.get_layer(name)
        return pre_activation(layer) if pre_relu else layer.output

    def submodel(self, layers: Sequence[str], pre_relu: bool = False, with_probs: bool = False) -> keras.Model:
        """A model from the normalized image to ``{layer: activations}`` (plus ``"probs"``),
        cut after the deepest layer it needs."""
        outputs = {name: self.layer_tensor(name, pre_relu) for name in layers}
        if with_probs:
            outputs["probs"] = self.model.output
        return keras.Model(self.model.input, outputs, name=f"{self.name}_view")
