"""deepvis units: optimized images of a layer's units (feature visualization)."""

from __future__ import annotations

import argparse

from toolbox.cli.common import bounded, parse_units, progress, setting_option, settings_of, unit_folder_network


def add_parser(command) -> None:
    p = command("units", run, "optimized images of a layer's units (feature visualization)",
                "writes DIR/<layer>_<unit:04d>.png per unit (maco also <layer>_<unit:04d>_transparency.png),\n"
                "DIR/<layer>_sheet.png and DIR/<layer>_objectives.json;\n"
                "runs add to a folder, also two at once. Ctrl-C keeps every finished batch.\n"
                "examples:\n  deepvis units --layer block9_add --units 0-15 -o units/\n"
                "  deepvis units --layer block9_add --units all   # into the folder the live window reads")
    p.add_argument("--layer", "-l", required=True, help="layer name (see: deepvis layers)")
    p.add_argument("--units", "-u", required=True, metavar="SPEC", help="e.g. 3,17,40-45 or all")
    setting_option(p, ["-o", "--output"], "units.output_dir", metavar="DIR")
    setting_option(p, ["--size"], "units.size", int)
    setting_option(p, ["--steps"], "units.steps", int)
    setting_option(p, ["--preset"], "units.preset")
    setting_option(p, ["--batch"], "units.batch", int)
    p.add_argument("--seed", type=bounded(int, 0), default=0, help="random seed; same seed, same images (default 0)")


def run(args: argparse.Namespace) -> None:
    from toolbox.tfstart import start_tensorflow_quietly

    settings = settings_of(args)
    start_tensorflow_quietly()  # the engine's imports below bring TensorFlow
    from toolbox.optvis.presets import get_preset, steps_of

    u = settings.units
    steps = steps_of(u.preset, u.steps)
    net, folder = unit_folder_network(settings)
    layer = net.spec.layer(args.layer)
    args.layer = layer.name  # ours, also when it was named by an alias
    units = parse_units(args.units, layer.channels)
    from toolbox.assets import render_unit_images
    from toolbox.nets.memory import check_fits

    check_fits(net, u.size, min(u.batch, len(units)), "--size and --batch")
    folder.claim(net.name)  # one network's assets per folder
    with progress(steps * -(-len(units) // u.batch), f"{args.layer}: {len(units)} units") as bar:
        results = render_unit_images(net, args.layer, units, folder, u.preset, u.size, steps, u.batch,
                                     args.seed, on_step=lambda: bar.update(1))
    n = len(results.units)
    maps = f" (with {'its transparency map' if n == 1 else 'their transparency maps'})" if get_preset(
        u.preset).transparency else ""
    print(f"wrote {n} unit image{'s' * (n != 1)}{maps}, {folder.sheet_path(args.layer).name} and "
          f"{folder.objectives_path(args.layer).name} to {folder.root}")
