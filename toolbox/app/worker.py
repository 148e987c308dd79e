"""The one thread that owns the network.

The window sends the latest frame, and each job mode its latest request, through one-slot
mailboxes where a newer item replaces an older one (``toolbox.app.protocol``), and reads
results from a queue. Every message is an immutable snapshot; nothing else is shared.

A frame is answered with each frame mode's part (``FrameWork``), from one forward pass and
one backward pass per unit some mode explains. Between frames the worker advances every
running job (``Job``: a unit image, an accentuation) a slice at a time, so frames keep
flowing while it refines; any mode's failure is caught here, named to the window and the
job dropped, and the worker carries on.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from toolbox.app.modes import BY_NAME, FrameWork, JobWork
from toolbox.app.modes.accent import AccentSettings
from toolbox.app.protocol import _EMPTY, Answer, BackwardNeed, BackwardPass, FrameContext, Job, Mailbox, WorkerError
from toolbox.assets import UnitImageFolder
from toolbox.assets.crops import CropStore
from toolbox.nets import Network, Observation, Probe
from toolbox.optvis.attribution import Attributor, Target

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrameRequest:
    frame_id: int
    image: np.ndarray  # the network's square input, RGB uint8
    parts: tuple[tuple[str, Any], ...] = ()  # (frame mode, its request) for each mode that is on
    raw: np.ndarray | None = None  # the source frame, RGB uint8, for a mode that works on it (the dream)


@dataclass(frozen=True)
class FrameResult:
    frame_id: int
    image: np.ndarray
    observation: Observation
    seconds: float  # network time for this frame
    parts: tuple[tuple[str, Any], ...] = ()  # (frame mode, its answer)
    asked: tuple[tuple[str, Any], ...] = ()  # the requests they answer (FrameRequest.parts)

    def part(self, mode: str) -> Any:
        """``mode``'s answer on this frame (None when it was not asked)."""
        return next((value for name, value in self.parts if name == mode), None)


@dataclass(frozen=True)
class UnitImageSettings:
    preset: str  # the defaults a user sees live in toolbox.settings (units.preset, live.unit_image_*)
    size: int
    steps: int
    steps_per_turn: int = 4  # optimization steps between two looks at the frame mailbox
    show_every: int = 8  # send the image being refined every N steps


@dataclass
class _Running:
    request: Any
    job: Job
    shown: int = field(default=0)  # pictures sent so far (one every show_every steps)


