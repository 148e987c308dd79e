"""Natural exemplars on disk: every unit's top (and bottom) image crops. The one owner of
their layout, and of the exact top-K merge that makes runs incremental.

In a unit-image folder (beside the unit images, where the live window looks):

    crops/index.json        {"version", "model", "k", "side",
                             "layers": {layer: {"field": [size, stride, offset_y, offset_x], "signed"}},
                             "images": {"<source id>": {"path", "frame", "sha256"}}}
    crops/<layer>.npz       per unit, best first:
                              top_values (U, K) float32, top_sources (U, K) int64,
                              top_positions (U, K, 2) int16 (row, col in the layer's grid),
                              top_crops (U, K, S, S, 3) uint8 (the input under the unit's field);
                            and bottom_* (lowest first) for layers with signed values
    crops/.layers.lock      the lock every writer takes (and .index.json.lock, the index's)

A source id is the first 63 bits of the image's SHA-256 (a video frame: of its pixels),
so it names the content, not the order it was seen in. Entries are ordered by value, then
source id: the top K of a union is the same whichever way the union is split and merged,
so two half runs merged equal one full run, and a later run merges into the stored one.
Empty slots hold value -inf (top) / +inf (bottom) and source ``EMPTY``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from toolbox.files import atomic_output, display_path, locked, update_json

log = logging.getLogger(__name__)

EMPTY = np.iinfo(np.int64).max  # the source id of an empty slot
FORMAT_VERSION = 1


def source_id(digest: bytes) -> int:
    """A source's id from its SHA-256 digest (non-negative int64)."""
    return int.from_bytes(digest[:8], "big") & (EMPTY - 1)


def content_digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


@dataclass(frozen=True)
class Entries:
    """The K best entries of every unit on one side (top or bottom), best first."""

    values: np.ndarray  # (U, K) float32
    sources: np.ndarray  # (U, K) int64
    positions: np.ndarray  # (U, K, 2) int16
    crops: np.ndarray | None = None  # (U, K, S, S, 3) uint8, when kept

    @staticmethod
    def empty(units: int, k: int, descending: bool, side: int | None = None) -> "Entries":
        fill = -np.inf if descending else np.inf
        crops = None if side is None else np.zeros((units, k, side, side, 3), np.uint8)
        return Entries(np.full((units, k), fill, np.float32), np.full((units, k), EMPTY, np.int64),
                       np.zeros((units, k, 2), np.int16), crops)

    @property
    def k(self) -> int:
        return self.values.shape[1]

    def rows(self, index: np.ndarray) -> "Entries":
        return Entries(self.values[index], self.sources[index], self.positions[index],
                       None if self.crops is None else self.crops[index])

    def filled(self) -> np.ndarray:
        return self.sources != EMPTY


