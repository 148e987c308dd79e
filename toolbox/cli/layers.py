"""deepvis layers: list the layers a network offers, with their output shapes."""

from __future__ import annotations

import argparse
import json

from toolbox.cli.common import network, settings_of


def add_parser(command) -> None:
    p = command("layers", run, "list the layers a network offers, with their output shapes",
                "example: deepvis layers --model efficientnet_lite0 --json")
    p.add_argument("--json", action="store_true", help='print [{"name": ..., "shape": [h, w, c]}, ...]')


def run(args: argparse.Namespace) -> None:
    net = network(settings_of(args))
    shapes = net.layer_shapes()
    if args.json:
        print(json.dumps([{"name": n, "shape": list(s)} for n, s in shapes.items()]))
        return
    size = net.spec.input_size
    print(f"{net.name}: {len(shapes)} layers at {size}x{size} input")
    for name, (h, w, c) in shapes.items():
        print(f"  {name:<22} {h:>4} x {w:<4} x {c:>5}")
