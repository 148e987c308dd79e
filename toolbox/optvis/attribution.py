"""Attribution maps: which pixels of an image drive a unit or a class score.

``Attributor(network)`` holds what stays fixed; a call takes what changes (image, target,
method). Compiled steps are made once per target layer (and Grad-CAM layer) with free
batch and size; the unit or class, the ReLU rule and the unit's value mode are tensor
arguments, so moving through units, classes and methods never retraces. A live window's
worker calls ``observe(frame, Target.unit(layer, unit), "guided", layers)`` once per frame
instead of its Probe: the activations, the probabilities and the map from one forward and
one backward pass (``attributor(image, target, method)`` for one-off maps).

- gradient, guided, deconv: one backward pass through the network's copy made of
  ``RuleReLU`` layers (``relu_rules``), the rule picked by an int32 tensor. Deconv ignores
  the forward pass at every ReLU, so without max pooling (lite0) its map depends on the
  image only through a unit's strongest position; guided backprop's map barely depends on
  the top layers' weights (it fails Adebayo et al.'s 2018 sanity check, as they found);
- gradcam (Selvaraju et al. 2017): ReLU(sum_k mean_ij(dS/dA_ijk) A_k) at a chosen layer,
  through the same copy with the plain gradient;
- smoothgrad (Smilkov et al. 2017): the mean of a base method over noisy copies, batched;
- integrated (Sundararajan et al. 2017): x * the mean gradient on the straight path from a
  black image (midpoint rule), batched; ``completeness_gap`` says how far the sum of the
  map is from score(x) - score(black) (ReLU6 kinks make it converge slowly on real nets).

The map is the derivative with respect to the pixels in [0, 255] (for integrated
gradients, the attribution itself), the input's size, three channels: see
``attribution_display`` for how people look at it. No IO here.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from toolbox.errors import UserError
from toolbox.nets.network import LOGITS, PRE_RELU, Network
from toolbox.nets.probe import Observation
from toolbox.optvis.relu_rules import RULES, backward_rule, plain_backward, rule_relu
from toolbox.settings import ATTRIBUTION_METHODS, AttributeSettings

METHODS = ATTRIBUTION_METHODS
UNIT_VALUES = ("max", "sum")
_DEFAULTS = AttributeSettings()  # the one place for default numbers is toolbox.settings

_PIXELS = tf.TensorSpec([None, None, None, 3], tf.float32)
_INT = tf.TensorSpec([], tf.int32)


@dataclass(frozen=True)
class Target:
    """What is explained: unit ``index`` of ``layer`` (``value``: "max", its value at its
    strongest position, or "sum" over positions), or class ``index`` (``layer`` LOGITS: its
    pre-softmax score). A unit is read before its own ReLU / ReLU6, as the ascent engine
    reads it: a unit at the cap (often, in EfficientNet-Lite) or switched off would
    otherwise send nothing back, and the pre-activation also ranks tied positions."""

    layer: str
    index: int
    value: str = "max"

    @classmethod
    def unit(cls, layer: str, unit: int, value: str = "max") -> "Target":
        return cls(layer, int(unit), value)

    @classmethod
    def klass(cls, index: int) -> "Target":
        return cls(LOGITS, int(index))

    @property
    def is_class(self) -> bool:
        return self.layer == LOGITS

    @property
    def tensor(self) -> str:
        """The name of the target's values in ``Network.rectified_view``."""
        return self.layer if self.is_class else self.layer + PRE_RELU


@dataclass(frozen=True)
class Attribution:
    method: str
    target: Target
    map: np.ndarray  # (H, W, 3) float32, the input's size
    score: float  # the target's score on the image
    heat: np.ndarray | None = None  # (H, W) in [0, 1]: CAM methods' heat over the input
    cam_layer: str | None = None
    completeness_gap: float | None = None  # integrated: sum(map) - (score(x) - score(black))


def _score(out: tf.Tensor, index: tf.Tensor, value: tf.Tensor) -> tf.Tensor:
    """(n,) scores: a class or channel ``index`` of ``out``; over positions its max (value 0)
    or sum (value 1)."""
    picked = tf.gather(out, index, axis=-1)
    if picked.shape.rank == 1:
        return picked
    flat = tf.reshape(picked, [tf.shape(picked)[0], -1])
    return tf.cond(tf.equal(value, 0), lambda: tf.reduce_max(flat, -1), lambda: tf.reduce_sum(flat, -1))


