"""deepvis activations: per-channel mean and max of one layer on an image."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from toolbox.cli.common import bounded, network, settings_of


def add_parser(command) -> None:
    p = command("activations", run, "per-channel mean and max of one layer on an image",
                "examples:\n  deepvis activations examples/chelsea.png --layer block9_add --json\n"
                "  deepvis activations examples/chelsea.png --layer block9_add --plot stats.png --unit 17")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--layer", "-l", required=True, help="layer name (see: deepvis layers)")
    p.add_argument("--json", action="store_true", help='print {"LAYER": {"shape", "mean", "max"}}')
    p.add_argument("--plot", metavar="OUT.png", help="also draw the per-channel mean and max as a chart "
                   "(.png, .svg or .pdf)")
    p.add_argument("--unit", "-u", type=bounded(int, 0), help="with --plot: add this unit's activation histogram")


def run(args: argparse.Namespace) -> None:
    from toolbox.files import check_output_file
    from toolbox.images import read_image

    if args.plot:
        check_output_file(args.plot, (".png", ".svg", ".pdf"))
    settings = settings_of(args)
    image = read_image(args.image, settings.images.max_pixels)
    net = network(settings)
    from toolbox.nets import Probe

    args.layer = net.spec.layer(args.layer).name  # our name for it, also when given by an alias
    if args.unit is not None:
        net.check_unit(args.layer, args.unit)
    act = Probe(net, [args.layer])(net.fit_input(image, settings.images.fit)).activations[args.layer]
    mean, peak = act.mean(axis=(0, 1)), act.max(axis=(0, 1))
    if args.plot:
        from toolbox.plots import plot_layer_activations

        plot_layer_activations(act, f"{net.name} {args.layer} on {Path(args.image).name}", args.plot, args.unit)
    if args.json:
        print(json.dumps({args.layer: {"shape": list(act.shape), "mean": mean.tolist(), "max": peak.tolist()}}))
        return
    print(f"{args.layer} {act.shape[0]}x{act.shape[1]}x{act.shape[2]} on {args.image}")
    print("unit      mean       max")
    for unit in range(act.shape[2]):
        print(f"{unit:4d} {mean[unit]:9.4f} {peak[unit]:9.4f}")
    if args.plot:
        print(f"wrote {args.plot}")
