"""Class images: what the network thinks a class looks like (Simonyan et al. 2013; the Keras
blog's "how convolutional networks see the world").

Gradient ascent on each class's score before softmax, one class per batch row, with any
unit-image preset (Lucid's Fourier parameterization and transforms by default); then the
network's own verdict on the images it made, read from their 8-bit pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from toolbox.nets import Network, Probe
from toolbox.nets.network import PROBS
from toolbox.optvis.objectives import class_logit
from toolbox.optvis.presets import get_preset
from toolbox.optvis.render import Ascent
from toolbox.settings import ClassImageSettings

_DEFAULTS = ClassImageSettings()  # the one place for default numbers is toolbox.settings


class Classifier:
    """The network's class probabilities for uint8 image batches (a ``Probe`` of no layer,
    compiled once, any size), a chunk of images at a time."""

    def __init__(self, network: Network) -> None:
        self.network = network
        self._probe = Probe(network, ())

    def __call__(self, images: np.ndarray, batch: int = 16) -> np.ndarray:
        """(n, H, W, 3) uint8 -> (n, classes) probabilities."""
        images = np.asarray(images)
        out = [self._probe.batch(images[i:i + batch])[PROBS] for i in range(0, len(images), batch)]
        return np.concatenate(out) if out else np.zeros((0, len(self.network.labels)), np.float32)


def rank_of(probabilities: np.ndarray, index: int) -> int:
    """0 when ``index`` is the top class, 1 when second, ..."""
    return int(np.sum(probabilities > probabilities[index]))


@dataclass(frozen=True)
class ClassImages:
    classes: tuple[int, ...]
    images: np.ndarray  # (n, size, size, 3) uint8
    logits: np.ndarray  # (n,) the class score reached (on the untransformed float image)
    probabilities: np.ndarray  # (n, classes) the network's verdict on the uint8 images

    @property
    def ranks(self) -> list[int]:
        return [rank_of(p, c) for p, c in zip(self.probabilities, self.classes)]

    @property
    def top1_rate(self) -> float:
        return float(np.mean([r == 0 for r in self.ranks])) if self.classes else 0.0


def class_images(network: Network, classes: Sequence[int], preset: str = _DEFAULTS.preset,
                 size: int = _DEFAULTS.size, steps: int = _DEFAULTS.steps, batch: int = _DEFAULTS.batch, seed: int = 0,
                 on_step: Callable[[], None] | None = None,
                 on_batch: Callable[[list[int], np.ndarray], None] | None = None) -> ClassImages:
    """One image per class, ``batch`` classes at a time; ``on_batch(classes, images)`` after
    each batch (so a caller can store what is done)."""
    classes = [int(c) for c in classes]
    ascent = Ascent(network, class_logit(None), get_preset(preset))
    images, logits = [], []
    for start in range(0, len(classes), batch):
        chunk = classes[start:start + batch]
        rendered = ascent.run(chunk, size, steps, seed=seed + start,
                              on_step=(lambda *_: on_step()) if on_step else None)
        images.append(rendered.images)
        logits.append(rendered.objective)
        if on_batch is not None:
            on_batch(chunk, rendered.images)
    images_all = np.concatenate(images) if images else np.zeros((0, size, size, 3), np.uint8)
    probabilities = Classifier(network)(images_all) if len(images_all) else np.zeros((0, 0))
    return ClassImages(tuple(classes), images_all, np.concatenate(logits) if logits else np.zeros(0), probabilities)
