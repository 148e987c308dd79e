"""What the benchmark parts share: printing a figure, interleaved timing, loading a network."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


def emit(name: str, value: float, unit: str = "") -> None:
    print(f"{name}: {value:.4g} {unit}".rstrip(), flush=True)


def interleaved(runs: dict[str, Callable[[], object]], rounds: int, per_round: int) -> dict[str, float]:
    """Median seconds per call of each function, measured in alternating rounds so that
    machine noise falls on all of them alike."""
    for f in runs.values():  # warm-up: traces, allocations
        f()
        f()
    samples: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(rounds):
        for name, f in runs.items():
            t = time.perf_counter()
            for _ in range(per_round):
                f()
            samples[name].append((time.perf_counter() - t) / per_round)
    return {k: statistics.median(v) for k, v in samples.items()}


def load(model: str, random_weights: bool = False):
    from toolbox.nets import load_network
    from toolbox.settings import load_settings

    return load_network(load_settings(None, {"model": model}), random_weights=random_weights)


def example_image(size: int):
    from toolbox.images import fit_square, read_image

    return fit_square(read_image(EXAMPLES / "chelsea.png"), size)


def live_app(net, layer: str, source: str = str(EXAMPLES), overrides: dict | None = None):
    """The window's application as `deepvis live` builds it, with unit images kept in a
    temporary folder and made only when a part asks for them; ``overrides``: more settings."""
    import tempfile

    from toolbox.app.live import build_live_app
    from toolbox.app.sources import open_source
    from toolbox.settings import load_settings

    settings = load_settings(None, {"live.layer": layer, "live.unit_image_delay": 3600.0,
                                    "units.output_dir": tempfile.mkdtemp(), **(overrides or {})})
    return build_live_app(net, settings, open_source(source))


def distinct_photos(folder: Path, count: int, side: int = 480) -> list[Path]:
    """``count`` distinct JPEGs (a different flip and crop of each example photo)."""
    from toolbox.images import read_image, resize, write_image

    photos = [read_image(p) for p in sorted(EXAMPLES.glob("*.*")) if p.suffix != ".md"]
    paths = []
    for i in range(count):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        cut = photo[i % 17:h - i % 13, i % 11:w - i % 7]
        paths.append(folder / f"p{i:04d}.jpg")
        write_image(paths[-1], resize(cut[:, ::-1] if i % 2 else cut, side, round(side * cut.shape[0] / cut.shape[1])))
    return paths
