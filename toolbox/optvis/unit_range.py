"""What a unit can do at all: whether it varies, and how far a chain of caps lets it go.

Two facts about a unit that no image can change, and that decide what its unit image means:

- ``unit_variation``: over the example photos and random inputs, does the unit vary, and
  does it ever turn on? A unit that is nearly constant (EfficientNet-Lite0 ``block9_dw_relu``
  unit 34: 0.90 on any input) or never on has nothing to show: its optimized image is flat
  or noise, and must be said as such rather than presented as a result.
- ``upper_bounds``: the largest value each channel of a layer can take before its ReLU,
  by interval arithmetic through the graph from the input's pixel range (convolutions,
  batch norms, sums, concatenations, pools and ReLUs). A ReLU6 chain makes this bound
  tight: a depthwise unit of lite0 sees at most 6 from each of its inputs, and a photo may
  already reach much of the bound, so a ratio to photos says little there; the fraction of
  the bound an image reaches says how well it does (``capped``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from toolbox.nets import Network

Interval = tuple[np.ndarray, np.ndarray]  # per channel: (lowest, highest)

# relative spread (max - min over every position of every input, over the largest |value|
# seen or the layer's typical spread, whichever is larger) below which a unit counts as
# constant: block9_dw_relu unit 34 of lite0 spans 0.003 of its layer's spread (0.895-0.906)
CONSTANT_SPREAD = 0.02
# a unit whose bound (at one position) some input already reaches this fraction of is judged
# by its fraction of the bound instead of its ratio to photos (quality.capped_bounds)
CAPPED_AT = 0.25


# -- interval arithmetic ------------------------------------------------------------------
#
# Each tensor gets two intervals per channel: one for its value at any position, and one for
# its channel mean over the interior (positions whose field lies inside the image). They differ
# after a linear step of stride 1: the mean of a convolution is its kernel summed over space
# applied to the input's mean (interior), which a pattern cannot beat, whereas one position can
# take each kernel tap's extreme at once. A depthwise unit whose taps sum to a negative weight
# is highest, on average, where its input is off: on a plain image.

Bounds = tuple[Interval, Interval]  # (at any position, channel mean over the interior)


def _with_zero(iv: Interval) -> Interval:
    """The interval of a tensor zero-padded at its borders."""
    return np.minimum(iv[0], 0.0), np.maximum(iv[1], 0.0)


def _affine(iv: Interval, kernel: np.ndarray, bias: np.ndarray | None, depthwise: bool) -> Interval:
    """Bounds of a (depthwise) convolution or Dense over inputs in ``iv``; ``kernel`` as Keras
    stores it: (..., in, out) or, depthwise, (kh, kw, in, multiplier)."""
    lo, hi = iv
    pos, neg = np.maximum(kernel, 0), np.minimum(kernel, 0)
    if depthwise:
        # output channel c * multiplier + m sees input channel c alone
        top = (pos * hi[:, None] + neg * lo[:, None]).reshape(-1, *kernel.shape[-2:]).sum(axis=0).reshape(-1)
        bottom = (pos * lo[:, None] + neg * hi[:, None]).reshape(-1, *kernel.shape[-2:]).sum(axis=0).reshape(-1)
    else:
        p, n = pos.reshape(-1, *kernel.shape[-2:]), neg.reshape(-1, *kernel.shape[-2:])
        top = np.einsum("kio,i->o", p, hi) + np.einsum("kio,i->o", n, lo)
        bottom = np.einsum("kio,i->o", p, lo) + np.einsum("kio,i->o", n, hi)
    if bias is not None:
        top, bottom = top + bias, bottom + bias
    return bottom, top


def _activation(iv: Interval, name: str) -> Interval | None:
    lo, hi = iv
    if name in ("linear", ""):
        return iv
    if name == "relu":
        return np.maximum(lo, 0), np.maximum(hi, 0)
    if name == "relu6":
        return np.clip(lo, 0, 6), np.clip(hi, 0, 6)
    return None


def _value(v) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(v), np.float64)


def _same(a: Interval) -> Bounds:
    return a, a


def _through(op, inputs: list[Bounds]) -> Bounds | None:
    """The bounds of ``op``'s output, per channel, or None when they are not known here."""
    L = keras.layers
    inner = getattr(op, "_inner", None)  # keras_graph.LinearPart: the layer without its activation
    if inner:
        op, activation = inner[0], "linear"
    else:
        activation = getattr(getattr(op, "activation", None), "__name__", "linear")
    if isinstance(op, (L.Conv2D, L.DepthwiseConv2D, L.Dense)):
        if getattr(op, "groups", 1) != 1:
            return None
        depthwise = isinstance(op, L.DepthwiseConv2D)
        (at, mean) = inputs[0]
        kernel = _value(op.kernel)
        bias = _value(op.bias) if op.use_bias else None
        padded = getattr(op, "padding", "valid") == "same" and max(getattr(op, "kernel_size", (1,))) > 1
        pointwise = _affine(_with_zero(at) if padded else at, kernel, bias, depthwise)
        strided = max(getattr(op, "strides", (1,))) > 1 or max(getattr(op, "dilation_rate", (1,))) > 1
        if strided or isinstance(op, L.Dense):
            averaged = pointwise  # each tap may see its own phase of a pattern
        else:
            summed = kernel.reshape(-1, *kernel.shape[-2:]).sum(axis=0)[None]
            averaged = _affine(mean, summed, bias, depthwise)
        if activation == "linear":
            return pointwise, averaged
        out = _activation(pointwise, activation)
        return None if out is None else _same(out)
    if isinstance(op, L.BatchNormalization):
        scale = 1.0 / np.sqrt(_value(op.moving_variance) + op.epsilon)
        if op.scale:
            scale = scale * _value(op.gamma)
        shift = (_value(op.beta) if op.center else 0.0) - _value(op.moving_mean) * scale

        def bn(iv: Interval) -> Interval:
            return np.minimum(iv[0] * scale, iv[1] * scale) + shift, np.maximum(iv[0] * scale, iv[1] * scale) + shift

        return bn(inputs[0][0]), bn(inputs[0][1])
    if isinstance(op, L.ReLU):
        if float(op.negative_slope or 0) != 0 or float(op.threshold or 0) != 0:
            return None
        lo, hi = np.maximum(inputs[0][0][0], 0), np.maximum(inputs[0][0][1], 0)
        if op.max_value is not None:
            lo, hi = np.minimum(lo, float(op.max_value)), np.minimum(hi, float(op.max_value))
        return _same((lo, hi))
    if isinstance(op, L.Activation):
        if activation == "linear":
            return inputs[0]
        out = _activation(inputs[0][0], activation)
        return None if out is None else _same(out)
    if isinstance(op, L.Add):
        return tuple((sum(i[k][0] for i in inputs), sum(i[k][1] for i in inputs)) for k in (0, 1))
    if isinstance(op, L.Concatenate) and op.axis in (-1, 3):
        return tuple((np.concatenate([i[k][0] for i in inputs]), np.concatenate([i[k][1] for i in inputs]))
                     for k in (0, 1))
    if isinstance(op, (L.AveragePooling2D, L.GlobalAveragePooling2D, L.Dropout, L.SpatialDropout2D,
                       L.Cropping2D)):
        return inputs[0]
    if isinstance(op, (L.MaxPooling2D, L.GlobalMaxPooling2D)):
        return _same(inputs[0][0])
    if isinstance(op, L.ZeroPadding2D):
        return _same(_with_zero(inputs[0][0]))
    return None


