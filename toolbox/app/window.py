"""The live toolbox: the UI loop that owns the OpenCV window, and its headless twin.

The UI thread reads keys and the mouse, folds them into the ViewState, pulls the newest
results from the network worker and draws; it never waits for the network. Without a
display the same dashboard is rendered to PNG files and/or an MP4 recording.
"""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from toolbox.app.dashboard import DashboardView, draw_dashboard, new_canvas
from toolbox.app.keys import Action, KeyMap
from toolbox.app.layout import GRID, circuit_cell_at, grid_geometry
from toolbox.app.sources import open_source
from toolbox.app.state import (
    BACKPROP_FILTERS,
    BACKPROP_MODES,
    CIRCUIT_EXCITATORY,
    CIRCUIT_INHIBITORY,
    SCALE_MODES,
    ViewState,
    apply,
    jump,
    select,
)
from toolbox.app.worker import (
    AccentImage,
    AccentRequest,
    BackpropRequest,
    CircuitRequest,
    DreamRequest,
    FrameRequest,
    FrameResult,
    LayerPatterns,
    NetworkWorker,
    PatternRequest,
    UnitCrops,
    UnitImage,
    UnitRequest,
    WorkerError,
    frozen,
)
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
    unit_image: UnitImage | None = None
    selection_since: float = 0.0
    requested: UnitRequest | None = None  # the unit image (and crops) last asked for
    accent: AccentImage | None = None  # the newest accentuation the worker sent
    accent_asked: AccentRequest | None = None  # the accentuation being made (None: none)
    accent_failed: AccentRequest | None = None  # the last one the worker gave up on (not asked again)
    unit_failed: tuple[str, int] | None = None  # (layer, unit) whose unit image the worker gave up on
    message: str = ""
    crops: UnitCrops | None = None
    patterns: LayerPatterns | None = None
    patterns_requested: str | None = None
    raw: np.ndarray | None = None  # the source frame last sent (dream mode dreams on it)


