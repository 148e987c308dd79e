"""`deepvis precompute`: a whole network's assets as independent tasks, resumable, and the
same whatever runs them.

The plan is a list of tasks with fixed boundaries that depend only on what is asked for,
never on how many workers run it:

- unit images: one task per layer and batch of ``units.batch`` units, in unit order; the
  batch that starts at position ``i`` of the layer's unit list is seeded ``seed + i``,
  exactly as ``deepvis units`` seeds it, so a task makes the same PNG bytes wherever and
  whenever it runs (batch composition changes a unit's image, so the boundaries are fixed);
- crops: one task per shard of ``precompute.shard`` sources (in the sorted order
  ``find_sources`` gives), covering every chosen layer; its top K per unit merge exactly
  (``crops.merge``), so the order in which shards finish does not matter;
- circuits: one task per layer and ``precompute.circuit_units`` units, planned from the crops
  stored (after this run's crops tasks): each unit's contributions from the offered layer
  before and to the one after, averaged over its top-crop images (``assets.circuits``). No
  randomness: a task's result depends only on the network and the images it names.

A :class:`Worker` (one per process: in this one, or a Ray actor) holds the network and turns
a task into a result in memory; only the driver writes, through the asset owners
(:class:`UnitImageFolder`, :class:`CropStore`), and then records the task as done:

    <asset folder>/precompute/done/<task id>.json   {"task", "kind", "seconds", "worker", ...}

A re-run skips every task with a record (read only as a regular file inside the asset folder,
never through a link; a damaged one, deep nesting included, is one warning and the task is done
again). A task id names its content and parameters (layer, through ``names.safe_name``, as the
id names a file; units, preset, size, steps, seed; or the shard's sources, layers, K, side), so
changed parameters make new tasks rather than wrongly skipping. A task killed before its
record is written is simply done again (its files are replaced whole; the crop merge drops
repeated images).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from toolbox.assets.crops import EMPTY, CropStore, Entries, LayerCrops, valid_index
from toolbox.files import atomic_write, display_path, read_stored, real_folder, update_json
from toolbox.jsonfile import BadJSON, parse_json
from toolbox.names import safe_name

log = logging.getLogger(__name__)

RECORDS = "precompute"
MAX_RECORD_BYTES = 1 << 20  # a done-record is a few hundred bytes


@dataclass(frozen=True)
class UnitParams:
    preset: str
    size: int | None  # None: each layer's own (presets.unit_recipe), as deepvis units makes them
    steps: int
    batch: int
    seed: int


@dataclass(frozen=True)
class CropParams:
    k: int
    side: int
    every: int
    batch: int
    max_pixels: int
    fit: str


@dataclass(frozen=True)
class CircuitParams:
    batch: int  # (unit, image) rows per pass
    max_pixels: int
    fit: str


@dataclass(frozen=True)
class Task:
    """One independent piece of work. ``units`` task: ``layer`` and its ``units``, first
    seeded ``seed``; ``crops`` task: ``sources`` [(path, is_video)] for ``layers``;
    ``circuits`` task: ``layer``'s ``units``, each over its top-crop images ``tops`` (source
    ids, ``crops.EMPTY`` padding) found at ``images`` [(id, path, frame or -1)], from
    ``layers[0]`` to ``layers[1]`` (the layers before and after; "" where there is none)."""

    id: str
    kind: str  # "units" | "crops" | "circuits"
    layer: str = ""
    units: tuple[int, ...] = ()
    seed: int = 0
    side: int = 0  # a units task's image side
    sources: tuple[tuple[str, bool], ...] = ()
    layers: tuple[str, ...] = ()
    tops: tuple[tuple[int, ...], ...] = ()
    images: tuple[tuple[int, str, int], ...] = ()

    @property
    def size(self) -> int:
        """How much work it is: units, or sources."""
        return len(self.sources) if self.kind == "crops" else len(self.units)

    def describe(self) -> str:
        if self.kind == "units":
            return f"{self.layer} units {self.units[0]}-{self.units[-1]}"
        if self.kind == "circuits":
            return f"{self.layer} circuits {self.units[0]}-{self.units[-1]}"
        return f"crops of {len(self.sources)} sources"


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]


def plan_unit_tasks(layers: dict[str, Sequence[int]], p: UnitParams, model: str = "",
                    recipes: dict[str, Any] | None = None) -> list[Task]:
    """Per layer, its units in batches of ``p.batch`` (fixed boundaries, `deepvis units` seeds),
    at the size of the layer's recipe in ``recipes`` (``presets.unit_recipe``), else ``p.size``;
    the ids name the recipe (``Recipe.key``: a changed recipe makes new tasks) and ``model``
    too (two networks may share layer names)."""
    tasks = []
    for layer, units in layers.items():
        units = list(units)
        recipe = (recipes or {}).get(layer)
        size = recipe.size if recipe is not None else p.size
        if not size:
            raise ValueError(f"no image size for {layer}")
        made_by = [recipe.key(layer)] if recipe is not None else []
        for start in range(0, len(units), p.batch):
            chunk = tuple(units[start:start + p.batch])
            seed = p.seed + start
            digest = _digest(layer, chunk, p.preset, size, p.steps, seed, *made_by, *([model] if model else []))
            tid = f"units-{safe_name(layer)}-{chunk[0]:04d}-{chunk[-1]:04d}-{digest}"  # ids name record files
            tasks.append(Task(tid, "units", layer=layer, units=chunk, seed=seed, side=size))
    return tasks


def plan_crop_tasks(sources: Sequence[tuple[str, bool]], layers: Sequence[str], shard: int,
                    p: CropParams, model: str = "") -> list[Task]:
    """The sources in shards of ``shard``, each for every layer (of ``model``, named in the ids)."""
    tasks = []
    for start in range(0, len(sources), shard):
        part = tuple((str(path), bool(video)) for path, video in sources[start:start + shard])
        tid = f"crops-{start:07d}-{_digest(part, list(layers), p.k, p.side, p.every, p.fit, *([model] if model else []))}"
        tasks.append(Task(tid, "crops", sources=part, layers=tuple(layers)))
    return tasks


def plan_circuit_tasks(store: CropStore, order: Sequence[str], layers: Sequence[str] | dict[str, Sequence[int]],
                       per_task: int, model: str = "") -> list[Task]:
    """Per chosen layer with stored crops, its units (all, or those ``layers`` maps it to) in
    chunks of ``per_task``, each unit over its stored top-crop images; ``order`` lists every
    offered layer (the neighbours come from it). Ids name the images (so new crops make new
    tasks), the neighbours and ``model``."""
    index = store.index().get("images", {})
    tasks = []
    for layer in layers:
        crops = store.load(layer)
        if crops is None:
            continue
        at = list(order).index(layer)
        source = order[at - 1] if at > 0 else ""
        target = order[at + 1] if at + 1 < len(order) else ""
        top = crops.top.sources
        chosen = list(layers[layer]) if isinstance(layers, dict) else list(range(len(top)))
        for start in range(0, len(chosen), per_task):
            units = tuple(chosen[start:start + per_task])
            tops = tuple(tuple(int(s) for s in top[u]) for u in units)
            ids = sorted({s for row in tops for s in row if s != EMPTY and str(s) in index})
            images = tuple((i, str(index[str(i)]["path"]), -1 if index[str(i)].get("frame") is None
                            else int(index[str(i)]["frame"])) for i in ids)
            digest = _digest(layer, units, source, target, tops, *([model] if model else []))
            tid = f"circuits-{safe_name(layer)}-{units[0]:04d}-{units[-1]:04d}-{digest}"
            tasks.append(Task(tid, "circuits", layer=layer, units=units, layers=(source, target), tops=tops,
                              images=images))
    return tasks


class TaskRecords:
    """Which tasks of a plan are done, recorded in the asset folder."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.dir = self.root / RECORDS / "done"
        self._ready = False

    def path(self, task: Task) -> Path:
        return self.dir / f"{task.id}.json"

    def done(self, task: Task) -> bool:
        """Whether the task's record is there and whole: a record that is refused (a link,
        not a regular file, through a linked folder), not JSON (deep nesting included), or
        names another task, does not count (a warning; the task is done again and its record
        rewritten)."""
        path = self.path(task)
        data = read_stored(self.root, path, "precompute record", MAX_RECORD_BYTES)
        if data is None:
            return False
        try:
            record = parse_json(data)
        except BadJSON as e:
            log.warning("precompute record %s is damaged (%s); its task will be done again", display_path(path), e)
            return False
        return isinstance(record, dict) and record.get("task") == task.id

    def mark(self, task: Task, **info: Any) -> None:
        if not self._ready:  # never written through a link (a precompute or done folder that is one)
            real_folder(self.root, self.dir)
            self._ready = True
        record = {"task": task.id, "kind": task.kind, "what": task.describe(), **info}
        atomic_write(self.path(task), (json.dumps(record, indent=1) + "\n").encode())


