"""The gradient pane: what in each frame drives the explained unit, by the gradient, guided
backprop or deconv, shown through a display filter; it can keep explaining one unit (frozen)
while the selection moves on."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from toolbox.app import layout as L
from toolbox.app.dashboard import ACCENT, DIM, TEXT, paste, placeholder, shrunk_title, text, title
from toolbox.app.modes.base import FrameWork, Mode
from toolbox.app.protocol import BackwardNeed, FrameContext, Hints, KeyAction, frozen
from toolbox.app.state import BACKPROP_FILTERS, BACKPROP_MODES, ViewState


@dataclass(frozen=True)
class BackpropRequest:
    """What the gradient pane wants for a frame: unit ``unit`` of ``layer`` explained by
    ``rule`` (gradient, guided or deconv), shown through the display filter ``filter``."""

    layer: str
    unit: int
    rule: str
    filter: str


@dataclass(frozen=True)
class GradientImage:
    """The gradient pane's picture of one frame, ready to paste: the map made visible by the
    worker, so the UI thread never touches the map itself."""

    request: BackpropRequest
    image: np.ndarray  # (H, W, 3) uint8, the input's size
    score: float  # the unit's value (before its ReLU, at its strongest position) that the map explains


@dataclass(frozen=True)
class GradientView:
    want: BackpropRequest | None  # None: the pane is off
    shown: GradientImage | None  # the newest map (maybe of an older request)
    relu_side: str = ""  # of the shown unit's score: Network.relu_side


FILTER_NOTES = {"raw": "signed, per colour channel; grey is 0", "gray": "signed, channels averaged; grey is 0",
                "norm": "the map's size per pixel; black is 0", "norm-blur": "its size per pixel, blurred: where"}


def _cycle_rule(state: ViewState) -> ViewState:
    return replace(state, backprop=(state.backprop + 1) % len(BACKPROP_MODES))


def _cycle_filter(state: ViewState) -> ViewState:
    return replace(state, backprop_filter=(state.backprop_filter + 1) % len(BACKPROP_FILTERS))


def _freeze(state: ViewState) -> ViewState:
    return replace(state, frozen=None if state.frozen is not None else (state.layer, state.unit))


class GradientWork(FrameWork):
    def __init__(self, worker) -> None:
        self.worker = worker

    def needs(self, request: BackpropRequest) -> BackwardNeed:
        return BackwardNeed(request.layer, request.unit, rule=request.rule)

    def answer(self, request: BackpropRequest, frame: FrameContext) -> GradientImage:
        """The map made visible here (a few ms), so the UI only pastes an image."""
        from toolbox.optvis.attribution_display import display

        result = frame.backward(request.layer, request.unit).result
        return GradientImage(request, frozen(display(result.map, request.filter)), result.score)


def gradient_title(canvas: np.ndarray, request: BackpropRequest, frozen_: bool) -> None:
    """Method, filter and the unit explained, in the accent colour while frozen (the pane
    then explains another layer than the grid's, which should not go unnoticed); a long
    layer name shrinks the text rather than run into the next column."""
    shrunk_title(canvas, L.GRADIENT, f"{request.rule} ({request.filter}): {request.layer} unit {request.unit}"
                 + (" frozen" if frozen_ else ""), ACCENT if frozen_ else DIM, room=15)


class GradientMode(Mode):
    name = "gradient"
    actions = (
        KeyAction("backprop", "gradient pane: off / gradient / guided / deconv", _cycle_rule),
        KeyAction("backprop_filter", "gradient pane's filter: raw / gray / norm / norm-blur", _cycle_filter),
        KeyAction("freeze_backprop", "gradient pane: keep explaining this unit / follow the selection", _freeze),
    )
    panes = ("gradient",)

    def active(self, state: ViewState) -> bool:
        return True  # the pane is its own: it says how to turn it on while off

    def want(self, app, state: ViewState) -> BackpropRequest | None:
        """The map for ``state``: of the frozen unit, else the selected one."""
        if state.backprop_mode == "off":
            return None
        layer, unit = state.explained
        return BackpropRequest(app.layers[layer], unit, state.backprop_mode, state.backprop_filter_name)

    def view(self, app, session) -> GradientView:
        latest = session.latest
        shown = None if latest is None else latest.part(self.name)
        return GradientView(self.want(app, session.state), shown,
                            "" if shown is None else app.net.relu_side(shown.request.layer, True))

    def draw(self, canvas: np.ndarray, view, data: GradientView, keys: Hints) -> None:
        """The explained unit's map for the newest frame. The title names the map shown, so a
        map still on its way says which one is on screen."""
        want, shown, frozen_ = data.want, data.shown, view.state.frozen is not None
        if want is None:
            title(canvas, L.GRADIENT, f"gradient image: off ({keys['backprop']})")
            placeholder(canvas, L.GRADIENT, [f"{keys['backprop']}: what in this frame drives",
                                             "the selected unit, by gradient,", "guided backprop or deconv"])
            return
        if shown is None:
            gradient_title(canvas, want, frozen_)
            placeholder(canvas, L.GRADIENT, ["computing the first map...", "(compiled once: a few seconds)"])
            return
        gradient_title(canvas, shown.request, frozen_)
        paste(canvas, shown.image, L.GRADIENT)
        lines = [f"score: max {shown.score:.3f}{data.relu_side}" + ("" if shown.request == want else " ..."),
                 FILTER_NOTES.get(shown.request.filter, ""),
                 f"{keys['backprop']} method, {keys['backprop_filter']} filter, {keys['freeze_backprop']} "
                 + ("unfreeze" if frozen_ else "freeze")]
        for i, line in enumerate(lines):
            text(canvas, line, L.GRADIENT_INFO.x, L.GRADIENT_INFO.y + 14 + 17 * i, TEXT if i == 0 else DIM, 0.42)

    def worker_side(self, worker) -> GradientWork:
        return GradientWork(worker)


MODE = GradientMode()
