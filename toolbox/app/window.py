"""The live toolbox: the UI loop that owns the OpenCV window, and its headless twin.

The UI thread reads keys and the mouse, folds them into the ViewState, pulls the newest
results from the network worker and draws; it never waits for the network. Without a
display the same dashboard is rendered to PNG files and/or an MP4 recording.
"""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from toolbox.app.dashboard import DashboardView, draw_dashboard, new_canvas
from toolbox.app.keys import Action
from toolbox.app.layout import GRID, grid_geometry, layer_at
from toolbox.app.modes import MODES, NOTHING, Mode, apply, key_map
from toolbox.app.protocol import Answer, Hints, Slot, WorkerError, frozen
from toolbox.app.sources import open_source
from toolbox.app.state import BACKPROP_FILTERS, BACKPROP_MODES, SCALE_MODES, ViewState, select
from toolbox.app.worker import FrameRequest, FrameResult, NetworkWorker
from toolbox.errors import UserError
from toolbox.images import VideoWriter, write_image
from toolbox.settings import Settings, parse_layer_weights

WINDOW_TITLE = "deepvis"
UI_SWITCH_INTERVAL = 0.0005  # seconds; see favour_ui_thread


def favour_ui_thread() -> None:
    """Hand the GIL between threads every 0.5 ms instead of Python's 5 ms. Drawing makes
    dozens of OpenCV calls that each release the GIL; while the worker runs Python (compiling
    a new unit-image step), each call would otherwise wait up to 5 ms to get it back, and
    a key's effect could take over 100 ms to reach the screen."""
    sys.setswitchinterval(UI_SWITCH_INTERVAL)


