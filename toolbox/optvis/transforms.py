"""Random transforms, re-drawn every step, that make an optimized image robust.

Each transform is ``f(images, seed) -> images`` on (B, H, W, 3) images in [0, 1], with a
stateless seed (a (2,) int32 tensor) so runs are reproducible and the compiled step takes
the randomness as an argument instead of retracing. Sizes may change along the way (the
network takes any size); ``keep_size`` brings a chain's output back to the size it was
given, and ``affine`` does shift, zoom and rotation in one warp at the given size, each
row of the batch with its own draw, so the network sees exactly the pixels asked for.
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


def _to_size(images: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    """The centre ``size`` (2,) of images larger than it; smaller ones padded with mid-grey."""
    have = tf.shape(images)[1:3]
    under = tf.maximum(size - have, 0)
    images = tf.pad(images, [[0, 0], [under[0] // 2, under[0] - under[0] // 2],
                             [under[1] // 2, under[1] - under[1] // 2], [0, 0]], constant_values=0.5)
    off = tf.maximum(have - size, 0) // 2
    return images[:, off[0]:off[0] + size[0], off[1]:off[1] + size[1]]


def keep_size(transform: Transform) -> Transform:
    """``transform``, then its output brought back to the size it was given (its centre, or
    padded with mid-grey): the network's cost follows the size asked for, not the padding."""

    def f(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        return _to_size(transform(images, seed), tf.shape(images)[1:3])

    return f


def affine(shift: float, zoom: tuple[float, float], degrees: float, fill: float = 0.5,
           fill_mode: str = "CONSTANT") -> Transform:
    """One bilinear warp per row at the input's size: a shift uniform in [-shift, shift]
    pixels on each axis, a zoom log-uniform in ``zoom`` (above 1 enlarges), a rotation
    uniform in [-degrees, degrees] about the centre; what falls outside is ``fill``
    (``fill_mode`` CONSTANT), or the image wrapped around (WRAP: a periodic image, as the
    Fourier parameterizations make, has no border at all), mirrored (REFLECT) or its edge
    pixel repeated (NEAREST). The same robustness as pad + jitter + scale + rotate for the
    cost of one resampling."""
    log_lo, log_hi = math.log(zoom[0]), math.log(zoom[1])

    def f(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        b = tf.shape(images)[0]
        k_shift, k_zoom, k_angle = _split(seed, 3)
        shifts = tf.random.stateless_uniform([b, 2], k_shift, -shift, shift)
        inv_zoom = tf.exp(-tf.random.stateless_uniform([b], k_zoom, log_lo, log_hi))
        angle = tf.random.stateless_uniform([b], k_angle, -degrees, degrees) * (math.pi / 180.0)
        s = tf.cast(tf.shape(images)[1:3], tf.float32)
        cy, cx = (s[0] - 1) / 2, (s[1] - 1) / 2
        # output (x, y) samples the input at centre + rotation(x - cx, y - cy) / zoom + shift
        a0, a1 = tf.cos(angle) * inv_zoom, -tf.sin(angle) * inv_zoom
        a3, a4 = -a1, a0
        a2 = cx - a0 * cx - a1 * cy + shifts[:, 1]
        a5 = cy - a3 * cx - a4 * cy + shifts[:, 0]
        zeros = tf.zeros_like(a0)
        matrix = tf.stack([a0, a1, a2, a3, a4, a5, zeros, zeros], axis=1)
        return tf.raw_ops.ImageProjectiveTransformV3(
            images=images, transforms=matrix, output_shape=tf.shape(images)[1:3], fill_value=fill,
            interpolation="BILINEAR", fill_mode=fill_mode)

    return f


def roll(largest: int, step: int = 1) -> Transform:
    """Shift the whole batch by a random multiple of ``step`` pixels up to ``largest`` on each
    axis, wrapping around (a periodic image, as the Fourier parameterizations make, has no
    border to show). With ``step`` the network's stride at a layer, the layer sees the same
    grid phase every step: the pixel-fine patterns its units may want survive, where a
    resampling warp would blur them away."""
    steps = max(largest // max(step, 1), 0)

    def f(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        shift = tf.random.stateless_uniform([2], seed, -steps, steps + 1, dtype=tf.int32) * step
        return tf.roll(images, shift, axis=[1, 2])

    return f


def crops(smallest: float, largest: float, out: float = 1.0, spread: float = 0.15) -> Transform:
    """MACO's crops, one per row: a square whose side is uniform in [smallest, largest] of
    the image's, centred at a point drawn about the middle (normal, sd ``spread`` of the
    side, moved inside the image), resized (bilinear) to ``out`` times the image's size."""

    def f(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        b = tf.shape(images)[0]
        k_side, k_centre = _split(seed, 2)
        side = tf.random.stateless_uniform([b, 1], k_side, smallest, largest)
        centre = 0.5 + tf.random.stateless_normal([b, 2], k_centre) * spread
        centre = tf.clip_by_value(centre, side / 2, 1 - side / 2)
        boxes = tf.concat([centre - side / 2, centre + side / 2], axis=1)  # y1, x1, y2, x2
        n = tf.cast(tf.round(tf.cast(tf.shape(images)[1], tf.float32) * out), tf.int32)
        return tf.image.crop_and_resize(images, boxes, tf.range(b), tf.stack([n, n]))

    return f


def noise(sd: float) -> Transform:
    """Gaussian noise of standard deviation ``sd`` added to every pixel."""

    def f(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        return images + tf.random.stateless_normal(tf.shape(images), seed) * sd

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
    """Lucid's standard set: pad, coarse jitter, scale, rotate, fine jitter (the network
    sees 126-158 px images for 128 asked)."""
    return compose([pad(12), jitter(8), scale([1 + (i - 5) / 50 for i in range(11)]), rotate(10), jitter(4)])


def standard_kept() -> Transform:
    """Lucid's standard set brought back to the size asked for (its centre)."""
    return keep_size(standard())


def standard_affine(fill_mode: str = "CONSTANT") -> Transform:
    """Lucid's standard set as one warp per row at the size asked for: shifts to +-8 px,
    zoom 0.9-1.1, rotation to +-10 degrees (``fill_mode``: see ``affine``)."""
    return affine(8.0, (0.9, 1.1), 10.0, fill_mode=fill_mode)


def jitter_only(pixels: int = 4) -> Transform:
    return compose([jitter(pixels)])
