"""Networks: the real lite0 for behaviour, a tiny 8x8 model for the math."""

import numpy as np
import pytest

from conftest import build_tiny_model
from toolbox.errors import UserError
from toolbox.images import fit_square
from toolbox.nets import Probe, load_network, load_spec
from toolbox.nets.torch_file import read_legacy_state_dict
from toolbox.settings import load_settings


def test_legacy_torch_file_reads_every_tensor(lite0):
    from toolbox.nets.registry import _package_file

    state = read_legacy_state_dict(_package_file(lite0.spec))
    assert len(state) == 296
    assert sum(v.size for v in state.values()) == 4_694_073
    assert state["_fc.weight"].shape == (1000, 1280) and state["_fc.weight"].dtype == np.float32
    assert lite0.model.count_params() == 4_694_024  # all but the 49 num_batches_tracked scalars


@pytest.mark.parametrize("photo, expected", [("chelsea", {"Egyptian cat", "tiger cat", "tabby"}),
                                              ("coffee", {"espresso"})])
def test_lite0_recognizes_example_photos(lite0, photos, photo, expected):
    obs = Probe(lite0, [])(fit_square(photos[photo], 224))
    label, p = obs.top(lite0.labels, 1)[0]
    assert label in expected and p > 0.3
    assert abs(obs.probs.sum() - 1) < 1e-4


def test_probe_equals_full_model_and_traces_once(lite0, photos):
    layers = ["block2_add", "block9_add", "head_relu"]
    probe = Probe(lite0, layers)
    image = fit_square(photos["astronaut"], 224).astype(np.float32)
    obs = probe(image)
    reference = lite0.submodel(layers, with_probs=True)(lite0.normalize(image[None]), training=False)
    for name in layers:
        np.testing.assert_allclose(obs.activations[name], np.asarray(reference[name][0]), atol=1e-4)
    np.testing.assert_allclose(obs.probs, np.asarray(reference["probs"][0]), atol=1e-5)
    for size in (224, 160, 300, 224):
        probe(fit_square(photos["chelsea"], size))
    probe.batch(np.zeros((3, 100, 120, 3), np.float32))
    assert probe.trace_count == 1


def test_every_spec_lists_real_layers_with_right_channels(lite0_settings):
    for name in ("efficientnet_lite0", "efficientnet_lite2", "inception_v3"):
        settings = load_settings(None, model=name, cache_dir=lite0_settings.cache_dir)
        net = load_network(settings, random_weights=True)
        for layer in net.spec.layers:
            assert net.model.get_layer(layer.name).output.shape[-1] == layer.channels, (name, layer)
        for layer, _weight in net.spec.dream_layers:
            net.spec.layer(layer)


def test_inception_pre_relu_view_matches_mixed_layers(lite0_settings):
    """relu(pre-activation mixed_k) must equal mixed_k: the graph walk found the right tensors."""
    net = load_network(load_settings(None, model="inception_v3"), random_weights=True)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 96, 96, 3)).astype(np.float32)
    post = net.submodel(["mixed2", "mixed9"])(x)
    pre = net.submodel(["mixed2", "mixed9"], pre_relu=True)(x)
    for name in ("mixed2", "mixed9"):
        assert (np.asarray(pre[name]) < 0).any()
        np.testing.assert_allclose(np.maximum(np.asarray(pre[name]), 0), np.asarray(post[name]), atol=1e-4)


def test_inception_reads_a_weights_file(tmp_path):
    import keras

    reference = keras.applications.InceptionV3(weights=None)
    path = tmp_path / "inception.weights.h5"
    reference.save_weights(path)
    net = load_network(load_settings(None, model="inception_v3", weights=str(path)))
    x = np.random.default_rng(1).uniform(-1, 1, (1, 299, 299, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(net.model(x)), np.asarray(reference(x)), atol=1e-5)


def test_inception_without_weights_names_all_three_ways(monkeypatch, tmp_path):
    from toolbox.nets import inception

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(inception, "internet_reachable", lambda *a, **k: False)
    with pytest.raises(UserError, match=r"--weights.*\.keras|--weights.*internet") as e:
        load_network(load_settings(None, model="inception_v3"))
    assert "internet" in str(e.value) and str(tmp_path) in str(e.value)


def test_auto_falls_back_to_lite0_and_says_why(monkeypatch, tmp_path, capsys, lite0_settings):
    from toolbox.nets import inception

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(inception, "internet_reachable", lambda *a, **k: False)
    net = load_network(load_settings(None, model="auto", cache_dir=lite0_settings.cache_dir))
    assert net.name == "efficientnet_lite0"
    assert "efficientnet_lite0" in capsys.readouterr().err


def test_lite0_conversion_is_cached(lite0, lite0_settings):
    assert (lite0_settings.cache_path / "models" / "efficientnet_lite0.keras").is_file()


def test_unknown_model_and_layer_and_unit(lite0, lite0_settings):
    with pytest.raises(UserError, match="unknown model 'efficientnet_lite9'.*efficientnet_lite0"):
        load_spec("efficientnet_lite9", lite0_settings.models_path)
    with pytest.raises(UserError, match="did you mean: block9_add"):
        lite0.layer_tensor("block9_ad")
    with pytest.raises(UserError, match="out of range.*0..111"):
        lite0.check_unit("block9_add", 112)


def test_tiny_keras_file_model_through_probe(tiny):
    """The probe's numbers are the model's own: checked on an 8x8 model against a direct call."""
    model = build_tiny_model()
    x = np.random.default_rng(2).uniform(0, 255, (8, 8, 3)).astype(np.float32)
    obs = Probe(tiny, ["relu_a", "conv_b"])(x)
    direct = model(x[None] / 255.0)
    np.testing.assert_allclose(obs.probs, np.asarray(direct[0]), atol=1e-6)
    assert obs.activations["relu_a"].shape == (8, 8, 4) and (obs.activations["relu_a"] >= 0).all()
    assert obs.top(tiny.labels, 3)[0][0] == ["zero", "one", "two"][int(np.argmax(direct[0]))]
