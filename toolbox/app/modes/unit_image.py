"""The selected unit's own panes: its optimized image (from the unit-image folder ``deepvis
units`` fills, else made now, refined visibly, and stored there) and its top or lowest
natural-image crops (``deepvis crops``). Asked for once the selection rests."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, replace

import numpy as np

from toolbox.app import layout as L
from toolbox.app.dashboard import DIM, TEXT, crops_montage, draw_unit_image, placeholder, text, title
from toolbox.app.modes.base import NOTHING, JobWork, Mode
from toolbox.app.protocol import Hints, KeyAction, Slot, frozen
from toolbox.app.state import ViewState

FAILED = "failed: see the status line"
NOTE_CHARS = 34  # of a line of the pane's placeholder text


@dataclass(frozen=True)
class UnitRequest:
    layer: str
    unit: int
    make: bool = True  # False: send the folder's image and the crops, but make no image when it lacks one


@dataclass(frozen=True)
class UnitImage:
    layer: str
    unit: int
    image: np.ndarray | None  # None: the unit has nothing to show (``note`` says why)
    step: int
    steps: int
    origin: str  # "cache" (made earlier) or "engine" (made now)
    note: str = ""  # why there is no image: unit_range.Variation.describe(), or a plain image beats it

    @property
    def done(self) -> bool:
        return self.step >= self.steps


@dataclass(frozen=True)
class UnitCrops:
    """A unit's natural exemplars from the crops store (``deepvis crops``), best first."""

    layer: str
    unit: int
    top: tuple[np.ndarray, np.ndarray] | None  # (crops (n, S, S, 3), values (n,)); None: none stored
    lowest: tuple[np.ndarray, np.ndarray] | None  # the same for the lowest values (signed layers)
    backprop: np.ndarray | None = None  # the top crops' attribution crops (crops --backprop), when made


@dataclass(frozen=True)
class UnitPanes:
    """What the optimized-image and crops panes show for the selection."""

    title: str
    image: np.ndarray | None
    note: str
    crops: UnitCrops | None  # the selected unit's, when known
    lowest: bool


def _crops_side(state: ViewState) -> ViewState:
    return replace(state, lowest=not state.lowest)


# -- the worker's side --------------------------------------------------------------------


class UnitImageJob:
    """One unit image in the making (an AscentRun of one row, started on the first slice, so
    what the request has at once reaches the window first): stored in the folder when done."""

    def __init__(self, work: "UnitImageWork", layer: str, unit: int) -> None:
        self.work, self.layer, self.unit = work, layer, unit
        self.steps = work.settings.steps
        self._run = None

    @property
    def run(self):
        if self._run is None:
            self._run = self.work.start(self.layer, self.unit)
        return self._run

    @property
    def taken(self) -> int:
        return 0 if self._run is None else self._run.taken

    @property
    def done(self) -> bool:
        return self.taken >= self.steps

    def advance(self, steps: int) -> None:
        self.run.advance(steps)

    def snapshot(self) -> UnitImage:
        return UnitImage(self.layer, self.unit, frozen(self.run.images()[0]), self.taken, self.steps, "engine")

    def finish(self) -> UnitImage:
        result = self.run.result()
        w = self.work
        value = float(result.objective[0])
        variation = w.variation(self.layer).get(self.unit)
        said = variation.as_record(value) if variation is not None else {}
        details = {"preset": w.settings.preset, "size": result.images[0].shape[0], "steps": self.taken}
        if said:  # stored as deepvis units stores it: said, not drawn
            w.folder.store(w.network.name, self.layer, {}, {self.unit: said}, **details)
            return UnitImage(self.layer, self.unit, None, self.taken, self.steps, "engine", said["said"] + "; not kept")
        w.folder.store(w.network.name, self.layer, {self.unit: (result.images[0], None, value)}, **details)
        return UnitImage(self.layer, self.unit, frozen(result.images[0]), self.taken, self.steps, "engine")


class UnitImageWork(JobWork):
    def __init__(self, worker) -> None:
        self.network, self.folder, self.crops = worker.network, worker.folder, worker.crops
        self.settings = worker.unit_settings
        self._ascents: dict = {}  # layer -> Ascent (compiled once for each)
        self._variations: dict = {}  # layer -> {unit: Variation} over the example photos (found once)

    def begin(self, request: UnitRequest):
        """The unit's crops, and its image from the folder, else (``make``) a job for it."""
        layer, unit = request.layer, request.unit
        found = [("crops", self.unit_crops(layer, unit))]
        cached = self.folder.load(layer, unit)
        if cached is not None:
            return [*found, ("", UnitImage(layer, unit, frozen(cached), 1, 1, "cache"))], None
        said = self.folder.nothing_to_show(self.network.name, layer).get(unit)
        if said:  # deepvis units found it has nothing to show
            return [*found, ("", UnitImage(layer, unit, None, 1, 1, "cache", said))], None
        if not request.make:
            return found, None
        variation = self.variation(layer).get(unit)
        if variation is not None and variation.flat:  # said, never drawn as if it showed something
            return [*found, ("", UnitImage(layer, unit, None, 1, 1, "engine", variation.describe()))], None
        return found, UnitImageJob(self, layer, unit)

    def variation(self, layer: str) -> dict:
        """{unit: Variation} of ``layer`` over the example photos (``deepvis units`` says the same)."""
        if layer not in self._variations:
            from toolbox.assets.quality import example_variation

            self._variations[layer] = example_variation(self.network, layer)
        return self._variations[layer]

    def unit_crops(self, layer: str, unit: int) -> UnitCrops:
        store = self.crops
        return UnitCrops(layer, unit, store.unit(layer, unit), store.unit(layer, unit, bottom=True),
                         store.unit_backprop(layer, unit))

    def start(self, layer: str, unit: int):
        """The ascent of one unit's image (the layer's compiled step made once)."""
        from toolbox.optvis.presets import unit_recipe

        self.network.check_unit(layer, unit)
        s = self.settings
        recipe = unit_recipe(self.network, layer, s.preset, s.size, s.steps)  # as deepvis units makes them
        if layer not in self._ascents:
            self._ascents[layer] = recipe.ascent(self.network, layer)
        return self._ascents[layer].start([unit], recipe.size, recipe.steps, seed=0)


