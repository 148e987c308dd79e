"""deepvis fool: fooling images: an invisible change that flips the class, or noise the ."""

from __future__ import annotations

import argparse
from pathlib import Path

from toolbox.cli.common import bounded, classes_line, fraction, network, progress, setting_option, settings_of
from toolbox.errors import UserError


def add_parser(command) -> None:
    p = command("fool", run, "fooling images: an invisible change that flips the class, or noise the "
                "network is sure of",
                "changes the photo, at its own size, by at most --epsilon per pixel value until the network\n"
                "(fitting it to its input as it fits any photo) predicts --target; writes OUT (lossless: .png or\n"
                ".bmp) and OUT_change.png (the change, amplified around grey), and prints the top-5 before and\n"
                "after, the latter read back from OUT and fitted as predict fits it.\n"
                "--from-noise instead makes an image from noise that the network assigns to the target.\n"
                "examples:\n  deepvis fool examples/chelsea.png --target robin -o robin_cat.png\n"
                "  deepvis fool --from-noise --target tarantula -o tarantula_noise.png")
    p.add_argument("image", metavar="IMAGE", nargs="?", help="the photo to change (not with --from-noise)")
    p.add_argument("--target", "-t", required=True, metavar="CLASS",
                   help="a label (any case, or a word inside one: robin) or its number")
    p.add_argument("--from-noise", action="store_true", help="start from noise instead of a photo")
    p.add_argument("-o", "--output", metavar="OUT.png", help="default: IMAGE_fooled.png (noise_fooled.png) here")
    setting_option(p, ["--epsilon"], "fool.epsilon", fraction)
    setting_option(p, ["--confidence"], "fool.confidence", float)
    setting_option(p, ["--steps"], "fool.steps", int)
    setting_option(p, ["--amplify"], "fool.amplify", float)
    p.add_argument("--seed", type=bounded(int, 0), default=0, help="--from-noise: the noise's seed (default 0)")


def run(args: argparse.Namespace) -> None:
    from toolbox.files import check_output_file, clean_stray_parts, display_path, sibling_path
    from toolbox.images import read_image

    if args.from_noise == (args.image is not None):
        raise UserError("give an IMAGE to change, or --from-noise (one of the two)")
    stem = "noise" if args.from_noise else Path(args.image).stem
    output = args.output or f"{stem}_fooled.png"
    lossless = (".png", ".bmp")  # a lossy format would undo a change of a few levels
    check_output_file(output, lossless)
    if not args.from_noise:
        check_output_file(sibling_path(output, "change"), lossless)
    clean_stray_parts(Path(output).parent)
    settings = settings_of(args)
    image = None if args.from_noise else read_image(args.image, settings.images.max_pixels)
    net = network(settings, needs_classifier="fool")
    from toolbox.nets.probe import top_classes
    from toolbox.outputs.attribution import class_index
    from toolbox.outputs.fool import fool_to_files

    target = class_index(net.labels, args.target)
    report = fool_to_files(net, image, target, output, settings.fool, args.seed, progress, settings.images.fit,
                           settings.images.max_pixels)
    if report.before is not None:
        print(f"before: {classes_line(top_classes(report.before, net.labels))}")
    print(f"after (read back from {display_path(output)}): {classes_line(top_classes(report.after, net.labels))}")
    change = "" if report.psnr is None else (f"; PSNR {report.psnr:.1f} dB against the photo, largest change "
                                             f"{report.max_change}/255")
    goal = settings.fool.confidence
    verdict = "reached" if report.reached >= goal else "NOT reached"
    print(f"target {target} ({net.labels[target]}): p={report.reached:.4f}, {verdict} {goal} in {report.steps} "
          f"steps{change}")
    print(f"wrote {' and '.join(display_path(p) for p in report.paths)}")
