"""GoogLeNet from both weights files, proven on files built here: a frozen TensorFlow graph
with inception5h's node names (run by TensorFlow itself as the reference) and a caffemodel
written by a small wire-format writer (checked against Caffe's arithmetic written out in
TensorFlow ops). Reduced widths for the numbers, full width for the toolbox end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from conftest import EXAMPLES, REPO, deepvis
from toolbox.errors import UserError
from toolbox.nets import Probe, googlenet, load_network
from toolbox.settings import load_settings

TEST_LRN = googlenet.LRN(depth_radius=3, bias=2.0, alpha=1e-3, beta=0.6)  # unlike both defaults: read, not assumed


# -- a frozen graph with inception5h's names, built and run by TensorFlow ------------------------


def write_inception5h_graph(path, weights: googlenet.GoogLeNetWeights, lrn: googlenet.LRN = TEST_LRN) -> None:
    """inception5h's structure: ``input`` (pixels - 117), SAME convolutions and pools, LRN
    nodes, mixed blocks concatenating their branches' ReLUs, a 7x7 average pool, softmax2."""
    import tensorflow as tf

    a = weights.arrays
    graph = tf.Graph()
    with graph.as_default():
        def conv(x, name, stride=1):
            w, b = tf.constant(a[name + "_w"], name=name + "_w"), tf.constant(a[name + "_b"], name=name + "_b")
            y = tf.nn.conv2d(x, w, [1, stride, stride, 1], "SAME", name=name + "_pre_relu/conv")
            return tf.nn.relu(tf.nn.bias_add(y, b), name=name)

        def pool(x, name, stride=2):
            return tf.nn.max_pool2d(x, 3, stride, "SAME", name=name)

        def norm(x, name):
            return tf.nn.local_response_normalization(x, lrn.depth_radius, lrn.bias, lrn.alpha, lrn.beta, name=name)

        x = tf.compat.v1.placeholder(tf.float32, (None, None, None, 3), name="input")
        x = norm(pool(conv(x, "conv2d0", 2), "maxpool0"), "localresponsenorm0")
        x = pool(norm(conv(conv(x, "conv2d1"), "conv2d2"), "localresponsenorm1"), "maxpool1")
        for block in googlenet.MIXED:
            p = block + "_"
            x = tf.concat([conv(x, p + "1x1"), conv(conv(x, p + "3x3_bottleneck"), p + "3x3"),
                           conv(conv(x, p + "5x5_bottleneck"), p + "5x5"),
                           conv(pool(x, p + "pool", 1), p + "pool_reduce")], 3, name=block)
            if block in googlenet.POOL_AFTER:
                x = pool(x, googlenet.POOL_AFTER[block])
        x = tf.reshape(tf.nn.avg_pool2d(x, 7, 1, "VALID", name="avgpool0"), [-1, a["softmax2_w"].shape[0]])
        logits = tf.matmul(x, tf.constant(a["softmax2_w"], name="softmax2_w")) + tf.constant(a["softmax2_b"],
                                                                                             name="softmax2_b")
        tf.nn.softmax(tf.identity(logits, name="softmax2_pre_activation"), name="softmax2")
    path.write_bytes(graph.as_graph_def().SerializeToString())


def run_graph(path, image: np.ndarray, names: list[str]) -> list[np.ndarray]:
    """What the file's own graph computes (TensorFlow 1 style: import, session, run)."""
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(path.read_bytes())
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as session:
        return session.run([f"{n}:0" for n in names], {"input:0": image - 117.0})


# -- a caffemodel, and Caffe's arithmetic ----------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _int_field(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _blob(a: np.ndarray, legacy: bool) -> bytes:
    if legacy:  # num, channels, height, width
        shape = b"".join(_int_field(i + 1, n) for i, n in enumerate((1,) * (4 - a.ndim) + a.shape))
    else:  # BlobShape with packed dims
        shape = _field(7, _field(1, b"".join(_varint(n) for n in a.shape)))
    return shape + _field(5, a.astype("<f4").tobytes())


