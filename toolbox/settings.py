"""settings.yaml -> frozen, typed, range-checked settings: the one place for every default.

Each field below carries its default, its help text and its allowed range; the command
line's ``--help`` reads them from here (``describe``), and ``settings.yaml`` at the top of
the repository spells out the same values for a user to edit (a test keeps the two equal).

There is one way to change a setting: ``load_settings(path, overrides)``, where ``path`` is
a YAML file with any subset of keys and ``overrides`` maps dotted keys (``"units.size"``)
to values, as the command line's options do. Both pass the same checks: an unknown key
names the closest valid one, a value of the wrong type or out of range names its field
(and the option it came from), and an error message never expands the value it rejects.
"""

from __future__ import annotations

import dataclasses
import math
import os
import reprlib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from toolbox.errors import UserError, closest
from toolbox.yamlfile import read_yaml

PACKAGE_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_ROOT.parent


# Names more than one part of the toolbox offers (the settings' choices, the window's modes,
# the engine's checks), kept here where nothing needs TensorFlow to read them.
GRADIENT_RULES = ("gradient", "guided", "deconv")  # how a gradient passes a ReLU (optvis.relu_rules)
ATTRIBUTION_METHODS = (*GRADIENT_RULES, "gradcam", "smoothgrad", "integrated")
MAP_FILTERS = ("raw", "gray", "norm", "norm-blur")  # how a gradient map is shown
GRID_SCALES = ("channel", "layer", "gamma")  # how the window's grid scales activations
# how pixels in [0, 255] become a network's input (the numbers: toolbox.nets.spec.PREPROCESSING)
PREPROCESS_NAMES = ("raw", "unit", "tf", "torch", "caffe")


