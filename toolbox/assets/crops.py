"""Natural exemplars on disk: every unit's top (and bottom) image crops. The one owner of
their layout, and of the exact top-K merge that makes runs incremental.

In a unit-image folder (beside the unit images, where the live window looks):

    crops/index.json        {"version", "model", "k", "side",
                             "layers": {layer: {"field": [size, stride, offset_y, offset_x], "signed"}},
                             "images": {"<source id>": {"path", "frame", "sha256"}}}
    crops/<layer>.npz       per unit, best first:
                              top_values (U, K) float32, top_sources (U, K) int64,
                              top_positions (U, K, 2) int16 (row, col in the layer's grid),
                              top_slots (U, K) int64 (the entry's crop in the pool; -1: none);
                            bottom_* (lowest first) for layers with signed values;
                            backprop_rule, backprop_sources, backprop_slots (``crops --backprop``);
                            pool (the pool file's name), pool_records, side
    crops/<layer>.<n>.pool  the crops: raw uint8 records of side x side x 3 (RGB), one after
                            another; record i starts at byte i * side * side * 3
    crops/.layers.lock      the lock every writer takes (and .index.json.lock, the index's)

The pool only grows: a commit appends the crops of its new entries and then replaces the
small .npz that points into it, so a chunk of images costs what it found, not the size of
the store. A kill between the two leaves records nothing points at, cut off by the next
commit. When most of a pool is dead (entries pushed out of the top K), the next commit
copies the live records into pool n + 1, points the .npz at it, then deletes pool n.

A layer's files are named by ``names.safe_name`` (an ordinary name as it is). Every file is
read only when it is a regular file inside the asset folder, reached without a link
(``files.open_inside``; the .npz through ``stored_arrays.read_npz``, which checks what each
array declares before reading it); a store is written only through real folders.

A source id is the first 63 bits of the image's SHA-256 (a video frame: of its pixels),
so it names the content, not the order it was seen in. Entries are ordered by value, then
source id: the top K of a union is the same whichever way the union is split and merged,
so two half runs merged equal one full run, and a later run merges into the stored one.
Empty slots hold value -inf (top) / +inf (bottom) and source ``EMPTY``.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import re
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable

import numpy as np

from toolbox.assets.stored_arrays import read_npz
from toolbox.errors import UserError
from toolbox.files import (
    atomic_output,
    clean_stray_parts,
    display_path,
    locked,
    move_aside,
    open_inside,
    read_stored,
    real_folder,
    update_json,
)
from toolbox.jsonfile import MAX_JSON_BYTES, BadJSON, parse_json
from toolbox.names import safe_name

log = logging.getLogger(__name__)

EMPTY = np.iinfo(np.int64).max  # the source id of an empty slot
FORMAT_VERSION = 2
NO_CROP = -1  # the slot of an entry without a crop
MAX_SIDE = 1024  # of a crop
MAX_RECORDS = 1 << 31
MAX_UNITS = 1 << 16  # of a stored layer: wider than any layer deepvis offers
MAX_K = 1024  # entries kept per unit (crops.top is at most 100)
# what reading a damaged layer file can raise: cut short, random bytes, arrays that disagree
DAMAGE = (OSError, ValueError, KeyError, IndexError, TypeError, EOFError, zipfile.BadZipFile)
_U, _K, _S = MAX_UNITS, MAX_K, MAX_SIDE
# every array a layer file may hold, with the largest size of each axis (read_npz checks them)
LAYER_ARRAYS = {
    **{f"{side}_{name}": shape for side in ("top", "bottom") for name, shape in
       (("values", (_U, _K)), ("sources", (_U, _K)), ("positions", (_U, _K, 2)), ("slots", (_U, _K)),
        ("crops", (_U, _K, _S, _S, 3)))},
    "backprop_rule": (), "backprop_sources": (_U, _K), "backprop_slots": (_U, _K),
    "backprop_crops": (_U, _K, _S, _S, 3),
    "pool": (), "pool_records": (), "side": (),
}


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
    slots: np.ndarray | None = None  # (U, K) int64: each entry's crop in its pool (NO_CROP: none)

    @staticmethod
    def empty(units: int, k: int, descending: bool) -> "Entries":
        fill = -np.inf if descending else np.inf
        return Entries(np.full((units, k), fill, np.float32), np.full((units, k), EMPTY, np.int64),
                       np.zeros((units, k, 2), np.int16))

    @property
    def k(self) -> int:
        return self.values.shape[1]

    def rows(self, index: np.ndarray) -> "Entries":
        return Entries(self.values[index], self.sources[index], self.positions[index],
                       None if self.slots is None else self.slots[index])

    def with_slots(self, slots: np.ndarray) -> "Entries":
        return Entries(self.values, self.sources, self.positions, slots)


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
    result slot the column it came from in the concatenation of the parts. Crop slots follow
    their entries when every part has them. ``dedupe=False`` when the parts cannot share a
    source (the batches of one run), which saves a sort."""
    parts = list(parts)
    values = np.concatenate([p.values for p in parts], axis=1)
    sources = np.concatenate([p.sources for p in parts], axis=1)
    positions = np.concatenate([p.positions for p in parts], axis=1)
    key = np.where(sources == EMPTY, np.inf, -values if descending else values)
    order = np.lexsort((sources, key), axis=-1)
    order = (_dedupe(order, sources) if dedupe else order)[:, :k]
    slots = None
    if all(p.slots is not None for p in parts):
        slots = np.take_along_axis(np.concatenate([p.slots for p in parts], axis=1), order, axis=1)
    taken = np.take_along_axis(sources, order, axis=1)
    empty = taken == EMPTY  # dropped duplicates and true blanks are empty slots again
    fill = -np.inf if descending else np.inf
    out = Entries(np.where(empty, fill, np.take_along_axis(values, order, axis=1)).astype(np.float32),
                  np.where(empty, EMPTY, taken),
                  np.take_along_axis(positions, order[..., None], axis=1),
                  None if slots is None else np.where(empty, NO_CROP, slots))
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
    slots: np.ndarray  # (U, K) int64: the crop in the pool (NO_CROP: none)


