"""deepvis circuit: a unit's strongest inputs from an earlier layer, over one image or a folder."""

from __future__ import annotations

import argparse
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from toolbox.cli.common import BadInputs, bounded, image_inputs, progress, setting_option, settings_of
from toolbox.errors import UserError

log = logging.getLogger("toolbox.cli")


def add_parser(command) -> None:
    p = command("circuit", run, "how a unit is built: its strongest inputs from an earlier layer",
                "An input's contribution is activation x gradient summed over space: for each channel of\n"
                "the --from layer (default: the offered layer before --layer), how much it adds to the unit's\n"
                "max (its value at its strongest position, before its layer's ReLU where it has one; exact on\n"
                "linear paths, a first-order\n"
                "estimate through ReLUs). Over a folder, the mean over its images. share = contribution /\n"
                "the sum of every channel's absolute contribution. An unreadable image in a folder is skipped\n"
                "with a warning.\n"
                "examples:\n"
                "  deepvis circuit examples/chelsea.png --layer block10_add --unit 17\n"
                "  deepvis circuit ~/photos --layer block12_add --unit 3 --from block9_add --json\n"
                "  deepvis circuit examples --layer block9_add --unit 40 -o circuit.png")
    p.add_argument("images", nargs="+", metavar="IMAGE|FOLDER", help="images, or folders of them")
    p.add_argument("--layer", "-l", required=True, help="layer of the unit (see: deepvis layers)")
    p.add_argument("--unit", "-u", required=True, type=bounded(int, 0), help="unit (channel) of --layer")
    p.add_argument("--from", dest="source", metavar="LAYER",
                   help="the earlier layer whose channels are measured (default: the offered layer before)")
    setting_option(p, ["--top", "-k"], "circuit.top", int)
    setting_option(p, ["--batch"], "circuit.batch", int)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("-o", "--output", metavar="CHART.png", help="also draw a chart (.png, .svg or .pdf), with "
                   "each input's optimized image or top crop when the unit-image folder has one")
    p.add_argument("--strict", action="store_true", help="stop with exit code 2 at the first unreadable image")


def _batches(paths: list[Path], size: int, read, bad: BadInputs):
    """Lists of images as read, ``size`` at a time, the next batch read on threads while the
    network works on this one."""
    def load(path: Path):
        try:
            return read(path)
        except UserError as e:
            return e

    with ThreadPoolExecutor(2) as pool:
        pending = [pool.submit(load, p) for p in paths[:size]]
        for start in range(0, len(paths), size):
            done = [f.result() for f in pending]
            pending = [pool.submit(load, p) for p in paths[start + size:start + 2 * size]]
            batch = []
            for item in done:
                if isinstance(item, UserError):
                    bad.skip(item)
                else:
                    batch.append(item)
            yield batch, len(done)


def run(args: argparse.Namespace) -> None:
    from toolbox.files import check_output_file, display_path
    from toolbox.images import read_image

    if args.output:
        check_output_file(args.output, (".png", ".svg", ".pdf"))
    paths = image_inputs(args.images)
    settings = settings_of(args)
    c = settings.circuit
    from toolbox.library import circuit as measure
    from toolbox.library import load

    lib = load(settings=settings)
    net = lib.network
    from toolbox.nets.memory import check_fits
    from toolbox.optvis.circuits import CircuitTracer

    layer, _ = lib.unit(f"{args.layer}:{args.unit}")
    tracer = lib.engine(("tracer",), lambda: CircuitTracer(net))  # the one the library's call uses
    source = tracer.check_source(layer, args.source)  # mistakes before the slow part
    check_fits(net, net.spec.input_size, min(c.batch, len(paths)), "--batch")
    bad = BadInputs(args.strict or len(paths) == 1)

    def read(path: Path):
        return read_image(path, settings.images.max_pixels, needed_side=net.spec.input_size)

    with progress(len(paths), "circuit", "image") as bar:
        def photos():  # read on threads, a batch ahead; unreadable ones said and skipped
            for batch, looked in _batches(paths, c.batch, read, bad):
                yield from batch
                bar.update(looked)

        try:
            circuit = measure(lib, photos(), f"{layer}:{args.unit}", source=source, outputs=False).inputs
        except UserError:
            if bad.count == len(paths):
                raise UserError(f"none of the {len(paths)} inputs could be read") from None
            raise
    if bad.count:
        log.warning("%d of %d images could not be read", bad.count, len(paths))
    excitatory, inhibitory = circuit.links(c.top), circuit.links(c.top, inhibitory=True)
    if args.output:
        from toolbox.plots import plot_circuit

        plot_circuit(circuit, excitatory, inhibitory, _thumbnails(settings, net.name, source, excitatory + inhibitory),
                     f"{net.name} {layer} unit {args.unit}", args.output, net.relu_side(layer, True))
    if args.json:
        def listed(links):
            return [{"unit": k.unit, "contribution": k.contribution, "share": k.share} for k in links]

        print(json.dumps({"model": net.name, "layer": layer, "unit": args.unit, "from": source,
                          "images": circuit.images, "value": circuit.value, "total": circuit.total,
                          "excitatory": listed(excitatory), "inhibitory": listed(inhibitory)}))
    else:
        over = "1 image" if circuit.images == 1 else f"the mean over {circuit.images} images"
        print(f"{net.name} {layer} unit {args.unit}: max {circuit.value:.4g}{net.relu_side(layer, True)}, {over}")
        print(f"inputs from {source}: contributions add up to {circuit.total:.4g}")
        for title, links in (("excitatory", excitatory), ("inhibitory", inhibitory)):
            print(f"  {title:<11} unit  contribution   share")
            for link in links:
                print(f"  {'':<11}{link.unit:5d} {link.contribution:13.4g} {link.share:7.1%}")
            if not links:
                print(f"  {'':<11} none")
    if args.output:
        print(f"wrote {display_path(args.output)}")


def _thumbnails(settings, model: str, layer: str, links) -> list:
    """Each linked unit's optimized image or top crop from the network's unit-image folder
    (None where there is none, or the folder holds another network's assets)."""
    from toolbox.assets.crops import CropStore
    from toolbox.assets.thumbnails import unit_thumbnail
    from toolbox.assets.unit_images import UnitImageFolder

    folder = UnitImageFolder(settings.unit_images_path(model))
    if folder.held_model() not in (None, model):
        return [None] * len(links)
    store = CropStore(folder.root)
    return [unit_thumbnail(folder, store, layer, link.unit) for link in links]