def _input_interval(network: Network) -> Interval:
    """The normalized input's range per colour channel, from pixels in [0, 255]."""
    lo = np.asarray(network.normalize(np.zeros(3, np.float32)), np.float64)
    hi = np.asarray(network.normalize(np.full(3, 255.0, np.float32)), np.float64)
    return np.minimum(lo, hi), np.maximum(lo, hi)


def _bounds_of(tensor, start: Interval) -> Bounds | None:
    """The bounds of a KerasTensor, walking its graph back to the input (which is in ``start``)."""
    from toolbox.nets.keras_graph import producer

    memo: dict[int, Bounds | None] = {}

    def known(t) -> Bounds | None:
        op, node = producer(t)
        return _same(start) if op is None else memo[id(node)]

    stack = [tensor]
    while stack:  # depth first without recursion, as graph.receptive_field
        op, node = producer(stack[-1])
        if op is None or id(node) in memo:
            stack.pop()
            continue
        parents = list(node.input_tensors)
        waiting = [p for p in parents if producer(p)[0] is not None and id(producer(p)[1]) not in memo]
        if waiting:
            stack.extend(waiting)
            continue
        stack.pop()
        got = [known(p) for p in parents]
        memo[id(node)] = None if any(k is None for k in got) else _through(op, got)
    return known(tensor)


