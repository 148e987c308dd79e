"""The Probe: one compiled path from pixels to the activations of chosen layers.

``Probe(network, layers)`` takes the network's view of those layers (one multi-output
model cut after the deepest layer it needs, plus the class probabilities) and wraps it
in one ``tf.function`` whose input signature has free batch, height and width, so it is
traced once for all frames and sizes. Normalization happens inside the compiled graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import tensorflow as tf

from toolbox.nets.network import PROBS, Network


def top_classes(probs: np.ndarray, labels: Sequence[str], k: int = 5) -> list[tuple[str, float]]:
    """The ``k`` most probable classes, most probable first: [(label, probability)]; none for a
    network without a classifier."""
    if not len(labels):
        return []
    order = np.argsort(probs)[::-1][:k]
    return [(labels[i], float(probs[i])) for i in order]


@dataclass(frozen=True)
class Observation:
    """What the network saw in one image: ``activations[layer]`` is (h, w, c), ``probs`` (classes,)."""

    activations: dict[str, np.ndarray]
    probs: np.ndarray

    def top(self, labels: Sequence[str], k: int = 5) -> list[tuple[str, float]]:
        return top_classes(self.probs, labels, k)


class Probe:
    def __init__(self, network: Network, layers: Sequence[str]) -> None:
        self.network = network
        self.layers = tuple(layers)
        classes = network.spec.has_classifier  # a features-only network gives empty probabilities
        model = network.view(self.layers, with_probs=classes)

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
        def run(pixels):
            out = dict(model(network.normalize(pixels), training=False))
            if not classes:
                out[PROBS] = tf.zeros([tf.shape(pixels)[0], 0])
            return out

        self._run = run

    @property
    def trace_count(self) -> int:
        return self._run.experimental_get_tracing_count()

    def batch(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """(n, h, w, 3) pixels in [0, 255] -> {layer: (n, h', w', c), PROBS: (n, classes)} (no
        classes without a classifier)."""
        out = self._run(tf.convert_to_tensor(images, tf.float32))
        return {k: v.numpy() for k, v in out.items()}

    def __call__(self, image: np.ndarray) -> Observation:
        """One RGB image (h, w, 3), uint8 or float in [0, 255]."""
        out = self.batch(np.asarray(image, np.float32)[None])
        probs = out.pop(PROBS)[0]
        return Observation({k: v[0] for k, v in out.items()}, probs)
