"""Per-unit images on disk: the one owner of their layout.

In a unit-image folder (``deepvis units -o DIR``; by default
``<cache_dir>/unit_images/<model>``, where the live window looks):

    <layer>_<unit:04d>.png        the optimized image of one unit
    <layer>_<unit:04d>_transparency.png  beside it, for presets that make one (maco): where
                                  the ascent looked, the accumulated |gradient| on each pixel,
                                  grey, scaled so the image's largest is 255
    <layer>_sheet.png             a contact sheet of the units of the latest run
    <layer>_objectives.json       {"layer", "model", "units": {"<unit>": {"objective", "preset", "size", "steps"}}};
                                  a unit with nothing to show has no image, and its entry says why:
                                  {"objective", "nothing_to_show": kind, "said": "unit 34 is nearly constant: ..."}
    .<layer>_objectives.json.lock the lock its writers take (kept: see toolbox.files.locked)
    deepvis-assets.json           {"model"}: the network whose assets the folder holds (``claim``)

A folder holds one network's assets: lite0 and lite2 share layer names, so a unit image or a
crop of one must never be shown as the other's. Every job that writes into a folder claims it
for its network first, and every reader checks the claim (``check_model``).

A layer's name becomes part of a file name through ``names.safe_name`` (an ordinary name as it
is; one with ``<``, ``/`` or 300 characters as a short stem and a digest). Every file here is
read through ``files.read_inside``: a regular file in this folder, never a link (a unit image
that is a link to /etc/passwd is refused, not shown or published).

Runs add to a folder: the JSON keeps earlier units' entries. Several runs (and the live
window's worker) may add to one folder at once: the JSON is updated under a lock, and a
damaged one is moved aside (``<layer>_objectives.json.damaged-<time>``), never dropped.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from toolbox.errors import UserError
from toolbox.files import (
    atomic_write,
    check_output_dir,
    clean_stray_parts,
    display_path,
    open_inside,
    read_stored,
    update_json,
)
from toolbox.images import decode_image, max_file_bytes, write_image
from toolbox.jsonfile import MAX_JSON_BYTES, BadJSON, expect_object, parse_json
from toolbox.names import safe_name
from toolbox.sheets import contact_sheet

log = logging.getLogger(__name__)

MAX_IMAGE_PIXELS = 4096 * 4096  # of a stored unit image or map (units.size is at most 2048)
MAX_IMAGE_BYTES = max_file_bytes(MAX_IMAGE_PIXELS)


def _is_unit_key(key: object) -> bool:
    return isinstance(key, str) and key.isascii() and key.isdigit() and key == str(int(key))


def valid_index(data: object) -> bool:
    """Whether ``data`` has the documented layout of an objectives JSON."""
    return (isinstance(data, dict) and isinstance(data.get("model"), str) and isinstance(data.get("layer"), str)
            and isinstance(data.get("units"), dict)
            and all(_is_unit_key(k) and _valid_entry(v) for k, v in data["units"].items()))


def _valid_entry(entry: object) -> bool:
    """One unit's entry: its objective value, and how it was made (each optional but typed)."""
    def number(v: object) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    return (isinstance(entry, dict) and number(entry.get("objective"))
            and all(isinstance(entry.get(key, ""), str) for key in ("preset", "nothing_to_show", "said"))
            and all(number(entry.get(key, 0)) for key in ("size", "steps")))