def _layer_bounds(network: Network, layer: str) -> Bounds | None:
    return network._once(("upper_bounds", network.spec.layer(layer).name),
                         lambda: _bounds_of(network.layer_tensor(layer, pre_relu=True), _input_interval(network)))


def mean_lower_bounds(network: Network, layer: str) -> np.ndarray | None:
    """(C,): the smallest channel mean over the interior each channel of ``layer`` can take
    before its ReLU, for any input image (None as for ``upper_bounds``)."""
    both = _layer_bounds(network, layer)
    return None if both is None else both[1][0].copy()


def upper_bounds(network: Network, layer: str, mean: bool = True) -> np.ndarray | None:
    """(C,): the largest value each channel of ``layer`` can take before its ReLU, for any
    input image: its channel mean over the interior (``mean``: what the ``channel`` objective
    maximizes), or its value at any one position. None when the graph holds a layer this
    arithmetic does not know (then nothing is claimed). Loose after many layers (each step
    takes every input's worst case on its own); tight where a ReLU6 caps a unit's inputs one
    linear step back (lite0's depthwise units)."""
    both = _layer_bounds(network, layer)
    return None if both is None else both[1 if mean else 0][1].copy()  # float64: deep bounds pass 3e38


# -- variation ---------------------------------------------------------------------------

PLAIN_COLOURS = ((127.5, 127.5, 127.5), (0, 0, 0), (255, 255, 255), (255, 0, 0), (0, 255, 0), (0, 0, 255),
                 (255, 255, 0), (0, 255, 255), (255, 0, 255))
# how far above a plain image (the median of PLAIN_COLOURS) a unit image must drive its unit to
# show something, as a fraction of the unit's span over the probe inputs (before the ReLU)
ABOVE_PLAIN = 0.05
# the kind of an image that does not show something (``Variation.as_record``): not kept
NO_BETTER_THAN_PLAIN = "no_better_than_plain"


