"""Benchmark part `units`: unit images (issue 24): quality and speed of the engine's recipes, MACO
and feature accentuation, each configuration measured in this one process.

Quality, for lite0 ``block9_add`` units 0-15 made at 128 px (batch 16, seed 0), judged through
the network's normal fit (``Network.fit_input``: resized to 224 px, as a photo is):
``units_<c>_selective`` is how many of the 16 units are the strongest channel of the layer on
their own image; ``units_<c>_ratio`` the median, over the units some photo excites, of the
unit's mean on its image over its best mean on the example photos (examples/). The same two
on the images as made (128 px) follow as ``*_native``.

Speed: ``units_<c>_per_min`` is 16 * 60 over the time one batch of 16 units takes at the
configuration's steps, on an ascent compiled beforehand (start-up left out, as `deepvis units`
16 against 32 units leaves it out), timed over 64 steps (a step costs the same all along a
run). The rounds alternate the configurations so that the shared machine's noise falls on all
alike; ``units_<c>_speedup`` is the median over the rounds of its rate over the baseline's in
that round (wall clock), ``units_<c>_speedup_cpu`` the same in this process's CPU time (user +
system, all threads), which other processes' load disturbs far less.

Configurations: ``before`` (the baseline: the lucid preset before issue 24: Lucid's pad,
jitter, scale, rotate, jitter, so the network sees 126-158 px for 128 asked; one step per
compiled call; 256 steps) and the levers one at a time: ``kept`` (the same transforms cropped
back to 128 px), ``loop`` (16 steps per compiled call), ``affine`` (one warp per row at 128
px), ``affine_loop``, ``before_128`` (the old transforms at 128 steps) and ``default`` (the
lucid preset and step count of today's settings); ``maco`` (the maco preset, 256 steps).
Figures with a goal:

  units_default_per_min       goal >= 30 on the 2-core machine (issue 24's bar), with
                              units_default_selective / _ratio not below units_before_*
  units_default_speedup       the same goal as a ratio: >= 30 / 18.5 (before's rate unloaded)
  units_maco_per_min          goal >= 10 (xplique's maco: about 1), with selective >= 4 of 16
                              and ratio >= 1.4 (xplique's maco on these units: 1 of 4, 1.4)
  accentuate_rise_min         the smallest after/before of a unit's mean over 4 units of
                              block9_add on chelsea at the accentuate defaults (goal >= 3),
                              with accentuate_psnr_min (goal >= 20 dB) and accentuate_per_min
  units_batched_speedup       units per minute in one batch over one at a time, same size and
                              steps (goal >= 1.3), for several batch sizes; reports the best

Alone, for the lever table or a few configurations:

    python scripts/bench/units.py [--configs NAME ...] [--rounds N] [--speed-only | --quality-only]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

if __name__ == "__main__":  # run alone: the bench package and the toolbox on the path
    sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[2])]

from bench.common import EXAMPLES, emit, interleaved, load

LAYER, SIZE, BATCH, SPEED_STEPS = "block9_add", 128, 16, 64


def configs() -> dict[str, Callable[[], tuple]]:
    """name -> () -> (preset, Ascent keyword arguments, steps). ``before`` is the baseline."""
    from toolbox.optvis import Preset, get_preset, params, transforms
    from toolbox.optvis.updates import Adam
    from toolbox.settings import Settings

    def lucid(transform, steps_per_call=1, steps=256):
        return lambda: (Preset("lucid", params.fourier(), transform(), Adam(lr=0.05)),
                        {"steps_per_call": steps_per_call}, steps)

    return {
        "before": lucid(transforms.standard),
        "kept": lucid(transforms.standard_kept),
        "loop": lucid(transforms.standard, 16),
        "affine": lucid(transforms.standard_affine),
        "affine_loop": lucid(transforms.standard_affine, 16),
        "before_128": lucid(transforms.standard, steps=128),
        "default": lambda: (get_preset(Settings().units.preset), {}, get_preset(Settings().units.preset).steps),
        "maco": lambda: (get_preset("maco"), {}, get_preset("maco").steps),  # 256
        "maco_128": lambda: (get_preset("maco"), {}, 128),
    }


def quality(net, make: Callable[[], tuple], photos, name: str) -> None:
    """Units 0-15 as `deepvis units` makes them (one batch, seed 0), judged; their contact
    sheet is left in the temporary folder to look at."""
    from toolbox.assets.quality import measure_unit_images, summarize
    from toolbox.images import write_image
    from toolbox.optvis import Ascent, channel
    from toolbox.sheets import contact_sheet

    preset, options, steps = make()
    units = list(range(BATCH))
    rendered = Ascent(net, channel(LAYER), preset, **options).run(units, SIZE, steps, seed=0)
    for fit, tag in ((True, ""), (False, "_native")):
        selective, ratio = summarize(measure_unit_images(net, LAYER, units, rendered.images, photos, fit=fit))
        emit(f"units_{name}_selective{tag}", selective, "of 16")
        emit(f"units_{name}_ratio{tag}", ratio, "median")
    write_image(Path(tempfile.gettempdir()) / f"units_{name}.png",
                contact_sheet(list(rendered.images), [str(u) for u in units]))


def speed(net, table: dict, names: list[str], rounds: int) -> None:
    from toolbox.optvis import Ascent, channel

    made = {n: table[n]() for n in names}
    ascents = {n: Ascent(net, channel(LAYER), preset, **options) for n, (preset, options, _) in made.items()}
    units = list(range(BATCH))
    for a in ascents.values():
        a.run(units, SIZE, 2)  # compiled
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(rounds):
        for n in names:
            t, c = time.perf_counter(), time.process_time()
            ascents[n].run(units, SIZE, SPEED_STEPS)
            scale = made[n][2] / SPEED_STEPS
            wall[n].append(BATCH * 60 / ((time.perf_counter() - t) * scale))
            cpu[n].append(BATCH * 60 / ((time.process_time() - c) * scale))
    for n in names:
        emit(f"units_{n}_per_min", statistics.median(wall[n]), f"units/min at {made[n][2]} steps")
        for tag, rates in (("", wall), ("_cpu", cpu)):
            ratios = [a / b for a, b in zip(rates[n], rates[names[0]])]
            emit(f"units_{n}_speedup{tag}", statistics.median(ratios),
                 f"x {names[0]} (rounds: {', '.join(f'{x:.2f}' for x in ratios)})")


def accentuation(net, quick: bool) -> None:
    import numpy as np

    from toolbox.images import read_image
    from toolbox.nets import Probe
    from toolbox.optvis.accentuation import Accentuator
    from toolbox.settings import Settings

    a = Settings().accentuate
    accentuator = Accentuator(net, LAYER, net.spec.input_size, weight=a.weight)
    photo = read_image(EXAMPLES / "chelsea.png")
    means = Probe(net, [LAYER])(accentuator.fit(photo)).activations[LAYER].mean(axis=(0, 1))
    units = [int(u) for u in np.argsort(means)[::-1][[0, 5, 10, 20]]][:2 if quick else 4]
    accentuator.accentuate(photo, units[0], 2)  # compiled
    start, results = time.perf_counter(), []
    for unit in units:
        results.append(accentuator.accentuate(photo, unit, a.steps))
    emit("accentuate_per_min", len(units) * 60 / (time.perf_counter() - start), f"images/min at {a.steps} steps")
    emit("accentuate_rise_min", min(r.after / r.before for r in results), "x (after / before, "
         + ", ".join(f"{u}: {r.before:.2f} -> {r.after:.2f}" for u, r in zip(units, results)) + ")")
    emit("accentuate_psnr_min", min(r.psnr for r in results), "dB")


def batched(net, quick: bool) -> None:
    from toolbox.optvis import Ascent, channel, get_preset

    ascent = Ascent(net, channel(LAYER), get_preset("lucid"))
    steps = 8 if quick else 24
    ascent.run([0], SIZE, 2)
    best = (0.0, 0)
    for batch in ([8] if quick else [4, 8, 16]):
        units = list(range(batch))
        times = interleaved({"one": lambda: [ascent.run([u], SIZE, steps) for u in units],
                             "batched": lambda: ascent.run(units, SIZE, steps)}, rounds=2 if quick else 3, per_round=1)
        speedup = times["one"] / times["batched"]
        emit(f"units_batched_speedup_batch{batch}", speedup, "x")
        best = max(best, (speedup, batch))
    emit("units_batched_speedup", best[0], "x")
    emit("units_best_batch", best[1])


def run(quick: bool, names: list[str] | None = None, rounds: int | None = None, speed_only: bool = False,
        quality_only: bool = False, extras: bool = True) -> None:
    from toolbox.images import read_image

    net = load("efficientnet_lite0")
    photos = [read_image(p) for p in sorted(EXAMPLES.glob("*.*")) if p.suffix != ".md"]
    table = configs()
    names = names or (["before", "default", "maco"] if quick else list(table))
    if not speed_only:
        for name in names:
            quality(net, table[name], photos, name)
    if not quality_only:
        speed(net, table, names, rounds or (2 if quick else 5))
    if extras:
        accentuation(net, quick)
        batched(net, quick)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="before, default and maco; two speed rounds")
    parser.add_argument("--configs", nargs="*", help="which configurations (the first is the baseline)")
    parser.add_argument("--rounds", type=int, help="speed rounds")
    parser.add_argument("--speed-only", action="store_true")
    parser.add_argument("--quality-only", action="store_true")
    a = parser.parse_args()
    from toolbox.tfstart import start_tensorflow_quietly

    start_tensorflow_quietly()
    run(a.quick, a.configs, a.rounds, a.speed_only, a.quality_only, extras=not a.configs)
