"""GoogLeNet (Inception V1) as a Keras 3 functional model, from either weights file people have.

- ``tensorflow_inception_graph.pb`` (inception5h.zip; also published as ``InceptionV1.pb``):
  the frozen TensorFlow graph of DeepDream's TensorFlow tutorial, Lucid and Microscope.
  Input: RGB pixels - 117. TensorFlow "SAME" padding. 1008 outputs. Its constants
  (``conv2d0_w``, ``mixed4c_1x1_b``...) are read with ``graphdef_file``; its LRN parameters
  come from its ``localresponsenorm*`` nodes; the converter checks the strides and paddings
  of the nodes it mirrors.
- ``bvlc_googlenet.caffemodel``: Caffe's BVLC GoogLeNet of the original DeepDream notebook.
  Input: BGR pixels - (104, 117, 123). Caffe padding (a 3-pixel border around the first
  convolution, ceil-mode pooling). 1000 outputs in synset order. Read with ``caffe_file``.
  The model still takes RGB pixels - 117: a fixed 1x1 convolution ``input_bgr`` swaps the
  channels and shifts each by its mean difference, before the border padding, as Caffe does.

Layer names are those of the inception5h graph (Caffe names in ``CAFFE_NAMES``): ``conv2d0``
(a ReLU; its input ``conv2d0_pre_relu`` is the convolution), ``maxpool0``,
``localresponsenorm0``, ..., ``mixed3a`` ... ``mixed5b`` (concatenations of their branches'
ReLUs, so ``graph.pre_activation`` finds ``mixed4a_pre_relu``), ``avgpool0``,
``softmax2_pre_activation`` (logits) and ``softmax2``. Widths are read off the weights, so
both files (mixed4a: 508 or 512 channels) and smaller test networks build alike.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from toolbox.errors import UserError
from toolbox.nets.formats import caffe_file, graphdef_file, protobuf
from toolbox.nets.formats.guards import read_bytes
from toolbox.nets.spec import LayerSpec, ModelSpec

log = logging.getLogger(__name__)

# Bump whenever ``build`` or a reader would make a different model from the same file:
# converted caches record it and are rebuilt on a change.
CONVERTER_VERSION = 1

GRAPH_FILE = "tensorflow_inception_graph.pb"
CAFFE_FILE = "bvlc_googlenet.caffemodel"
FILES_HINT = f"the frozen TensorFlow graph {GRAPH_FILE} (inception5h.zip) or Caffe's {CAFFE_FILE}"
INCEPTION5H, CAFFE = "inception5h", "caffe"

INPUT_MEAN = 117.0  # the model's input is RGB pixels - 117, whichever file it came from
CAFFE_MEAN_BGR = (104.0, 117.0, 123.0)

MIXED = ("mixed3a", "mixed3b", "mixed4a", "mixed4b", "mixed4c", "mixed4d", "mixed4e", "mixed5a", "mixed5b")
POOL_AFTER = {"mixed3b": "maxpool4", "mixed4e": "maxpool10"}  # the stride-2 pools between blocks
BRANCHES = {"1x1": 1, "3x3_bottleneck": 1, "3x3": 3, "5x5_bottleneck": 1, "5x5": 5, "pool_reduce": 1}  # kernel
STEM = {"conv2d0": 7, "conv2d1": 1, "conv2d2": 3}
CONVS = {**STEM, **{f"{m}_{b}": k for m in MIXED for b, k in BRANCHES.items()}}
CONV_STRIDES = {"conv2d0": 2}  # all others 1
# the widths a GoogLeNet can have (both files: at most 384 filters, 1024 inputs, 1008 classes);
# a file outside them is refused before anything is built
MAX_WIDTH = 4096
MAX_CLASSES = 100_000

# inception5h's widths (conv: out channels; mixed: 1x1, 3x3 bottleneck, 3x3, 5x5 bottleneck,
# 5x5, pool reduce), for random weights. bvlc_googlenet differs in mixed4a's 3x3 (208, so the
# block has 512 channels) and mixed5a's 5x5 bottleneck (32).
WIDTHS = {"conv2d0": 64, "conv2d1": 64, "conv2d2": 192,
          "mixed3a": (64, 96, 128, 16, 32, 32), "mixed3b": (128, 128, 192, 32, 96, 64),
          "mixed4a": (192, 96, 204, 16, 48, 64), "mixed4b": (160, 112, 224, 24, 64, 64),
          "mixed4c": (128, 128, 256, 24, 64, 64), "mixed4d": (112, 144, 288, 32, 64, 64),
          "mixed4e": (256, 160, 320, 32, 128, 128), "mixed5a": (256, 160, 320, 48, 128, 128),
          "mixed5b": (384, 192, 384, 48, 128, 128)}
CAFFE_WIDTHS = {**WIDTHS, "mixed4a": (192, 96, 208, 16, 48, 64), "mixed5a": (256, 160, 320, 32, 128, 128)}
CAFFE_CHANNELS = {"mixed4a": 512}  # offered layers whose width differs in bvlc_googlenet

_CAFFE_BRANCHES = {"1x1": "1x1", "3x3_bottleneck": "3x3_reduce", "3x3": "3x3", "5x5_bottleneck": "5x5_reduce",
                   "5x5": "5x5", "pool_reduce": "pool_proj"}
# our layer name -> Caffe's layer (weights) or top (outputs) name
CAFFE_NAMES = {"conv2d0": "conv1/7x7_s2", "maxpool0": "pool1/3x3_s2", "localresponsenorm0": "pool1/norm1",
               "conv2d1": "conv2/3x3_reduce", "conv2d2": "conv2/3x3", "localresponsenorm1": "conv2/norm2",
               "maxpool1": "pool2/3x3_s2", "maxpool4": "pool3/3x3_s2", "maxpool10": "pool4/3x3_s2",
               "avgpool0": "pool5/7x7_s1", "softmax2_pre_activation": "loss3/classifier", "softmax2": "prob",
               **{m: f"inception_{m[5:]}/output" for m in MIXED},
               **{f"{m}_{b}": f"inception_{m[5:]}/{c}" for m in MIXED for b, c in _CAFFE_BRANCHES.items()},
               **{f"{m}_pool": f"inception_{m[5:]}/pool" for m in MIXED}}


def layer_name(name: str) -> str:
    """Our name for a layer named either way (``inception_4c/output`` -> ``mixed4c``)."""
    ours = {caffe: own for own, caffe in CAFFE_NAMES.items()}
    return ours.get(name, name)


@dataclass(frozen=True)
class LRN:
    """TensorFlow's LRN: x / (bias + alpha * sum of x^2 over 2 * depth_radius + 1 channels) ** beta."""

    depth_radius: int
    bias: float
    alpha: float
    beta: float

    def __post_init__(self) -> None:  # what a file may say: checked before anything is built or cached
        numbers = (self.bias, self.alpha, self.beta)
        if not (0 <= self.depth_radius <= 64 and all(math.isfinite(v) for v in numbers) and self.bias > 0
                and self.alpha >= 0 and self.beta >= 0):
            raise ValueError(f"an LRN with depth_radius {self.depth_radius}, bias {self.bias}, alpha {self.alpha}, "
                             f"beta {self.beta} (a radius of 0..64, a positive bias, alpha and beta >= 0 expected)")