@dataclass(frozen=True)
class Variation:
    """How one unit of a layer behaves over the photos, random and plain inputs: its values as
    the layer gives them (after any ReLU: what the window's unit pane shows), and before the
    ReLU (what unit images maximize)."""

    unit: int
    lowest: float  # smallest value at any position of any input
    highest: float  # largest
    mean: float  # mean over positions and inputs
    constant: bool  # nearly the same value everywhere: nothing to show
    never_on: bool  # a rectified unit that stays at (or barely above) zero on every input
    peak: float  # largest value before the ReLU at any position of any input
    best_mean: float  # largest channel mean before the ReLU over the inputs
    span: float  # largest minus smallest channel mean before the ReLU over the inputs
    plain: float  # median channel mean before the ReLU over the plain (one-colour) images
    plain_low: float  # the smallest of them
    bound: float | None  # largest value the unit can take at any position before the ReLU (``upper_bounds``)
    mean_bound: float | None  # largest channel mean it can take over the image's interior
    rival: int | None = None  # the other unit of the layer whose least interior mean is largest
    rival_floor: float | None = None  # that least mean: no image takes the rival below it

    @property
    def cannot_lead(self) -> bool:
        """Whether no image makes the unit its layer's strongest channel (on average over the
        interior, before the ReLU): its largest mean is below the least mean of another unit.
        Such a unit may show a pattern, but cannot be selective (lite0 block4_dw_relu unit 15:
        at most -0.01 on average, while other units' means never fall that low)."""
        return self.mean_bound is not None and self.rival_floor is not None and self.mean_bound < self.rival_floor

    @property
    def plain_peak(self) -> bool:
        """Whether every plain image already takes the unit to its bound, at every position: no
        pattern and no colour drives it further anywhere, so its optimized image is flat (lite0
        block9_dw_relu unit 34: 0.906 on any plain image, and 0.906 is its bound). A unit whose
        bound one colour reaches (a colour unit) is not such a unit."""
        return _reaches(self.plain_low, self.bound)

    @property
    def mean_capped(self) -> bool:
        """Whether every plain image already takes the unit's channel mean over the image's
        interior to its bound, though some pattern drives it further at some positions (a
        depthwise unit whose taps sum below zero; an edge detector whose taps sum to zero): its
        mean before the ReLU can beat a plain image only at the image's borders, so it can
        hardly be its layer's strongest channel; after the ReLU a pattern may still show."""
        return not self.plain_peak and _reaches(self.plain_low, self.mean_bound)

    @property
    def flat(self) -> bool:
        """Whether the unit has nothing to show, whatever the image: constant, at its bound on
        a plain image, or never on with a bound that keeps it off. Its unit image is not made.
        (A unit never on over the probes but not bound off may still be turned on by an
        image: it is made, and kept only if it ``shows_something``.)"""
        return self.constant or self.plain_peak or (self.never_on and self.bound is not None and self.bound <= 0)

    def shows_something(self, value: float) -> bool:
        """Whether an image that gives the unit ``value`` (its channel mean before the ReLU)
        drives it beyond what a plain image does (their median: a colour unit's image may be one
        colour): else the image is flat or noise."""
        return value > self.plain + ABOVE_PLAIN * max(self.span, 1e-6)

    @property
    def kind(self) -> str | None:
        """What keeps the unit from showing something, in one word (None: nothing does):
        never_on, constant, plain_peak (no image made); mean_capped, cannot_lead (made, but it
        cannot be its layer's strongest on average before the ReLU)."""
        for name in ("never_on", "constant", "plain_peak", "mean_capped", "cannot_lead"):
            if getattr(self, name):
                return name
        return None

    def as_record(self, value: float | None = None) -> dict:
        """What an objectives file keeps of a unit with nothing to show, {} when it shows
        something: a ``flat`` unit (no image made), or with ``value`` (its channel mean before
        the ReLU on its image) an image that does not ``shows_something``. E.g.
        {"nothing_to_show": "constant", "value": 0.9, "said": "unit 34 is nearly constant: ..."}."""
        if self.flat:
            value = 0.0 if self.never_on else self.mean if self.constant else self.plain
            return {"nothing_to_show": self.kind, "value": round(value, 4), "said": self.describe()}
        if value is None or self.shows_something(value):
            return {}
        return {"nothing_to_show": NO_BETTER_THAN_PLAIN, "value": round(float(value), 4),
                "said": f"unit {self.unit}: its image drives it no further than a plain image does "
                        f"({value:.3g} against {self.plain:.3g})"}

    def describe(self) -> str:
        """One line for the CLI, the objectives file, the window's pane and the atlas page."""
        if self.never_on:
            return f"unit {self.unit} never turns on: 0 on any input"
        if self.constant:
            return f"unit {self.unit} is nearly constant: {self.mean:.2f} on any input"
        if self.plain_peak:
            return f"unit {self.unit} is highest on any plain image: {self.plain:.2f}, the most it can reach"
        if self.mean_capped:
            return (f"unit {self.unit} is highest on average on any plain image: {self.plain:.2f} (a pattern "
                    f"raises it only in places)")
        if self.cannot_lead:
            return (f"unit {self.unit} cannot lead its layer: at most {self.mean_bound:.3g} on average, unit "
                    f"{self.rival} at least {self.rival_floor:.3g}")
        return f"unit {self.unit} varies: {self.lowest:.3g} to {self.highest:.3g}"


