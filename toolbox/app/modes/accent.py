"""Accentuation mode: the optimized-image pane shows the selected unit accentuated in the
picture on screen (``optvis.accentuation``), refined between frames; for a moving source,
each finished accentuation starts again on the newest picture."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from toolbox.app.dashboard import draw_unit_image
from toolbox.app.modes.base import NOTHING, JobWork, Mode
from toolbox.app.modes.unit_image import FAILED
from toolbox.app.protocol import Hints, KeyAction, Slot, frozen
from toolbox.app.state import ViewState

if TYPE_CHECKING:
    from toolbox.optvis.accentuation import Accentuated

TITLE = "accentuated in this frame"


@dataclass(frozen=True, eq=False)
class AccentRequest:
    """Unit ``unit`` of ``layer`` made stronger in ``image`` (the picture on screen: the
    network's square input). Told apart by identity: each picture is its own request."""

    layer: str
    unit: int
    image: np.ndarray


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
class AccentSettings:
    size: int  # the defaults a user sees live in toolbox.settings (accentuate.*)
    steps: int
    weight: float


@dataclass(frozen=True)
class AccentPane:
    image: np.ndarray | None
    note: str


def _toggle(state: ViewState) -> ViewState:
    return replace(state, accentuate=not state.accentuate)


class AccentJob:
    """An Accentuation under way, as the worker's job."""

    def __init__(self, request: AccentRequest, accentuation) -> None:
        self.request, self.accentuation = request, accentuation

    @property
    def steps(self) -> int:
        return self.accentuation.steps

    @property
    def taken(self) -> int:
        return self.accentuation.taken

    @property
    def done(self) -> bool:
        return self.accentuation.done

    def advance(self, steps: int) -> None:
        self.accentuation.advance(steps)

    def snapshot(self) -> AccentImage:
        result = self.accentuation.snapshot()
        return AccentImage(self.request, replace(result, image=frozen(result.image)), self.accentuation.steps)

    finish = snapshot


class AccentWork(JobWork):
    def __init__(self, worker) -> None:
        self.network, self.settings = worker.network, worker.accent_settings
        self._accentuators: dict = {}  # layer -> Accentuator (compiled once for each)

    def begin(self, request: AccentRequest):
        from toolbox.optvis.accentuation import Accentuator

        self.network.check_unit(request.layer, request.unit)
        if request.layer not in self._accentuators:
            a = self.settings
            self._accentuators[request.layer] = Accentuator(self.network, request.layer, a.size, weight=a.weight)
        accentuation = self._accentuators[request.layer].start(request.image, request.unit, self.settings.steps)
        return [], AccentJob(request, accentuation)


class AccentMode(Mode):
    name = "accent"
    kind = "job"
    actions = (KeyAction("accentuate", "optimized-image pane: the unit's image / the unit accentuated in this frame",
                         _toggle),)
    panes = ("unit_image",)

    def active(self, state: ViewState) -> bool:
        return state.accentuate

    def drive(self, app, session, slot: Slot):
        """Once the selection rests, the selected unit in the picture on screen; again for each
        new picture (from a moving source: once the last one is done, so each is refined to
        the end). A failed one is not asked again until the selection changes."""
        state, asked, latest = session.state, slot.asked, session.latest
        key = (app.layers[state.layer], state.unit) if state.accentuate else None
        if asked is not None and (asked.layer, asked.unit) != key:  # mode off or selection moved: stop
            return None
        if key is None or latest is None or not app.rested(session):
            return NOTHING
        if asked is not None:
            if asked.image is latest.image or asked is slot.failed:  # asked already, or failed:
                return NOTHING  # re-sent frames carry the same picture object
            shown = slot.get()
            moving = app.source.live and not state.paused
            if moving and not (shown is not None and shown.request is asked and shown.done):
                return NOTHING
        return AccentRequest(*key, latest.image)

    def view(self, app, session) -> AccentPane:
        state, slot = session.state, session.slot(self.name)
        key = (app.layers[state.layer], state.unit)
        asked = slot.asked
        if asked is not None and asked is slot.failed:
            return AccentPane(None, FAILED)
        shown: AccentImage | None = slot.get()
        if shown is None or (shown.request.layer, shown.request.unit) != key:
            waiting = asked is not None and (asked.layer, asked.unit) == key
            return AccentPane(None, "starting... (compiles once a layer)" if waiting else
                              "made when the selection rests")
        r = shown.result
        gain = (f"x{r.after / r.before:.1f}, "  # a unit that was barely on has no useful ratio
                if r.before > 0 and r.after < 100 * r.before else "")
        progress = (f"{gain}{r.psnr:.1f} dB from the frame, step {r.steps}/{shown.steps}"
                    if shown.request is asked or asked is None else "the picture before; this one is starting")
        side = app.net.relu_side(key[0], True)
        return AccentPane(r.image, f"mean {r.before:.3g} -> {r.after:.3g}{side}\n{progress}")

    def draw(self, canvas: np.ndarray, view, data: AccentPane, keys: Hints) -> None:
        draw_unit_image(canvas, TITLE, data.image, data.note)

    def worker_side(self, worker) -> AccentWork:
        return AccentWork(worker)


MODE = AccentMode()
