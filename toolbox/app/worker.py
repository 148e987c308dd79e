"""The one thread that owns the network.

The window sends requests (the latest frame, the unit whose image it wants) through
one-slot mailboxes where a newer request replaces an older one, and reads results from a
queue. Every message is an immutable snapshot (frozen dataclasses, read-only arrays);
nothing else is shared. Between frames the worker advances an on-demand unit-image
optimization a few steps at a time, so frames keep flowing while it refines.
"""

from __future__ import annotations

import queue
import threading
import time
import logging
from dataclasses import dataclass

import numpy as np

from toolbox.assets import UnitImageFolder
from toolbox.nets import Network, Observation, Probe


log = logging.getLogger(__name__)


def frozen(array: np.ndarray) -> np.ndarray:
    array = np.array(array, copy=True)
    array.setflags(write=False)
    return array


@dataclass(frozen=True)
class FrameRequest:
    frame_id: int
    image: np.ndarray  # the network's square input, RGB uint8


@dataclass(frozen=True)
class UnitRequest:
    layer: str
    unit: int | None  # None: stop making unit images


@dataclass(frozen=True)
class FrameResult:
    frame_id: int
    image: np.ndarray
    observation: Observation
    seconds: float  # network time for this frame


@dataclass(frozen=True)
class UnitImage:
    layer: str
    unit: int
    image: np.ndarray
    step: int
    steps: int
    origin: str  # "cache" (made earlier) or "engine" (made now)

    @property
    def done(self) -> bool:
        return self.step >= self.steps


@dataclass(frozen=True)
class WorkerError:
    message: str


_EMPTY = object()


class Mailbox:
    """A one-slot channel: ``put`` replaces an item not yet taken (latest wins)."""

    def __init__(self, wake: threading.Event) -> None:
        self._lock, self._item, self._wake = threading.Lock(), _EMPTY, wake

    def put(self, item: object) -> None:
        with self._lock:
            self._item = item
        self._wake.set()

    def take(self) -> object:
        with self._lock:
            item, self._item = self._item, _EMPTY
        return item


@dataclass(frozen=True)
class UnitImageSettings:
    preset: str  # the defaults a user sees live in toolbox.settings (units.preset, live.unit_image_*)
    size: int
    steps: int
    steps_per_turn: int = 4  # optimization steps between two looks at the frame mailbox
    show_every: int = 8  # send the image being refined every N steps


class NetworkWorker:
    def __init__(self, network: Network, folder: UnitImageFolder, unit_settings: UnitImageSettings) -> None:
        self.network, self.folder, self.unit_settings = network, folder, unit_settings
        self.layers = network.spec.layer_names
        self.probe = Probe(network, self.layers)
        self.receptive_fields = {name: network.receptive_field(name) for name in self.layers}
        self._ascents: dict = {}
        self._wake = threading.Event()
        self.frames, self.units = Mailbox(self._wake), Mailbox(self._wake)
        self.results: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._run = None  # (layer, unit, AscentRun) being refined

    # -- synchronous use (headless mode, benchmarks) --------------------------------------

    def observe(self, request: FrameRequest) -> FrameResult:
        start = time.perf_counter()
        observation = self.probe(request.image)
        return FrameResult(request.frame_id, request.image, observation, time.perf_counter() - start)

    def unit_image_now(self, layer: str, unit: int) -> UnitImage:
        """The unit's image from the folder, or made now (and stored)."""
        cached = self._cached(layer, unit)
        if cached is not None:
            return cached
        run = self._start(layer, unit)
        while not run.done:
            run.step()
        return self._finish(layer, unit, run)

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
            self._wake.wait(timeout=0.0 if self._run else 0.1)
            self._wake.clear()
            try:
                self._turn()
            except Exception as e:  # the window shows it; the worker carries on
                self._run = None
                self.results.put(WorkerError(f"{type(e).__name__}: {e}"))
                log.exception("network worker: %s", e)

    def _turn(self) -> None:
        request = self.units.take()
        if request is not _EMPTY:
            self._run = None
            if request.unit is not None:
                cached = self._cached(request.layer, request.unit)
                if cached is not None:
                    self.results.put(cached)
                else:
                    self._run = (request.layer, request.unit, self._start(request.layer, request.unit))
        frame = self.frames.take()
        if frame is not _EMPTY:
            self.results.put(self.observe(frame))
            return
        if self._run is not None:
            self._refine()

    def _refine(self) -> None:
        layer, unit, run = self._run
        s = self.unit_settings
        for _ in range(s.steps_per_turn):
            run.step()
            if run.done:
                self._run = None
                self.results.put(self._finish(layer, unit, run))
                return
            if run.taken % s.show_every == 0:
                self.results.put(UnitImage(layer, unit, frozen(run.images()[0]), run.taken, run.steps, "engine"))

    # -- unit images ----------------------------------------------------------------------

    def _cached(self, layer: str, unit: int) -> UnitImage | None:
        image = self.folder.load(layer, unit)
        return None if image is None else UnitImage(layer, unit, frozen(image), 1, 1, "cache")

    def _start(self, layer: str, unit: int):
        from toolbox.optvis import Ascent, channel, get_preset

        if layer not in self._ascents:
            self._ascents[layer] = Ascent(self.network, channel(layer), get_preset(self.unit_settings.preset))
        s = self.unit_settings
        return self._ascents[layer].start([unit], s.size, s.steps, seed=0)

    def _finish(self, layer: str, unit: int, run) -> UnitImage:
        result = run.result()
        self.folder.save(layer, unit, result.images[0])
        self.folder.record(self.network.name, layer, {unit: result.objective[0]}, preset=self.unit_settings.preset,
                           size=self.unit_settings.size, steps=run.taken)
        return UnitImage(layer, unit, frozen(result.images[0]), run.taken, run.steps, "engine")