def setting(default: Any, help: str, *, lo: float | None = None, hi: float | None = None,
            above: float | None = None, choices: tuple[str, ...] = ()) -> Any:
    """A settings field: its default, what it means, and the values it accepts
    (``lo <= v <= hi``, ``v > above``, or one of ``choices``)."""
    meta = {"help": help, "lo": lo, "hi": hi, "above": above, "choices": choices}
    if isinstance(default, dict):
        return field(default_factory=lambda: {k: list(v) for k, v in default.items()}, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class ImageSettings:
    max_pixels: int = setting(100_000_000, "images with more pixels are refused before decoding", lo=1)
    fit: str = setting("crop", "how an image becomes the network's square input", choices=("crop", "letterbox"))


@dataclass(frozen=True)
class DreamSettings:
    layers: str | None = setting(None, '"name[:weight],..."; default: the network\'s dream_layers')
    octaves: int = setting(4, "number of scales, smallest first", lo=1, hi=20)
    octave_scale: float = setting(1.4, "size ratio between octaves", above=1.0, hi=4.0)
    steps: int = setting(10, "gradient steps per octave", lo=1, hi=10_000)
    step_size: float = setting(0.006, "pixel change per step, as a fraction of the full range", above=0.0, hi=1.0)
    tile: int = setting(512, "gradient tile side in pixels; keeps memory bounded on huge photos", lo=32, hi=4096)
    zoom: float = setting(1.05, "zoom per frame of --zoom-frames", above=1.0, hi=4.0)
    fps: int = setting(12, "frames per second of zoom videos", lo=1, hi=120)
    objective: str = setting("l2", "what the dream amplifies: l2 (mean squared activation) or abs-square "
                                   "(mean of |a| + a^2, as cnn-vis: weak features grow too)",
                             choices=("l2", "abs-square"))


@dataclass(frozen=True)
class UnitSettings:
    size: int | None = setting(None, "side of each unit image in pixels; default: the layer's own (lucid: half the "
                                     "unit's receptive field, 64-128 px; the other presets 128)", lo=16, hi=2048)
    steps: int | None = setting(None, "optimization steps; default: the preset's own (maco 256, the others 128)",
                                lo=1, hi=100_000)
    preset: str = setting("lucid", "lucid, maco, yosinski1, yosinski2, yosinski3 or yosinski4")
    batch: int = setting(16, "units optimized at once, one per batch row", lo=1, hi=1024)
    output_dir: str | None = setting(None, "default: <cache_dir>/unit_images/<model>, where the live window looks")


@dataclass(frozen=True)
class CropSettings:
    top: int = setting(9, "images kept per unit (and, for signed layers, as many lowest)", lo=1, hi=100)
    side: int = setting(48, "side in pixels of each stored crop", lo=8, hi=256)
    batch: int = setting(16, "images per forward pass", lo=1, hi=512)
    every: int = setting(10, "of a video, look at every N-th frame", lo=1, hi=100_000)
    chunk: int = setting(256, "images between two saves of the results (a kill loses at most two such chunks)", lo=1,
                         hi=100_000)


@dataclass(frozen=True)
class PrecomputeSettings:
    workers: int = setting(0, "Ray workers: 0 runs in this process; N starts a local Ray runtime with N workers "
                              "(with cluster: how many to start there; 0 = one per CPU)", lo=0, hi=100_000)
    cluster: str | None = setting(None, "address of an existing Ray cluster to run on (e.g. ray://head:10001 or "
                                        "auto); default: none")
    threads: int = setting(0, "TensorFlow threads per Ray worker; 0: the machine's cores / workers (cluster: 1)",
                           lo=0, hi=1024)
    shard: int = setting(256, "images per crops task (the work one worker takes at a time)", lo=1, hi=1_000_000)
    retries: int = setting(3, "times a task is given to a new worker after its worker died", lo=0, hi=100)
    circuit_units: int = setting(64, "units per circuits task (each over its top-crop images)", lo=1, hi=100_000)


@dataclass(frozen=True)
class CircuitSettings:
    top: int = setting(6, "strongest inputs listed each way (excitatory, and as many inhibitory)", lo=1, hi=10_000)
    batch: int = setting(16, "images per forward and backward pass", lo=1, hi=1024)


@dataclass(frozen=True)
class AtlasSettings:
    output_dir: str = setting("deepvis-atlas", "folder of the static site")


@dataclass(frozen=True)
class AttributeSettings:
    method: str = setting("guided", "what explains the unit or class (guided backprop: the sharpest picture)",
                          choices=ATTRIBUTION_METHODS)
    filter: str = setting("norm", "how a map is shown: signed (raw, gray), or its per-pixel size (norm, norm-blur)",
                          choices=MAP_FILTERS)
    unit_value: str = setting("max", "a unit's score: its value at its strongest position, or summed over positions",
                              choices=("max", "sum"))
    smooth_base: str = setting("gradient", "the method smoothgrad averages over noisy copies",
                               choices=GRADIENT_RULES)
    samples: int = setting(16, "noisy copies smoothgrad averages", lo=1, hi=4096)
    noise: float = setting(0.15, "smoothgrad's noise: standard deviation as a fraction of the pixel range",
                           lo=0.0, hi=1.0)
    steps: int = setting(64, "integrated gradients: steps on the path from a black image", lo=1, hi=4096)
    batch: int = setting(16, "images per backward pass of smoothgrad and integrated (bounds memory)", lo=1, hi=1024)


@dataclass(frozen=True)
class ClassImageSettings:
    size: int = setting(224, "side of each class image in pixels", lo=16, hi=2048)
    steps: int = setting(256, "optimization steps", lo=1, hi=100_000)
    preset: str = setting("lucid", "lucid, maco, yosinski1, yosinski2, yosinski3 or yosinski4")
    batch: int = setting(8, "classes optimized at once, one per batch row", lo=1, hi=1024)


@dataclass(frozen=True)
class AccentuateSettings:
    size: int | None = setting(None, "side of the photo's square (its centre), default: the network's input size",
                               lo=16, hi=2048)
    steps: int = setting(128, "optimization steps", lo=1, hi=100_000)
    weight: float = setting(1.0, "how hard the image is held to the photo: the cost of a 20 dB PSNR distance, "
                                 "in the layer's RMS activations on the photo", lo=0.0, hi=1000.0)


@dataclass(frozen=True)
class InvertSettings:
    steps: int = setting(256, "optimization steps per layer", lo=1, hi=100_000)
    tv: float = setting(0.02, "weight of the total-variation prior (smoothness) against the feature distance",
                        lo=0.0, hi=100.0)


@dataclass(frozen=True)
class FoolSettings:
    epsilon: float = setting(2 / 255, "largest change of any pixel value, as a fraction of the full range "
                                      "(the option also takes a fraction: 2/255)", above=0.0, hi=1.0)
    confidence: float = setting(0.99, "stop once the written image's target probability reaches this",
                                above=0.0, hi=1.0)
    steps: int = setting(300, "most optimization steps", lo=1, hi=100_000)
    amplify: float = setting(50.0, "the change is shown this many times larger (around mid-grey)", lo=1.0,
                             hi=10_000.0)


DEFAULT_KEYS: dict[str, tuple[str, ...]] = {
    "next_layer": ("o",), "prev_layer": ("u",), "up": ("i", "up"), "down": ("k", "down"),
    "left": ("j", "left"), "right": ("l", "right"), "next_image": ("e",), "prev_image": ("w",),
    "pause": ("space",), "switch_source": ("c",), "zoom": ("z",), "save": ("s",), "help": ("h",),
    "quit": ("q", "esc"), "pattern": ("p",), "scale": ("a",), "crops_side": ("t",),
    "backprop": ("b",), "backprop_filter": ("n",), "freeze_backprop": ("d",),
    "dream": ("g",), "circuit": ("v",), "circuit_from": ("f",), "circuit_next": ("tab",),
    "circuit_jump": ("enter",), "circuit_back": ("backspace",), "accentuate": ("x",),
}


@dataclass(frozen=True)
class LiveSettings:
    input: str | None = setting(None, "webcam[:N], a video file, a folder of images or one image, or browser (the "
                                      "served page's own camera); default: the bundled examples")
    serve: str | None = setting(None, "[HOST:]PORT: show the live toolbox as a web page instead of a window "
                                      "(HOST 127.0.0.1 unless given; the URL printed carries its access token)")
    camera: str = setting("webcam:0", "what the switch-source key turns to")
    layer: str | None = setting(None, "layer shown first; default: the network's live_layer (a layer whose "
                                      "units read at a glance), else its first dream layer")
    big_step: int = setting(5, "units moved per key press with Shift", lo=1, hi=1000)
    unit_image_delay: float = setting(0.6, "seconds the selection rests before a unit image is made on demand",
                                      lo=0.0, hi=3600.0)
    unit_image_size: int = setting(96, "side of unit images made on demand", lo=16, hi=1024)
    unit_image_steps: int | None = setting(None, "steps of unit images made on demand; default: the preset's "
                                                 "own, as deepvis units", lo=1, hi=100_000)
    save_dir: str = setting(".", "where the save key writes dashboard PNGs")
    grid_scale: str = setting("channel", "how the grid scales activations first: channel (each by its own "
                                         "largest value: every unit's pattern reads), layer (one scale: strong "
                                         "units stand out), gamma (one scale, weak values lifted)",
                              choices=GRID_SCALES)
    backprop: str = setting("off", "the gradient pane at start: off, or what explains the selected unit "
                                   "in each frame (gradient, guided backprop, deconv)",
                            choices=("off", *GRADIENT_RULES))
    backprop_filter: str = setting("norm-blur", "how the gradient pane shows its map: signed (raw, gray), or "
                                                "its per-pixel size (norm, norm-blur: where the evidence lies)",
                                   choices=MAP_FILTERS)
    circuit: bool = setting(False, "start with the crops pane showing the circuit view: the explained unit's "
                                   "strongest inputs from an earlier layer (the circuit key toggles it)")
    dream: bool = setting(False, "start with the input pane dreaming (the dream key toggles it)")
    accentuate: bool = setting(False, "start with the optimized-image pane accentuating the selected unit in the "
                                      "frame on screen (accentuate.*; the accentuate key toggles it)")
    dream_layers: str | None = setting(None, '"name[:weight],..." the live dream amplifies; default: the '
                                             'selected layer')
    dream_steps: int = setting(2, "dream steps per frame", lo=1, hi=100)
    dream_step_size: float = setting(0.012, "pixel change per dream step, as a fraction of the full range",
                                     above=0.0, hi=1.0)
    dream_blend: float = setting(0.85, "share of the previous dream (warped along the optical flow) in the "
                                       "start of the next frame's; the rest is the new frame", lo=0.0, hi=1.0)
    dream_side: int = setting(320, "frames are dreamed with their longer side scaled to at most this", lo=32,
                              hi=4096)
    keys: dict = setting(DEFAULT_KEYS, "action -> key names; a partial mapping overrides")


@dataclass(frozen=True)
class Settings:
    model: str = setting("auto", "network name or spec file: auto, efficientnet_lite0, efficientnet_lite2, "
                                 "inception_v3, inception_v3_2015, googlenet, or a spec in models/")
    weights: str | None = setting(None, "weights file for inception_v3, inception_v3_2015 (its TorchScript "
                                        "archive), googlenet (.pb or .caffemodel) or a keras_file spec")
    preprocess: str | None = setting(None, "how pixels become the network's input: raw (0..255), unit (0..1), "
                                           "tf (-1..1), torch (ImageNet mean/std), caffe (BGR minus the ImageNet "
                                           "mean); default: the model's spec, or for a .keras/.h5 file raw when "
                                           "it starts with its own scaling, else what it shows (said on stderr)",
                                     choices=PREPROCESS_NAMES)
    labels: str | None = setting(None, "class names file, one a line, as many as the model has outputs; "
                                       "default: the spec's, or 'class N'")
    cache_dir: str | None = setting(None, "converted weights and generated images; default: ~/.cache/deepvis")
    models_dir: str | None = setting(None, "model specs and labels; default: the bundled models/")
    images: ImageSettings = field(default_factory=ImageSettings)
    dream: DreamSettings = field(default_factory=DreamSettings)
    units: UnitSettings = field(default_factory=UnitSettings)
    crops: CropSettings = field(default_factory=CropSettings)
    live: LiveSettings = field(default_factory=LiveSettings)
    attribute: AttributeSettings = field(default_factory=AttributeSettings)
    classes: ClassImageSettings = field(default_factory=ClassImageSettings)
    invert: InvertSettings = field(default_factory=InvertSettings)
    accentuate: AccentuateSettings = field(default_factory=AccentuateSettings)
    fool: FoolSettings = field(default_factory=FoolSettings)
    precompute: PrecomputeSettings = field(default_factory=PrecomputeSettings)
    atlas: AtlasSettings = field(default_factory=AtlasSettings)
    circuit: CircuitSettings = field(default_factory=CircuitSettings)

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
        return self.live.input or str(bundled("examples"))

    @property
    def models_path(self) -> Path:
        return Path(self.models_dir).expanduser() if self.models_dir else bundled("models")


def bundled(name: str) -> Path:
    """A folder shipped with deepvis (``models`` or ``examples``): the checkout's top-level one
    when running from a checkout, else the copy installed inside the package."""
    top = REPO_ROOT / name
    in_checkout = (REPO_ROOT / "setup.py").is_file() and top.is_dir()
    return top if in_checkout else PACKAGE_ROOT / "data" / name


def _field(dotted: str) -> dataclasses.Field:
    cls: Any = Settings
    *parents, last = dotted.split(".")
    for part in parents:
        cls = typing.get_type_hints(cls)[part]
    return {f.name: f for f in dataclasses.fields(cls)}[last]


def describe(dotted: str) -> str:
    """The help text of a setting with its default, for ``--help``: 'what (default 128; units.size)'."""
    f = _field(dotted)
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    shown = "" if default is None else f"default {default}; "
    return f"{f.metadata['help']} ({shown}settings: {dotted})"


_short = reprlib.Repr()
_short.maxstring, _short.maxother, _short.maxlevel, _short.maxlist, _short.maxdict = 40, 40, 1, 3, 3


def _shown(value: Any) -> str:
    """A value for an error message: bounded, and never the expansion of a nested structure."""
    return type(value).__name__ if isinstance(value, (list, dict, tuple, set)) else _short.repr(value)


def _check(name: str, value: Any, hint: Any, meta: Mapping[str, Any]) -> None:
    """Plain values must have their field's type (an int will do for a float; None for an
    Optional) and lie in its range."""
    allowed = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    if value is None:
        if type(None) in typing.get_args(hint):
            return
        raise UserError(f"{name} must be set (it has no 'null' value)")
    ok = any(isinstance(value, a) for a in allowed) or (float in allowed and isinstance(value, int))
    if isinstance(value, bool) and bool not in allowed:
        ok = False
    if not ok:
        raise UserError(f"{name} must be {' or '.join(a.__name__ for a in allowed)}, not {_shown(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise UserError(f"{name} must be a finite number, not {value}")
    if isinstance(value, str) and "\x00" in value:  # no file name, layer or model holds one
        raise UserError(f"{name} must not contain a NUL byte")
    lo, hi, above, choices = meta.get("lo"), meta.get("hi"), meta.get("above"), meta.get("choices")
    if choices and value not in choices:
        raise UserError(f"{name} must be one of {', '.join(choices)}, not {_shown(value)}{closest(str(value), choices)}")
    if (lo is not None and value < lo) or (hi is not None and value > hi) or (above is not None and value <= above):
        low = f"at least {lo}" if lo is not None else f"above {above}" if above is not None else ""
        bounds = " and ".join(filter(None, [low, f"at most {hi}" if hi is not None else ""]))
        raise UserError(f"{name} must be {bounds}, not {_shown(value)}")


def _check_keys(path: str, value: Mapping[str, Any]) -> dict[str, list[str]]:
    keys = {}
    for action, names in value.items():
        names = [names] if isinstance(names, str) else names
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise UserError(f"settings: '{path}.{str(action)[:40]}' must be a key name or a list of key names, not {_shown(names)}")
        keys[str(action)] = names
    return keys


def _build(cls: type, values: Mapping[str, Any], where: str, labels: Mapping[str, str]) -> Any:
    """``cls`` from ``values``; ``labels`` names the command-line option a dotted key came from."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        path = f"{where}.{key}" if where else str(key)
        name = f"{labels[path]} ({path})" if path in labels else f"settings: '{path}'"
        if key not in fields:
            raise UserError(f"settings: unknown key '{path[:80]}'{closest(str(key), fields)}")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, Mapping):
                raise UserError(f"{name} must be a mapping of keys to values, not {_shown(value)}")
            value = _build(hint, value, path, labels)
        elif hint is dict:  # a mapping merges over its default
            if not isinstance(value, Mapping):
                raise UserError(f"{name} must be a mapping, not {_shown(value)}")
            value = {**fields[key].default_factory(), **_check_keys(path, value)}
        else:
            _check(name, value, hint, fields[key].metadata)
        kwargs[key] = value
    return cls(**kwargs)


def _nest(flat: Mapping[str, Any], into: dict[str, Any]) -> dict[str, Any]:
    """Merge {"units.size": 5} into {"units": {...}} (None values are left out)."""
    for dotted, value in flat.items():
        if value is None:
            continue
        *parents, last = dotted.split(".")
        node = into
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"settings: '{part}' must be a mapping of keys to values")
        node[last] = value
    return into


def parse_layer_weights(text: str) -> dict[str, float]:
    """'a:1,b:0.5,c' -> {'a': 1.0, 'b': 0.5, 'c': 1.0}: the layers of a dream (dream.layers,
    live.dream_layers, --layers)."""
    weights = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, weight = part.partition(":")
        try:
            weights[name.strip()] = float(weight) if weight else 1.0
        except ValueError:
            weights[name.strip()] = math.nan
        if not math.isfinite(weights[name.strip()]):
            raise UserError(f"bad layer weight '{_short.repr(part)[1:-1]}' (use name:weight with a finite number, "
                            f"e.g. block9_add:0.5)")
    if not weights:
        raise UserError("--layers needs at least one layer name")
    return weights


def parse_units(text: str, channels: int) -> list[int]:
    """'3,17,40-45' or 'all' -> sorted unit indices, each checked against ``channels`` (--units,
    ``deepvis.units``)."""
    if text.strip() == "all":
        return list(range(channels))
    units: set[int] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            lo, _, hi = part.partition("-")
            first, last = int(lo), int(hi or lo)
        except ValueError:
            raise UserError(f"bad unit spec '{part[:40]}' (use e.g. 3,17,40-45 or all)") from None
        if not 0 <= first < channels or not 0 <= last < channels:
            bad = first if not 0 <= first < channels else last
            raise UserError(f"unit {bad} is out of range for this layer (0..{channels - 1})")
        units.update(range(first, last + 1))
    if not units:
        raise UserError("--units selects no unit")
    return sorted(units)


def load_settings(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None,
                  labels: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``path`` (or the defaults), then ``overrides`` ({dotted key: value}; None
    values are skipped). ``labels`` ({dotted key: "--option"}) names an override's option in
    error messages."""
    values: Any = {} if path is None else read_yaml(path, "settings file")
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise UserError(f"settings file {path}: the top level must be a mapping of keys to values, "
                        f"not {_shown(values)}")
    return _build(Settings, _nest(overrides or {}, values), "", labels or {})


def with_overrides(settings: Settings, overrides: Mapping[str, Any],
                   labels: Mapping[str, str] | None = None) -> Settings:
    """``settings`` with ``overrides`` ({dotted key: value}; None values are skipped) laid over
    it, each checked as a settings file's value is (the library's keywords come through here,
    so ``size=100000`` is the same one-line error as ``--size 100000``)."""
    if all(value is None for value in overrides.values()):
        return settings  # nothing to lay over: no rebuild (every call of the library with its defaults)
    return _build(Settings, _nest(overrides, dataclasses.asdict(settings)), "", labels or {})
