"""Objectives: what gradient ascent maximizes, as values that compose.

An Objective holds a function of a ``Context`` (the activations of the layers it names,
the images being optimized, and the per-row unit indices) that returns one value per
batch row, shape (B,). Objectives add, subtract, scale and sum:

    0.5 * channel("block9_add", 97) - neuron("block6_add", 3) + total_variation(-1e-3)

A unit of ``None`` means "the unit assigned to each batch row" (``Context.units``), which
is how one compiled step optimizes many units at once, one per row, without retracing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

import tensorflow as tf

from toolbox.nets.network import LOGITS


@dataclass(frozen=True)
class Context:
    acts: Mapping[str, tf.Tensor]  # layer -> (B, H, W, C); LOGITS -> (B, classes)
    images: tf.Tensor  # (B, H, W, 3) in [0, 1], after transforms
    units: tf.Tensor  # (B,) int32: the unit of each row
    source: tf.Tensor | None = None  # (B, size, size, 3) in [0, 1]: the images before the transforms


@dataclass(frozen=True)
class Objective:
    fn: Callable[[Context], tf.Tensor]
    layers: frozenset[str]
    name: str

    def __call__(self, ctx: Context) -> tf.Tensor:
        return self.fn(ctx)

    def __add__(self, other: "Objective | float") -> "Objective":
        if not isinstance(other, Objective):
            return Objective(lambda c: self(c) + other, self.layers, f"{self.name} + {other}")
        return Objective(lambda c: self(c) + other(c), self.layers | other.layers, f"{self.name} + {other.name}")

    __radd__ = __add__

    def __neg__(self) -> "Objective":
        return Objective(lambda c: -self(c), self.layers, f"-{self.name}")

    def __sub__(self, other: "Objective | float") -> "Objective":
        return self + (-other)

    def __rsub__(self, other: float) -> "Objective":
        return (-self) + other

    def __mul__(self, k: float) -> "Objective":
        if isinstance(k, Objective):
            raise TypeError("objectives multiply by numbers only")
        return Objective(lambda c: k * self(c), self.layers, f"{k} * {self.name}")

    __rmul__ = __mul__

    @staticmethod
    def sum(objectives: Iterable["Objective"]) -> "Objective":
        objectives = list(objectives)
        total = objectives[0]
        for o in objectives[1:]:
            total = total + o
        return total


def _unit_slice(t: tf.Tensor, unit: int | None, units: tf.Tensor) -> tf.Tensor:
    """(B, H, W, C) -> (B, H, W): a fixed unit, or each row's own unit."""
    if unit is not None:
        return t[..., unit]
    return tf.gather(t, units, axis=-1, batch_dims=1)


def channel(layer: str, unit: int | None = None) -> Objective:
    """Mean activation of one channel over all positions."""
    return Objective(lambda c: tf.reduce_mean(_unit_slice(c.acts[layer], unit, c.units), axis=[1, 2]),
                     frozenset([layer]), f"channel({layer}, {unit})")


