"""deepvis examples: where the bundled example photos are (inside the package after a plain
pip install), so the README's commands can name them."""

from __future__ import annotations

import argparse


def add_parser(command) -> None:
    p = command("examples", run, "print the folder of the bundled example photos (chelsea.png, coffee.png, ...)",
                "After a plain `pip install` the photos are inside the package, not in ./examples/.\n"
                "examples:\n"
                "  deepvis examples                   # the folder\n"
                "  deepvis examples --list            # every photo, one path a line\n"
                "  deepvis dream \"$(deepvis examples)/chelsea.png\" -o dream.png", common=False)
    p.add_argument("--list", action="store_true", help="print each photo's path instead of the folder")


def run(args: argparse.Namespace) -> None:
    from toolbox.images import list_images
    from toolbox.settings import bundled

    folder = bundled("examples")
    print("\n".join(str(p) for p in list_images(folder)) if args.list else folder)
