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
    assert load_settings(f, model="efficientnet_lite0").model == "efficientnet_lite0"
    assert load_settings(f, model=None).model == "inception_v3"


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