def write_caffemodel(path, layers: dict[str, list[np.ndarray]], v1: bool, name: str = "GoogleNet") -> bytes:
    """A NetParameter: V1 ``layers`` (name 4, enum type 5, blobs 6, old 4-D blob shapes) or
    new ``layer`` (name 1, type 2, blobs 7, BlobShape), with weightless layers and fields the
    reader must skip in between."""
    parts = [_field(1, name.encode()), _field(3, b"data")]
    for i, (layer, blobs) in enumerate({"data": [], **layers, "prob": []}.items()):
        if v1:
            body = _field(2, b"bottom") + _field(4, layer.encode()) + _int_field(5, 4)
            body += b"".join(_field(6, _blob(b, legacy=True)) for b in blobs)
        else:
            body = _field(1, layer.encode()) + _field(2, b"Convolution") + _field(3, b"bottom")
            body += b"".join(_field(7, _blob(b, legacy=False)) for b in blobs)
            body += _field(118, _int_field(1, 5) + _varint(2 << 3 | 5) + np.float32(1e-4).tobytes())  # lrn_param
        parts.append(_field(2 if v1 else 100, body))
    data = b"".join(parts)
    path.write_bytes(data)
    return data


def caffe_layers(weights: googlenet.GoogLeNetWeights) -> dict[str, list[np.ndarray]]:
    """``weights`` in Caffe's layout and names: conv (out, in, kh, kw), fc (classes, in)."""
    a = weights.arrays
    layers = {googlenet.CAFFE_NAMES[n]: [a[n + "_w"].transpose(3, 2, 0, 1), a[n + "_b"]] for n in googlenet.CONVS}
    layers["loss3/classifier"] = [a["softmax2_w"].T, a["softmax2_b"]]
    return layers


