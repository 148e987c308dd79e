"""Benchmark part `units`: units_batched_speedup: units per minute optimized in one batch over one at a time,
same size and steps (goal >= 1.3), for several batch sizes; reports the best
"""

from __future__ import annotations

from bench.common import emit, interleaved, load


def run(quick: bool) -> None:
    from toolbox.optvis import Ascent, channel, get_preset

    net = load("efficientnet_lite0")
    ascent = Ascent(net, channel("block9_add"), get_preset("lucid"))
    size, steps = 128, 8 if quick else 24
    ascent.run([0], size, 2)
    best = (0.0, 0)
    for batch in ([8] if quick else [4, 8, 16]):
        units = list(range(batch))
        times = interleaved({"one": lambda: [ascent.run([u], size, steps) for u in units],
                             "batched": lambda: ascent.run(units, size, steps)}, rounds=2 if quick else 3, per_round=1)
        speedup = times["one"] / times["batched"]
        emit(f"units_batched_speedup_batch{batch}", speedup, "x")
        emit(f"units_per_minute_batch{batch}", batch * 60 / times["batched"] * steps / 256, "units/min at 256 steps")
        best = max(best, (speedup, batch))
    emit("units_batched_speedup", best[0], "x")
    emit("units_best_batch", best[1])
