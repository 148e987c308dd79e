"""How well unit images do their job, measured on the network itself.

For a unit image: is its unit the strongest channel of the layer on it (selectivity),
and how much harder does it drive the unit than the best of a set of reference photos
(the ratio of channel means, the same statistic the `channel` objective maximizes)?

A unit image can be judged as it is (its own size) or, with ``fit``, through the
network's normal fit (``Network.fit_input``: resized to the input size, as a photo is):
the scale at which the network reads it in the window and the atlas.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from toolbox.nets import Network, Probe


@dataclass(frozen=True)
class UnitQuality:
    unit: int
    selective: bool  # the unit is the layer's strongest channel on its own image
    value: float  # the unit's channel mean on its own image
    best_photo_value: float  # the unit's largest channel mean over the reference photos

    @property
    def ratio(self) -> float:
        """value / best photo value; infinite when no photo excites the unit at all."""
        if self.best_photo_value <= 0:
            return float("inf") if self.value > 0 else 0.0
        return self.value / self.best_photo_value


def measure_unit_images(network: Network, layer: str, units: Sequence[int], images: Sequence[np.ndarray],
                        photos: Sequence[np.ndarray], fit: bool = False) -> list[UnitQuality]:
    probe = Probe(network, [layer])
    photo_means = np.stack([probe(network.fit_input(p)).activations[layer].mean(axis=(0, 1)) for p in photos])
    best = photo_means.max(axis=0)
    out = []
    for unit, image in zip(units, images):
        means = probe(network.fit_input(image) if fit else image).activations[layer].mean(axis=(0, 1))
        out.append(UnitQuality(unit, int(np.argmax(means)) == unit, float(means[unit]), float(best[unit])))
    return out


def summarize(qualities: Sequence[UnitQuality]) -> tuple[int, float]:
    """(how many units are selective, the median ratio over the units some photo excites)."""
    finite = [q.ratio for q in qualities if np.isfinite(q.ratio)]
    return sum(q.selective for q in qualities), float(np.median(finite)) if finite else float("nan")
