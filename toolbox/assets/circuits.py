"""Circuits on disk: every unit's contributions from the offered layer before it (its inputs)
and to the offered layer after it (its outputs), averaged over the unit's top-crop images.
The one owner of their layout (``deepvis precompute --circuits`` fills it, the atlas reads it).

In a unit-image folder, beside the crops they were measured on:

    circuits/<layer>.npz    source, target: the layers before and after ("" where there is none)
                            inputs (U, C_source) float32: row u, every source channel's mean
                              contribution to unit u (its value before its ReLU, at its strongest
                              position); outputs (U, C_target): row u, unit u's mean contribution
                              to every target unit; values (U,) the unit's mean value;
                            images (U,) int32: how many top-crop images each row averages (0: not
                              computed); made_from (U, K) int64: their source ids (crops.EMPTY
                              pads), so a row measured on an older top K is known as stale
    circuits/.layers.lock   the lock writers take

A commit writes whole rows (a task's units) into the layer's file under the lock; a file of
other layers (another source, target or width) is replaced, never mixed.

A layer's file is named by ``names.safe_name``. It is read through ``stored_arrays.read_npz``:
a regular file inside the asset folder (not a link, and not through a ``circuits`` folder that
is a link), each array's declared shape checked against the layer (its units, the widest layer
deepvis offers, K) and against the bytes the file holds before anything is inflated.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from toolbox.assets.crops import DAMAGE, EMPTY, MAX_K, MAX_UNITS
from toolbox.assets.stored_arrays import read_npz
from toolbox.errors import UserError
from toolbox.files import atomic_output, display_path, locked, move_aside, real_folder
from toolbox.names import safe_name
from toolbox.optvis.circuits import Circuit

log = logging.getLogger(__name__)

MAX_NAME = 4096  # characters of a stored layer name


@dataclass(frozen=True)
class LayerCircuits:
    source: str
    target: str
    inputs: np.ndarray  # (U, C_source) float32 (U, 0) when there is no source
    outputs: np.ndarray  # (U, C_target)
    values: np.ndarray  # (U,)
    images: np.ndarray  # (U,) int32
    made_from: np.ndarray  # (U, K) int64

    @staticmethod
    def empty(source: str, target: str, units: int, sources: int, targets: int, k: int) -> "LayerCircuits":
        return LayerCircuits(source, target, np.zeros((units, sources), np.float32),
                             np.zeros((units, targets), np.float32), np.zeros(units, np.float32),
                             np.zeros(units, np.int32), np.full((units, k), EMPTY, np.int64))

    def unit(self, layer: str, unit: int) -> "UnitCircuits | None":
        """Row ``unit`` (of ``layer``, whose rows these are), or None when it is not computed."""
        if unit >= len(self.values) or self.images[unit] == 0:
            return None
        n, value = int(self.images[unit]), float(self.values[unit])
        inputs = Circuit(layer, unit, self.source, self.inputs[unit], value, n) if self.source else None
        outputs = Circuit(layer, unit, self.target, self.outputs[unit], value, n) if self.target else None
        return UnitCircuits(inputs, outputs, self.made_from[unit])

    def fits(self, source: str, target: str, units: int, sources: int, targets: int, k: int) -> bool:
        return (self.source, self.target, self.inputs.shape, self.outputs.shape, self.made_from.shape) == (
            source, target, (units, sources), (units, targets), (units, k))


@dataclass(frozen=True)
class UnitCircuits:
    """One unit's stored circuits: ``inputs`` (from the layer before) and ``outputs`` (to the
    layer after) as Circuits whose ``source`` is the other layer; None where there is none."""

    inputs: Circuit | None
    outputs: Circuit | None
    made_from: np.ndarray  # the source ids of the images averaged


def _shapes(units: int | None) -> dict[str, tuple[int, ...]]:
    """The largest arrays a layer's file may hold: ``units`` rows when the caller knows the
    layer's width, else the widest layer deepvis stores."""
    rows = MAX_UNITS if units is None else units
    return {"source": (), "target": (), "inputs": (rows, MAX_UNITS), "outputs": (rows, MAX_UNITS), "values": (rows,),
            "images": (rows,), "made_from": (rows, MAX_K)}


class CircuitStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.dir = self.root / "circuits"

    def layer_path(self, layer: str) -> Path:
        return self.dir / f"{safe_name(layer)}.npz"

    def load(self, layer: str, units: int | None = None) -> LayerCircuits | None:
        """What is stored for ``layer`` (``units`` wide, when the caller knows), or None: none
        stored, or refused or damaged (a one-line warning; it is made again)."""
        path = self.layer_path(layer)
        try:
            z = read_npz(self.root, path, "circuits file", _shapes(units))
            if z is None:
                return None
            names = [str(z[key]) if z[key].dtype.kind == "U" and len(str(z[key])) <= MAX_NAME else None
                     for key in ("source", "target")]
            if None in names:
                raise ValueError("its layer names are not text")
            stored = LayerCircuits(names[0], names[1], z["inputs"].astype(np.float32),
                                   z["outputs"].astype(np.float32), z["values"].astype(np.float32),
                                   z["images"].astype(np.int32), z["made_from"].astype(np.int64))
        except (*DAMAGE, UserError) as e:
            log.warning("circuits of %s in %s are damaged or refused (%s); they will be made again", layer,
                        display_path(path), " ".join(str(e).split())[:200] or type(e).__name__)
            return None
        rows = len(stored.values)
        if not (stored.inputs.shape[0] == stored.outputs.shape[0] == len(stored.images) == len(stored.made_from)
                == rows):
            log.warning("circuits of %s in %s are damaged (rows disagree); they will be made again", layer,
                        display_path(path))
            return None
        return stored

    def unit(self, layer: str, unit: int) -> UnitCircuits | None:
        """What is stored for one unit, or None when it has not been computed."""
        stored = self.load(layer)
        return None if stored is None else stored.unit(layer, unit)

    def done_rows(self, layer: str, units: Sequence[int], made_from: np.ndarray) -> bool:
        """Whether every one of ``units`` is stored, measured on exactly ``made_from`` (U, K)."""
        stored = self.load(layer)
        if stored is None or max(units, default=0) >= len(stored.values):
            return False
        rows = np.asarray(units)
        return bool((stored.images[rows] > 0).all() and stored.made_from.shape[1] == made_from.shape[1]
                    and (stored.made_from[rows] == made_from).all())

    def commit(self, layer: str, units: Sequence[int], channels: int, source: str, target: str,
               inputs: np.ndarray, outputs: np.ndarray, values: np.ndarray, images: np.ndarray,
               made_from: np.ndarray) -> None:
        """Write rows ``units`` of ``layer`` (which has ``channels`` units) under the lock."""
        real_folder(self.root, self.dir)  # never written through a link
        rows = np.asarray(units, np.int64)
        with locked(self.dir / "layers"):
            path = self.layer_path(layer)
            stored = self.load(layer)  # a file of another width is replaced below (fits), not moved aside
            if stored is None and os.path.lexists(path):  # damaged or refused (a link: renamed, its target untouched)
                move_aside(path, "is damaged")
            shape = (source, target, channels, inputs.shape[1], outputs.shape[1], made_from.shape[1])
            if stored is None or not stored.fits(*shape):
                stored = LayerCircuits.empty(*shape)
            stored.inputs[rows], stored.outputs[rows], stored.values[rows] = inputs, outputs, values
            stored.images[rows], stored.made_from[rows] = images, made_from
            with atomic_output(path) as tmp:
                with open(tmp, "wb") as f:
                    np.savez(f, source=np.array(source), target=np.array(target), inputs=stored.inputs,
                             outputs=stored.outputs, values=stored.values, images=stored.images,
                             made_from=stored.made_from)