# -- the worker: network in, results out (no files of the asset folder) -----------------------


def worker_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Worker:
    """Runs tasks on one network; keeps what it compiled (an ascent per layer, a crop job per
    set of layers) between tasks."""

    def __init__(self, network, unit_params: UnitParams | None, crop_params: CropParams | None,
                 circuit_params: CircuitParams | None = None) -> None:
        self.network, self.unit_params, self.crop_params = network, unit_params, crop_params
        self.circuit_params = circuit_params
        self._ascents: dict[str, Any] = {}
        self._crop_jobs: dict[tuple[str, ...], Any] = {}
        self._tracer: Any = None

    def run(self, task: Task, known: dict | None = None, on_step: Callable[[], None] | None = None) -> dict:
        """The task's result. For crops, ``known`` says what the store holds already
        (``Committer.known``): the images seen (skipped here) and per layer the stored entries
        without their crops, so the crop job leaves out, and cuts no crop for, what the
        driver's merge would drop. Neither changes what the store ends with."""
        start = time.perf_counter()
        if task.kind == "circuits":
            result = self._circuits(task)
        else:
            result = self._units(task, on_step) if task.kind == "units" else self._crops(task, known or {})
        result.update(seconds=time.perf_counter() - start, worker=worker_name())
        return result

    def _units(self, task: Task, on_step: Callable[[], None] | None) -> dict:
        """The task's batch as `deepvis units` makes it (``render_unit_images``: the layer's own
        recipe, its units with nothing to show said instead of made)."""
        from toolbox.assets.jobs import render_unit_images
        from toolbox.assets.quality import example_variation
        from toolbox.optvis.presets import unit_recipe

        p = self.unit_params
        assert p is not None
        if task.layer not in self._ascents:
            recipe = unit_recipe(self.network, task.layer, p.preset, task.side, p.steps)
            self._ascents[task.layer] = (recipe.ascent(self.network, task.layer),
                                         example_variation(self.network, task.layer))
        ascent, variation = self._ascents[task.layer]
        made = render_unit_images(self.network, task.layer, task.units, None, p.preset, task.side, p.steps,
                                  len(task.units), task.seed, on_step, ascent, variation)
        transparency = made.transparency if made.transparency is not None else [None] * len(made.units)
        return {"units": made.units, "images": made.images, "objective": made.objectives,
                "transparency": transparency, "said": made.said}

    def _crops(self, task: Task, known: dict) -> dict:
        from toolbox.assets.crop_job import CropJob, Source

        p = self.crop_params
        assert p is not None
        capture = Captured(known.get("seen", ()), known.get("stored", {}))
        job = self._crop_jobs.get(task.layers)
        if job is None:
            job = CropJob(self.network, task.layers, capture, p.k, p.side, p.max_pixels, p.fit)
            self._crop_jobs[task.layers] = job
        job.store = capture
        bad: list[str] = []
        sources = [Source(Path(path), video) for path, video in task.sources]
        job.run(sources, p.every, p.batch, chunk=1 << 62, on_bad=lambda e: bad.append(str(e)))
        return {"found": capture.found, "images": capture.images, "meta": job.meta, "bad": bad}


    def _circuits(self, task: Task) -> dict:
        """Every unit's (unit, image) rows in batches of ``batch``, inputs and outputs from one
        forward pass each, then the mean over each unit's images. An image that cannot be read
        again is left out (a unit without any: its row stays not computed)."""
        import numpy as np

        from toolbox.assets.crop_job import _reload
        from toolbox.optvis.circuits import CircuitTracer

        p = self.circuit_params
        assert p is not None
        if self._tracer is None:
            self._tracer = CircuitTracer(self.network)
        source, target = (name or None for name in task.layers)
        pixels: dict[int, Any] = {}
        for i, path, frame in task.images:
            info = {"path": path, "frame": None if frame < 0 else frame}
            pixels[i] = _reload(info, self.network, p.max_pixels, p.fit)
        rows = [(k, s) for k, tops in enumerate(task.tops) for s in tops if pixels.get(s) is not None]
        units = len(task.units)
        widths = [self.network.spec.layer(name).channels if name else 0 for name in (source, target)]
        inputs, outputs = np.zeros((units, widths[0]), np.float64), np.zeros((units, widths[1]), np.float64)
        values, counts = np.zeros(units, np.float64), np.zeros(units, np.int32)
        for start in range(0, len(rows), p.batch):
            part = rows[start:start + p.batch]
            batch = np.stack([pixels[s] for _, s in part]).astype(np.float32)
            which = np.array([k for k, _ in part])
            got_in, got_out, got_values = self._tracer.both(batch, task.layer, np.array(task.units)[which], source,
                                                            target)
            np.add.at(values, which, got_values)
            np.add.at(counts, which, 1)
            if got_in is not None:
                np.add.at(inputs, which, got_in)
            if got_out is not None:
                np.add.at(outputs, which, got_out)
        seen = np.maximum(counts, 1)[:, None]
        return {"inputs": (inputs / seen).astype(np.float32), "outputs": (outputs / seen).astype(np.float32),
                "values": (values / seen[:, 0]).astype(np.float32), "images": counts,
                "channels": self.network.spec.layer(task.layer).channels}


