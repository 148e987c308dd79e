"""Per-unit images on disk: the one owner of their layout.

In a unit-image folder (``deepvis units -o DIR``; by default
``<cache_dir>/unit_images/<model>``, where the live window looks):

    <layer>_<unit:04d>.png        the optimized image of one unit
    <layer>_sheet.png             a contact sheet of the units of the latest run
    <layer>_objectives.json       {"layer", "model", "units": {"<unit>": {"objective", "preset", "size", "steps"}}}
    .<layer>_objectives.json.lock the lock its writers take (kept: see toolbox.files.locked)

Runs add to a folder: the JSON keeps earlier units' entries. Several runs (and the live
window's worker) may add to one folder at once: the JSON is updated under a lock, and a
damaged one is moved aside (``<layer>_objectives.json.damaged-<time>``), never dropped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from toolbox.files import check_output_dir, clean_stray_parts, update_json
from toolbox.images import read_image, write_image


def _is_unit_key(key: object) -> bool:
    return isinstance(key, str) and key.isascii() and key.isdigit() and key == str(int(key))


def valid_index(data: object) -> bool:
    """Whether ``data`` has the documented layout of an objectives JSON."""
    return (isinstance(data, dict) and isinstance(data.get("model"), str) and isinstance(data.get("layer"), str)
            and isinstance(data.get("units"), dict)
            and all(_is_unit_key(k) and isinstance(v, dict) for k, v in data["units"].items()))


class UnitImageFolder:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def prepare(self) -> None:
        """Before long work: make sure the folder exists and is writable (a one-line
        UserError otherwise) and remove the temporaries of killed runs."""
        check_output_dir(self.root)
        clean_stray_parts(self.root)

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

    def record(self, model: str, layer: str, results: dict[int, float], **details: Any) -> Path:
        """Add units' objective values (and how they were made) to the layer's JSON,
        keeping the entries other runs wrote, even ones writing at the same time."""
        path = self.objectives_path(layer)
        added = {str(int(unit)): {"objective": float(value), **details} for unit, value in results.items()}

        def merge(current: dict) -> dict:
            units = {**current.get("units", {}), **added}
            return {"model": model, "layer": layer, "units": dict(sorted(units.items(), key=lambda kv: int(kv[0])))}

        def same_kind(data: object) -> bool:  # lite0 and lite2 share layer names: never mix their indexes
            return valid_index(data) and data["model"] == model and data["layer"] == layer

        update_json(path, merge, same_kind)
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

