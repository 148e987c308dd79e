"""Crop sheets: a picture per layer of what its strongest units respond to, the way the Deep
Visualization Toolbox showed its top-9 crops, for a person to open without the window.

``<unit-image folder>/<layer>_crops.png`` (``<layer>``: ``names.safe_name`` of it): one row
per unit, the units whose largest stored value is highest first (at most ``MAX_UNITS``), each
row the unit's number and that value, then its top crops, best first. Crops are read through
the crop store's public face (``CropStore.load``), never from its files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

from toolbox.assets.crops import EMPTY, CropStore
from toolbox.images import write_image
from toolbox.names import safe_name
from toolbox.sheets import BACKGROUND, FONT, INK, PAD, line_height, text_width

MAX_UNITS = 16  # rows of a sheet
MIN_CELL = 64  # crops smaller than this are enlarged to it, so a sheet reads at a glance
LABEL_W = 76  # the column of unit numbers and values
DIM = (150, 150, 160)


def sheet_path(folder: str | Path, layer: str) -> Path:
    return Path(folder) / f"{safe_name(layer)}_crops.png"


def strongest_units(values: np.ndarray, sources: np.ndarray, count: int = MAX_UNITS) -> list[int]:
    """Units with at least one stored crop, by their best stored value, highest first. Ties
    (ReLU6 units saturate at 6) go to the unit whose best stands out most above its last
    stored entry (a unit at 6 on every image says little), then to the lower unit."""
    units = np.flatnonzero(sources[:, 0] != EMPTY)
    best = values[units, 0].astype(np.float64)
    filled = (sources[units] != EMPTY).sum(axis=1)
    last = values[units, filled - 1].astype(np.float64)
    order = np.lexsort((units, -(best - last), -best))
    return [int(u) for u in units[order][:count]]


def crop_sheet(store: CropStore, layer: str, count: int = MAX_UNITS) -> np.ndarray | None:
    """The layer's sheet as RGB uint8, or None when nothing is stored for it."""
    stored = store.load(layer)
    if stored is None:
        return None
    top = stored.top
    units = strongest_units(top.values, top.sources, count)
    if not units:
        return None
    k = top.k
    shown = int((top.sources[units] != EMPTY).sum(axis=1).max())  # fewer than k when few images were looked at
    side = int(stored.pool.shape[1]) if stored.pool is not None and stored.pool.ndim == 4 else MIN_CELL
    cell = max(side, MIN_CELL)
    head = line_height(0.5) + 2 * PAD
    width = PAD + LABEL_W + k * (cell + PAD)
    title = f"{layer}: top {shown} crops of its {len(units)} strongest units of {len(top.values)}"
    while len(title) > 1 and text_width(title, 0.5) > width - 2 * PAD:
        title = title[:-1]
    sheet = np.empty((head + len(units) * (cell + PAD) + PAD, width, 3), np.uint8)
    sheet[:] = BACKGROUND
    cv2.putText(sheet, title, (PAD, head - PAD - 2), FONT, 0.5, INK, 1, cv2.LINE_AA)
    for row, unit in enumerate(units):
        y = head + row * (cell + PAD)
        filled = top.sources[unit] != EMPTY
        crops = stored.crops(top.slots[unit][filled]) if top.slots is not None else np.zeros((0, side, side, 3))
        cv2.putText(sheet, f"unit {unit}", (PAD, y + 16), FONT, 0.45, INK, 1, cv2.LINE_AA)
        cv2.putText(sheet, f"max {float(top.values[unit, 0]):.3g}", (PAD, y + 34), FONT, 0.4, DIM, 1, cv2.LINE_AA)
        for i, crop in enumerate(crops):
            x = PAD + LABEL_W + i * (cell + PAD)
            sheet[y:y + cell, x:x + cell] = cv2.resize(np.asarray(crop, np.uint8), (cell, cell),
                                                       interpolation=cv2.INTER_CUBIC if cell > side else cv2.INTER_AREA)
    return sheet


def write_crop_sheets(store: CropStore, layers: Iterable[str], folder: str | Path) -> list[Path]:
    """``<folder>/<layer>_crops.png`` for every layer with stored crops; the paths written."""
    written = []
    for layer in layers:
        sheet = crop_sheet(store, layer)
        if sheet is not None:
            path = sheet_path(folder, layer)
            write_image(path, sheet)
            written.append(path)
    return written
