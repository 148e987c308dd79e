"""deepvis as a library (``import deepvis``): the calls, their defaults and checks, and what
their results are (arrays, pictures in Jupyter, files), on the tiny network; the commands
made of the same calls give the same numbers."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import EXAMPLES


@pytest.fixture(scope="module")
def net(tiny_settings):
    import deepvis

    return deepvis.load(settings=tiny_settings)


@pytest.fixture(scope="module")
def photo():
    import deepvis

    return deepvis.read_image(EXAMPLES / "chelsea.png")


def test_public_names_are_exactly_all_and_each_is_documented():
    import deepvis

    public = {name for name in dir(deepvis) if not name.startswith("_")}
    assert public == set(deepvis.__all__) - {"__version__"}
    for name in deepvis.__all__:
        if name != "__version__":
            assert getattr(deepvis, name).__doc__, name


def test_load_names_the_network_and_predict_gives_top_classes(net, photo):
    from toolbox.nets import Probe

    assert net.name == "tiny" and net.layers == ("conv_a", "relu_a", "conv_b") and net.device in ("CPU", "GPU")
    top = net.predict(photo, top=2)
    probs = Probe(net.network, [])(net.network.fit_input(photo)).probs  # what `deepvis predict` computes
    assert list(top.indices) == list(np.argsort(-probs)[:2])
    np.testing.assert_allclose(np.asarray(top), np.sort(probs)[::-1][:2], rtol=1e-6)
    assert "<table>" in top._repr_html_() and top.names[0] in top._repr_html_()


def test_a_mistake_is_one_deepvis_error_as_on_the_command_line(net, photo, tiny_settings):
    import deepvis

    with pytest.raises(deepvis.DeepvisError, match=r"size= \(units.size\) must be at least 16"):
        deepvis.units(net, "conv_b", [0], size=8)
    with pytest.raises(deepvis.DeepvisError, match="unit 99 is out of range"):
        deepvis.attribute(net, photo, "conv_b:99")
    with pytest.raises(deepvis.DeepvisError, match="unknown layer 'conv_c'"):
        deepvis.accentuate(net, photo, "conv_c:1")
    with pytest.raises(deepvis.DeepvisError, match="name a unit as layer:unit"):
        deepvis.accentuate(net, photo, "conv_b")
    with pytest.raises(deepvis.DeepvisError, match="unknown key 'sizee'"):
        deepvis.load(settings=tiny_settings, sizee=3)


def test_units_are_the_commands_images_as_an_array_and_a_sheet(net, tmp_path):
    import deepvis
    from toolbox.assets import UnitImageFolder
    from toolbox.images import read_image

    made = deepvis.units(net, "conv_b", [1, 4], size=16, steps=64, batch=2)
    assert np.asarray(made).shape == (2, 16, 16, 3) and made.units == (1, 4) and made.objectives.shape == (2,)
    folder = UnitImageFolder(tmp_path / "units")
    stored = deepvis.units(net, "conv_b", "1,4", size=16, steps=64, batch=2, folder=folder)  # as `deepvis units`
    assert np.array_equal(np.asarray(stored), np.asarray(made))  # same seed, same images
    assert np.array_equal(read_image(folder.image_path("conv_b", 4)), made[4])
    sheet = made._repr_png_()
    assert sheet.startswith(b"\x89PNG") and made.save(tmp_path / "sheet.png").is_file()


def test_attribute_gives_the_map_at_the_photos_size_and_its_gradient_is_the_photos(net, photo, tmp_path):
    """A plain gradient map at the photo's size is the gradient with respect to the photo's own
    pixels: checked against a finite difference through the network's fit."""
    import deepvis
    from toolbox.optvis.attribution import Attributor, Target
    from toolbox.optvis.fooling import PhotoFit

    small = photo[:40, :60]
    result = deepvis.attribute(net, small, "conv_b:2", method="gradient")
    assert np.asarray(result).shape == (40, 60, 3) and result.image.shape == result.overlay.shape == (40, 60, 3)
    fit = PhotoFit(40, 60, net.input_size)  # the network's fit as a map of float pixels

    def score(pixels):
        return Attributor(net.network)(fit.forward(pixels), Target.unit("conv_b", 2), "gradient").score

    assert result.score == pytest.approx(score(small.astype(np.float32)), rel=0.05)  # (the fit rounds to uint8)
    g = np.asarray(result)
    y, x, c = np.unravel_index(np.argmax(np.abs(g)), g.shape)
    step = np.zeros(small.shape, np.float32)
    step[y, x, c] = 2.0
    rise = (score(small + step) - score(small - step)) / 4.0
    assert rise == pytest.approx(g[y, x, c], rel=0.2)
    assert np.abs(g[:, :10]).max() == 0  # where the network does not look, nothing drives it
    assert result.save(tmp_path / "map.png").is_file() and result._repr_png_().startswith(b"\x89PNG")


def test_dream_and_accentuation_keep_the_photos_size(net, photo):
    import deepvis

    small = np.ascontiguousarray(photo[:30, :50])
    dreamed = deepvis.dream(net, small, steps=3, octaves=2)
    assert np.asarray(dreamed).shape == small.shape and np.abs(np.asarray(dreamed).astype(int) - small).mean() > 0.5
    accent = deepvis.accentuate(net, small, "conv_b:1", steps=8)
    a = np.asarray(accent)
    assert a.shape == small.shape and accent.values["after"] > accent.values["before"]
    assert np.array_equal(a[:, :10], small[:, :10])  # outside the centre square the network sees: the photo