# Caffe: local_size 5, alpha 1e-4, beta 0.75, k 1 (bvlc_googlenet's prototxt); Caffe divides
# alpha by local_size. TensorFlow's LRN op defaults, for attributes a frozen graph leaves out.
CAFFE_LRN = LRN(depth_radius=2, bias=1.0, alpha=1e-4 / 5, beta=0.75)
TF_LRN_DEFAULTS = LRN(depth_radius=5, bias=1.0, alpha=1.0, beta=0.5)


@dataclass(frozen=True)
class GoogLeNetWeights:
    """What ``build`` needs, whichever file it came from: ``<conv>_w`` (kh, kw, in, out) and
    ``<conv>_b`` for every name in CONVS, ``softmax2_w`` (in, classes), ``softmax2_b``, and
    for Caffe ``input_bgr_w`` / ``input_bgr_b``."""

    arrays: dict[str, np.ndarray]
    source: str  # INCEPTION5H (TensorFlow padding) or CAFFE (Caffe padding, BGR input)
    lrn: tuple[LRN, LRN]  # localresponsenorm0, localresponsenorm1


@keras.saving.register_keras_serializable(package="deepvis")
class LocalResponseNorm(keras.layers.Layer):
    """Local response normalization across channels (``tf.nn.local_response_normalization``)."""

    def __init__(self, depth_radius: int, bias: float, alpha: float, beta: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.depth_radius, self.bias, self.alpha, self.beta = int(depth_radius), float(bias), float(alpha), float(beta)

    def call(self, x):
        import tensorflow as tf

        return tf.nn.local_response_normalization(x, self.depth_radius, self.bias, self.alpha, self.beta)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "depth_radius": self.depth_radius, "bias": self.bias, "alpha": self.alpha,
                "beta": self.beta}


