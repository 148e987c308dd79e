"""Unit images: quality and speed of the engine's recipes, measured in one process.

    python scripts/bench_units.py [--quick] [--configs NAME ...] [--rounds N]

Quality, for lite0 ``block9_add`` units 0-15 made at 128 px (batch 16, seed 0), judged
through the network's normal fit (``Network.fit_input``: resized to 224 px, as a photo):
``selective`` is how many of the 16 units are the strongest channel of the layer on their
own image; ``ratio`` is the median, over the units some photo excites, of the unit's mean
on its image over its best mean on the example photos (examples/). The same two figures
on the images as they are (128 px) follow as ``*_native``.

Speed: ``units_per_min`` is 16 * 60 over the time one batch of 16 units takes at the
configuration's steps, measured on an ascent compiled beforehand (so start-up is left out,
as `deepvis units` 16 against 32 units leaves it out) and timed over ``SPEED_STEPS`` steps
(a step costs the same all along a run); the rounds alternate the configurations so that
the shared machine's noise falls on all alike, and ``speedup`` is the median over the
rounds of each configuration's rate over the first one's (the baseline) in that round;
``speedup_cpu`` is the same in this process's CPU time (user + system, all threads),
which other processes' load disturbs far less than the wall clock.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
EXAMPLES = REPO / "examples"
LAYER, SIZE, BATCH = "block9_add", 128, 16


def emit(name: str, value: float, unit: str = "") -> None:
    print(f"{name}: {value:.4g} {unit}".rstrip(), flush=True)


def configs() -> dict[str, Callable[[], tuple]]:
    """name -> () -> (preset, Ascent keyword arguments, steps). The first is the baseline."""
    from toolbox.optvis import Preset, get_preset, params, transforms
    from toolbox.optvis.updates import Adam, NAdam

    def lucid(transform, steps_per_call=1, steps=256, lr=0.05):
        return lambda: (Preset("lucid", params.fourier(), transform(), Adam(lr=lr)),
                        {"steps_per_call": steps_per_call}, steps)

    return {
        "lucid": lucid(transforms.standard),  # the preset as it was: one step per call, 126-158 px
        "kept": lucid(transforms.standard_kept),  # the same transforms, cropped back to 128 px
        "loop": lucid(transforms.standard, 16),  # 16 steps per compiled call
        "affine": lucid(transforms.standard_affine),  # one warp per row at 128 px
        "kept_loop": lucid(transforms.standard_kept, 16),
        "affine_loop": lucid(transforms.standard_affine, 16),
        "affine_loop_128": lucid(transforms.standard_affine, 16, steps=128, lr=0.1),
        "affine_loop_128_lr05": lucid(transforms.standard_affine, 16, steps=128, lr=0.05),
        "affine_loop_96": lucid(transforms.standard_affine, 16, steps=96, lr=0.1),
        "affine_loop_64": lucid(transforms.standard_affine, 16, steps=64, lr=0.15),
        "maco": lambda: (get_preset("maco"), {}, 256),
        "maco_full": lambda: (Preset("maco_full", params.maco(), transforms.compose(
            [transforms.crops(0.2, 0.5, 1.0), transforms.noise(0.05)]), NAdam(lr=1.0)), {}, 256),
    }


SPEED_STEPS = 64


def quality(net, make: Callable[[], tuple], photos, folder, name: str) -> None:
    """Units 0-15 as `deepvis units` makes them (one batch, seed 0, PNGs written), judged."""
    from toolbox.assets.quality import measure_unit_images, summarize
    from toolbox.assets.unit_images import contact_sheet
    from toolbox.images import write_image
    from toolbox.optvis import Ascent, channel

    preset, options, steps = make()
    units = list(range(BATCH))
    t = time.perf_counter()
    rendered = Ascent(net, channel(LAYER), preset, **options).run(units, SIZE, steps, seed=0)
    emit(f"units_{name}_job_seconds", time.perf_counter() - t, "s (16 units, compile included)")
    for unit, image in zip(units, rendered.images):
        folder.save(LAYER, unit, image)
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
    rates: dict[str, list[float]] = {n: [] for n in names}
    cpu_rates: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(rounds):
        for n in names:
            t, c = time.perf_counter(), time.process_time()
            ascents[n].run(units, SIZE, SPEED_STEPS)
            scale = made[n][2] / SPEED_STEPS
            rates[n].append(BATCH * 60 / ((time.perf_counter() - t) * scale))
            cpu_rates[n].append(BATCH * 60 / ((time.process_time() - c) * scale))
    for n in names:
        emit(f"units_{n}_per_min", statistics.median(rates[n]), f"units/min at {made[n][2]} steps")
        for tag, r in (("", rates), ("_cpu", cpu_rates)):
            ratios = [a / b for a, b in zip(r[n], r[names[0]])]
            emit(f"units_{n}_speedup{tag}", statistics.median(ratios), f"x {names[0]} (rounds: "
                 + ", ".join(f"{x:.2f}" for x in ratios) + ")")


def run(quick: bool, names: list[str] | None = None, rounds: int | None = None) -> None:
    from toolbox.assets.unit_images import UnitImageFolder
    from toolbox.images import read_image
    from toolbox.nets import load_network
    from toolbox.settings import load_settings

    net = load_network(load_settings(None, {"model": "efficientnet_lite0"}))
    photos = [read_image(p) for p in sorted(EXAMPLES.glob("*.*")) if p.suffix != ".md"]
    table = configs()
    names = names or list(table)
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            quality(net, table[name], photos, UnitImageFolder(tmp), name)
    if rounds != 0:
        speed(net, table, names, rounds or (2 if quick else 6))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two speed rounds")
    parser.add_argument("--configs", nargs="*", help="which configurations (the first is the baseline)")
    parser.add_argument("--rounds", type=int, help="speed rounds (0: quality only)")
    a = parser.parse_args()
    run(a.quick, a.configs, a.rounds)
