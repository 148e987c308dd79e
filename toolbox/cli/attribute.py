"""deepvis attribute: which pixels of an image drive a unit or a class (gradient maps)."""

from __future__ import annotations

import argparse
from pathlib import Path

from toolbox.cli.common import bounded, setting_option, settings_of
from toolbox.errors import UserError


def add_parser(command) -> None:
    p = command("attribute", run, "which pixels of an image drive a unit or a class (gradient maps)",
                "methods: guided (guided backprop, the default: the sharpest picture), gradient, deconv, gradcam,\n"
                "smoothgrad (a noise tunnel over --base), integrated (from a black image). Writes the map and\n"
                "OUT_overlay.png, its heat over the input (Grad-CAM's heat, else where the map's evidence lies).\n"
                "Prints the unit's or class's score. The maps have the photo's size: the part the network\n"
                "sees (its input is the photo fitted to a square) carries the map, the rest is blank.\n"
                "examples:\n"
                "  deepvis attribute examples/chelsea.png --class 'egyptian cat' -o cat.png\n"
                "  deepvis attribute examples/coffee.png --class espresso --method gradcam -o cup.png\n"
                "  deepvis attribute examples/chelsea.png --layer block9_add --unit 17 --filter norm-blur")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--layer", "-l", help="layer of the unit to explain (see: deepvis layers)")
    p.add_argument("--unit", "-u", type=bounded(int, 0), help="unit (channel) of --layer")
    p.add_argument("--class", "-c", dest="klass", metavar="NAME_OR_ID",
                   help="class to explain (its score before softmax): a label (any case, or a word inside one: "
                   "egyptian) or its number")
    setting_option(p, ["--method"], "attribute.method")
    setting_option(p, ["--filter"], "attribute.filter")
    setting_option(p, ["--unit-value"], "attribute.unit_value")
    p.add_argument("--cam-layer", metavar="LAYER", help="gradcam: the layer whose maps are weighted (default: "
                   "for a class the last layer, for a unit the layer before its own)")
    setting_option(p, ["--base"], "attribute.smooth_base")
    setting_option(p, ["--samples"], "attribute.samples", int)
    setting_option(p, ["--noise"], "attribute.noise", float)
    setting_option(p, ["--steps"], "attribute.steps", int)
    setting_option(p, ["--batch"], "attribute.batch", int)
    p.add_argument("-o", "--output", metavar="OUT.png", help="the map (default: IMAGE_METHOD.png here)")
    p.add_argument("--seed", type=bounded(int, 0), default=0, help="smoothgrad's noise seed (default 0)")


def run(args: argparse.Namespace) -> None:
    from toolbox.files import check_output_file, clean_stray_parts, display_path, sibling_path
    from toolbox.images import IMAGE_SUFFIXES, read_image, write_image

    if (args.layer is None) == (args.klass is None):
        raise UserError("say what to explain: --layer L --unit U, or --class NAME_OR_ID (one of the two)")
    if (args.layer is None) != (args.unit is None):
        raise UserError("--layer and --unit go together: --layer L --unit U")
    settings = settings_of(args)
    a = settings.attribute
    if args.cam_layer and a.method != "gradcam":
        raise UserError(f"--cam-layer is for --method gradcam, not {a.method}")
    output = args.output or f"{Path(args.image).stem}_{a.method}.png"
    check_output_file(output, IMAGE_SUFFIXES)
    check_output_file(sibling_path(output, "overlay"), IMAGE_SUFFIXES)
    clean_stray_parts(Path(output).parent)
    image = read_image(args.image, settings.images.max_pixels)
    from toolbox.library import attribute, load

    net = load(settings=settings, needs_classifier="attribute --class" if args.klass is not None else None)
    wanted = args.klass if args.klass is not None else f"{net.network.spec.layer(args.layer).name}:{args.unit}"
    made = attribute(net, image, wanted, cam_layer=args.cam_layer, seed=args.seed)  # the map at the photo's size
    write_image(output, made.image)
    write_image(sibling_path(output, "overlay"), made.overlay)
    written = [Path(output), sibling_path(output, "overlay")]
    result, target = made.attribution, made.attribution.target
    net = net.network
    if target.is_class:
        what = f"class {target.index} ({net.labels[target.index]}): score {result.score:.4f} before softmax"
    else:
        side = net.relu_side(target.layer, True)
        what = f"{target.layer} unit {target.index}: {target.value} {result.score:.4f}{side}"
    extra = f"; Grad-CAM at {result.cam_layer}" if result.cam_layer else ""
    if result.completeness_gap is not None:  # how far sum(map) is from score(image) - score(black)
        difference = float(result.map.sum()) - result.completeness_gap
        share = 100 * abs(result.completeness_gap) / max(abs(difference), 1e-12)
        extra += f"; completeness gap {result.completeness_gap:.4g} ({share:.2g}% of the score's rise from black)"
    print(what + extra)
    print(f"wrote {' and '.join(display_path(p) for p in written)}")
