"""The `deepvis` command: argparse -> settings -> one call into the toolbox.

A UserError anywhere below becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Callable, Sequence

from toolbox.errors import UserError

DESCRIPTION = """\
deepvis: see what a convolutional network has learned.

Networks (--model): efficientnet_lite0 (real ImageNet weights, offline), efficientnet_lite2,
inception_v3 (needs its ImageNet weights: --weights FILE, Keras' cache, or internet),
a spec of your own in models/, or auto (the default: inception_v3 when its weights are
available, else efficientnet_lite0).
"""


def _common(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("common options")
    g.add_argument("--model", "-m", help="network name or spec file (default: from settings, 'auto')")
    g.add_argument("--weights", help="weights file for inception_v3 or a keras_file spec")
    g.add_argument("--settings", help="settings YAML (default: ./settings.yaml when present)")


def _settings(args: argparse.Namespace):
    from toolbox.settings import load_settings

    path = args.settings
    if path is None and os.path.isfile("settings.yaml"):
        path = "settings.yaml"
    return load_settings(path, model=args.model, weights=args.weights)


def _network(settings):
    """Start TensorFlow (quietly) and load the network the settings name."""
    from toolbox.tfstart import start_tensorflow_quietly

    start_tensorflow_quietly()
    from toolbox.nets import load_network

    return load_network(settings)


def _read(path: str, settings):
    from toolbox.images import read_image

    return read_image(path, settings.images.max_pixels)


def cmd_layers(args: argparse.Namespace) -> None:
    net = _network(_settings(args))
    import keras

    size = net.spec.input_size
    shapes = net.submodel(net.spec.layer_names)(keras.Input((size, size, 3)))
    rows = [{"name": n, "shape": [int(d) for d in shapes[n].shape[1:]]} for n in net.spec.layer_names]
    if args.json:
        print(json.dumps(rows))
        return
    print(f"{net.name}: {len(rows)} layers at {size}x{size} input")
    for r in rows:
        h, w, c = r["shape"]
        print(f"  {r['name']:<22} {h:>4} x {w:<4} x {c:>5}")


def cmd_predict(args: argparse.Namespace) -> None:
    from toolbox.images import list_images

    paths = [f for p in args.images for f in (list_images(p) if os.path.isdir(p) else [p])]
    settings = _settings(args)
    images = [(path, _read(path, settings)) for path in paths]  # bad files fail before the slow start
    net = _network(settings)
    from toolbox.nets import Probe

    probe = Probe(net, [])
    for path, image in images:
        top = probe(net.fit_input(image, settings.images.fit)).top(net.labels, args.top)
        print(f"{path}: " + ", ".join(f"{label} {p:.3f}" for label, p in top))


def cmd_activations(args: argparse.Namespace) -> None:
    settings = _settings(args)
    image = _read(args.image, settings)
    net = _network(settings)
    from toolbox.nets import Probe

    net.spec.layer(args.layer)
    image = net.fit_input(image, settings.images.fit)
    act = Probe(net, [args.layer])(image).activations[args.layer]
    mean, peak = act.mean(axis=(0, 1)), act.max(axis=(0, 1))
    if args.json:
        print(json.dumps({args.layer: {"shape": list(act.shape), "mean": mean.tolist(), "max": peak.tolist()}}))
        return
    print(f"{args.layer} {act.shape[0]}x{act.shape[1]}x{act.shape[2]} on {args.image}")
    print("unit      mean       max")
    for unit in range(act.shape[2]):
        print(f"{unit:4d} {mean[unit]:9.4f} {peak[unit]:9.4f}")


def _progress(total: int, what: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=what, unit="step", file=sys.stderr, dynamic_ncols=True, leave=True)


def parse_layer_weights(text: str) -> dict[str, float]:
    """'a:1,b:0.5,c' -> {'a': 1.0, 'b': 0.5, 'c': 1.0}."""
    weights = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, weight = part.partition(":")
        try:
            weights[name.strip()] = float(weight) if weight else 1.0
        except ValueError:
            raise UserError(f"bad layer weight '{part}' (use name:weight, e.g. block9_add:0.5)") from None
    if not weights:
        raise UserError("--layers needs at least one layer name")
    return weights


def parse_units(text: str, channels: int) -> list[int]:
    """'3,17,40-45' or 'all' -> sorted unit indices, each checked against ``channels``."""
    if text.strip() == "all":
        return list(range(channels))
    units: set[int] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            lo, _, hi = part.partition("-")
            units.update(range(int(lo), int(hi or lo) + 1))
        except ValueError:
            raise UserError(f"bad unit spec '{part}' (use e.g. 3,17,40-45 or all)") from None
    if not units:
        raise UserError("--units selects no unit")
    bad = [u for u in sorted(units) if not 0 <= u < channels]
    if bad:
        raise UserError(f"unit {bad[0]} is out of range for this layer (0..{channels - 1})")
    return sorted(units)


def _check_output(path: str, suffixes: tuple[str, ...]) -> None:
    if os.path.splitext(path)[1].lower() not in suffixes:
        raise UserError(f"output {path} must end in one of: {', '.join(suffixes)}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UserError(f"output folder does not exist: {folder}")


def cmd_dream(args: argparse.Namespace) -> None:
    from toolbox.images import IMAGE_SUFFIXES

    _check_output(args.output, IMAGE_SUFFIXES)
    settings = _settings(args)
    image = _read(args.image, settings)
    guide_image = _read(args.guide, settings) if args.guide else None
    net = _network(settings)
    from toolbox.assets.jobs import dream_to_files

    d = settings.dream
    layers = parse_layer_weights(args.layers or d.layers) if (args.layers or d.layers) else None
    dream_to_files(net, image, args.output, layers=layers, guide_image=guide_image,
               octaves=_pick(args.octaves, d.octaves), octave_scale=_pick(args.octave_scale, d.octave_scale),
               steps=_pick(args.steps, d.steps), step_size=_pick(args.step_size, d.step_size),
               tile=_pick(args.tile, d.tile), seed=args.seed, zoom_frames=args.zoom_frames, zoom=d.zoom,
               fps=d.fps, gif=args.gif, progress=_progress)


def cmd_units(args: argparse.Namespace) -> None:
    settings = _settings(args)
    net = _network(settings)
    from toolbox.assets import UnitImageFolder, render_unit_images
    from toolbox.optvis import get_preset

    u = settings.units
    channels = net.spec.layer(args.layer).channels
    units = parse_units(args.units, channels)
    preset = _pick(args.preset, u.preset)
    get_preset(preset)
    folder = UnitImageFolder(args.output or settings.unit_images_path(net.name))
    steps, batch = _pick(args.steps, u.steps), max(1, _pick(args.batch, u.batch))
    with _progress(steps * -(-len(units) // batch), f"{args.layer}: {len(units)} units") as bar:
        results = render_unit_images(net, args.layer, units, folder, preset, _pick(args.size, u.size), steps,
                                     batch, args.seed, on_step=lambda: bar.update(1))
    print(f"wrote {len(results)} unit images, {folder.sheet_path(args.layer).name} and "
          f"{folder.objectives_path(args.layer).name} to {folder.root}")


def cmd_live(args: argparse.Namespace) -> None:
    from toolbox.app.sources import StillImages, open_source
    from toolbox.app.display import display_available

    settings = _settings(args)
    source = open_source(args.input or settings.live_input, settings.images.max_pixels)
    headless = args.headless or bool(args.output or args.video or args.frames)
    if not headless and not display_available():
        print("deepvis: no display found (DISPLAY is not set); rendering the dashboard to files instead "
              "(--headless)", file=sys.stderr)
        headless = True
    out_dir = args.output or (None if args.video else "deepvis-live")
    if headless:
        for path in filter(None, [out_dir]):
            os.makedirs(path, exist_ok=True)
        if args.video:
            _check_output(args.video, (".mp4",))
    net = _network(settings)
    from toolbox.app.window import LiveApp
    from toolbox.app.worker import NetworkWorker, UnitImageSettings
    from toolbox.assets import UnitImageFolder

    live = settings.live
    worker = NetworkWorker(net, UnitImageFolder(settings.unit_images_path(net.name)),
                           UnitImageSettings(settings.units.preset, live.unit_image_size, live.unit_image_steps))
    if args.layer:
        settings = replace_live(settings, layer=args.layer)
    app = LiveApp(worker, settings, source)
    if not headless:
        app.run_window()
        return
    frames = args.frames or (len(source.paths) if isinstance(source, StillImages) else 30)
    from pathlib import Path

    with _progress(frames, "dashboards") as bar:
        written = app.run_headless(frames, Path(out_dir) if out_dir else None,
                                   Path(args.video) if args.video else None, unit=args.unit,
                                   progress=lambda: bar.update(1))
    where = [f"{len(written)} dashboard{'s' * (len(written) != 1)} in {out_dir}/"] if written else []
    where += [f"a recording in {args.video}"] if args.video else []
    print("wrote " + " and ".join(where))


def replace_live(settings, **changes):
    import dataclasses

    return dataclasses.replace(settings, live=dataclasses.replace(settings.live, **changes))


def _pick(value, default):
    return default if value is None else value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deepvis", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, func: Callable, help: str, epilog: str = "") -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, epilog=epilog,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=func)
        _common(p)
        return p

    p = command("layers", cmd_layers, "list the layers a network offers, with their output shapes",
                "example: deepvis layers --model efficientnet_lite0 --json")
    p.add_argument("--json", action="store_true", help='print [{"name": ..., "shape": [h, w, c]}, ...]')

    p = command("predict", cmd_predict, "print the top classes for one or more images",
                "example: deepvis predict examples/chelsea.png examples/coffee.png --top 3")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="jpg, png, bmp or webp files, or folders of them")
    p.add_argument("--top", type=int, default=5, help="how many classes to print (default 5)")

    p = command("activations", cmd_activations, "per-channel mean and max of one layer on an image",
                "example: deepvis activations examples/chelsea.png --layer block9_add --json")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--layer", "-l", required=True, help="layer name (see: deepvis layers)")
    p.add_argument("--json", action="store_true", help='print {"LAYER": {"shape", "mean", "max"}}')

    p = command("dream", cmd_dream, "DeepDream: amplify what a layer already sees in your photo",
                "examples:\n  deepvis dream examples/chelsea.png -o dream.png\n"
                "  deepvis dream photo.jpg -o out.png --layers block9_add:1,block12_add:0.5 --octaves 5\n"
                "  deepvis dream photo.jpg -o out.png --zoom-frames 60 --gif   # also out.mp4, out.gif\n"
                "defaults come from the dream: section of settings.yaml and the network's spec.")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("-o", "--output", required=True, help="output image (same size as the input)")
    p.add_argument("--layers", help='"name[:weight],..." (default: the network\'s dream_layers)')
    p.add_argument("--octaves", type=int, help="number of scales, smallest first (default 4)")
    p.add_argument("--octave-scale", type=float, help="size ratio between octaves (default 1.4)")
    p.add_argument("--steps", type=int, help="gradient steps per octave (default 10)")
    p.add_argument("--step-size", type=float, help="pixel change per step, fraction of the range (default 0.006)")
    p.add_argument("--tile", type=int, help="gradient tile side in pixels; bounds memory (default 512)")
    p.add_argument("--guide", metavar="IMAGE", help="dream towards the features of this image instead")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--zoom-frames", type=int, default=0, metavar="N",
                   help="also write OUTPUT.mp4: N frames, each dreamed (one octave) from the zoomed previous one")
    p.add_argument("--gif", action="store_true", help="with --zoom-frames, also write OUTPUT.gif")

    p = command("units", cmd_units, "optimized images of a layer's units (feature visualization)",
                "writes DIR/<layer>_<unit:04d>.png per unit, DIR/<layer>_sheet.png and DIR/<layer>_objectives.json.\n"
                "examples:\n  deepvis units --layer block9_add --units 0-15 -o units/\n"
                "  deepvis units --layer block9_add --units all   # into the folder the live window reads")
    p.add_argument("--layer", "-l", required=True, help="layer name (see: deepvis layers)")
    p.add_argument("--units", "-u", required=True, metavar="SPEC", help="e.g. 3,17,40-45 or all")
    p.add_argument("-o", "--output", metavar="DIR", help="output folder (default: the live window's cache)")
    p.add_argument("--size", type=int, help="image side in pixels (default 128)")
    p.add_argument("--steps", type=int, help="optimization steps (default 256)")
    p.add_argument("--preset", help="lucid (default), yosinski1..yosinski4")
    p.add_argument("--batch", type=int, help="units optimized at once (default 16)")
    p.add_argument("--seed", type=int, default=0, help="random seed; same seed, same images (default 0)")

    p = command("live", cmd_live, "the live toolbox window: every channel of a layer, on webcam, video or images",
                "inputs: webcam, webcam:N, a video file (loops), a folder of images (cycles), one image.\n"
                "keys: o/u layer, arrows or i/j/k/l move (Shift: bigger steps), e/w next/previous image,\n"
                "space pause, c camera/files, z zoom, s save PNG, h help, q or Esc quit; click a tile to select.\n"
                "Unit images come from `deepvis units` output when present, else are made on demand.\n"
                "examples:\n  deepvis live                       # the example photos\n"
                "  deepvis live --input webcam\n"
                "  deepvis live --input examples --headless --frames 5 -o shots/ --video demo.mp4")
    p.add_argument("--input", "-i", metavar="SRC", help="webcam[:N], video, folder or image (default: examples)")
    p.add_argument("--layer", "-l", help="layer shown first (default: the network's first dream layer)")
    p.add_argument("--unit", "-u", type=int, default=0, help="unit selected first in headless mode (default 0)")
    p.add_argument("--headless", action="store_true", help="render dashboards to files instead of a window "
                   "(automatic when there is no display)")
    p.add_argument("--frames", type=int, help="headless: dashboards to render, advancing the input each time "
                   "(default: one per image of a folder, else 30)")
    p.add_argument("-o", "--output", metavar="DIR", help="headless: folder for dashboard PNGs (default deepvis-live)")
    p.add_argument("--video", metavar="OUT.mp4", help="headless: also record the dashboards as an MP4")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is first imported
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except UserError as e:
        print(f"deepvis: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("deepvis: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
