"""deepvis classes: images of classes: what the network thinks a magpie looks like."""

from __future__ import annotations

import argparse

from toolbox.cli.common import bounded, network, progress, setting_option, settings_of


def add_parser(command) -> None:
    p = command("classes", run, "images of classes: what the network thinks a magpie looks like",
                "writes DIR/class_<number>_<label>.png per class and DIR/classes_sheet.png, captioned with the\n"
                "network's probability for its own image; prints whether each image is top-1.\n"
                "examples:\n  deepvis classes --classes \"magpie,tarantula,17\" -o classes/\n"
                "  deepvis classes --classes robin --size 128 --steps 128")
    p.add_argument("--classes", "-c", required=True, metavar="LIST",
                   help="labels (any case, or a word inside one: egyptian) or numbers, separated by commas")
    p.add_argument("-o", "--output", default="classes", metavar="DIR", help="output folder (default: classes)")
    setting_option(p, ["--size"], "classes.size", int)
    setting_option(p, ["--steps"], "classes.steps", int)
    setting_option(p, ["--preset"], "classes.preset")
    setting_option(p, ["--batch"], "classes.batch", int)
    p.add_argument("--seed", type=bounded(int, 0), default=0, help="random seed (default 0)")


def run(args: argparse.Namespace) -> None:
    from toolbox.files import check_output_dir, clean_stray_parts, display_path
    from toolbox.tfstart import start_tensorflow_quietly

    settings = settings_of(args)
    c = settings.classes
    start_tensorflow_quietly()  # the engine's imports below bring TensorFlow
    from toolbox.optvis.presets import get_preset

    get_preset(c.preset)
    check_output_dir(args.output, create=False)  # made once the classes are known to be right
    net = network(settings, needs_classifier="classes")
    from toolbox.nets.memory import check_fits
    from toolbox.outputs.classes import classes_to_files, parse_classes

    classes = parse_classes(net.labels, args.classes)
    clean_stray_parts(check_output_dir(args.output))
    check_fits(net, c.size, min(c.batch, len(classes)), "--size and --batch")
    result, paths = classes_to_files(net, classes, args.output, c, args.seed, progress)
    for index, rank, p in zip(result.classes, result.ranks, result.probabilities):
        verdict = "top-1" if rank == 0 else f"rank {rank + 1}"
        print(f"{index:4d} {net.labels[index]}: {verdict}, p={p[index]:.3f} (top: {net.labels[int(p.argmax())]})")
    print(f"{sum(r == 0 for r in result.ranks)} of {len(classes)} images are top-1 for {net.name}; "
          f"wrote {len(paths) - 1} images and {paths[-1].name} to {display_path(args.output)}")
