"""Gradient ascent on images for units: many units at once, one per batch row.

``Ascent(network, objective, preset)`` compiles one step (parameterization -> transforms
-> network view -> objective -> gradient -> update) with free batch and size, so the
same trace serves every step, every batch of units and every image size. ``run`` owns
the loop; progress and intermediate images leave through callbacks, and the loop does no
IO of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from toolbox.nets import Network
from toolbox.optvis.objectives import Context, Objective
from toolbox.optvis.presets import Preset

StepCallback = Callable[[int, int, np.ndarray], None]  # (step, steps, objective per row)
ImageCallback = Callable[[int, np.ndarray], None]  # (step, uint8 images (B, H, W, 3))


@dataclass(frozen=True)
class Rendered:
    images: np.ndarray  # (B, size, size, 3) uint8
    objective: np.ndarray  # (B,) objective of each row on its final image, untransformed
    steps: int  # steps actually taken (fewer when stopped early)


def to_uint8(images: np.ndarray) -> np.ndarray:
    return np.clip(np.round(np.asarray(images) * 255.0), 0, 255).astype(np.uint8)


class Ascent:
    """Compiled gradient ascent of ``objective`` on ``network`` with ``preset``."""

    def __init__(self, network: Network, objective: Objective, preset: Preset, pre_relu: bool = True) -> None:
        self.network, self.objective, self.preset = network, objective, preset
        param, transform, update = preset.param, preset.transform, preset.update
        view = keras.Model(network.model.input,
                           {n: network.layer_tensor(n, pre_relu) for n in sorted(objective.layers)})

        def evaluate(images, units):
            acts = view(network.normalize(images * 255.0), training=False)
            return objective(Context(acts, images, units))

        values_spec = tf.TensorSpec(param.shape, tf.float32)
        int_spec = tf.TensorSpec([], tf.int32)

        @tf.function(input_signature=[values_spec, values_spec, values_spec, int_spec,
                                      tf.TensorSpec([None], tf.int32), tf.TensorSpec([2], tf.int32), int_spec])
        def step(values, m, v, t, units, seed, size):
            with tf.GradientTape() as tape:
                tape.watch(values)
                images = transform(param.to_image(values, size), seed)
                objective_values = evaluate(images, units)
                total = tf.reduce_sum(objective_values)
            grad = tape.gradient(total, values)
            values, m, v = update.apply(values, grad, m, v, t)
            return values, m, v, objective_values

        @tf.function(input_signature=[values_spec, tf.TensorSpec([None], tf.int32), int_spec])
        def final(values, units, size):
            images = param.to_image(values, size)
            return images, evaluate(images, units)

        self._step, self._final = step, final

    @property
    def trace_count(self) -> int:
        return self._step.experimental_get_tracing_count()

    def run(self, units: Sequence[int], size: int, steps: int, seed: int = 0,
            on_step: StepCallback | None = None, on_image: ImageCallback | None = None,
            image_every: int = 0, should_stop: Callable[[], bool] | None = None) -> Rendered:
        """Optimize one image per entry of ``units`` (use [0] when the objective names its units)."""
        rng = np.random.default_rng(seed)
        values = tf.constant(self.preset.param.init(len(units), size, rng))
        m, v = tf.zeros_like(values), tf.zeros_like(values)
        units_t, size_t = tf.constant(list(units), tf.int32), tf.constant(size, tf.int32)
        seeds = rng.integers(0, 2**31 - 1, size=(steps, 2), dtype=np.int32)
        taken = 0
        for i in range(steps):
            if should_stop is not None and should_stop():
                break
            values, m, v, obj = self._step(values, m, v, tf.constant(i + 1), units_t, tf.constant(seeds[i]), size_t)
            taken = i + 1
            if on_step is not None:
                on_step(taken, steps, obj.numpy())
            if on_image is not None and image_every and taken % image_every == 0 and taken < steps:
                on_image(taken, to_uint8(self._final(values, units_t, size_t)[0]))
        images, objective = self._final(values, units_t, size_t)
        return Rendered(to_uint8(images), objective.numpy(), taken)
