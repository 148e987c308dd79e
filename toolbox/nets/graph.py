"""Walking a Keras functional graph: where a layer's values are before their activation.

ReLU / ReLU6 outputs are flat wherever a unit is off or saturated, so gradient ascent on
them can stall. For optimization the toolbox uses the same channels *before* the
activation: for an activation layer its input, for a concatenation of activations
(InceptionV3's ``mixed*`` blocks) the concatenation of their inputs, in the same order.
Layers are found by walking the graph, never by their auto-generated names.

Every walk starts from a tensor and follows the node that made it, so it works in any graph
a layer takes part in (a nested model's layers are called in more than one: ``keras_graph``),
where ``layer.input`` / ``layer.output`` would answer for the first graph only.
"""

from __future__ import annotations

import keras

from toolbox.nets.keras_graph import producer

# layers that keep a non-negative input non-negative, channel for channel
_KEEPS_SIGN = (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D, keras.layers.Dropout,
               keras.layers.SpatialDropout2D, keras.layers.ZeroPadding2D, keras.layers.Cropping2D)


def _activation_name(layer) -> str:
    return getattr(getattr(layer, "activation", None), "__name__", "")


def is_relu(layer: keras.layers.Layer) -> bool:
    if isinstance(layer, keras.layers.ReLU):
        return True
    if isinstance(layer, keras.layers.Activation):
        return _activation_name(layer) in ("relu", "relu6")
    return False


def ends_in_relu(tensor) -> bool:
    """Whether ``pre_activation(tensor)`` reads other values than ``tensor`` itself: the tensor
    is a ReLU's output (or a concatenation of some), so its values before and after differ."""
    op, node = producer(tensor)
    if op is None:
        return False
    if is_relu(op):
        return True
    return isinstance(op, keras.layers.Concatenate) and any(ends_in_relu(t) for t in node.input_tensors)


def pre_activation(tensor):
    """The KerasTensor holding ``tensor``'s channels before any ReLU, in the same order."""
    op, node = producer(tensor)
    if op is None:
        return tensor
    if is_relu(op):
        return node.input_tensors[0]
    if isinstance(op, keras.layers.Concatenate):
        parts = [pre_activation(t) for t in node.input_tensors]
        return keras.layers.Concatenate(axis=op.axis, name=f"{op.name}_pre_relu")(parts)
    return tensor


def non_negative(tensor) -> bool:
    """Whether ``tensor``'s values can never be negative: made by a ReLU (or ReLU6, or a layer
    with such an activation built in), a concatenation of them, or a pooling or padding of one.
    Signed layers also have a "what turns it off" side."""
    op, node = producer(tensor)
    if op is None:
        return False
    if is_relu(op) or _activation_name(op) in ("relu", "relu6", "sigmoid", "softmax"):
        return True
    if isinstance(op, keras.layers.Concatenate):
        return all(non_negative(t) for t in node.input_tensors)
    if isinstance(op, _KEEPS_SIGN):
        return non_negative(node.input_tensors[0])
    return False


def logits_of(output):
    """The class scores before the final softmax that made ``output``, or None when it was
    not made by one (a Softmax layer, a softmax Activation, a Dense with a softmax)."""
    op, node = producer(output)
    if op is None:
        return None
    if isinstance(op, keras.layers.Softmax) or (isinstance(op, keras.layers.Activation)
                                                 and _activation_name(op) == "softmax"):
        return node.input_tensors[0]
    if isinstance(op, keras.layers.Dense) and _activation_name(op) == "softmax":
        scores = keras.ops.matmul(node.input_tensors[0], op.kernel)
        return scores + op.bias if op.use_bias else scores
    return None


def receptive_field(tensor) -> tuple[int, int]:
    """(size, stride) in input pixels of one unit of ``tensor``: the theoretical receptive
    field along the widest path through the graph."""
    memo: dict[int, tuple[int, int]] = {}

    def field(t) -> tuple[int, int] | None:
        op, node = producer(t)
        return (1, 1) if op is None else memo.get(id(node))

    stack = [tensor]  # depth first without recursion: graphs may be a thousand layers deep
    while stack:
        op, node = producer(stack[-1])
        if op is None or id(node) in memo:
            stack.pop()
            continue
        waiting = [p for p in node.input_tensors if field(p) is None]
        if waiting:
            stack.extend(waiting)
            continue
        stack.pop()
        parents = [field(p) for p in node.input_tensors] or [(1, 1)]
        size, jump = max(p[0] for p in parents), max(p[1] for p in parents)
        kernel = getattr(op, "kernel_size", None) or getattr(op, "pool_size", None)
        if kernel is not None:
            dilation = (getattr(op, "dilation_rate", None) or (1,))[0]
            size += (kernel[0] - 1) * dilation * jump
            jump *= op.strides[0]
        memo[id(node)] = (size, jump)
    return field(tensor)
