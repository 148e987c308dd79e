"""deepvis invert: feature inversion: what a layer still knows about a photo."""

from __future__ import annotations

import argparse
from pathlib import Path

from toolbox.cli.common import bounded, network, progress, setting_option, settings_of


def add_parser(command) -> None:
    p = command("invert", run, "feature inversion: what a layer still knows about a photo",
                "for each layer an image whose features there match the photo's (the photo is fitted to the\n"
                "network's input first); writes OUT_<layer>.png per layer and OUT, a sheet of the photo and the\n"
                "inversions, shallow to deep. Prints each layer's relative feature error ||f(x)-f(photo)||/||f(photo)||.\n"
                "example:\n  deepvis invert examples/chelsea.png --layers stem_relu,block5_project_bn,block9_add -o inv.png")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--layers", "-l", required=True, help="layers, separated by commas (see: deepvis layers)")
    p.add_argument("-o", "--output", metavar="OUT.png", help="the sheet (default: IMAGE_invert.png here)")
    setting_option(p, ["--steps"], "invert.steps", int)
    setting_option(p, ["--tv"], "invert.tv", float)
    p.add_argument("--seed", type=bounded(int, 0), default=0, help="random seed (default 0)")


def run(args: argparse.Namespace) -> None:
    from toolbox.files import check_output_file, clean_stray_parts, display_path
    from toolbox.images import read_image

    output = args.output or f"{Path(args.image).stem}_invert.png"
    check_output_file(output, (".png", ".bmp", ".jpg", ".jpeg", ".webp"))
    clean_stray_parts(Path(output).parent)
    settings = settings_of(args)
    image = read_image(args.image, settings.images.max_pixels)
    net = network(settings)
    from toolbox.outputs.invert import invert_to_files, layers_in_order

    layers = layers_in_order(net, args.layers)
    photo = net.fit_input(image, settings.images.fit)
    inversions, paths = invert_to_files(net, photo, layers, output, settings.invert, args.seed, progress)
    for inv in inversions:
        print(f"{inv.layer}: relative feature error {inv.relative_error:.4f}")
    print(f"wrote {', '.join(display_path(p) for p in paths)}")
