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
    if any(inner in shapes for inner in dict(net.spec.aliases).values()):
        print("  (layers inside nested models are named <model>.<layer>, and a name no file can take is made safe;\n"
              "   the model's own layer name works where unique)")
    width = max([22, *map(len, shapes)])
    for name, (h, w, c) in shapes.items():
        print(f"  {name:<{width}} {h:>4} x {w:<4} x {c:>5}")
