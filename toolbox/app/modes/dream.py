"""Dream mode: the input pane shows a live DeepDream of the frame, each frame starting from
the previous dream carried along the optical flow (``optvis.live_dream``)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from toolbox.app.modes.base import FrameWork, Mode
from toolbox.app.protocol import FrameContext, Hints, KeyAction, frozen
from toolbox.app.state import ViewState


@dataclass(frozen=True)
class DreamRequest:
    """Dream ``layers`` ((name, weight), ...) on the frame, ``steps`` per frame, starting from
    the previous dream carried along the optical flow."""

    layers: tuple[tuple[str, float], ...]
    steps: int
    step_size: float
    blend: float
    fit: str  # how the dream is fitted to the input pane's square (as the frame is)
    side: int  # frames are dreamed with their longer side at most this (live.dream_side)
    objective: str = "l2"  # l2 or abs-square (dream.objective)


@dataclass(frozen=True)
class DreamView:
    dream: np.ndarray | None  # the newest frame's dream, fitted to the square like the frame
    note: str  # what dreams


def _toggle(state: ViewState) -> ViewState:
    return replace(state, dream=not state.dream)


class DreamWork(FrameWork):
    def __init__(self, worker) -> None:
        self.worker = worker
        self._dreamers: dict = {}  # (layers, objective) -> DeepDream (compiled once for each)
        self._live = None  # (DreamRequest, LiveDream) of the last dreamed frame

    def answer(self, request: DreamRequest, frame: FrameContext) -> np.ndarray | None:
        if frame.raw is None:
            return None
        net = self.worker.network
        return frozen(net.fit_input(self._dream(request)(frame.raw), request.fit))

    def idle(self) -> None:
        self._live = None  # dream mode ended: the next dream starts afresh

    def _dream(self, want: DreamRequest):
        """The LiveDream for ``want``: the last one while the request stays the same (its
        previous dream carries on), a fresh one when it changes."""
        from toolbox.optvis.dream import DeepDream
        from toolbox.optvis.live_dream import LiveDream
        from toolbox.optvis.objectives import DREAM_OBJECTIVES

        if self._live is None or self._live[0] != want:
            key = (want.layers, want.objective)
            net = self.worker.network
            if key not in self._dreamers:
                self._dreamers[key] = DeepDream(net, DREAM_OBJECTIVES[want.objective](dict(want.layers)))
            dreamer = self._dreamers[key]
            self._live = (want, LiveDream(net, dreamer.objective, want.steps, want.step_size, want.blend,
                                          side=want.side, dreamer=dreamer))
        return self._live[1]


class DreamMode(Mode):
    name = "dream"
    actions = (KeyAction("dream", "input pane: the frame / a live DeepDream of it", _toggle),)
    panes = ("input",)

    def active(self, state: ViewState) -> bool:
        return state.dream

    def want(self, app, state: ViewState) -> DreamRequest | None:
        """live.dream_layers, else the selected layer."""
        if not state.dream:
            return None
        live = app.settings.live
        layers = app.dream_layers or ((app.layers[state.layer], 1.0),)
        return DreamRequest(layers, live.dream_steps, live.dream_step_size, live.dream_blend,
                            app.settings.images.fit, live.dream_side, app.settings.dream.objective)

    def view(self, app, session) -> DreamView:
        want = self.want(app, session.state)
        latest = session.latest
        note = "" if want is None else f"{', '.join(name for name, _ in want.layers)}, {want.steps} steps/frame"
        return DreamView(None if latest is None else latest.part(self.name), note)

    def draw(self, canvas: np.ndarray, view, data: DreamView, keys: Hints) -> None:
        from toolbox.app.dashboard import draw_input

        draw_input(canvas, view, f"dream: {data.note}" if data.dream is not None else "dream: starting...",
                   data.dream)

    def worker_side(self, worker) -> DreamWork:
        return DreamWork(worker)


MODE = DreamMode()
