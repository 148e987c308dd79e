"""Shared fixtures: the real lite0 network (converted once per session into a temporary
cache), the example photos, a tiny 8x8 Keras model with its spec for fast math tests, and
``deepvis``: the command run in this process."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


@dataclass
class Run:
    """What a run of the command left: as subprocess.run(..., capture_output=True, text=True) has it."""

    returncode: int
    stdout: str
    stderr: str


def deepvis(*argv, settings=None, cwd=REPO, fresh: bool = False) -> Run:
    """``deepvis ARGV [--settings SETTINGS]`` run in this process as ``python -m toolbox`` runs
    it in ``cwd``: its exit code (argparse's own exits included) and what it wrote on stdout and
    stderr. TensorFlow starts once per test session instead of once per run; the toolbox
    logger, the environment and the working folder are as they were after it. ``fresh``: the
    toolbox's in-memory caches (networks loaded once per process) are emptied first, so the run
    reads converted models from disk as a new process does. An exception the command lets out
    (a traceback, exit code 1, for a process) fails the test where it happens. Tests of the
    process itself (signals, exit on Ctrl-C, what native code writes on stderr, no display)
    start ``python -m toolbox`` instead."""
    from toolbox.cli import main

    if fresh:
        _forget_toolbox_caches()

    args = [os.fspath(a) for a in argv] + (["--settings", os.fspath(settings)] if settings else [])
    out, err = io.StringIO(), io.StringIO()
    here = os.getcwd()
    os.chdir(cwd)
    try:
        with _toolbox_state_kept(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(args)
            except SystemExit as e:  # argparse's --help, --version and usage errors
                if isinstance(e.code, str):
                    print(e.code, file=err)
                code = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
    finally:
        os.chdir(here)
    return Run(code, out.getvalue(), err.getvalue())


def _forget_toolbox_caches() -> None:
    """Every functools cache the toolbox's loaded modules define, emptied."""
    for name, module in list(sys.modules.items()):
        if name == "toolbox" or name.startswith("toolbox."):
            for value in list(vars(module).values()):
                if getattr(value, "__module__", None) == name and callable(getattr(value, "cache_clear", None)):
                    value.cache_clear()


@contextlib.contextmanager
def _toolbox_state_kept():
    """The 'toolbox' logger (the command gives it its own stderr handler and stops it
    propagating, which would hide its records from caplog) and the environment (the command
    sets defaults for TensorFlow's and OpenCV's logging) restored afterwards."""
    log = logging.getLogger("toolbox")
    kept = log.handlers[:], log.level, log.propagate
    env = dict(os.environ)
    try:
        yield
    finally:
        log.handlers[:], log.level, log.propagate = kept
        for name in set(os.environ) - set(env):
            del os.environ[name]
        os.environ.update({k: v for k, v in env.items() if os.environ.get(k) != v})


@pytest.fixture(autouse=True)
def _toolbox_state_restored():
    """The same for tests that call toolbox.cli.main themselves."""
    with _toolbox_state_kept():
        yield


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("deepvis-cache")


@pytest.fixture(scope="session")
def lite0_settings(cache_dir):
    from toolbox.settings import load_settings

    return load_settings(None, {"model": "efficientnet_lite0", "cache_dir": str(cache_dir)})


@pytest.fixture(scope="session")
def lite0(lite0_settings):
    from toolbox.nets import load_network

    return load_network(lite0_settings)


@pytest.fixture(scope="session")
def settings_file(tmp_path_factory, cache_dir) -> Path:
    """A settings file for lite0 that shares the session's converted weights (commands run by
    ``deepvis`` or in subprocesses load the same cached model). A module may define its own."""
    f = tmp_path_factory.mktemp("settings") / "settings.yaml"
    f.write_text(f"model: efficientnet_lite0\ncache_dir: {cache_dir}\n")
    return f


@pytest.fixture(scope="session")
def tiny_settings_file(tiny_settings, tmp_path_factory) -> Path:
    """A settings file for the tiny network (commands given --settings load it)."""
    f = tmp_path_factory.mktemp("tiny-settings") / "settings.yaml"
    f.write_text(json.dumps({"model": "tiny", "models_dir": str(tiny_settings.models_dir),
                             "cache_dir": str(tiny_settings.cache_dir)}))
    return f


def dream_at_defaults(net, image: np.ndarray) -> tuple[np.ndarray, float, float]:
    """``image`` dreamed with the dream settings' defaults on ``net``'s dream layers: (the dream,
    the dream objective on the image, on the dream)."""
    from toolbox.optvis import DeepDream, DreamSchedule, deepdream
    from toolbox.settings import Settings

    dreamer = DeepDream(net, deepdream(dict(net.spec.dream_layers)))
    d = Settings().dream
    out = dreamer.run(image, DreamSchedule(d.octaves, d.octave_scale, d.steps, d.step_size, d.tile))
    return out, dreamer.objective_of(image), dreamer.objective_of(out)


def photo_variants(folder: Path, count: int, name: str = "photo") -> Path:
    """``folder`` filled with ``count`` distinct PNGs: crops and flips of the example photos."""
    from toolbox.images import read_image, write_image

    sources = sorted(p for p in EXAMPLES.glob("*.*") if p.suffix != ".md")
    for k in range(count):
        image = read_image(sources[k % len(sources)])
        h, w = image.shape[:2]
        side = int(min(h, w) * (0.5 + 0.125 * (k // len(sources) % 4)))
        y, x = (h - side) * (k % 3) // 2, (w - side) * (k % 2)
        crop = image[y:y + side, x:x + side]
        write_image(folder / f"{name}{k:02d}.png", np.ascontiguousarray(crop[:, ::-1] if k % 2 else crop))
    return folder


@contextlib.contextmanager
def local_ray(cpus: int = 2):
    """A local Ray runtime; its processes and files go at the end (skips without Ray)."""
    ray = pytest.importorskip("ray")
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths have a length limit
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, _temp_dir=temp)
    try:
        yield ray
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    from toolbox.images import read_image

    return {p.stem: read_image(p) for p in sorted(EXAMPLES.glob("*.*")) if p.suffix != ".md"}


def worker_results(worker, kind, until=lambda r: True, timeout: float = 120.0) -> list:
    """What the live network worker sends of ``kind`` (a FrameResult, or the value a job's
    Answer carries) until one satisfies ``until`` (its other messages are dropped; a
    WorkerError fails the test; ``timeout`` only bounds the wait)."""
    import queue
    import time

    from toolbox.app.protocol import Answer, WorkerError

    deadline, seen = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        try:
            r = worker.results.get(timeout=0.1)
        except queue.Empty:
            continue
        if isinstance(r, WorkerError):
            raise AssertionError(r.message)
        if isinstance(r, Answer):
            r = r.value
        if isinstance(r, kind):
            seen.append(r)
            if until(r):
                return seen
    raise AssertionError(f"no {kind.__name__} within {timeout:.0f} s (got {len(seen)})")


TINY_SPEC = """\
description: tiny test network
builder: keras_file
source: {{path: {path}}}
input_size: {input_size}
min_size: 4
preprocess: {{mean: 0.0, std: {std}}}
labels: labels.txt
dream_layers: {{conv_b: 1.0}}
layers:
  - {{name: conv_a, channels: {channels[0]}}}
  - {{name: relu_a, channels: {channels[0]}}}
  - {{name: conv_b, channels: {channels[1]}}}
"""


def build_tiny_model(seed: int = 0, channels: tuple[int, int] = (4, 6)):
    """8x8 RGB -> conv(4) -> relu -> conv(6) -> global mean -> dense(3) -> softmax."""
    import keras

    keras.utils.set_random_seed(seed)
    x = inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(channels[0], 3, padding="same", name="conv_a")(x)
    x = keras.layers.ReLU(name="relu_a")(x)
    x = keras.layers.Conv2D(channels[1], 3, padding="same", name="conv_b")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(3, name="logits")(x)
    return keras.Model(inputs, keras.layers.Softmax(name="predictions")(x))


@pytest.fixture(scope="session")
def tiny_settings(tmp_path_factory):
    """Settings whose models_dir holds a spec 'tiny' for a saved 8x8 Keras model."""
    return tiny_model_settings(tmp_path_factory.mktemp("tiny-models"), build_tiny_model())


def tiny_model_settings(folder: Path, model, name: str = "tiny", input_size: int = 8, std: float = 255.0):
    """Settings whose models_dir ``folder`` holds ``model`` (a build_tiny_model) as spec ``name``."""
    from toolbox.settings import load_settings

    model.save(folder / f"{name}.keras")
    channels = (model.get_layer("conv_a").filters, model.get_layer("conv_b").filters)
    (folder / f"{name}.yaml").write_text(TINY_SPEC.format(path=folder / f"{name}.keras", input_size=input_size,
                                                          std=std, channels=channels))
    (folder / "labels.txt").write_text("zero\none\ntwo\n")
    return load_settings(None, {"model": name, "models_dir": str(folder), "cache_dir": str(folder / "cache")})


@pytest.fixture(scope="session")
def tiny(tiny_settings):
    from toolbox.nets import load_network

    return load_network(tiny_settings)


def assert_each_unit_made_or_said(out: str, folder, layer: str, units: list[int]) -> None:
    """Each unit asked of ``deepvis units`` got its image, or the command said why not (a unit
    with nothing to show, or an image a plain one beats: random tiny models have such units)."""
    import json

    from toolbox.names import safe_name

    recorded = json.loads((folder / f"{safe_name(layer)}_objectives.json").read_text())["units"]
    for unit in units:
        made = (folder / f"{safe_name(layer)}_{unit:04d}.png").is_file()
        said = any(f"unit {unit}" in line and line.endswith("; no image") for line in out.splitlines())
        assert made != said, (unit, out)
        assert ("said" in recorded[str(unit)]) == said, (unit, recorded)  # the objectives file says the same
