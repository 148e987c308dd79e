"""Declarative model specs: ``models/<name>.yaml`` -> a frozen ModelSpec."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolbox.errors import UserError, closest
from toolbox.files import display_path, read_input
from toolbox.settings import PREPROCESS_NAMES
from toolbox.yamlfile import read_yaml

Scale = float | tuple[float, float, float]  # one value for all channels, or one per channel (RGB)
# network input = (pixels - mean) / std on pixels in [0, 255] (BGR-ordered first for caffe):
# raw 0..255, unit 0..1, tf -1..1, torch ImageNet mean/std, caffe BGR minus the ImageNet mean
PREPROCESSING: dict[str, tuple[Scale, Scale, bool]] = dict(zip(PREPROCESS_NAMES, (
    (0.0, 1.0, False),
    (0.0, 255.0, False),
    (127.5, 127.5, False),
    ((123.675, 116.28, 103.53), (58.395, 57.12, 57.375), False),
    ((103.939, 116.779, 123.68), 1.0, True),
)))


@dataclass(frozen=True)
class LayerSpec:
    name: str
    channels: int


@dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: str  # efficientnet_lite | inception_v3 | keras_file
    input_size: int  # the side of the square input the network was trained on
    min_size: int  # the smallest input side the network accepts
    mean: float  # network input = (pixel - mean) / std, pixels in [0, 255]
    std: float
    labels_file: Path
    layers: tuple[LayerSpec, ...]
    dream_layers: tuple[tuple[str, float], ...]  # default DeepDream objective
    source_items: tuple[tuple[str, Any], ...] = ()  # builder-specific: package, path, strides
    aliases: tuple[tuple[str, str], ...] = ()  # other names people know layers by -> our name
    outputs: str = "probabilities"  # what the model ends in: one of OUTPUT_KINDS
    bgr: bool = False  # channels reversed before normalizing (Caffe-trained networks)
    live_layer: str | None = None  # the layer the live window opens on; None: the first dream layer

    @property
    def first_live_layer(self) -> str:
        """The layer the live window shows first: the spec's ``live_layer`` (one whose units read
        at a glance), else its first dream layer."""
        return self.layer(self.live_layer or self.dream_layers[0][0]).name

    @property
    def has_classifier(self) -> bool:
        """Whether the model ends in class scores (probabilities or logits) rather than features."""
        return self.outputs != "features"

    def require_classifier(self, what: str) -> None:
        """A one-line UserError when ``what`` (a command or option) needs class scores that this
        network does not have."""
        if not self.has_classifier:
            raise UserError(f"{self.name} has no classifier: its weights end at the pooled features, "
                            f"so {what} cannot work on it (every per-layer command does)")

    @property
    def source(self) -> dict[str, Any]:
        return dict(self.source_items)

    @property
    def layer_names(self) -> list[str]:
        return [layer.name for layer in self.layers]

    def layer(self, name: str) -> LayerSpec:
        """The offered layer called ``name`` (or known by it: ``aliases``); its ``.name`` is ours."""
        name = dict(self.aliases).get(name, name)
        for layer in self.layers:
            if layer.name == name:
                return layer
        model = self.source.get("path", self.name) if self.builder == "keras_file" else self.name
        raise UserError(f"unknown layer '{name}' for {self.name}{closest(name, self.layer_names)}"
                        f"; see: deepvis layers --model {model}")


MAX_LABELS_BYTES = 16 << 20  # a labels file of a million classes is far smaller
_REQUIRED = ("builder", "input_size", "min_size", "preprocess", "layers", "dream_layers")
# probabilities: a softmax output; logits: class scores before it; features: no classifier at all
OUTPUT_KINDS = ("probabilities", "logits", "features")


def available_specs(models_dir: Path) -> list[str]:
    return sorted(p.stem for p in models_dir.glob("*.yaml"))


def spec_path(name_or_path: str, models_dir: Path) -> Path:
    """The spec file of a name (``models/<name>.yaml``) or a YAML path; a UserError listing the
    known names when there is none."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = models_dir / f"{name_or_path}.yaml"
    try:
        found = path.is_file()
    except OSError:  # a name too long for the file system, say
        found = False
    if not found:
        known = available_specs(models_dir)
        shown = display_path(name_or_path if len(name_or_path) <= 60 else name_or_path[:57] + "...")
        raise UserError(f"unknown model '{shown}'{closest(name_or_path, known + ['auto'])}; "
                        f"known: auto, {', '.join(known)}, or a .keras / .h5 file")
    return path


def read_spec(path: Path) -> dict[str, Any]:
    raw = read_yaml(path, "model spec") or {}
    if not isinstance(raw, dict):
        raise UserError(f"model spec {path} must be a mapping of keys to values")
    return raw


