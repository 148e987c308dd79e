"""deepvis dream: DeepDream: amplify what a layer already sees in your photo."""

from __future__ import annotations

import argparse
from pathlib import Path

from toolbox.cli.common import bounded, progress, setting_option, settings_of
from toolbox.settings import parse_layer_weights


def add_parser(command) -> None:
    p = command("dream", run, "DeepDream: amplify what a layer already sees in your photo",
                "examples:\n  deepvis dream examples/chelsea.png -o dream.png\n"
                "  deepvis dream photo.jpg -o out.png --layers block9_add:1,block12_add:0.5 --octaves 5\n"
                "  deepvis dream photo.jpg -o out.png --zoom-frames 60 --gif   # also out.mp4, out.gif\n"
                "Ctrl-C stops it; a zoom video keeps the frames made so far.")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("-o", "--output", required=True, help="output image (same size as the input)")
    setting_option(p, ["--layers"], "dream.layers")
    setting_option(p, ["--octaves"], "dream.octaves", int)
    setting_option(p, ["--octave-scale"], "dream.octave_scale", float)
    setting_option(p, ["--steps"], "dream.steps", int)
    setting_option(p, ["--step-size"], "dream.step_size", float)
    setting_option(p, ["--tile"], "dream.tile", int)
    setting_option(p, ["--zoom"], "dream.zoom", float)
    setting_option(p, ["--objective"], "dream.objective")
    p.add_argument("--guide", metavar="IMAGE", help="dream towards the features of this image instead")
    p.add_argument("--seed", type=bounded(int, 0), default=0, help="random seed (default 0)")
    p.add_argument("--zoom-frames", type=bounded(int, 0, 100_000), default=0, metavar="N",
                   help="also write OUTPUT.mp4: N frames, each dreamed (one octave) from the zoomed previous one")
    p.add_argument("--gif", action="store_true", help="with --zoom-frames, also write OUTPUT.gif")


def run(args: argparse.Namespace) -> None:
    from toolbox.files import check_output_file, clean_stray_parts
    from toolbox.images import IMAGE_SUFFIXES, read_image

    check_output_file(args.output, IMAGE_SUFFIXES)
    if args.zoom_frames:
        check_output_file(str(Path(args.output).with_suffix(".mp4")), (".mp4",))
        if args.gif:
            check_output_file(str(Path(args.output).with_suffix(".gif")), (".gif",))
    clean_stray_parts(Path(args.output).parent)
    settings = settings_of(args)
    image = read_image(args.image, settings.images.max_pixels)
    guide_image = read_image(args.guide, settings.images.max_pixels) if args.guide else None
    layers = parse_layer_weights(settings.dream.layers) if settings.dream.layers else None
    from toolbox.library import dream, load
    from toolbox.outputs.dream import DreamFiles, dream_steps

    net = load(settings=settings)
    d = settings.dream
    with progress(dream_steps(net.network, image, d, args.zoom_frames), "dream") as bar, \
            DreamFiles(args.output, args.zoom_frames, d.fps, args.gif) as files:
        dream(net, image, layers, guide=guide_image, zoom_frames=args.zoom_frames, on_frame=files.write,
              seed=args.seed, on_step=lambda *_: bar.update(1))
