"""Random transforms, re-drawn every step, that make an optimized image robust.

Each transform is ``f(images, seed) -> images`` on (B, H, W, 3) images in [0, 1], with a
stateless seed (a (2,) int32 tensor) so runs are reproducible and the compiled step takes
the randomness as an argument instead of retracing. Sizes may change along the way; the
network takes any size.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import tensorflow as tf

Transform = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


def _split(seed: tf.Tensor, n: int) -> list[tf.Tensor]:
    return list(tf.unstack(tf.random.experimental.stateless_split(seed, n)))


def pad(width: int, value: float = 0.5) -> Transform:
    def f(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        return tf.pad(images, [[0, 0], [width, width], [width, width], [0, 0]], constant_values=value)

    return f


def jitter(pixels: int) -> Transform:
    """Crop ``pixels`` rows and columns at a random offset (a random shift)."""

    def f(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        s = tf.shape(images)
        offsets = tf.random.stateless_uniform([2], seed, 0, pixels + 1, dtype=tf.int32)
        return images[:, offsets[0]:offsets[0] + s[1] - pixels, offsets[1]:offsets[1] + s[2] - pixels]

    return f


def scale(factors: Sequence[float]) -> Transform:
    """Resize by a factor drawn from ``factors``."""
    table = tf.constant(list(factors), tf.float32)

    def f(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        k = tf.random.stateless_uniform([], seed, 0, len(factors), dtype=tf.int32)
        size = tf.cast(tf.round(tf.cast(tf.shape(images)[1:3], tf.float32) * table[k]), tf.int32)
        return tf.image.resize(images, size, method="bilinear")

    return f


def rotate(degrees: float) -> Transform:
    """Rotate about the centre by an angle uniform in [-degrees, degrees]."""

    def f(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        angle = tf.random.stateless_uniform([], seed, -degrees, degrees) * (math.pi / 180.0)
        s = tf.cast(tf.shape(images)[1:3], tf.float32)
        cy, cx = (s[0] - 1) / 2, (s[1] - 1) / 2
        cos, sin = tf.cos(angle), tf.sin(angle)
        # output (x, y) samples input (cos*x - sin*y + a, sin*x + cos*y + b), centred
        a = cx - cos * cx + sin * cy
        b = cy - sin * cx - cos * cy
        matrix = tf.stack([cos, -sin, a, sin, cos, b, 0.0, 0.0])[None]
        matrix = tf.tile(matrix, [tf.shape(images)[0], 1])
        return tf.raw_ops.ImageProjectiveTransformV3(
            images=images, transforms=matrix, output_shape=tf.shape(images)[1:3], fill_value=0.5,
            interpolation="BILINEAR", fill_mode="CONSTANT")

    return f


def unchanged(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """No transform: the image as it is (inversion and fooling optimize the exact image)."""
    return images


def compose(transforms: Sequence[Transform]) -> Transform:
    def f(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        for t, s in zip(transforms, _split(seed, max(len(transforms), 1))):
            images = t(images, s)
        return images

    return f


def standard() -> Transform:
    """Lucid's standard set: pad, coarse jitter, scale, rotate, fine jitter."""
    return compose([pad(12), jitter(8), scale([1 + (i - 5) / 50 for i in range(11)]), rotate(10), jitter(4)])


def jitter_only(pixels: int = 4) -> Transform:
    return compose([jitter(pixels)])