# -- the Keras model ---------------------------------------------------------------------------------


def _check_shapes(arrays: dict[str, np.ndarray]) -> None:
    """Kernel sizes and bias lengths as the architecture has them; ValueError naming the first
    that is not (channel counts between layers are checked when the weights are set)."""
    for name, kernel in CONVS.items():
        w, b = arrays[name + "_w"], arrays[name + "_b"]
        if w.ndim != 4 or w.shape[:2] != (kernel, kernel) or b.shape != (w.shape[3],):
            raise ValueError(f"{name} has weights {w.shape} and bias {b.shape}; "
                             f"a {kernel}x{kernel} convolution and one bias per output were expected")
        if not (1 <= w.shape[2] <= MAX_WIDTH and 1 <= w.shape[3] <= MAX_WIDTH):
            raise ValueError(f"{name} has weights {w.shape}; at most {MAX_WIDTH} inputs and filters expected")
    w, b = arrays["softmax2_w"], arrays["softmax2_b"]
    if w.ndim != 2 or b.shape != (w.shape[1],) or not (1 <= w.shape[0] <= MAX_WIDTH and 1 <= w.shape[1] <= MAX_CLASSES):
        raise ValueError(f"softmax2 has weights {w.shape} and bias {b.shape}")
    for name, array in arrays.items():
        if not np.isfinite(array).all():
            raise ValueError(f"{name} holds NaN or infinite values")


