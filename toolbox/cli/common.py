"""What every deepvis command shares: the one-line argparse, options backed by settings,
loading the network, progress bars, the inputs of several files."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from toolbox.errors import UserError
from toolbox.settings import (
    PREPROCESS_NAMES,
    describe,
    parse_units,  # noqa: F401 (the commands take it from here)
)

log = logging.getLogger("toolbox.cli")


class Parser(argparse.ArgumentParser):
    """argparse whose mistakes are one line, like every other error of deepvis."""

    def error(self, message: str):  # noqa: ANN201 (argparse's signature)
        command = self.prog.partition(" ")[2]  # "deepvis live" -> "live"; the top level has none
        where = f"{command}: " if command else ""
        self.exit(2, f"deepvis: error: {where}{message} (see: {self.prog} --help)\n")


def bounded(kind: type, lo: float, hi: float | None = None) -> Callable[[str], Any]:
    """An argparse type for numbers in [lo, hi] (options that have no setting)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a{'n' if kind is int else ''} {kind.__name__}, "
                                             f"got '{text[:40]}'") from None
        if value < lo or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"must be at least {lo}" + (f" and at most {hi}" if hi else "")
                                             + f", not {value}")
        return value

    parse.__name__ = kind.__name__
    return parse


def setting_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup, flags: Sequence[str], key: str,
                   kind: type = str, **kwargs: Any) -> None:
    """An option that overrides the setting ``key`` (dotted), documented from it."""
    long = next(f for f in flags if f.startswith("--"))
    kwargs.setdefault("metavar", long[2:].upper().replace("-", "_"))
    parser.add_argument(*flags, type=kind, default=None, dest=f"{SETTING}{key}", help=describe(key), **kwargs)
    SETTING_FLAGS[key] = long


SETTING = "setting:"  # the argparse dest of a setting option is "setting:<dotted key>"
SETTING_FLAGS: dict[str, str] = {}  # dotted key -> its option, for error messages




def common_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("common options")
    setting_option(g, ["--model", "-m"], "model")
    setting_option(g, ["--weights"], "weights")
    setting_option(g, ["--preprocess"], "preprocess", metavar="{" + ",".join(PREPROCESS_NAMES) + "}")
    setting_option(g, ["--labels"], "labels", metavar="FILE")
    g.add_argument("--settings", help="settings YAML (default: ./settings.yaml when present)")


def settings_of(args: argparse.Namespace):
    """The settings file, with this command's options laid over it."""
    from toolbox.settings import load_settings

    path = args.settings
    if path is None and os.path.isfile("settings.yaml"):
        path = "settings.yaml"
    overrides = {dest[len(SETTING):]: value for dest, value in vars(args).items()
                 if dest.startswith(SETTING) and value is not None}
    labels = {key: SETTING_FLAGS[key] for key in overrides}
    return load_settings(path, overrides, labels)


def network(settings, needs_classifier: str | None = None):
    """The network the settings name, loaded as ``deepvis.load`` loads it (TensorFlow started
    quietly; a network too large for memory refused); ``needs_classifier`` (the command or
    option that does) refuses a network without one in one line, before it loads."""
    from toolbox.library import load

    return load(settings=settings, needs_classifier=needs_classifier).network


def unit_folder_network(settings):
    """The network (the library's ``Net``) and its unit-image folder, prepared
    (writable, stray temporaries of killed runs removed). A folder the user named is prepared
    before the network loads, so a mistake there is an error before the slow start; the
    default folder needs the network's name.
    The caller checks the user's layers and units, then claims the folder (``claim``) before
    writing, so a mistake leaves no folder tied to the network."""
    from toolbox.tfstart import start_tensorflow_quietly

    start_tensorflow_quietly()  # the assets package brings TensorFlow
    from toolbox.assets import UnitImageFolder

    folder = None
    if settings.units.output_dir:
        folder = UnitImageFolder(settings.unit_images_path(""))  # the model's name is not part of it
        folder.prepare()
    from toolbox.library import load

    net = load(settings=settings)
    if folder is None:
        folder = UnitImageFolder(settings.unit_images_path(net.name))
        folder.prepare()
    return net, folder


def progress(total: int, what: str, unit: str = "step"):
    """A progress bar on stderr whose rate and time left leave out the first update: the
    first step of a job is usually a compile (a 48 s job showed 16 minutes left after it)."""
    from tqdm import tqdm

    class Progress(tqdm):
        _warm: tuple[float, float] | None = None  # (time, count) once the first update is done

        def update(self, n: float | None = 1):
            if self._warm is None and n:
                self._warm = (self._time(), self.n + n)
            return super().update(n)

        @property
        def format_dict(self):
            d = super().format_dict
            if self._warm is not None:
                since, done = self._time() - self._warm[0], self.n - self._warm[1]
                d["rate"] = done / since if done > 0 and since > 0 else None
                if d["rate"] is None:
                    d["initial"] = self.n  # no rate yet: the time left shows as "?"
            return d

    return Progress(total=total, desc=what, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=True)


def image_inputs(sources: Sequence[str]) -> list[Path]:
    """Files named directly, and the images of named folders; a missing path is a UserError."""
    from toolbox.images import list_images

    paths = []
    for source in sources:
        p = Path(source)
        if p.is_dir():
            paths.extend(list_images(p))
        elif p.exists():
            paths.append(p)
        else:
            raise UserError(f"image not found: {source}")
    return paths


class BadInputs:
    """Counts inputs that could not be read: one warning line each, or the end of the run
    with ``strict``."""

    def __init__(self, strict: bool) -> None:
        self.strict, self.count = strict, 0

    def skip(self, error: UserError) -> None:
        if self.strict:
            raise error
        self.count += 1
        log.warning("skipped: %s", error)


def fraction(text: str) -> float:
    """'2/255' or '0.0078' -> a float (an argparse type)."""
    top, slash, bottom = text.partition("/")
    try:
        value = float(top) / float(bottom) if slash else float(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"expected a number or a fraction such as 2/255, not '{text[:40]}'") from None
    return value


fraction.__name__ = "float"




def classes_line(top: list[tuple[str, float]]) -> str:
    """[(label, probability)] as predict and fool print them."""
    return ", ".join(f"{label} {p:.3f}" for label, p in top)


def parse_layers(text: str | None, network) -> list[str]:
    """'a,b' or 'all' (or None: all) -> layer names, each checked against the network, each
    once (a name given twice, or a layer and its alias, in the order first given)."""
    if text is None or text.strip() == "all":
        return network.spec.layer_names
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise UserError("--layers names no layer")
    return list(dict.fromkeys(network.spec.layer(name).name for name in names))


def keys_help(width: int = 96) -> str:
    """The default key bindings as wrapped text, read from the settings' one list of them."""
    import textwrap

    from toolbox.settings import DEFAULT_KEYS

    text = ", ".join(f"{'/'.join(keys)} {action.replace('_', ' ')}" for action, keys in DEFAULT_KEYS.items())
    return textwrap.fill(text, width, initial_indent="  ", subsequent_indent="  ")
