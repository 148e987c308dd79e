"""Image parameterizations: how the numbers being optimized become images.

A Param is a pure function ``to_image(values, size) -> (B, H, W, 3) in [0, 1]`` plus
the initial values; the ascent loop owns the values, so one compiled step serves any
batch and any image size.

- ``pixels``: the image itself, centred on mid-grey (values are ``image - 0.5``).
- ``fourier``: Lucid's parameterization: a scaled 2-D spectrum per colour channel,
  decorrelated colour, squashed with a sigmoid. Low frequencies dominate, so
  optimization finds structure rather than high-frequency noise.
- ``maco``: MACO's (Fel et al. 2023): only the phase of each frequency is optimized; the
  magnitude stays an average natural-image spectrum (``natural_magnitude``), so the
  image keeps the energy of each frequency a photo has.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Callable

import numpy as np
import tensorflow as tf

# Square root of the colour correlation of ImageNet pixels (its SVD form): maps
# decorrelated channels back to RGB so each optimized channel is an independent colour.
COLOR_CORRELATION_SQRT = np.array([[0.26, 0.09, 0.02],
                                   [0.27, 0.00, -0.05],
                                   [0.27, -0.09, 0.03]], np.float32)
COLOR_MIX = COLOR_CORRELATION_SQRT / np.max(np.linalg.norm(COLOR_CORRELATION_SQRT, axis=0))
# The mean magnitude spectrum of the photos in examples/ (scripts/natural_spectrum.py says
# how it was estimated and how it is stored): package data, read once.
NATURAL_SPECTRUM = Path(__file__).with_name("natural_spectrum.npy")


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


def _fourier_scale(size: tf.Tensor, decay_power: float) -> tf.Tensor:
    """What ``fourier`` multiplies its values by, per rfft2d bin: 1/f, times the side."""
    scale = 1.0 / tf.maximum(_frequencies(size), 1.0 / tf.cast(size, tf.float32)) ** decay_power
    return scale * tf.sqrt(tf.cast(size * size, tf.float32))


def fourier_values(pixels: np.ndarray, decay_power: float = 1.0) -> np.ndarray:
    """The ``fourier`` parameterization's values of square images in [0, 255], (B, S, S, 3):
    where an ascent that starts from a photo starts. Pixels are kept 1/510 inside 0 and 1
    so that the sigmoid's inverse is finite; ``to_image`` gives the images back to within
    that (the same uint8 pixels)."""
    x = np.clip(np.asarray(pixels, np.float64) / 255.0, 1 / 510, 1 - 1 / 510)
    decorrelated = np.log(x / (1 - x)) @ np.linalg.inv(COLOR_MIX).T * 4.0
    spectrum = np.fft.rfft2(np.moveaxis(decorrelated, -1, 1))  # (B, 3, S, S // 2 + 1)
    spectrum = spectrum / _fourier_scale(tf.constant(x.shape[1]), decay_power).numpy()
    return np.stack([spectrum.real, spectrum.imag], axis=-1).astype(np.float32)


def fourier(sd: float = 0.01, decay_power: float = 1.0) -> Param:
    def init(batch: int, size: int, rng: np.random.Generator) -> np.ndarray:
        return (rng.standard_normal((batch, 3, size, size // 2 + 1, 2)) * sd).astype(np.float32)

    def to_image(values: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
        scale = _fourier_scale(size, decay_power)
        spectrum = tf.complex(values[..., 0], values[..., 1]) * tf.cast(scale, tf.complex64)
        image = tf.signal.irfft2d(spectrum, fft_length=tf.stack([size, size]))  # (B, 3, H, W)
        image = tf.transpose(image, [0, 2, 3, 1]) / 4.0
        image = tf.einsum("bhwc,dc->bhwd", image, COLOR_MIX)
        return tf.sigmoid(image)

    return Param("fourier", init, to_image, shape=(None, 3, None, None, 2))



@cache
def _natural_table() -> np.ndarray:
    return np.load(NATURAL_SPECTRUM).astype(np.float32)


def _interpolate(table: tf.Tensor, coords: tf.Tensor, axis: int) -> tf.Tensor:
    """Linear interpolation of ``table`` along ``axis`` at fractional indices ``coords``."""
    n = tf.shape(table)[axis]
    coords = tf.clip_by_value(coords, 0.0, tf.cast(n - 1, tf.float32))
    lo = tf.cast(tf.floor(coords), tf.int32)
    hi = tf.minimum(lo + 1, n - 1)
    w = coords - tf.cast(lo, tf.float32)
    shape = [1, 1, 1]
    shape[axis] = -1
    w = tf.reshape(w, shape)
    return tf.gather(table, lo, axis=axis) * (1 - w) + tf.gather(table, hi, axis=axis) * w


def natural_magnitude(size: tf.Tensor, table: np.ndarray | None = None) -> tf.Tensor:
    """The average natural-image magnitude of each rfft2d bin of a size x size image, per
    decorrelated colour channel: (3, size, size // 2 + 1). Read off the stored table at the
    same frequencies in cycles per pixel, scaled to the size (a bin's magnitude grows with
    the side at a given frequency, the mean's with the area), so any size gets the photos'
    contrast."""
    t = tf.constant(_natural_table() if table is None else table, tf.float32)
    ref = tf.cast(tf.shape(t)[1], tf.float32)
    n = tf.cast(size, tf.float32)
    k = tf.range(size, dtype=tf.float32)
    fy = tf.where(k < tf.cast((size + 1) // 2, tf.float32), k, k - n) / n
    fx = tf.range(size // 2 + 1, dtype=tf.float32) / n
    whitened = _interpolate(_interpolate(t, (fy + 0.5) * ref, axis=1), fx * ref, axis=2)
    f = _frequencies(size)
    return whitened * n / tf.maximum(f, 1.0 / n)


def maco(table: np.ndarray | None = None, standardize: bool = False) -> Param:
    """Phase-only Fourier parameterization under a fixed natural magnitude spectrum (MACO).
    The values are phases, (B, 3, size, size // 2 + 1), drawn normal at the start; each
    row's are standardized (mean 0, sd 1) before use, as MACO does, so that as an ascent
    spreads them its steps turn the angles less and less (a self-annealing rate).
    ``standardize``: also scale each image to sd 1 in the decorrelated colours before the
    squashing (MACO's choice; without it the image has the photos' contrast)."""

    def init(batch: int, size: int, rng: np.random.Generator) -> np.ndarray:
        return rng.standard_normal((batch, 3, size, size // 2 + 1)).astype(np.float32)

    def to_image(values: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
        mean, var = tf.nn.moments(values, axes=[1, 2, 3], keepdims=True)
        phase = (values - mean) / (tf.sqrt(var) + 1e-5)
        magnitude = natural_magnitude(size, table)
        spectrum = tf.complex(magnitude * tf.cos(phase), magnitude * tf.sin(phase))
        image = tf.signal.irfft2d(spectrum, fft_length=tf.stack([size, size]))  # (B, 3, H, W)
        if standardize:
            mean, var = tf.nn.moments(image, axes=[1, 2, 3], keepdims=True)
            image = (image - mean) / (tf.sqrt(var) + 1e-5)
        image = tf.einsum("bchw,dc->bhwd", image, COLOR_MIX)
        return tf.sigmoid(image)

    return Param("maco", init, to_image, shape=(None, 3, None, None))
