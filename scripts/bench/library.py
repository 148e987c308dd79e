"""library: deepvis from Python and from the command line against the engine called directly,
lite0, interleaved (the goal: the API and the command cost what the engine costs, start-up
excluded).

- library_units_over_engine: ``deepvis.units`` of 8 block9_add units (the layer's recipe, 32
  steps) over the engine's own Ascent of that recipe run on the same units (the API adds the
  judgement of each image and nothing else);
- library_attribute_over_engine: ``deepvis.attribute`` (guided, block9_add:17, the chelsea photo,
  the map carried to the photo's 451x300 pixels) over the Attributor on the fitted 224 px view;
- units_cli_per_min and units_cli_over_engine (issue 30: goal >= 30 a minute and >= 0.9 of the
  engine): `deepvis units --layer block9_add` as a user runs it, a process of its own, batch 16
  at the default preset, writing its images, sheet and objectives. Start-up (TensorFlow, the
  network, compiling, the units' variation) is left out by timing 16 and 32 units and taking
  the difference: 16 units a batch, each batch's files and checks included; the engine's rate
  is one batch of 16 run in this process, in alternating rounds.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time

from bench.common import EXAMPLES, REPO, emit, interleaved

LAYER = "block9_add"


def cli_against_engine(net, steps: int | None, rounds: int) -> None:
    from toolbox.optvis.presets import unit_recipe

    recipe = unit_recipe(net.network, LAYER, net.settings.units.preset, None, steps)
    ascent = recipe.ascent(net.network, LAYER)
    units = list(range(16))
    ascent.run(units, recipe.size, 1)  # compiled

    def cli(count: int) -> float:
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "toolbox", "units", "--model", "efficientnet_lite0", "--layer",
                            LAYER, "--units", f"0-{count - 1}", "--batch", "16", "--steps", str(recipe.steps),
                            "-o", out], cwd=REPO, check=True, capture_output=True)
            return time.perf_counter() - start

    engine, marginal = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        ascent.run(units, recipe.size, recipe.steps)
        engine.append(time.perf_counter() - start)
        marginal.append(cli(32) - cli(16))
    e, c = statistics.median(engine), statistics.median(marginal)
    emit("units_cli_per_min", 16 * 60 / c, f"units/min ({recipe.describe()}, batch 16, start-up excluded; goal >= 30)")
    emit("units_engine_per_min", 16 * 60 / e, "units/min, the same batch in this process")
    emit("units_cli_over_engine", e / c, "of the engine's rate (goal >= 0.9)")


def run(quick: bool) -> None:
    import deepvis
    from toolbox.optvis.attribution import Attributor, Target
    from toolbox.optvis.presets import unit_recipe

    net = deepvis.load("efficientnet_lite0")
    photo = deepvis.read_image(EXAMPLES / "chelsea.png")
    units, steps = list(range(8)), 32
    recipe = unit_recipe(net.network, LAYER, net.settings.units.preset, None, steps)
    ascent = recipe.ascent(net.network, LAYER)
    attributor = Attributor(net.network)
    fitted = net.fit(photo)
    rounds = 3 if quick else 7
    t = interleaved({"api": lambda: deepvis.units(net, LAYER, units, steps=steps, batch=8),
                     "engine": lambda: ascent.run(units, recipe.size, steps)}, rounds=rounds, per_round=1)
    emit("library_units_over_engine", t["api"] / t["engine"], f"x ({t['engine']:.2f} s a call for the engine)")
    t = interleaved({"api": lambda: deepvis.attribute(net, photo, "block9_add:17", method="guided"),
                     "engine": lambda: attributor(fitted, Target.unit("block9_add", 17), "guided")},
                    rounds=rounds, per_round=5)
    emit("library_attribute_over_engine", t["api"] / t["engine"], f"x ({1000 * t['engine']:.0f} ms a call for the "
                                                                  "engine)")
    cli_against_engine(net, 32 if quick else None, 1 if quick else 3)