class LiveApp:
    def __init__(self, worker: NetworkWorker, settings: Settings, files) -> None:
        self.worker, self.settings = worker, settings
        self.net = worker.network
        self.layers = tuple(self.net.spec.layer_names)
        self.channels = tuple(layer.channels for layer in self.net.spec.layers)
        self.keymap = KeyMap(settings.live.keys)
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

    # -- shared by both modes -------------------------------------------------------------

    @property
    def source(self):
        return self.camera if self.camera is not None else self.files

    def prepare(self, frame: np.ndarray) -> np.ndarray:
        return frozen(self.net.fit_input(frame, self.settings.images.fit))

    def backprop_request(self, state: ViewState) -> BackpropRequest | None:
        """The map the gradient pane wants for ``state``: of the frozen unit, else the selected one."""
        if state.backprop_mode == "off":
            return None
        layer, unit = state.explained
        return BackpropRequest(self.layers[layer], unit, state.backprop_mode, state.backprop_filter_name)

    def circuit_request(self, state: ViewState) -> CircuitRequest | None:
        """What the circuit view wants: the inputs of the unit the gradient pane explains (one
        backward pass serves both) from ``circuit_from`` layers before; None when the view is
        off or the unit's layer is the first."""
        layer, unit = state.explained
        if not state.circuit or layer == 0:
            return None
        source = layer - min(state.circuit_from, layer)
        return CircuitRequest(self.layers[layer], unit, self.layers[source], CIRCUIT_EXCITATORY, CIRCUIT_INHIBITORY)

    def dream_request(self, state: ViewState) -> DreamRequest | None:
        """What dream mode dreams: live.dream_layers, else the selected layer."""
        if not state.dream:
            return None
        live = self.settings.live
        layers = self.dream_layers or ((self.layers[state.layer], 1.0),)
        return DreamRequest(layers, live.dream_steps, live.dream_step_size, live.dream_blend, self.settings.images.fit,
                            live.dream_side, self.settings.dream.objective)

    def request(self, frame_id: int, image: np.ndarray, state: ViewState,
                raw: np.ndarray | None = None) -> FrameRequest:
        dream = self.dream_request(state)
        return FrameRequest(frame_id, image, self.backprop_request(state), dream,
                            frozen(raw) if dream is not None and raw is not None else None,
                            self.circuit_request(state))

    def view(self, session: LiveSession) -> DashboardView:
        state, latest = session.state, session.latest
        layer = self.layers[state.layer]
        pane_title, image, note = self._unit_image_pane(session)
        crops = session.crops if session.crops is not None and (session.crops.layer, session.crops.unit) == (
            layer, state.unit) else None
        patterns = session.patterns.images if session.patterns is not None and session.patterns.layer == layer else None
        return DashboardView(
            state=state, network=self.net.name, layers=self.layers, channels=self.channels,
            signed=not self.net.non_negative(layer), crops=crops, patterns=patterns,
            frame=None if latest is None else latest.image,
            observation=None if latest is None else latest.observation,
            top=() if latest is None else tuple(latest.observation.top(self.net.labels, 5)),
            receptive_field=self.net.receptive_field(layer),
            unit_image=image, unit_image_note=note, unit_image_title=pane_title,
            net_fps=0.0 if latest is None else 1.0 / max(latest.seconds, 1e-6), ui_fps=self.ui_rate.value,
            source=self.source.label,
            message=session.message, help_lines=self.help_lines,
            backprop=self.backprop_request(state), gradient=None if latest is None else latest.gradient,
            dream=None if latest is None else latest.dream, dream_note=self._dream_note(state),
            circuit_want=self.circuit_request(state), circuit=None if latest is None else latest.circuit,
            classifier=self.net.spec.has_classifier)

    def _unit_image_pane(self, session: LiveSession) -> tuple[str, np.ndarray | None, str]:
        """The optimized-image pane's title, picture (None: a placeholder) and note: the selected
        unit's image, or in accentuation mode the unit accentuated in the frame."""
        state, key = session.state, (self.layers[session.state.layer], session.state.unit)
        failed = "failed: see the status line"
        if state.accentuate:
            asked = session.accent_asked
            if asked is not None and asked is session.accent_failed:
                return "accentuated in this frame", None, failed
            shown = session.accent
            if shown is None or (shown.request.layer, shown.request.unit) != key:
                waiting = asked is not None and (asked.layer, asked.unit) == key
                return "accentuated in this frame", None, (
                    "starting... (compiles once a layer)" if waiting else "made when the selection rests")
            r = shown.result
            gain = (f" (x{r.after / r.before:.1f})"  # a unit that was barely on has no useful ratio
                    if r.before > 0 and r.after < 100 * r.before else "")
            progress = (f"{r.psnr:.1f} dB from the frame, step {r.steps}/{shown.steps}"
                        if shown.request is asked or asked is None else "the picture before; this one is starting")
            return "accentuated in this frame", r.image, f"unit mean {r.before:.3g} -> {r.after:.3g}{gain}\n{progress}"
        ui = session.unit_image
        if ui is not None and (ui.layer, ui.unit) == key and (ui.done or session.unit_failed != key):
            return "optimized image", ui.image, ("from the unit-image folder" if ui.origin == "cache" else
                                                 "made now and cached" if ui.done else
                                                 f"optimizing... step {ui.step}/{ui.steps}")
        if session.unit_failed == key:
            return "optimized image", None, failed
        asked = session.requested is not None and (session.requested.layer, session.requested.unit) == key
        return "optimized image", None, "starting..." if asked else "made when the selection rests"

    def _dream_note(self, state: ViewState) -> str:
        want = self.dream_request(state)
        if want is None:
            return ""
        return f"{', '.join(name for name, _ in want.layers)}, {want.steps} steps/frame"

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
                    session = self._on_key(session, code, canvas)
                while clicks:
                    session = self._on_click(session, *clicks.pop(0))
                if cv2.getWindowProperty(WINDOW_TITLE, cv2.WND_PROP_VISIBLE) < 1:
                    break  # closed with the window manager
        finally:
            self.worker.stop()
            cv2.destroyAllWindows()
            self.close()
        return 0

    def new_session(self, unit: int = 0) -> LiveSession:
        return LiveSession(replace(self.initial_state, unit=unit), selection_since=time.perf_counter())

    def tick(self, session: LiveSession) -> np.ndarray:
        """One pass of the UI loop (the worker thread must be running): feed the worker,
        take its answers, ask for the unit image, draw. Never waits for the network."""
        self.ui_rate.tick()
        self._feed(session)
        self._collect(session)
        self._request_unit_image(session)
        self._request_accent(session)
        self._request_patterns(session)
        return draw_dashboard(self.view(session), self._canvas)

    def _feed(self, session: LiveSession) -> None:
        """Send the worker a new frame when it has answered the last one. A still image or a
        paused stream has nothing new to look at, unless the gradient pane wants another map
        of it (the method, filter or explained unit changed): then the same frame goes again."""
        if session.waiting_for is not None:
            return
        latest, still = session.latest, session.state.paused or not self.source.live
        if latest is None or not still:
            self._resend(session)
        elif (session.state.dream or latest.backprop != self.backprop_request(session.state)
              or latest.circuit_request != self.circuit_request(session.state)):
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
            result = self.worker.results.get_nowait()
            if isinstance(result, FrameResult):
                session.latest = result
                if result.frame_id == session.waiting_for:
                    session.waiting_for = None
            elif isinstance(result, UnitImage):
                session.unit_image = result
            elif isinstance(result, AccentImage):
                session.accent = result
            elif isinstance(result, UnitCrops):
                session.crops = result
            elif isinstance(result, LayerPatterns):
                session.patterns = result
            elif isinstance(result, WorkerError):
                session.message = result.message
                session.unit_failed = result.unit or session.unit_failed
                session.accent_failed = result.accent or session.accent_failed
                if result.frame_id is not None and result.frame_id == session.waiting_for:
                    session.waiting_for = None

    def _rested(self, session: LiveSession) -> bool:
        """Whether the selection has stayed put long enough to start work on it (live.unit_image_delay)."""
        return time.perf_counter() - session.selection_since >= self.settings.live.unit_image_delay

    def _request_unit_image(self, session: LiveSession) -> None:
        """Once the selection rests: its crops, and its image from the folder, else made now
        (not while accentuation mode has the pane)."""
        state = session.state
        want = UnitRequest(self.layers[state.layer], state.unit, make=not state.accentuate)
        if session.requested == want:
            return
        if session.requested is not None:  # the selection moved on: stop refining the old unit
            self.worker.units.put(UnitRequest(session.requested.layer, None))
            session.requested = None
        if self._rested(session):
            self.worker.units.put(want)
            session.requested, session.unit_failed = want, None

    def _request_accent(self, session: LiveSession) -> None:
        """Accentuation mode: once the selection rests, the selected unit in the picture on
        screen; again for each new picture (from a moving source: once the last one is done,
        so each is refined to the end)."""
        state, asked, latest = session.state, session.accent_asked, session.latest
        key = (self.layers[state.layer], state.unit) if state.accentuate else None
        if asked is not None and (asked.layer, asked.unit) != key:  # mode off or selection moved: stop
            self.worker.accents.put(AccentRequest(asked.layer, None))
            session.accent_asked = asked = None
        if key is None or latest is None or not self._rested(session):
            return
        if asked is not None:
            if asked.image is latest.image or asked is session.accent_failed:  # asked already, or failed:
                return  # re-sent frames carry the same picture object; a failed one waits for a new selection
            shown = session.accent
            moving = self.source.live and not state.paused
            if moving and not (shown is not None and shown.request is asked and shown.done):
                return
        session.accent_asked = AccentRequest(*key, latest.image)
        self.worker.accents.put(session.accent_asked)

    def _request_patterns(self, session: LiveSession) -> None:
        """In pattern mode, ask once per layer for its units' optimized images."""
        wanted = self.layers[session.state.layer] if session.state.pattern else None
        if wanted != session.patterns_requested:
            self.worker.patterns.put(PatternRequest(wanted))
            session.patterns_requested = wanted

    def _on_key(self, session: LiveSession, code: int, canvas: np.ndarray) -> LiveSession:
        hit = self.keymap.lookup(code)
        if hit is None:
            return session
        action, big = hit
        before = session.state
        state = apply(before, action, self.channels, self.settings.live.big_step if big else 1)
        session.message = ""
        if action in (Action.NEXT_IMAGE, Action.PREV_IMAGE):
            self.source.step(1 if action is Action.NEXT_IMAGE else -1)
            self._resend(session)
        elif action is Action.SWITCH_SOURCE:
            state = self._switch_source(state, session)
        elif action is Action.CIRCUIT_JUMP:
            state = self._jump(session, state, state.circuit_pick)
        elif action is Action.SAVE:
            path = Path(self.settings.live.save_dir) / time.strftime("deepvis-%Y%m%d-%H%M%S.png")
            write_image(path, canvas)
            session.message = f"saved {path}"
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

    def _jump(self, session: LiveSession, state: ViewState, pick: int) -> ViewState:
        """To input ``pick`` of the circuit on screen (when it is the one the view wants)."""
        shown = None if session.latest is None else session.latest.circuit
        if not state.circuit or shown is None or shown.request != self.circuit_request(state):
            session.message = "circuit: wait for the inputs to be shown" if state.circuit else "v: the circuit view"
            return state
        k = shown.at(pick)
        if k is None:
            return state
        return jump(state, self.layers.index(shown.request.source), shown.links[k].unit)

    def _on_click(self, session: LiveSession, x: int, y: int) -> LiveSession:
        if session.state.circuit:
            pick = circuit_cell_at(x, y)
            if pick is not None:
                self._set_state(session, self._jump(session, session.state, pick))
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
        """Render ``frames`` dashboards, advancing the input each time, to PNGs and/or a video."""
        state = replace(self.initial_state, unit=unit)
        layer = self.layers[state.layer]
        self.net.check_unit(layer, unit)
        session = LiveSession(state)
        if not state.accentuate:  # else the pane shows each frame accentuated
            session.unit_image = self.worker.unit_image_now(layer, unit)
        session.crops = self.worker.unit_crops(layer, unit)
        session.requested = UnitRequest(layer, unit)
        written: list[Path] = []
        # the writer's own context keeps or removes the recording, as the loop ends
        with VideoWriter(video, fps=5) if video else contextlib.nullcontext() as recorder:
            try:
                for i in range(frames):
                    if i:
                        self.source.step(1)
                    raw = self.source.read()
                    session.latest = self.worker.observe(self.request(i, self.prepare(raw), state, raw))
                    if state.accentuate:  # each frame's pane: the unit accentuated in it, run out
                        session.accent_asked = AccentRequest(layer, unit, session.latest.image)
                        session.accent = self.worker.accentuation_now(session.accent_asked)
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


