"""How well unit images do their job, measured on the network itself.

For a unit image: is its unit the strongest channel of the layer on it (selectivity),
and how much harder does it drive the unit than the best of a set of reference photos
(the ratio of channel means, the same statistic the `channel` objective maximizes)?
Where a chain of ReLU6 caps bounds the unit (``optvis.unit_range.upper_bounds``, and some
input already reaches a good part of the bound), a ratio to photos cannot say much: the
fraction of the bound the image reaches is given instead.

A unit image can be judged as it is (its own size) or, with ``fit``, through the
network's normal fit (``Network.fit_input``: resized to the input size, as a photo is):
the scale at which the network reads it in the window and the atlas; and with
``pre_relu`` on the values before the layer's ReLU (what the engine maximizes: a ReLU6
layer's values stop at 6, and a unit held at 0 by its ReLU ties with every other).

``judge_layer`` is the whole judgement of one layer's unit images, as the benchmark part
``layers`` (scripts/bench/layers.py) prints it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import tensorflow as tf

from toolbox.nets import Network, Probe


@dataclass(frozen=True)
class UnitQuality:
    unit: int
    selective: bool  # the unit is the layer's strongest channel on its own image
    value: float  # the unit's channel mean on its own image
    best_photo_value: float  # the unit's largest channel mean over the reference photos
    bound: float | None = None  # the largest value the unit can take, where a cap makes that tight

    @property
    def ratio(self) -> float:
        """value / best photo value; infinite when no photo excites the unit at all."""
        if self.best_photo_value <= 0:
            return float("inf") if self.value > 0 else 0.0
        return self.value / self.best_photo_value

    @property
    def bound_fraction(self) -> float | None:
        """value / bound where the unit is judged against its bound, else None."""
        return None if self.bound is None else self.value / self.bound


def _channel_means(network: Network, layer: str, pre_relu: bool):
    """A compiled function: (n, h, w, 3) pixels -> (n, C) channel means of ``layer``."""
    view = network.view([layer], pre_relu)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def means(pixels):
        return tf.reduce_mean(view(network.normalize(pixels), training=False)[layer], axis=[1, 2])

    return lambda images: means(tf.convert_to_tensor(np.asarray(images, np.float32))).numpy()


def measure_unit_images(network: Network, layer: str, units: Sequence[int], images: Sequence[np.ndarray],
                        photos: Sequence[np.ndarray], fit: bool = False, pre_relu: bool = False,
                        bounds: dict[int, float] | None = None) -> list[UnitQuality]:
    """``bounds``: {unit: bound} for the units to judge against their bound (``capped_bounds``)."""
    if pre_relu:
        means = _channel_means(network, layer, True)
    else:
        probe = Probe(network, [layer])

        def means(batch):
            return np.stack([probe(x).activations[layer].mean(axis=(0, 1)) for x in batch])

    best = means(np.stack([network.fit_input(p) for p in photos])).max(axis=0)
    bounds = bounds or {}
    out = []
    for unit, image in zip(units, images):
        m = means((network.fit_input(image) if fit else image)[None])[0]
        out.append(UnitQuality(unit, int(np.argmax(m)) == unit, float(m[unit]), float(best[unit]), bounds.get(unit)))
    return out


def summarize(qualities: Sequence[UnitQuality]) -> tuple[int, float]:
    """(how many units are selective, the median ratio over the units some photo excites)."""
    finite = [q.ratio for q in qualities if np.isfinite(q.ratio) and q.bound is None]
    return sum(q.selective for q in qualities), float(np.median(finite)) if finite else float("nan")


def spread_units(channels: int, count: int = 4) -> list[int]:
    """``count`` units spread evenly over a layer of ``channels`` (the middle of each of
    ``count`` equal parts): 4 of 112 are 14, 42, 70, 98."""
    count = min(count, channels)
    return sorted({int((2 * i + 1) * channels // (2 * count)) for i in range(count)})


@dataclass(frozen=True)
class LayerJudgement:
    """The judgement of one layer's unit images (as made, before the layer's ReLU)."""

    layer: str
    size: int  # side of the images
    units: tuple[int, ...]
    qualities: tuple[UnitQuality, ...]
    flat: tuple[str, ...]  # the units with nothing to show, as ``Variation.describe`` says them
    varying: tuple[int, ...]  # the judged units that vary
    seconds: float  # time to make the images (compiled beforehand)
    contenders: tuple[int, ...] = ()  # of those, the units that can lead their layer at all

    @property
    def selective(self) -> int:
        return sum(q.selective for q in self.qualities if q.unit in self.varying)

    @property
    def selective_contenders(self) -> int:
        return sum(q.selective for q in self.qualities if q.unit in self.contenders)

    @property
    def median_ratio(self) -> float:
        r = [q.ratio for q in self.qualities if q.unit in self.varying and q.bound is None and np.isfinite(q.ratio)]
        return float(np.median(r)) if r else float("nan")

    @property
    def median_bound_fraction(self) -> float:
        f = [q.bound_fraction for q in self.qualities if q.unit in self.varying and q.bound is not None]
        return float(np.median(f)) if f else float("nan")

    @property
    def per_minute(self) -> float:
        return len(self.units) * 60.0 / self.seconds if self.seconds > 0 else float("nan")

    def reach(self) -> str:
        """The median ratio to the best photo, and/or the median fraction of the bound."""
        parts = []
        if np.isfinite(self.median_ratio):
            parts.append(f"{self.median_ratio:.2f}x photo")
        if np.isfinite(self.median_bound_fraction):
            parts.append(f"{self.median_bound_fraction:.0%} of bound")
        return ", ".join(parts) or "-"


def capped_bounds(network: Network, layer: str, units: Sequence[int], peaks: dict[int, float],
                  capped_at: float | None = None) -> dict[int, float]:
    """{unit: bound} for the units a cap bounds tightly: the largest value they can take at
    any position (``upper_bounds(mean=False)``, which also bounds their channel mean, borders
    included) is known, and some input already reaches ``capped_at`` of it somewhere
    (``peaks``: each unit's largest value before the ReLU at any position of the probe
    inputs, ``Variation.peak``)."""
    from toolbox.optvis.unit_range import CAPPED_AT, upper_bounds

    capped_at = CAPPED_AT if capped_at is None else capped_at
    bounds = upper_bounds(network, layer, mean=False)
    if bounds is None:
        return {}
    return {u: float(bounds[u]) for u in units if bounds[u] > 0 and peaks.get(u, 0.0) >= capped_at * bounds[u]}


def example_variation(network: Network, layer: str, units: Sequence[int] | None = None) -> dict:
    """{unit: unit_range.Variation} over the bundled example photos and random and plain inputs
    (``units`` None: all of the layer's): which units have nothing to show (``flat``) and the
    plain image an image must beat (``shows_something``); what ``deepvis units`` and the live
    window's optimized-image pane both say. About a second a layer."""
    from toolbox.images import list_images, read_image
    from toolbox.optvis.unit_range import unit_variation
    from toolbox.settings import bundled

    photos = [read_image(p) for p in list_images(bundled("examples"))]
    return {v.unit: v for v in unit_variation(network, layer, units, photos)}