@dataclass(frozen=True)
class LayerCrops:
    """A layer's entries and the pool of crops their slots point into: the stored ones
    (read from the pool file as needed), or a run's new ones (in memory)."""

    top: Entries
    bottom: Entries | None  # None for layers whose values cannot be negative
    backprop: BackpropCrops | None = None
    pool: np.ndarray | None = None  # (R, S, S, 3) uint8

    def crops(self, slots: np.ndarray) -> np.ndarray:
        """The crops at ``slots`` (black where there is none)."""
        slots = np.asarray(slots)
        out = np.zeros((*slots.shape, *self.pool.shape[1:]), np.uint8)
        have = slots != NO_CROP
        out[have] = self.pool[slots[have]]
        return out


class CropStore:
    """The crops of one network in ``<unit-image folder>/crops``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.dir = self.root / "crops"
        # layer -> (file stamp, what it held; None: damaged or refused, warned about once)
        self._cache: dict[str, tuple[tuple, LayerCrops | None]] = {}
        self._prepared = False
        self._forget_seen = False  # a layer file was found damaged: the index forgets what it saw

    @property
    def index_path(self) -> Path:
        return self.dir / "index.json"

    def layer_path(self, layer: str) -> Path:
        return self.dir / f"{safe_name(layer)}.npz"

    def exists(self) -> bool:
        """Whether the store has an index it can read."""
        try:
            f = open_inside(self.root, self.index_path, "crop index")
        except UserError:
            return False
        if f is not None:
            f.close()
        return f is not None

    def index(self) -> dict:
        """The index, or an empty one when there is none, or it is refused or damaged (a
        one-line warning)."""
        data = read_stored(self.root, self.index_path, "crop index", MAX_JSON_BYTES)
        if data is None:
            return {}
        try:
            index = parse_json(data)
        except BadJSON as e:
            log.warning("crop index %s is damaged (%s); ignored", display_path(self.index_path), e)
            return {}
        return index if valid_index(index) else {}

    def _stamp(self, path: Path) -> tuple:
        """What identifies the file now (a link: the link's own, so it is never followed)."""
        try:
            st = os.lstat(path)
            return st.st_ino, st.st_size, st.st_mtime_ns
        except OSError:
            return ()

    def _prepare(self) -> None:
        """Before this store's first write: its folder exists, a real folder (never written
        through a link), and the temporaries of runs killed while writing in it are gone (a
        live writer's are kept)."""
        if not self._prepared:
            real_folder(self.root, self.dir)
            clean_stray_parts(self.dir)
            self._prepared = True

    def pool_path(self, layer: str, generation: int) -> Path:
        return self.dir / f"{safe_name(layer)}.{generation}.pool"

    def load(self, layer: str) -> LayerCrops | None:
        """What is stored for ``layer`` (cached while the file is unchanged; the crops are
        mapped from the pool file, not read), or None."""
        path = self.layer_path(layer)
        stamp = self._stamp(path)
        if not stamp:
            return None
        cached = self._cache.get(layer)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        try:
            stored = self._read(layer, path)
        except (*DAMAGE, UserError) as e:
            log.warning("crops of %s in %s are damaged or refused (%s); they will be made again", layer,
                        display_path(path), " ".join(str(e).split())[:200] or type(e).__name__)
            stored = None
        self._cache[layer] = (stamp, stored)
        return stored

    def _load_for_write(self, layer: str) -> LayerCrops | None:
        """``load`` for a writer (under the lock): a damaged layer file is moved aside, and the
        index forgets every image it lists, so that the next run looks at them again and what
        the file held is made again (the merge drops repeats in the layers that kept theirs)."""
        stored = self.load(layer)
        path = self.layer_path(layer)
        if stored is None and self._stamp(path):
            move_aside(path, "is damaged")
            self._forget_seen = True
        return stored

    def _read(self, layer: str, path: Path) -> LayerCrops:
        z = read_npz(self.root, path, "crops file", LAYER_ARRAYS)
        if z is None:
            raise FileNotFoundError("it is gone")
        if "top_crops" in z:  # format 1: the crops inside the .npz; the next commit moves them out
            return _checked(_from_format_1(z), None)
        sides = [Entries(z[f"{s}_values"], z[f"{s}_sources"], z[f"{s}_positions"], z[f"{s}_slots"])
                 if f"{s}_values" in z else None for s in ("top", "bottom")]
        backprop = (BackpropCrops(str(z["backprop_rule"]), z["backprop_sources"], z["backprop_slots"])
                    if "backprop_sources" in z else None)
        pool_name, records, side = str(z["pool"]), int(z["pool_records"]), int(z["side"])
        stem = safe_name(layer)
        if not re.fullmatch(rf"{re.escape(stem)}\.\d+\.pool", pool_name):  # a store reads only its own files
            raise ValueError(f"its pool is named {pool_name[:80]!r}, not {stem}.<n>.pool")
        if not 0 < side <= MAX_SIDE or not 0 <= records <= MAX_RECORDS:
            raise ValueError(f"it declares {records} crops of side {side}")
        pool_file = open_inside(self.root, self.dir / pool_name, "crop pool")
        if pool_file is None:
            raise FileNotFoundError(f"its pool {pool_name} is missing")
        with pool_file:
            if os.fstat(pool_file.fileno()).st_size < records * side * side * 3:
                raise ValueError(f"{pool_name} holds fewer crops than its index says")
            pool = _mapped_pool(pool_file, records, side)  # the map outlives the file object
        return _checked(LayerCrops(sides[0], sides[1], backprop, pool), records)

    def _write(self, layer: str, old: LayerCrops | None, top: Entries, bottom: Entries | None,
               backprop: BackpropCrops | None, new: np.ndarray) -> None:
        """Store a layer's entries. Slots >= 0 point into ``old``'s pool, slots below -1 at
        ``new`` (``_new_slot``): the new crops that made it in are appended to
        the pool file (or all live crops copied into a fresh one), then the .npz is replaced."""
        tables = [e.slots for e in (top, bottom) if e is not None] + ([backprop.slots] if backprop else [])
        used = np.concatenate([t.ravel() for t in tables])
        fresh = np.unique(_new_slot(used[used <= -2]))
        kept = np.unique(used[used >= 0])
        side = new.shape[1] if old is None else old.pool.shape[1]
        generation, records = self._pool_of(old)
        if generation is None or records > 2 * len(kept) + 1024:  # no pool file yet, or mostly dead: copy out
            generation = max(self._generations(layer), default=0) + 1
            records = 0
            remap_old = np.full(max(len(old.pool) if old else 0, 1), NO_CROP, np.int64)
            remap_old[kept] = np.arange(len(kept))
            moved = [old.pool[kept]] if len(kept) else []
        else:
            remap_old, moved = None, []
        pool_file = self.pool_path(layer, generation)
        with open(pool_file, "r+b" if records else "wb", opener=_no_link) as f:
            f.truncate(records * side * side * 3)  # records a killed commit appended but never pointed at
            f.seek(0, os.SEEK_END)
            for block in moved + [new[fresh]]:
                f.write(np.ascontiguousarray(block, np.uint8).data)
            f.flush()
            os.fsync(f.fileno())
        first_new = records + len(kept) if remap_old is not None else records
        remap_new = np.full(max(len(new), 1), NO_CROP, np.int64)
        remap_new[fresh] = first_new + np.arange(len(fresh))

        def moved_slots(slots: np.ndarray) -> np.ndarray:
            out = slots.copy()
            is_new, is_old = slots <= -2, slots >= 0
            out[is_new] = remap_new[_new_slot(slots[is_new])]
            if remap_old is not None:
                out[is_old] = remap_old[slots[is_old]]
            return out

        arrays = {"pool": np.array(pool_file.name), "pool_records": np.array(first_new + len(fresh)),
                  "side": np.array(side)}
        for name, entries in (("top", top), ("bottom", bottom)):
            if entries is not None:
                arrays.update({f"{name}_values": entries.values, f"{name}_sources": entries.sources,
                               f"{name}_positions": entries.positions, f"{name}_slots": moved_slots(entries.slots)})
        if backprop is not None:
            arrays.update({"backprop_rule": np.array(backprop.rule), "backprop_sources": backprop.sources,
                           "backprop_slots": moved_slots(backprop.slots)})
        with atomic_output(self.layer_path(layer)) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)
        # what was just written is what a read would give: the next commit and the next
        # chunk's bounds need not read the file again
        sides = [None if e is None else Entries(e.values, e.sources, e.positions, arrays[f"{name}_slots"])
                 for name, e in (("top", top), ("bottom", bottom))]
        kept_backprop = None if backprop is None else BackpropCrops(backprop.rule, backprop.sources,
                                                                    arrays["backprop_slots"])
        pool = _mapped_pool(pool_file, int(arrays["pool_records"]), side)
        self._cache[layer] = (self._stamp(self.layer_path(layer)), LayerCrops(sides[0], sides[1], kept_backprop, pool))
        for stale in self._generations(layer).values():  # earlier generations, and a killed commit's
            if stale != pool_file:
                stale.unlink(missing_ok=True)

    def _pool_of(self, old: LayerCrops | None) -> tuple[int | None, int]:
        """(generation, records) of the pool file ``old`` was read from; (None, 0) when none."""
        if old is None or not isinstance(old.pool, np.memmap):
            return None, 0
        return int(Path(old.pool.filename).name.split(".")[-2]), len(old.pool)

    def _generations(self, layer: str) -> dict[int, Path]:
        stem = safe_name(layer)
        pattern = re.compile(rf"{re.escape(stem)}\.(\d+)\.pool")
        return {int(m.group(1)): f for f in self.dir.glob(f"{glob.escape(stem)}.*.pool")
                if (m := pattern.fullmatch(f.name))}

    def commit(self, found: dict[str, LayerCrops], images: dict[int, dict], meta: dict) -> None:
        """Merge newly found entries (with the pool of their crops) into what is stored, under
        the lock, so several runs can add to one folder; then record their images as seen.
        The index is written last (a kill in between only makes a later run look at some
        images again, and the merge drops the repeats)."""
        self._prepare()
        with locked(self.dir / "layers"):  # .layers.lock; update_json then takes the index's own
            self.check_compatible(meta.get("model"), meta.get("side"))
            writes = []
            for layer, new in found.items():
                old = self._load_for_write(layer)
                k = new.top.k

                def side(fresh: Entries | None, stored: Entries | None, descending: bool) -> Entries | None:
                    if fresh is None:
                        return None
                    tagged = fresh.with_slots(np.where(fresh.slots == NO_CROP, NO_CROP, _new_slot(fresh.slots)))
                    return merge([tagged] + ([stored] if stored is not None else []), k, descending)[0]

                top = side(new.top, old.top if old else None, True)
                bottom = side(new.bottom, old.bottom if old else None, False)
                if old is None or not (_same(top, old.top) and _same(bottom, old.bottom)):
                    writes.append((layer, old, top, bottom, old.backprop if old else None, new.pool))
            # The layers' files are independent: written side by side, their fsyncs share the
            # file system's journal commits (one after another, each waits for its own).
            with ThreadPoolExecutor(min(8, max(1, len(writes))), thread_name_prefix="deepvis-commit") as pool:
                for done in [pool.submit(self._write, *args) for args in writes]:
                    done.result()

            forget = self._forget_seen

            def add(data: dict) -> dict:
                data = data or {"version": FORMAT_VERSION, "images": {}}
                if forget:  # a layer file was damaged: every image is looked at again by the next run
                    data["images"] = {}
                data.update({key: value for key, value in meta.items() if key != "layers"})
                data["version"] = FORMAT_VERSION
                data.setdefault("layers", {}).update(meta.get("layers", {}))
                data["images"].update({str(i): info for i, info in images.items()})
                return data

            update_json(self.index_path, add, valid_index, indent=None, root=self.root)  # it lists every image seen
            self._forget_seen = False

    def repair(self, layers: Iterable[str]) -> None:
        """Before a run over ``layers``: damaged layer files are moved aside and the index
        forgets the images it saw, so this run looks at them again and remakes what was lost."""
        if not os.path.lexists(self.dir):
            return
        self._prepare()  # a crops folder that is a link: refused here, before anything is moved
        with locked(self.dir / "layers"):
            for layer in layers:
                self._load_for_write(layer)
            if self._forget_seen and os.path.lexists(self.index_path):
                update_json(self.index_path, lambda data: {**data, "images": {}} if data else data, valid_index,
                            indent=None, root=self.root)
            self._forget_seen = False

    def check_compatible(self, model: str | None, side: int | None) -> None:
        """A one-line UserError when the store holds another network's crops, or crops of
        another side (one pool holds records of one size: mixing them shows stripes)."""
        if model is None or side is None:
            return
        index = self.index()
        held = index.get("model")
        if held and held != model:
            raise UserError(f"{display_path(self.dir)} holds crops of {display_path(held)[:60]}, not {model}: "
                            f"choose another folder")
        if index.get("images") and index.get("side") not in (None, side):
            raise UserError(f"the crops in {display_path(self.dir)} are {index['side']} px; give --side "
                            f"{index['side']} (crops.side), or another folder for {side} px crops")

    def set_backprop(self, layer: str, rule: str, units: np.ndarray, slots: np.ndarray, sources: np.ndarray,
                     crops: np.ndarray) -> None:
        """Store attribution crops made with ``rule`` for the top entries (``units``, ``slots``)
        of ``sources`` (under the lock, beside them); those of another rule are dropped."""
        self._prepare()
        with locked(self.dir / "layers"):
            stored = self._load_for_write(layer)
            if stored is None:
                return
            old = stored.backprop if stored.backprop is not None and stored.backprop.rule == rule else None
            table = old.sources.copy() if old else np.full_like(stored.top.sources, EMPTY)
            where = old.slots.copy() if old else np.full_like(stored.top.sources, NO_CROP)
            table[units, slots] = sources
            where[units, slots] = _new_slot(np.arange(len(units)))
            self._write(layer, stored, stored.top, stored.bottom, BackpropCrops(rule, table, where), crops)

    def unit_backprop(self, layer: str, unit: int) -> np.ndarray | None:
        """The attribution crops of a unit's filled top slots, best first (black where one is
        missing or stale); None when the layer has none."""
        stored = self.load(layer)
        if stored is None or stored.backprop is None or unit >= len(stored.top.values):
            return None
        filled = stored.top.sources[unit] != EMPTY
        fresh = stored.backprop.sources[unit] == stored.top.sources[unit]
        return stored.crops(np.where(fresh, stored.backprop.slots[unit], NO_CROP)[filled])

    def unit(self, layer: str, unit: int, bottom: bool = False) -> tuple[np.ndarray, np.ndarray] | None:
        """(crops (n, S, S, 3), values (n,)) of the filled slots of one unit, best first; None
        when nothing is stored for the layer (or it has no such side)."""
        stored = self.load(layer)
        entries = None if stored is None else (stored.bottom if bottom else stored.top)
        if entries is None or unit >= len(entries.values):
            return None
        filled = entries.sources[unit] != EMPTY
        return stored.crops(entries.slots[unit][filled]), entries.values[unit][filled]


