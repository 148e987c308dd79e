"""Key bindings: names in settings.yaml <-> the codes cv2.waitKeyEx returns <-> actions."""

from __future__ import annotations

from enum import Enum
from typing import Mapping, Sequence

from toolbox.errors import UserError, closest
from toolbox.settings import DEFAULT_KEYS


class Action(str, Enum):
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
    SAVE = "save"
    HELP = "help"
    QUIT = "quit"
    PATTERN = "pattern"
    SCALE = "scale"
    CROPS_SIDE = "crops_side"
    BACKPROP = "backprop"
    BACKPROP_FILTER = "backprop_filter"
    FREEZE_BACKPROP = "freeze_backprop"
    DREAM = "dream"
    CIRCUIT = "circuit"
    CIRCUIT_FROM = "circuit_from"
    CIRCUIT_NEXT = "circuit_next"
    CIRCUIT_JUMP = "circuit_jump"
    CIRCUIT_BACK = "circuit_back"
    ACCENTUATE = "accentuate"


MOVES = (Action.UP, Action.DOWN, Action.LEFT, Action.RIGHT)

HELP_TEXT: dict[Action, str] = {
    Action.NEXT_LAYER: "next layer", Action.PREV_LAYER: "previous layer",
    Action.UP: "move selection up", Action.DOWN: "move selection down",
    Action.LEFT: "move selection left", Action.RIGHT: "move selection right",
    Action.NEXT_IMAGE: "next image / frame", Action.PREV_IMAGE: "previous image / frame",
    Action.PAUSE: "pause / resume the input", Action.SWITCH_SOURCE: "switch between camera and files",
    Action.ZOOM: "cycle the selected unit's zoom", Action.SAVE: "save the dashboard as PNG",
    Action.HELP: "show / hide this help", Action.QUIT: "quit",
    Action.PATTERN: "grid: activations <-> each unit's optimized image",
    Action.SCALE: "grid scale: per channel / one for the layer / gamma-boosted",
    Action.CROPS_SIDE: "crops: the unit's top images <-> its lowest",
    Action.BACKPROP: "gradient pane: off / gradient / guided / deconv",
    Action.BACKPROP_FILTER: "gradient pane's filter: raw / gray / norm / norm-blur",
    Action.FREEZE_BACKPROP: "gradient pane: keep explaining this unit / follow the selection",
    Action.DREAM: "input pane: the frame / a live DeepDream of it",
    Action.CIRCUIT: "crops pane: top crops / the unit's circuit (strongest inputs)",
    Action.CIRCUIT_FROM: "circuit: inputs from the layer before / further back",
    Action.CIRCUIT_NEXT: "circuit: highlight the next input",
    Action.CIRCUIT_JUMP: "circuit: go to the highlighted input (or click it)",
    Action.CIRCUIT_BACK: "circuit: back along the path",
    Action.ACCENTUATE: "optimized-image pane: the unit's image / the unit accentuated in this frame",
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


def key_label(name: str) -> str:
    return {"space": "Space", "esc": "Esc"}.get(name, name)


class KeyMap:
    """Maps key codes to (action, big_step). An upper-case letter bound (in lower case) to a
    move, or a move right after a Shift key, is a big step."""

    def __init__(self, bindings: Mapping[str, Sequence[str]]) -> None:
        self.bindings: dict[Action, tuple[str, ...]] = {}
        names = [a.value for a in Action]
        for action_name, keys in {**DEFAULT_KEYS, **bindings}.items():
            if action_name not in names:
                raise UserError(f"settings: unknown action 'live.keys.{action_name}'{closest(action_name, names)}")
            self.bindings[Action(action_name)] = tuple([keys] if isinstance(keys, str) else keys)
        self._codes: dict[int, tuple[Action, bool]] = {}
        for action, keys in self.bindings.items():
            for name in keys:
                self._bind(key_code(name), action, False, f"key '{name}'")
        for action in MOVES:  # a move's letter in capitals: the big step (unless bound itself)
            for name in self.bindings[action]:
                if len(name) == 1 and name.isalpha():
                    self._bind(ord(name.upper()), action, True, f"key '{name.upper()}' (Shift+{name}, {action.value})")
        self._shift_pending = False

    def _bind(self, code: int, action: Action, big: bool, what: str) -> None:
        taken = self._codes.get(code)
        if taken is not None and taken[0] is not action:
            raise UserError(f"settings: {what} is bound to both {taken[0].value} and {action.value} "
                            f"(live.keys: give one of them another key)")
        self._codes[code] = (action, big)

    def lookup(self, code: int) -> tuple[Action, bool] | None:
        if code in SHIFT_CODES:
            self._shift_pending = True
            return None
        hit = self._codes.get(code)
        shifted, self._shift_pending = self._shift_pending, False
        if hit is None:
            return None
        action, big = hit
        return action, big or (shifted and action in MOVES)

    def help_lines(self) -> list[tuple[str, str]]:
        """(keys, what they do) for every action, in a fixed order."""
        lines = []
        for action in Action:
            keys = " / ".join(key_label(k) for k in self.bindings[action])
            big = " (Shift: bigger steps)" if action in MOVES else ""
            lines.append((keys, HELP_TEXT[action] + big))
        return lines
