"""Pattern mode: the grid shows each unit's optimized image (those the unit-image folder
holds) instead of its activations."""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from toolbox.app.dashboard import draw_grid_picture, pattern_grid
from toolbox.app.modes.base import NOTHING, JobWork, Mode
from toolbox.app.protocol import Hints, KeyAction, Slot, frozen
from toolbox.app.state import ViewState

PATTERN_TILE = 48  # side of the unit images sent for pattern mode


@dataclass(frozen=True)
class PatternRequest:
    layer: str


@dataclass(frozen=True)
class LayerPatterns:
    """The optimized images a layer's units have in the unit-image folder."""

    layer: str
    images: dict  # unit -> small RGB image; units without one are absent


def _toggle(state: ViewState) -> ViewState:
    return replace(state, pattern=not state.pattern)


class PatternWork(JobWork):
    def __init__(self, worker) -> None:
        self.network, self.folder = worker.network, worker.folder

    def begin(self, request: PatternRequest):
        return [("", self.layer_patterns(request.layer))], None

    def layer_patterns(self, layer: str, tile: int = PATTERN_TILE) -> LayerPatterns:
        images = {}
        for unit in range(self.network.spec.layer(layer).channels):
            image = self.folder.load(layer, unit)
            if image is not None:
                images[unit] = frozen(cv2.resize(image, (tile, tile), interpolation=cv2.INTER_AREA))
        return LayerPatterns(layer, images)


class PatternMode(Mode):
    name = "patterns"
    kind = "job"
    actions = (KeyAction("pattern", "grid: activations <-> each unit's optimized image", _toggle),)
    panes = ("grid",)

    def active(self, state: ViewState) -> bool:
        return state.pattern

    def drive(self, app, session, slot: Slot):
        """Once per layer shown in pattern mode."""
        wanted = PatternRequest(app.layers[session.state.layer]) if session.state.pattern else None
        return NOTHING if wanted == slot.asked else wanted

    def view(self, app, session) -> dict | None:
        shown: LayerPatterns | None = session.slot(self.name).get()
        return shown.images if shown is not None and shown.layer == app.layers[session.state.layer] else None

    def draw(self, canvas: np.ndarray, view, data: dict | None, keys: Hints) -> None:
        channels = view.channels[view.state.layer]
        grid = pattern_grid(data or {}, channels, view.state.unit)
        info = ("pattern mode: optimized images" + ("" if data is not None else " (loading...)")
                + f", {len(data or {})} of {channels} made ({keys['pattern']}: activations)")
        draw_grid_picture(canvas, view, grid, info)

    def worker_side(self, worker) -> PatternWork:
        return PatternWork(worker)


MODE = PatternMode()
