"""What the user has chosen, as an immutable value, and the pure rules that change it.

The window turns keys into Actions and folds them into a new ViewState with ``apply``;
nothing here touches TensorFlow, OpenCV windows or files, so it is tested directly.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

from toolbox.app.keys import Action
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
    pattern: bool = False  # the grid shows unit images instead of activations
    scale: int = 0  # index into SCALE_MODES
    lowest: bool = False  # the crops pane shows the unit's lowest images
    backprop: int = 0  # index into BACKPROP_MODES: what the gradient pane computes (0: nothing)
    backprop_filter: int = 0  # index into BACKPROP_FILTERS
    frozen: tuple[int, int] | None = None  # (layer, unit) the gradient pane keeps explaining
    dream: bool = False  # the input pane shows a live DeepDream of the frame
    circuit: bool = False  # the crops pane shows the explained unit's strongest inputs
    circuit_from: int = 1  # the circuit's inputs come from this many offered layers before the unit's
    circuit_pick: int = 0  # the highlighted input (excitatory first, then inhibitory): where a jump goes
    path: tuple[tuple[int, int], ...] = ()  # (layer, unit) explained before each jump, oldest first
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


def apply(state: ViewState, action: Action, channels: Sequence[int], steps: int = 1) -> ViewState:
    """The state after ``action``; ``channels`` lists the channel count of every layer and
    ``steps`` how far a move goes (more than 1 for Shift)."""
    n_layers = len(channels)
    if action in (Action.NEXT_LAYER, Action.PREV_LAYER):
        layer = (state.layer + (1 if action is Action.NEXT_LAYER else -1)) % n_layers
        return replace(state, layer=layer, unit=min(state.unit, channels[layer] - 1))
    if action in (Action.UP, Action.DOWN, Action.LEFT, Action.RIGHT):
        return move(state, action, channels[state.layer], steps)
    if action is Action.PAUSE:
        return replace(state, paused=not state.paused)
    if action is Action.ZOOM:
        return replace(state, zoom=(state.zoom + 1) % len(ZOOM_MODES))
    if action is Action.HELP:
        return replace(state, help=not state.help)
    if action is Action.SWITCH_SOURCE:
        return replace(state, camera=not state.camera)
    if action is Action.QUIT:
        return replace(state, quit=True)
    if action is Action.PATTERN:
        return replace(state, pattern=not state.pattern)
    if action is Action.SCALE:
        return replace(state, scale=(state.scale + 1) % len(SCALE_MODES))
    if action is Action.CROPS_SIDE:
        return replace(state, lowest=not state.lowest)
    if action is Action.BACKPROP:
        return replace(state, backprop=(state.backprop + 1) % len(BACKPROP_MODES))
    if action is Action.BACKPROP_FILTER:
        return replace(state, backprop_filter=(state.backprop_filter + 1) % len(BACKPROP_FILTERS))
    if action is Action.DREAM:
        return replace(state, dream=not state.dream)
    if action is Action.FREEZE_BACKPROP:
        return replace(state, frozen=None if state.frozen is not None else (state.layer, state.unit))
    if action is Action.CIRCUIT:
        return replace(state, circuit=not state.circuit)
    if action is Action.CIRCUIT_FROM:  # one layer further back, round to the layer just before
        return replace(state, circuit_from=state.circuit_from % max(state.explained[0], 1) + 1, circuit_pick=0)
    if action is Action.CIRCUIT_NEXT:
        return replace(state, circuit_pick=(state.circuit_pick + 1) % CIRCUIT_LINKS)
    if action is Action.CIRCUIT_BACK:
        return back(state)
    if action is Action.ACCENTUATE:
        return replace(state, accentuate=not state.accentuate)
    return state  # NEXT_IMAGE, PREV_IMAGE, SAVE, CIRCUIT_JUMP act on the input, files or results


def jump(state: ViewState, layer: int, unit: int) -> ViewState:
    """Go to an input unit of the circuit view: it becomes the selection (and the frozen unit
    while one is frozen), and the unit left is remembered for ``back``."""
    return replace(state, path=(*state.path, state.explained), **_explaining(state, layer, unit))


def back(state: ViewState) -> ViewState:
    """Return to the unit explained before the last jump (nothing to do at the path's start)."""
    if not state.path:
        return state
    layer, unit = state.path[-1]
    return replace(state, path=state.path[:-1], **_explaining(state, layer, unit))


def _explaining(state: ViewState, layer: int, unit: int) -> dict:
    changes = {"layer": layer, "unit": unit, "circuit_from": 1, "circuit_pick": 0}
    if state.frozen is not None:
        changes["frozen"] = (layer, unit)
    return changes


def move(state: ViewState, action: Action, channels: int, steps: int) -> ViewState:
    """Move the selection on the grid: left/right by one unit, up/down by one grid row."""
    cols = grid_geometry(channels).cols
    delta = {Action.LEFT: -1, Action.RIGHT: 1, Action.UP: -cols, Action.DOWN: cols}[action] * steps
    return replace(state, unit=min(max(state.unit + delta, 0), channels - 1))


def select(state: ViewState, unit: int) -> ViewState:
    return replace(state, unit=unit)
