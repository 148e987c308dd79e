"""Key bindings: names in settings.yaml <-> the codes cv2.waitKeyEx returns <-> actions."""

from __future__ import annotations

from enum import Enum
from typing import Mapping, Sequence

from toolbox.errors import UserError, closest
from toolbox.settings import DEFAULT_KEYS


class Action(str, Enum):
    """The window's own actions; each mode adds its own (``toolbox.app.modes``), named the same
    way in ``live.keys``."""

    NEXT_LAYER = "next_layer"
    PREV_LAYER = "prev_layer"
    UP = "up"
    DOWN = "down"
    LEFT = "left"
    RIGHT = "right"
    NEXT_IMAGE = "next_image"
    PREV_IMAGE = "prev_image"
    PAUSE = "pause"
    SWITCH_SOURCE = "switch_source"
    ZOOM = "zoom"
    SCALE = "scale"
    SAVE = "save"
    HELP = "help"
    QUIT = "quit"


MOVES = (Action.UP, Action.DOWN, Action.LEFT, Action.RIGHT)

CORE_HELP: dict[Action, str] = {
    Action.NEXT_LAYER: "next layer", Action.PREV_LAYER: "previous layer",
    Action.UP: "move selection up", Action.DOWN: "move selection down",
    Action.LEFT: "move selection left", Action.RIGHT: "move selection right",
    Action.NEXT_IMAGE: "next image / frame", Action.PREV_IMAGE: "previous image / frame",
    Action.PAUSE: "pause / resume the input", Action.SWITCH_SOURCE: "switch between camera and files",
    Action.ZOOM: "cycle the selected unit's zoom",
    Action.SCALE: "grid scale: per channel / one for the layer / gamma-boosted",
    Action.SAVE: "save the dashboard as PNG", Action.HELP: "show / hide this help", Action.QUIT: "quit",
}

# X11 key codes as cv2.waitKeyEx reports them (Qt and GTK backends on Linux).
SPECIAL_CODES = {"left": 65361, "up": 65362, "right": 65363, "down": 65364, "space": 32, "esc": 27,
                 "enter": 13, "tab": 9, "backspace": 8}
SHIFT_CODES = (65505, 65506)  # Shift_L, Shift_R: sent before the shifted key


def key_code(name: str) -> int:
    if name in SPECIAL_CODES:
        return SPECIAL_CODES[name]
    if len(name) == 1:
        return ord(name)
    raise UserError(f"settings: unknown key name '{name}'{closest(name, SPECIAL_CODES)} "
                    f"(use a single character or one of: {', '.join(SPECIAL_CODES)})")


KEY_LABELS = {"space": "Space", "esc": "Esc", "tab": "Tab", "enter": "Enter", "backspace": "Bksp"}


def key_label(name: str) -> str:
    """A key as hints and the help overlay show it."""
    return KEY_LABELS.get(name, name)


class KeyMap:
    """Maps key codes to (action name, big_step). An upper-case letter bound (in lower case) to
    a move, or a move right after a Shift key, is a big step. ``actions`` ({name: help}) are
    the window's and every mode's: ``toolbox.app.modes.key_map`` makes the live window's."""

    def __init__(self, bindings: Mapping[str, Sequence[str]], actions: Mapping[str, str]) -> None:
        self.help = dict(actions)
        self.bindings: dict[str, tuple[str, ...]] = {}
        for action_name, keys in {**DEFAULT_KEYS, **bindings}.items():
            if action_name not in self.help:
                raise UserError(f"settings: unknown action 'live.keys.{action_name}'{closest(action_name, self.help)}")
            self.bindings[action_name] = tuple([keys] if isinstance(keys, str) else keys)
        missing = [name for name in self.help if not self.bindings.get(name)]
        if missing:
            raise UserError(f"settings: no key for {', '.join(missing)} (live.keys)")
        self._codes: dict[int, tuple[str, bool]] = {}
        for action, keys in self.bindings.items():
            for name in keys:
                self._bind(key_code(name), action, False, f"key '{name}'")
        for action in MOVES:  # a move's letter in capitals: the big step (unless bound itself)
            for name in self.bindings[action.value]:
                if len(name) == 1 and name.isalpha():
                    self._bind(ord(name.upper()), action.value, True,
                               f"key '{name.upper()}' (Shift+{name}, {action.value})")
        self._shift_pending = False

    def _bind(self, code: int, action: str, big: bool, what: str) -> None:
        taken = self._codes.get(code)
        if taken is not None and taken[0] != action:
            raise UserError(f"settings: {what} is bound to both {taken[0]} and {action} "
                            f"(live.keys: give one of them another key)")
        self._codes[code] = (action, big)

    def lookup(self, code: int) -> tuple[str, bool] | None:
        if code in SHIFT_CODES:
            self._shift_pending = True
            return None
        hit = self._codes.get(code)
        shifted, self._shift_pending = self._shift_pending, False
        if hit is None:
            return None
        action, big = hit
        return action, big or (shifted and action in MOVES)

    def hints(self) -> dict[str, str]:
        """Each action's first key as shown on screen: what every hint is written from."""
        return {action: key_label(keys[0]) for action, keys in self.bindings.items()}

    def label(self, action: str) -> str:
        """All of an action's keys, as the help overlay lists them."""
        return " / ".join(key_label(k) for k in self.bindings[action])

    def help_lines(self) -> list[tuple[str, str]]:
        """(keys, what they do) for every action, in a fixed order."""
        return [(self.label(action), text + (" (Shift: bigger steps)" if action in MOVES else ""))
                for action, text in self.help.items()]
