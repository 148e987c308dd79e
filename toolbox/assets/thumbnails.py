"""A unit's picture for lists of units (circuits in the window, the chart of ``deepvis
circuit``): its optimized image when the folder has one, else its strongest top crop."""

from __future__ import annotations

import numpy as np

from toolbox.assets.crops import CropStore
from toolbox.assets.unit_images import UnitImageFolder


def unit_thumbnail(folder: UnitImageFolder, store: CropStore, layer: str, unit: int) -> tuple[np.ndarray, str] | None:
    """(RGB image, "optimized" | "top crop"), or None when the folder has neither."""
    image = folder.load(layer, unit)
    if image is not None:
        return image, "optimized"
    crops = store.unit(layer, unit)
    if crops is not None and len(crops[1]):
        return np.asarray(crops[0][0]), "top crop"
    return None
