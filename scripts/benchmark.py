"""deepvis benchmarks: one line per figure, `name: value unit`.

    python scripts/benchmark.py [--quick] [--only PART ...]

Each figure that has a goal is a ratio against a baseline measured in the same process
(machines here are noisy); absolute times are printed as context. Parts:

  probe   probe_overhead_lite0: probe time per image / bare compiled forward pass (goal <= 1.2)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
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

    return load_network(load_settings(None, model=model), random_weights=random_weights)


def example_image(size: int):
    from toolbox.images import fit_square, read_image

    return fit_square(read_image(EXAMPLES / "chelsea.png"), size)


def part_probe(quick: bool) -> None:
    import numpy as np
    import tensorflow as tf

    from toolbox.nets import Probe

    net = load("efficientnet_lite0")
    image = example_image(224).astype(np.float32)
    model = net.model

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def bare(x):
        return model(x, training=False)

    normalized = net.normalize(image[None])
    probe = Probe(net, ["block9_add"])
    times = interleaved({"bare": lambda: bare(normalized).numpy(), "probe": lambda: probe(image)},
                        rounds=5 if quick else 15, per_round=5 if quick else 10)
    emit("probe_overhead_lite0", times["probe"] / times["bare"], "x")
    emit("probe_ms_lite0", times["probe"] * 1000, "ms")
    emit("bare_forward_ms_lite0", times["bare"] * 1000, "ms")


PARTS: dict[str, Callable[[bool], None]] = {"probe": part_probe}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, smaller inputs")
    parser.add_argument("--only", nargs="+", choices=sorted(PARTS), metavar="PART",
                        help=f"run only these parts ({', '.join(PARTS)})")
    args = parser.parse_args()
    from toolbox.tfstart import start_tensorflow_quietly

    start_tensorflow_quietly()
    for name in args.only or PARTS:
        PARTS[name](args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
