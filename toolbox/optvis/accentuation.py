"""Feature accentuation (Hamblin, Fel et al. 2024): what a unit sees in *this* image.

The ascent starts at the photo itself, in the Fourier parameterization (``fourier_values``
inverts its image transform), and raises the unit's channel mean while a penalty on the
distance to the photo keeps the picture close to it:

    objective = unit's mean / scale - weight * mean squared pixel difference / 0.01

with the distance in pixel space (pixels in [0, 1], before the robustness transforms),
scaled so that ``weight`` is the cost of an image 20 dB PSNR from the photo, and ``scale``
the root mean square of the layer's activations on the photo (so one weight suits units
of any magnitude). The transforms are the lucid preset's, so the changes are ones the
network reads robustly, not adversarial noise.

An :class:`Accentuator` compiles once per layer; the photo and the scale are variables,
so new photos, frames and units never retrace. ``start`` returns an :class:`Accentuation`
to advance a few steps at a time and ``snapshot`` as it goes (a worker refines it between
frames); ``frames`` yields the refined image every few steps; ``accentuate`` runs it out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import tensorflow as tf

from toolbox.images import fit_square
from toolbox.nets import Network
from toolbox.optvis import params, transforms
from toolbox.optvis.objectives import Objective, channel, distance_to
from toolbox.optvis.presets import Preset
from toolbox.optvis.render import Ascent, AscentRun
from toolbox.optvis.updates import Adam


@dataclass(frozen=True)
class Accentuated:
    image: np.ndarray  # (size, size, 3) uint8
    before: float  # the unit's channel mean on the photo (as fitted to the size)
    after: float  # the same on the accentuated image
    psnr: float  # of the accentuated image against the photo, dB
    steps: int  # taken so far


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 images, dB (infinite when they are equal)."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


class Accentuation:
    """One photo's accentuation under way (``Accentuator.start``)."""

    def __init__(self, accentuator: "Accentuator", run: AscentRun, unit: int, fitted: np.ndarray,
                 before: float) -> None:
        self._accentuator, self._run, self.unit, self.fitted, self.before = accentuator, run, unit, fitted, before

    @property
    def steps(self) -> int:
        return self._run.steps

    @property
    def taken(self) -> int:
        return self._run.taken

    @property
    def done(self) -> bool:
        return self._run.done

    def advance(self, n: int) -> None:
        """Up to ``n`` more steps in one compiled call."""
        self._run.advance(n)

    def image(self) -> np.ndarray:
        """The image as it is now, (size, size, 3) uint8."""
        return self._run.images()[0]

    def snapshot(self) -> Accentuated:
        """The image as it is now, with the unit on the photo and on it, and the PSNR to the photo."""
        image = self.image()
        return Accentuated(image, self.before, self._accentuator.unit_value(image, self.unit),
                           psnr(image, self.fitted), self.taken)


class Accentuator:
    """Accentuates units of one ``layer`` of ``network`` in photos of side ``size``."""

    def __init__(self, network: Network, layer: str, size: int, weight: float = 1.0, lr: float = 0.01,
                 fit: str = "crop") -> None:
        """``fit``: how a photo becomes the square it works on (``fit_square``: crop or letterbox)."""
        self.network, self.layer, self.size, self.fit_mode = network, layer, size, fit
        self._photo = tf.Variable(tf.zeros([1, size, size, 3]), shape=tf.TensorShape([None, None, None, 3]),
                                  trainable=False)
        self._inverse_scale = tf.Variable(1.0, trainable=False)
        unit = channel(layer)
        scaled = Objective(lambda c: unit(c) * self._inverse_scale, unit.layers, f"{unit.name} / scale")
        objective = scaled + distance_to(self._photo, weight / 0.01)
        preset = Preset("accentuate", params.fourier(), transforms.standard_affine(), Adam(lr=lr))
        self._ascent = Ascent(network, objective, preset)
        self._view = network.view([layer], pre_relu=True)

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
        def layer_values(pixels):
            return self._view(network.normalize(pixels), training=False)[layer]

        self._layer_values = layer_values

    def fit(self, photo: np.ndarray) -> np.ndarray:
        """The photo as the accentuation sees it: a square of side ``size``."""
        return fit_square(np.asarray(photo, np.uint8), self.size, self.fit_mode)

    def unit_value(self, image: np.ndarray, unit: int) -> float:
        """The unit's channel mean (before its ReLU, as optimized) on a ``size`` image."""
        acts = self._layer_values(tf.constant(np.asarray(image, np.float32)[None]))
        return float(tf.reduce_mean(acts[0, ..., unit]))

    def start(self, photo: np.ndarray, unit: int, steps: int, seed: int = 0) -> Accentuation:
        """An accentuation to advance a few steps at a time (``advance``, ``image``, ``snapshot``)."""
        self.network.check_unit(self.layer, unit)
        fitted = self.fit(photo)
        self._photo.assign(fitted[None].astype(np.float32) / 255.0)
        acts = self._layer_values(tf.constant(fitted[None].astype(np.float32)))
        self._inverse_scale.assign(1.0 / max(float(tf.sqrt(tf.reduce_mean(tf.square(acts)))), 1e-6))
        run = self._ascent.start([unit], self.size, steps, seed, init=params.fourier_values(fitted[None]))
        return Accentuation(self, run, unit, fitted, float(tf.reduce_mean(acts[0, ..., unit])))

    def frames(self, photo: np.ndarray, unit: int, steps: int, every: int = 8, seed: int = 0) -> Iterator[np.ndarray]:
        """The refined image, (size, size, 3) uint8, every ``every`` steps and at the end."""
        accentuation = self.start(photo, unit, steps, seed)
        while not accentuation.done:
            accentuation.advance(every)
            yield accentuation.image()

    def accentuate(self, photo: np.ndarray, unit: int, steps: int, seed: int = 0,
                   on_step: Callable[[int], None] | None = None) -> Accentuated:
        """Run it out: the image, the unit before and after, the PSNR to the photo."""
        accentuation = self.start(photo, unit, steps, seed)
        while not accentuation.done:
            accentuation.advance(self._ascent.steps_per_call)
            if on_step is not None:
                on_step(accentuation.taken)
        return accentuation.snapshot()