def _interior(t: tf.Tensor, margin: int) -> tf.Tensor:
    """(B, H, W, C) without ``margin`` positions at each border (at most a quarter of each side)."""
    if not margin:
        return t
    shape = tf.shape(t)
    my, mx = tf.minimum(margin, (shape[1] - 1) // 4), tf.minimum(margin, (shape[2] - 1) // 4)
    return t[:, my:shape[1] - my, mx:shape[2] - mx]


def channel_contrast(layer: str, weight: float = 0.5, unit: int | None = None, margin: int = 0) -> Objective:
    """The channel's mean minus ``weight`` times the largest mean of the layer's other
    channels: an image that drives its unit harder than any other unit of the layer (where
    units share what they like, a plain ``channel`` image is everyone's). 0 < weight <= 1.
    ``margin``: positions left out at each border (where the network's padding lets an image
    cheat with busy edges), at most a quarter of the side."""

    def fn(c: Context) -> tf.Tensor:
        means = tf.reduce_mean(_interior(c.acts[layer], margin), axis=[1, 2])  # (B, C)
        units = c.units if unit is None else tf.fill([tf.shape(means)[0]], unit)
        own = tf.gather(means, units, axis=1, batch_dims=1)
        mine = tf.one_hot(units, tf.shape(means)[1]) > 0
        others = tf.reduce_max(tf.where(mine, tf.fill(tf.shape(means), -tf.float32.max), means), axis=1)
        return own - weight * others

    return Objective(fn, frozenset([layer]), f"channel_contrast({layer}, {unit}, {weight})")


def neuron(layer: str, unit: int | None = None, x: int | None = None, y: int | None = None) -> Objective:
    """Activation of one channel at one position (default: the centre)."""

    def fn(c: Context) -> tf.Tensor:
        t = _unit_slice(c.acts[layer], unit, c.units)
        shape = tf.shape(t)
        yy = shape[1] // 2 if y is None else y
        xx = shape[2] // 2 if x is None else x
        return t[:, yy, xx]

    return Objective(fn, frozenset([layer]), f"neuron({layer}, {unit})")


def deepdream(layers: str | Mapping[str, float]) -> Objective:
    """Weighted sum over layers of the mean squared activation: amplify what is there."""
    weights = {layers: 1.0} if isinstance(layers, str) else dict(layers)
    return Objective(
        lambda c: tf.add_n([w * tf.reduce_mean(tf.square(c.acts[n]), axis=[1, 2, 3]) for n, w in weights.items()]),
        frozenset(weights), f"deepdream({', '.join(weights)})")


def deepdream_abs_square(layers: str | Mapping[str, float]) -> Objective:
    """cnn-vis' other DeepDream objective: weighted sum over layers of the mean of
    ``|a| + a**2``. The linear term keeps a gradient on weak activations that the square
    alone would leave nearly flat, so quieter features grow too."""
    weights = {layers: 1.0} if isinstance(layers, str) else dict(layers)

    def fn(c: Context) -> tf.Tensor:
        return tf.add_n([w * tf.reduce_mean(tf.abs(c.acts[n]) + tf.square(c.acts[n]), axis=[1, 2, 3])
                         for n, w in weights.items()])

    return Objective(fn, frozenset(weights), f"deepdream_abs_square({', '.join(weights)})")


DREAM_OBJECTIVES: dict[str, Callable[[str | Mapping[str, float]], Objective]] = {
    "l2": deepdream, "abs-square": deepdream_abs_square}


def class_logit(index: int | None = None) -> Objective:
    """The score of one class before softmax; ``None``: the class in each row's unit slot
    (``Context.units``), so one compiled step makes images of many classes at once."""
    if index is not None:
        return Objective(lambda c: c.acts[LOGITS][:, index], frozenset([LOGITS]), f"class_logit({index})")
    return Objective(lambda c: tf.gather(c.acts[LOGITS], c.units, axis=1, batch_dims=1), frozenset([LOGITS]),
                     "class_logit(per row)")


def class_log_probability(index: int | None = None) -> Objective:
    """log softmax of one class (or each row's class, as ``class_logit(None)``): unlike the
    logit it also pushes every other class down, which is what flips a prediction."""

    def fn(c: Context) -> tf.Tensor:
        log_p = tf.nn.log_softmax(c.acts[LOGITS], axis=-1)
        return log_p[:, index] if index is not None else tf.gather(log_p, c.units, axis=1, batch_dims=1)

    return Objective(fn, frozenset([LOGITS]), f"class_log_probability({index})")


def feature_match(layer: str, target: tf.Tensor) -> Objective:
    """Minus the squared distance of the layer's features to ``target`` (h, w, C), divided
    by the target's squared norm (Mahendran & Vedaldi 2015's normalized loss): 0 at a
    perfect match, -1 for an image whose features are all zero."""
    t = tf.convert_to_tensor(target, tf.float32)
    norm = tf.maximum(tf.reduce_sum(tf.square(t)), 1e-12)

    def fn(c: Context) -> tf.Tensor:
        return -tf.reduce_sum(tf.square(c.acts[layer] - t[None]), axis=[1, 2, 3]) / norm

    return Objective(fn, frozenset([layer]), f"feature_match({layer})")


def guide(layer: str, guide_acts: tf.Tensor) -> Objective:
    """Match a guide image's features: each position of the dream is pulled towards the
    guide feature vector it already resembles most (the dot product of the best match).
    ``guide_acts``: (h, w, C) activations of the guide image at ``layer``."""
    g = tf.reshape(tf.convert_to_tensor(guide_acts, tf.float32), [-1, guide_acts.shape[-1]])

    def fn(c: Context) -> tf.Tensor:
        a = c.acts[layer]
        flat = tf.reshape(a, [tf.shape(a)[0], -1, tf.shape(a)[-1]])  # (B, N, C)
        dots = tf.einsum("bnc,mc->bnm", flat, g)
        return tf.reduce_mean(tf.reduce_max(dots, axis=-1), axis=-1)

    return Objective(fn, frozenset([layer]), f"guide({layer})")


def diversity(layer: str) -> Objective:
    """Push the rows of a batch apart: minus the mean cosine similarity of each row's Gram
    matrix to the others' (Lucid). Equal for every row."""

    def fn(c: Context) -> tf.Tensor:
        a = c.acts[layer]
        b = tf.shape(a)[0]
        flat = tf.reshape(a, [b, -1, tf.shape(a)[-1]])
        gram = tf.reshape(tf.matmul(flat, flat, transpose_a=True), [b, -1])
        gram = tf.math.l2_normalize(gram, axis=1)
        sims = tf.matmul(gram, gram, transpose_b=True)
        off_diagonal = (tf.reduce_sum(sims) - tf.linalg.trace(sims)) / tf.cast(tf.maximum(b * (b - 1), 1), tf.float32)
        return -off_diagonal * tf.ones([b])

    return Objective(fn, frozenset([layer]), f"diversity({layer})")


def distance_to(seed: tf.Tensor | tf.Variable, weight: float = 1.0) -> Objective:
    """Minus ``weight`` times the mean squared difference, in [0, 1] pixels, of the image
    being optimized (before the transforms, as it is kept) to ``seed`` ((size, size, 3) or
    one per row, (B, size, size, 3); a ``tf.Variable`` may change between runs). At
    -0.01 * weight the image is at 20 dB PSNR from the seed."""

    def fn(c: Context) -> tf.Tensor:
        if c.source is None:
            raise ValueError("distance_to needs the untransformed images (Context.source)")
        return -weight * tf.reduce_mean(tf.square(c.source - seed), axis=[1, 2, 3])

    return Objective(fn, frozenset(), f"{weight} * distance_to(seed)")


def total_variation(weight: float = 1.0) -> Objective:
    """``weight`` times the mean absolute difference of neighbouring pixels (use a negative
    weight to penalize noise)."""

    def fn(c: Context) -> tf.Tensor:
        im = c.images
        dy = tf.reduce_mean(tf.abs(im[:, 1:] - im[:, :-1]), axis=[1, 2, 3])
        dx = tf.reduce_mean(tf.abs(im[:, :, 1:] - im[:, :, :-1]), axis=[1, 2, 3])
        return weight * (dx + dy)

    return Objective(fn, frozenset(), f"{weight} * total_variation")