def parse_preprocess(value: Any, where: str) -> tuple[Scale, Scale, bool]:
    """(mean, std, bgr) from a name (raw, unit, tf, torch, caffe) or {mean, std[, bgr]}, where a
    mean or std is one number or three (RGB)."""
    if isinstance(value, str):
        if value not in PREPROCESSING:
            raise UserError(f"{where}: preprocess must be one of {', '.join(PREPROCESSING)} or {{mean, std}}, "
                            f"not '{value[:40]}'{closest(value, PREPROCESSING)}")
        return PREPROCESSING[value]

    def scale(v: Any) -> Scale:
        if isinstance(v, (list, tuple)):
            if len(v) != 3:
                raise ValueError(f"a per-channel mean or std has 3 values, not {len(v)}")
            return tuple(float(x) for x in v)
        return float(v)

    return scale(value["mean"]), scale(value["std"]), bool(value.get("bgr", False))


def load_spec(name_or_path: str, models_dir: Path) -> ModelSpec:
    """Load a spec by name (``models/<name>.yaml``) or from a YAML file path. Keys the toolbox
    does not use (``description:``, notes for whoever reads the file) are accepted and ignored."""
    path = spec_path(name_or_path, models_dir)
    return parse_spec(read_spec(path), path)


def parse_spec(raw: dict[str, Any], path: Path) -> ModelSpec:
    """A ModelSpec from a spec's mapping (read from ``path``; relative labels are beside it)."""
    try:
        missing = [k for k in _REQUIRED if k not in raw]
        if missing:
            raise UserError(f"model spec {path} lacks: {', '.join(missing)}")
        outputs = str(raw.get("outputs", "probabilities"))
        if outputs not in OUTPUT_KINDS:
            raise UserError(f"model spec {path}: outputs must be one of {', '.join(OUTPUT_KINDS)}, not '{outputs[:40]}'")
        if outputs != "features" and raw.get("labels") is None and raw["builder"] != "keras_file":
            raise UserError(f"model spec {path} lacks: labels (or say outputs: features)")
        labels = None if raw.get("labels") is None else Path(raw["labels"]).expanduser()
        mean, std, bgr = parse_preprocess(raw["preprocess"], f"model spec {path}")
        return ModelSpec(
            name=raw.get("name", path.stem),
            builder=raw["builder"],
            input_size=int(raw["input_size"]),
            min_size=int(raw["min_size"]),
            mean=mean,
            std=std,
            labels_file=labels if labels is None or labels.is_absolute() else path.parent / labels,
            layers=tuple(LayerSpec(str(d["name"]), int(d["channels"])) for d in raw["layers"]),
            dream_layers=tuple((str(k), float(v)) for k, v in raw["dream_layers"].items()),
            source_items=tuple((str(k), tuple(v) if isinstance(v, list) else v)
                               for k, v in (raw.get("source") or {}).items()),
            aliases=tuple((str(k), str(v)) for k, v in (raw.get("aliases") or {}).items()),
            outputs=outputs,
            live_layer=str(raw["live_layer"]) if raw.get("live_layer") else None,
            bgr=bgr,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise UserError(f"model spec {path} is malformed: {e}") from None


def read_labels(spec: ModelSpec, classes: int | None = None) -> list[str]:
    """The class names, one a line; none for a network without a classifier; "class N" for each
    of ``classes`` when the spec names no labels file."""
    if not spec.has_classifier:
        return []
    if spec.labels_file is None:
        return [f"class {i}" for i in range(classes or 0)]
    text = read_input(spec.labels_file, f"labels file of {spec.name}", MAX_LABELS_BYTES).decode("utf-8", "replace")
    return [line.strip() for line in text.splitlines() if line.strip()]


def spec_yaml(mapping: dict[str, Any], comments: dict[str, str], header: str) -> str:
    """A spec's mapping as the YAML text ``load_spec`` reads, one key a line (each layer on its
    own), with ``comments`` beside their keys and ``header`` (lines) above: what ``deepvis spec``
    writes for a person to edit. Values are written as JSON, which YAML reads as they are."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    for key, value in mapping.items():
        if key == "layers":
            lines.append("layers:" + (f"  # {comments[key]}" if key in comments else ""))
            lines.extend(f"  - {{name: {json.dumps(d['name'])}, channels: {int(d['channels'])}}}" for d in value)
            continue
        text = f"{key}: {json.dumps(value)}"
        lines.append(f"{text:<24}  # {comments[key]}" if key in comments else text)
    return "\n".join(lines) + "\n"
