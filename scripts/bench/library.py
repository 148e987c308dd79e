"""library: deepvis from Python against the engine called directly, lite0, in one process,
interleaved (the goal: the API costs what the engine costs, start-up excluded).

- library_units_over_engine: ``deepvis.units`` of 8 block9_add units (128 px, 32 steps) over
  the engine's own Ascent run on the same units;
- library_attribute_over_engine: ``deepvis.attribute`` (guided, block9_add:17, the chelsea photo,
  the map carried to the photo's 451x300 pixels) over the Attributor on the fitted 224 px view.
"""

from __future__ import annotations

from bench.common import EXAMPLES, emit, interleaved


def run(quick: bool) -> None:
    import deepvis
    from toolbox.optvis import Ascent, channel, get_preset
    from toolbox.optvis.attribution import Attributor, Target

    net = deepvis.load("efficientnet_lite0")
    photo = deepvis.read_image(EXAMPLES / "chelsea.png")
    units, steps = list(range(8)), 32
    ascent = Ascent(net.network, channel("block9_add"), get_preset("lucid"))
    attributor = Attributor(net.network)
    fitted = net.fit(photo)
    rounds = 3 if quick else 7
    t = interleaved({"api": lambda: deepvis.units(net, "block9_add", units, size=128, steps=steps, batch=8),
                     "engine": lambda: ascent.run(units, 128, steps)}, rounds=rounds, per_round=1)
    emit("library_units_over_engine", t["api"] / t["engine"], f"x ({t['engine']:.2f} s a call for the engine)")
    t = interleaved({"api": lambda: deepvis.attribute(net, photo, "block9_add:17", method="guided"),
                     "engine": lambda: attributor(fitted, Target.unit("block9_add", 17), "guided")},
                    rounds=rounds, per_round=5)
    emit("library_attribute_over_engine", t["api"] / t["engine"], f"x ({1000 * t['engine']:.0f} ms a call for the "
                                                                  "engine)")