def probe_inputs(photos: Sequence[np.ndarray], size: int, count: int = 4, seed: int = 0) -> np.ndarray:
    """The inputs a unit's variation is judged on, (n, size, size, 3) in [0, 255]: the photos
    (square, centre-cropped, ``size`` px), then ``count`` random images (uniform noise, then
    smooth noise at coarser and coarser scales), then the plain images (``PLAIN_COLOURS``)."""
    from toolbox.images import fit_square

    rng = np.random.default_rng(seed)
    out = [fit_square(np.asarray(p, np.uint8), size).astype(np.float32) for p in photos]
    for i in range(count):
        cells = max(2, size >> (2 * i))  # size, size/4, size/16, ... cells of random colour
        coarse = rng.uniform(0, 255, (1, cells, cells, 3)).astype(np.float32)
        out.append(tf.image.resize(coarse, (size, size), "bilinear").numpy()[0])
    out += [np.broadcast_to(np.asarray(c, np.float32), (size, size, 3)) for c in PLAIN_COLOURS]
    return np.stack(out)


def unit_variation(network: Network, layer: str, units: Sequence[int] | None, photos: Sequence[np.ndarray],
                   size: int | None = None, batch: int = 4) -> list[Variation]:
    """Per unit of ``layer`` (all when ``units`` is None): whether it varies over the photos,
    random and plain inputs (``probe_inputs`` at ``size``, default the network's input size)
    and whether it ever turns on. A unit is constant when its values span less than
    CONSTANT_SPREAD of the larger of its own largest |value| and the median span of the
    layer's units; never on when the layer is rectified and the unit is 0 on every input.
    About a second for lite0's deepest layer on two cores."""
    size = size or network.spec.input_size
    inputs = probe_inputs(photos, size)
    plain_from = len(inputs) - len(PLAIN_COLOURS)
    after, before = network.view([layer]), network.view([layer], pre_relu=True)
    low = high = total = peak = None
    means = []
    count = 0
    for start in range(0, len(inputs), batch):
        x = network.normalize(tf.constant(inputs[start:start + batch]))
        a = np.asarray(after(x, training=False)[layer], np.float64)
        b = np.asarray(before(x, training=False)[layer], np.float64)
        low = _fold(np.minimum, low, a.min(axis=(0, 1, 2)))
        high = _fold(np.maximum, high, a.max(axis=(0, 1, 2)))
        total = _fold(np.add, total, a.sum(axis=(0, 1, 2)))
        peak = _fold(np.maximum, peak, b.max(axis=(0, 1, 2)))
        means.append(b.mean(axis=(1, 2)))
        count += a.shape[0] * a.shape[1] * a.shape[2]
    means = np.concatenate(means)
    spans, mean_spans, plain = high - low, means.max(axis=0) - means.min(axis=0), means[plain_from:]
    typical = float(np.median(spans))
    rectified = network.non_negative(layer)
    bounds, mean_bounds = upper_bounds(network, layer, mean=False), upper_bounds(network, layer)
    floors = mean_lower_bounds(network, layer)
    if floors is not None:  # per unit: the largest floor among the others
        order = np.argsort(floors)[::-1]
        top, second = int(order[0]), int(order[1]) if len(order) > 1 else int(order[0])
    out = []
    for unit in (range(len(spans)) if units is None else units):
        scale = max(abs(float(high[unit])), abs(float(low[unit])), typical, 1e-12)
        never_on = rectified and float(high[unit]) <= CONSTANT_SPREAD * max(typical, 1e-6)  # at most barely on
        constant = not never_on and float(spans[unit]) < CONSTANT_SPREAD * scale
        out.append(Variation(int(unit), float(low[unit]), float(high[unit]), float(total[unit] / count),
                             constant, never_on, float(peak[unit]), float(means[:, unit].max()),
                             float(mean_spans[unit]), float(np.median(plain[:, unit])), float(plain[:, unit].min()),
                             None if bounds is None else float(bounds[unit]),
                             None if mean_bounds is None else float(mean_bounds[unit]),
                             *((None, None) if floors is None else
                               ((second, float(floors[second])) if unit == top else (top, float(floors[top]))))))
    return out


def _fold(f, acc, x):
    return x if acc is None else f(acc, x)


def _reaches(value: float, bound: float | None) -> bool:
    return bound is not None and value >= bound - 0.02 * max(abs(bound), 1e-6)
