"""Update rules: how a gradient changes the optimized values, regularizers included.

Both rules are pure TensorFlow functions ``apply(values, grad, m, v, t) -> (values, m, v)``
(``m``, ``v`` are moment buffers, ``t`` the 1-based step) so they live inside the one
compiled step. They *ascend*: the objective grows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import tensorflow as tf


@dataclass(frozen=True)
class Adam:
    """Adam on the raw gradient (Lucid's choice for Fourier parameterizations)."""

    lr: float = 0.05
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    def apply(self, values, grad, m, v, t):
        m = self.beta1 * m + (1 - self.beta1) * grad
        v = self.beta2 * v + (1 - self.beta2) * tf.square(grad)
        t = tf.cast(t, tf.float32)
        v_hat = v / (1 - self.beta2 ** t)
        return values + self.lr * self.direction(m, grad, t) / (tf.sqrt(v_hat) + self.eps), m, v

    def direction(self, m, grad, t):
        """The bias-corrected first moment the step follows."""
        return m / (1 - self.beta1 ** t)


@dataclass(frozen=True)
class NAdam(Adam):
    """Adam with Nesterov momentum (Dozat 2016): the step looks one momentum update ahead.
    MACO's choice, with a large rate, for phases (an angle moves by about ``lr`` radians)."""

    lr: float = 1.0
    eps: float = 1e-7

    def direction(self, m, grad, t):
        return self.beta1 * m / (1 - self.beta1 ** (t + 1)) + (1 - self.beta1) * grad / (1 - self.beta1 ** t)


def gaussian_blur(images: tf.Tensor, sigma: float) -> tf.Tensor:
    """Blur (B, H, W, C) images with a Gaussian of standard deviation ``sigma`` pixels."""
    radius = max(1, int(math.ceil(2 * sigma)))
    x = tf.range(-radius, radius + 1, dtype=tf.float32)
    k = tf.exp(-0.5 * tf.square(x / sigma))
    k = k / tf.reduce_sum(k)
    channels = images.shape[-1]
    kx = tf.tile(tf.reshape(k, [1, -1, 1, 1]), [1, 1, channels, 1])
    ky = tf.tile(tf.reshape(k, [-1, 1, 1, 1]), [1, 1, channels, 1])
    padded = tf.pad(images, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
    out = tf.nn.depthwise_conv2d(padded, kx, [1, 1, 1, 1], "VALID")
    return tf.nn.depthwise_conv2d(out, ky, [1, 1, 1, 1], "VALID")


def _zero_below_percentile(values: tf.Tensor, score: tf.Tensor, pct: float) -> tf.Tensor:
    """Set to 0 the pixels of each image whose ``score`` (B, H, W) is below its pct-th percentile."""
    flat = tf.reshape(score, [tf.shape(score)[0], -1])
    n = tf.shape(flat)[1]
    k = tf.minimum(tf.cast(tf.cast(n, tf.float32) * pct / 100.0, tf.int32), n - 1)
    threshold = tf.gather(tf.sort(flat, axis=1), k, axis=1)
    keep = tf.cast(score >= threshold[:, None, None], values.dtype)
    return values * keep[..., None]


@dataclass(frozen=True)
class RegularizedAscent:
    """Gradient ascent in pixel space with the regularizers of Yosinski et al. (2015):
    L2 decay, Gaussian blur every N steps, and clipping of pixels with a small norm or a
    small contribution to the objective. The gradient is normalized (mean |g| = 1)."""

    lr: float = 0.02
    decay: float = 0.0
    blur_every: int = 0
    blur_width: float = 0.0
    norm_pct: float = 0.0
    contrib_pct: float = 0.0

    def apply(self, values, grad, m, v, t):
        g = grad / (tf.reduce_mean(tf.abs(grad), axis=[1, 2, 3], keepdims=True) + 1e-8)
        values = (values + self.lr * g) * (1.0 - self.decay)
        if self.blur_every and self.blur_width > 0:
            blurred = gaussian_blur(values, self.blur_width)
            values = tf.cond(tf.equal(t % self.blur_every, 0), lambda: blurred, lambda: values)
        if self.norm_pct > 0:
            values = _zero_below_percentile(values, tf.norm(values, axis=-1), self.norm_pct)
        if self.contrib_pct > 0:
            values = _zero_below_percentile(values, tf.reduce_sum(values * grad, axis=-1), self.contrib_pct)
        return values, m, v