class Rate:
    """Events per second, smoothed."""

    def __init__(self) -> None:
        self.value, self._last = 0.0, None

    def tick(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            inst = 1.0 / max(now - self._last, 1e-6)
            self.value = inst if self.value == 0 else 0.9 * self.value + 0.1 * inst
        self._last = now


@dataclass
class LiveSession:
    """The UI side's own bookkeeping (touched by the UI thread only)."""

    state: ViewState
    frame_id: int = 0
    waiting_for: int | None = None  # frame id sent to the worker and not yet answered
    latest: FrameResult | None = None
    selection_since: float = 0.0
    message: str = ""
    raw: np.ndarray | None = None  # the source frame last sent (dream mode dreams on it)
    slots: dict[str, Slot] = field(default_factory=dict)  # each job mode's bookkeeping

    def slot(self, mode: str) -> Slot:
        return self.slots.setdefault(mode, Slot())


class LiveApp:
    """The live core: state, keys, the worker's requests and answers, the dashboard's data.
    A front end (the OpenCV window below, the headless recorder) calls ``tick`` and feeds it
    keys and clicks; every mode joins through ``toolbox.app.modes``."""

    def __init__(self, worker: NetworkWorker, settings: Settings, files) -> None:
        self.worker, self.settings = worker, settings
        self.net = worker.network
        self.layers = tuple(self.net.spec.layer_names)
        self.channels = tuple(layer.channels for layer in self.net.spec.layers)
        self.keymap = key_map(settings.live.keys)
        self.hints = Hints(self.keymap.hints())  # every hint on screen says the key bound now
        self.help_lines = tuple(self.keymap.help_lines())  # fixed for the session: not rebuilt per frame
        self.files = files  # the source given on the command line (see sources.open_source)
        self.camera = None
        self.ui_rate = Rate()
        self._canvas = new_canvas()  # redrawn in place every frame, shown or saved at once
        first = self.net.spec.layer(settings.live.layer).name if settings.live.layer else self.net.spec.first_live_layer
        live = settings.live
        if live.dream_layers:
            self.dream_layers = tuple((self.net.spec.layer(name).name, w)
                                      for name, w in parse_layer_weights(live.dream_layers).items())
        else:
            self.dream_layers = None  # the selected layer
        self.initial_state = ViewState(layer=self.layers.index(first), dream=live.dream, circuit=live.circuit,
                                       scale=SCALE_MODES.index(settings.live.grid_scale),
                                       backprop=BACKPROP_MODES.index(settings.live.backprop),
                                       backprop_filter=BACKPROP_FILTERS.index(settings.live.backprop_filter),
                                       accentuate=live.accentuate)
        self.frame_modes = tuple(mode for mode in MODES if mode.kind == "frame")
        self.job_modes = tuple(mode for mode in MODES if mode.kind == "job")

    # -- shared by every front end --------------------------------------------------------

    @property
    def source(self):
        return self.camera if self.camera is not None else self.files

    def prepare(self, frame: np.ndarray) -> np.ndarray:
        return frozen(self.net.fit_input(frame, self.settings.images.fit))

    def frame_parts(self, state: ViewState) -> tuple[tuple[str, object], ...]:
        """What each frame mode that is on asks of a frame in ``state``."""
        parts = ((mode.name, mode.want(self, state)) for mode in self.frame_modes)
        return tuple((name, want) for name, want in parts if want is not None)

    def request(self, frame_id: int, image: np.ndarray, state: ViewState,
                raw: np.ndarray | None = None) -> FrameRequest:
        parts = self.frame_parts(state)
        dreaming = any(name == "dream" for name, _ in parts)  # the dream works on the source frame itself
        return FrameRequest(frame_id, image, parts, frozen(raw) if dreaming and raw is not None else None)

    def rested(self, session: LiveSession) -> bool:
        """Whether the selection has stayed put long enough to start work on it (live.unit_image_delay)."""
        return time.perf_counter() - session.selection_since >= self.settings.live.unit_image_delay

    def view(self, session: LiveSession) -> DashboardView:
        state, latest = session.state, session.latest
        layer = self.layers[state.layer]
        return DashboardView(
            state=state, network=self.net.name, layers=self.layers, channels=self.channels,
            signed=not self.net.non_negative(layer), relu_side=self.net.relu_side(layer, False),
            frame=None if latest is None else latest.image,
            observation=None if latest is None else latest.observation,
            top=() if latest is None else tuple(latest.observation.top(self.net.labels, 5)),
            receptive_field=self.net.receptive_field(layer),
            net_fps=0.0 if latest is None else 1.0 / max(latest.seconds, 1e-6), ui_fps=self.ui_rate.value,
            source=self.source.label, message=session.message, help_lines=self.help_lines,
            classifier=self.net.spec.has_classifier, hints=self.hints,
            modes=tuple((mode, mode.view(self, session)) for mode in MODES if mode.active(state)))

    # -- the window -----------------------------------------------------------------------

    def run_window(self, unit: int = 0) -> int:
        """The window until q, Esc or closing it, with ``unit`` of the first layer selected."""
        self.net.check_unit(self.layers[self.initial_state.layer], unit)
        try:
            cv2.namedWindow(WINDOW_TITLE, cv2.WINDOW_GUI_NORMAL | cv2.WINDOW_AUTOSIZE)
        except cv2.error as e:
            raise UserError(f"cannot open a window ({str(e).strip().splitlines()[-1]}); use --headless") from None
        session = self.new_session(unit)
        clicks: list[tuple[int, int]] = []
        cv2.setMouseCallback(WINDOW_TITLE, lambda event, x, y, *_: clicks.append((x, y))
                             if event == cv2.EVENT_LBUTTONDOWN else None)
        favour_ui_thread()
        self.worker.start()
        try:
            while not session.state.quit:
                canvas = self.tick(session)
                cv2.imshow(WINDOW_TITLE, canvas[..., ::-1])
                code = cv2.waitKeyEx(10)
                if code != -1:
                    session = self.on_key(session, code, canvas)
                while clicks:
                    session = self.on_click(session, *clicks.pop(0))
                if cv2.getWindowProperty(WINDOW_TITLE, cv2.WND_PROP_VISIBLE) < 1:
                    break  # closed with the window manager
        finally:
            cv2.destroyAllWindows()  # gone at once; the worker may still finish a compiled call
            self.worker.stop()
            self.close()
        return 0

    def new_session(self, unit: int = 0) -> LiveSession:
        return LiveSession(replace(self.initial_state, unit=unit), selection_since=time.perf_counter())

    def tick(self, session: LiveSession) -> np.ndarray:
        """One pass of the UI loop (the worker thread must be running): feed the worker,
        take its answers, let each job mode ask for what it needs, draw. Never waits."""
        self.ui_rate.tick()
        self._feed(session)
        self._collect(session)
        for mode in self.job_modes:
            self._drive(mode, session)
        return draw_dashboard(self.view(session), self._canvas)

    def _feed(self, session: LiveSession) -> None:
        """Send the worker a new frame when it has answered the last one. A still image or a
        paused stream has nothing new to look at, unless a frame mode wants another answer of
        it (the method, filter or explained unit changed, or it dreams): then the same frame
        goes again."""
        if session.waiting_for is not None:
            return
        latest, still = session.latest, session.state.paused or not self.source.live
        if latest is None or not still:
            self._resend(session)
        elif session.state.dream or latest.asked != self.frame_parts(session.state):
            self._send(session, latest.image, session.raw)  # a still picture keeps dreaming

    def _resend(self, session: LiveSession) -> None:
        """Send the source's current frame, whatever the worker is doing (latest wins)."""
        raw = self.source.read()
        self._send(session, self.prepare(raw), raw)

    def _send(self, session: LiveSession, image: np.ndarray, raw: np.ndarray | None = None) -> None:
        session.frame_id += 1
        session.waiting_for = session.frame_id
        session.raw = raw
        self.worker.frames.put(self.request(session.frame_id, image, session.state, raw))

    def _collect(self, session: LiveSession) -> None:
        while not self.worker.results.empty():
            self.take(session, self.worker.results.get_nowait())

    def take(self, session: LiveSession, result: FrameResult | Answer | WorkerError) -> None:
        """Fold one message of the worker into the session."""
        if isinstance(result, FrameResult):
            session.latest = result
        elif isinstance(result, Answer):
            session.slot(result.mode).shown[result.part] = result.value
        else:
            session.message = result.message
            if result.mode is not None:
                session.slot(result.mode).failed = result.request
        if isinstance(result, (FrameResult, WorkerError)) and result.frame_id == session.waiting_for:
            session.waiting_for = None

    def _drive(self, mode: Mode, session: LiveSession) -> None:
        """Send what job mode ``mode`` asks for now (a request, or None to stop its job)."""
        slot = session.slot(mode.name)
        request = mode.drive(self, session, slot)
        if request is NOTHING:
            return
        self.worker.ask(mode.name, request)
        slot.asked = request
        if request is not None:
            slot.failed = None

    def on_key(self, session: LiveSession, code: int, canvas: np.ndarray) -> LiveSession:
        hit = self.keymap.lookup(code)
        if hit is None:
            return session
        action, big = hit
        state = apply(session.state, action, self.channels, self.settings.live.big_step if big else 1)
        session.message = ""
        if action in (Action.NEXT_IMAGE, Action.PREV_IMAGE):
            self.source.step(1 if action == Action.NEXT_IMAGE else -1)
            self._resend(session)
        elif action == Action.SWITCH_SOURCE:
            state = self._switch_source(state, session)
        elif action == Action.SAVE:
            path = (Path(self.settings.live.save_dir) / time.strftime("deepvis-%Y%m%d-%H%M%S.png")).absolute()
            write_image(path, canvas)
            session.message = f"saved {path}"
        else:
            for mode in MODES:
                if any(a.name == action for a in mode.actions):
                    state = mode.on_action(self, session, state, action) or state
        self._set_state(session, state)
        return session

    def _switch_source(self, state: ViewState, session: LiveSession) -> ViewState:
        if state.camera:
            try:
                self.camera = open_source(self.settings.live.camera)
            except UserError as e:
                session.message = str(e)
                return replace(state, camera=False)
        elif self.camera is not None:
            self.camera.close()
            self.camera = None
        self._resend(session)
        return state

    def on_click(self, session: LiveSession, x: int, y: int) -> LiveSession:
        """A click: on a pane an active mode draws (the circuit's inputs), else on the layer list
        or the grid."""
        for mode in MODES:
            if mode.active(session.state):
                state = mode.on_click(self, session, x, y)
                if state is not None:
                    self._set_state(session, state)
                    return session
        layer = layer_at(x, y, session.state.layer, len(self.layers))
        if layer is not None:  # a line of the layer list: that layer, the unit kept where it exists
            unit = min(session.state.unit, self.channels[layer] - 1)
            self._set_state(session, replace(session.state, layer=layer, unit=unit))
            return session
        channels = self.channels[session.state.layer]
        geo = grid_geometry(channels)
        unit = geo.unit_at(x, y, geo.page_of(session.state.unit), GRID)
        if unit is not None:
            self._set_state(session, select(session.state, unit))
        return session

    def _set_state(self, session: LiveSession, state: ViewState) -> None:
        if (state.layer, state.unit) != (session.state.layer, session.state.unit):
            session.selection_since = time.perf_counter()
        session.state = state

    def close(self) -> None:
        self.files.close()
        if self.camera is not None:
            self.camera.close()

    # -- headless -------------------------------------------------------------------------

    def run_headless(self, frames: int, out_dir: Path | None, video: Path | None,
                     unit: int = 0, progress=None) -> list[Path]:
        """Render ``frames`` dashboards, advancing the input each time, to PNGs and/or a video:
        each job mode's work for the selection made to the end for every frame that needs it."""
        state = replace(self.initial_state, unit=unit)
        self.net.check_unit(self.layers[state.layer], unit)
        session = LiveSession(state, selection_since=-float("inf"))  # the selection rests from the start
        written: list[Path] = []
        # the writer's own context keeps or removes the recording, as the loop ends
        with VideoWriter(video, fps=5) if video else contextlib.nullcontext() as recorder:
            try:
                for i in range(frames):
                    if i:
                        self.source.step(1)
                    raw = self.source.read()
                    session.latest = self.worker.observe(self.request(i, self.prepare(raw), state, raw))
                    self._run_jobs(session)
                    canvas = draw_dashboard(self.view(session), self._canvas)
                    if out_dir is not None:
                        path = out_dir / f"dashboard_{i:04d}.png"
                        write_image(path, canvas)
                        written.append(path)
                    if recorder is not None:
                        recorder.write(canvas)
                    if progress is not None:
                        progress()
            finally:
                self.close()
        return written

    def _run_jobs(self, session: LiveSession) -> None:
        """Headless: what each job mode asks for now, made at once (a unit image once, an
        accentuation of every frame)."""
        for mode in self.job_modes:
            slot = session.slot(mode.name)
            request = mode.drive(self, session, slot)
            if request is NOTHING:
                continue
            slot.asked = request
            if request is not None:
                slot.shown.update(self.worker.at_once(mode.name, request))
