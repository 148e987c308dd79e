"""The one exception type for user mistakes, and the helper that makes its messages useful."""

from __future__ import annotations

import difflib
from typing import Iterable


class UserError(Exception):
    """A mistake in what the user asked for (a bad path, an unknown layer, ...).

    The command line prints it as one line on stderr and exits with code 2; it is never
    shown as a traceback.
    """


def closest(name: str, options: Iterable[str], n: int = 3) -> str:
    """' (did you mean: a, b?)' for the nearest options to ``name``, or '' when none is near."""
    matches = difflib.get_close_matches(name, list(options), n=n, cutoff=0.5)
    return f" (did you mean: {', '.join(matches)}?)" if matches else ""
