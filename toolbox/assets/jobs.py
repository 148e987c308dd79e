"""Jobs that fill the asset cache from the engine: unit images for whole layers."""

from __future__ import annotations

from typing import Callable, Sequence

from toolbox.assets.unit_images import UnitImageFolder
from toolbox.nets import Network
from toolbox.optvis import Ascent, channel, get_preset


def render_unit_images(network: Network, layer: str, units: Sequence[int], folder: UnitImageFolder,
                       preset: str, size: int, steps: int, batch: int, seed: int = 0,
                       on_step: Callable[[], None] | None = None) -> dict[int, float]:
    """Optimize one image per unit (``batch`` at a time) and store each batch as it finishes,
    so an interrupted job keeps what it made. Returns {unit: objective reached}."""
    for unit in units:
        network.check_unit(layer, unit)
    recipe = get_preset(preset)
    ascent = Ascent(network, channel(layer), recipe)
    results: dict[int, float] = {}
    images = []
    for start in range(0, len(units), batch):
        chunk = list(units[start:start + batch])
        rendered = ascent.run(chunk, size, steps, seed=seed + start,
                              on_step=(lambda *_: on_step()) if on_step else None)
        for i, (unit, image, value) in enumerate(zip(chunk, rendered.images, rendered.objective)):
            folder.save(layer, unit, image, rendered.transparency[i] if recipe.transparency else None)
            results[unit] = float(value)
            images.append(image)
        folder.record(network.name, layer, {u: results[u] for u in chunk}, preset=preset, size=size, steps=steps)
    folder.save_sheet(layer, list(units), images)
    return results