def build(weights: GoogLeNetWeights):
    """The Keras model (input: RGB pixels - 117, any size >= 32) with ``weights`` set."""
    from keras import layers as L

    arrays, caffe = weights.arrays, weights.source == CAFFE
    _check_shapes(arrays)
    values: dict[str, list[np.ndarray]] = {}

    def conv(x, name, padding="same"):
        w = arrays[name + "_w"]
        values[name + "_pre_relu"] = [w, arrays[name + "_b"]]
        x = L.Conv2D(w.shape[3], w.shape[:2], CONV_STRIDES.get(name, 1), padding=padding, name=name + "_pre_relu")(x)
        return L.ReLU(name=name)(x)

    def maxpool(x, name):
        if caffe:  # ceil mode = one more row and column at the end; the inputs are >= 0, so zeros change no max
            x = L.ZeroPadding2D(((0, 1), (0, 1)), name=name + "_pad")(x)
            return L.MaxPooling2D(3, 2, padding="valid", name=name)(x)
        return L.MaxPooling2D(3, 2, padding="same", name=name)(x)

    def lrn(x, name, p: LRN):
        return LocalResponseNorm(p.depth_radius, p.bias, p.alpha, p.beta, name=name)(x)

    inputs = keras.Input((None, None, 3), name="image")
    if caffe:
        values["input_bgr"] = [arrays["input_bgr_w"], arrays["input_bgr_b"]]
        x = L.Conv2D(3, 1, name="input_bgr")(inputs)
        x = conv(L.ZeroPadding2D(3, name="conv2d0_pad")(x), "conv2d0", padding="valid")
    else:
        x = conv(inputs, "conv2d0")
    x = lrn(maxpool(x, "maxpool0"), "localresponsenorm0", weights.lrn[0])
    x = conv(conv(x, "conv2d1"), "conv2d2")
    x = maxpool(lrn(x, "localresponsenorm1", weights.lrn[1]), "maxpool1")
    for block in MIXED:
        p = block + "_"
        branches = [conv(x, p + "1x1"),
                    conv(conv(x, p + "3x3_bottleneck"), p + "3x3"),
                    conv(conv(x, p + "5x5_bottleneck"), p + "5x5"),
                    conv(L.MaxPooling2D(3, 1, padding="same", name=p + "pool")(x), p + "pool_reduce")]
        x = L.Concatenate(name=block)(branches)
        if block in POOL_AFTER:
            x = maxpool(x, POOL_AFTER[block])
    x = L.GlobalAveragePooling2D(name="avgpool0")(x)  # the files' 7x7 average pool, at any input size
    values["softmax2_pre_activation"] = [arrays["softmax2_w"], arrays["softmax2_b"]]
    x = L.Dense(arrays["softmax2_b"].shape[0], name="softmax2_pre_activation")(x)
    model = keras.Model(inputs, L.Softmax(name="softmax2")(x), name="googlenet")
    for name, value in values.items():
        model.get_layer(name).set_weights(value)
    return model


def random_weights(seed: int = 0, width: float = 1.0, classes: int = 1008,
                   widths: dict | None = None) -> GoogLeNetWeights:
    """The architecture of ``widths`` (default inception5h's; ``width`` scales every layer)
    with He-normal random weights and Caffe's LRN: for benchmarks, structure tests and test files."""
    rng = np.random.default_rng(seed)
    widths = WIDTHS if widths is None else widths

    def scaled(n: int) -> int:
        return max(1, round(n * width))

    out = {name: scaled(widths[name]) for name in STEM}
    for block in MIXED:
        out.update({f"{block}_{b}": scaled(n) for b, n in zip(BRANCHES, widths[block])})
    inputs = {"conv2d0": 3, "conv2d1": out["conv2d0"], "conv2d2": out["conv2d1"]}
    previous = out["conv2d2"]
    for block in MIXED:
        p = block + "_"
        inputs.update({p + "1x1": previous, p + "3x3_bottleneck": previous, p + "5x5_bottleneck": previous,
                       p + "pool_reduce": previous, p + "3x3": out[p + "3x3_bottleneck"],
                       p + "5x5": out[p + "5x5_bottleneck"]})
        previous = sum(out[p + b] for b in ("1x1", "3x3", "5x5", "pool_reduce"))
    arrays = {}
    for name, kernel in CONVS.items():
        fan_in = kernel * kernel * inputs[name]
        arrays[name + "_w"] = rng.normal(0, np.sqrt(2 / fan_in), (kernel, kernel, inputs[name], out[name]))
        arrays[name + "_b"] = rng.normal(0, 0.01, out[name])
    arrays["softmax2_w"] = rng.normal(0, np.sqrt(1 / previous), (previous, classes))
    arrays["softmax2_b"] = np.zeros(classes)
    return GoogLeNetWeights({k: v.astype(np.float32) for k, v in arrays.items()}, INCEPTION5H, (CAFFE_LRN, CAFFE_LRN))


# -- the two weights files ---------------------------------------------------------------------------