def _mapped_pool(pool: Path | BinaryIO, records: int, side: int) -> np.ndarray:
    """A pool file's first ``records`` crops, mapped read-only (not read)."""
    if not records:
        return np.zeros((0, side, side, 3), np.uint8)
    return np.memmap(pool, np.uint8, "r", shape=(records, side, side, 3))


def _no_link(path: str, flags: int) -> int:
    """``open``'s opener for a pool written in place: a link planted at its name is refused
    (ELOOP), never written through."""
    return os.open(path, flags | os.O_NOFOLLOW, 0o666)


def _from_format_1(z: dict[str, np.ndarray]) -> LayerCrops:
    """A format-1 layer file (its crops inside): the same entries, with the crops as an
    in-memory pool that the next commit writes out."""
    blocks, sides = [], []
    for name in ("top", "bottom"):
        if f"{name}_values" not in z:
            sides.append(None)
            continue
        crops = z[f"{name}_crops"]
        start = sum(len(b) for b in blocks)
        blocks.append(crops.reshape(-1, *crops.shape[2:]))
        slots = start + np.arange(crops.shape[0] * crops.shape[1]).reshape(crops.shape[:2])
        sources = z[f"{name}_sources"]
        sides.append(Entries(z[f"{name}_values"], sources, z[f"{name}_positions"],
                             np.where(sources == EMPTY, NO_CROP, slots)))
    backprop = None
    if "backprop_sources" in z:
        crops = z["backprop_crops"]
        start = sum(len(b) for b in blocks)
        blocks.append(crops.reshape(-1, *crops.shape[2:]))
        sources = z["backprop_sources"]
        slots = start + np.arange(crops.shape[0] * crops.shape[1]).reshape(crops.shape[:2])
        backprop = BackpropCrops(str(z["backprop_rule"]), sources, np.where(sources == EMPTY, NO_CROP, slots))
    return LayerCrops(sides[0], sides[1], backprop, np.concatenate(blocks))