class Attributor:
    """Attribution maps of one network for any target and method; see the module notes."""

    def __init__(self, network: Network) -> None:
        self.network = network
        self._steps: dict[tuple, Callable] = {}
        self._lock = threading.Lock()

    # -- compiled steps, built once per layer ---------------------------------------------

    def _compiled(self, key: tuple, make: Callable[[], Callable]) -> Callable:
        with self._lock:
            if key not in self._steps:
                self._steps[key] = make()
            return self._steps[key]

    def _backprop_step(self, layer: str) -> Callable:
        """``layer``: a name in ``rectified_view`` (``Target.tensor``)."""
        net = self.network

        def make():
            view = net.rectified_view([layer], rule_relu)

            @tf.function(input_signature=[_PIXELS, _INT, _INT, _INT])
            def backprop(pixels, index, rule, value):
                with tf.GradientTape(watch_accessed_variables=False) as tape:
                    tape.watch(pixels)
                    with backward_rule(rule):
                        out = view(net.normalize(pixels), training=False)[layer]
                    scores = _score(out, index, value)
                return tape.gradient(scores, pixels), scores

            return backprop

        return self._compiled(("backprop", layer), make)

    def _cam_step(self, layer: str, cam_layer: str) -> Callable:
        net = self.network

        def make():
            view = net.rectified_view([layer, cam_layer], rule_relu)  # no backward_rule: the plain gradient

            @tf.function(input_signature=[_PIXELS, _INT, _INT])
            def gradcam(pixels, index, value):
                with tf.GradientTape(watch_accessed_variables=False) as tape:
                    tape.watch(pixels)  # records the ops, so the gradient reaches the layer's values
                    out = view(net.normalize(pixels), training=False)
                    scores = _score(out[layer], index, value)
                acts = out[cam_layer]
                weights = tf.reduce_mean(tape.gradient(scores, acts), axis=[1, 2])  # (n, k)
                cam = tf.nn.relu(tf.einsum("nhwk,nk->nhw", acts, weights))
                size = tf.shape(pixels)[1:3]
                up = tf.maximum(tf.image.resize(cam[..., None], size, "bilinear")[..., 0], 0.0)
                peak = tf.reduce_max(up, axis=[1, 2], keepdims=True)
                return up, tf.math.divide_no_nan(up, peak), scores

            return gradcam

        return self._compiled(("gradcam", layer, cam_layer), make)

    def _observe_step(self, layers: tuple[str, ...], circuit: str | None = None) -> Callable:
        """``circuit`` None: the map alone. Otherwise also every layer's contributions to the
        target (zeros for layers not before it), from one backward pass down to the first
        layer, which serves any source and target without compiling again (a branch per
        source would compile one backward pass per layer pair): "alone", no map (zeros), that
        pass only; "shared", the map's own pass gives them (the plain rule); "separate", the
        map by its rule, then a second, plain pass of the same forward pass."""
        net = self.network
        classes = net.spec.has_classifier
        targets = [name + PRE_RELU for name in layers] + ([LOGITS] if classes else [])

        def make():
            view = net.rectified_view([*layers, *targets], rule_relu)

            @tf.function(input_signature=[_PIXELS, _INT, _INT, _INT, _INT])
            def observe(pixels, which, index, rule, value):
                with tf.GradientTape(watch_accessed_variables=False, persistent=circuit == "separate") as tape:
                    tape.watch(pixels)
                    with backward_rule(rule):
                        out = view(net.normalize(pixels), training=False)
                    scores = tf.switch_case(which, [functools.partial(_score, out[t], index, value) for t in targets])
                acts = {name: out[name] for name in layers}
                # no classifier: no classes (as the Probe's PROBS)
                probs = tf.nn.softmax(out[LOGITS]) if classes else tf.zeros([tf.shape(pixels)[0], 0])
                if circuit is None:
                    return tape.gradient(scores, pixels), scores, acts, probs
                inner = [acts[name] for name in layers]
                zero = tf.UnconnectedGradients.ZERO
                if circuit == "shared":
                    grads, *at = tape.gradient(scores, [pixels, *inner], unconnected_gradients=zero)
                elif circuit == "alone":
                    grads, at = tf.zeros_like(pixels), tape.gradient(scores, inner, unconnected_gradients=zero)
                else:
                    grads = tape.gradient(scores, pixels)
                    with plain_backward():
                        at = tape.gradient(scores, inner, unconnected_gradients=zero)
                contributions = {name: tf.reduce_sum(a * g, axis=[1, 2]) for name, a, g in zip(layers, inner, at)}
                return grads, scores, acts, probs, contributions

            return observe

        return self._compiled(("observe", layers, circuit), make)

    @property
    def trace_count(self) -> int:
        with self._lock:
            return sum(step.experimental_get_tracing_count() for step in self._steps.values())

    # -- checks ---------------------------------------------------------------------------

    def check(self, target: Target) -> None:
        """A UserError for a target the network does not have."""
        if target.value not in UNIT_VALUES:
            raise UserError(f"unknown unit value '{target.value}' (use max or sum)")
        if target.is_class:
            self.network.spec.require_classifier("a class target")
            classes = len(self.network.labels)
            if not 0 <= target.index < classes:
                raise UserError(f"class {target.index} is out of range (0..{classes - 1})")
        else:
            self.network.check_unit(target.layer, target.index)

    def default_cam_layer(self, target: Target) -> str:
        """Grad-CAM's layer when none is chosen: for a class the network's last offered layer;
        for a unit the offered layer before its own (its own when it is the first)."""
        names = self.network.spec.layer_names
        if target.is_class:
            return names[-1]
        at = names.index(target.layer)
        return names[max(at - 1, 0)]

    def _check_cam_layer(self, target: Target, cam_layer: str) -> None:
        names = self.network.spec.layer_names
        self.network.spec.layer(cam_layer)
        if not target.is_class and names.index(cam_layer) > names.index(target.layer):
            raise UserError(f"Grad-CAM layer {cam_layer} comes after {target.layer}; "
                            f"choose {target.layer} or a layer before it")

    # -- methods --------------------------------------------------------------------------

    def backprop(self, images: np.ndarray, target: Target, rule: str = "gradient") -> tuple[np.ndarray, np.ndarray]:
        """(n, h, w, 3) pixels in [0, 255] -> (gradients (n, h, w, 3), scores (n,)) by ``rule``:
        gradient, guided or deconv. The primitive the other methods are made of."""
        if rule not in RULES:
            raise UserError(f"unknown rule '{rule}' (use gradient, guided or deconv)")
        step = self._backprop_step(target.tensor)
        grads, scores = step(tf.convert_to_tensor(images, tf.float32), tf.constant(target.index, tf.int32),
                             tf.constant(RULES[rule], tf.int32), tf.constant(UNIT_VALUES.index(target.value)))
        return grads.numpy(), scores.numpy()

    def observe(self, image: np.ndarray, target: Target, rule: str,
                layers: Sequence[str]) -> tuple[Observation, Attribution]:
        """What a live window needs per frame, from one forward pass: the Probe's observation
        of ``layers`` (their activations, the class probabilities) and ``rule``'s map of
        ``target`` (a unit of one of ``layers``, or a class). One compiled step per set of
        layers serves every target layer, unit, class and rule; its backward pass always
        starts at the deepest output (about one bare gradient), which beats a probe plus a
        separate map for deep targets and never compiles again when the layer changes."""
        observation, attribution, _ = self._observe(image, target, rule, tuple(layers), None)
        return observation, attribution

    def observe_circuit(self, image: np.ndarray, target: Target, rule: str | None, layers: Sequence[str],
                        source: str) -> tuple[Observation, Attribution, np.ndarray]:
        """``observe``, and the contributions (activation x plain gradient, summed over space:
        ``optvis.circuits``) of every channel of ``source`` (one of ``layers``) to the target,
        (channels of source,): zeros unless it comes before the target's layer. ``rule`` None:
        no map (its Attribution's map is zeros), only a plain backward pass; "gradient": from
        the map's own backward pass; guided or deconv: from a second, plain one (those rules
        would bend the contributions). One compiled step per set of layers and kind of rule
        serves every target and source."""
        circuit = "alone" if rule is None else "shared" if rule == "gradient" else "separate"
        layers = tuple(layers)
        observation, attribution, contributions = self._observe(image, target, rule or "gradient", layers, circuit,
                                                                layers.index(source))
        return observation, attribution, contributions[:self.network.spec.layer(source).channels]

    def _observe(self, image: np.ndarray, target: Target, rule: str, layers: tuple[str, ...], circuit: str | None,
                 source: int = 0):
        self.check(target)
        if rule not in RULES:
            raise UserError(f"unknown rule '{rule}' (use gradient, guided or deconv)")
        if not target.is_class and target.layer not in layers:
            raise UserError(f"layer {target.layer} is not among the observed layers")
        which = len(layers) if target.is_class else layers.index(target.layer)
        grads, scores, acts, probs, *rest = self._observe_step(layers, circuit)(
            tf.convert_to_tensor(np.asarray(image, np.float32)[None]), tf.constant(which, tf.int32),
            tf.constant(target.index, tf.int32), tf.constant(RULES[rule], tf.int32),
            tf.constant(UNIT_VALUES.index(target.value), tf.int32))
        observation = Observation({name: value.numpy()[0] for name, value in acts.items()}, probs.numpy()[0])
        contributions = rest[0][layers[source]].numpy()[0] if rest else None
        return observation, Attribution(rule, target, grads.numpy()[0], float(scores[0])), contributions

    def gradcam(self, image: np.ndarray, target: Target, cam_layer: str | None = None) -> Attribution:
        cam_layer = cam_layer or self.default_cam_layer(target)
        self._check_cam_layer(target, cam_layer)
        step = self._cam_step(target.tensor, cam_layer)
        up, heat, scores = step(tf.convert_to_tensor(np.asarray(image, np.float32)[None]),
                                   tf.constant(target.index, tf.int32),
                                   tf.constant(UNIT_VALUES.index(target.value)))
        cam = up.numpy()[0]
        return Attribution("gradcam", target, np.repeat(cam[..., None], 3, axis=-1), float(scores[0]),
                           heat=heat.numpy()[0], cam_layer=cam_layer)

    def _rows(self, rows: Callable[[int, int], np.ndarray], count: int, target: Target, rule: str,
              batch: int, keep: int) -> tuple[np.ndarray, np.ndarray]:
        """``backprop`` of ``count`` rows, made ``batch`` at a time by ``rows(start, stop)`` so
        memory stays bounded: (the sum of the gradients of the first ``keep`` rows, every
        row's score)."""
        total, scores = None, []
        for start in range(0, count, batch):
            grads, s = self.backprop(rows(start, min(start + batch, count)), target, rule)
            part = grads[:max(keep - start, 0)].sum(0)
            total = part if total is None else total + part
            scores.append(s)
        return total, np.concatenate(scores)

    def smoothgrad(self, image: np.ndarray, target: Target, base: str = _DEFAULTS.smooth_base,
                   samples: int = _DEFAULTS.samples, noise: float = _DEFAULTS.noise, seed: int = 0,
                   batch: int = _DEFAULTS.batch) -> Attribution:
        """The mean of ``base`` over ``samples`` copies of the image plus Gaussian noise of
        standard deviation ``noise`` x 255; the same seed gives the same map. The clean image
        rides along as one more row, for its score."""
        x = np.asarray(image, np.float32)
        rng, sigma = np.random.default_rng(seed), np.float32(noise * 255.0)

        def rows(start: int, stop: int) -> np.ndarray:
            noisy = x + rng.standard_normal((min(stop, samples) - start, *x.shape), dtype=np.float32) * sigma
            return np.concatenate([noisy, x[None]]) if stop > samples else noisy

        total, scores = self._rows(rows, samples + 1, target, base, batch, keep=samples)
        return Attribution("smoothgrad", target, total / samples, float(scores[-1]))

    def integrated(self, image: np.ndarray, target: Target, steps: int = _DEFAULTS.steps,
                   batch: int = _DEFAULTS.batch) -> Attribution:
        """x * the mean gradient at the midpoints of ``steps`` equal steps from black to x; the
        image and the black image ride along as two more rows, for the completeness gap."""
        x = np.asarray(image, np.float32)
        alphas = np.concatenate([(np.arange(steps) + 0.5) / steps, [1.0, 0.0]]).astype(np.float32)
        total, scores = self._rows(lambda start, stop: alphas[start:stop, None, None, None] * x, len(alphas),
                                   target, "gradient", batch, keep=steps)
        attribution = x * total / steps
        gap = float(attribution.sum(dtype=np.float64) - (scores[-2] - scores[-1]))
        return Attribution("integrated", target, attribution, float(scores[-2]), completeness_gap=gap)

    def __call__(self, image: np.ndarray, target: Target, method: str = _DEFAULTS.method, *,
                 cam_layer: str | None = None, smooth_base: str = _DEFAULTS.smooth_base,
                 samples: int = _DEFAULTS.samples, noise: float = _DEFAULTS.noise, steps: int = _DEFAULTS.steps,
                 batch: int = _DEFAULTS.batch, seed: int = 0) -> Attribution:
        """One image (h, w, 3), uint8 or float in [0, 255], explained by ``method``."""
        self.check(target)
        if method in RULES:
            grads, scores = self.backprop(np.asarray(image, np.float32)[None], target, method)
            return Attribution(method, target, grads[0], float(scores[0]))
        if method == "gradcam":
            return self.gradcam(image, target, cam_layer)
        if method == "smoothgrad":
            return self.smoothgrad(image, target, smooth_base, samples, noise, seed, batch)
        if method == "integrated":
            return self.integrated(image, target, steps, batch)
        raise UserError(f"unknown method '{method}' (use {', '.join(METHODS)})")
