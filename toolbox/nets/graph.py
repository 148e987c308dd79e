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


def is_relu(layer: keras.layers.Layer) -> bool:
    if isinstance(layer, keras.layers.ReLU):
        return True
    if isinstance(layer, keras.layers.Activation):
        return getattr(layer.activation, "__name__", "") in ("relu", "relu6")
    return False


def pre_activation(layer: keras.layers.Layer):
    """The KerasTensor holding ``layer``'s channels before any ReLU, in the same order."""
    if is_relu(layer):
        return layer.input
    if isinstance(layer, keras.layers.Concatenate):
        parts = [pre_activation(_producer(t)) for t in layer.input]
        return keras.layers.Concatenate(axis=layer.axis, name=f"{layer.name}_pre_relu")(parts)
    return layer.output


def non_negative(layer: keras.layers.Layer) -> bool:
    """Whether ``layer``'s values can never be negative: a ReLU (or ReLU6), or a
    concatenation of them. Signed layers also have a "what turns it off" side."""
    if is_relu(layer):
        return True
    if isinstance(layer, keras.layers.Concatenate):
        return all(non_negative(_producer(t)) for t in layer.input)
    return False


def pre_softmax(model: keras.Model):
    """The class scores before the final softmax of ``model``."""
    last = _producer(model.output)
    if isinstance(last, keras.layers.Softmax):
        return last.input
    if isinstance(last, keras.layers.Dense) and getattr(last.activation, "__name__", "") == "softmax":
        return keras.ops.matmul(last.input, last.kernel) + last.bias
    raise ValueError(f"{model.name} does not end in a softmax; it has no logits to read")


def receptive_field(model: keras.Model, layer_name: str) -> tuple[int, int]:
    """(size, stride) in input pixels of one unit of ``layer_name``: the theoretical
    receptive field along the widest path through the graph."""
    memo: dict[str, tuple[int, int]] = {}

    def walk(layer: keras.layers.Layer) -> tuple[int, int]:
        if layer.name in memo:
            return memo[layer.name]
        if isinstance(layer, keras.layers.InputLayer):
            result = (1, 1)
        else:
            inputs = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
            parents = [walk(_producer(t)) for t in inputs]
            size, jump = max(p[0] for p in parents), max(p[1] for p in parents)
            kernel = getattr(layer, "kernel_size", None) or getattr(layer, "pool_size", None)
            if kernel is not None:
                dilation = (getattr(layer, "dilation_rate", None) or (1,))[0]
                size += (kernel[0] - 1) * dilation * jump
                jump *= layer.strides[0]
            result = (size, jump)
        memo[layer.name] = result
        return result

    return walk(model.get_layer(layer_name))