# -- the window's side --------------------------------------------------------------------


class UnitImageMode(Mode):
    name = "unit_image"
    kind = "job"
    actions = (KeyAction("crops_side", "crops: the unit's top images <-> its lowest", _crops_side),)
    panes = ("unit_image", "crops")

    def active(self, state: ViewState) -> bool:
        return True  # the default of both panes; accentuation and the circuit view draw over them

    def drive(self, app, session, slot: Slot):
        """Once the selection rests: its crops, and its image from the folder, else made now
        (not while accentuation mode has the pane); a selection that moves on stops the old one."""
        state = session.state
        want = UnitRequest(app.layers[state.layer], state.unit, make=not state.accentuate)
        if slot.asked == want:
            return NOTHING
        if app.rested(session):
            return want
        return None if slot.asked is not None else NOTHING

    def view(self, app, session) -> UnitPanes:
        state, slot = session.state, session.slot(self.name)
        layer = app.layers[state.layer]
        key = (layer, state.unit)
        crops = slot.get("crops")
        crops = crops if crops is not None and (crops.layer, crops.unit) == key else None
        shown: UnitImage | None = slot.get("")
        failed = slot.failed is not None and (slot.failed.layer, slot.failed.unit) == key
        if shown is not None and (shown.layer, shown.unit) == key and shown.note:
            lines = [line for part in shown.note.split("\n") for line in textwrap.wrap(part, NOTE_CHARS)]
            return UnitPanes("optimized image", None, "\n".join(lines), crops, state.lowest)
        if shown is not None and (shown.layer, shown.unit) == key and (shown.done or not failed):
            note = ("from the unit-image folder" if shown.origin == "cache" else "made now and cached" if shown.done
                    else f"optimizing... step {shown.step}/{shown.steps}")
            return UnitPanes("optimized image", shown.image, note, crops, state.lowest)
        if failed:
            return UnitPanes("optimized image", None, FAILED, crops, state.lowest)
        asked = slot.asked is not None and (slot.asked.layer, slot.asked.unit) == key
        return UnitPanes("optimized image", None, "starting..." if asked else "made when the selection rests", crops,
                         state.lowest)

    def draw(self, canvas: np.ndarray, view, data: UnitPanes, keys: Hints) -> None:
        if view.owner("unit_image") == self.name:
            draw_unit_image(canvas, data.title, data.image, data.note)
        if view.owner("crops") == self.name:
            draw_crops(canvas, view.state.unit, data, keys, view.relu_side)

    def worker_side(self, worker) -> UnitImageWork:
        return UnitImageWork(worker)


def draw_crops(canvas: np.ndarray, unit: int, data: UnitPanes, keys: Hints, relu_side: str = "") -> None:
    """The unit's top (or lowest) crops; ``relu_side``: which of its values they are (the layer's output)."""
    lowest = data.lowest
    title(canvas, L.CROPS, f"{'lowest' if lowest else 'top'} image crops of unit {unit} "
                           f"({keys['crops_side']}: {'top' if lowest else 'lowest'})")
    crops = data.crops
    if crops is None:
        placeholder(canvas, L.CROPS, ["shown when the selection rests"])
        return
    side = crops.lowest if lowest else crops.top
    if side is None or not len(side[1]):
        hint = ("this layer has no negative values" if lowest and crops.top is not None else
                "none yet: deepvis crops --images FOLDER")
        placeholder(canvas, L.CROPS, [hint])
        return
    cell = L.CROPS.h // 3
    montage = crops_montage(*side, cell)
    canvas[L.CROPS.y:L.CROPS.y + montage.shape[0], L.CROPS.x:L.CROPS.x + montage.shape[1]] = montage
    if not lowest and crops.backprop is not None:  # beside them, what in each crop made the unit fire
        maps = crops_montage(crops.backprop, side[1], cell)
        x = L.CROPS.x + montage.shape[1] + 8
        canvas[L.CROPS.y:L.CROPS.y + maps.shape[0], x:x + maps.shape[1]] = maps
        text(canvas, "their backprop", x + maps.shape[1] + 8, L.CROPS.y + 14, DIM, 0.4)
        return
    x = L.CROPS.x + montage.shape[1] + 12
    text(canvas, f"{len(side[1])} {'lowest' if lowest else 'strongest'} images", x, L.CROPS.y + 14, TEXT, 0.42)
    text(canvas, "value = its " + ("min" if lowest else "max") + relu_side, x, L.CROPS.y + 32, DIM, 0.4)
    text(canvas, "each: the input under the unit's", x, L.CROPS.y + 50, DIM, 0.4)
    text(canvas, "receptive field at that position", x, L.CROPS.y + 66, DIM, 0.4)


MODE = UnitImageMode()