def caffe_forward(layers: dict[str, list[np.ndarray]], pixels: np.ndarray) -> dict[str, np.ndarray]:
    """bvlc_googlenet's deploy net as Caffe computes it: BGR minus the mean, explicit zero
    padding, ceil-mode max pooling, LRN with alpha / local_size, 7x7 average pool."""
    import tensorflow as tf

    def conv(x, name, pad=0, stride=1):
        w, b = layers[name]
        x = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
        return tf.nn.relu(tf.nn.conv2d(x, np.transpose(w, (2, 3, 1, 0)), stride, "VALID") + b)

    def pool(x, stride, pad=0):
        extra = []
        for size in x.shape[1:3]:
            out = -(-(size + 2 * pad - 3) // stride) + 1
            if (out - 1) * stride >= size + pad:
                out -= 1
            extra.append((out - 1) * stride + 3 - size - 2 * pad)
        x = tf.pad(x, [[0, 0], [pad, pad + extra[0]], [pad, pad + extra[1]], [0, 0]], constant_values=-np.inf)
        return tf.nn.max_pool2d(x, 3, stride, "VALID")

    def lrn(x, size=5, alpha=1e-4, beta=0.75):
        squares = tf.pad(tf.square(x), [[0, 0], [0, 0], [0, 0], [size // 2, size // 2]])
        total = sum(squares[..., i:i + x.shape[-1]] for i in range(size))
        return x / (1.0 + alpha / size * total) ** beta

    x = tf.constant(pixels[..., ::-1] - np.array([104.0, 117.0, 123.0]), tf.float32)
    x = lrn(pool(conv(x, "conv1/7x7_s2", 3, 2), 2))
    x = pool(lrn(conv(conv(x, "conv2/3x3_reduce"), "conv2/3x3", 1)), 2)
    out = {}
    for block in ("3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b"):
        p = f"inception_{block}/"
        x = tf.concat([conv(x, p + "1x1"), conv(conv(x, p + "3x3_reduce"), p + "3x3", 1),
                       conv(conv(x, p + "5x5_reduce"), p + "5x5", 2), conv(pool(x, 1, 1), p + "pool_proj")], 3)
        out[p + "output"] = x.numpy()
        if block in ("3b", "4e"):
            x = pool(x, 2)
    x = tf.reshape(tf.nn.avg_pool2d(x, 7, 1, "VALID"), [-1, x.shape[-1]])
    w, b = layers["loss3/classifier"]
    out["loss3/classifier"] = (x @ w.T + b).numpy()
    out["prob"] = tf.nn.softmax(out["loss3/classifier"]).numpy()
    return out


def outputs(model, pixels: np.ndarray, names: list[str]) -> list[np.ndarray]:
    import keras

    view = keras.Model(model.input, {n: model.get_layer(n).output for n in names})
    result = view(pixels - 117.0)
    return [np.asarray(result[n]) for n in names]


def assert_close(ours, reference, what: str) -> None:
    ours, reference = np.asarray(ours), np.asarray(reference)
    assert ours.shape == reference.shape, (what, ours.shape, reference.shape)
    relative = np.abs(ours - reference).max() / np.abs(reference).max()
    assert relative < 1e-4, (what, relative)


def pixels(size: tuple[int, int], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (1, *size, 3)).astype(np.float32)


# -- the converters against their references ---------------------------------------------------------------


@pytest.fixture(scope="module")
def small():
    """Random weights at 1/8 of the width, classifier scaled up so the softmax is not flat."""
    w = googlenet.random_weights(seed=1, width=1 / 8)
    w.arrays["softmax2_w"] *= 20
    return w


def test_frozen_graph_converts_to_the_same_network(tmp_path, small):
    path = tmp_path / "tensorflow_inception_graph.pb"
    write_inception5h_graph(path, small)
    model = googlenet.convert(path)
    assert model.get_layer("localresponsenorm1").get_config()["alpha"] == pytest.approx(TEST_LRN.alpha)
    image = pixels((224, 224))
    names = ["mixed4c", "softmax2_pre_activation", "softmax2"]
    for name, ours, reference in zip(names, outputs(model, image, names), run_graph(path, image, names)):
        assert_close(ours, reference, name)
    assert run_graph(path, image, ["softmax2"])[0].max() > 0.01  # not a flat softmax: the test has teeth
    odd = pixels((227, 201), seed=2)  # odd sides: where SAME padding is lopsided
    assert_close(outputs(model, odd, ["mixed4c"])[0], run_graph(path, odd, ["mixed4c"])[0], "mixed4c at 227x201")


def test_caffemodel_converts_to_the_same_network(tmp_path, small):
    caffe = googlenet.GoogLeNetWeights({**small.arrays, "softmax2_w": small.arrays["softmax2_w"][:, :1000],
                                        "softmax2_b": small.arrays["softmax2_b"][:1000]}, "caffe", small.lrn)
    layers = caffe_layers(caffe)
    old, new = tmp_path / "v1.caffemodel", tmp_path / "new.caffemodel"
    write_caffemodel(old, layers, v1=True)
    write_caffemodel(new, layers, v1=False)
    model = googlenet.convert(old)
    names = ["mixed4c", "softmax2_pre_activation", "softmax2"]
    for size in ((224, 224), (227, 201)):  # odd sides: where Caffe's ceil-mode pools differ from SAME
        image = pixels(size, seed=3)
        reference = caffe_forward(layers, image)
        ours = outputs(model, image, names)
        assert_close(ours[0], reference["inception_4c/output"], f"mixed4c at {size}")
        if size == (224, 224):
            assert_close(ours[1], reference["loss3/classifier"], "logits")
            assert_close(ours[2], reference["prob"], "softmax2")
            assert reference["prob"].max() > 0.01
    np.testing.assert_array_equal(outputs(googlenet.convert(new), image, ["mixed4c"])[0], ours[0])


def test_caffe_names_map_both_ways():
    assert googlenet.CAFFE_NAMES["mixed4c"] == "inception_4c/output"
    assert googlenet.layer_name("inception_4c/output") == "mixed4c" == googlenet.layer_name("mixed4c")
    assert googlenet.layer_name("inception_3b/5x5_reduce") == "mixed3b_5x5_bottleneck"
    assert googlenet.layer_name("pool1/norm1") == "localresponsenorm0"


# -- wrong files -----------------------------------------------------------------------------------------


def _refused(path, match: str) -> str:
    with pytest.raises(UserError, match=match) as e:
        googlenet.convert(path)
    message = str(e.value)
    assert str(path) in message and "\n" not in message, message
    return message


def test_wrong_files_are_one_line_errors(tmp_path, small):
    import tensorflow as tf

    text = tmp_path / "notes.pb"
    text.write_text("these are not the weights you are looking for\n" * 20)
    assert "tensorflow_inception_graph.pb" in _refused(text, "not a GoogLeNet weights file")

    whole = tmp_path / "whole.pb"
    write_inception5h_graph(whole, small)
    for cut in (0.6, 0.97):
        (tmp_path / "cut.pb").write_bytes(whole.read_bytes()[:int(whole.stat().st_size * cut)])
        _refused(tmp_path / "cut.pb", "not a complete GraphDef .truncated or damaged")

    other = tf.Graph()  # a graph of another network
    with other.as_default():
        x = tf.compat.v1.placeholder(tf.float32, (None, 8), name="input")
        tf.nn.softmax(x @ tf.constant(np.ones((8, 4), np.float32), name="fc_w"), name="prob")
    (tmp_path / "other.pb").write_bytes(other.as_graph_def().SerializeToString())
    _refused(tmp_path / "other.pb", "not inception5h's GoogLeNet .it has no constant conv2d0_w")

    alexnet = {"conv1": [np.ones((96, 3, 11, 11), np.float32), np.zeros(96, np.float32)],
               "fc8": [np.ones((1000, 4096), np.float32), np.zeros(1000, np.float32)]}
    write_caffemodel(tmp_path / "bvlc_alexnet.caffemodel", alexnet, v1=True, name="CaffeNet")
    _refused(tmp_path / "bvlc_alexnet.caffemodel", "not bvlc_googlenet .it has no layer with weights conv1/7x7_s2")

    layers = caffe_layers(small)
    layers["inception_4c/5x5"][0] = layers["inception_4c/5x5"][0][:, :, :3, :3]  # a 3x3 where a 5x5 belongs
    write_caffemodel(tmp_path / "odd.caffemodel", layers, v1=False)
    _refused(tmp_path / "odd.caffemodel", "mixed4c_5x5 has weights .* 5x5 convolution")
    data = write_caffemodel(tmp_path / "whole.caffemodel", caffe_layers(small), v1=False)
    (tmp_path / "cut.caffemodel").write_bytes(data[:len(data) // 2])
    _refused(tmp_path / "cut.caffemodel", "truncated")
    _refused(tmp_path / "missing.pb", "GoogLeNet weights file not found")


def test_crafted_constant_cannot_make_the_reader_allocate(tmp_path, small):
    """A Const that claims 2^40 elements with one value would fill terabytes in make_ndarray."""
    from tensorflow.core.framework import graph_pb2

    from toolbox.nets.formats.graphdef_file import read_frozen_graph

    path = tmp_path / "huge.pb"
    write_inception5h_graph(path, small)
    graph = graph_pb2.GraphDef.FromString(path.read_bytes())
    node = next(n for n in graph.node if n.name == "conv2d0_w")
    tensor = node.attr["value"].tensor
    tensor.ClearField("tensor_content")
    tensor.float_val.append(1.0)
    tensor.tensor_shape.dim[0].size = 1 << 40
    path.write_bytes(graph.SerializeToString())
    with pytest.raises(ValueError, match="conv2d0_w has shape"):
        read_frozen_graph(path).constant("conv2d0_w")
    _refused(path, "conv2d0_w has shape")


# -- the full network in the toolbox ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("googlenet") / "tensorflow_inception_graph.pb"
    write_inception5h_graph(path, googlenet.random_weights(seed=4))
    return path


@pytest.fixture(scope="module")
def googlenet_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("googlenet-cache")


@pytest.fixture(scope="module")
def converted(graph_file, googlenet_cache):
    """The full-width graph converted once through the toolbox, into a cache the CLI reuses."""
    return load_network(load_settings(None, {"model": "googlenet", "weights": str(graph_file),
                                             "cache_dir": str(googlenet_cache)}))


def test_converted_graph_is_cached_and_probes(converted, graph_file, googlenet_cache, photos):
    net = converted
    cached = googlenet_cache / "models" / "googlenet-inception5h.keras"
    record = json.loads(cached.with_name(cached.name + ".json").read_text())
    assert record["source"] == str(graph_file) and record["converter_version"] == googlenet.CONVERTER_VERSION
    assert len(net.labels) == 1008 and net.labels[0] == "dummy" and net.labels[1] == "kit fox"
    assert net.layer_shapes()["mixed4c"] == (14, 14, 512) and net.layer_shapes()["mixed5b"] == (7, 7, 1024)
    obs = Probe(net, ["mixed4c", "mixed3b"])(net.fit_input(photos["chelsea"]))
    reference = run_graph(graph_file, net.fit_input(photos["chelsea"])[None].astype(np.float32),
                          ["mixed4c", "softmax2"])
    assert_close(obs.activations["mixed4c"], reference[0][0], "probe mixed4c")
    assert_close(obs.probs, reference[1][0], "probe softmax2")
    pre = net.view(["mixed4a"], pre_relu=True)
    assert pre.get_layer("mixed4a_pre_relu") is not None  # Lucid's name for it
    x = net.normalize(pixels((96, 96)))
    before, after = np.asarray(pre(x)["mixed4a"]), np.asarray(net.view(["mixed4a"])(x)["mixed4a"])
    assert (before < 0).any()
    np.testing.assert_allclose(np.maximum(before, 0), after, atol=1e-4)
    assert net.receptive_field("mixed4c")[1] == 16


def test_labels_file_is_inception5h_shaped():
    lines = (REPO / "models" / "googlenet_labels.txt").read_text().splitlines()
    imagenet = (REPO / "models" / "imagenet_labels.txt").read_text().splitlines()
    assert len(lines) == 1008 and lines[0] == "dummy" and lines[1001:] == [f"unused {i}" for i in range(1001, 1008)]
    assert sorted(lines[1:1001]) == sorted(imagenet)


def test_caffemodel_through_the_toolbox_has_its_own_classes_and_widths(tmp_path):
    path = tmp_path / "bvlc_googlenet.caffemodel"
    write_caffemodel(path, caffe_layers(googlenet.random_weights(seed=5, classes=1000, widths=googlenet.CAFFE_WIDTHS)),
                     v1=True)
    net = load_network(load_settings(None, {"model": "googlenet", "weights": str(path), "cache_dir": str(tmp_path)}))
    assert net.spec.layer("mixed4a").channels == 512 and len(net.labels) == 1000 and net.labels[0] == "tench"
    assert (tmp_path / "models" / "googlenet-caffe.keras").is_file()
    assert net.model.get_layer("input_bgr") is not None


def test_without_weights_it_says_which_files(monkeypatch, tmp_path, caplog):
    with pytest.raises(UserError, match="tensorflow_inception_graph.pb.*bvlc_googlenet.caffemodel.*--weights"):
        load_network(load_settings(None, {"model": "googlenet", "cache_dir": str(tmp_path)}))
    net = load_network(load_settings(None, {"model": "googlenet"}), random_weights=True)
    for layer in net.spec.layers:
        assert net.model.get_layer(layer.name).output.shape[-1] == layer.channels, layer
    for layer, _weight in net.spec.dream_layers:
        net.spec.layer(layer)
    assert net.model.output.shape[-1] == len(net.labels) == 1008


def test_auto_says_its_choice_in_one_short_line_and_help_tells_the_rest(monkeypatch, tmp_path, caplog):
    import logging

    from toolbox.nets import inception, registry

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(inception, "internet_reachable", lambda *a, **k: False)
    with caplog.at_level(logging.INFO, logger="toolbox.nets.registry"):
        assert registry._choose_auto(load_settings(None, {"model": "auto"})) == ("efficientnet_lite0", None)
    said = [r.getMessage() for r in caplog.records if "auto -> efficientnet_lite0" in r.getMessage()]
    assert len(said) == 1 and len(said[0]) < 100, said  # the long story belongs to --help (issue 21)
    from toolbox.cli import build_parser

    assert "bvlc_googlenet.caffemodel" in build_parser().format_help()


# -- the command line on the converted model ---------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_settings(converted, graph_file, googlenet_cache):
    path = googlenet_cache / "settings.yaml"
    path.write_text(yaml.safe_dump({"cache_dir": str(googlenet_cache)}))
    return path


@pytest.mark.slow
def test_dream_units_and_live_run_on_it(tmp_path, cli_settings, graph_file, googlenet_cache, photos):
    from toolbox.images import read_image, write_image

    cached = googlenet_cache / "models" / "googlenet-inception5h.keras"
    made = cached.stat().st_mtime_ns
    common = ["--model", "googlenet", "--weights", str(graph_file)]  # each run as a new process: from the disk
    write_image(tmp_path / "small.png", photos["chelsea"][100:196, 150:278])
    r = deepvis("dream", str(tmp_path / "small.png"), "-o", str(tmp_path / "dream.png"), "--octaves", "2",
                "--steps", "2", *common, settings=cli_settings, fresh=True)
    assert r.returncode == 0, r.stderr
    assert read_image(tmp_path / "dream.png").shape == (96, 128, 3)
    r = deepvis("units", "--layer", "mixed4c", "--units", "511", "--steps", "2", "--size", "32", "-o",
                str(tmp_path / "units"), *common, settings=cli_settings, fresh=True)
    assert r.returncode == 0, r.stderr
    from conftest import assert_each_unit_made_or_said

    assert_each_unit_made_or_said(r.stdout, tmp_path / "units", "mixed4c", [511])  # (random weights: maybe said)
    r = deepvis("live", "--headless", "--frames", "1", "--input", str(EXAMPLES / "coffee.png"), "--layer", "mixed5b",
                "-o", str(tmp_path / "live"), *common, settings=cli_settings, fresh=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "live" / "dashboard_0000.png").is_file()
    assert "rebuilding" not in r.stderr and cached.stat().st_mtime_ns == made  # every run used the one conversion


def test_wrong_file_on_the_command_line_exits_2(tmp_path, cli_settings):
    (tmp_path / "tensorflow_inception_graph.pb").write_text("<html>404 not found</html>\n")
    r = deepvis("layers", "--model", "googlenet", "--weights", str(tmp_path / "tensorflow_inception_graph.pb"),
                settings=cli_settings)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("deepvis: error:") and len(r.stderr.strip().splitlines()) == 1


def test_caffe_layer_names_are_accepted_wherever_a_layer_is_named():
    from toolbox.nets.spec import load_spec

    spec = load_spec("googlenet", REPO / "models")
    assert spec.layer("inception_4c/output").name == "mixed4c" and spec.layer("mixed4c").name == "mixed4c"
    assert spec.layer("conv2/3x3").channels == spec.layer("conv2d2").channels
    with pytest.raises(UserError, match="unknown layer 'inception_9z/output'"):
        spec.layer("inception_9z/output")
