"""The live modes, each one module (its keys, request, worker side, pane and hints), listed
once here. The window, the worker, the dashboard and the key map all go through ``MODES``:
a new mode is its module and one line below (plus its default keys in settings, the one
home of defaults).

The order is the drawing order: a pane belongs to the last active mode that claims it, so
the defaults of a pane (the unit image, the gradient pane) come before the modes that draw
over them (accentuation, the circuit view).
"""

from __future__ import annotations

from typing import Mapping, Sequence

from toolbox.app.keys import Action, KeyMap
from toolbox.app.modes import accent, circuit, dream, gradient, patterns, unit_image
from toolbox.app.modes.base import NOTHING, FrameWork, JobWork, Mode
from toolbox.app.protocol import KeyAction
from toolbox.app.state import ViewState, apply_core

MODES: tuple[Mode, ...] = (
    gradient.MODE,
    unit_image.MODE,
    patterns.MODE,
    dream.MODE,
    circuit.MODE,
    accent.MODE,
)

BY_NAME: dict[str, Mode] = {mode.name: mode for mode in MODES}
MODE_ACTIONS: dict[str, tuple[Mode, KeyAction]] = {a.name: (mode, a) for mode in MODES for a in mode.actions}


def action_help() -> dict[str, str]:
    """Every action's help line: the window's own, then each mode's, in the registry's order."""
    from toolbox.app.keys import CORE_HELP

    return {**{a.value: CORE_HELP[a] for a in Action}, **{name: a.help for name, (_, a) in MODE_ACTIONS.items()}}


def key_map(bindings: Mapping[str, Sequence[str]] | None = None) -> KeyMap:
    """The live window's keys: ``bindings`` (``live.keys``) over the defaults, for the window's
    own actions and every mode's; a clash or an unknown name is one line."""
    return KeyMap(bindings or {}, action_help())


def apply(state: ViewState, action: str, channels: Sequence[int], steps: int = 1) -> ViewState:
    """The state after ``action`` (the window's own actions, or a mode's pure rule); an action
    that acts on results or files leaves the state as it is."""
    if action in MODE_ACTIONS:
        rule = MODE_ACTIONS[action][1].rule
        return state if rule is None else rule(state)
    return apply_core(state, Action(action), channels, steps)


__all__ = ["BY_NAME", "MODES", "MODE_ACTIONS", "NOTHING", "FrameWork", "JobWork", "Mode", "action_help", "apply",
           "key_map"]
