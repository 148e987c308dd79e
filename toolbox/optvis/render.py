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

    def __init__(self, network: Network, objective: Objective, preset: Preset, pre_relu: bool = True,
                 project: Callable[[tf.Tensor], tf.Tensor] | None = None) -> None:
        """``project``: applied to the values after every update (a constraint set such as
        "within epsilon of a photo"); it may read ``tf.Variable``s that change between runs."""
        self.network, self.objective, self.preset = network, objective, preset
        param, transform, update = preset.param, preset.transform, preset.update
        view = network.view(objective.layers, pre_relu)

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
            if project is not None:
                values = project(values)
            return values, m, v, objective_values

        @tf.function(input_signature=[values_spec, tf.TensorSpec([None], tf.int32), int_spec])
        def final(values, units, size):
            images = param.to_image(values, size)
            return images, evaluate(images, units)

        self._step, self._final = step, final

    @property
    def trace_count(self) -> int:
        return self._step.experimental_get_tracing_count()

    def start(self, units: Sequence[int], size: int, steps: int, seed: int = 0,
              init: np.ndarray | None = None) -> "AscentRun":
        """An optimization to advance step by step (the live window interleaves it with frames).
        ``init``: the values to start from (the param's shape) instead of its random start."""
        return AscentRun(self, list(units), size, steps, seed, init)

    def run(self, units: Sequence[int], size: int, steps: int, seed: int = 0,
            on_step: StepCallback | None = None, on_image: ImageCallback | None = None,
            image_every: int = 0, should_stop: Callable[[], bool] | None = None,
            init: np.ndarray | None = None) -> Rendered:
        """Optimize one image per entry of ``units`` (use [0] when the objective names its units)."""
        run = self.start(units, size, steps, seed, init)
        while not run.done:
            if should_stop is not None and should_stop():
                break
            objective = run.step()
            if on_step is not None:
                on_step(run.taken, steps, objective)
            if on_image is not None and image_every and run.taken % image_every == 0 and not run.done:
                on_image(run.taken, run.images())
        return run.result()


class AscentRun:
    """The state of one optimization: values, Adam moments, the per-step random seeds."""

    def __init__(self, ascent: Ascent, units: list[int], size: int, steps: int, seed: int,
                 init: np.ndarray | None = None) -> None:
        rng = np.random.default_rng(seed)
        self._ascent = ascent
        start = ascent.preset.param.init(len(units), size, rng)
        if init is not None:
            start = np.asarray(init, np.float32).reshape(start.shape)
        self._values = tf.constant(start)
        self._m, self._v = tf.zeros_like(self._values), tf.zeros_like(self._values)
        self._units, self._size = tf.constant(units, tf.int32), tf.constant(size, tf.int32)
        self._seeds = rng.integers(0, 2**31 - 1, size=(steps, 2), dtype=np.int32)
        self.steps, self.taken = steps, 0

    @property
    def done(self) -> bool:
        return self.taken >= self.steps

    def step(self) -> np.ndarray:
        """One update; returns the objective of each row (on the transformed images)."""
        self._values, self._m, self._v, objective = self._ascent._step(
            self._values, self._m, self._v, tf.constant(self.taken + 1), self._units,
            tf.constant(self._seeds[self.taken]), self._size)
        self.taken += 1
        return objective.numpy()

    def images(self) -> np.ndarray:
        return to_uint8(self._ascent._final(self._values, self._units, self._size)[0])

    def result(self) -> Rendered:
        images, objective = self._ascent._final(self._values, self._units, self._size)
        return Rendered(to_uint8(images), objective.numpy(), self.taken)
