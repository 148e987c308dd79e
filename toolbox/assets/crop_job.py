"""`deepvis crops`: one pass over a set of images that keeps, for every unit of the chosen
layers, the K images where it fires most (and least) and the crop of each under the unit's
receptive field.

Per batch, one compiled forward pass reduces every chosen layer to each unit's spatial
maximum and minimum and where they are; only those small tensors leave the graph. Images
are read, hashed and decoded by a thread pool a few batches ahead, so the network does not
wait for decoding. Work is grouped in chunks of a few hundred images: within a chunk only
the metadata is merged; at its end the crops of the entries that will be kept are cut from
the chunk's images (still in memory) and the chunk is committed to the store, merged
exactly with what is there, on a thread while the network goes on with the next chunk. A
run killed midway loses at most two chunks (the one being saved and the current one); an
image already committed (by content hash) is not looked at again.
"""

from __future__ import annotations

import collections
import logging
import os
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import cv2
import numpy as np
import tensorflow as tf

from toolbox.assets.crops import (EMPTY, NO_CROP, CropStore, Entries, LayerCrops, content_digest, merge,
                                  merge_candidates, source_id)
from toolbox.errors import UserError
from toolbox.files import display_path, read_input
from toolbox.images import IMAGE_SUFFIXES, decode_image, list_images, max_file_bytes, open_video
from toolbox.nets import Network
from toolbox.nets.fields import Field

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
LIST_SUFFIXES = (".txt", ".lst")
MAX_LIST_BYTES = 64 << 20  # a list of a million paths


@dataclass(frozen=True)
class Source:
    path: Path
    video: bool


def find_sources(specs: Sequence[str]) -> list[Source]:
    """Folders (recursively: their images), video files, text files listing paths (one per
    line, relative to the list's folder), single images. A spec that does not exist or a
    folder without images is a UserError."""
    found: list[Source] = []
    for spec in specs:
        p = Path(spec).expanduser()
        if p.is_dir():
            found.extend(Source(f, False) for f in list_images(p, recursive=True))
            found.extend(Source(f, True) for f in sorted(p.rglob("*"))
                         if f.suffix.lower() in VIDEO_SUFFIXES and not f.name.startswith(".") and f.is_file())
        elif not p.exists():
            raise UserError(f"image source not found: {display_path(p)}")
        elif p.suffix.lower() in LIST_SUFFIXES:
            text = read_input(p, "image list", MAX_LIST_BYTES).decode("utf-8", "replace")
            lines = [line.strip() for line in text.splitlines()]
            listed = [p.parent / line for line in lines if line and not line.startswith("#")]
            if not listed:
                raise UserError(f"the list {display_path(p)} names no images")
            found.extend(Source(f, f.suffix.lower() in VIDEO_SUFFIXES) for f in listed)
        elif p.suffix.lower() in VIDEO_SUFFIXES:
            found.append(Source(p, True))
        elif p.suffix.lower() in IMAGE_SUFFIXES:
            found.append(Source(p, False))
        else:
            raise UserError(f"unsupported image source {display_path(p)}: use folders, images, videos "
                            f"({', '.join(VIDEO_SUFFIXES)}) or a list ({', '.join(LIST_SUFFIXES)})")
    return found