def test_a_dream_hands_over_its_zoom_frames_at_the_photos_size_as_the_command_writes_them(net, photo):
    import deepvis

    small = np.ascontiguousarray(photo[:30, :50])
    frames = []
    dreamed = deepvis.dream(net, small, steps=2, octaves=1, zoom_frames=3, zoom=1.2,
                            on_frame=lambda k, frame: frames.append((k, frame)))
    assert [k for k, _ in frames] == [0, 1, 2, 3] and all(f.shape == small.shape for _, f in frames)
    assert np.array_equal(frames[0][1], np.asarray(dreamed))  # frame 0 is the dream itself
    assert all(np.abs(a.astype(int) - b).mean() > 0.5 for (_, a), (_, b) in zip(frames, frames[1:]))  # zoomed on


def test_circuit_is_the_commands_on_the_same_photos_with_outputs_too(net, photo):
    import deepvis
    from toolbox.optvis.circuits import CircuitTracer

    found = deepvis.circuit(net, [photo, photo[::-1]], "conv_b:4", top=2)
    fitted = np.stack([net.fit(photo), net.fit(photo[::-1])]).astype(np.float32)
    expected = CircuitTracer(net.network).circuit(fitted, "conv_b", 4)  # what `deepvis circuit` averages
    np.testing.assert_allclose(np.asarray(found), expected.contributions, rtol=1e-5)
    assert found.inputs.source == "relu_a" and found.outputs is None  # conv_b is the last layer offered
    assert len(found.links()) <= 2 and found._repr_png_().startswith(b"\x89PNG") and "conv_b:4" in repr(found)
    middle = deepvis.circuit(net, photo, "relu_a:1")
    assert (middle.inputs.source, middle.outputs.source) == ("conv_a", "conv_b")


def test_a_keras_model_in_memory_works_as_its_file_does_and_writes_nothing(tmp_path, photo, monkeypatch):
    """The fine-tuning shape: a base model nested in a new one. Loaded as an object it offers
    the layers, names and predictions its saved file does; no file appears anywhere."""
    import keras

    import deepvis

    keras.utils.set_random_seed(3)
    inner = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(4, 3, activation="relu", name="c1"),
                              keras.layers.Conv2D(5, 3, name="c2")], name="base")
    inputs = keras.Input((None, None, 3))
    x = keras.layers.GlobalAveragePooling2D()(inner(keras.layers.Rescaling(1 / 255)(inputs)))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="head")(x))
    model.save(tmp_path / "mine.keras")
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    cache = tmp_path / "cache"
    in_memory = deepvis.load(model, cache_dir=str(cache))
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written, the cache not even made
    from_file = deepvis.load(str(tmp_path / "mine.keras"), cache_dir=str(cache))
    assert in_memory.layers == from_file.layers and "base.c2" in in_memory.layers
    np.testing.assert_allclose(np.asarray(in_memory.predict(photo, top=3)), np.asarray(from_file.predict(photo, top=3)),
                               rtol=1e-5)
    made = deepvis.units(in_memory, "c2", [0, 1], size=16, steps=64, batch=2)  # the plain inner name works too
    assert made.layer == "base.c2" and np.asarray(made).shape == (2, 16, 16, 3)
    with pytest.raises(deepvis.DeepvisError, match="unknown layer"):
        deepvis.units(in_memory, "c9", [0])


def test_the_api_pages_build_from_the_docstrings_and_name_every_public_call(tmp_path):
    pdoc = pytest.importorskip("pdoc")
    import deepvis

    pdoc.pdoc("deepvis", output_directory=tmp_path)
    page = (tmp_path / "deepvis.html").read_text()
    for name in set(deepvis.__all__) - {"__version__"}:
        assert f'id="{name}"' in page, name


def test_crops_are_the_commands_over_a_folder(net, tmp_path):
    import deepvis
    from toolbox.assets.crops import CropStore

    found = deepvis.crops(net, EXAMPLES, "conv_b", top=3, side=8)
    assert np.asarray(found).shape == (6, 3, 8, 8, 3) and found.images >= 3
    kept = deepvis.crops(net, EXAMPLES, "conv_b", top=3, side=8, folder=tmp_path / "store")  # as `deepvis crops`
    stored = CropStore(tmp_path / "store").unit("conv_b", 2)
    np.testing.assert_array_equal(kept.unit(2)[0], stored[0])
    np.testing.assert_array_equal(found.unit(2)[1], stored[1])
    assert np.all(np.diff(found.unit(2)[1]) <= 0) and found._repr_png_().startswith(b"\x89PNG")


def test_live_headless_writes_the_dashboards_of_the_window(net, tmp_path):
    import deepvis
    from toolbox.app.layout import HEIGHT, WIDTH
    from toolbox.images import read_image

    written = deepvis.live(net, EXAMPLES / "chelsea.png", headless=True, frames=2, output=tmp_path / "out")
    assert [p.name for p in written] == ["dashboard_0000.png", "dashboard_0001.png"]
    assert read_image(written[0]).shape == (HEIGHT, WIDTH, 3)
