"""Circuits: how a unit is built from the units of an earlier layer, and what it feeds.

A unit's value is read as the gradient pane reads it: its channel before its own ReLU, at
its strongest position (``Target.unit(layer, unit, "max")``). The *contribution* of channel
``k`` of an earlier layer ``F`` to it is activation times gradient, summed over space::

    c_k = sum_ij a_F[i, j, k] * d value / d a_F[i, j, k]

Exact where the path from F to the unit is linear (a convolution, batch norm, an add): the
contributions then add up to the value minus what does not come from F (the biases, other
branches); through ReLUs a first-order estimate. One backward pass gives every channel of
F at once, which is what makes it cheap enough for a live window; in residual and
depthwise networks (EfficientNet-Lite, Inception's branches) there is no single weight
matrix between two offered layers, and the contribution measures what the weights do on
the image in front of the network.

The other direction, what a unit ``u`` of layer L feeds: its contribution to every unit
``v`` of a later layer T is ``sum_ij a_L[i, j, u] * d value_v / d a_L[i, j, u]``, one column
of a Jacobian. All ``v`` at once from one forward pass: the vector-Jacobian product
``g(w) = d(w . values_T) / d a_L`` is linear in ``w``, so ``d/dw sum(g(w) * a_L * e_u)`` is the
row of contributions (the double-backward form of a Jacobian-vector product).

``CircuitTracer(network)`` holds the compiled steps (one per layer and its source / target
layers, free batch and size; the units are tensor arguments, so moving through units never
retraces). Rows of a batch are independent: each row is one image with its own unit, which
batches the atlas's work over (unit, image) pairs. No IO here.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from toolbox.errors import UserError
from toolbox.nets.network import PRE_RELU, Network
from toolbox.optvis.relu_rules import rule_relu
from toolbox.tfstart import expected_retracing

_PIXELS = tf.TensorSpec([None, None, None, 3], tf.float32)
_UNITS = tf.TensorSpec([None], tf.int32)


@dataclass(frozen=True)
class Link:
    """One input (or output) of a unit: ``unit`` of the other layer, its contribution and its
    share of the total (the contribution over the sum of every channel's absolute contribution,
    so the shares of a layer's channels add up to 1 in absolute value)."""

    unit: int
    contribution: float
    share: float


@dataclass(frozen=True)
class Circuit:
    """The contributions of every channel of ``source`` to ``layer`` unit ``unit`` (or, for
    outputs, of the unit to every channel of ``source``), averaged over ``images`` images."""

    layer: str
    unit: int
    source: str  # the other layer: where the inputs come from, or where the outputs go
    contributions: np.ndarray  # (channels of source,) float32
    value: float  # the unit's mean value (before its ReLU, at its strongest position)
    images: int = 1

    @property
    def total(self) -> float:
        """The sum of the contributions (on a linear path: the value minus the bias)."""
        return float(self.contributions.sum(dtype=np.float64))

    def links(self, count: int, inhibitory: bool = False) -> list[Link]:
        """The ``count`` strongest excitatory links (largest positive contributions), or the
        strongest inhibitory ones (most negative), strongest first; only those of that sign."""
        c = self.contributions.astype(np.float64)
        scale = np.abs(c).sum()
        order = np.argsort(c, kind="stable") if inhibitory else np.argsort(-c, kind="stable")
        keep = [int(k) for k in order[:count] if (c[k] < 0 if inhibitory else c[k] > 0)]
        return [Link(k, float(c[k]), float(c[k] / scale) if scale > 0 else 0.0) for k in keep]


def mean_circuit(layer: str, unit: int, source: str, contributions: np.ndarray, values: np.ndarray) -> Circuit:
    """The Circuit of rows of per-image contributions (n, C) and values (n,)."""
    return Circuit(layer, unit, source, np.asarray(contributions, np.float32).mean(axis=0),
                   float(np.mean(values)), len(values))


def _unit_values(maps: tf.Tensor, units: tf.Tensor) -> tf.Tensor:
    """(n,) each row's channel ``units[row]`` of ``maps`` (n, h, w, C), at its strongest position."""
    picked = tf.reduce_sum(maps * tf.one_hot(units, tf.shape(maps)[-1], dtype=maps.dtype)[:, None, None, :], -1)
    return tf.reduce_max(tf.reshape(picked, [tf.shape(picked)[0], -1]), axis=-1)


def contributions_to(values: tf.Tensor, source: tf.Tensor, tape: tf.GradientTape) -> tf.Tensor:
    """(n, C) activation x gradient of ``values`` (n,) summed over the space of ``source`` (n, h, w, C),
    from ``tape`` (which recorded both); zeros where ``values`` does not depend on ``source``."""
    grads = tape.gradient(values, source, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return tf.reduce_sum(source * grads, axis=[1, 2])


class CircuitTracer:
    """Contributions between the offered layers of one network; see the module notes."""

    def __init__(self, network: Network) -> None:
        self.network = network
        self._steps: dict[tuple, Callable] = {}
        self._lock = threading.Lock()

    # -- which layers -----------------------------------------------------------------------

    def previous_layer(self, layer: str) -> str | None:
        """The offered layer before ``layer`` (None for the first)."""
        names = self.network.spec.layer_names
        at = names.index(self.network.spec.layer(layer).name)
        return names[at - 1] if at > 0 else None

    def next_layer(self, layer: str) -> str | None:
        names = self.network.spec.layer_names
        at = names.index(self.network.spec.layer(layer).name)
        return names[at + 1] if at + 1 < len(names) else None

    def check_source(self, layer: str, source: str | None) -> str:
        """``source``, or the offered layer before ``layer`` when None; a UserError unless it
        comes before ``layer``."""
        names = self.network.spec.layer_names
        layer = self.network.spec.layer(layer).name
        if source is None:
            found = self.previous_layer(layer)
            if found is None:
                raise UserError(f"{layer} is the first layer {self.network.name} offers: it has no earlier "
                                f"layer for its inputs (name one with --from)")
            return found
        source = self.network.spec.layer(source).name
        if names.index(source) >= names.index(layer):
            raise UserError(f"--from {source} does not come before {layer}; choose one of the layers before it")
        return source

    # -- compiled steps -----------------------------------------------------------------------

    def _compiled(self, key: tuple, make: Callable[[], Callable]) -> Callable:
        with self._lock:
            if key not in self._steps:
                self._steps[key] = make()
            return self._steps[key]

    def _step(self, layer: str, source: str | None, target: str | None) -> Callable:
        """(pixels (n, h, w, 3), units (n,)) -> (inputs (n, C_source) or None, outputs
        (n, C_target) or None, values (n,)): row i explains unit ``units[i]`` of ``layer``."""
        net = self.network

        def make():
            names = [layer + PRE_RELU, layer] + ([source] if source else []) + ([target + PRE_RELU] if target else [])
            view = net.rectified_view(names, rule_relu)  # outside backward_rule: TensorFlow's own gradient

            @tf.function(input_signature=[_PIXELS, _UNITS])
            def step(pixels, units):
                n = tf.shape(pixels)[0]
                with tf.GradientTape(watch_accessed_variables=False) as outer:
                    weights = tf.ones([n, net.spec.layer(target).channels]) if target else None
                    if target:
                        outer.watch(weights)
                    with tf.GradientTape(persistent=True, watch_accessed_variables=False) as tape:
                        tape.watch(pixels)  # records the forward pass, so gradients reach the layers
                        out = view(net.normalize(pixels), training=False)
                        values = _unit_values(out[layer + PRE_RELU], units)
                        if target:
                            maps = out[target + PRE_RELU]
                            reached = tf.reduce_sum(weights * tf.reduce_max(maps, axis=[1, 2]))
                    inputs = contributions_to(values, out[source], tape) if source else None
                    if target:
                        acts = out[layer]
                        pulled = tape.gradient(reached, acts, unconnected_gradients=tf.UnconnectedGradients.ZERO)
                        mask = tf.one_hot(units, tf.shape(acts)[-1], dtype=acts.dtype)[:, None, None, :]
                        along = tf.reduce_sum(pulled * acts * mask)
                outputs = outer.gradient(along, weights) if target else None
                return inputs, outputs, values

            return step

        return self._compiled(("step", layer, source, target), make)

    @property
    def trace_count(self) -> int:
        with self._lock:
            return sum(step.experimental_get_tracing_count() for step in self._steps.values())

    # -- the calls ------------------------------------------------------------------------

    def _run(self, images: np.ndarray, layer: str, units: Sequence[int] | np.ndarray, source: str | None,
             target: str | None) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray]:
        images = np.asarray(images, np.float32)
        units = np.broadcast_to(np.asarray(units, np.int32), (len(images),))
        channels = self.network.spec.layer(layer).channels
        if len(units) and not (0 <= units.min() and units.max() < channels):
            bad = int(units.min() if units.min() < 0 else units.max())
            raise UserError(f"unit {bad} is out of range for layer {layer} (0..{channels - 1})")
        step = self._step(layer, source, target)
        with expected_retracing(step.experimental_get_tracing_count() == 0):
            inputs, outputs, values = step(tf.convert_to_tensor(images), tf.convert_to_tensor(units))
        return (None if inputs is None else inputs.numpy(), None if outputs is None else outputs.numpy(),
                values.numpy())

    def inputs(self, images: np.ndarray, layer: str, units: Sequence[int] | np.ndarray | int,
               source: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(n, h, w, 3) pixels in [0, 255] -> (contributions (n, channels of source), values (n,)):
        row i, of every channel of ``source`` (default: the offered layer before ``layer``) to
        unit ``units[i]`` of ``layer`` (one unit for every row when an int)."""
        layer = self.network.spec.layer(layer).name
        source = self.check_source(layer, source)
        inputs, _, values = self._run(images, layer, units, source, None)
        return inputs, values

    def outputs(self, images: np.ndarray, layer: str, units: Sequence[int] | np.ndarray | int,
                target: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(contributions (n, channels of target), values (n,)): row i, of unit ``units[i]`` of
        ``layer`` to every unit of ``target`` (default: the next offered layer), each read at its
        own strongest position; ``values`` are the ``layer`` units' values."""
        layer = self.network.spec.layer(layer).name
        target = self.check_target(layer, target)
        _, outputs, values = self._run(images, layer, units, None, target)
        return outputs, values

    def check_target(self, layer: str, target: str | None) -> str:
        names = self.network.spec.layer_names
        if target is None:
            found = self.next_layer(layer)
            if found is None:
                raise UserError(f"{layer} is the last layer {self.network.name} offers: nothing after it to feed")
            return found
        target = self.network.spec.layer(target).name
        if names.index(target) <= names.index(layer):
            raise UserError(f"{target} does not come after {layer}")
        return target

    def both(self, images: np.ndarray, layer: str, units: Sequence[int] | np.ndarray,
             source: str | None, target: str | None) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray]:
        """``inputs`` from ``source`` and ``outputs`` to ``target`` from one forward pass (either
        may be None: not computed): what the atlas keeps for every unit."""
        layer = self.network.spec.layer(layer).name
        source = None if source is None else self.check_source(layer, source)
        target = None if target is None else self.check_target(layer, target)
        return self._run(images, layer, units, source, target)

    def circuit(self, images: np.ndarray, layer: str, unit: int, source: str | None = None,
                batch: int = 16, on_batch: Callable[[int], None] | None = None) -> Circuit:
        """The inputs of one unit averaged over ``images`` (n, h, w, 3), ``batch`` at a time."""
        layer = self.network.spec.layer(layer).name
        self.network.check_unit(layer, unit)
        source = self.check_source(layer, source)
        rows, values = [], []
        for start in range(0, len(images), batch):
            part = images[start:start + batch]
            c, v = self.inputs(part, layer, unit, source)
            rows.append(c)
            values.append(v)
            if on_batch is not None:
                on_batch(len(part))
        return mean_circuit(layer, unit, source, np.concatenate(rows), np.concatenate(values))


def ablation_drops(network: Network, images: np.ndarray, layer: str, units: Sequence[int] | np.ndarray,
                   source: str, channels: Sequence[int] | np.ndarray) -> np.ndarray:
    """(n,) how far unit ``units[i]`` of ``layer`` (its value before its ReLU, at its strongest
    position) falls on image i when channel ``channels[i]`` of ``source`` is switched off
    (``Network.masked_view``): the check of a contribution. Positive: the channel was helping."""
    from toolbox.nets.ablation import channel_mask

    images = np.asarray(images, np.float32)
    n = len(images)
    units = np.broadcast_to(np.asarray(units, np.int32), (n,))
    width = network.spec.layer(source).channels
    mask = np.ones((2 * n, width), np.float32)
    mask[np.arange(n, 2 * n), np.asarray(channels)] = 0.0  # rows n..2n-1: the channel off; the rest: intact
    view = network.masked_view(source, [layer])
    with channel_mask(tf.constant(mask)):
        maps = view(network.normalize(tf.constant(np.concatenate([images, images]))), training=False)[layer]
    values = _unit_values(maps, tf.constant(np.concatenate([units, units]))).numpy()
    return values[:n] - values[n:]
