"""deepvis predict: print the top classes for one or more images."""

from __future__ import annotations

import argparse
import logging

from toolbox.cli.common import BadInputs, bounded, classes_line, image_inputs, setting_option, settings_of
from toolbox.errors import UserError

log = logging.getLogger("toolbox.cli")


def add_parser(command) -> None:
    p = command("predict", run, "print the top classes for one or more images",
                "an unreadable image is skipped with a warning (and counted at the end); the run fails only\n"
                "when no input could be read, or at the first bad one with --strict.\n"
                "example: deepvis predict examples/chelsea.png examples/coffee.png --top 3")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="jpg, png, bmp or webp files, or folders of them")
    p.add_argument("--top", type=bounded(int, 1, 1000), default=5, help="how many classes to print (default 5)")
    p.add_argument("--strict", action="store_true", help="stop with exit code 2 at the first unreadable image")
    setting_option(p, ["--max-pixels"], "images.max_pixels", int)


def run(args: argparse.Namespace) -> None:
    from toolbox.files import display_path
    from toolbox.images import read_image
    from toolbox.library import load

    paths = image_inputs(args.images)
    settings = settings_of(args)
    net = load(settings=settings, needs_classifier="predict")
    bad, done = BadInputs(args.strict or len(paths) == 1), 0
    for path in paths:
        try:
            image = read_image(path, settings.images.max_pixels, needed_side=net.input_size)
        except UserError as e:
            bad.skip(e)
            continue
        print(f"{display_path(path)}: {classes_line(list(net.predict(image, args.top)))}", flush=True)
        done += 1
    if bad.count:
        log.warning("%d of %d images could not be read", bad.count, len(paths))
    if not done:
        raise UserError(f"none of the {len(paths)} inputs could be read")
