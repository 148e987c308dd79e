"""deepvis live: the live toolbox window: every channel of a layer, on webcam, video or images."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from toolbox.cli.common import SETTING, SETTING_FLAGS, bounded, keys_help, progress, setting_option, settings_of
from toolbox.errors import UserError
from toolbox.settings import describe

log = logging.getLogger("toolbox.cli")


def add_parser(command) -> None:
    p = command("live", run, "the live toolbox window: every channel of a layer, on webcam, video or images",
                "inputs: webcam, webcam:N, a video file (loops), a folder of images (cycles), one image.\n"
                f"keys (default bindings; change them under live.keys in settings.yaml; h in the window lists them):\n"
                f"{keys_help()}\n"
                "Shift with a move: bigger steps; click a tile to select it. Unit images come from `deepvis units`\n"
                "output when present, else are made on demand.\n"
                "Ctrl-C ends a headless recording and keeps it (a playable MP4 of the frames so far).\n"
                "--serve shows the same toolbox as a web page (open the URL it prints, token included; for a\n"
                "remote machine: ssh -L 8765:127.0.0.1:8765 HOST, then the URL on your own machine).\n"
                "examples:\n  deepvis live                       # the example photos\n"
                "  deepvis live --input webcam\n"
                "  deepvis live --serve 8765 --input browser   # the page, with your laptop's camera\n"
                "  deepvis live --input examples --headless --frames 5 -o shots/ --video demo.mp4")
    setting_option(p, ["--input", "-i"], "live.input")
    setting_option(p, ["--serve"], "live.serve", metavar="[HOST:]PORT")
    setting_option(p, ["--layer", "-l"], "live.layer")
    setting_option(p, ["--backprop"], "live.backprop", metavar="METHOD")
    p.add_argument("--dream", action="store_true", default=None, dest=f"{SETTING}live.dream",
                   help=describe("live.dream") + "; also in headless recordings")
    SETTING_FLAGS["live.dream"] = "--dream"
    p.add_argument("--circuit", action="store_true", default=None, dest=f"{SETTING}live.circuit",
                   help=describe("live.circuit") + "; also in headless recordings")
    SETTING_FLAGS["live.circuit"] = "--circuit"
    p.add_argument("--accentuate", action="store_true", default=None, dest=f"{SETTING}live.accentuate",
                   help=describe("live.accentuate") + "; headless recordings accentuate every frame to the end")
    SETTING_FLAGS["live.accentuate"] = "--accentuate"
    setting_option(p, ["--dream-layers"], "live.dream_layers")
    setting_option(p, ["--dream-steps"], "live.dream_steps", int)
    p.add_argument("--unit", "-u", type=bounded(int, 0), default=0,
                   help="unit selected first (default 0)")
    p.add_argument("--headless", action="store_true", help="render dashboards to files instead of a window "
                   "(automatic when there is no display)")
    p.add_argument("--frames", type=bounded(int, 1, 10**9), help="headless: dashboards to render, advancing the "
                   "input each time (default: one per image of a folder, else 30)")
    p.add_argument("-o", "--output", metavar="DIR", help="headless: folder for dashboard PNGs (default deepvis-live)")
    p.add_argument("--video", metavar="OUT.mp4", help="headless: also record the dashboards as an MP4")


def run(args: argparse.Namespace) -> None:
    from toolbox.app.display import display_available
    from toolbox.app.modes import key_map
    from toolbox.app.sources import StillImages, open_source
    from toolbox.files import check_output_dir, check_output_file, clean_stray_parts

    settings = settings_of(args)
    key_map(settings.live.keys)  # a bad binding is one line before the network loads
    if settings.live.serve is not None:
        return _serve(settings, args)
    if settings.live_input == "browser":
        raise UserError("--input browser is the served page's camera: add --serve [HOST:]PORT")
    headless = args.headless or bool(args.output or args.video or args.frames)
    if not headless and not display_available():
        log.warning("no display found (DISPLAY is not set); rendering the dashboard to files instead (--headless)")
        headless = True
    out_dir = args.output or (None if args.video else "deepvis-live")
    if headless:
        if out_dir:
            clean_stray_parts(check_output_dir(out_dir))
        if args.video:
            clean_stray_parts(check_output_file(args.video, (".mp4",)).parent)
    source = open_source(settings.live_input, settings.images.max_pixels)  # a missing input: before the network
    from toolbox.library import live, load

    net = load(settings=settings)
    if not headless:
        live(net, source, unit=args.unit)
        return
    frames = args.frames or (len(source.paths) if isinstance(source, StillImages) else 30)
    with progress(frames, "dashboards", "frame") as bar:
        written = live(net, source, unit=args.unit, headless=True, frames=frames, output=out_dir, video=args.video,
                       on_frame=lambda: bar.update(1))
    where = [f"{len(written)} dashboard{'s' * (len(written) != 1)} in {Path(out_dir)}/"] if written else []
    where += [f"a recording in {args.video}"] if args.video else []
    print("wrote " + " and ".join(where))


def _serve(settings, args: argparse.Namespace) -> None:
    """--serve: the page until Ctrl-C; its URL (with the token) printed once it listens."""
    from toolbox.app.serve import parse_address
    from toolbox.app.sources import open_source

    if args.headless or args.output or args.video or args.frames:
        raise UserError("--serve shows the page; --headless, -o, --video and --frames are for recordings")
    host, port = parse_address(settings.live.serve)  # a bad address: before the network loads
    source = open_source(settings.live_input, settings.images.max_pixels)
    from toolbox.library import live, load

    net = load(settings=settings)
    live(net, source, unit=args.unit, serve=f"{host}:{port}",
         on_ready=lambda url: print(f"deepvis live: serving {url}\n  (Ctrl-C stops it)", flush=True))
    print("deepvis live: stopped", flush=True)
