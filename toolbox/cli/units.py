"""deepvis units: optimized images of a layer's units (feature visualization)."""

from __future__ import annotations

import argparse

from toolbox.cli.common import bounded, progress, setting_option, settings_of, unit_folder_network


def add_parser(command) -> None:
    p = command("units", run, "optimized images of a layer's units (feature visualization)",
                "writes DIR/<layer>_<unit:04d>.png per unit (maco also <layer>_<unit:04d>_transparency.png),\n"
                "DIR/<layer>_sheet.png and DIR/<layer>_objectives.json;\n"
                "runs add to a folder, also two at once. Ctrl-C keeps every finished batch.\n"
                "Without --size the image side follows the layer (lucid: half a unit's receptive field,\n"
                "64-128 px). A unit with nothing to show (nearly constant, never on, or highest on any\n"
                "plain image, over the example photos and random inputs) is said and gets no image; an\n"
                "image that drives its unit no further than a plain image is said and not written. The\n"
                "objectives file records why for each (\"said\"); the window and the atlas say the same.\n"
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
    from toolbox.library import units as make_units
    from toolbox.optvis.presets import get_preset

    u = settings.units
    preset = get_preset(u.preset)  # an unknown preset is an error before the network loads
    net, folder = unit_folder_network(settings)
    made = make_units(net, args.layer, args.units, seed=args.seed, folder=folder, progress=progress)
    layer = made.layer  # ours, also when it was named by an alias
    for why in made.said.values():
        print(f"{layer}: {why}")
    n = len(made.units)
    if not n:
        print(f"wrote no unit image to {folder.root}")
        return
    maps = f" (with {'its transparency map' if n == 1 else 'their transparency maps'})" if preset.transparency else ""
    print(f"wrote {n} unit image{'s' * (n != 1)}{maps}, {folder.sheet_path(layer).name} and "
          f"{folder.objectives_path(layer).name} to {folder.root}")