def _checked_node(graph: graphdef_file.FrozenGraph, name: str, op: str, size: int, stride: int) -> None:
    """``name`` (a ``op`` node) has the window, stride and padding ``build`` mirrors."""
    if graph.attr(name, "data_format", "NHWC") != "NHWC":
        raise ValueError(f"node {name} is not NHWC")
    if graph.attr(name, "padding") != "SAME":
        raise ValueError(f"node {name} has padding {graph.attr(name, 'padding')}, SAME was expected")
    if graph.attr(name, "strides") != [1, stride, stride, 1]:
        raise ValueError(f"node {name} has strides {graph.attr(name, 'strides')}, {stride} was expected")
    if op == "MaxPool" and graph.attr(name, "ksize") != [1, size, size, 1]:
        raise ValueError(f"node {name} pools {graph.attr(name, 'ksize')}, {size}x{size} was expected")
    if op == "Conv2D" and graph.attr(name, "dilations", [1, 1, 1, 1]) != [1, 1, 1, 1]:
        raise ValueError(f"node {name} is a dilated convolution")


def from_graph(graph: graphdef_file.FrozenGraph) -> GoogLeNetWeights:
    """inception5h's weights from its frozen graph; KeyError names a missing constant or
    node, ValueError a node unlike the ones ``build`` makes."""
    arrays = {}
    for name in [*CONVS, "softmax2"]:
        arrays[name + "_w"], arrays[name + "_b"] = graph.constant(name + "_w"), graph.constant(name + "_b")
    for name in CONVS:
        convs = [n for n in graph.consumers(name + "_w") if graph.op(n) == "Conv2D"]
        if not convs:
            raise ValueError(f"constant {name}_w feeds no Conv2D node")
        for node in convs:
            _checked_node(graph, node, "Conv2D", CONVS[name], CONV_STRIDES.get(name, 1))
    pools = {"maxpool0": 2, "maxpool1": 2, **{p: 2 for p in POOL_AFTER.values()}, **{m + "_pool": 1 for m in MIXED}}
    for name, stride in pools.items():
        if graph.op(name) == "MaxPool":  # checked where present; named differently, they go unchecked
            _checked_node(graph, name, "MaxPool", 3, stride)
    lrn = []
    for name in ("localresponsenorm0", "localresponsenorm1"):
        if graph.op(name) != "LRN":
            raise KeyError(f"LRN node {name}")
        d = TF_LRN_DEFAULTS
        lrn.append(LRN(graph.attr(name, "depth_radius", d.depth_radius), graph.attr(name, "bias", d.bias),
                       graph.attr(name, "alpha", d.alpha), graph.attr(name, "beta", d.beta)))
    return GoogLeNetWeights(arrays, INCEPTION5H, (lrn[0], lrn[1]))


def from_caffe(net: caffe_file.CaffeNet) -> GoogLeNetWeights:
    """bvlc_googlenet's weights from its caffemodel, in ``build``'s layout; KeyError names a
    missing layer, ValueError a layer of the wrong shape."""
    arrays = {}
    for name in [*CONVS, "softmax2_pre_activation"]:
        caffe_name = CAFFE_NAMES[name]
        blobs = net.layers[caffe_name]
        if len(blobs) != 2:
            raise ValueError(f"layer {caffe_name} has {len(blobs)} blobs, weights and bias were expected")
        w, b = blobs
        if name == "softmax2_pre_activation":  # (classes, in), maybe as (1, 1, classes, in)
            if w.ndim < 2 or any(n != 1 for n in w.shape[:-2]):
                raise ValueError(f"layer {caffe_name} has weights of shape {w.shape}")
            arrays["softmax2_w"], arrays["softmax2_b"] = w.reshape(w.shape[-2:]).T, b.reshape(-1)
        else:  # (out, in, kh, kw) -> (kh, kw, in, out)
            if w.ndim != 4:
                raise ValueError(f"layer {caffe_name} has weights of shape {w.shape}, a convolution's are 4-D")
            arrays[name + "_w"], arrays[name + "_b"] = w.transpose(2, 3, 1, 0), b.reshape(-1)
    swap = np.zeros((1, 1, 3, 3), np.float32)
    swap[0, 0, [0, 1, 2], [2, 1, 0]] = 1.0  # input RGB channel c -> Caffe's BGR channel 2 - c
    arrays["input_bgr_w"] = swap
    arrays["input_bgr_b"] = INPUT_MEAN - np.array(CAFFE_MEAN_BGR, np.float32)
    return GoogLeNetWeights({k: np.ascontiguousarray(v, np.float32) for k, v in arrays.items()}, CAFFE,
                            (CAFFE_LRN, CAFFE_LRN))


