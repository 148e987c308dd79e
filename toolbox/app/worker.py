"""The one thread that owns the network.

The window sends requests (the latest frame, the unit whose image it wants) through
one-slot mailboxes where a newer request replaces an older one, and reads results from a
queue. Every message is an immutable snapshot (frozen dataclasses, read-only arrays);
nothing else is shared. Between frames the worker advances an on-demand unit-image
optimization, or an accentuation of the selected unit in a frame, a few steps at a time, so
frames keep flowing while it refines.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import cv2
import numpy as np

from toolbox.assets import UnitImageFolder
from toolbox.assets.crops import CropStore
from toolbox.nets import Network, Observation, Probe
from toolbox.optvis.attribution import Attributor, Target
from toolbox.optvis.attribution_display import display

if TYPE_CHECKING:
    from toolbox.optvis.accentuation import Accentuated

log = logging.getLogger(__name__)

PATTERN_TILE = 48  # side of the unit images sent for pattern mode
THUMBNAIL = 64  # side of the circuit view's thumbnails


def frozen(array: np.ndarray) -> np.ndarray:
    array = np.array(array, copy=True)
    array.setflags(write=False)
    return array


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
class DreamRequest:
    """Dream mode: dream ``layers`` ((name, weight), ...) on the frame, ``steps`` per frame,
    starting from the previous dream carried along the optical flow (see optvis.live_dream)."""

    layers: tuple[tuple[str, float], ...]
    steps: int
    step_size: float
    blend: float
    fit: str  # how the dream is fitted to the input pane's square (as the frame is)
    side: int  # frames are dreamed with their longer side at most this (live.dream_side)
    objective: str = "l2"  # l2 or abs-square (dream.objective)


@dataclass(frozen=True)
class FrameRequest:
    frame_id: int
    image: np.ndarray  # the network's square input, RGB uint8
    backprop: BackpropRequest | None = None  # None: the gradient pane is off (the Probe alone)
    dream: DreamRequest | None = None  # None: no dream
    frame: np.ndarray | None = None  # dream mode: the source frame, RGB uint8
    circuit: CircuitRequest | None = None  # None: the circuit view is off


@dataclass(frozen=True)
class UnitRequest:
    layer: str
    unit: int | None  # None: stop making unit images
    make: bool = True  # False: send the folder's image and the crops, but make no image when it lacks one


@dataclass(frozen=True, eq=False)
class AccentRequest:
    """Accentuation mode: unit ``unit`` of ``layer`` made stronger in ``image`` (the picture on
    screen: the network's square input); unit None: stop. Told apart by identity."""

    layer: str
    unit: int | None
    image: np.ndarray | None = None


@dataclass(frozen=True)
class FrameResult:
    frame_id: int
    image: np.ndarray
    observation: Observation
    seconds: float  # network time for this frame
    gradient: GradientImage | None = None  # the gradient pane's map, when the request asked for one
    dream: np.ndarray | None = None  # dream mode: the frame's dream, fitted to the square like ``image``
    circuit: CircuitInputs | None = None  # the circuit view's inputs, when the request asked for them

    @property
    def backprop(self) -> BackpropRequest | None:
        """The map this frame answers, to tell whether the UI wants another one."""
        return None if self.gradient is None else self.gradient.request

    @property
    def circuit_request(self) -> CircuitRequest | None:
        return None if self.circuit is None else self.circuit.request


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
class AccentImage:
    """The accentuation being refined, as it is now: ``result`` (optvis.accentuation.Accentuated:
    the image, read-only, the unit's channel mean before and on it, the PSNR, the steps taken)."""

    request: AccentRequest
    result: "Accentuated"
    steps: int  # of the whole run

    @property
    def done(self) -> bool:
        return self.result.steps >= self.steps


@dataclass(frozen=True)
class UnitCrops:
    """A unit's natural exemplars from the crops store (``deepvis crops``), best first."""

    layer: str
    unit: int
    top: tuple[np.ndarray, np.ndarray] | None  # (crops (n, S, S, 3), values (n,)); None: none stored
    lowest: tuple[np.ndarray, np.ndarray] | None  # the same for the lowest values (signed layers)
    backprop: np.ndarray | None = None  # the top crops' attribution crops (crops --backprop), when made


@dataclass(frozen=True)
class PatternRequest:
    layer: str | None  # None: pattern mode is off


@dataclass(frozen=True)
class LayerPatterns:
    """The optimized images a layer's units have in the unit-image folder (pattern mode)."""

    layer: str
    images: dict  # unit -> small RGB image; units without one are absent


@dataclass(frozen=True)
class WorkerError:
    message: str
    frame_id: int | None = None  # the frame it answers, when a frame failed (the window then sends the next)
    unit: tuple[str, int] | None = None  # (layer, unit) whose unit image failed (then dropped)
    accent: "AccentRequest | None" = None  # the accentuation that failed (then dropped)


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


@dataclass(frozen=True)
class AccentSettings:
    size: int  # the defaults a user sees live in toolbox.settings (accentuate.*)
    steps: int
    weight: float


class NetworkWorker:
    def __init__(self, network: Network, folder: UnitImageFolder, unit_settings: UnitImageSettings,
                 accent_settings: AccentSettings | None = None) -> None:
        self.network, self.folder, self.unit_settings = network, folder, unit_settings
        self.accent_settings = accent_settings or AccentSettings(network.spec.input_size, 128, 1.0)
        self.layers = network.spec.layer_names
        self.probe = Probe(network, self.layers)
        self.attributor = Attributor(network)  # compiles its one step on the first map asked for
        self.crops = CropStore(folder.root)
        self._ascents: dict = {}
        self._wake = threading.Event()
        self.frames, self.units, self.patterns = Mailbox(self._wake), Mailbox(self._wake), Mailbox(self._wake)
        self.accents = Mailbox(self._wake)
        self.results: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._run = None  # (layer, unit, AscentRun) being refined
        self._accentuators: dict = {}  # layer -> Accentuator (compiled once for each)
        self._accent = None  # (AccentRequest, Accentuation) being refined
        self._dreamers: dict = {}  # (layers, objective) -> DeepDream (compiled once for each)
        self._live_dream = None  # (DreamRequest, LiveDream) of the last dreamed frame
        self._frame_error = ""  # the last error a frame raised (logged once)
        self._thumbnails: dict[tuple[str, int], tuple] = {}  # (layer, unit) -> (image, kind), once found

    # -- synchronous use (headless mode, benchmarks) --------------------------------------

    def observe(self, request: FrameRequest) -> FrameResult:
        """The frame's observation; with a backprop request also its gradient image, from the
        same forward pass. Without one the Probe runs alone, so the frame rate is unchanged."""
        start = time.perf_counter()
        circuit = None
        if request.circuit is not None:
            observation, gradient, circuit = self._circuit(request.image, request.circuit, request.backprop)
        elif request.backprop is None:
            observation, gradient = self.probe(request.image), None
        else:
            observation, gradient = self._explain(request.image, request.backprop)
        dream = None
        if request.dream is not None and request.frame is not None:
            dream = frozen(self.network.fit_input(self._dream(request.dream)(request.frame), request.dream.fit))
        else:
            self._live_dream = None  # dream mode ended: the next dream starts afresh
        return FrameResult(request.frame_id, request.image, observation, time.perf_counter() - start, gradient,
                           dream, circuit)

    def _dream(self, want: DreamRequest):
        """The LiveDream for ``want``: the last one while the request stays the same (its
        previous dream carries on), a fresh one when it changes."""
        from toolbox.optvis.dream import DeepDream
        from toolbox.optvis.live_dream import LiveDream
        from toolbox.optvis.objectives import DREAM_OBJECTIVES

        if self._live_dream is None or self._live_dream[0] != want:
            key = (want.layers, want.objective)
            if key not in self._dreamers:
                self._dreamers[key] = DeepDream(self.network, DREAM_OBJECTIVES[want.objective](dict(want.layers)))
            dreamer = self._dreamers[key]
            self._live_dream = (want, LiveDream(self.network, dreamer.objective, want.steps, want.step_size,
                                                want.blend, side=want.side, dreamer=dreamer))
        return self._live_dream[1]

    def _explain(self, image: np.ndarray, want: BackpropRequest) -> tuple[Observation, GradientImage]:
        """One forward and one backward pass give the activations, the probabilities and the
        map; the display filter runs here too (a few ms) so the UI only pastes an image."""
        observation, result = self.attributor.observe(image, Target.unit(want.layer, want.unit), want.rule,
                                                      self.layers)
        return observation, GradientImage(want, frozen(display(result.map, want.filter)), result.score)

    def _circuit(self, image: np.ndarray, want: CircuitRequest,
                 backprop: BackpropRequest | None) -> tuple[Observation, GradientImage | None, CircuitInputs]:
        """The circuit view's inputs from the backward pass the gradient pane makes anyway (the
        pane off: a plain backward pass alone); the pane's map when it explains the same unit."""
        from toolbox.optvis.circuits import Circuit

        target = Target.unit(want.layer, want.unit)
        same = backprop is not None and (backprop.layer, backprop.unit) == (want.layer, want.unit)
        observation, result, contributions = self.attributor.observe_circuit(
            image, target, backprop.rule if same else None, self.layers, want.source)
        gradient = None
        if same:
            gradient = GradientImage(backprop, frozen(display(result.map, backprop.filter)), result.score)
        elif backprop is not None:  # the pane explains another unit: its own pass
            _, gradient = self._explain(image, backprop)
        circuit = Circuit(want.layer, want.unit, want.source, contributions, result.score)
        links = tuple(circuit.links(want.excitatory)) + tuple(circuit.links(want.inhibitory, inhibitory=True))
        thumbnails = tuple(self.thumbnail(want.source, link.unit) for link in links)
        return observation, gradient, CircuitInputs(want, result.score, links, len(circuit.links(want.excitatory)),
                                                    thumbnails)

    def thumbnail(self, layer: str, unit: int) -> tuple | None:
        """A unit's optimized image or top crop, small (kept once found; looked for again
        while missing, since the window makes unit images as it goes)."""
        from toolbox.assets.thumbnails import unit_thumbnail

        key = (layer, unit)
        if key not in self._thumbnails:
            found = unit_thumbnail(self.folder, self.crops, layer, unit)
            if found is None:
                return None
            image = cv2.resize(found[0], (THUMBNAIL, THUMBNAIL), interpolation=cv2.INTER_AREA)
            self._thumbnails[key] = (frozen(image), found[1])
        return self._thumbnails[key]

    def unit_image_now(self, layer: str, unit: int) -> UnitImage:
        """The unit's image from the folder, or made now (and stored)."""
        cached = self._cached(layer, unit)
        if cached is not None:
            return cached
        run = self._start(layer, unit)
        run.advance(run.steps)
        return self._finish(layer, unit, run)

    def accentuation_now(self, request: AccentRequest) -> AccentImage:
        """The whole accentuation of ``request`` at once."""
        accentuation = self._start_accent(request)
        accentuation.advance(accentuation.steps)
        return self._accent_image(request, accentuation)

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
            self._wake.wait(timeout=0.0 if self._run or self._accent else 0.1)
            self._wake.clear()
            try:
                self._turn()
            except Exception as e:  # the window shows it; the worker carries on
                self._report(WorkerError(f"{type(e).__name__}: {e}"), e)

    def unit_crops(self, layer: str, unit: int) -> UnitCrops:
        return UnitCrops(layer, unit, self.crops.unit(layer, unit), self.crops.unit(layer, unit, bottom=True),
                         self.crops.unit_backprop(layer, unit))

    def layer_patterns(self, layer: str, tile: int = PATTERN_TILE) -> LayerPatterns:
        images = {}
        for unit in range(self.network.spec.layer(layer).channels):
            image = self.folder.load(layer, unit)
            if image is not None:
                images[unit] = frozen(cv2.resize(image, (tile, tile), interpolation=cv2.INTER_AREA))
        return LayerPatterns(layer, images)

    def _turn(self) -> None:
        patterns = self.patterns.take()
        if patterns is not _EMPTY and patterns.layer is not None:
            self.results.put(self.layer_patterns(patterns.layer))
        request = self.units.take()
        if request is not _EMPTY:
            self._run = None
            if request.unit is not None:
                self._unit_work(request.layer, request.unit, lambda: self._begin_unit(request))
        accent = self.accents.take()
        if accent is not _EMPTY:
            self._accent = None
            if accent.unit is not None:
                self._accent_work(accent, lambda: self._begin_accent(accent))
        frame = self.frames.take()
        if frame is not _EMPTY:
            try:
                result = self.observe(frame)
            except Exception as e:  # answer the frame with the error, so the window goes on sending
                message = f"{type(e).__name__}: {e}"
                if message != self._frame_error:  # once, not at the frame rate
                    log.exception("network worker: %s", e)
                self._frame_error = message
                result = WorkerError(message, frame.frame_id)
            self.results.put(result)
            return
        if self._run is not None:
            self._unit_work(self._run[0], self._run[1], self._refine)
        if self._accent is not None:
            self._accent_work(self._accent[0], self._refine_accent)

    def _begin_unit(self, request: UnitRequest) -> None:
        """A selected unit's crops, and its image from the folder, else (``make``) a run for it."""
        self.results.put(self.unit_crops(request.layer, request.unit))
        cached = self._cached(request.layer, request.unit)
        if cached is not None:
            self.results.put(cached)
        elif request.make:
            self._run = (request.layer, request.unit, self._start(request.layer, request.unit))

    def _unit_work(self, layer: str, unit: int, work) -> None:
        """``work`` on the unit image of (``layer``, ``unit``); a failure drops the run and names
        it to the window, which then stops waiting for it (and never asks again by itself)."""
        try:
            work()
        except Exception as e:
            self._run = None
            self._report(WorkerError(f"unit image: {type(e).__name__}: {e}", unit=(layer, unit)), e)

    def _accent_work(self, request: AccentRequest, work) -> None:
        """``work`` on the accentuation ``request``; a failure drops it and names it, the same way."""
        try:
            work()
        except Exception as e:
            self._accent = None
            self._report(WorkerError(f"accentuation: {type(e).__name__}: {e}", accent=request), e)

    def _report(self, error: WorkerError, e: Exception) -> None:
        self.results.put(error)
        log.exception("network worker: %s", e)

    def _refine(self) -> None:
        """A few more steps of the unit image in one compiled call; the image every
        ``show_every`` steps, and stored at the end."""
        layer, unit, run = self._run
        if self._advance(run):
            self.results.put(UnitImage(layer, unit, frozen(run.images()[0]), run.taken, run.steps, "engine"))
        if run.done:
            self._run = None
            self.results.put(self._finish(layer, unit, run))

    def _refine_accent(self) -> None:
        """The same for the accentuation: its picture every ``show_every`` steps and at the end."""
        request, accentuation = self._accent
        if self._advance(accentuation) or accentuation.done:
            self.results.put(self._accent_image(request, accentuation))
        if accentuation.done:
            self._accent = None

    def _advance(self, run) -> bool:
        """``steps_per_turn`` steps of ``run`` (an AscentRun or an Accentuation); whether a picture
        is due (every ``show_every`` steps, not at the end)."""
        s = self.unit_settings
        shown = run.taken // s.show_every
        run.advance(s.steps_per_turn)
        return not run.done and run.taken // s.show_every > shown

    # -- accentuation ---------------------------------------------------------------------

    def _accentuator(self, layer: str):
        from toolbox.optvis.accentuation import Accentuator

        if layer not in self._accentuators:
            a = self.accent_settings
            self._accentuators[layer] = Accentuator(self.network, layer, a.size, weight=a.weight)
        return self._accentuators[layer]

    def _start_accent(self, request: AccentRequest):
        return self._accentuator(request.layer).start(request.image, request.unit, self.accent_settings.steps)

    def _begin_accent(self, request: AccentRequest) -> None:
        self._accent = (request, self._start_accent(request))

    def _accent_image(self, request: AccentRequest, accentuation) -> AccentImage:
        result = accentuation.snapshot()
        return AccentImage(request, replace(result, image=frozen(result.image)), accentuation.steps)

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
