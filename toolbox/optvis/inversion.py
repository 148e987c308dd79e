"""Feature inversion (Mahendran & Vedaldi 2015, "Understanding deep image representations by
inverting them"): an image whose features at a layer match a photo's. What the image keeps
is what the layer still knows about the photo; what it loses the layer has thrown away.

Per layer: maximize minus the normalized feature distance ``||f(x) - f0||^2 / ||f0||^2`` plus
the usual image prior (total variation). Most steps run in Lucid's Fourier parameterization
with decorrelated colour, which finds the photo's structure without high-frequency noise; the
last ``refine`` share of them continues in plain pixels from that image with small Adam
steps, which the Fourier parameterization (squashed by a sigmoid) cannot make: it brings the
shallow layers' error from about 0.1-0.16 down to 0.02 and leaves deep inversions' look as it
was. Features are the layer's values as the spec offers them. The relative error
``||f(x) - f0|| / ||f0||`` is measured on the 8-bit result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from toolbox.nets import Network
from toolbox.optvis import params, transforms
from toolbox.optvis.objectives import feature_match, total_variation
from toolbox.optvis.presets import Preset
from toolbox.optvis.render import Ascent
from toolbox.optvis.updates import Adam
from toolbox.settings import InvertSettings
from toolbox.tfstart import expected_retracing

_DEFAULTS = InvertSettings()  # the one place for default numbers is toolbox.settings


@dataclass(frozen=True)
class Inversion:
    layer: str
    image: np.ndarray  # (S, S, 3) uint8
    relative_error: float  # ||f(image) - f(photo)|| / ||f(photo)|| at the layer


def relative_error(network: Network, layer: str, image: np.ndarray, target: np.ndarray) -> float:
    got = network.activations(np.asarray(image, np.float32)[None], [layer])[layer][0]
    return float(np.linalg.norm(got - target) / max(np.linalg.norm(target), 1e-12))


def invert(network: Network, photo: np.ndarray, layers: Sequence[str], steps: int = _DEFAULTS.steps,
           tv: float = _DEFAULTS.tv,
           lr: float = 0.05, refine: float = 0.25, refine_lr: float = 0.005, seed: int = 0,
           on_step: Callable[[], None] | None = None) -> list[Inversion]:
    """One inversion per layer of ``photo`` (S, S, 3) uint8, the network's square input view.
    ``tv``: weight of the total-variation prior (mean absolute neighbour difference, images in
    [0, 1]). No random transforms: the features must match the photo's in place."""
    size = photo.shape[0]
    fine_steps = int(round(steps * refine))
    coarse = Preset("invert", params.fourier(), transforms.unchanged, Adam(lr=lr))
    fine = Preset("invert-pixels", params.pixels(), transforms.unchanged, Adam(lr=refine_lr))
    tick = (lambda *_: on_step()) if on_step else None
    targets = network.activations(np.asarray(photo, np.float32)[None], list(layers))
    out = []
    with expected_retracing():
        for layer in layers:
            target = targets[layer][0]
            objective = feature_match(layer, tf.constant(target)) + total_variation(-tv)
            images = Ascent(network, objective, coarse, pre_relu=False).run(
                [0], size, steps - fine_steps, seed=seed, on_step=tick).images
            if fine_steps:
                images = Ascent(network, objective, fine, pre_relu=False).run(
                    [0], size, fine_steps, seed=seed, on_step=tick, init=params.pixel_values(images)).images
            image = images[0]
            out.append(Inversion(layer, image, relative_error(network, layer, image, target)))
    return out


