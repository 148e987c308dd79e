"""Where in the input a unit looks: its receptive field, measured on the network itself.

The field of the unit at grid position (i, j) of a layer is the square of ``size`` input
pixels whose top-left corner is ``(offset + i * stride, offset + j * stride)``; parts of it
may lie outside the image (zero padding), as in the Deep Visualization Toolbox's crops.

``size`` and ``stride`` come from the graph walk (``graph.receptive_field``); the offset
is measured, which needs no knowledge of each layer's padding rules: the gradient of one
unit in the middle of a large input, over a few random inputs, is non-zero exactly on the
pixels that unit can see (a ReLU may hide some of them for one input, hardly for all).
Rows and columns are measured on two strips of input rather than one large square.

``network.Network`` keeps each measured field (``Network.unit_field``); this module needs
only the few things of a network that ``Measured`` names, so it imports nothing of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import numpy as np
import tensorflow as tf

from toolbox.nets.spec import ModelSpec

PROBES = 4  # random inputs whose gradient extents are joined


class Measured(Protocol):
    """What measuring a field reads of a network (``network.Network`` has it all)."""

    spec: ModelSpec

    @property
    def fixed_input(self) -> bool: ...

    def view(self, layers: Sequence[str]) -> Any: ...

    def normalize(self, pixels: Any) -> Any: ...

    def receptive_field(self, layer: str) -> tuple[int, int]: ...


@dataclass(frozen=True)
class Field:
    size: int  # side in input pixels
    stride: int  # input pixels between neighbouring units
    offset_y: int  # top-left corner of the field of unit (0, 0); usually negative
    offset_x: int

    def box(self, i: int, j: int) -> tuple[int, int, int, int]:
        """(y0, x0, y1, x1) in input pixels of the field of the unit at (i, j), end exclusive."""
        y0, x0 = self.offset_y + i * self.stride, self.offset_x + j * self.stride
        return y0, x0, y0 + self.size, x0 + self.size


    def clamped(self, largest: int) -> "Field":
        """The same centre with a side of at most ``largest`` (deep layers see more than the
        whole image; their crops show the image-sized window around the unit instead)."""
        if self.size <= largest:
            return self
        shift = (self.size - largest) // 2
        return Field(largest, self.stride, self.offset_y + shift, self.offset_x + shift)


def _extent(network: Measured, layer: str, height: int, width: int, axis: int) -> tuple[int, int, int]:
    """(first, last) input row (``axis`` 0) or column (1) that the middle unit of ``layer``
    sees on a ``height`` x ``width`` input, and that unit's row or column in the layer."""
    view = network.view([layer])
    rng = np.random.default_rng(0)
    seen = np.zeros(height if axis == 0 else width, bool)
    for _ in range(PROBES):  # one at a time: deep layers need large inputs
        pixels = tf.constant(rng.uniform(0, 255, (1, height, width, 3)).astype(np.float32))
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(pixels)
            acts = view(network.normalize(pixels), training=False)[layer]
            ci, cj = acts.shape[1] // 2, acts.shape[2] // 2
            value = tf.reduce_sum(acts[:, ci, cj, :])
        seen |= (np.abs(tape.gradient(value, pixels).numpy()[0]).sum(axis=-1) > 0).any(axis=1 - axis)
    found = np.flatnonzero(seen)
    return int(found[0]), int(found[-1]), ci if axis == 0 else cj


def unit_field(network: Measured, layer: str) -> Field:
    """The field of ``layer``'s units, measured (ask ``Network.unit_field``: it keeps it).

    Rows and columns are measured apart, each on a strip: an input long enough along the
    measured side for the middle unit's whole field to fit, and only a few strides wide
    across it (a row of the gradient depends on the rows of the input alone, so the strip
    changes nothing but the cost: deep layers of a 299 px network see over 1,000 px)."""
    size, stride = network.receptive_field(layer)
    # sides a multiple of the stride (so "same" padding pads alike everywhere); the long one
    # holds the middle unit's whole field, the short one the network's smallest input
    side = -(-(max(network.spec.input_size, size + 4 * stride)) // stride) * stride
    thin = -(-(max(network.spec.min_size, 2 * stride)) // stride) * stride
    if network.fixed_input:  # any other size would be resized inside the network, fields with it
        side = thin = network.spec.input_size
    (top_seen, bottom, ci), (left_seen, right, cj) = (_extent(network, layer, side, thin, 0),
                                                       _extent(network, layer, thin, side, 1))
    measured = max(bottom - top_seen + 1, right - left_seen + 1)
    if measured > size:  # cannot happen for a correct graph walk; trust what was measured
        size = int(measured)
    # centre the (theoretical, never smaller) size on the measured extent
    top = top_seen - (size - (bottom - top_seen + 1)) // 2
    left = left_seen - (size - (right - left_seen + 1)) // 2
    return Field(int(size), int(stride), int(top - ci * stride), int(left - cj * stride))