class Captured(CropStore):
    """The worker's side of a crops task: a crop store that holds what the real one does
    (the images seen, the entries without their crops) and keeps the crops pass's one
    commit in memory, for the driver to commit into the real store."""

    def __init__(self, seen: Sequence[int], stored: dict[str, LayerCrops]) -> None:
        super().__init__(Path(tempfile.gettempdir()) / "deepvis-never-written")
        self.seen = {str(i): {} for i in seen}
        self.stored = stored
        self.found: dict = {}
        self.images: dict = {}

    def index(self) -> dict:
        return {"images": self.seen}

    def load(self, layer: str) -> LayerCrops | None:
        return self.stored.get(layer)

    def commit(self, found: dict, images: dict, meta: dict) -> None:
        if self.found:  # one commit per task: the task's shard is one chunk
            raise RuntimeError("a crops task committed twice")
        self.found, self.images = dict(found), dict(images)


# -- the driver's side: commit results, record tasks ----------------------------------------


class Committer:
    """Writes a task's result into the asset folder, then records the task as done."""

    def __init__(self, root: str | Path, model: str, unit_params: UnitParams | None) -> None:
        from toolbox.assets.circuits import CircuitStore
        from toolbox.assets.unit_images import UnitImageFolder

        self.folder, self.store, self.circuits = UnitImageFolder(root), CropStore(root), CircuitStore(root)
        self.folder.claim(model)  # a folder holds one network's assets
        self.model, self.unit_params = model, unit_params
        self.records = TaskRecords(root)
        self.bad = 0
        self.said = 0  # units with nothing to show (their objectives entries say why)

    def __call__(self, task: Task, result: dict) -> None:
        if task.kind == "units":
            p = self.unit_params
            assert p is not None
            made = {unit: (image, alpha, value) for unit, image, alpha, value in
                    zip(result["units"], result["images"], result["transparency"], result["objective"])}
            self.said += len(self.folder.store(self.model, task.layer, made, result["said"], preset=p.preset,
                                               size=task.side, steps=p.steps))
        elif task.kind == "circuits":
            import numpy as np

            tops = np.array(task.tops, np.int64).reshape(len(task.units), -1)
            self.circuits.commit(task.layer, task.units, result["channels"], task.layers[0], task.layers[1], result["inputs"], result["outputs"],
                                 result["values"], result["images"], tops)
        else:
            for message in result["bad"]:
                log.warning("skipped: %s", message)
            self.bad += len(result["bad"])
            if result["found"] or result["images"]:
                self.store.commit(result["found"], {int(k): v for k, v in result["images"].items()}, result["meta"])
        self.records.mark(task, seconds=round(result["seconds"], 3), worker=result["worker"])

    def known(self, task: Task) -> dict | None:
        """For a crops task, what the store holds already: the images seen, and per layer the
        stored entries without their crops (what a new entry must beat)."""
        if task.kind != "crops":
            return None
        stored = {}
        for layer in task.layers:
            crops = self.store.load(layer)
            if crops is not None:
                stored[layer] = LayerCrops(_metadata(crops.top), _metadata(crops.bottom))
        return {"stored": stored, "seen": [int(i) for i in self.store.index().get("images", {})]}

    def finish(self) -> None:
        """Put the crop index's images in id order, so the index does not depend on the order
        in which shards finished."""
        if not self.store.exists():
            return

        def ordered(data: dict) -> dict:
            data["images"] = dict(sorted(data.get("images", {}).items(), key=lambda kv: int(kv[0])))
            return data

        # one line, as CropStore writes it
        update_json(self.store.index_path, ordered, valid_index, indent=None, root=self.store.root)