def count_images(sources: Sequence[Source], every: int) -> int:
    """How many images a run over ``sources`` looks at (videos: from their frame counts)."""
    total = 0
    for source in sources:
        if not source.video:
            total += 1
            continue
        try:
            capture = open_video(source.path)
        except UserError:
            continue
        frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
        capture.release()
        total += -(-max(frames, 0) // every)
    return total


@dataclass(frozen=True)
class Loaded:
    id: int
    info: dict  # {"path", "frame", "sha256"}: what the index records
    image: np.ndarray | None  # the network's square input; None: seen before, or unreadable
    error: UserError | None = None


@dataclass
class CropRun:
    """What a run did, for its summary line."""

    images: int = 0  # looked at now
    skipped: int = 0  # seen by an earlier run
    bad: int = 0  # unreadable
    seconds: float = 0.0


class CropJob:
    """Crops of ``layers`` of ``network``, into ``store``; ``fit`` as images.fit."""

    def __init__(self, network: Network, layers: Sequence[str], store: CropStore, k: int, side: int,
                 max_pixels: int, fit: str = "crop") -> None:
        self.network, self.layers, self.store = network, list(layers), store
        self.k, self.side, self.max_pixels, self.fit = k, side, max_pixels, fit
        size = network.spec.input_size
        self.shapes = network.layer_shapes(size)
        store.check_compatible(network.name, side)  # one network, one crop size per store
        store.repair(self.layers)  # damaged layer files: moved aside, their images looked at again
        known = store.index()  # a later run reuses the fields an earlier one measured
        known = known.get("layers", {}) if known.get("model") == network.name else {}
        self.fields: dict[str, Field] = {
            name: Field(*known[name]["field"]) if "field" in known.get(name, {}) else
            network.unit_field(name).clamped(size) for name in self.layers}
        self.signed = {name: not network.non_negative(name) for name in self.layers}
        view = network.view(self.layers)
        bound_specs = {name: tf.TensorSpec([1 + self.signed[name], self.shapes[name][2]], tf.float32)
                       for name in self.layers}  # per layer: what an entry must reach (_chunk)

        @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8), bound_specs])
        def extremes(pixels, bounds):  # uint8 in: a quarter of the bytes to stack and hand over
            acts = view(network.normalize(tf.cast(pixels, tf.float32)), training=False)
            out = {}
            for name in self.layers:
                # a layer that cannot go negative has no "lowest" row
                out[name] = [_extreme(acts[name], bounds[name][s], s == 1) for s in range(1 + self.signed[name])]
            return out

        self._extremes = extremes

    @property
    def meta(self) -> dict:
        return {"model": self.network.name, "k": self.k, "side": self.side,
                "layers": {name: {"field": [f.size, f.stride, f.offset_y, f.offset_x], "signed": self.signed[name]}
                           for name, f in self.fields.items()}}

    # -- reading ---------------------------------------------------------------------------

    def _load_file(self, path: Path, seen: set[int]) -> Loaded:
        try:
            data = read_input(path, "image", max_file_bytes(self.max_pixels))
        except UserError as e:
            return Loaded(0, {}, None, e)
        digest = content_digest(data)
        sid = source_id(digest)
        info = {"path": str(path), "frame": None, "sha256": digest.hex()}
        if sid in seen:
            return Loaded(sid, info, None)
        try:
            image = decode_image(data, display_path(path), self.max_pixels, self.network.spec.input_size)
        except UserError as e:
            return Loaded(sid, info, None, e)
        return Loaded(sid, info, self.network.fit_input(image, self.fit))

    def _video_frames(self, path: Path, every: int, seen: set[int]) -> Iterator[Loaded]:
        try:
            capture = open_video(path)
        except UserError as e:
            yield Loaded(0, {}, None, e)
            return
        if not capture.isOpened():
            yield Loaded(0, {}, None, UserError(f"cannot open video {display_path(path)}"))
            return
        try:
            frame = 0
            while True:
                ok, bgr = capture.read()
                if not ok:
                    break
                if frame % every == 0:
                    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                    digest = content_digest(rgb.tobytes())
                    sid = source_id(digest)
                    info = {"path": str(path), "frame": frame, "sha256": digest.hex()}
                    yield Loaded(sid, info, None if sid in seen else self.network.fit_input(rgb, self.fit))
                frame += 1
        finally:
            capture.release()

    def load(self, sources: Iterable[Source], every: int, seen: set[int], workers: int = 2,
             ahead: int = 64) -> Iterator[Loaded]:
        """Every image of ``sources`` in order, decoded by ``workers`` threads up to ``ahead``
        images before the consumer."""
        with ThreadPoolExecutor(workers, thread_name_prefix="deepvis-load") as pool:
            pending: collections.deque = collections.deque()
            for source in sources:
                if source.video:
                    while pending:
                        yield pending.popleft().result()
                    yield from self._video_frames(source.path, every, seen)
                    continue
                pending.append(pool.submit(self._load_file, source.path, seen))
                if len(pending) >= ahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()

    # -- the pass --------------------------------------------------------------------------

    def run(self, sources: Sequence[Source], every: int = 1, batch: int = 16, chunk: int = 256,
            on_image: Callable[[int], None] | None = None,
            on_bad: Callable[[UserError], None] | None = None) -> CropRun:
        """Look at every image of ``sources`` not seen before; a full chunk is saved on a
        thread of its own while the network goes on with the next, so at most two chunks are
        unsaved at any time. The save runs at the lowest priority: on the CPU the network
        leaves idle, and at full speed while the network waits for it."""
        seen = {int(i) for i in self.store.index().get("images", {})}
        report = CropRun()
        start = time.perf_counter()
        with ThreadPoolExecutor(1, thread_name_prefix="deepvis-save", initializer=_lowest_priority) as saver:
            saving = None  # the previous chunk's save, while it runs
            try:
                part = self._chunk()
                for item in self.load(sources, every, seen):
                    if item.error is not None:
                        report.bad += 1
                        if on_bad is not None:
                            on_bad(item.error)
                        continue
                    if item.image is None or item.id in seen:
                        report.skipped += 1
                    else:
                        seen.add(item.id)
                        part.items.append(item)
                        if len(part.items) % batch == 0:  # the network runs while the loader reads ahead
                            self._forward(part, part.items[-batch:])
                    if on_image is not None:
                        on_image(1)
                    if len(part.items) >= chunk:
                        saving, part = self._hand_over(saver, saving, part, batch)
                        report.images += chunk
                if part.items:
                    saving, _ = self._hand_over(saver, saving, part, batch)
                    report.images += len(part.items)
                if saving is not None:
                    saving.result()
            except BaseException as error:  # Ctrl-C, an error here: the save under way still ends
                failed = saving.exception() if saving is not None else None  # (waits for it)
                if failed is not None and failed is not error:
                    log.error("the save under way failed as well: %s", failed)
                raise
        report.seconds = time.perf_counter() - start
        return report

    def _hand_over(self, saver: ThreadPoolExecutor, saving: Future | None, part: "_Chunk",
                   batch: int) -> tuple[Future, "_Chunk"]:
        """``part`` is complete: its last, smaller batch through the network here, the save
        before it finished (its errors raised here), then ``part`` given to ``saver``. Returns
        its save and the next chunk, whose bounds are read now, while no save runs (they lag
        one chunk behind the store: looser, never wrong)."""
        if len(part.items) % batch:
            self._forward(part, part.items[-(len(part.items) % batch):])
        if saving is not None:
            saving.result()
        following = self._chunk()
        return saver.submit(self._save, part), following

    def _chunk(self) -> "_Chunk":
        """A new chunk, with the bounds its entries must reach: per layer and side, each unit's
        K-th stored value (-inf on top, +inf at the bottom, while it has fewer than K). What
        does not reach them cannot enter the store, now or later: the K-th value only rises."""
        bounds = {}
        for name in self.layers:
            stored = self.store.load(name)
            channels = self.shapes[name][2]
            rows = []
            for descending in (True, False)[:1 + self.signed[name]]:
                old = None if stored is None else (stored.top if descending else stored.bottom)
                if old is None or old.values.shape != (channels, self.k):
                    rows.append(np.full(channels, -np.inf if descending else np.inf, np.float32))
                else:
                    rows.append(old.values[:, -1])
            bounds[name] = np.stack(rows).astype(np.float32)
        return _Chunk(bounds)

    def _forward(self, part: "_Chunk", batch: list[Loaded]) -> None:
        """One batch through the network: each unit's extremes, and where for those that reach
        the chunk's bounds, added to ``part``."""
        stats = self._extremes(tf.constant(np.stack([item.image for item in batch])), part.bound_tensors)
        for name in self.layers:
            part.found[name].append([(values.numpy(), at.numpy()) for values, at in stats[name]])

    def _save(self, part: "_Chunk") -> None:
        """From a chunk's statistics, its best entries (metadata only); cut the crops of those
        that will be kept, and commit them."""
        items = part.items
        ids = np.array([item.id for item in items], np.int64)
        cutter = CropCutter({item.id: item.image for item in items}, self.side)
        layers = {}
        for name in self.layers:
            width = self.shapes[name][1]
            sides, crops = [], []
            for s, descending in enumerate((True, False)[:len(part.bounds[name])]):
                values = np.concatenate([per_batch[s][0] for per_batch in part.found[name]])
                at = np.concatenate([per_batch[s][1] for per_batch in part.found[name]])
                chunk = _candidates(values, at, ids, width, part.bounds[name][s], descending)
                entries, cut = self._with_crops(name, chunk, descending, cutter)
                offset = sum(len(c) for c in crops)  # top's and bottom's crops share one pool
                sides.append(entries.with_slots(np.where(entries.slots == NO_CROP, NO_CROP, entries.slots + offset)))
                crops.append(cut)
            layers[name] = LayerCrops(sides[0], sides[1] if len(sides) > 1 else None, pool=np.concatenate(crops))
        self.store.commit(layers, {item.id: item.info for item in items}, self.meta)

    def _with_crops(self, layer: str, chunk: Entries, descending: bool,
                    cutter: "CropCutter") -> tuple[Entries, np.ndarray]:
        """The chunk's K best entries of each unit that would also survive a merge with what is
        stored, with slots into the crops cut for them (returned beside); the other slots
        empty (their crops would be cut for nothing)."""
        stored = self.store.load(layer)
        old = None if stored is None else (stored.top if descending else stored.bottom)
        best = merge_candidates(Entries.empty(len(chunk.values), self.k, descending), chunk, descending)
        kept = best.sources != EMPTY
        if old is not None and old.values.shape == best.values.shape:
            _, order = merge([best, old], self.k, descending)
            survived = np.zeros(best.values.shape, bool)
            rows, cols = np.nonzero(order < self.k)
            survived[rows, order[rows, cols]] = True
            kept &= survived
        field = self.fields[layer]
        units, slots = np.nonzero(kept)
        rows, cols = best.positions[units, slots].T.astype(np.int64)
        boxes = np.stack([best.sources[units, slots], field.offset_y + rows * field.stride,
                          field.offset_x + cols * field.stride], -1)
        where = np.full(best.values.shape, NO_CROP, np.int64)
        where[units, slots] = np.arange(len(units))
        fill = -np.inf if descending else np.inf
        entries = Entries(np.where(kept, best.values, fill).astype(np.float32), np.where(kept, best.sources, EMPTY),
                          best.positions, where)
        return entries, cutter.cut(boxes, field.size)


