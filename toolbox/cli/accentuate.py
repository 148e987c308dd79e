"""deepvis accentuate: feature accentuation: what a unit sees in this photo, made stronger."""

from __future__ import annotations

import argparse
from pathlib import Path

from toolbox.cli.common import bounded, progress, setting_option, settings_of


def add_parser(command) -> None:
    p = command("accentuate", run, "feature accentuation: what a unit sees in this photo, made stronger",
                "starts from the photo (fitted to a square) and raises the unit's mean over the layer while a\n"
                "penalty on the pixel distance to the photo keeps the picture close to it (--weight); prints\n"
                "the unit before and after and the PSNR to the photo.\n"
                "example:\n  deepvis accentuate examples/chelsea.png --layer block9_add --unit 96 -o cat_96.png")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--layer", "-l", required=True, help="layer name (see: deepvis layers)")
    p.add_argument("--unit", "-u", required=True, type=bounded(int, 0), help="unit (channel) of --layer")
    p.add_argument("-o", "--output", metavar="OUT.png", help="the image (default: IMAGE_LAYER_UNIT.png here)")
    setting_option(p, ["--size"], "accentuate.size", int)
    setting_option(p, ["--steps"], "accentuate.steps", int)
    setting_option(p, ["--weight"], "accentuate.weight", float)
    p.add_argument("--seed", type=bounded(int, 0), default=0, help="random seed of the transforms (default 0)")


def run(args: argparse.Namespace) -> None:
    from toolbox.files import check_output_file, clean_stray_parts, display_path
    from toolbox.images import IMAGE_SUFFIXES, read_image, write_image

    output = args.output or f"{Path(args.image).stem}_{args.layer}_{args.unit}.png"
    check_output_file(output, IMAGE_SUFFIXES)
    clean_stray_parts(Path(output).parent)
    settings = settings_of(args)
    image = read_image(args.image, settings.images.max_pixels)
    from toolbox.library import accentuate, load

    net = load(settings=settings)
    layer = net.network.spec.layer(args.layer).name  # an alias names the layer
    net.network.check_unit(layer, args.unit)
    a = settings.accentuate
    with progress(a.steps, f"{layer} unit {args.unit}") as bar:
        made = accentuate(net, image, f"{layer}:{args.unit}", seed=args.seed,
                          on_step=lambda taken: bar.update(taken - bar.n))
    write_image(output, made.array)  # the photo's size: the part the network sees, accentuated
    v = made.values
    print(f"{layer} unit {args.unit}: mean {v['before']:.4g} on the photo, {v['after']:.4g} accentuated"
          f"{net.network.relu_side(layer, True)}; {v['psnr']:.1f} dB PSNR from the photo")
    print(f"wrote {display_path(output)}")