class NetworkWorker:
    def __init__(self, network: Network, folder: UnitImageFolder, unit_settings: UnitImageSettings,
                 accent_settings: AccentSettings | None = None) -> None:
        self.network, self.folder, self.unit_settings = network, folder, unit_settings
        self.accent_settings = accent_settings or AccentSettings(network.spec.input_size, 128, 1.0)
        self.layers = network.spec.layer_names
        self.probe = Probe(network, self.layers)
        self.attributor = Attributor(network)  # compiles its one step on the first map asked for
        self.crops = CropStore(folder.root)
        self.work: dict[str, FrameWork | JobWork] = {name: mode.worker_side(self) for name, mode in BY_NAME.items()}
        self._wake = threading.Event()
        self.frames = Mailbox(self._wake)
        self.mailboxes = {name: Mailbox(self._wake) for name, work in self.work.items() if isinstance(work, JobWork)}
        self.jobs: dict[str, _Running] = {}
        self.results: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._frame_error = ""  # the last error a frame raised (logged once)

    def ask(self, mode: str, request: Any) -> None:
        """Send job mode ``mode`` its newest request (``None``: stop its job)."""
        self.mailboxes[mode].put(request)

    # -- synchronous use (headless mode, benchmarks) --------------------------------------

    def observe(self, request: FrameRequest) -> FrameResult:
        """The frame's observation and each asked mode's part. Without a mode that needs a
        backward pass the Probe runs alone, so the frame rate is unchanged."""
        start = time.perf_counter()
        needs: dict[tuple[str, int], BackwardNeed] = {}
        for name, want in request.parts:
            need = self.work[name].needs(want)
            if need is not None:
                key = (need.layer, need.unit)
                before = needs.get(key)  # two modes explaining one unit share its pass
                needs[key] = need if before is None else BackwardNeed(
                    need.layer, need.unit, need.rule or before.rule, need.source or before.source)
        observation, passes = self._passes(request.image, needs)
        frame = FrameContext(request.image, request.raw, passes)
        parts = tuple((name, self.work[name].answer(want, frame)) for name, want in request.parts)
        asked = {name for name, _ in request.parts}
        for name, work in self.work.items():
            if isinstance(work, FrameWork) and name not in asked:
                work.idle()
        return FrameResult(request.frame_id, request.image, observation, time.perf_counter() - start, parts,
                           request.parts)

    def _passes(self, image: np.ndarray, needs: dict) -> tuple[Observation, dict]:
        """The forward pass, and one backward pass for each unit explained (the first gives the
        activations and probabilities too)."""
        if not needs:
            return self.probe(image), {}
        observation, passes = None, {}
        for key, need in needs.items():
            target = Target.unit(need.layer, need.unit)
            if need.source is not None:
                seen, result, contributions = self.attributor.observe_circuit(image, target, need.rule, self.layers,
                                                                              need.source)
            else:
                (seen, result), contributions = self.attributor.observe(image, target, need.rule, self.layers), None
            observation = observation or seen
            passes[key] = BackwardPass(need, result, contributions)
        return observation, passes

    def at_once(self, mode: str, request: Any) -> dict[str, Any]:
        """Everything job mode ``mode`` makes for ``request``, now, by part."""
        return self.work[mode].at_once(request)

    # -- the thread -----------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="deepvis-network", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=0.0 if self.jobs else 0.1)
            self._wake.clear()
            try:
                self._turn()
            except Exception as e:  # the window shows it; the worker carries on
                self._report(WorkerError(f"{type(e).__name__}: {e}"), e)

    def _turn(self) -> None:
        for name, box in self.mailboxes.items():
            request = box.take()
            if request is not _EMPTY:
                self._begin(name, request)
        frame = self.frames.take()
        if frame is not _EMPTY:
            self.results.put(self._answer(frame))
            return
        for name in list(self.jobs):
            self._advance(name)

    def _answer(self, frame: FrameRequest) -> FrameResult | WorkerError:
        """The frame's result, or the error it raised (so the window goes on sending)."""
        try:
            return self.observe(frame)
        except Exception as e:
            message = f"{type(e).__name__}: {e}"
            if message != self._frame_error:  # once, not at the frame rate
                log.exception("network worker: %s", e)
            self._frame_error = message
            return WorkerError(message, frame.frame_id)

    def _begin(self, mode: str, request: Any) -> None:
        """A new request replaces the mode's job; what it has at once is sent at once."""
        self.jobs.pop(mode, None)
        if request is None:
            return
        with self._failing(mode, request):
            found, job = self.work[mode].begin(request)
            for part, value in found:
                self.results.put(Answer(mode, request, value, part))
            if job is not None:
                self.jobs[mode] = _Running(request, job)

    def _advance(self, mode: str) -> None:
        """``steps_per_turn`` more steps of the mode's job in one compiled call; its picture every
        ``show_every`` steps, and its result at the end."""
        running = self.jobs[mode]
        s = self.unit_settings
        with self._failing(mode, running.request):
            running.job.advance(s.steps_per_turn)
            if running.job.done:
                del self.jobs[mode]
                self.results.put(Answer(mode, running.request, running.job.finish()))
            elif running.job.taken // s.show_every > running.shown:
                running.shown = running.job.taken // s.show_every
                self.results.put(Answer(mode, running.request, running.job.snapshot()))

    @contextlib.contextmanager
    def _failing(self, mode: str, request: Any) -> Iterator[None]:
        """A failure of ``mode``'s work drops its job and names it to the window, which then
        stops waiting for it (and does not ask again for the same thing by itself)."""
        try:
            yield
        except Exception as e:
            self.jobs.pop(mode, None)
            self._report(WorkerError(f"{mode.replace('_', ' ')}: {type(e).__name__}: {e}", mode=mode,
                                     request=request), e)

    def _report(self, error: WorkerError, e: Exception) -> None:
        self.results.put(error)
        log.exception("network worker: %s", e)
