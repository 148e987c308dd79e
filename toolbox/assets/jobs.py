"""Jobs that fill the asset cache from the engine: unit images for whole layers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from toolbox.assets.unit_images import UnitImageFolder
from toolbox.nets import Network
from toolbox.optvis import Ascent, channel, get_preset
from toolbox.optvis.unit_range import Variation


@dataclass
class UnitRun:
    """What ``render_unit_images`` made, in the order of the units asked: the units that show
    something, and in ``said`` those that do not."""

    units: list[int] = field(default_factory=list)
    images: list[np.ndarray] = field(default_factory=list)  # (size, size, 3) uint8 each
    objectives: list[float] = field(default_factory=list)  # the value each reached
    transparency: list[np.ndarray] | None = None  # (size, size) each, for presets that make one
    said: dict[int, dict] = field(default_factory=dict)  # unit -> Variation.as_record: nothing to show, and why


def render_unit_images(network: Network, layer: str, units: Sequence[int], folder: UnitImageFolder | None,
                       preset: str, size: int, steps: int, batch: int, seed: int = 0,
                       on_step: Callable[[], None] | None = None, ascent: Ascent | None = None,
                       variation: dict[int, Variation] | None = None) -> UnitRun:
    """Optimize one image per unit (``batch`` at a time); with a ``folder``, store each batch
    as it finishes (``UnitImageFolder.store``), so an interrupted job keeps what it made, and a
    contact sheet of the kept images at the end. ``ascent``: the layer's Ascent of ``preset``
    made earlier (its steps compiled already). With ``variation`` ({unit: Variation}, e.g.
    ``quality.example_variation``) a unit with nothing to show is not made and an image that
    a plain image beats is not kept: both are said instead (``UnitRun.said``, and the folder's
    objectives file), never presented as a result. ``steps`` of progress per batch made."""
    for unit in units:
        network.check_unit(layer, unit)
    recipe = get_preset(preset)
    ascent = ascent or Ascent(network, channel(layer), recipe)
    made = UnitRun(transparency=[] if recipe.transparency else None)
    details = {"preset": preset, "size": size, "steps": steps}
    flat = {u: variation[u].as_record() for u in units if variation is not None and variation[u].flat}
    made.said.update(flat)
    if folder is not None and flat:
        folder.store(network.name, layer, {}, flat, **details)
    for start, chunk in unit_batches(units, batch, flat):
        rendered = ascent.run(chunk, size, steps, seed=seed + start,
                              on_step=(lambda *_: on_step()) if on_step else None)
        kept, said = {}, {}
        for i, (unit, image, value) in enumerate(zip(chunk, rendered.images, rendered.objective)):
            record = variation[unit].as_record(float(value)) if variation is not None else {}
            if record:
                said[unit] = record
                continue
            alpha = rendered.transparency[i] if recipe.transparency else None
            kept[unit] = (image, alpha, float(value))
            made.units.append(unit)
            made.images.append(image)
            made.objectives.append(float(value))
            if made.transparency is not None:
                made.transparency.append(alpha)
        if folder is not None:
            recorded = folder.store(network.name, layer, kept, said, **details)
            said = {u: r if u in recorded else {**r, "kept_earlier": True} for u, r in said.items()}
        made.said.update(said)
    if folder is not None:  # the latest run's sheet, also when it made nothing: never an earlier run's
        without_image = [u for u, r in made.said.items() if not r.get("kept_earlier")]
        folder.save_sheet(layer, made.units, made.images, without_image)
    return made


def unit_batches(units: Sequence[int], batch: int, skip=()) -> list[tuple[int, list[int]]]:
    """[(start, units to make)]: ``units`` in batches of ``batch`` with fixed boundaries (as
    ``deepvis precompute`` plans its tasks), each seeded by its ``start``, less the units in
    ``skip`` (those with nothing to show); empty batches left out. The same unit and seed in
    the same batch make the same image, whichever job makes it."""
    units, out = list(units), []
    for start in range(0, len(units), batch):
        chunk = [u for u in units[start:start + batch] if u not in skip]
        if chunk:
            out.append((start, chunk))
    return out
