"""Per-unit images on disk: the one owner of their layout.

In a unit-image folder (``deepvis units -o DIR``; by default
``<cache_dir>/unit_images/<model>``, where the live window looks):

    <layer>_<unit:04d>.png        the optimized image of one unit
    <layer>_sheet.png             a contact sheet of the units of the latest run
    <layer>_objectives.json       {"layer", "model", "units": {"<unit>": {"objective", "preset", "size", "steps"}}}

Runs add to a folder: the JSON keeps earlier units' entries.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from toolbox.images import atomic_write, read_image, write_image


class UnitImageFolder:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def image_path(self, layer: str, unit: int) -> Path:
        return self.root / f"{layer}_{unit:04d}.png"

    def sheet_path(self, layer: str) -> Path:
        return self.root / f"{layer}_sheet.png"

    def objectives_path(self, layer: str) -> Path:
        return self.root / f"{layer}_objectives.json"

    def load(self, layer: str, unit: int) -> np.ndarray | None:
        """The stored image of a unit, or None when there is none (or it is unreadable)."""
        path = self.image_path(layer, unit)
        if not path.is_file():
            return None
        try:
            return read_image(path)
        except Exception:
            return None

    def save(self, layer: str, unit: int, image: np.ndarray) -> Path:
        path = self.image_path(layer, unit)
        write_image(path, image)
        return path

    def record(self, model: str, layer: str, results: dict[int, float], **details) -> Path:
        """Add units' objective values (and how they were made) to the layer's JSON."""
        path = self.objectives_path(layer)
        data = {"model": model, "layer": layer, "units": {}}
        if path.is_file():
            try:
                data["units"] = json.loads(path.read_text()).get("units", {})
            except (ValueError, OSError):
                pass
        for unit, value in results.items():
            data["units"][str(unit)] = {"objective": float(value), **details}
        data["units"] = dict(sorted(data["units"].items(), key=lambda kv: int(kv[0])))
        atomic_write(path, (json.dumps(data, indent=1) + "\n").encode())
        return path

    def save_sheet(self, layer: str, units: Sequence[int], images: Sequence[np.ndarray]) -> Path:
        path = self.sheet_path(layer)
        write_image(path, contact_sheet(images, [f"{layer} {u}" for u in units]))
        return path


def contact_sheet(images: Sequence[np.ndarray], captions: Sequence[str], columns: int = 0,
                  caption_height: int = 16) -> np.ndarray:
    """Images in a grid, each with a caption underneath, on a dark background."""
    n = len(images)
    columns = columns or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / columns))
    h, w = images[0].shape[:2]
    cell_h, pad = h + caption_height, 4
    sheet = np.full((rows * (cell_h + pad) + pad, columns * (w + pad) + pad, 3), 24, np.uint8)
    for i, (image, caption) in enumerate(zip(images, captions)):
        y, x = pad + (i // columns) * (cell_h + pad), pad + (i % columns) * (w + pad)
        sheet[y:y + h, x:x + w] = image
        cv2.putText(sheet, caption, (x + 2, y + h + caption_height - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (230, 230, 230), 1, cv2.LINE_AA)
    return sheet

