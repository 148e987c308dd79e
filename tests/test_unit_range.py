"""What a unit can do at all (optvis.unit_range): units with nothing to show are found and said,
bounds hold, redirected ReLUs revive dead starts; on tiny hand-made models, exact and fast."""

import json

import numpy as np
import pytest

from toolbox.optvis import Ascent, channel, get_preset
from toolbox.optvis.unit_range import probe_inputs, unit_variation, upper_bounds


def build_flat_model():
    """8x8 RGB in [0, 1] -> conv_a (3x3, valid, 4) -> relu_a -> conv_b (1x1, 6) -> mean -> dense(3),
    with units that cannot show anything by construction:

    relu_a 0  a colour Laplacian (centre minus its 8 neighbours' mean): 0 on any plain image
    relu_a 1  zero kernel, bias -1: never on
    relu_a 2  zero kernel, bias 0.5: constant 0.50
    relu_a 3  a random kernel: varies
    conv_b 0  relu_a 3: varies
    conv_b 1  0.3 - relu_a 0: highest (0.3) on any plain image, lower on any pattern
    conv_b 2  zero kernel, bias 0.9: constant 0.90
    conv_b 3-5 random: vary
    """
    import keras

    keras.utils.set_random_seed(0)
    x = inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, padding="valid", name="conv_a")(x)
    x = keras.layers.ReLU(name="relu_a")(x)
    x = keras.layers.Conv2D(6, 1, name="conv_b")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(3, name="logits")(x)
    model = keras.Model(inputs, keras.layers.Softmax(name="predictions")(x))
    rng = np.random.default_rng(0)
    ka = np.zeros((3, 3, 3, 4), np.float32)
    ka[..., 0] = -1 / 8
    ka[1, 1, :, 0] = 1.0
    ka[..., 3] = rng.normal(size=(3, 3, 3))
    model.get_layer("conv_a").set_weights([ka, np.array([0.0, -1.0, 0.5, 0.0], np.float32)])
    kb = rng.normal(size=(1, 1, 4, 6)).astype(np.float32)
    kb[..., :3] = 0.0
    kb[0, 0, 3, 0] = 1.0
    kb[0, 0, 0, 1] = -1.0
    model.get_layer("conv_b").set_weights([kb, np.array([0.0, 0.3, 0.9, 0.1, -0.1, 0.2], np.float32)])
    return model


@pytest.fixture(scope="module")
def flat_settings(tmp_path_factory):
    from conftest import tiny_model_settings

    return tiny_model_settings(tmp_path_factory.mktemp("flat-model"), build_flat_model(), name="flat")


@pytest.fixture(scope="module")
def flat(flat_settings):
    from toolbox.nets import load_network

    return load_network(flat_settings)


@pytest.fixture(scope="module")
def photos():
    rng = np.random.default_rng(1)
    return [rng.integers(0, 256, (12, 12, 3), dtype=np.uint8) for _ in range(3)]


def test_units_with_nothing_to_show_are_found_and_said(flat, photos):
    a = {v.unit: v for v in unit_variation(flat, "relu_a", None, photos)}
    b = {v.unit: v for v in unit_variation(flat, "conv_b", None, photos)}
    assert a[1].never_on and a[1].flat and a[1].describe() == "unit 1 never turns on: 0 on any input"
    assert a[2].constant and a[2].flat and a[2].describe() == "unit 2 is nearly constant: 0.50 on any input"
    assert b[2].constant and b[2].describe() == "unit 2 is nearly constant: 0.90 on any input"
    assert b[2].as_record() == {"nothing_to_show": "constant", "value": 0.9,
                                "said": "unit 2 is nearly constant: 0.90 on any input"}
    assert a[1].kind == "never_on" and b[0].as_record() == {}
    assert b[1].plain_peak and b[1].flat and not b[1].constant
    assert b[1].describe() == "unit 1 is highest on any plain image: 0.30, the most it can reach"
    assert a[0].mean_capped and not a[0].flat  # an edge detector: 0 on average, more in places
    assert a[0].describe().startswith("unit 0 is highest on average on any plain image: 0.00")
    varying = [a[3], b[0], b[3], b[4], b[5]]
    assert not any(v.flat or v.mean_capped for v in varying), [v.describe() for v in varying]
    assert all(v.describe().startswith((f"unit {v.unit} varies", f"unit {v.unit} cannot lead")) for v in varying)
    # the constant 0.9 of conv_b 2 outranks any mean conv_b 1 can reach (0.3): it can never lead
    assert b[1].cannot_lead and b[1].rival == 2 and b[1].rival_floor == pytest.approx(0.9)
    assert all(v.mean_bound < v.rival_floor for v in b.values() if v.cannot_lead)


