"""settings.yaml -> frozen, typed settings.

The dataclass defaults below are the defaults; ``settings.yaml`` at the top of the
repository spells out the same values for a user to edit (a test keeps the two equal).
A settings file may set any subset of keys; an unknown key is an error that names the
closest valid one.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from toolbox.errors import UserError, closest

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class ImageSettings:
    max_pixels: int = 100_000_000  # larger images are decoded at reduced size
    fit: str = "crop"  # how a frame becomes the network's square input: crop | letterbox


@dataclass(frozen=True)
class DreamSettings:
    layers: str | None = None  # "name[:weight],..."; None: the network's dream_layers from models/<name>.yaml
    octaves: int = 4
    octave_scale: float = 1.4
    steps: int = 10  # per octave
    step_size: float = 0.006  # pixel change per step, as a fraction of the full range
    tile: int = 512  # gradient tiles of at most this side keep memory bounded on huge photos
    zoom: float = 1.05  # zoom per frame of --zoom-frames
    fps: int = 12  # frames per second of zoom videos


@dataclass(frozen=True)
class UnitSettings:
    size: int = 128  # side of each unit image
    steps: int = 256
    preset: str = "lucid"  # lucid | yosinski1 | yosinski2 | yosinski3 | yosinski4
    batch: int = 16  # units optimized at once, one per batch row
    output_dir: str | None = None  # None: <cache_dir>/unit_images/<model>, where the live window looks


def _default_keys() -> dict[str, list[str]]:
    return {"next_layer": ["o"], "prev_layer": ["u"], "up": ["i", "up"], "down": ["k", "down"],
            "left": ["j", "left"], "right": ["l", "right"], "next_image": ["e"], "prev_image": ["w"],
            "pause": ["space"], "switch_source": ["c"], "zoom": ["z"], "save": ["s"], "help": ["h"],
            "quit": ["q", "esc"]}


@dataclass(frozen=True)
class LiveSettings:
    input: str | None = None  # webcam, webcam:N, a video file, a folder of images, one image; None: examples/
    camera: str = "webcam:0"  # what the switch-source key turns to
    layer: str | None = None  # layer shown first; None: the network's first dream layer
    big_step: int = 5  # units moved per key press with Shift
    unit_image_delay: float = 0.6  # seconds the selection rests before a unit image is made on demand
    unit_image_size: int = 96
    unit_image_steps: int = 96
    save_dir: str = "."  # where the save key writes dashboard PNGs
    keys: dict = field(default_factory=_default_keys)  # action -> key names; a partial mapping overrides


@dataclass(frozen=True)
class Settings:
    model: str = "auto"  # auto | efficientnet_lite0 | efficientnet_lite2 | inception_v3 | a spec in models/
    weights: str | None = None  # a weights file for inception_v3 or a keras_file spec
    cache_dir: str | None = None  # converted weights and generated images; None: the user's cache folder
    models_dir: str | None = None  # model specs and labels; None: models/ of this repository
    images: ImageSettings = field(default_factory=ImageSettings)
    dream: DreamSettings = field(default_factory=DreamSettings)
    units: UnitSettings = field(default_factory=UnitSettings)
    live: LiveSettings = field(default_factory=LiveSettings)

    @property
    def cache_path(self) -> Path:
        if self.cache_dir:
            return Path(self.cache_dir).expanduser()
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        return Path(base) / "deepvis"

    def unit_images_path(self, model: str) -> Path:
        if self.units.output_dir:
            return Path(self.units.output_dir).expanduser()
        return self.cache_path / "unit_images" / model

    @property
    def live_input(self) -> str:
        return self.live.input or str(REPO_ROOT / "examples")

    @property
    def models_path(self) -> Path:
        return Path(self.models_dir).expanduser() if self.models_dir else REPO_ROOT / "models"


def _check_type(path: str, value: Any, hint: Any) -> None:
    """Plain values must have their field's type (an int will do for a float; None for an Optional)."""
    if dataclasses.is_dataclass(hint) or hint is dict:
        return
    allowed = [a for a in typing.get_args(hint)] or [hint]
    if value is None and type(None) in allowed:
        return
    if float in allowed:
        allowed.append(int)
    if isinstance(value, bool) and bool not in allowed:
        allowed = []
    if not any(isinstance(value, a) for a in allowed if isinstance(a, type)):
        names = " or ".join(a.__name__ for a in typing.get_args(hint) or [hint] if a is not type(None))
        raise UserError(f"settings: '{path}' must be {names}, not {value!r}")


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    if not isinstance(values, dict):
        raise UserError(f"settings: '{where or 'top level'}' must be a mapping of keys to values")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in fields:
            raise UserError(f"settings: unknown key '{path}'{closest(str(key), fields)}")
        _check_type(path, value, hints[key])
        if dataclasses.is_dataclass(hints[key]):
            value = _build(hints[key], value or {}, path)
        elif hints[key] is dict:  # a mapping merges over its default
            if not isinstance(value, dict):
                raise UserError(f"settings: '{path}' must be a mapping")
            value = {**fields[key].default_factory(), **value}
        kwargs[key] = value
    return cls(**kwargs)


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Settings from ``path`` (or the defaults), then top-level ``overrides`` that are not None."""
    values: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise UserError(f"settings file not found: {p}")
        try:
            values = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise UserError(f"settings file {p} is not valid YAML: {str(e).splitlines()[0]}") from None
    values.update({k: v for k, v in overrides.items() if v is not None})
    return _build(Settings, values, "")
