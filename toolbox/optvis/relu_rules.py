"""ReLU layers whose backward pass follows a rule chosen at run time: plain gradient,
guided backprop or deconvnet.

Attribution methods differ only in how a gradient crosses each rectifier on its way back
to the pixels; the forward values are the network's own. ``RuleReLU`` computes exactly
what the Keras ReLU / ReLU6 it replaces computes and, inside ``backward_rule(rule)``, sends
the gradient back through ``tf.custom_gradient`` by ``rule``, a scalar int32 *tensor*: one
compiled function serves all three rules (a ``tf.switch_case`` runs only the chosen
branch), so switching method never retraces. Outside ``backward_rule`` it is a plain
activation with TensorFlow's own gradient, so the copy of a network made of these layers
is an ordinary model too.

The rule lives in a ``ContextVar`` rather than a variable: it is read while the model is
traced, belongs to the calling thread, and leaves no state behind between calls.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

import keras
import tensorflow as tf

GRADIENT, GUIDED, DECONV = 0, 1, 2
RULES: dict[str, int] = {"gradient": GRADIENT, "guided": GUIDED, "deconv": DECONV}

_RULE: ContextVar[tf.Tensor | None] = ContextVar("deepvis_backward_rule", default=None)
_PLAIN_BACKWARD: ContextVar[bool] = ContextVar("deepvis_plain_backward", default=False)


@contextmanager
def plain_backward() -> Iterator[None]:
    """Gradients taken (``tape.gradient``) within this block cross every RuleReLU by the plain
    rule, whatever rule the forward pass was recorded with: one forward pass can give a guided
    map and the true gradient at an inner layer (the window's circuit view beside its
    gradient pane). Read when the gradient is built, so it belongs around the gradient call."""
    token = _PLAIN_BACKWARD.set(True)
    try:
        yield
    finally:
        _PLAIN_BACKWARD.reset(token)


@contextmanager
def backward_rule(rule: tf.Tensor) -> Iterator[None]:
    """Within this block, RuleReLU layers called send gradients back by ``rule`` (int32 scalar)."""
    token = _RULE.set(rule)
    try:
        yield
    finally:
        _RULE.reset(token)


def _forward(x: tf.Tensor, cap: float | None) -> tf.Tensor:
    """What keras' ReLU computes (relu, relu6 or relu clipped at ``cap``), op for op."""
    if cap is None:
        return tf.nn.relu(x)
    if cap == 6.0:
        return tf.nn.relu6(x)
    return tf.clip_by_value(tf.nn.relu(x), 0.0, cap)


def _ruled(x: tf.Tensor, rule: tf.Tensor, cap: float | None) -> tf.Tensor:
    @tf.custom_gradient
    def rectify(x):
        y = _forward(x, cap)

        def gradient(g):
            # The plain rule is TensorFlow's own ReLU gradient (the same op the tape uses),
            # so rule 0 reproduces tape.gradient bit for bit. Guided and deconv treat ReLU6 as
            # a rectifier: the cap saturates often in EfficientNet-Lite and gating on it
            # would blank the regions that drive a unit hardest.
            def plain():
                if cap is None:
                    return tf.raw_ops.ReluGrad(gradients=g, features=y)
                if cap == 6.0:
                    return tf.raw_ops.Relu6Grad(gradients=g, features=y)
                return tf.where((y > 0) & (y < cap), g, tf.zeros_like(g))

            def guided():  # g * (x > 0) * (g > 0), as two fused ops
                return tf.raw_ops.ReluGrad(gradients=tf.nn.relu(g), features=y)

            def deconv():
                return tf.nn.relu(g)

            if _PLAIN_BACKWARD.get():
                return plain()
            return tf.switch_case(rule, [plain, guided, deconv])

        return y, gradient

    return rectify(x)


class RuleReLU(keras.layers.ReLU):
    """A ReLU (``max_value`` None) or capped ReLU whose backward pass follows ``backward_rule``.
    A keras ReLU by type, so the graph walks (``pre_activation``) treat it as one."""

    def __init__(self, max_value: float | None = None, **kwargs) -> None:
        super().__init__(max_value=max_value, **kwargs)
        self.cap = None if max_value is None else float(max_value)

    def call(self, x):
        rule = _RULE.get()
        return _forward(x, self.cap) if rule is None else _ruled(x, rule, self.cap)


def rule_relu(layer: keras.layers.Layer) -> keras.layers.Layer:
    """The stand-in for one ReLU / ReLU6 layer of a network (``Network.rectified_view``'s
    rectifier): a RuleReLU of the same name and cap. Leaky or thresholded ReLUs are not
    rectifiers in the rules' sense: they are copied as they are, keeping the plain gradient."""
    if isinstance(layer, keras.layers.ReLU):
        if float(layer.negative_slope) != 0.0 or float(layer.threshold) != 0.0:
            return layer.__class__.from_config(layer.get_config())
        cap = layer.max_value
    else:  # an Activation layer of relu or relu6
        cap = 6.0 if getattr(layer.activation, "__name__", "") == "relu6" else None
    return RuleReLU(None if cap is None else float(cap), name=layer.name, dtype=layer.dtype_policy)


def _redirected(x: tf.Tensor, cap: float | None) -> tf.Tensor:
    @tf.custom_gradient
    def rectify(x):
        y = _forward(x, cap)

        def gradient(g):
            # g is d(objective)/dy of an ascent: g > 0 asks for a larger x
            on = x > 0 if cap is None else (x > 0) & (x < cap)
            true = tf.where(on, g, tf.zeros_like(g))
            towards = (x <= 0) & (g > 0)
            if cap is not None:
                towards = towards | ((x >= cap) & (g < 0))
            redirected = tf.where(on | towards, g, tf.zeros_like(g))
            rank = x.shape.rank
            alive = tf.reduce_max(tf.abs(true), axis=list(range(1, rank))) > 0  # (B,): anything got through
            return tf.where(tf.reshape(alive, [-1] + [1] * (rank - 1)), true, redirected)

        return y, gradient

    return rectify(x)


class RedirectedReLU(keras.layers.ReLU):
    """A ReLU or capped ReLU (same forward values) whose gradient, in a batch row where the
    true gradient is zero everywhere (every unit the objective reaches through it is off, or
    at its cap), passes where it would move the input back into the active range (Lucid's
    redirected ReLU gradient, for gradient *ascent*). A unit image starting from a near-grey
    image may find its unit's inputs all off (lite0 ``block13_dw_relu``: the depthwise unit
    reads one expansion channel, off on grey): the true gradient is zero and the image never
    moves; the redirected one turns the inputs on, after which the true gradient takes over."""

    def __init__(self, max_value: float | None = None, **kwargs) -> None:
        super().__init__(max_value=max_value, **kwargs)
        self.cap = None if max_value is None else float(max_value)

    def call(self, x):
        return _redirected(x, self.cap)


def redirected_relu(layer: keras.layers.Layer) -> keras.layers.Layer:
    """The stand-in for one ReLU / ReLU6 layer in an ascent's view (``Network.rectified_view``'s
    rectifier): a RedirectedReLU of the same name and cap; leaky or thresholded ReLUs as they are."""
    plain = rule_relu(layer)
    if not isinstance(plain, RuleReLU):
        return plain
    return RedirectedReLU(plain.cap, name=layer.name, dtype=layer.dtype_policy)