SNIFF_BYTES = 1 << 20


def weights_kind(path: Path, head: bytes | None = None) -> str:
    """INCEPTION5H or CAFFE, from the layout of the file's first protobuf fields (a GraphDef
    repeats field 1, its nodes; a NetParameter has one name and repeats its layers, field 2
    or 100); a UserError when it is neither."""
    if head is None:
        try:
            with open(path, "rb") as f:
                head = f.read(SNIFF_BYTES)
        except OSError as e:
            raise UserError(f"cannot read GoogLeNet weights file {path}: {e.strerror or e}") from None
    numbers = [n for n, wire in protobuf.top_level_fields(head, 16) if wire == protobuf.BYTES]
    if 100 in numbers or numbers.count(2) >= 2:
        return CAFFE
    if numbers.count(1) >= 2:
        return INCEPTION5H
    raise UserError(f"{path} is not a GoogLeNet weights file: expected {FILES_HINT}")


def _refusal(path: Path, kind: str, e: Exception) -> UserError:
    what = "a TensorFlow graph, but not inception5h's GoogLeNet" if kind == INCEPTION5H else \
        "a Caffe model, but not bvlc_googlenet"
    if isinstance(e, KeyError):
        missing = str(e.args[0])
        reason = f"it has no {missing}" if " " in missing else \
            f"it has no {'constant' if kind == INCEPTION5H else 'layer with weights'} {missing}"
    else:
        reason = " ".join(str(e).split())[:200]
    return UserError(f"{path} is {what} ({reason}); expected {FILES_HINT}")


def convert(path: Path):
    """The Keras model of a GoogLeNet weights file of either kind."""
    data = read_bytes(path, "GoogLeNet weights file")
    kind = weights_kind(path, data[:SNIFF_BYTES])
    log.debug("googlenet: converting %s (%s)", path, GRAPH_FILE if kind == INCEPTION5H else CAFFE_FILE)
    try:
        if kind == INCEPTION5H:
            weights = from_graph(graphdef_file.read_frozen_graph(path, data))
        else:
            weights = from_caffe(caffe_file.read_caffemodel(path, data))
        del data
        return build(weights)
    except (KeyError, ValueError, IndexError) as e:
        raise _refusal(path, kind, e) from None


def find_weights(explicit: str | None) -> Path:
    """The weights file given in settings / ``--weights``; a UserError naming the files to
    look for when there is none."""
    if not explicit:
        raise UserError(f"googlenet needs a weights file: give {FILES_HINT} with --weights FILE "
                        "or 'weights:' in settings.yaml (see the README, Networks)")
    path = Path(explicit).expanduser()
    if not path.is_file():
        raise UserError(f"GoogLeNet weights file not found: {path} (expected {FILES_HINT})")
    return path


def spec_for(spec: ModelSpec, kind: str) -> ModelSpec:
    """``spec`` as the weights of ``kind`` make the network: Caffe's has 1000 classes in
    synset order (``source.caffe_labels``) and 512 channels in mixed4a."""
    if (spec.mean, spec.std) != (INPUT_MEAN, 1.0):
        raise UserError(f"model spec {spec.name}: the GoogLeNet builder takes pixels - {INPUT_MEAN:g} "
                        f"(preprocess: {{mean: {INPUT_MEAN:g}, std: 1}})")
    if kind != CAFFE:
        return spec
    labels = spec.labels_file.parent / str(spec.source.get("caffe_labels", "imagenet_labels.txt"))
    layers = tuple(LayerSpec(layer.name, CAFFE_CHANNELS.get(layer.name, layer.channels)) for layer in spec.layers)
    return dataclasses.replace(spec, labels_file=labels, layers=layers)
