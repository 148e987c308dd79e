"""Declarative model specs: ``models/<name>.yaml`` -> a frozen ModelSpec."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolbox.errors import UserError, closest
from toolbox.files import display_path
from toolbox.yamlfile import read_yaml


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
        raise UserError(f"unknown layer '{name}' for {self.name}{closest(name, self.layer_names)}"
                        f"; see: deepvis layers --model {self.name}")


_REQUIRED = ("builder", "input_size", "min_size", "preprocess", "layers", "dream_layers")
# probabilities: a softmax output; logits: class scores before it; features: no classifier at all
OUTPUT_KINDS = ("probabilities", "logits", "features")


def available_specs(models_dir: Path) -> list[str]:
    return sorted(p.stem for p in models_dir.glob("*.yaml"))


def load_spec(name_or_path: str, models_dir: Path) -> ModelSpec:
    """Load a spec by name (``models/<name>.yaml``) or from a YAML file path. Keys the toolbox
    does not use (``description:``, notes for whoever reads the file) are accepted and ignored."""
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
                        f"known: auto, {', '.join(known)}")
    raw = read_yaml(path, "model spec") or {}
    try:
        if not isinstance(raw, dict):
            raise UserError(f"model spec {path} must be a mapping of keys to values")
        missing = [k for k in _REQUIRED if k not in raw]
        if missing:
            raise UserError(f"model spec {path} lacks: {', '.join(missing)}")
        outputs = str(raw.get("outputs", "probabilities"))
        if outputs not in OUTPUT_KINDS:
            raise UserError(f"model spec {path}: outputs must be one of {', '.join(OUTPUT_KINDS)}, not '{outputs[:40]}'")
        if outputs != "features" and "labels" not in raw:
            raise UserError(f"model spec {path} lacks: labels (or say outputs: features)")
        labels = Path(raw.get("labels") or "")
        return ModelSpec(
            name=raw.get("name", path.stem),
            builder=raw["builder"],
            input_size=int(raw["input_size"]),
            min_size=int(raw["min_size"]),
            mean=float(raw["preprocess"]["mean"]),
            std=float(raw["preprocess"]["std"]),
            labels_file=labels if labels.is_absolute() else path.parent / labels,
            layers=tuple(LayerSpec(str(d["name"]), int(d["channels"])) for d in raw["layers"]),
            dream_layers=tuple((str(k), float(v)) for k, v in raw["dream_layers"].items()),
            source_items=tuple((str(k), tuple(v) if isinstance(v, list) else v)
                               for k, v in (raw.get("source") or {}).items()),
            aliases=tuple((str(k), str(v)) for k, v in (raw.get("aliases") or {}).items()),
            outputs=outputs,
            live_layer=str(raw["live_layer"]) if raw.get("live_layer") else None,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise UserError(f"model spec {path} is malformed: {e}") from None


def read_labels(spec: ModelSpec) -> list[str]:
    """The class names, one a line; none for a network without a classifier."""
    if not spec.has_classifier:
        return []
    if not spec.labels_file.is_file():
        raise UserError(f"labels file of {spec.name} not found: {spec.labels_file}")
    return [line.strip() for line in spec.labels_file.read_text().splitlines() if line.strip()]
