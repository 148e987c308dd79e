"""Jobs that fill the asset cache from the engine: unit images for whole layers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from toolbox.assets.unit_images import UnitImageFolder
from toolbox.nets import Network
from toolbox.optvis import Ascent, channel, get_preset


@dataclass
class UnitRun:
    """What ``render_unit_images`` made, in the order of the units asked."""

    units: list[int] = field(default_factory=list)
    images: list[np.ndarray] = field(default_factory=list)  # (size, size, 3) uint8 each
    objectives: list[float] = field(default_factory=list)  # the value each reached
    transparency: list[np.ndarray] | None = None  # (size, size) each, for presets that make one


def render_unit_images(network: Network, layer: str, units: Sequence[int], folder: UnitImageFolder | None,
                       preset: str, size: int, steps: int, batch: int, seed: int = 0,
                       on_step: Callable[[], None] | None = None, ascent: Ascent | None = None) -> UnitRun:
    """Optimize one image per unit (``batch`` at a time); with a ``folder``, store each batch
    as it finishes, so an interrupted job keeps what it made, and a contact sheet at the end.
    ``ascent``: the layer's Ascent of ``preset`` made earlier (its steps compiled already)."""
    for unit in units:
        network.check_unit(layer, unit)
    recipe = get_preset(preset)
    ascent = ascent or Ascent(network, channel(layer), recipe)
    made = UnitRun(transparency=[] if recipe.transparency else None)
    for start in range(0, len(units), batch):
        chunk = list(units[start:start + batch])
        rendered = ascent.run(chunk, size, steps, seed=seed + start,
                              on_step=(lambda *_: on_step()) if on_step else None)
        for i, (unit, image, value) in enumerate(zip(chunk, rendered.images, rendered.objective)):
            alpha = rendered.transparency[i] if recipe.transparency else None
            made.units.append(unit)
            made.images.append(image)
            made.objectives.append(float(value))
            if made.transparency is not None:
                made.transparency.append(alpha)
            if folder is not None:
                folder.save(layer, unit, image, alpha)
        if folder is not None:
            folder.record(network.name, layer, dict(zip(chunk, made.objectives[start:])), preset=preset, size=size,
                          steps=steps)
    if folder is not None:
        folder.save_sheet(layer, list(units), made.images)
    return made