def _new_slot(index: np.ndarray) -> np.ndarray:
    """The slot that names crop ``index`` of a commit's new crops (0 -> -2, 1 -> -3, ...:
    below NO_CROP, so never a pool record); applied to such a slot, the index again."""
    return -np.asarray(index) - 2


def _same(a: Entries | None, b: Entries | None) -> bool:
    """Whether two sides hold the same entries (then the file need not be written again)."""
    if a is None or b is None:
        return a is b
    return np.array_equal(a.sources, b.sources) and np.array_equal(a.values, b.values)


def _checked(stored: LayerCrops, records: int | None) -> LayerCrops:
    """``stored`` when its arrays agree with each other and every slot points into its pool
    (``records`` crops; None: the pool in memory); ValueError naming the first that does not."""
    records = len(stored.pool) if records is None else records
    if stored.top is None:
        raise ValueError("it has no top entries")
    units, k = stored.top.values.shape if stored.top.values.ndim == 2 else (-1, -1)
    tables = []
    for name, e in (("top", stored.top), ("bottom", stored.bottom)):
        if e is None:
            continue
        if not (e.values.shape == e.sources.shape == e.slots.shape == (units, k) and e.positions.shape == (units, k, 2)):
            raise ValueError(f"its {name} arrays disagree in shape")
        if e.values.dtype.kind != "f" or e.sources.dtype != np.int64 or e.positions.dtype.kind != "i":
            raise ValueError(f"its {name} arrays have the wrong types")
        tables.append(e.slots)
    if stored.backprop is not None:
        b = stored.backprop
        if not b.sources.shape == b.slots.shape == (units, k):
            raise ValueError("its backprop arrays disagree in shape")
        tables.append(b.slots)
    for slots in tables:
        if slots.dtype.kind != "i" or slots.size and (slots.min() < NO_CROP or slots.max() >= records):
            raise ValueError(f"a slot points outside its pool of {records} crops")
    return stored


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def valid_index(data: object) -> bool:
    """Whether ``data`` has the documented layout of ``crops/index.json``, all the way down."""
    if not (isinstance(data, dict) and isinstance(data.get("images"), dict)
            and isinstance(data.get("layers", {}), dict)):
        return False
    if not all(isinstance(data.get(key, ""), str) for key in ("model",)) or \
            not all(_is_int(data.get(key, 0)) for key in ("k", "side", "version")):
        return False
    for info in data.get("layers", {}).values():
        field = info.get("field", [1, 1, 0, 0]) if isinstance(info, dict) else None
        if not (isinstance(field, list) and len(field) == 4 and all(_is_int(v) for v in field)
                and isinstance(info.get("signed", False), bool)):
            return False
    for key, info in data["images"].items():
        if not (isinstance(key, str) and key.isdigit() and isinstance(info, dict)
                and isinstance(info.get("path"), str) and (info.get("frame") is None or _is_int(info.get("frame")))):
            return False
    return True
