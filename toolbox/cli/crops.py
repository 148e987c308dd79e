"""deepvis crops: natural exemplars: each unit's top (and bottom) image crops."""

from __future__ import annotations

import argparse
import logging

from toolbox.cli.common import BadInputs, parse_layers, progress, setting_option, settings_of, unit_folder_network
from toolbox.errors import UserError

log = logging.getLogger("toolbox.cli")


def add_parser(command) -> None:
    p = command("crops", run, "natural exemplars: each unit's top (and bottom) image crops",
                "For every unit of the chosen layers, keeps the K images where it fires most (and, for signed\n"
                "layers, least), with the crop of each under the unit's receptive field. Runs add to what is\n"
                "stored (images seen before, by content, are skipped); Ctrl-C loses at most the current\n"
                "chunk (crops.chunk images), a kill at most two. The live window shows them in its crops pane;\n"
                "DIR/<layer>_crops.png shows the top crops of each layer's strongest units (one row per unit).\n"
                "examples:\n  deepvis crops --images ~/photos\n"
                "  deepvis crops --images val/ clips/lab.mp4 more.txt --layers block9_add,block12_add --top 16")
    p.add_argument("--images", nargs="+", required=True, metavar="SRC",
                   help="folders (recursive), video files, text files listing paths, images")
    p.add_argument("--layers", help="a,b or all (default: every layer the network offers)")
    setting_option(p, ["--top", "-k"], "crops.top", int)
    setting_option(p, ["--side"], "crops.side", int)
    setting_option(p, ["--batch"], "crops.batch", int)
    setting_option(p, ["--every"], "crops.every", int)
    setting_option(p, ["-o", "--output"], "units.output_dir", metavar="DIR")
    p.add_argument("--strict", action="store_true", help="stop with exit code 2 at the first unreadable image")
    p.add_argument("--backprop", choices=("gradient", "guided", "deconv"),
                   help="also store, for every top crop, the same crop of its image's map by this rule (what in the "
                        "crop made the unit fire; one backward pass per unit: slow for whole networks)")


def run(args: argparse.Namespace) -> None:
    from toolbox.tfstart import start_tensorflow_quietly

    settings = settings_of(args)
    start_tensorflow_quietly()  # crop_job brings TensorFlow
    from toolbox.assets.crop_job import count_images, find_sources
    from toolbox.library import crops

    sources = find_sources(args.images)  # a missing source fails before the network loads
    lib, folder = unit_folder_network(settings)
    net = lib.network
    c = settings.crops
    layers = parse_layers(args.layers, net)
    folder.claim(net.name)  # one network's assets per folder
    units = sum(net.spec.layer(n).channels for n in layers)
    bad = BadInputs(args.strict)
    with progress(count_images(sources, c.every), f"crops of {len(layers)} layers", "img") as bar:
        found = crops(lib, args.images, layers, folder=folder.root, on_image=bar.update, on_bad=bad.skip)
    store, report = found[layers[0]].store, found[layers[0]].run
    if not report.images and not report.skipped:
        raise UserError(f"none of the {report.bad} images could be read")
    if args.backprop:
        from toolbox.assets.crop_job import backprop_crops

        with progress(units, f"{args.backprop} crops", "unit") as bar:
            made = backprop_crops(net, layers=layers, store=store, rule=args.backprop,
                                  max_pixels=settings.images.max_pixels, fit=settings.images.fit, on_unit=bar.update)
        print(f"made {made} {args.backprop} crops")
    from toolbox.assets.crop_sheets import write_crop_sheets
    from toolbox.files import display_path

    sheets = write_crop_sheets(store, layers, folder.root)
    if len(sheets) == 1:
        where = f"; to look at: {display_path(sheets[0])}"
    else:
        named = ", ".join(p.name for p in sheets[:3]) + (f" and {len(sheets) - 3} more" if len(sheets) > 3 else "")
        where = f"; to look at: {len(sheets)} sheets in {display_path(folder.root)}: {named}" if sheets else ""
    seen = len(store.index().get("images", {}))
    if 0 < seen < c.top:
        log.warning("only %d image%s looked at in all: each unit has at most %d crops of the %d asked (crops.top); "
                    "give more images", seen, "s" * (seen != 1), seen, c.top)
    rate = report.images / max(report.seconds, 1e-9)
    print(f"looked at {report.images} images ({rate:.1f}/s), skipped {report.skipped} seen before"
          + (f", {report.bad} unreadable" if report.bad else "") + f"; top {min(c.top, seen or c.top)} crops of "
          f"{units} units in {display_path(store.dir)}" + where)
