"""deepvis benchmarks: one line per figure, `name: value unit`.

    python scripts/benchmark.py [--quick] [--only PART ...]

Each figure that has a goal is a ratio against a baseline measured in the same process
(machines here are noisy); absolute times are printed as context.

Parts, in the order they run (one module each, scripts/bench/<part>.py, whose docstring says
what it measures and the goal of each figure): probe, dream, units, layers, library, live, serve, soak, crops,
gradients, precompute, seedimages, circuits, inception.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the bench package beside this script

from bench import PARTS  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, smaller inputs")
    parser.add_argument("--only", nargs="+", choices=PARTS, metavar="PART",
                        help=f"run only these parts ({', '.join(PARTS)})")
    args = parser.parse_args()
    from toolbox.tfstart import start_tensorflow_quietly

    start_tensorflow_quietly()
    for name in args.only or PARTS:
        importlib.import_module(f"bench.{name}").run(args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
