"""Your own model with no spec: ``--model mine.keras`` (or .h5) in every command, nested and
Sequential models included; ``deepvis spec``; what is refused, in one line.

Tiny random-weight models of each shape (8-16 px inputs) go through the real commands; the
numbers are checked against Keras running the same model by itself."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import EXAMPLES, assert_each_unit_made_or_said, deepvis

IMAGE = str(EXAMPLES / "chelsea.png")


def _sequential():
    import keras

    return keras.Sequential([keras.Input((None, None, 3)), keras.layers.Rescaling(1 / 255),
                             keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv_a"),
                             keras.layers.MaxPooling2D(name="pool_a"),
                             keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv_b"),
                             keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3, activation="softmax")],
                            name="seq")


def _block(x, channels: int, name: str):
    import keras

    y = keras.layers.Conv2D(channels, 3, padding="same", name=f"{name}_conv")(x)
    y = keras.layers.BatchNormalization(name=f"{name}_bn")(y)
    y = keras.layers.ReLU(name=f"{name}_relu")(y)
    return keras.layers.Add(name=f"{name}_add")([x, y]) if x.shape[-1] == channels else y


def _functional_base(name: str = "base"):
    import keras

    x = inputs = keras.Input((None, None, 3))
    x = _block(x, 4, "stem")
    x = _block(x, 4, "block1")
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same", activation="relu", name="down")(x)
    return keras.Model(inputs, x, name=name)


def _head(x, classes: int = 3, softmax: bool = True):
    import keras

    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.layers.Dense(classes, activation="softmax" if softmax else None, name="head")(x)


def _functional():
    import keras

    x = inputs = keras.Input((None, None, 3))
    return keras.Model(inputs, _head(_functional_base("body")(keras.layers.Rescaling(1 / 255)(x))))


def _nested_functional():
    """The fine-tuning shape: a base model called inside an outer one, with a new head (logits)."""
    import keras

    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    return keras.Model(inputs, _head(_functional_base()(x, training=False), classes=4, softmax=False))


def _nested_sequential():
    import keras

    inner = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(5, 3, padding="same", name="c1"),
                              keras.layers.ReLU(name="r1"), keras.layers.Conv2D(5, 3, padding="same", name="c2"),
                              keras.layers.ReLU(name="r2")], name="features")
    inputs = keras.Input((None, None, 3))
    return keras.Model(inputs, _head(inner(keras.layers.Rescaling(1 / 255)(inputs))))


def _fixed_size():
    """A 16x16 gray input whose head flattens the feature map: it takes no other size."""
    import keras

    inputs = keras.Input((16, 16, 1))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv_a")(x)
    x = keras.layers.MaxPooling2D(name="pool_a")(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="probs")(x))


def _two_outputs():
    import keras

    inputs = keras.Input((None, None, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv_a")(x)
    aux = keras.layers.Conv2D(2, 1, name="aux_map")(x)
    return keras.Model(inputs, [_head(x, classes=5), aux])


SHAPES = {"sequential.h5": _sequential, "functional.keras": _functional, "nested.keras": _nested_functional,
          "nested_sequential.keras": _nested_sequential, "fixed.keras": _fixed_size,
          "two_outputs.keras": _two_outputs}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import keras

    d = tmp_path_factory.mktemp("own-models")
    for i, (file, build) in enumerate(SHAPES.items()):
        keras.utils.set_random_seed(i)
        build().save(d / file)
    (d / "settings.yaml").write_text(json.dumps({"cache_dir": str(d / "cache"),
                                                 "live": {"unit_image_size": 16, "unit_image_steps": 2}}))
    return d


def run(argv, models):
    """deepvis ARGV in this process with the test settings: (exit code, stdout, stderr lines)."""
    r = deepvis(*argv, settings=models / "settings.yaml")
    return r.returncode, r.stdout, r.stderr.strip().splitlines()


def layers_of(model, models) -> list[str]:
    rc, out, err = run(["layers", "--model", str(models / model), "--json"], models)
    assert rc == 0, err
    return [d["name"] for d in json.loads(out)]


@pytest.mark.parametrize("model", list(SHAPES))
def test_every_command_works_on_each_shape_with_no_spec(model, models, tmp_path):
    path = str(models / model)
    layers = layers_of(model, models)
    assert layers, "no layers found"
    layer = layers[-1]
    rc, out, err = run(["predict", IMAGE, "--model", path], models)
    assert rc == 0 and out.startswith(f"{IMAGE}: class "), err
    rc, out, err = run(["units", "--layer", layer, "--units", "0-1", "--size", "16", "--steps", "2", "--batch", "2",
                        "-o", str(tmp_path / "units"), "--model", path], models)
    assert rc == 0, err
    assert_each_unit_made_or_said(out, tmp_path / "units", layer, [0, 1])
    for method in ("gradient", "guided"):
        out_png = tmp_path / f"{method}.png"
        rc, out, err = run(["attribute", IMAGE, "--layer", layer, "--unit", "1", "--method", method,
                            "-o", str(out_png), "--model", path], models)
        assert rc == 0 and out_png.is_file(), err
    rc, out, err = run(["crops", "--images", str(EXAMPLES), "--top", "2", "--layers", layer,
                        "-o", str(tmp_path / "crops"), "--model", path], models)
    assert rc == 0, err
    assert (tmp_path / "crops" / "crops" / f"{layer}.npz").is_file()
    dream = tmp_path / "dream.png"
    rc, out, err = run(["dream", IMAGE, "-o", str(dream), "--octaves", "2", "--steps", "1", "--model", path],
                       models)
    assert rc == 0 and dream.is_file(), err
    rc, out, err = run(["live", "--input", IMAGE, "--headless", "--frames", "1", "--layer", layer,
                        "-o", str(tmp_path / "live"), "--model", path], models)
    assert rc == 0 and (tmp_path / "live" / "dashboard_0000.png").is_file(), err


def test_nested_layers_are_named_through_their_model_and_by_their_plain_name(models, tmp_path):
    layers = layers_of("nested.keras", models)
    # conv -> bn -> relu shows only the relu; block outputs (add) and the strided conv are shown
    assert layers == ["base.stem_relu", "base.block1_relu", "base.block1_add", "base.down"]
    rc, out, err = run(["layers", "--model", str(models / "nested.keras")], models)
    assert "<model>.<layer>" in out
    rc, out, err = run(["attribute", IMAGE, "--layer", "block1_add", "--unit", "0", "-o", str(tmp_path / "a.png"),
                        "--model", str(models / "nested.keras")], models)
    assert rc == 0 and "base.block1_add unit 0" in out, err


def _network(settings_dir, model):
    from toolbox.nets import load_network
    from toolbox.settings import load_settings

    return load_network(load_settings(settings_dir / "settings.yaml", {"model": str(settings_dir / model)}))


def test_two_files_of_one_name_are_two_networks_that_never_share_unit_images(models, tmp_path):
    import shutil

    import keras

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    shutil.copy(models / "functional.keras", tmp_path / "a" / "mine.keras")
    keras.utils.set_random_seed(99)
    _functional().save(tmp_path / "b" / "mine.keras")  # the same shape, other weights: "retrained"
    a, b = (_network(models, str(tmp_path / d / "mine.keras")) for d in "ab")
    assert a.name.startswith("mine-") and b.name.startswith("mine-") and a.name != b.name
    assert _network(models, str(tmp_path / "a" / "mine.keras")).name == a.name  # a file keeps its name
    assert _network(models, "functional.keras").name.split("-")[1] == a.name.split("-")[1]  # named by content

    layer = layers_of("functional.keras", models)[-1]
    units = ["units", "--layer", layer, "--units", "0", "--size", "16", "--steps", "2", "-o", str(tmp_path / "units")]
    rc, _, err = run([*units, "--model", str(tmp_path / "a" / "mine.keras")], models)
    assert rc == 0, err
    rc, _, err = run([*units, "--model", str(tmp_path / "b" / "mine.keras")], models)
    assert rc == 2 and f"holds the assets of {a.name}, not {b.name}" in err[-1]


def test_a_nested_layer_reads_what_the_base_model_computes(models):
    import keras

    net = _network(models, "nested.keras")
    rng = np.random.default_rng(0)
    pixels = rng.uniform(0, 255, (2, 20, 20, 3)).astype(np.float32)
    ours = net.activations(pixels, ["base.block1_add"])["base.block1_add"]
    model = keras.models.load_model(models / "nested.keras")  # a separate copy, as Keras runs it
    base = model.get_layer("base")
    inner = keras.Model(base.input, base.get_layer("block1_add").output)
    np.testing.assert_allclose(ours, inner(pixels / 127.5 - 1.0).numpy(), rtol=1e-5, atol=1e-5)
    # the network's input is raw pixels: the model scales them with its own Rescaling layer
    assert (net.spec.mean, net.spec.std) == (0.0, 1.0)
    # logits: probabilities are their softmax, taken on the network
    logits = model(pixels[:, :16, :16]).numpy()
    from toolbox.nets import Probe

    probs = Probe(net, []).batch(pixels[:, :16, :16])["probs"]
    np.testing.assert_allclose(probs, np.exp(logits) / np.exp(logits).sum(-1, keepdims=True), rtol=1e-5, atol=1e-6)
    assert net.labels == ("class 0", "class 1", "class 2", "class 3")


def test_receptive_fields_walk_through_the_nested_model(models):
    net = _network(models, "nested.keras")
    # two 3x3 convolutions, then a 3x3 one of stride 2: 7 px, 2 px apart
    assert net.receptive_field("base.down") == (7, 2)
    assert net.unit_field("base.down").size == 7


def test_guided_backprop_rectifies_relus_built_into_convolutions(models):
    """The Sequential's ReLUs are inside its Conv2D layers: they are split out, so guided
    backprop differs from the gradient (it would be equal if they were not)."""
    from toolbox.optvis.attribution import Attributor, Target

    net = _network(models, "sequential.h5")
    image = np.random.default_rng(1).uniform(0, 255, (16, 16, 3)).astype(np.float32)
    target = Target.unit("conv_b", 2)
    attributor = Attributor(net)
    plain = attributor(image, target, "gradient").map
    guided = attributor(image, target, "guided").map
    assert np.abs(plain).sum() > 0 and np.abs(guided).sum() > 0
    assert not np.allclose(plain, guided)
    assert net.non_negative("conv_b")  # its values are ReLU outputs: drawn as such, with no "lowest" side


def test_a_fixed_size_gray_model_sees_every_input_resized_to_its_size(models):
    import keras

    net = _network(models, "fixed.keras")
    assert net.fixed_input and net.spec.input_size == net.spec.min_size == 16
    pixels = np.random.default_rng(2).uniform(0, 255, (1, 16, 16, 3)).astype(np.float32)
    from toolbox.nets import Probe

    probs = Probe(net, []).batch(pixels)["probs"]
    model = keras.models.load_model(models / "fixed.keras")
    gray = (pixels * np.array([0.299, 0.587, 0.114], np.float32)).sum(-1, keepdims=True)  # it takes one channel
    np.testing.assert_allclose(probs, model(gray).numpy(), rtol=1e-5, atol=1e-6)
    # any other size is resized to 16x16 inside the network: the layer's map keeps its size
    assert net.activations(np.zeros((1, 40, 40, 3), np.float32), ["pool_a"])["pool_a"].shape == (1, 8, 8, 4)


def test_labels_are_checked_against_the_outputs(models, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\n")
    rc, out, err = run(["predict", IMAGE, "--model", str(models / "functional.keras"), "--labels", str(labels)],
                       models)
    assert rc == 2 and len(err) == 1 and err[0].startswith("deepvis: error: ")
    assert "it has 3 outputs, the labels list 2" in err[0]
    labels.write_text("cat\ndog\nbird\n")
    rc, out, err = run(["predict", IMAGE, "--model", str(models / "functional.keras"), "--labels", str(labels),
                        "--top", "3"], models)
    assert rc == 0 and {name.split()[0] for name in out.split(": ", 1)[1].split(", ")} == {"cat", "dog", "bird"}


def test_preprocessing_is_inferred_and_said_and_can_be_chosen(models, tmp_path):
    import keras

    plain = tmp_path / "plain.keras"
    x = inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="c")(x)
    keras.Model(inputs, _head(x)).save(plain)
    rc, out, err = run(["layers", "--model", str(plain)], models)
    assert rc == 0 and "preprocess unit (a guess" in " ".join(err)
    rc, out, err = run(["layers", "--model", str(models / "functional.keras")], models)
    assert "preprocess raw (it starts with its own Rescaling layer" in " ".join(err)
    from toolbox.nets import load_network
    from toolbox.settings import load_settings

    net = load_network(load_settings(models / "settings.yaml", {"model": str(plain), "preprocess": "caffe"}))
    assert net.spec.bgr and net.spec.mean == (103.939, 116.779, 123.68)
    np.testing.assert_allclose(net.normalize(np.array([[10.0, 20.0, 30.0]], np.float32)),
                               [[30 - 103.939, 20 - 116.779, 10 - 123.68]], rtol=1e-6)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_a_lambda_layer_is_refused_in_one_line(suffix, tmp_path, models):
    import keras

    x = inputs = keras.Input((None, None, 3))
    x = keras.layers.Lambda(lambda t: t * 2.0, name="double")(x)
    path = tmp_path / f"lam{suffix}"
    keras.Model(inputs, keras.layers.Conv2D(2, 3, name="c")(x)).save(path)
    rc, out, err = run(["layers", "--model", str(path)], models)
    assert rc == 2 and len(err) == 1
    assert err[0].startswith(f"deepvis: error: lam{suffix} has a Lambda layer (double)")


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_an_unknown_custom_layer_class_is_one_line_naming_it(suffix, tmp_path, models):
    import keras

    @keras.saving.register_keras_serializable(package="mine")
    class Twice(keras.layers.Layer):
        def call(self, x):
            return x * 2.0

    x = inputs = keras.Input((None, None, 3))
    path = tmp_path / f"custom{suffix}"
    keras.Model(inputs, Twice(name="twice")(keras.layers.Conv2D(2, 3, name="c")(x))).save(path)
    rc, out, err = run(["layers", "--model", str(path)], models)
    assert rc == 2 and len(err) == 1
    assert "uses the custom layer class mine>Twice" in err[0]


def test_spec_writes_the_inferred_spec_and_an_edited_spec_overrides_it(models, tmp_path):
    spec = tmp_path / "mine.yaml"
    rc, out, err = run(["spec", str(models / "nested.keras"), "-o", str(spec)], models)
    assert rc == 0 and spec.is_file(), err
    text = spec.read_text()
    assert "preprocess: \"raw\"" in text and "outputs: \"logits\"" in text and "base.block1_add" in text
    assert layers_of(spec, models) == layers_of("nested.keras", models)
    # a person keeps two layers, one by its plain inner name, and names the classes
    (tmp_path / "names.txt").write_text("a\nb\nc\nd\n")
    edited = [line for line in text.splitlines() if "stem_relu" not in line and "labels:" not in line]
    edited = [line.replace('"base.down"', '"down"') for line in edited] + ["labels: names.txt"]
    spec.write_text("\n".join(edited) + "\n")
    assert layers_of(spec, models) == ["base.block1_relu", "base.block1_add", "base.down"]
    rc, out, err = run(["predict", IMAGE, "--model", str(spec)], models)
    assert rc == 0 and out.split(": ", 1)[1].split()[0] in "abcd", err


@pytest.mark.parametrize("edit, message", [
    (("base.down", "base.dwn"),
     "does not fit the model in nested.keras: it has no layer base.dwn (did you mean: base.down"),
    (("channels: 6", "channels: 8"), "its layer base.down has 6 channels, the spec says 8"),
    (("labels: null", "labels: two.txt"), "it has 4 outputs, the labels list 2"),
])
def test_a_spec_that_disagrees_with_its_model_is_one_line(edit, message, models, tmp_path):
    spec = tmp_path / "mine.yaml"
    assert run(["spec", str(models / "nested.keras"), "-o", str(spec)], models)[0] == 0
    (tmp_path / "two.txt").write_text("a\nb\n")
    spec.write_text(spec.read_text().replace(*edit))
    rc, out, err = run(["units", "--layer", "base.down", "--units", "0", "--model", str(spec)], models)
    assert rc == 2 and len(err) == 1 and message in err[0], err


@pytest.mark.slow
def test_a_real_keras_applications_base_nested_the_way_fine_tuning_does(tmp_path, models):
    """MobileNetV2 (random weights, alpha 0.35) inside a new model with its own preprocessing
    and head, as Keras' transfer-learning guide builds it."""
    import keras

    keras.utils.set_random_seed(0)
    base = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, include_top=False, weights=None)
    base.trainable = False
    inputs = keras.Input((96, 96, 3))
    x = keras.applications.mobilenet_v2.preprocess_input(inputs)
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.2)(x)
    path = tmp_path / "finetuned.keras"
    keras.Model(inputs, keras.layers.Dense(5, name="flowers")(x)).save(path)

    layers = layers_of(path, models)
    assert "mobilenetv2_0.35_96.block_13_expand_relu" in layers and "mobilenetv2_0.35_96.out_relu" in layers
    # convolutions and batch norms that only feed the next layer are shown by it; block outputs are not
    assert not any(name.endswith(("expand", "expand_BN", "_project", "Conv1", "Conv1_bn")) for name in layers)
    assert "mobilenetv2_0.35_96.block_12_add" in layers and "mobilenetv2_0.35_96.block_13_project_BN" in layers
    rc, out, err = run(["spec", str(path)], models)
    assert 'dream_layers: {"mobilenetv2_0.35_96.block_13_expand_relu": 1.0}' in out
    assert 'preprocess: "raw"' in out and "true_divide" in out  # preprocess_input is part of the model
    rc, out, err = run(["attribute", IMAGE, "--layer", "block_13_expand_relu", "--unit", "3", "--method", "guided",
                        "-o", str(tmp_path / "guided.png"), "--model", str(path)], models)
    assert rc == 0, err
    rc, out, err = run(["live", "--input", IMAGE, "--headless", "--frames", "1", "--layer", "block_6_expand_relu",
                        "--backprop", "guided", "-o", str(tmp_path / "live"), "--model", str(path)], models)
    assert rc == 0 and (tmp_path / "live" / "dashboard_0000.png").is_file(), err
