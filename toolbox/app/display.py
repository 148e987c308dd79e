"""Is there a screen to open a window on?"""

from __future__ import annotations

import os
import sys


def display_available() -> bool:
    if sys.platform in ("win32", "darwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