def test_an_image_shows_something_only_beyond_a_plain_image(flat, photos):
    b = {v.unit: v for v in unit_variation(flat, "conv_b", None, photos)}
    assert not b[1].shows_something(0.3) and not b[0].shows_something(b[0].plain)
    assert b[0].shows_something(b[0].plain + b[0].span)


def test_bounds_are_never_exceeded_and_exact_for_one_convolution(flat, tiny):
    kernel, bias = flat.model.get_layer("conv_a").get_weights()  # inputs in [0, 1] (std 255, mean 0)
    exact = np.maximum(kernel, 0).sum(axis=(0, 1, 2)) + bias
    np.testing.assert_allclose(upper_bounds(flat, "conv_a", mean=False), exact, rtol=1e-5)
    assert upper_bounds(flat, "conv_b")[1] == pytest.approx(0.3)  # the mean cannot beat all-off
    rng = np.random.default_rng(2)
    images = np.concatenate([rng.uniform(0, 255, (16, 8, 8, 3)), (rng.uniform(size=(16, 8, 8, 3)) > 0.5) * 255.0])
    for net, layer in ((flat, "conv_b"), (tiny, "conv_b"), (tiny, "relu_a")):
        values = net.activations(images, [layer], pre_relu=True)[layer]
        assert (values.max(axis=(0, 1, 2)) <= upper_bounds(net, layer, mean=False) + 1e-4).all()
        if net is flat:  # valid padding: every position is interior
            assert (values.mean(axis=(1, 2)).max(axis=0) <= upper_bounds(net, layer) + 1e-4).all()


def test_probe_inputs_are_photos_noise_and_plain_images(photos):
    inputs = probe_inputs(photos, 16)
    assert inputs.shape == (3 + 4 + 9, 16, 16, 3) and inputs.min() >= 0 and inputs.max() <= 255
    assert (inputs[-9:].std(axis=(1, 2)) == 0).all() and (inputs[3:7].std(axis=(1, 2)) > 0).all()


def test_redirected_relus_revive_a_dead_start(flat_settings):
    """A conv_b unit whose relu_a inputs are all off on a mid-grey image: the true gradient is
    zero and the ascent never moves; with redirected ReLUs it turns them on and rises."""
    import dataclasses

    from toolbox.nets import Network, load_spec

    model = build_flat_model()  # valid padding: no border lets a gradient through
    rng = np.random.default_rng(3)
    kernel = rng.normal(size=(3, 3, 3, 4)).astype(np.float32)
    grey = 0.5 * kernel.sum(axis=(0, 1, 2))  # conv_a on a mid-grey image (inputs in [0, 1])
    model.get_layer("conv_a").set_weights([kernel, -grey - 0.05 * np.abs(kernel).sum(axis=(0, 1, 2))])  # all off
    kb = np.abs(rng.normal(size=(1, 1, 4, 6))).astype(np.float32)
    model.get_layer("conv_b").set_weights([kb, np.zeros(6, np.float32)])
    net = Network(load_spec("flat", flat_settings.models_path), model, ("a", "b", "c"))
    lucid = get_preset("lucid")
    assert lucid.redirect  # the default preset's
    plain = dataclasses.replace(lucid, redirect=False)
    start = Ascent(net, channel("conv_b"), plain).run([0], 16, 0).objective[0]
    stuck = Ascent(net, channel("conv_b"), plain).run([0], 16, 40).objective[0]
    revived = Ascent(net, channel("conv_b"), lucid).run([0], 16, 40).objective[0]
    assert start == stuck == 0.0 and revived > 0.05


def test_units_command_says_which_units_have_nothing_to_show_and_writes_no_image(flat_settings, tmp_path,
                                                                                 capsys):
    from toolbox.assets import UnitImageFolder
    from toolbox.cli import main
    from toolbox.images import read_image

    settings = tmp_path / "settings.yaml"
    settings.write_text(json.dumps({"model": "flat", "models_dir": str(flat_settings.models_dir),
                                    "cache_dir": str(flat_settings.cache_dir)}))
    out = tmp_path / "units"
    assert main(["units", "--layer", "conv_b", "--units", "0-2", "--steps", "64", "--size", "16", "-o", str(out),
                 "--settings", str(settings)]) == 0
    said = capsys.readouterr().out
    assert "unit 2 is nearly constant: 0.90 on any input" in said
    assert "unit 1 is highest on any plain image: 0.30" in said
    assert (out / "conv_b_0000.png").is_file()
    assert not (out / "conv_b_0001.png").exists() and not (out / "conv_b_0002.png").exists()
    said = UnitImageFolder(out).nothing_to_show("flat", "conv_b")  # the objectives file says the same
    assert said[2] == "unit 2 is nearly constant: 0.90 on any input" and "plain image" in said[1] and 0 not in said
    three = read_image(out / "conv_b_sheet.png").shape  # unit 0's image and two "nothing to show" tiles
    assert main(["units", "--layer", "conv_b", "--units", "2", "--steps", "64", "--size", "16", "-o", str(out),
                 "--settings", str(settings)]) == 0
    assert read_image(out / "conv_b_sheet.png").shape != three  # the latest run's sheet, not the earlier one


