"""Gradient ascent on images for units: many units at once, one per batch row.

``Ascent(network, objective, preset)`` compiles one call that takes any number of steps
(parameterization -> transforms -> network view -> objective -> gradient -> update, in a
``tf.while_loop``) with free batch and size, so the same trace serves every step, every
batch of units and every image size. ``run`` owns the loop: it takes ``steps_per_call``
steps per call, so Python and the host see the values once per call, not once per step;
progress and intermediate images leave through callbacks, and the loop does no IO of its
own. A call of N steps computes exactly what N calls of one step do (the same graph, the
same per-step seeds), so results never depend on how a run is cut into calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import tensorflow as tf

from toolbox.nets import Network
from toolbox.optvis.objectives import Context, Objective

if TYPE_CHECKING:  # presets makes Ascents of its recipes: only the type here
    from toolbox.optvis.presets import Preset

STEPS_PER_CALL = 16  # steps of one compiled call in ``run``: the host syncs once per call
REDIRECT_STEPS = 8  # steps a preset with ``redirect`` takes through redirected ReLUs, first

StepCallback = Callable[[int, int, np.ndarray], None]  # (step, steps, objective per row)
ImageCallback = Callable[[int, np.ndarray], None]  # (step, uint8 images (B, H, W, 3))


@dataclass(frozen=True)
class Rendered:
    images: np.ndarray  # (B, size, size, 3) uint8
    objective: np.ndarray  # (B,) objective (or ``measure``) of each row on its final image, untransformed
    steps: int  # steps actually taken (fewer when stopped early)
    # (B, size, size) float32: the absolute gradient of the objective on each image pixel,
    # summed over steps and colours: where the ascent looked (MACO's transparency map)
    transparency: np.ndarray


def to_uint8(images: np.ndarray) -> np.ndarray:
    return np.clip(np.round(np.asarray(images) * 255.0), 0, 255).astype(np.uint8)


def _view(network: Network, layers, pre_relu: bool, redirect: bool):
    """``network.view(layers, pre_relu)``, or with ``redirect`` the same values from a copy
    whose ReLUs pass a redirected gradient (``relu_rules.RedirectedReLU``)."""
    if not redirect:
        return network.view(layers, pre_relu)
    from toolbox.nets.network import LOGITS, PRE_RELU
    from toolbox.optvis.relu_rules import redirected_relu

    names = {layer: layer + PRE_RELU if pre_relu and layer != LOGITS else layer for layer in layers}
    model = network.rectified_view(list(names.values()), redirected_relu)

    def view(x, training=False):
        out = model(x, training=training)
        return {layer: out[name] for layer, name in names.items()}

    return view


class Ascent:
    """Compiled gradient ascent of ``objective`` on ``network`` with ``preset``."""

    def __init__(self, network: Network, objective: Objective, preset: Preset, pre_relu: bool = True,
                 project: Callable[[tf.Tensor], tf.Tensor] | None = None,
                 steps_per_call: int = STEPS_PER_CALL, measure: Objective | None = None) -> None:
        """``project``: applied to the values after every update (a constraint set such as
        "within epsilon of a photo"); it may read ``tf.Variable``s that change between runs.
        ``steps_per_call``: most steps ``run`` takes in one compiled call. ``measure``: what
        ``Rendered.objective`` reports of the final images, when not the objective itself (a
        unit image optimized for contrast reports its unit's channel mean)."""
        self.network, self.objective, self.preset = network, objective, preset
        param, transform, update = preset.param, preset.transform, preset.update
        measure = measure or objective
        layers = objective.layers | measure.layers
        plain_view = network.view(layers, pre_relu)

        def evaluate(view, images, units, source, what=objective):
            acts = view(network.normalize(images * 255.0), training=False)
            return what(Context(acts, images, units, source))

        values_spec = tf.TensorSpec(param.shape, tf.float32)
        int_spec = tf.TensorSpec([], tf.int32)

        def compiled_steps(view):
            def one_step(values, m, v, t, units, seed, size):
                with tf.GradientTape() as tape:
                    tape.watch(values)
                    image = param.to_image(values, size)
                    objective_values = evaluate(view, transform(image, seed), units, image)
                    total = tf.reduce_sum(objective_values)
                grad, image_grad = tape.gradient(total, [values, image])
                values, m, v = update.apply(values, grad, m, v, t)
                if project is not None:
                    values = project(values)
                return values, m, v, objective_values, tf.reduce_sum(tf.abs(image_grad), axis=-1)

            @tf.function(input_signature=[values_spec, values_spec, values_spec, tf.TensorSpec([None, None, None]),
                                          int_spec, tf.TensorSpec([None], tf.int32), tf.TensorSpec([None, 2], tf.int32),
                                          int_spec])
            def steps(values, m, v, seen, t, units, seeds, size):
                """``len(seeds)`` steps from step number ``t`` (1-based); the objective of each.
                ``seen``: the transparency so far, (B, size, size)."""
                n = tf.shape(seeds)[0]

                def body(i, values, m, v, seen, objectives):
                    values, m, v, objective_values, looked = one_step(values, m, v, t + i, units, seeds[i], size)
                    values, m, v = (tf.ensure_shape(x, param.shape) for x in (values, m, v))  # a projection may blur it
                    return i + 1, values, m, v, seen + looked, objectives.write(i, objective_values)

                objectives = tf.TensorArray(tf.float32, size=n, element_shape=tf.TensorShape([None]))
                _, values, m, v, seen, objectives = tf.while_loop(lambda i, *_: i < n, body,
                                                                  (0, values, m, v, seen, objectives))
                return values, m, v, seen, objectives.stack()

            return steps

        @tf.function(input_signature=[values_spec, tf.TensorSpec([None], tf.int32), int_spec])
        def final(values, units, size):
            images = param.to_image(values, size)
            return images, evaluate(plain_view, images, units, images, measure)

        self._steps, self._final = compiled_steps(plain_view), final
        # the first REDIRECT_STEPS steps through ReLUs that pass a redirected gradient (a dead start
        # comes alive: lite0 block13_dw_relu units 144 and 432 reach 54.7 and 13.1 after 8 or 16
        # such steps, and stay at -1.9 and -0.5 without); the rest through the network's own
        # ReLUs (a redirected step costs about twice a plain one)
        self._redirected = compiled_steps(_view(network, layers, pre_relu, True)) if preset.redirect else None
        self.steps_per_call = steps_per_call

    @property
    def trace_count(self) -> int:
        """Traces of each compiled step function (one for all steps, units and sizes)."""
        return max(f.experimental_get_tracing_count() for f in (self._steps, self._redirected) if f is not None)

    def start(self, units: Sequence[int], size: int, steps: int, seed: int = 0,
              init: np.ndarray | None = None) -> "AscentRun":
        """An optimization to advance step by step (the live window interleaves it with frames).
        ``init``: the values to start from (the param's shape) instead of its random start."""
        return AscentRun(self, list(units), size, steps, seed, init)

    def run(self, units: Sequence[int], size: int, steps: int, seed: int = 0,
            on_step: StepCallback | None = None, on_image: ImageCallback | None = None,
            image_every: int = 0, should_stop: Callable[[], bool] | None = None,
            init: np.ndarray | None = None) -> Rendered:
        """Optimize one image per entry of ``units`` (use [0] when the objective names its units).
        ``should_stop`` is asked before each compiled call (every ``steps_per_call`` steps)."""
        run = self.start(units, size, steps, seed, init)
        while not run.done:
            if should_stop is not None and should_stop():
                break
            n = self.steps_per_call
            if on_image is not None and image_every:
                n = min(n, image_every - run.taken % image_every)
            first = run.taken
            for k, objective in enumerate(run.advance(n)):
                if on_step is not None:
                    on_step(first + k + 1, steps, objective)
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
        self._seen = tf.zeros([len(units), size, size])
        self._units, self._size = tf.constant(units, tf.int32), tf.constant(size, tf.int32)
        self._seeds = rng.integers(0, 2**31 - 1, size=(steps, 2), dtype=np.int32)
        self.steps, self.taken = steps, 0

    @property
    def done(self) -> bool:
        return self.taken >= self.steps

    def step(self) -> np.ndarray:
        """One update; returns the objective of each row (on the transformed images)."""
        return self.advance(1)[0]

    def advance(self, n: int) -> np.ndarray:
        """Up to ``n`` updates in one compiled call (fewer at the end of the run); returns the
        objective of each row at each step taken, (steps, B)."""
        n = max(0, min(n, self.steps - self.taken))
        if n == 0:
            return np.zeros((0, int(self._units.shape[0])), np.float32)
        redirected = self._ascent._redirected
        if redirected is not None and self.taken < REDIRECT_STEPS:
            first = min(n, REDIRECT_STEPS - self.taken)  # a call never crosses the switch
            return np.concatenate([self._call(redirected, first), self.advance(n - first)])
        return self._call(self._ascent._steps, n)

    def _call(self, steps, n: int) -> np.ndarray:
        self._values, self._m, self._v, self._seen, objectives = steps(
            self._values, self._m, self._v, self._seen, tf.constant(self.taken + 1), self._units,
            tf.constant(self._seeds[self.taken:self.taken + n]), self._size)
        self.taken += n
        return objectives.numpy()

    @property
    def values(self) -> np.ndarray:
        """The optimized values as they are now (the param's shape)."""
        return self._values.numpy()

    def images(self) -> np.ndarray:
        return to_uint8(self._ascent._final(self._values, self._units, self._size)[0])

    def result(self) -> Rendered:
        images, objective = self._ascent._final(self._values, self._units, self._size)
        return Rendered(to_uint8(images), objective.numpy(), self.taken, self._seen.numpy())
