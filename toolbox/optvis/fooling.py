"""Fooling images: a change too small to see that makes the network predict another class
(Szegedy et al. 2013), and images made from noise that the network is sure show a class
(Nguyen et al. 2015).

Both are gradient ascent on the target's log-probability in pixel space. The small change is
projected after every step back into the box of ``epsilon`` around the photo (projected
gradient ascent, Adam steps of ``epsilon / 2``). The verdict that counts is the network's on
the 8-bit image as it will be written, checked every few steps: the run stops as soon as
every image reaches ``confidence`` there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from toolbox.nets import Network
from toolbox.optvis import params, transforms
from toolbox.optvis.classes import Classifier
from toolbox.optvis.objectives import class_log_probability
from toolbox.optvis.presets import Preset
from toolbox.optvis.render import Ascent
from toolbox.optvis.updates import Adam
from toolbox.settings import FoolSettings

_DEFAULTS = FoolSettings()  # the one place for default numbers is toolbox.settings

CHECK_EVERY = 5  # steps between two looks at the 8-bit images


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two uint8 images (inf when equal)."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0 ** 2 / mse)


@dataclass(frozen=True)
class Fooled:
    images: np.ndarray  # (n, H, W, 3) uint8, as they will be written
    targets: tuple[int, ...]
    probabilities: np.ndarray  # (n, classes) on the uint8 images
    steps: int  # steps taken

    @property
    def target_probabilities(self) -> np.ndarray:
        return self.probabilities[np.arange(len(self.targets)), list(self.targets)]


class Fooler:
    """Compiled once per network and update size; photos, targets and epsilon change freely."""

    def __init__(self, network: Network, lr: float, classifier: Classifier | None = None) -> None:
        self.network = network
        self.classifier = classifier or Classifier(network)
        # the box the values must stay in, per pixel; reassigned for every run (shape may change)
        self._lo = tf.Variable(np.zeros((1, 1, 1, 3), np.float32), shape=tf.TensorShape(None), trainable=False)
        self._hi = tf.Variable(np.zeros((1, 1, 1, 3), np.float32), shape=tf.TensorShape(None), trainable=False)
        preset = Preset("fool", params.pixels(), transforms.unchanged, Adam(lr=lr))
        self._ascent = Ascent(network, class_log_probability(None), preset, pre_relu=False,
                              project=lambda values: tf.clip_by_value(values, self._lo, self._hi))

    def run(self, start: np.ndarray, lo: np.ndarray, hi: np.ndarray, targets: Sequence[int], confidence: float,
            max_steps: int, on_step: Callable[[], None] | None = None) -> Fooled:
        """Ascend from ``start`` (uint8 or float pixels in [0, 255]) within [lo, hi] (pixels)."""
        self._lo.assign(params.pixel_values(lo))
        self._hi.assign(params.pixel_values(hi))
        size = start.shape[1]
        if start.shape[1] != start.shape[2]:
            raise ValueError("fooling works on square images (the network's input view)")
        run = self._ascent.start(list(targets), size, max_steps, init=params.pixel_values(start))
        images = run.images()
        probabilities = self.classifier(images)
        while not run.done:
            reached = probabilities[np.arange(len(targets)), list(targets)]
            if np.all(reached >= confidence):
                break
            for _ in range(min(CHECK_EVERY, run.steps - run.taken)):
                run.step()
                if on_step is not None:
                    on_step()
            images = run.images()
            probabilities = self.classifier(images)
        return Fooled(images, tuple(int(t) for t in targets), probabilities, run.taken)


def fool_photos(network: Network, photos: np.ndarray, targets: Sequence[int], epsilon: float,
                confidence: float = _DEFAULTS.confidence, max_steps: int = _DEFAULTS.steps, fooler: Fooler | None = None,
                on_step: Callable[[], None] | None = None, classifier: Classifier | None = None) -> Fooled:
    """Change each photo (n, S, S, 3) uint8 by at most ``epsilon`` (a fraction of the full
    range) per pixel value so that the network predicts its target. ``classifier``: one the
    caller already compiled, for a new ``fooler``'s verdicts."""
    photos = np.asarray(photos, np.float32)
    delta = epsilon * 255.0
    lo, hi = np.clip(photos - delta, 0, 255), np.clip(photos + delta, 0, 255)
    fooler = fooler or Fooler(network, lr=epsilon / 2, classifier=classifier)
    return fooler.run(photos, lo, hi, targets, confidence, max_steps, on_step)


def fool_from_noise(network: Network, targets: Sequence[int], size: int, confidence: float = _DEFAULTS.confidence,
                    max_steps: int = _DEFAULTS.steps, seed: int = 0, lr: float = 0.01,
                    on_step: Callable[[], None] | None = None, classifier: Classifier | None = None) -> Fooled:
    """Images that start as uniform noise and end, still looking like noise, classified as
    their targets with at least ``confidence`` (unless ``max_steps`` runs out first)."""
    rng = np.random.default_rng(seed)
    start = rng.uniform(0, 255, (len(targets), size, size, 3)).astype(np.float32)
    lo, hi = np.zeros_like(start), np.full_like(start, 255.0)
    return Fooler(network, lr, classifier).run(start, lo, hi, targets, confidence, max_steps, on_step)
