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


def _network(args: argparse.Namespace):
    settings = _settings(args)  # settings mistakes show before the slow start
    from toolbox.tfstart import start_tensorflow_quietly

    start_tensorflow_quietly()
    from toolbox.nets import load_network

    return settings, load_network(settings)


def _read(path: str, args: argparse.Namespace):
    from toolbox.images import read_image

    return read_image(path, _settings(args).images.max_pixels)


def _prepared(image, net, settings):
    from toolbox.images import ensure_min_side, fit_square

    return fit_square(ensure_min_side(image, net.spec.min_size), net.spec.input_size, settings.images.fit)


def cmd_layers(args: argparse.Namespace) -> None:
    import keras

    _, net = _network(args)
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
    images = [(path, _read(path, args)) for path in paths]  # bad files fail before the slow start
    settings, net = _network(args)
    from toolbox.nets import Probe

    probe = Probe(net, [])
    for path, image in images:
        top = probe(_prepared(image, net, settings)).top(net.labels, args.top)
        print(f"{path}: " + ", ".join(f"{label} {p:.3f}" for label, p in top))


def cmd_activations(args: argparse.Namespace) -> None:
    image = _read(args.image, args)
    settings, net = _network(args)
    from toolbox.nets import Probe

    net.spec.layer(args.layer)
    image = _prepared(image, net, settings)
    act = Probe(net, [args.layer])(image).activations[args.layer]
    mean, peak = act.mean(axis=(0, 1)), act.max(axis=(0, 1))
    if args.json:
        print(json.dumps({args.layer: {"shape": list(act.shape), "mean": mean.tolist(), "max": peak.tolist()}}))
        return
    print(f"{args.layer} {act.shape[0]}x{act.shape[1]}x{act.shape[2]} on {args.image}")
    print("unit      mean       max")
    for unit in range(act.shape[2]):
        print(f"{unit:4d} {mean[unit]:9.4f} {peak[unit]:9.4f}")


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