def _dedupe(order: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """Per row, the sorted indices with later repeats of a source pushed to the end (a source
    counted twice, e.g. after a run was killed between saving its results and its index)."""
    ranked = np.take_along_axis(sources, order, axis=1)
    s = np.sort(np.where(ranked == EMPTY, -1, ranked), axis=1)
    rows = np.flatnonzero(((s[:, 1:] == s[:, :-1]) & (s[:, 1:] >= 0)).any(axis=1))
    for r in rows:
        seen: set[int] = set()
        keep, drop = [], []
        for i, src in zip(order[r], ranked[r]):
            (drop if src != EMPTY and src in seen else keep).append(i)
            seen.add(int(src))
        order[r] = keep + drop
    return order


def merge(parts: Iterable[Entries], k: int, descending: bool, dedupe: bool = True) -> tuple[Entries, np.ndarray]:
    """The K best of the union of ``parts`` per unit (ties broken by source id), and for each
    result slot the column it came from in the concatenation of the parts. Crops follow
    their entries when every part has them. ``dedupe=False`` when the parts cannot share a
    source (the batches of one run), which saves a sort."""
    parts = list(parts)
    values = np.concatenate([p.values for p in parts], axis=1)
    sources = np.concatenate([p.sources for p in parts], axis=1)
    positions = np.concatenate([p.positions for p in parts], axis=1)
    key = np.where(sources == EMPTY, np.inf, -values if descending else values)
    order = np.lexsort((sources, key), axis=-1)
    order = (_dedupe(order, sources) if dedupe else order)[:, :k]
    crops = None
    if all(p.crops is not None for p in parts):
        every = np.concatenate([p.crops for p in parts], axis=1)
        crops = every[np.arange(len(values))[:, None], order]
    taken = np.take_along_axis(sources, order, axis=1)
    empty = taken == EMPTY  # dropped duplicates and true blanks are empty slots again
    fill = -np.inf if descending else np.inf
    out = Entries(np.where(empty, fill, np.take_along_axis(values, order, axis=1)).astype(np.float32),
                  np.where(empty, EMPTY, taken),
                  np.take_along_axis(positions, order[..., None], axis=1), crops)
    return out, order


def merge_candidates(best: Entries, candidates: Entries, descending: bool) -> Entries:
    """``best`` with ``candidates`` (metadata only, no source in both) merged in, touching only
    the units where a candidate can enter: reaches the K-th value (ties may enter by id)."""
    kth = best.values[:, -1:]
    reach = (candidates.values >= kth) if descending else (candidates.values <= kth)
    rows = np.flatnonzero(reach.any(axis=1))
    if not len(rows):
        return best
    merged = merge([best.rows(rows), candidates.rows(rows)], best.k, descending, dedupe=False)[0]
    values, sources, positions = best.values.copy(), best.sources.copy(), best.positions.copy()
    values[rows], sources[rows], positions[rows] = merged.values, merged.sources, merged.positions
    return Entries(values, sources, positions)


@dataclass(frozen=True)
class BackpropCrops:
    """For each top entry, the crop of its image's attribution map (``deepvis crops --backprop``,
    DVT's "deconv of the top crops"). ``sources`` says which entry each was made for: after a
    later run changed the top K, a slot whose source differs is stale (not shown, made again)."""

    rule: str  # gradient | guided | deconv
    sources: np.ndarray  # (U, K) int64
    crops: np.ndarray  # (U, K, S, S, 3) uint8


@dataclass(frozen=True)
class LayerCrops:
    top: Entries
    bottom: Entries | None  # None for layers whose values cannot be negative
    backprop: BackpropCrops | None = None


class CropStore:
    """The crops of one network in ``<unit-image folder>/crops``."""

    def __init__(self, root: str | Path) -> None:
        self.dir = Path(root) / "crops"
        self._cache: dict[str, tuple[tuple, LayerCrops]] = {}  # layer -> (file stamp, what it held)

    @property
    def index_path(self) -> Path:
        return self.dir / "index.json"

    def layer_path(self, layer: str) -> Path:
        return self.dir / f"{layer}.npz"

    def exists(self) -> bool:
        return self.index_path.is_file()

    def index(self) -> dict:
        """The index, or an empty one when there is none (or it is unreadable)."""
        try:
            data = json.loads(self.index_path.read_text())
            return data if valid_index(data) else {}
        except (OSError, ValueError):
            return {}

    def _stamp(self, path: Path) -> tuple:
        try:
            st = os.stat(path)
            return st.st_ino, st.st_size, st.st_mtime_ns
        except OSError:
            return ()

    def load(self, layer: str) -> LayerCrops | None:
        """What is stored for ``layer`` (cached while the file is unchanged), or None."""
        path = self.layer_path(layer)
        stamp = self._stamp(path)
        if not stamp:
            return None
        cached = self._cache.get(layer)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        try:
            with np.load(path, allow_pickle=False) as z:
                sides = [Entries(z[f"{s}_values"], z[f"{s}_sources"], z[f"{s}_positions"], z[f"{s}_crops"])
                         if f"{s}_values" in z.files else None for s in ("top", "bottom")]
                backprop = (BackpropCrops(str(z["backprop_rule"]), z["backprop_sources"], z["backprop_crops"])
                            if "backprop_sources" in z.files else None)
        except (OSError, ValueError, KeyError) as e:
            log.warning("crops of %s in %s are unreadable (%s); they will be made again", layer,
                        display_path(path), e)
            return None
        stored = LayerCrops(sides[0], sides[1], backprop)
        self._cache[layer] = (stamp, stored)
        return stored

    def _save(self, layer: str, crops: LayerCrops) -> None:
        arrays = {}
        for side, entries in (("top", crops.top), ("bottom", crops.bottom)):
            if entries is not None:
                arrays.update({f"{side}_values": entries.values, f"{side}_sources": entries.sources,
                               f"{side}_positions": entries.positions, f"{side}_crops": entries.crops})
        if crops.backprop is not None:
            arrays.update({"backprop_rule": np.array(crops.backprop.rule), "backprop_sources": crops.backprop.sources,
                           "backprop_crops": crops.backprop.crops})
        path = self.layer_path(layer)
        with atomic_output(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)
        self._cache[layer] = (self._stamp(path), crops)

    def commit(self, found: dict[str, LayerCrops], images: dict[int, dict], meta: dict) -> None:
        """Merge newly found entries (with their crops) into what is stored, under the lock, so
        several runs can add to one folder; then record their images as seen. Each layer file
        is replaced whole; the index is written last (a kill in between only makes a later run
        look at some images again, and the merge drops the repeats)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with locked(self.dir / "layers"):  # .layers.lock; update_json then takes the index's own
            for layer, new in found.items():
                old = self.load(layer)
                k = new.top.k
                top = merge([new.top] + ([old.top] if old else []), k, True)[0]
                bottom = None
                if new.bottom is not None:
                    bottom = merge([new.bottom] + ([old.bottom] if old and old.bottom is not None else []), k, False)[0]
                if old is None or not (_same(top, old.top) and _same(bottom, old.bottom)):
                    self._save(layer, LayerCrops(top, bottom, old.backprop if old else None))

            def add(data: dict) -> dict:
                data = data or {"version": FORMAT_VERSION, "images": {}}
                data.update({key: value for key, value in meta.items() if key != "layers"})
                data.setdefault("layers", {}).update(meta.get("layers", {}))
                data["images"].update({str(i): info for i, info in images.items()})
                return data

            update_json(self.index_path, add, valid_index)

    def set_backprop(self, layer: str, backprop: BackpropCrops) -> None:
        """Store the attribution crops of a layer's top entries (under the lock, beside them)."""
        with locked(self.dir / "layers"):
            stored = self.load(layer)
            if stored is not None:
                self._save(layer, LayerCrops(stored.top, stored.bottom, backprop))

    def unit_backprop(self, layer: str, unit: int) -> np.ndarray | None:
        """The attribution crops of a unit's filled top slots, best first (black where one is
        missing or stale); None when the layer has none."""
        stored = self.load(layer)
        if stored is None or stored.backprop is None or unit >= len(stored.top.values):
            return None
        filled = stored.top.sources[unit] != EMPTY
        fresh = stored.backprop.sources[unit] == stored.top.sources[unit]
        return np.where(fresh[:, None, None, None], stored.backprop.crops[unit], 0)[filled]

    def unit(self, layer: str, unit: int, bottom: bool = False) -> tuple[np.ndarray, np.ndarray] | None:
        """(crops (n, S, S, 3), values (n,)) of the filled slots of one unit, best first; None
        when nothing is stored for the layer (or it has no such side)."""
        stored = self.load(layer)
        entries = None if stored is None else (stored.bottom if bottom else stored.top)
        if entries is None or unit >= len(entries.values):
            return None
        filled = entries.sources[unit] != EMPTY
        return entries.crops[unit][filled], entries.values[unit][filled]


def _same(a: Entries | None, b: Entries | None) -> bool:
    """Whether two sides hold the same entries (then the file need not be written again)."""
    if a is None or b is None:
        return a is b
    return np.array_equal(a.sources, b.sources) and np.array_equal(a.values, b.values)


def valid_index(data: object) -> bool:
    return (isinstance(data, dict) and isinstance(data.get("images"), dict)
            and isinstance(data.get("layers", {}), dict))
