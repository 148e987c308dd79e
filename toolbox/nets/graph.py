"""Walking a Keras functional graph: where a layer's values are before their activation.

ReLU / ReLU6 outputs are flat wherever a unit is off or saturated, so gradient ascent on
them can stall. For optimization the toolbox uses the same channels *before* the
activation: for an activation layer its input, for a concatenation of activations
(InceptionV3's ``mixed*`` blocks) the concatenation of their inputs, in the same order.
Layers are found by walking the graph, never by their auto-generated names.
"""

from __future__ import annotations

import keras


def _producer(tensor) -> keras.layers.Layer:
    return tensor._keras_history.operation


def _is_relu(layer: keras.layers.Layer) -> bool:
    if isinstance(layer, keras.layers.ReLU):
        return True
    if isinstance(layer, keras.layers.Activation):
        return getattr(layer.activation, "__name__", "") in ("relu", "relu6")
    return False


def pre_activation(layer: keras.layers.Layer):
    """The KerasTensor holding ``layer``'s channels before any ReLU, in the same order."""
    if _is_relu(layer):
        return layer.input
    if isinstance(layer, keras.layers.Concatenate):
        parts = [pre_activation(_producer(t)) for t in layer.input]
        return keras.layers.Concatenate(axis=layer.axis, name=f"{layer.name}_pre_relu")(parts)
    return layer.output


def pre_softmax(model: keras.Model):
    """The class scores before the final softmax of ``model``."""
    last = _producer(model.output)
    if isinstance(last, keras.layers.Softmax):
        return last.input
    if isinstance(last, keras.layers.Dense) and getattr(last.activation, "__name__", "") == "softmax":
        return keras.ops.matmul(last.input, last.kernel) + last.bias
    raise ValueError(f"{model.name} does not end in a softmax; it has no logits to read")