def test_the_library_says_what_the_command_says_of_units_with_nothing_to_show(flat_settings):
    import deepvis

    net = deepvis.load(settings=flat_settings)
    made = deepvis.units(net, "conv_b", "0-2", size=16, steps=64)
    assert made.units == (0,) and np.asarray(made).shape == (1, 16, 16, 3)
    assert made.said[2] == "unit 2 is nearly constant: 0.90 on any input; no image" and "plain image" in made.said[1]
    assert "nearly constant" in repr(made) and made._repr_png_().startswith(b"\x89PNG")  # a tile says it
    with pytest.raises(KeyError, match="nearly constant"):
        made[2]


def test_spread_units_take_the_middle_of_equal_parts():
    from toolbox.assets.quality import spread_units

    assert spread_units(112) == [14, 42, 70, 98] and spread_units(3) == [0, 1, 2] and spread_units(32) == [4, 12, 20, 28]


def test_a_folder_stores_the_images_that_show_something_and_says_the_others(tmp_path):
    """``UnitImageFolder.store``, as every job stores a batch: a made image is saved and
    recorded; a unit with nothing to show gets its reason recorded instead, and loses an image
    stored earlier when no image can show it (flat), but keeps one when only this run's image
    was beaten by a plain one."""
    from toolbox.assets import UnitImageFolder
    from toolbox.optvis.unit_range import NO_BETTER_THAN_PLAIN

    folder = UnitImageFolder(tmp_path)
    folder.prepare()
    image = np.full((8, 8, 3), 90, np.uint8)
    folder.store("m", "l", {0: (image, None, 2.0), 1: (image, None, 1.5), 2: (image, None, 1.0)}, preset="lucid")
    flat = {"nothing_to_show": "constant", "value": 0.9, "said": "unit 1 is nearly constant: 0.90 on any input"}
    beaten = {"nothing_to_show": NO_BETTER_THAN_PLAIN, "value": 0.2, "said": "unit 2: no further than plain"}
    beaten_new = {**beaten, "said": "unit 3: no further than plain"}
    assert folder.store("m", "l", {}, {1: flat, 2: beaten, 3: beaten_new}, preset="lucid") == {1, 3}
    assert folder.image_path("l", 0).is_file() and not folder.image_path("l", 1).exists()
    assert folder.image_path("l", 2).is_file()  # an earlier image that showed something stays
    assert folder.objectives("m", "l")["2"]["objective"] == 1.0
    assert folder.nothing_to_show("m", "l") == {1: flat["said"], 3: beaten_new["said"]}
    assert folder.objectives("m", "l")["1"] == {"objective": 0.9, "nothing_to_show": "constant",
                                                "said": flat["said"], "preset": "lucid"}


def test_the_live_pane_says_a_unit_has_nothing_to_show_instead_of_drawing_it(flat, tmp_path):
    """The window's worker asked for the image of conv_b unit 2 (bias 0.9, no input) answers
    with what deepvis units says of it, and makes and stores no image; a unit that varies is made."""
    from conftest import worker_results
    from toolbox.app.modes.unit_image import UnitImage, UnitRequest
    from toolbox.app.worker import NetworkWorker, UnitImageSettings
    from toolbox.assets import UnitImageFolder

    worker = NetworkWorker(flat, UnitImageFolder(tmp_path / "units"), UnitImageSettings("lucid", 16, 8))
    worker.start()
    try:
        worker.ask("unit_image", UnitRequest("conv_b", 2))
        said = worker_results(worker, UnitImage)[0]
        assert said.image is None and "unit 2 is nearly constant: 0.90 on any input" in said.note
        assert not (tmp_path / "units" / "conv_b_0002.png").exists()
        worker.ask("unit_image", UnitRequest("conv_b", 0))
        made = worker_results(worker, UnitImage, until=lambda r: r.done)[-1]
        assert made.image is not None or "no further than a plain image" in made.note
    finally:
        worker.stop()