def _metadata(entries: Entries | None) -> Entries | None:
    return None if entries is None else Entries(entries.values, entries.sources, entries.positions)


@dataclass
class Outcome:
    """What a run did, for its summary line."""

    planned: int = 0
    skipped: int = 0  # done by an earlier run
    done: int = 0
    retried: int = 0
    seconds: float = 0.0
    startup: float = 0.0  # of those, until every worker had loaded the network (Ray)
    workers: int = 1


def run_in_process(worker: Worker, tasks: Sequence[Task], commit: Committer,
                   on_done: Callable[[Task, dict], None] | None = None) -> Outcome:
    """Every task, one after the other, in this process. Ctrl-C (KeyboardInterrupt) stops it;
    the tasks committed so far are kept."""
    outcome = Outcome(planned=len(tasks))
    start = time.perf_counter()
    for task in tasks:
        result = worker.run(task, commit.known(task))
        commit(task, result)
        outcome.done += 1
        if on_done is not None:
            on_done(task, result)
    outcome.seconds = time.perf_counter() - start
    return outcome


def remaining(tasks: Sequence[Task], records: TaskRecords) -> list[Task]:
    return [t for t in tasks if not records.done(t)]


def source_list(specs: Sequence[str]) -> list[tuple[str, bool]]:
    """The sources of ``--crops`` as (path, is_video), in a stable order."""
    from toolbox.assets.crop_job import find_sources

    return [(str(s.path), s.video) for s in find_sources(specs)]

