"""DeepDream ("inceptionism"): amplify what a network already sees in a photo.

Per octave, from the smallest up: repeatedly roll the image by a random shift, take the
gradient of the objective tile by tile (so memory stays bounded for any photo size),
roll the gradient back, normalize it (mean |g| = 1) and step along it. The detail a
smaller octave added is carried up to the next one. One compiled gradient function with
free height and width serves every tile and every octave.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import tensorflow as tf

from toolbox.nets import Network
from toolbox.optvis.objectives import Context, Objective

ProgressCallback = Callable[[int, int, float], None]  # (step, total steps, objective)


@dataclass(frozen=True)
class DreamSchedule:
    """How to dream; the defaults a user sees live in ``toolbox.settings.DreamSettings``."""

    octaves: int
    octave_scale: float
    steps: int  # per octave
    step_size: float  # pixel change per step, as a fraction of the [0, 255] range
    tile: int  # gradients are computed on tiles of at most this side
    seed: int = 0


def resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Float (H, W, 3) image resized: area averaging when shrinking, bicubic when enlarging."""
    if image.shape[:2] == (height, width):
        return image
    method = "area" if width * height < image.shape[0] * image.shape[1] else "bicubic"
    return tf.image.resize(image, (height, width), method=method).numpy()


def octave_sizes(height: int, width: int, octaves: int, scale: float, min_side: int) -> list[tuple[int, int]]:
    """(h, w) per octave, smallest first, ending at the full size; none below ``min_side``."""
    sizes = []
    for i in range(octaves - 1, -1, -1):
        s = max(scale ** -i, min_side / min(height, width))
        size = (max(min_side, round(height * s)), max(min_side, round(width * s)))
        if not sizes or size != sizes[-1]:
            sizes.append(size)
    sizes[-1] = (height, width)
    return sizes


def tile_edges(length: int, tile: int) -> list[tuple[int, int]]:
    """Split [0, length) into ceil(length / tile) nearly equal parts."""
    n = max(1, -(-length // tile))
    bounds = np.linspace(0, length, n + 1).round().astype(int)
    return list(zip(bounds[:-1], bounds[1:]))


class DeepDream:
    """Dreams with ``objective`` on ``network``; reusable across photos and schedules."""

    def __init__(self, network: Network, objective: Objective) -> None:
        self.network, self.objective = network, objective
        view = network.view(objective.layers)
        units = tf.zeros([1], tf.int32)

        @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.float32)])
        def gradient(pixels):
            with tf.GradientTape() as tape:
                tape.watch(pixels)
                batch = pixels[None]
                acts = view(network.normalize(batch), training=False)
                value = objective(Context(acts, batch / 255.0, units))[0]
            return value, tape.gradient(value, pixels)

        self._gradient = gradient

    @property
    def trace_count(self) -> int:
        return self._gradient.experimental_get_tracing_count()

    def tiled_gradient(self, pixels: np.ndarray, tile: int) -> tuple[float, np.ndarray]:
        """Objective (mean over tiles) and gradient of a float (H, W, 3) image, tile by tile."""
        grad = np.empty_like(pixels)
        values = []
        for y0, y1 in tile_edges(pixels.shape[0], tile):
            for x0, x1 in tile_edges(pixels.shape[1], tile):
                value, g = self._gradient(tf.constant(pixels[y0:y1, x0:x1]))
                grad[y0:y1, x0:x1] = g.numpy()
                values.append(float(value))
        return float(np.mean(values)), grad

    def objective_of(self, image: np.ndarray, tile: int = 512) -> float:
        return self.tiled_gradient(np.asarray(image, np.float32), tile)[0]

    def run(self, image: np.ndarray, schedule: DreamSchedule,
            on_progress: ProgressCallback | None = None) -> np.ndarray:
        """Dream on an RGB uint8 image; returns an RGB uint8 image of the same size."""
        rng = np.random.default_rng(schedule.seed)
        original = image.astype(np.float32)
        h, w = original.shape[:2]
        sizes = octave_sizes(h, w, schedule.octaves, schedule.octave_scale, self.network.spec.min_size)
        # a network that sees every input resized to its one size sees each tile best at that size
        tile = self.network.spec.input_size if self.network.fixed_input else max(schedule.tile,
                                                                                 self.network.spec.min_size)
        step = schedule.step_size * 255.0
        total, done = len(sizes) * schedule.steps, 0
        detail = np.zeros((*sizes[0], 3), np.float32)
        for oh, ow in sizes:
            base = resize(original, ow, oh)
            detail = resize(detail, ow, oh)
            dream = base + detail
            max_shift = min(tile // 2, oh // 2, ow // 2)
            for _ in range(schedule.steps):
                dy, dx = rng.integers(-max_shift, max_shift + 1, size=2)
                rolled = np.roll(dream, (dy, dx), axis=(0, 1))
                value, grad = self.tiled_gradient(rolled, tile)
                grad = np.roll(grad, (-dy, -dx), axis=(0, 1))
                dream += grad * (step / (np.abs(grad).mean() + 1e-8))
                np.clip(dream, 0.0, 255.0, out=dream)
                done += 1
                if on_progress is not None:
                    on_progress(done, total, value)
            detail = dream - base
        return np.clip(np.round(dream), 0, 255).astype(np.uint8)
