"""deepvis units: optimized images of a layer's units (feature visualization)."""

from __future__ import annotations

import argparse

from toolbox.cli.common import bounded, parse_units, progress, setting_option, settings_of, unit_folder_network


def add_parser(command) -> None:
    p = command("units", run, "optimized images of a layer's units (feature visualization)",
                "writes DIR/<layer>_<unit:04d>.png per unit (maco also <layer>_<unit:04d>_transparency.png),\n"
                "DIR/<layer>_sheet.png and DIR/<layer>_objectives.json;\n"
                "runs add to a folder, also two at once. Ctrl-C keeps every finished batch.\n"
                "Without --size the image side follows the layer (lucid: half a unit's receptive field,\n"
                "64-128 px). A unit with nothing to show (nearly constant, never on, or highest on any\n"
                "plain image, over the example photos and random inputs) is said and gets no image; an\n"
                "image that drives its unit no further than a plain image is said and not written.\n"
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
    from toolbox.optvis.presets import get_preset, unit_recipe

    u = settings.units
    get_preset(u.preset)  # an unknown preset is an error before the network loads
    net, folder = unit_folder_network(settings)
    layer = net.spec.layer(args.layer)
    args.layer = layer.name  # ours, also when it was named by an alias
    units = parse_units(args.units, layer.channels)
    recipe = unit_recipe(net, args.layer, u.preset, u.size, u.steps)
    from toolbox.assets import render_unit_images
    from toolbox.nets.memory import check_fits

    check_fits(net, recipe.size, min(u.batch, len(units)), "--size and --batch")
    from toolbox.assets.quality import example_variation

    variation = example_variation(net, args.layer, units)
    make = [unit for unit in units if not variation[unit].flat]
    folder.claim(net.name)  # one network's assets per folder
    shown = ShownOnly(folder, lambda unit, value: variation[unit].shows_something(value))
    if make:
        steps = recipe.steps
        with progress(steps * -(-len(make) // u.batch), f"{args.layer}: {len(make)} units at {recipe.size} px") as bar:
            render_unit_images(net, args.layer, make, shown, u.preset, recipe.size, steps, u.batch, args.seed,
                               on_step=lambda: bar.update(1), ascent=recipe.ascent(net, args.layer))
    for unit in units:
        v = variation[unit]
        if v.flat:
            print(f"{args.layer}: {v.describe()}; no image made")
        elif unit in shown.dropped:
            print(f"{args.layer}: unit {unit}: its image drives it no further than a plain image does "
                  f"({shown.dropped[unit]:.3g} against {v.plain:.3g}); not written")
    n = len(shown.kept)
    if not n:
        print(f"wrote no unit image to {folder.root}")
        return
    maps = f" (with {'its transparency map' if n == 1 else 'their transparency maps'})" if recipe.preset.transparency \
        else ""
    print(f"wrote {n} unit image{'s' * (n != 1)}{maps}, {folder.sheet_path(args.layer).name} and "
          f"{folder.objectives_path(args.layer).name} to {folder.root}")


class ShownOnly:
    """A unit-image folder as ``render_unit_images`` writes into it, that stores only the images
    that show something: ``shows(unit, value)`` (value: the unit's channel mean on its image,
    known when the batch is recorded). Each batch's images wait until its record, then those
    that show something are saved and recorded, the others dropped ({unit: value}); the sheet
    holds the kept ones. (Until render_unit_images takes such a test itself.)"""

    def __init__(self, folder, shows) -> None:
        self.folder, self.shows = folder, shows
        self.waiting: dict[int, tuple] = {}
        self.kept: list[int] = []
        self.dropped: dict[int, float] = {}
        self._images: dict[int, object] = {}

    def __getattr__(self, name: str):
        return getattr(self.folder, name)

    def save(self, layer: str, unit: int, image, transparency=None):
        self.waiting[unit] = (layer, image, transparency)
        return self.folder.image_path(layer, unit)

    def record(self, model: str, layer: str, results: dict, **details):
        keep = {}
        for unit, value in results.items():
            layer_, image, transparency = self.waiting.pop(unit)
            if self.shows(unit, float(value)):
                self.folder.save(layer_, unit, image, transparency)
                keep[unit] = value
                self.kept.append(unit)
                self._images[unit] = image
            else:
                self.dropped[unit] = float(value)
        return self.folder.record(model, layer, keep, **details) if keep else self.folder.objectives_path(layer)

    def save_sheet(self, layer: str, units, images):
        if self.kept:
            return self.folder.save_sheet(layer, self.kept, [self._images[u] for u in self.kept])
        return self.folder.sheet_path(layer)
