"""deepvis atlas: a static site of the precomputed assets: every unit on its own page."""

from __future__ import annotations

import argparse
from pathlib import Path

from toolbox.cli.common import network, progress, setting_option, settings_of
from toolbox.errors import UserError


def add_parser(command) -> None:
    p = command("atlas", run, "a static site of the precomputed assets: every unit on its own page",
                "Writes SITE/index.html (the layers), SITE/<layer>/index.html (every unit's optimized image) and\n"
                "SITE/<layer>/<unit>.html (optimized image, top and bottom crops, values, receptive field,\n"
                "neighbours), from the folder deepvis precompute / units / crops fill, for the layers and units\n"
                "with something computed (the index lists the rest). Works from the file system; arrow keys move.\n"
                "examples:\n  deepvis atlas -o atlas/ && xdg-open atlas/index.html\n"
                "  deepvis atlas --model efficientnet_lite0 --assets /shared/atlas -o site/")
    setting_option(p, ["-o", "--output"], "atlas.output_dir", metavar="SITE_DIR")
    p.add_argument("--assets", metavar="DIR", help="the asset folder to read (default: units.output_dir, else where "
                   "deepvis precompute writes for this network)")


def run(args: argparse.Namespace) -> None:
    from toolbox.files import check_output_dir

    settings = settings_of(args)
    if args.assets and not Path(args.assets).is_dir():
        raise UserError(f"asset folder not found: {args.assets}")
    site = check_output_dir(settings.atlas.output_dir, create=False)  # write_atlas makes it
    net = network(settings)
    from toolbox.atlas import write_atlas

    layers = [(name, net.spec.layer(name).channels) for name in net.spec.layer_names]
    fields = {name: net.receptive_field(name) for name in net.spec.layer_names}
    with progress(len(layers), "atlas", "layer") as bar:
        assets = Path(args.assets) if args.assets else settings.unit_images_path(net.name)
        report = write_atlas(net.name, layers, assets, site, on_layer=bar.update, fields=fields,
                             relu=[name for name in net.spec.layer_names if net.ends_in_relu(name)])
    rest = len(layers) - report.layers
    print(f"wrote {report.units} unit pages of {report.layers} layers ({report.unit_images} with optimized images, "
          + (f"{report.nothing_to_show} with nothing to show, " if report.nothing_to_show else "")
          + f"{report.units_with_crops} with crops)" + (f"; {rest} layers with nothing computed are listed on the index"
                                                      if rest else "") + f" to {site}; open {site / 'index.html'}")
