"""Benchmark part `inception`: Google's 2015 Inception v3 (real weights, `--model inception_v3_2015`) against
lite0 in the same run, each figure absolute and as a ratio to lite0 (inception / lite0: below 1
is slower for rates, above 1 slower for seconds): inception_live_fps (headless dashboards of
the largest offered layer, the frame fitted to 299 px; lite0 at its 224 px),
inception_live_dream_fps (dream mode on 320x240 frames, 2 steps per frame),
inception_units_per_min (mixed4 against lite0's block9_add, 128 px, 256 steps, batch 16; and
mixed4's at 299 px), inception_dream_1mp_seconds (a 1-megapixel
photo with each network's default dream), inception_crops_images_per_s (every offered layer,
JPEGs on disk, into an empty store). The cost of one image decides what stays usable on
inception: the window, the on-demand unit image, the live dream.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench.common import EXAMPLES, distinct_photos, emit, load
from bench.live import dashboard_times
from bench.seedimages import live_dream_rates

MODEL = "inception_v3_2015"


def _alternating(runs: dict, rounds: int) -> dict[str, float]:
    """Best seconds per call of each function, in alternating rounds after one warm-up call
    each (this host's neighbours only ever slow a measurement down)."""
    for f in runs.values():
        f()
    best = {k: float("inf") for k in runs}
    for _ in range(rounds):
        for name, f in runs.items():
            t = time.perf_counter()
            f()
            best[name] = min(best[name], time.perf_counter() - t)
    return best


def _both(name: str, lite0: float, inception: float, unit: str, rate: bool) -> None:
    emit(f"{name}_lite0", lite0, unit)
    emit(name, inception, unit)
    emit(f"{name}_ratio", inception / lite0, "x lite0" + (" (rate)" if rate else " (time)"))


def run(quick: bool) -> None:
    from toolbox.assets.crop_job import CropJob, Source
    from toolbox.assets.crops import CropStore
    from toolbox.images import read_image, resize
    from toolbox.optvis import Ascent, DeepDream, DreamSchedule, channel, deepdream, get_preset
    from toolbox.settings import Settings

    lite0, inception = load("efficientnet_lite0"), load(MODEL)
    nets = {"lite0": lite0, "inception": inception}
    settings = Settings()

    # the window: headless dashboards (probe + draw) of each network's largest offered layer
    fps = {k: 1.0 / dashboard_times(net, quick)["dashboard"] for k, net in nets.items()}
    _both("inception_live_fps", fps["lite0"], fps["inception"], "dashboards/s", rate=True)

    # the live dream: 320x240 frames of a panning camera, 2 steps per frame
    dream_fps = {"lite0": live_dream_rates(lite0, quick)[True],
                 "inception": live_dream_rates(inception, quick, "mixed4")[True]}
    _both("inception_live_dream_fps", dream_fps["lite0"], dream_fps["inception"],
          "dashboards/s (dream mode, 320x240, 2 steps per frame; lite0 block9_add, inception mixed4)", rate=True)

    # unit images: 128 px, 256 steps, batch 16 (timed over fewer steps, scaled to 256)
    u = settings.units
    steps = 8 if quick else 32
    layers = {"lite0": "block9_add", "inception": "mixed4"}
    ascents = {k: Ascent(net, channel(layers[k]), get_preset(u.preset)) for k, net in nets.items()}
    units = list(range(u.batch))
    seconds = _alternating({k: (lambda a=a: a.run(units, 128, steps)) for k, a in ascents.items()},
                           rounds=1 if quick else 2)
    per_min = {k: u.batch * 60 / s * steps / 256 for k, s in seconds.items()}
    _both("inception_units_per_min", per_min["lite0"], per_min["inception"], "units/min (128 px, 256 steps)", rate=True)
    # at the network's input size (--size 299): the same motifs at the same scale, more copies of them
    s = _alternating({"299": lambda: ascents["inception"].run(units, 299, steps // 4)}, rounds=1)["299"]
    emit("inception_units_per_min_299", u.batch * 60 / s * (steps // 4) / 256, "units/min (299 px, 256 steps)")

    # a 1-megapixel photo dreamed with each network's default layers and schedule
    d = settings.dream
    photo = read_image(EXAMPLES / "chelsea.png")
    photo = resize(photo, 1155, round(1155 * photo.shape[0] / photo.shape[1]))  # 1155 x 768: 0.89 MP
    schedule = DreamSchedule(d.octaves, d.octave_scale, 2 if quick else d.steps, d.step_size, d.tile)
    dreamers = {k: DeepDream(net, deepdream(dict(net.spec.dream_layers))) for k, net in nets.items()}
    seconds = _alternating({k: (lambda dr=dr: dr.run(photo, schedule)) for k, dr in dreamers.items()}, rounds=1)
    scale = 1e6 / (photo.shape[0] * photo.shape[1])  # per megapixel
    _both("inception_dream_1mp_seconds", seconds["lite0"] * scale, seconds["inception"] * scale,
          f"s per megapixel ({schedule.octaves} octaves x {schedule.steps} steps)", rate=False)

    # crops: every offered layer over JPEGs on disk, into an empty store
    c = settings.crops
    count = 32 if quick else 96
    with tempfile.TemporaryDirectory() as tmp:
        paths = distinct_photos(Path(tmp), count + c.batch)
        sources = [Source(p, False) for p in paths]
        rates = {}
        for k, net in nets.items():
            job = CropJob(net, net.spec.layer_names, CropStore(Path(tmp) / f"warm_{k}"), c.top, c.side, 10**8)
            job.run(sources[-c.batch:], batch=c.batch)  # fields measured, the step compiled
            job.store = CropStore(Path(tmp) / k)
            t = time.perf_counter()
            job.run(sources[:count], batch=c.batch, chunk=c.chunk)
            rates[k] = count / (time.perf_counter() - t)
    _both("inception_crops_images_per_s", rates["lite0"], rates["inception"],
          f"images/s (all offered layers, {count} JPEGs, empty store)", rate=True)
