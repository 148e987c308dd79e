"""EfficientNet-Lite as a Keras 3 functional model, with weights converted from PyTorch.

The architecture is read off the state dict itself (block count, widths, kernel sizes,
whether a block expands); only the stride of each stage comes from the model spec.
Blocks are numbered 0..N-1 as in the PyTorch file; layer names are readable:
``block9_add``, ``block9_dw_bn``, ``head_relu``... Convolutions use TensorFlow's
"same" padding, as the original TF checkpoints were trained with. Every number read off the
file (block count, kernel sizes, widths, classes) and every weight (finite, variances not
negative) is checked against what an EfficientNet-Lite can have before any layer is built
(``check_state``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BN_EPSILON = 1e-3
# Bump whenever ``build`` would make a different model from the same weights (layer names,
# structure, padding, epsilon...): converted caches record it and are rebuilt on a change.
CONVERTER_VERSION = 1
# what an EfficientNet-Lite can have (lite4: 30 blocks, kernels 3 and 5, 1280 head filters)
MAX_BLOCKS = 64
MAX_KERNEL = 7
MAX_WIDTH = 4096
MAX_CLASSES = 100_000


def check_state(state: dict[str, np.ndarray]) -> None:
    """ValueError naming the first number of the file outside what this network can have: a
    block index, a kernel, a width, the class count, a weight that is not finite or a negative
    variance (checked before anything is built)."""
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "_blocks" and not (len(parts) > 2 and parts[1].isdigit() and int(parts[1]) < MAX_BLOCKS):
            raise ValueError(f"{key[:80]} is not a block of at most {MAX_BLOCKS}")
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise ValueError(f"{key} holds NaN or infinite values")
        if key.endswith("running_var") and (value < 0).any():
            raise ValueError(f"{key} holds negative variances")
        convolution = key.endswith(("conv.weight", "conv_stem.weight", "conv_head.weight"))
        if convolution and not (value.ndim == 4 and 1 <= value.shape[0] <= MAX_WIDTH
                                and 1 <= value.shape[1] <= MAX_WIDTH
                                and 1 <= value.shape[2] == value.shape[3] <= MAX_KERNEL):
            raise ValueError(f"{key} has shape {value.shape}: at most {MAX_WIDTH} square filters of at most "
                             f"{MAX_KERNEL}x{MAX_KERNEL} expected")
    fc = state["_fc.weight"]
    if fc.ndim != 2 or not (1 <= fc.shape[0] <= MAX_CLASSES and fc.shape[1] <= MAX_WIDTH):
        raise ValueError(f"_fc.weight has shape {fc.shape}")


@dataclass(frozen=True)
class BlockShape:
    index: int
    in_channels: int
    expanded: int
    out_channels: int
    kernel: int
    stride: int
    expands: bool

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.in_channels == self.out_channels


def block_shapes(state: dict[str, np.ndarray], stage_strides: list[int]) -> list[BlockShape]:
    """Blocks of the network, from weight shapes; a stage starts where the width changes."""
    count = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("_blocks."))
    shapes, stage, prev_out = [], -1, None
    for i in range(count):
        p = f"_blocks.{i}."
        expands = p + "_expand_conv.weight" in state
        dw = state[p + "_depthwise_conv.weight"]
        project = state[p + "_project_conv.weight"]
        out_ch, expanded = project.shape[0], project.shape[1]
        in_ch = state[p + "_expand_conv.weight"].shape[1] if expands else expanded
        first_of_stage = out_ch != prev_out
        if first_of_stage:
            stage += 1
        stride = stage_strides[stage] if first_of_stage else 1
        shapes.append(BlockShape(i, in_ch, expanded, out_ch, dw.shape[-1], stride, expands))
        prev_out = out_ch
    if stage != len(stage_strides) - 1:
        raise ValueError(f"weights have {stage + 1} stages, the spec lists {len(stage_strides)} strides")
    return shapes


def build(state: dict[str, np.ndarray], stage_strides: list[int]):
    """Build the Keras model (input: preprocessed float image of any size) and set its weights;
    the class count is the classifier's, read off the weights."""
    import keras
    from keras import layers as L

    check_state(state)
    weights: dict[str, list[np.ndarray]] = {}

    def conv(x, name, torch_key, filters, kernel, stride=1):
        weights[name] = [state[torch_key].transpose(2, 3, 1, 0)]
        return L.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=name)(x)

    def dwconv(x, name, torch_key, kernel, stride):
        weights[name] = [state[torch_key].transpose(2, 3, 0, 1)]
        return L.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False, name=name)(x)

    def bn(x, name, torch_prefix):
        weights[name] = [state[torch_prefix + s] for s in ("weight", "bias", "running_mean", "running_var")]
        return L.BatchNormalization(epsilon=BN_EPSILON, name=name)(x)

    def relu6(x, name):
        return L.ReLU(max_value=6.0, name=name)(x)

    inputs = keras.Input((None, None, 3), name="image")
    stem = state["_conv_stem.weight"]
    x = conv(inputs, "stem_conv", "_conv_stem.weight", stem.shape[0], stem.shape[-1], 2)
    x = relu6(bn(x, "stem_bn", "_bn0."), "stem_relu")
    for b in block_shapes(state, stage_strides):
        p, name = f"_blocks.{b.index}.", f"block{b.index}"
        shortcut = x
        if b.expands:
            x = conv(x, f"{name}_expand_conv", p + "_expand_conv.weight", b.expanded, 1)
            x = relu6(bn(x, f"{name}_expand_bn", p + "_bn0."), f"{name}_expand_relu")
        x = dwconv(x, f"{name}_dwconv", p + "_depthwise_conv.weight", b.kernel, b.stride)
        x = relu6(bn(x, f"{name}_dw_bn", p + "_bn1."), f"{name}_dw_relu")
        x = conv(x, f"{name}_project_conv", p + "_project_conv.weight", b.out_channels, 1)
        x = bn(x, f"{name}_project_bn", p + "_bn2.")
        if b.residual:
            x = L.Add(name=f"{name}_add")([shortcut, x])
    head = state["_conv_head.weight"]
    x = conv(x, "head_conv", "_conv_head.weight", head.shape[0], 1)
    x = relu6(bn(x, "head_bn", "_bn1."), "head_relu")
    x = L.GlobalAveragePooling2D(name="avg_pool")(x)
    weights["logits"] = [state["_fc.weight"].T, state["_fc.bias"]]
    x = L.Dense(state["_fc.bias"].shape[0], name="logits")(x)
    outputs = L.Softmax(name="predictions")(x)
    model = keras.Model(inputs, outputs, name="efficientnet_lite")
    for name, values in weights.items():
        model.get_layer(name).set_weights(values)
    return model
