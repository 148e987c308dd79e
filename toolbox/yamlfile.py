"""Reading the YAML files a user hands us (settings, model specs), defensively.

A YAML file is data: it is parsed with the safe loader, refused above a size limit before
it is read, must be UTF-8, and may not use aliases (``&a`` / ``*a``): no settings file
needs them, and a "billion laughs" file of nested aliases is the classic way to make a
small file expand into gigabytes. Every refusal is a one-line UserError.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from toolbox.errors import UserError
from toolbox.files import read_input

MAX_YAML_BYTES = 1_000_000  # a settings file or model spec is a few KB


class _NoAliasLoader(yaml.SafeLoader):
    def compose_node(self, parent, index):  # noqa: ANN001 (PyYAML's signature)
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise UserError(f"YAML aliases (*name) are not allowed (line {mark.line + 1})")
        return super().compose_node(parent, index)


def read_yaml(path: str | Path, what: str) -> Any:
    """The parsed contents of a YAML file; ``what`` ("settings file") names it in errors."""
    p = Path(path)
    try:
        text = read_input(p, what, MAX_YAML_BYTES).decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{what} {p} is not UTF-8 text (byte {e.start})") from None
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 (a SafeLoader subclass)
    except UserError as e:
        raise UserError(f"{what} {p}: {e}") from None
    except yaml.YAMLError as e:
        raise UserError(f"{what} {p} is not valid YAML: {str(e).splitlines()[0]}") from None
    except RecursionError:  # brackets nested thousands deep
        raise UserError(f"{what} {p} is nested too deeply to be a {what}") from None
