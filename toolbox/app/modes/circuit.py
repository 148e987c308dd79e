"""The circuit view, a mode of the crops pane: the explained unit's strongest inputs from an
earlier layer, each a thumbnail over its unit and its share; a jump goes to an input, back
returns along the path. Its inputs come from the backward pass the gradient pane makes anyway."""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from toolbox.app import layout as L
from toolbox.app.dashboard import (
    DIM,
    SELECT,
    TEXT,
    apply_lut,
    grid_levels,
    paste,
    placeholder,
    shrunk_title,
    text,
    title,
)
from toolbox.app.layout import Rect, circuit_cell_at
from toolbox.app.modes.base import FrameWork, Mode
from toolbox.app.protocol import BackwardNeed, FrameContext, Hints, KeyAction, frozen
from toolbox.app.state import CIRCUIT_EXCITATORY, CIRCUIT_INHIBITORY, CIRCUIT_LINKS, ViewState

THUMBNAIL = 64  # side of the circuit view's thumbnails


@dataclass(frozen=True)
class CircuitRequest:
    """What the circuit view wants for a frame: the strongest inputs from ``source`` of unit
    ``unit`` of ``layer`` (the unit the gradient pane explains, so one backward pass serves both)."""

    layer: str
    unit: int
    source: str
    excitatory: int = 6
    inhibitory: int = 3


@dataclass(frozen=True)
class CircuitInputs:
    """The circuit view's answer for one frame: ``links`` (excitatory first, then inhibitory;
    see ``optvis.circuits.Link``) and for each a thumbnail ((RGB image, kind) or None: the
    window then shows the input's activation map on this frame)."""

    request: CircuitRequest
    value: float  # the unit's value (before its ReLU, at its strongest position)
    links: tuple  # of Link
    excitatory: int  # how many of ``links`` are excitatory
    thumbnails: tuple

    def at(self, cell: int) -> int | None:
        """The index into ``links`` shown in cell ``cell``: the first ``request.excitatory`` cells
        hold the excitatory inputs, the next ``request.inhibitory`` the inhibitory ones; None
        for an empty cell."""
        if cell < self.request.excitatory:
            return cell if cell < self.excitatory else None
        k = self.excitatory + cell - self.request.excitatory
        return k if self.excitatory <= k < len(self.links) else None


@dataclass(frozen=True)
class CircuitView:
    want: CircuitRequest | None  # None: the unit's layer is the first
    shown: CircuitInputs | None  # the newest inputs (maybe of an older request)
    relu_side: str = ""  # of the shown unit's value: Network.relu_side


# -- the rules of its keys ---------------------------------------------------------------


def _toggle(state: ViewState) -> ViewState:
    return replace(state, circuit=not state.circuit)


def _further(state: ViewState) -> ViewState:
    """One layer further back, round to the layer just before."""
    return replace(state, circuit_from=state.circuit_from % max(state.explained[0], 1) + 1, circuit_pick=0)


def _next(state: ViewState) -> ViewState:
    return replace(state, circuit_pick=(state.circuit_pick + 1) % CIRCUIT_LINKS)


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


# -- the worker's side --------------------------------------------------------------------


class CircuitWork(FrameWork):
    def __init__(self, worker) -> None:
        self.worker = worker
        self._thumbnails: dict[tuple[str, int], tuple] = {}  # (layer, unit) -> (image, kind), once found

    def needs(self, request: CircuitRequest) -> BackwardNeed:
        return BackwardNeed(request.layer, request.unit, source=request.source)

    def answer(self, request: CircuitRequest, frame: FrameContext) -> CircuitInputs:
        from toolbox.optvis.circuits import Circuit

        done = frame.backward(request.layer, request.unit)
        score = done.result.score
        circuit = Circuit(request.layer, request.unit, request.source, done.contributions, score)
        excitatory = circuit.links(request.excitatory)
        links = tuple(excitatory) + tuple(circuit.links(request.inhibitory, inhibitory=True))
        thumbnails = tuple(self.thumbnail(request.source, link.unit) for link in links)
        return CircuitInputs(request, score, links, len(excitatory), thumbnails)

    def thumbnail(self, layer: str, unit: int) -> tuple | None:
        """A unit's optimized image or top crop, small (kept once found; looked for again
        while missing, since the window makes unit images as it goes)."""
        from toolbox.assets.thumbnails import unit_thumbnail

        key = (layer, unit)
        if key not in self._thumbnails:
            found = unit_thumbnail(self.worker.folder, self.worker.crops, layer, unit)
            if found is None:
                return None
            image = cv2.resize(found[0], (THUMBNAIL, THUMBNAIL), interpolation=cv2.INTER_AREA)
            self._thumbnails[key] = (frozen(image), found[1])
        return self._thumbnails[key]


# -- the window's side --------------------------------------------------------------------


def circuit_title(canvas: np.ndarray, request: CircuitRequest, stale: bool = False) -> None:
    """The unit explained and where its inputs come from ("..." while a newer one is on its way);
    long layer names shrink the text rather than run into the next column."""
    shrunk_title(canvas, L.CROPS, f"circuit: {request.layer} {request.unit} <- {request.source}"
                 + (" ..." if stale else ""))