def _lowest_priority() -> None:
    """This thread yields the CPU to every other (Linux: its own nice value, 19); elsewhere,
    or where that is refused, it runs as it is."""
    if sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except OSError:
            pass


class _Chunk:
    """The images of one chunk, what the network found in them, and the bounds it was
    looked for with (see ``CropJob._chunk``)."""

    def __init__(self, bounds: dict[str, np.ndarray]) -> None:
        self.bounds = bounds  # per layer: (sides, C) float32
        self.bound_tensors = {name: tf.constant(b) for name, b in bounds.items()}
        self.items: list[Loaded] = []
        self.found: dict[str, list] = {name: [] for name in bounds}  # per layer, per batch: per side (values, at)


def _candidates(values: np.ndarray, flat_at: np.ndarray, ids: np.ndarray, width: int, bound: np.ndarray,
                descending: bool) -> Entries:
    """The entries of a chunk's statistics ((N, C) values and flat positions of N images)
    that reach ``bound`` (C,), per unit: (C, M) with M the most any unit has, each row
    filled from the left and empty after. A store holding a few hundred images leaves a
    unit only a few of a chunk's images, so the merge sorts a few columns, not N."""
    reach = (values >= bound) if descending else (values <= bound)
    units, rows = np.nonzero(reach.T)  # ordered by unit
    counts = np.bincount(units, minlength=values.shape[1])
    cols = np.arange(len(units)) - np.repeat(np.cumsum(counts) - counts, counts)
    out = Entries.empty(values.shape[1], int(counts.max(initial=0)), descending)
    at = flat_at[rows, units]
    out.values[units, cols] = values[rows, units]
    out.sources[units, cols] = ids[rows]
    out.positions[units, cols] = np.stack([at // width, at % width], axis=-1)
    return out


def _extreme(a: tf.Tensor, bound: tf.Tensor, lowest: bool) -> tuple[tf.Tensor, tf.Tensor]:
    """Each unit's maximum (``lowest``: minimum) over the positions of ``a`` (B, H, W, C), and
    the first position in row-major order that holds it: (B, C) values and flat positions.
    Only the units whose value reaches ``bound`` (C,) can enter the store, so only theirs
    are located exactly; the others' positions are meaningless.

    An argmax over all positions costs twice the maximum on this CPU (Eigen's arg-reductions
    are not vectorized along the kept channel axis). Here the one full pass is a plain
    reduction along each row; the first row holding the extreme comes from the (B, H, C)
    row extremes, and within it the column from the W values of that row, gathered only
    for the units that reach their bound (few, once the store holds a few hundred images)."""
    reduce, arg = (tf.reduce_min, tf.argmin) if lowest else (tf.reduce_max, tf.argmax)
    rows = reduce(a, 2)  # (B, H, C)
    value = reduce(rows, 1)
    row = arg(rows, 1, output_type=tf.int32)
    hits = tf.where(value <= bound if lowest else value >= bound)  # (n, 2): batch row, unit
    shape = tf.shape(a, out_type=tf.int64)
    first = ((hits[:, 0] * shape[1] + tf.cast(tf.gather_nd(row, hits), tf.int64)) * shape[2]) * shape[3] + hits[:, 1]
    line = tf.gather(tf.reshape(a, [-1]), first[:, None] + tf.range(shape[2])[None] * shape[3])  # (n, W)
    col = tf.scatter_nd(hits, arg(line, 1, output_type=tf.int32), tf.shape(value, out_type=tf.int64))
    return value, row * tf.cast(shape[2], tf.int32) + col


class CropCutter:
    """Crops of a chunk's images (all one shape: the network's input) at one output side.
    Fields larger than the side are cut from a stack of the images scaled by side / size
    (scaling each crop alone costs more than scaling the image once), each in a black frame
    one side wide (what a crop shows beyond the image, as ``cut_crop`` does), so that every
    crop is a window of it and all of a layer's crops come from one gather. A scaled image
    is made only where it has a crop at that size, from its pyramid of area-averaged
    halvings by a linear resize of less than 2x (a fifth to a tenth of an area resize of the
    whole image, and within a few grey levels of it). Fields up to the side are cut crop by
    crop, each distinct (image, box) once."""

    def __init__(self, images: dict[int, np.ndarray], side: int) -> None:
        self.images, self.side = list(images.values()), side
        if len({image.shape for image in self.images}) > 1:
            raise ValueError("a CropCutter's images must all be one shape")
        ids = np.fromiter(images, np.int64, len(images))
        self._order = np.argsort(ids)
        self._sorted_ids = ids[self._order]
        self._stack: tuple[int, np.ndarray, np.ndarray] | None = None  # (size, framed stack, made): the last size
        self._halved: dict[tuple[int, int], np.ndarray] = {}

    def cut(self, boxes: np.ndarray, size: int) -> np.ndarray:
        """Crops for ``boxes`` ((n, 3) rows of source, top, left) of ``size`` pixels."""
        side = self.side
        if not len(boxes):
            return np.empty((0, side, side, 3), np.uint8)
        rows = self._order[np.searchsorted(self._sorted_ids, boxes[:, 0])]
        if size <= side:
            distinct, which = np.unique(np.stack([rows, boxes[:, 1], boxes[:, 2]], -1), axis=0, return_inverse=True)
            made = [cut_crop(self.images[row], y, x, size, side) for row, y, x in distinct.tolist()]
            return np.stack(made)[which.reshape(-1)]
        framed = self._framed(size, rows)
        n, h, w, c = framed.shape
        at = np.rint(boxes[:, 1:] * (side / size)).astype(np.int64) + side  # in the framed, scaled image
        y, x = np.clip(at[:, 0], 0, h - side), np.clip(at[:, 1], 0, w - side)
        # every side x side window of every framed image, as a view: one gather cuts them all
        windows = np.lib.stride_tricks.as_strided(
            framed, (n, h - side + 1, w - side + 1, side, side, c), framed.strides[:3] + framed.strides[1:],
            writeable=False)
        return windows[rows, y, x]

    def _framed(self, size: int, rows: np.ndarray) -> np.ndarray:
        """The stack of the images scaled for fields of ``size`` in their black frames, with at
        least ``rows`` made. Only the last size's stack is kept: a layer's fields are one size,
        and the layers come in order."""
        if self._stack is None or self._stack[0] != size:
            h, w, c = self.images[0].shape
            h, w = max(1, round(h * self.side / size)), max(1, round(w * self.side / size))
            self._stack = (size, np.zeros((len(self.images), h + 2 * self.side, w + 2 * self.side, c), np.uint8),
                           np.zeros(len(self.images), bool))
        _, stack, made = self._stack
        inner = stack[:, self.side:-self.side, self.side:-self.side]
        for row in np.unique(rows[~made[rows]]).tolist():
            inner[row] = self._scaled(row, size, inner.shape[2:0:-1])
            made[row] = True
        return stack

    def _scaled(self, row: int, size: int, target: tuple[int, int]) -> np.ndarray:
        """Image ``row`` scaled for fields of ``size``, to ``target`` (width, height)."""
        level = self._halving(row, int(np.floor(np.log2(size / self.side))))
        return level if level.shape[1::-1] == target else cv2.resize(level, target, interpolation=cv2.INTER_LINEAR)

    def _halving(self, row: int, times: int) -> np.ndarray:
        """Image ``row`` halved ``times`` times (area-averaged), kept for the next field size."""
        if times <= 0:
            return self.images[row]
        if (row, times) not in self._halved:
            above = self._halving(row, times - 1)
            h, w = above.shape[:2]
            self._halved[row, times] = (above if min(h, w) < 2 else
                                        cv2.resize(above, (w // 2, h // 2), interpolation=cv2.INTER_AREA))
        return self._halved[row, times]


def backprop_crops(network: Network, store: CropStore, layers: Sequence[str], rule: str, max_pixels: int,
                   fit: str = "crop", on_unit: Callable[[int], None] | None = None) -> int:
    """For every stored top entry of ``layers`` without one (or with a stale one), the crop of
    its image's ``rule`` map (gradient, guided or deconv) for its unit, under the same field:
    what in that image made the unit fire. The images are read again from where the index
    says they were found; one backward pass per unit serves its K images. Returns how many
    crops were made; each layer is stored when it is done."""
    from toolbox.optvis.attribution import Attributor, Target
    from toolbox.optvis.attribution_display import display

    index = store.index()
    attributor = Attributor(network)
    images: dict[int, np.ndarray | None] = {}
    made = 0

    def image(source: int) -> np.ndarray | None:
        if source not in images:
            if len(images) > 1024:
                images.clear()  # bounded: a layer's sources repeat, the next layer's mostly too
            images[source] = _reload(index["images"].get(str(source)), network, max_pixels, fit)
        return images[source]

    for layer in layers:
        stored = store.load(layer)
        if stored is None or layer not in index.get("layers", {}):
            continue
        top = stored.top
        size, stride, offset_y, offset_x = (int(v) for v in index["layers"][layer]["field"])
        old = stored.backprop if stored.backprop is not None and stored.backprop.rule == rule else None
        made_for = old.sources if old is not None else np.full_like(top.sources, EMPTY)
        side = stored.pool.shape[1]
        units, slots, crops = [], [], []
        for unit in range(len(top.values)):
            todo = [s for s in range(top.k) if top.sources[unit, s] != EMPTY
                    and made_for[unit, s] != top.sources[unit, s] and image(int(top.sources[unit, s])) is not None]
            if todo:
                batch = np.stack([image(int(top.sources[unit, s])) for s in todo]).astype(np.float32)
                grads, _ = attributor.backprop(batch, Target.unit(layer, unit, "max"), rule)
                for s, grad in zip(todo, grads):
                    row, col = (int(v) for v in top.positions[unit, s])
                    crops.append(cut_crop(display(grad, "norm"), offset_y + row * stride, offset_x + col * stride,
                                          size, side))
                    units.append(unit)
                    slots.append(s)
            if on_unit is not None:
                on_unit(1)
        if crops or old is None:
            units_a, slots_a = np.array(units, np.int64), np.array(slots, np.int64)
            store.set_backprop(layer, rule, units_a, slots_a, top.sources[units_a, slots_a],
                               np.stack(crops) if crops else np.zeros((0, side, side, 3), np.uint8))
        made += len(crops)
    return made


def _reload(info: dict | None, network: Network, max_pixels: int, fit: str) -> np.ndarray | None:
    """The network's input made again from an image the index recorded; None when it is gone."""
    if not info:
        return None
    path = Path(info["path"])
    try:
        if info.get("frame") is None:
            return network.fit_input(decode_image(read_input(path, "image", max_file_bytes(max_pixels)),
                                                  display_path(path), max_pixels,
                                                  network.spec.input_size), fit)
        capture = open_video(path)
        try:
            capture.set(cv2.CAP_PROP_POS_FRAMES, int(info["frame"]))
            ok, bgr = capture.read()
        finally:
            capture.release()
        return network.fit_input(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), fit) if ok else None
    except (OSError, UserError):
        log.warning("cannot read %s again for its backprop crops; skipped", display_path(path))
        return None


def cut_crop(image: np.ndarray, top: int, left: int, size: int, side: int) -> np.ndarray:
    """The ``size`` x ``size`` square of ``image`` at (``top``, ``left``), scaled to ``side`` x
    ``side``; what lies outside the image is black (zero padding, as DVT's crops)."""
    h, w = image.shape[:2]
    y0, x0, y1, x1 = max(top, 0), max(left, 0), min(top + size, h), min(left + size, w)
    if (y0, x0, y1, x1) == (top, left, top + size, left + size):
        window = image[y0:y1, x0:x1]
    else:
        window = np.zeros((size, size, 3), np.uint8)
        if y1 > y0 and x1 > x0:
            window[y0 - top:y1 - top, x0 - left:x1 - left] = image[y0:y1, x0:x1]
    if size == side:
        return np.array(window)
    return cv2.resize(window, (side, side), interpolation=cv2.INTER_AREA if size > side else cv2.INTER_LINEAR)
