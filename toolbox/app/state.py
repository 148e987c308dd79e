"""What the user has chosen, as an immutable value, and the pure rules of the window's own keys.

The window turns keys into actions and folds them into a new ViewState
(``toolbox.app.modes.apply``: the rules below, or the mode's that owns the action); nothing
here touches TensorFlow, OpenCV windows or files, so it is tested directly. The fields a mode
reads and changes are marked with its name.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

from toolbox.app.keys import MOVES, Action
from toolbox.app.layout import grid_geometry
from toolbox.settings import GRADIENT_RULES, GRID_SCALES, MAP_FILTERS

ZOOM_MODES = ("map", "overlay", "field")  # enlarged activation map / over the input / its receptive field
SCALE_MODES = GRID_SCALES  # grid: each channel on its own scale / one scale / one, boosted
BACKPROP_MODES = ("off", *GRADIENT_RULES)  # the gradient pane: nothing, or one of the engine's ReLU rules
BACKPROP_FILTERS = MAP_FILTERS
CIRCUIT_EXCITATORY, CIRCUIT_INHIBITORY = 6, 3  # inputs the circuit view shows each way
CIRCUIT_LINKS = CIRCUIT_EXCITATORY + CIRCUIT_INHIBITORY


@dataclass(frozen=True)
class ViewState:
    layer: int = 0  # index into the offered layers
    unit: int = 0
    paused: bool = False
    zoom: int = 0  # index into ZOOM_MODES
    help: bool = False
    camera: bool = False  # input from the camera rather than files
    quit: bool = False
    scale: int = 0  # index into SCALE_MODES
    # patterns mode
    pattern: bool = False  # the grid shows unit images instead of activations
    # unit_image mode
    lowest: bool = False  # the crops pane shows the unit's lowest images
    # gradient mode
    backprop: int = 0  # index into BACKPROP_MODES: what the gradient pane computes (0: nothing)
    backprop_filter: int = 0  # index into BACKPROP_FILTERS
    frozen: tuple[int, int] | None = None  # (layer, unit) the gradient pane keeps explaining
    # dream mode
    dream: bool = False  # the input pane shows a live DeepDream of the frame
    # circuit mode
    circuit: bool = False  # the crops pane shows the explained unit's strongest inputs
    circuit_from: int = 1  # the circuit's inputs come from this many offered layers before the unit's
    circuit_pick: int = 0  # the highlighted input (excitatory first, then inhibitory): where a jump goes
    path: tuple[tuple[int, int], ...] = ()  # (layer, unit) explained before each jump, oldest first
    # accent mode
    accentuate: bool = False  # the optimized-image pane shows the selected unit accentuated in the frame

    @property
    def zoom_mode(self) -> str:
        return ZOOM_MODES[self.zoom]

    @property
    def scale_mode(self) -> str:
        return SCALE_MODES[self.scale]

    @property
    def backprop_mode(self) -> str:
        return BACKPROP_MODES[self.backprop]

    @property
    def backprop_filter_name(self) -> str:
        return BACKPROP_FILTERS[self.backprop_filter]

    @property
    def explained(self) -> tuple[int, int]:
        """(layer, unit) the gradient pane explains: the frozen one, else the selection."""
        return self.frozen if self.frozen is not None else (self.layer, self.unit)


def apply_core(state: ViewState, action: Action, channels: Sequence[int], steps: int = 1) -> ViewState:
    """The state after one of the window's own actions (each mode's rules live in its module:
    ``toolbox.app.modes.apply`` takes any action); ``channels`` lists the channel count of every
    layer and ``steps`` how far a move goes (more than 1 for Shift)."""
    n_layers = len(channels)
    if action in (Action.NEXT_LAYER, Action.PREV_LAYER):
        layer = (state.layer + (1 if action is Action.NEXT_LAYER else -1)) % n_layers
        return replace(state, layer=layer, unit=min(state.unit, channels[layer] - 1))
    if action in MOVES:
        return move(state, action, channels[state.layer], steps)
    toggles = {Action.PAUSE: "paused", Action.HELP: "help", Action.SWITCH_SOURCE: "camera", Action.QUIT: "quit"}
    if action in toggles:
        return replace(state, **{toggles[action]: not getattr(state, toggles[action])})
    if action is Action.ZOOM:
        return replace(state, zoom=(state.zoom + 1) % len(ZOOM_MODES))
    if action is Action.SCALE:
        return replace(state, scale=(state.scale + 1) % len(SCALE_MODES))
    return state  # NEXT_IMAGE, PREV_IMAGE, SAVE act on the input or files


def move(state: ViewState, action: Action, channels: int, steps: int) -> ViewState:
    """Move the selection on the grid: left/right by one unit, up/down by one grid row."""
    cols = grid_geometry(channels).cols
    delta = {Action.LEFT: -1, Action.RIGHT: 1, Action.UP: -cols, Action.DOWN: cols}[action] * steps
    return replace(state, unit=min(max(state.unit + delta, 0), channels - 1))


def select(state: ViewState, unit: int) -> ViewState:
    return replace(state, unit=unit)
