"""Image parameterizations: how the numbers being optimized become images.

A Param is a pure function ``to_image(values, size) -> (B, H, W, 3) in [0, 1]`` plus
the initial values; the ascent loop owns the values, so one compiled step serves any
batch and any image size.

- ``pixels``: the image itself, centred on mid-grey (values are ``image - 0.5``).
- ``fourier``: Lucid's parameterization: a scaled 2-D spectrum per colour channel,
  decorrelated colour, squashed with a sigmoid. Low frequencies dominate, so
  optimization finds structure rather than high-frequency noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import tensorflow as tf

# Square root of the colour correlation of ImageNet pixels (its SVD form): maps
# decorrelated channels back to RGB so each optimized channel is an independent colour.
COLOR_CORRELATION_SQRT = np.array([[0.26, 0.09, 0.02],
                                   [0.27, 0.00, -0.05],
                                   [0.27, -0.09, 0.03]], np.float32)
COLOR_MIX = COLOR_CORRELATION_SQRT / np.max(np.linalg.norm(COLOR_CORRELATION_SQRT, axis=0))


@dataclass(frozen=True)
class Param:
    name: str
    init: Callable[[int, int, np.random.Generator], np.ndarray]  # (batch, size, rng) -> values
    to_image: Callable[[tf.Tensor, tf.Tensor], tf.Tensor]  # (values, size) -> images in [0, 1]
    shape: tuple  # shape of the values tensor, None where free (batch, size)


def _pixels_to_image(values: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    return tf.clip_by_value(values + 0.5, 0.0, 1.0)


def pixel_values(pixels: np.ndarray) -> np.ndarray:
    """The ``pixels`` parameterization's values of images in [0, 255]: where an ascent
    that starts from (or is bounded by) a photo starts."""
    return np.asarray(pixels, np.float32) / 255.0 - 0.5


def pixels(sd: float = 0.01) -> Param:
    def init(batch: int, size: int, rng: np.random.Generator) -> np.ndarray:
        return (rng.standard_normal((batch, size, size, 3)) * sd).astype(np.float32)

    return Param("pixels", init, _pixels_to_image, shape=(None, None, None, 3))


def _frequencies(size: tf.Tensor) -> tf.Tensor:
    """|f| of each rfft2d bin of a size x size image, shape (size, size // 2 + 1)."""
    n = tf.cast(size, tf.float32)
    k = tf.range(size, dtype=tf.float32)
    fy = tf.where(k < tf.cast((size + 1) // 2, tf.float32), k, k - n) / n  # 0, 1, ..., -2, -1
    fx = tf.range(size // 2 + 1, dtype=tf.float32) / n
    return tf.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)


def fourier(sd: float = 0.01, decay_power: float = 1.0) -> Param:
    def init(batch: int, size: int, rng: np.random.Generator) -> np.ndarray:
        return (rng.standard_normal((batch, 3, size, size // 2 + 1, 2)) * sd).astype(np.float32)

    def to_image(values: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
        freqs = _frequencies(size)
        scale = 1.0 / tf.maximum(freqs, 1.0 / tf.cast(size, tf.float32)) ** decay_power
        scale = scale * tf.sqrt(tf.cast(size * size, tf.float32))
        spectrum = tf.complex(values[..., 0], values[..., 1]) * tf.cast(scale, tf.complex64)
        image = tf.signal.irfft2d(spectrum, fft_length=tf.stack([size, size]))  # (B, 3, H, W)
        image = tf.transpose(image, [0, 2, 3, 1]) / 4.0
        image = tf.einsum("bhwc,dc->bhwd", image, COLOR_MIX)
        return tf.sigmoid(image)

    return Param("fourier", init, to_image, shape=(None, 3, None, None, 2))

