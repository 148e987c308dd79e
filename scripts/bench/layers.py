"""Benchmark part `layers`: unit images on every offered layer of a network (issue 30).

For each layer of ``net.spec.layer_names``: 4 units spread over it (``quality.spread_units``),
made as `deepvis units` makes them (the default preset's recipe for that layer,
``presets.unit_recipe``: its image size and steps; one batch, seed 0), judged by the network
itself as made and before the layer's ReLU:

  selective   units that are their layer's strongest channel on their own image / units that
              vary (``unit_range.unit_variation``: not constant, not never on, not at their bound
              on a plain image; those are listed and not made; nor at the bound of their mean on
              a plain image, ``mean_capped``: those are listed, made, and not counted)
  can lead    of the varying units, those whose largest mean is not below another unit's least
              (``Variation.cannot_lead``: by interval arithmetic, no image makes them selective),
              and how many of those are selective
  reach       the median, over the varying units, of the unit's channel mean on its image over
              its best over the example photos (examples/, fit to the input size); for units a
              ReLU6 chain caps (``quality.capped_bounds``), the median fraction of the bound
  per min     4 units * 60 / seconds to make them, compiled beforehand (batch 4: a batch of 16
              makes more a minute; ``layers_block9_add_per_min`` is that figure on lite0)
  size        the side of the images

Figures: ``layers_<model>_selective`` (selective over varying units, all layers; goal >= 0.9
and ``layers_<model>_worst`` the worst layer's fraction), ``layers_<model>_median_ratio``;
on lite0 ``layers_block9_add_per_min`` (16 units, batch 16, the default preset; goal >= 30).

Alone, for one network, some layers, and contact sheets to look at:

    python scripts/bench/layers.py [--model NAME] [--layers L ...] [--sheets DIR] [--size N] [--steps N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __name__ == "__main__":  # run alone: the bench package and the toolbox on the path
    sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[2])]

from bench.common import EXAMPLES, emit, load

SPEED_LAYER = "block9_add"


def with_levers(recipe, net, layer: str, levers: dict[str, str]):
    """The recipe changed by ``levers`` (the bench's --lever NAME=VALUE, to measure one at a
    time before a choice becomes the default): baseline=1 (the default before issue 30),
    redirect=0|1, param=pixels|fourier, fill=constant|wrap|reflect|nearest (a warp),
    warp=roll|none (wrapped shifts by multiples of the layer's stride; no transform at all),
    decay=POWER (Fourier), lr=RATE, shift=PIXELS, size=N|field:K (K times the field, 32 to 128);
    in ``judge`` also contrast=WEIGHT (0: the plain channel objective) and margin=N|field
    (border positions the objective leaves out)."""
    import dataclasses

    from toolbox.optvis import channel, params, transforms
    from toolbox.optvis.updates import Adam

    if levers.get("baseline") == "1":  # the default preset before issue 30: one recipe for every layer
        from toolbox.optvis import Preset

        recipe = dataclasses.replace(recipe, size=128, steps=128, objective=channel, preset=Preset(
            "lucid", params.fourier(), transforms.standard_affine(), Adam(lr=0.05)))
    preset, size = recipe.preset, recipe.size
    if "redirect" in levers:
        preset = dataclasses.replace(preset, redirect=levers["redirect"] == "1")
    if "fill" in levers or "shift" in levers:
        preset = dataclasses.replace(preset, transform=transforms.affine(
            float(levers.get("shift", 8)), (0.9, 1.1), 10.0, fill_mode=levers.get("fill", "constant").upper()))
    if levers.get("warp") == "roll":
        stride = net.receptive_field(layer)[1]
        preset = dataclasses.replace(preset, transform=transforms.roll(max(8, stride), stride))
    if levers.get("warp") == "none":
        preset = dataclasses.replace(preset, transform=transforms.unchanged)
    if "decay" in levers:
        preset = dataclasses.replace(preset, param=params.fourier(decay_power=float(levers["decay"])))
    if levers.get("param") in ("pixels", "fourier"):
        preset = dataclasses.replace(preset, param=params.pixels() if levers["param"] == "pixels" else params.fourier())
    if "lr" in levers:
        preset = dataclasses.replace(preset, update=Adam(lr=float(levers["lr"])))
    if "size" in levers:
        v = levers["size"]
        if v.startswith("field:"):
            field = net.receptive_field(layer)[0]
            size = int(min(128, max(net.spec.min_size, 32, round(float(v[6:]) * field / 8) * 8)))
        else:
            size = int(v)
    return dataclasses.replace(recipe, preset=preset, size=size)


def judge(net, layer: str, photos, size: int | None = None, steps: int | None = None, count: int = 4,
          sheets: Path | None = None, levers: dict[str, str] | None = None):
    """Make and judge ``count`` spread units of ``layer``: a quality.LayerJudgement."""
    import dataclasses

    from toolbox.assets.quality import LayerJudgement, capped_bounds, measure_unit_images, spread_units
    from toolbox.optvis import channel
    from toolbox.optvis.presets import unit_recipe
    from toolbox.optvis.unit_range import unit_variation
    from toolbox.settings import Settings

    units = spread_units(net.spec.layer(layer).channels, count)
    variation = {v.unit: v for v in unit_variation(net, layer, units, photos)}
    made = [u for u in units if not variation[u].flat]
    recipe = with_levers(unit_recipe(net, layer, Settings().units.preset, size, steps), net, layer, levers or {})
    seconds, qualities, images = 0.0, [], []
    if made:
        from toolbox.optvis.objectives import channel_contrast

        if "contrast" in (levers or {}) or "margin" in (levers or {}):
            contrast, margin = float(levers.get("contrast", recipe.contrast or 0)), levers.get("margin", "0")
            m = -(-net.receptive_field(layer)[0] // (2 * net.receptive_field(layer)[1])) if margin == "field" \
                else int(margin)
            recipe = dataclasses.replace(recipe, objective=lambda name: channel_contrast(name, contrast, margin=m)
                                         if contrast else channel(name))
        ascent = recipe.ascent(net, layer)
        ascent.run(made, recipe.size, 1)  # compiled
        start = time.perf_counter()
        rendered = ascent.run(made, recipe.size, recipe.steps, seed=0)
        seconds = time.perf_counter() - start
        images = list(rendered.images)
        bounds = capped_bounds(net, layer, made, {u: v.peak for u, v in variation.items()})
        qualities = measure_unit_images(net, layer, made, images, photos, pre_relu=True, bounds=bounds)
    if sheets is not None and images:
        from toolbox.images import write_image
        from toolbox.names import safe_name
        from toolbox.sheets import contact_sheet

        captions = [f"{q.unit} {'sel' if q.selective else 'not'} "
                    + (f"{q.bound_fraction:.0%}b" if q.bound is not None else f"{q.ratio:.1f}x") for q in qualities]
        sheets.mkdir(parents=True, exist_ok=True)
        write_image(sheets / f"{net.name}_{safe_name(layer)}.png", contact_sheet(images, captions, columns=len(images),
                                                                                title=f"{layer} {recipe.size}px"))
    flat = tuple(variation[u].describe() for u in units if variation[u].flat or variation[u].mean_capped)
    varying = tuple(u for u in made if not variation[u].mean_capped)
    contenders = tuple(u for u in varying if not variation[u].cannot_lead)
    return LayerJudgement(layer, recipe.size, tuple(made), tuple(qualities), flat, varying, seconds, contenders)


def print_table(model: str, rows) -> None:
    print(f"\n{model}: unit images judged as made, before the layer's ReLU")
    print(f"| {'layer':24s} | field | size | selective / vary | of those that can lead | reach | per min | "
          "nothing to show (not made or not counted) |")
    print("|---|---|---|---|---|---|---|---|")
    for field, j in rows:
        print(f"| {j.layer:24s} | {field} | {j.size} | {j.selective}/{len(j.varying)} | "
              f"{j.selective_contenders}/{len(j.contenders)} | {j.reach()} | {j.per_minute:.0f} | "
              f"{'; '.join(j.flat) or '-'} |", flush=True)


def speed(net, quick: bool, levers: dict[str, str] | None = None) -> None:
    """Unit images a minute on lite0 block9_add at the default preset, 16 units in one batch."""
    from toolbox.optvis.presets import unit_recipe
    from toolbox.settings import Settings

    recipe = with_levers(unit_recipe(net, SPEED_LAYER, Settings().units.preset), net, SPEED_LAYER, levers or {})
    ascent = recipe.ascent(net, SPEED_LAYER)
    units = list(range(16))
    ascent.run(units, recipe.size, 1)
    steps = 32 if quick else recipe.steps
    start = time.perf_counter()
    ascent.run(units, recipe.size, steps)
    emit("layers_block9_add_per_min", 16 * 60 / ((time.perf_counter() - start) * recipe.steps / steps),
         f"units/min at {recipe.size} px, {recipe.steps} steps, batch 16")


def speed_against_before(net, rounds: int = 2, steps: int = 128) -> None:
    """The default recipe on lite0 block9_add (16 units, batch 16) against the default before
    issue 30 (no redirected ReLUs, the plain channel objective, 128 px), in alternating rounds
    of whole runs (``steps``: the first 16 steps of a run, through redirected ReLUs, cost more
    than the rest): units a minute of each, and the ratio in wall and in CPU time (this
    process, all threads; others' load disturbs it far less)."""
    import statistics

    from toolbox.optvis.presets import unit_recipe
    from toolbox.settings import Settings

    now = unit_recipe(net, SPEED_LAYER, Settings().units.preset)
    before = with_levers(now, net, SPEED_LAYER, {"baseline": "1"})
    ascents = {"before": before.ascent(net, SPEED_LAYER), "now": now.ascent(net, SPEED_LAYER)}
    sizes = {"before": before.size, "now": now.size}
    units = list(range(16))
    for name, a in ascents.items():
        a.run(units, sizes[name], 1)  # compiled
    wall: dict[str, list[float]] = {n: [] for n in ascents}
    cpu: dict[str, list[float]] = {n: [] for n in ascents}
    for _ in range(rounds):
        for name, a in ascents.items():
            t, c = time.perf_counter(), time.process_time()
            a.run(units, sizes[name], steps)
            wall[name].append(16 * 60 / ((time.perf_counter() - t) * now.steps / steps))
            cpu[name].append(16 * 60 / ((time.process_time() - c) * now.steps / steps))
    for name in ascents:
        emit(f"layers_block9_add_{name}_per_min", statistics.median(wall[name]),
             f"units/min at {sizes[name]} px, {now.steps} steps, batch 16 (CPU time: "
             f"{statistics.median(cpu[name]):.1f})")
    for tag, rates in (("", wall), ("_cpu", cpu)):
        ratios = [a / b for a, b in zip(rates["now"], rates["before"])]
        emit(f"layers_block9_add_speed_vs_before{tag}", statistics.median(ratios),
             f"x (rounds: {', '.join(f'{x:.2f}' for x in ratios)})")


def run(quick: bool, model: str = "efficientnet_lite0", layers: list[str] | None = None, size: int | None = None,
        steps: int | None = None, sheets: Path | None = None, count: int = 4, levers: dict[str, str] | None = None,
        speed_too: bool = True) -> None:
    import numpy as np

    from toolbox.images import list_images, read_image

    net = load(model)
    photos = [read_image(p) for p in list_images(EXAMPLES)]
    names = layers or list(net.spec.layer_names)
    if quick and not layers:
        names = names[::3]
    from toolbox.tfstart import expected_retracing

    rows = []
    with expected_retracing():  # one compiled ascent per layer
        for layer in names:
            rows.append((net.receptive_field(layer)[0], judge(net, layer, photos, size, steps, count, sheets, levers)))
    print_table(model, rows)
    judged = [j for _, j in rows]
    varying = sum(len(j.varying) for j in judged)
    tag = model.removeprefix("efficientnet_")
    emit(f"layers_{tag}_selective", sum(j.selective for j in judged) / max(varying, 1),
         f"of {varying} varying units over {len(judged)} layers (goal >= 0.9)")
    emit(f"layers_{tag}_worst", min(j.selective / max(len(j.varying), 1) for j in judged if j.varying),
         "selective fraction of the worst layer")
    contenders = sum(len(j.contenders) for j in judged)
    emit(f"layers_{tag}_selective_contenders", sum(j.selective_contenders for j in judged) / max(contenders, 1),
         f"of {contenders} varying units that can lead their layer (the rest cannot: unit_range.cannot_lead)")
    ratios = [q.ratio for j in judged for q in j.qualities if q.bound is None and np.isfinite(q.ratio)]
    emit(f"layers_{tag}_median_ratio", float(np.median(ratios)) if ratios else float("nan"), "x the best photo")
    if speed_too and model == "efficientnet_lite0" and (layers is None or SPEED_LAYER in layers):
        speed(net, quick, levers)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every third layer")
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--layers", nargs="*", help="these layers only (default: every offered layer)")
    parser.add_argument("--size", type=int, help="one image side for every layer (default: the recipe's)")
    parser.add_argument("--steps", type=int, help="steps (default: the recipe's)")
    parser.add_argument("--units", type=int, default=4, help="units per layer")
    parser.add_argument("--sheets", type=Path, help="write each layer's contact sheet here")
    parser.add_argument("--lever", action="append", default=[], metavar="NAME=VALUE",
                        help="change the recipe (see with_levers); repeatable")
    parser.add_argument("--no-speed", action="store_true", help="leave out the block9_add speed figure")
    parser.add_argument("--speed-against-before", action="store_true",
                        help="only: block9_add's rate now against before issue 30, alternating rounds")
    a = parser.parse_args()
    from toolbox.tfstart import start_tensorflow_quietly

    start_tensorflow_quietly()
    if a.speed_against_before:
        speed_against_before(load("efficientnet_lite0"))
        sys.exit(0)
    run(a.quick, a.model, a.layers, a.size, a.steps, a.sheets, a.units, dict(x.split("=", 1) for x in a.lever),
        not a.no_speed)