class UnitImageFolder:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def prepare(self) -> None:
        """Before long work: make sure the folder exists and is writable (a one-line
        UserError otherwise) and remove the temporaries of killed runs."""
        check_output_dir(self.root)
        clean_stray_parts(self.root)

    @property
    def record_path(self) -> Path:
        return self.root / "deepvis-assets.json"

    def read_json(self, path: Path, what: str) -> dict | None:
        """The JSON object stored at ``path`` (in this folder); None when it is missing, and
        (with a one-line warning) when it is refused or damaged: not JSON, nested too deeply,
        not an object."""
        data = read_stored(self.root, path, what, MAX_JSON_BYTES)
        if data is None:
            return None
        try:
            return expect_object(parse_json(data))
        except BadJSON as e:
            log.warning("%s %s is damaged (%s); ignored", what, display_path(path), e)
            return None

    def held_model(self) -> str | None:
        """The network whose assets the folder holds: its record, else (a folder of an earlier
        version) what its crop index or an objectives file names; None for a new folder."""
        candidates = [(self.record_path, "network record"), (self.root / "crops" / "index.json", "crop index"),
                      *[(p, "objectives file") for p in sorted(self.root.glob("*_objectives.json"))[:1]]]
        for path, what in candidates:
            model = (self.read_json(path, what) or {}).get("model")
            if isinstance(model, str) and model:
                return model
        return None

    def check_model(self, model: str) -> None:
        """A one-line UserError when the folder holds another network's assets."""
        held = self.held_model()
        if held is not None and held != model:
            raise UserError(f"{display_path(self.root)} holds the assets of {display_path(held)[:60]}, not {model}: "
                            f"choose another folder, or --model {display_path(held)[:60]}")

    def claim(self, model: str) -> None:
        """Before writing: the folder becomes ``model``'s (refused when it is another's)."""
        self.check_model(model)
        if not _is_regular(self.record_path):  # missing, or a link held_model refused: replaced, its target untouched
            atomic_write(self.record_path, (json.dumps({"model": model}) + "\n").encode())

    def image_path(self, layer: str, unit: int) -> Path:
        return self.root / f"{safe_name(layer)}_{unit:04d}.png"

    def transparency_path(self, layer: str, unit: int) -> Path:
        return self.root / f"{safe_name(layer)}_{unit:04d}_transparency.png"

    def sheet_path(self, layer: str) -> Path:
        return self.root / f"{safe_name(layer)}_sheet.png"

    def objectives_path(self, layer: str) -> Path:
        return self.root / f"{safe_name(layer)}_objectives.json"

    def has_image(self, layer: str, unit: int) -> bool:
        """Whether a unit's image is stored as a file this folder reads (a link is not: a
        one-line warning says so). Opens it, reads nothing."""
        try:
            f = open_inside(self.root, self.image_path(layer, unit), "unit image")
        except UserError as e:
            log.warning("%s; ignored", e)
            return False
        if f is None:
            return False
        f.close()
        return True

    def image_bytes(self, layer: str, unit: int) -> bytes | None:
        """The stored file of a unit's image as it is (what the atlas publishes), or None
        when there is none or it is refused (a link, not a regular file, too large)."""
        return read_stored(self.root, self.image_path(layer, unit), "unit image", MAX_IMAGE_BYTES)

    def _image(self, path: Path, what: str) -> np.ndarray | None:
        data = read_stored(self.root, path, what, MAX_IMAGE_BYTES)
        if data is None:
            return None
        try:
            return decode_image(data, display_path(path), MAX_IMAGE_PIXELS)
        except UserError as e:
            log.warning("%s; ignored", e)
            return None

    def load(self, layer: str, unit: int) -> np.ndarray | None:
        """The stored image of a unit, or None when there is none (or it is unreadable)."""
        return self._image(self.image_path(layer, unit), "unit image")

    def load_transparency(self, layer: str, unit: int) -> np.ndarray | None:
        """The stored transparency map of a unit, (H, W) uint8, or None when there is none."""
        image = self._image(self.transparency_path(layer, unit), "transparency map")
        return None if image is None else image[..., 0]

    def objectives(self, model: str, layer: str) -> dict[str, dict]:
        """The recorded units of ``layer`` ({"<unit>": {"objective", ...}}) when its objectives
        file is ``model``'s and whole; {} otherwise."""
        data = self.read_json(self.objectives_path(layer), "objectives file")
        return data["units"] if valid_index(data) and data["model"] == model else {}

    def nothing_to_show(self, model: str, layer: str) -> dict[int, str]:
        """{unit: why} for the units of ``layer`` recorded as having nothing to show (no image)."""
        return {int(u): e["said"] for u, e in self.objectives(model, layer).items() if e.get("said")}

    def store(self, model: str, layer: str, made: dict[int, tuple[np.ndarray, np.ndarray | None, float]],
              said: dict[int, dict] | None = None, **details: Any) -> set[int]:
        """One batch of ``layer``'s unit images, as every job stores them: ``made`` {unit:
        (image, transparency map or None, objective value)} saved and recorded; ``said`` {unit:
        ``Variation.as_record``} recorded instead of an image. A unit that no image can show
        (``flat``) loses an image stored earlier: it was flat too. An image that was beaten by
        a plain one leaves an earlier image of its unit (another run's, that showed something)
        as it is, and is recorded only where there is none. Returns the units of ``said`` now
        recorded without an image (the others kept the image made earlier)."""
        from toolbox.optvis.unit_range import NO_BETTER_THAN_PLAIN

        for unit, (image, transparency, _) in made.items():
            self.save(layer, unit, image, transparency)
        notes = {}
        for unit, record in (said or {}).items():
            if record["nothing_to_show"] == NO_BETTER_THAN_PLAIN and self.has_image(layer, unit):
                continue  # one made earlier was not beaten
            # the image goes before the record says why: a kill in between leaves neither a flat
            # image shown as a result nor a record that contradicts an image
            self.image_path(layer, unit).unlink(missing_ok=True)
            self.transparency_path(layer, unit).unlink(missing_ok=True)
            notes[unit] = {"objective": record["value"], "nothing_to_show": record["nothing_to_show"],
                           "said": record["said"]}
        values = {unit: value for unit, (_, _, value) in made.items()}
        self.record(model, layer, values, notes, **details)
        return set(notes)

    def save(self, layer: str, unit: int, image: np.ndarray, transparency: np.ndarray | None = None) -> Path:
        """Store a unit's image and, when given, its transparency map ((H, W), any scale);
        without one, a map an earlier run left is removed: it belonged to another image."""
        path = self.image_path(layer, unit)
        alpha = self.transparency_path(layer, unit)
        if transparency is None:
            alpha.unlink(missing_ok=True)
        else:
            write_image(alpha, transparency_image(transparency))
        write_image(path, image)
        return path

    def record(self, model: str, layer: str, results: dict[int, float], notes: dict[int, dict] | None = None,
               **details: Any) -> Path:
        """Add units' objective values (and how they were made) to the layer's JSON, and
        ``notes``' entries as they are (``store``: units with nothing to show), keeping the
        entries other runs wrote, even ones writing at the same time."""
        path = self.objectives_path(layer)
        added = {str(int(unit)): {"objective": float(value), **details} for unit, value in results.items()}
        added.update({str(int(unit)): {**entry, **details} for unit, entry in (notes or {}).items()})

        def merge(current: dict) -> dict:
            units = {**current.get("units", {}), **added}
            return {"model": model, "layer": layer, "units": dict(sorted(units.items(), key=lambda kv: int(kv[0])))}

        def same_kind(data: object) -> bool:  # lite0 and lite2 share layer names: never mix their indexes
            return valid_index(data) and data["model"] == model and data["layer"] == layer

        update_json(path, merge, same_kind, root=self.root)
        return path

    def save_sheet(self, layer: str, units: Sequence[int], images: Sequence[np.ndarray],
                   said: Sequence[int] = ()) -> Path:
        """The layer's contact sheet of the latest run (``unit_sheet``): its images, and a tile
        for each unit ``said`` to have nothing to show."""
        path = self.sheet_path(layer)
        write_image(path, unit_sheet(layer, units, images, said))
        return path


def unit_sheet(layer: str, units: Sequence[int], images: Sequence[np.ndarray], said: Sequence[int] = ()) -> np.ndarray:
    """The contact sheet of a layer's unit images, in unit order: each image, and a dark tile
    captioned "nothing to show" for each unit in ``said`` (what `deepvis units` writes and a
    notebook shows)."""
    side = images[0].shape[0] if len(images) else 64
    tiles = {u: (image, f"unit {u}") for u, image in zip(units, images)}
    tiles.update({u: (np.full((side, side, 3), 40, np.uint8), f"unit {u}: nothing to show") for u in said})
    order = sorted(tiles)
    return contact_sheet([tiles[u][0] for u in order], [tiles[u][1] for u in order], title=layer)


def _is_regular(path: Path) -> bool:
    """Whether ``path`` is a regular file itself (not a link to one)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def transparency_image(transparency: np.ndarray) -> np.ndarray:
    """A transparency map as grey uint8, its largest value 255 (all 0 when it is all 0)."""
    t = np.asarray(transparency, np.float64)
    top = t.max()
    return np.zeros(t.shape, np.uint8) if top <= 0 else np.round(t / top * 255).astype(np.uint8)