class CircuitMode(Mode):
    name = "circuit"
    actions = (
        KeyAction("circuit", "crops pane: top crops / the unit's circuit (strongest inputs)", _toggle),
        KeyAction("circuit_from", "circuit: inputs from the layer before / further back", _further),
        KeyAction("circuit_next", "circuit: highlight the next input", _next),
        KeyAction("circuit_jump", "circuit: go to the highlighted input (or click it)"),
        KeyAction("circuit_back", "circuit: back along the path", back),
    )
    panes = ("crops",)

    def active(self, state: ViewState) -> bool:
        return state.circuit

    def want(self, app, state: ViewState) -> CircuitRequest | None:
        """The inputs of the unit the gradient pane explains (one backward pass serves both)
        from ``circuit_from`` layers before; None when the view is off or the unit's layer is
        the first."""
        layer, unit = state.explained
        if not state.circuit or layer == 0:
            return None
        source = layer - min(state.circuit_from, layer)
        return CircuitRequest(app.layers[layer], unit, app.layers[source], CIRCUIT_EXCITATORY, CIRCUIT_INHIBITORY)

    def view(self, app, session) -> CircuitView:
        latest = session.latest
        shown = None if latest is None else latest.part(self.name)
        return CircuitView(self.want(app, session.state), shown,
                           "" if shown is None else app.net.relu_side(shown.request.layer, True))

    def on_action(self, app, session, state: ViewState, action: str) -> ViewState | None:
        if action == "circuit_jump":
            return self._jump(app, session, state, state.circuit_pick)
        return None

    def on_click(self, app, session, x: int, y: int) -> ViewState | None:
        pick = circuit_cell_at(x, y)
        return None if pick is None else self._jump(app, session, session.state, pick)

    def _jump(self, app, session, state: ViewState, pick: int) -> ViewState:
        """To input ``pick`` of the circuit on screen (when it is the one the view wants)."""
        shown = None if session.latest is None else session.latest.part(self.name)
        if not state.circuit or shown is None or shown.request != self.want(app, state):
            keys = app.hints
            session.message = ("circuit: wait for the inputs to be shown" if state.circuit
                               else f"{keys['circuit']}: the circuit view")
            return state
        k = shown.at(pick)
        if k is None:
            return state
        return jump(state, app.layers.index(shown.request.source), shown.links[k].unit)

    def draw(self, canvas: np.ndarray, view, data: CircuitView, keys: Hints) -> None:
        """The explained unit's strongest inputs, each a thumbnail (its optimized image or top
        crop; else its map on this frame) over its unit and share."""
        want, shown, s = data.want, data.shown, view.state
        if want is None:
            title(canvas, L.CROPS, "circuit")
            placeholder(canvas, L.CROPS, ["the first layer has no earlier layer", "to draw its inputs from"])
            return
        if shown is None:
            circuit_title(canvas, want)
            placeholder(canvas, L.CROPS, ["measuring its inputs...", "(compiled once: a few seconds)"])
            return
        circuit_title(canvas, shown.request, stale=shown.request != want)
        maps = None if view.observation is None else view.observation.activations.get(shown.request.source)
        signed = maps is not None and bool((maps < 0).any())
        for cell in range(sum(L.CIRCUIT_ROW)):
            r = L.circuit_cell(cell)
            k = shown.at(cell)
            x, y = r.x + (r.w - L.CIRCUIT_THUMB) // 2, r.y + 2
            box = Rect(x, y, L.CIRCUIT_THUMB, L.CIRCUIT_THUMB)
            if k is None:
                cv2.rectangle(canvas, (x, y), (x + box.w - 1, y + box.h - 1), (60, 60, 68), 1)
                continue
            link, thumb = shown.links[k], shown.thumbnails[k]
            if thumb is not None:
                paste(canvas, thumb[0], box)
            elif maps is not None:  # its map on this frame, as the grid draws it
                paste(canvas, apply_lut(grid_levels(maps[..., link.unit:link.unit + 1], "channel", signed)[0],
                                        signed), box, cv2.INTER_NEAREST)
            if cell == s.circuit_pick:
                cv2.rectangle(canvas, (x - 2, y - 2), (x + box.w + 1, y + box.h + 1), SELECT, 2)
            color = (255, 170, 90) if link.contribution > 0 else (120, 170, 255)
            text(canvas, f"{link.unit}", x, y + box.h + 15, TEXT, 0.42)
            text(canvas, f"{link.share:+.1%}", x, y + box.h + 31, color, 0.42)
        n = L.CIRCUIT_NOTES
        path = f", path {len(s.path)}" if s.path else ""
        lines = [(f"value: max {shown.value:.3g}{data.relu_side}", TEXT), ("share of all |contributions|;", DIM),
                 ("top row excites, this row inhibits", DIM),
                 (f"{keys['circuit_next']} next, {keys['circuit_jump']} go, {keys['circuit_back']} back{path}", DIM),
                 (f"{keys['circuit_from']} from further back, {keys['circuit']} crops", DIM)]
        for i, (line, color) in enumerate(lines):
            text(canvas, line, n.x, n.y + 14 + 16 * i, color, 0.4)

    def worker_side(self, worker) -> CircuitWork:
        return CircuitWork(worker)


MODE = CircuitMode()
