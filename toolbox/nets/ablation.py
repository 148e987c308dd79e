"""Switching channels off: a network's graph in which one layer's output is multiplied,
channel by channel, by a mask given at call time (``Network.masked_view``).

The check of a circuit is an ablation: zero the channel said to contribute most to a unit
and see the unit drop. The mask lives in a ``ContextVar`` (as ``relu_rules``' rule does): it
is read while the graph is called, so one compiled function takes it as an argument and
nothing is left behind between calls. Outside ``channel_mask`` it computes what the network
computes.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

import keras
import tensorflow as tf

_MASK: ContextVar[tf.Tensor | None] = ContextVar("deepvis_channel_mask", default=None)


@contextmanager
def channel_mask(mask: tf.Tensor) -> Iterator[None]:
    """Within this block, a ``Masked`` layer multiplies its output by ``mask`` (n, channels)."""
    token = _MASK.set(mask)
    try:
        yield
    finally:
        _MASK.reset(token)


class Masked(keras.layers.Layer):
    """``inner``, whose output is multiplied by the current ``channel_mask`` (when one is set)."""

    def __init__(self, inner: keras.layers.Layer, **kwargs) -> None:
        super().__init__(name=inner.name, dtype=inner.dtype_policy, **kwargs)
        self.inner = inner

    def build(self, input_shape) -> None:
        if not self.inner.built:
            self.inner.build(input_shape)

    def call(self, inputs, **kwargs):
        out = self.inner(inputs, **kwargs)
        mask = _MASK.get()
        return out if mask is None else out * tf.cast(mask, out.dtype)[:, None, None, :]

    def compute_output_spec(self, inputs, **kwargs):
        return self.inner.compute_output_spec(inputs, **kwargs)
