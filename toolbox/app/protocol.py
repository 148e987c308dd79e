"""The live core's one shape: how a mode talks to the network worker and draws its pane.

The window (or any front end) and the worker share nothing but immutable messages:

- a frame goes to the worker in a ``FrameRequest`` carrying, for each mode that works on
  frames (the gradient pane, the circuit view, the live dream), that mode's request; the
  answer, a ``FrameResult``, carries each mode's part. Modes that need a backward pass say
  so (``BackwardNeed``) and the worker makes one pass for every mode that explains the same
  unit;
- a long job (a unit image, an accentuation, a layer's patterns) is asked for through that
  mode's one-slot ``Mailbox`` (latest wins; ``None`` stops it) and answered with ``Answer``
  messages: pictures while it runs, the last one when it is done. The worker runs every job
  through the same protocol (``Job``: advance a slice, snapshot, finish) between frames;
  a job that fails is dropped and named in a ``WorkerError`` (its mode and request), so the
  window stops waiting for it and does not ask again for the same thing.

A mode is one module in ``toolbox.app.modes``: its keys, its request, its worker side, its
pane and its hints, listed once in that package's registry. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol

import numpy as np

if TYPE_CHECKING:
    from toolbox.app.state import ViewState


def frozen(array: np.ndarray) -> np.ndarray:
    """A read-only copy: what crosses between the threads."""
    array = np.array(array, copy=True)
    array.setflags(write=False)
    return array


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


# -- messages ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """A job's picture for the window: ``mode``'s ``value`` (one of its result types) for
    ``request``; ``part`` tells two kinds of value of one mode apart (a unit's crops and its
    image)."""

    mode: str
    request: Any
    value: Any
    part: str = ""


@dataclass(frozen=True)
class WorkerError:
    message: str
    frame_id: int | None = None  # the frame it answers, when a frame failed (the window then sends the next)
    mode: str | None = None  # the mode whose job failed (then dropped)
    request: Any = None  # the request it failed on: not asked again until the selection changes


@dataclass(frozen=True)
class BackwardNeed:
    """What a frame mode needs from a backward pass: unit ``unit`` of ``layer`` explained by
    ``rule`` (a map), and/or the contributions of ``source``'s channels (a circuit)."""

    layer: str
    unit: int
    rule: str | None = None
    source: str | None = None


@dataclass(frozen=True)
class BackwardPass:
    """One backward pass on a frame, shared by every mode that needed it: the map's result
    (``optvis.attribution``'s, with ``.map`` and ``.score``) when a rule was asked, the
    contributions when a source was."""

    need: BackwardNeed
    result: Any
    contributions: Any = None


@dataclass(frozen=True)
class FrameContext:
    """What a frame mode's worker side answers from: the network's square input, the source
    frame (for the dream), and the backward passes made for this frame by (layer, unit)."""

    image: np.ndarray
    raw: np.ndarray | None
    passes: Mapping[tuple[str, int], BackwardPass]

    def backward(self, layer: str, unit: int) -> BackwardPass:
        return self.passes[(layer, unit)]


class Job(Protocol):
    """A long job the worker advances between frames, a slice at a time."""

    steps: int  # of the whole job
    taken: int  # so far

    @property
    def done(self) -> bool: ...

    def advance(self, steps: int) -> None: ...

    def snapshot(self) -> Any:
        """The picture so far, immutable: sent to the window while the job runs."""

    def finish(self) -> Any:
        """The result once ``done`` (stored where it belongs): the last message."""


@dataclass
class Slot:
    """The window's bookkeeping of one job mode (the UI thread's own): what it asked for,
    what the worker sent back (by ``Answer.part``) and the request that failed."""

    asked: Any = None
    shown: dict[str, Any] = field(default_factory=dict)
    failed: Any = None

    def get(self, part: str = "") -> Any:
        return self.shown.get(part)


class Hints(Mapping[str, str]):
    """Each action's first key as it is shown on screen ("b", "Tab", "Esc"): every hint on
    the dashboard is written from these, so a rebound key is hinted as bound."""

    def __init__(self, labels: Mapping[str, str]) -> None:
        self._labels = dict(labels)

    def __getitem__(self, action: str) -> str:
        return self._labels.get(action, "?")

    def __iter__(self):
        return iter(self._labels)

    def __len__(self) -> int:
        return len(self._labels)


@dataclass(frozen=True)
class KeyAction:
    """An action a mode adds to the key map: its name (the key in ``live.keys``), what it does
    (the help overlay's line) and the rule that changes the state (None: the mode acts on its
    results or the window, in ``Mode.on_action``)."""

    name: str
    help: str
    rule: Callable[["ViewState"], "ViewState"] | None = None


__all__ = ["Answer", "BackwardNeed", "BackwardPass", "FrameContext", "Hints", "Job", "KeyAction", "Mailbox", "Slot",
           "WorkerError", "frozen"]
