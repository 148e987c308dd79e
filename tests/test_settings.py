import pytest
import yaml

from conftest import REPO
from toolbox.errors import UserError
from toolbox.settings import Settings, load_settings


def test_shipped_settings_yaml_equals_the_defaults():
    assert load_settings(REPO / "settings.yaml") == Settings()


def test_partial_file_overrides_only_its_keys(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("model: efficientnet_lite2\nimages: {fit: letterbox}\n")
    s = load_settings(f)
    assert s.model == "efficientnet_lite2" and s.images.fit == "letterbox"
    assert s.images.max_pixels == Settings().images.max_pixels


def test_settings_are_frozen():
    with pytest.raises(AttributeError):
        Settings().model = "x"  # type: ignore[misc]


@pytest.mark.parametrize("text, named, suggested", [
    ("modle: auto\n", "modle", "model"),
    ("images: {max_pixel: 5}\n", "images.max_pixel", "max_pixels"),
])
def test_unknown_key_names_key_and_closest(tmp_path, text, named, suggested):
    f = tmp_path / "s.yaml"
    f.write_text(text)
    with pytest.raises(UserError, match=rf"unknown key '{named}'.*{suggested}"):
        load_settings(f)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_settings(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_settings(bad)


def test_overrides_win_over_file(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump({"model": "inception_v3"}))
    assert load_settings(f, {"model": "efficientnet_lite0"}).model == "efficientnet_lite0"
    assert load_settings(f, {"model": None}).model == "inception_v3"
    s = load_settings(f, {"units.size": 64, "live.keys": {"quit": ["x"]}})
    assert s.units.size == 64 and s.units.steps == Settings().units.steps and s.live.keys["quit"] == ["x"]


@pytest.mark.parametrize("text, message", [
    ("dream: {octaves: five}\n", "'dream.octaves' must be int"),
    ("dream: {step_size: fast}\n", "'dream.step_size' must be float"),
    ("units: {batch: true}\n", "'units.batch' must be int"),
    ("live: {keys: [q]}\n", "'live.keys' must be a mapping"),
])
def test_wrong_value_types_are_named(tmp_path, text, message):
    f = tmp_path / "s.yaml"
    f.write_text(text)
    with pytest.raises(UserError, match=message):
        load_settings(f)


def test_typed_values_that_fit_are_accepted(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("dream: {step_size: 1}\nweights: null\nlive: {keys: {quit: [x]}}\n")
    s = load_settings(f)
    assert s.dream.step_size == 1 and s.live.keys["quit"] == ["x"] and s.live.keys["help"] == ["h"]


@pytest.mark.parametrize("key, value, message", [
    ("units.size", 0, "at least 16"), ("units.size", -5, "at least 16"), ("units.size", 100000, "at most 2048"),
    ("units.steps", -1, "at least 1"), ("units.steps", 0, "at least 1"), ("units.batch", 0, "at least 1"),
    ("dream.octaves", 0, "at least 1"), ("dream.octave_scale", 0, "above 1.0"),
    ("dream.octave_scale", -1.4, "above 1.0"), ("dream.zoom", 0, "above 1.0"), ("dream.steps", 0, "at least 1"),
    ("images.max_pixels", 0, "at least 1"), ("images.fit", "crp", "did you mean: crop"),
    ("live.keys", {"quit": 5}, "'live.keys.quit' must be a key name"),
    ("dream.step_size", float("nan"), "finite"), ("dream.zoom", float("nan"), "finite"),
    ("live.unit_image_delay", float("nan"), "finite"), ("dream.octave_scale", float("inf"), "finite"),
])
def test_values_out_of_range_are_refused_naming_field_and_option(key, value, message):
    with pytest.raises(UserError, match=message) as e:
        load_settings(None, {key: value}, {key: "--opt"})
    if key != "live.keys":
        assert str(e.value).startswith(f"--opt ({key})")


def test_yaml_alias_bomb_is_refused_at_once(tmp_path):
    import time

    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join(['*a' + str(i - 1)] * 9)}]" for i in range(1, 10)]
    f = tmp_path / "bomb.yaml"
    f.write_text("\n".join(lines) + "\nmodel: *a9\n")
    t = time.perf_counter()
    with pytest.raises(UserError, match="aliases"):
        load_settings(f)
    assert time.perf_counter() - t < 1.0


@pytest.mark.parametrize("content, message", [
    (b"- model\n- auto\n", "top level must be a mapping"),
    ("model: caf\xe9\n".encode("latin-1"), "not UTF-8"),
    (b"model: " + b"x" * 2_000_000 + b"\n", "the limit is 1 MB"),
    (b"units: 5\n", "'units' must be a mapping"),
])
def test_malformed_settings_files_are_one_line_errors(tmp_path, content, message):
    f = tmp_path / "s.yaml"
    f.write_bytes(content)
    with pytest.raises(UserError, match=message) as e:
        load_settings(f)
    assert "\n" not in str(e.value) and len(str(e.value)) < 300


def test_help_texts_come_from_the_settings_defaults():
    from toolbox.cli import build_parser

    text = build_parser()._subparsers._group_actions[0].choices["units"].format_help()
    assert f"default {Settings().units.batch}; settings: units.batch" in " ".join(text.split())
    assert "(lucid: half the unit's receptive field, 64-128 px; the other presets 128) (settings: units.size)" in " ".join(
        text.split())  # no default shown where the layer decides
