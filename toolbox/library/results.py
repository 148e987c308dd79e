"""What the library's calls return: values that hold their arrays and numbers, give their main
array to ``np.asarray``, show themselves in Jupyter (``_repr_png_`` / ``_repr_html_``) and
``save`` themselves. Drawing reuses the commands' own pictures (sheets, overlays, charts)."""

from __future__ import annotations

import functools
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from toolbox.images import write_image


class Result:
    """The shared face of every result: ``array`` is what ``np.asarray(result)`` gives and
    ``picture()`` what a notebook shows and ``save`` writes."""

    array: np.ndarray

    def picture(self) -> np.ndarray:
        """The result as one RGB uint8 picture."""
        return np.asarray(self.array, np.uint8)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        a = np.asarray(self.array)
        return a if dtype is None else a.astype(dtype)

    def _repr_png_(self) -> bytes:
        ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(self.picture()), cv2.COLOR_RGB2BGR))
        return buf.tobytes() if ok else b""

    def save(self, path: str | Path) -> Path:
        """Write ``picture()`` to ``path`` (png, jpg, bmp or webp), whole or not at all."""
        write_image(path, self.picture())
        return Path(path)


@dataclass(frozen=True, repr=False)
class Classes(Result):
    """The top classes of a photo, best first: ``names``, ``probabilities`` (``array``)."""

    names: tuple[str, ...]
    indices: tuple[int, ...]
    array: np.ndarray  # probabilities, best first

    def __iter__(self):
        return iter(zip(self.names, (float(p) for p in self.array)))

    def __repr__(self) -> str:
        return ", ".join(f"{name} {p:.3f}" for name, p in self)

    def _repr_png_(self) -> None:  # a table, not a picture
        return None

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td>{i}</td><td>{html.escape(n)}</td><td>{p:.1%}</td></tr>"
                       for i, (n, p) in zip(self.indices, self))
        return f"<table><tr><th>class</th><th>name</th><th>probability</th></tr>{rows}</table>"


@dataclass(frozen=True, repr=False)
class UnitImages(Result):
    """Optimized images of units of one layer: ``array`` (n, size, size, 3) uint8 stacked in
    ``units`` order, ``objectives`` the value each reached (its channel mean before the ReLU);
    ``said`` {unit: why} for the units asked that have nothing to show (no image: nearly
    constant, never on, or no image beats a plain one); shown as a contact sheet."""

    layer: str
    units: tuple[int, ...]
    array: np.ndarray
    objectives: np.ndarray
    transparency: np.ndarray | None = None  # (n, size, size) for presets that make one (maco)
    said: dict[int, str] = field(default_factory=dict)

    def __getitem__(self, unit: int) -> np.ndarray:
        if unit in self.said:
            raise KeyError(f"{self.layer} {self.said[unit]}")
        return self.array[self.units.index(unit)]

    def picture(self) -> np.ndarray:
        """The contact sheet `deepvis units` writes: each image, and a tile for each unit said."""
        from toolbox.assets.unit_images import unit_sheet

        return unit_sheet(self.layer, self.units, list(self.array), [u for u, why in self.said.items()
                                                                      if why.endswith("; no image")])

    def __repr__(self) -> str:
        said = "".join(f"\n  {why}" for why in self.said.values())
        side = f", {self.array.shape[1]} px" if len(self.array) else ""
        return f"UnitImages({self.layer}, units {list(self.units)}{side}){said}"


@dataclass(frozen=True, repr=False)
class Map(Result):
    """An attribution map at the photo's size: ``array`` (H, W, 3) float32 (the gradient-like
    map; a CAM's ``heat`` beside it), ``score`` the explained value; ``image`` is the map through
    its display filter and ``overlay`` its heat over the photo, as the command writes them (made
    when first asked for: shown side by side)."""

    target: str
    method: str
    score: float
    attribution: Any  # optvis.attribution.Attribution, carried to the photo's pixels
    photo: np.ndarray
    filter: str
    score_is: str = "score"  # what ``score`` is: "max (before ReLU)", "score before softmax"

    @property
    def array(self) -> np.ndarray:
        return self.attribution.map

    @functools.cached_property
    def _pictures(self) -> dict[str, np.ndarray]:
        from toolbox.outputs.attribution import attribution_images

        return attribution_images(self.attribution, self.photo, self.filter)

    @property
    def image(self) -> np.ndarray:
        return self._pictures["map"]

    @property
    def overlay(self) -> np.ndarray:
        return self._pictures["overlay"]

    def picture(self) -> np.ndarray:
        gap = np.full((self.image.shape[0], 8, 3), 255, np.uint8)
        return np.concatenate([self.image, gap, self.overlay], axis=1)

    def __repr__(self) -> str:
        h, w = self.array.shape[:2]
        return f"Map({self.method} of {self.target}: {self.score_is} {self.score:.4g}, {w}x{h})"


@dataclass(frozen=True, repr=False)
class Picture(Result):
    """A picture a call made (a dream, an accentuation) at the photo's size, with its numbers."""

    what: str
    array: np.ndarray  # (H, W, 3) uint8
    values: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        said = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in self.values.items())
        return f"{self.what} ({self.array.shape[1]}x{self.array.shape[0]}{', ' + said if said else ''})"


@dataclass(frozen=True, repr=False)
class Circuit(Result):
    """A unit's strongest inputs (from ``inputs.source``) and outputs (to ``outputs.source``,
    None for the last layer) on some photos: ``optvis.circuits.Circuit`` values with each
    link's contribution and share; ``array`` the inputs' contributions; shown as a chart."""

    inputs: Any
    outputs: Any
    top: int
    array: np.ndarray
    relu_side: str = ""  # which of the unit's values ``value`` is (``Network.relu_side``)

    def links(self, side: str = "inputs", inhibitory: bool = False) -> list:
        """The ``top`` strongest links of ``side`` ("inputs" or "outputs"), excitatory or inhibitory."""
        circuit = getattr(self, side)
        return [] if circuit is None else circuit.links(self.top, inhibitory)

    def _chart(self) -> bytes:
        from toolbox.plots import circuit_chart

        c = self.inputs
        return circuit_chart(c, self.links(), self.links(inhibitory=True), [None] * (2 * self.top),
                             f"{c.layer} unit {c.unit}", relu_side=self.relu_side)

    def _repr_png_(self) -> bytes:
        return self._chart()

    def picture(self) -> np.ndarray:
        chart = cv2.imdecode(np.frombuffer(self._chart(), np.uint8), cv2.IMREAD_COLOR)
        return cv2.cvtColor(chart, cv2.COLOR_BGR2RGB)

    def __repr__(self) -> str:
        c = self.inputs
        shown = ", ".join(f"{k.unit} {k.share:+.1%}" for k in self.links())
        return (f"Circuit({c.layer}:{c.unit}, max {c.value:.4g}{self.relu_side}; strongest inputs from {c.source}: "
                f"{shown})")


@dataclass(frozen=True, repr=False)
class Crops(Result):
    """Each unit's top natural-image crops of ``layer`` over a folder of photos, best first,
    read from the crop store they were kept in (``store``) when first asked for: ``array``
    (units, k, side, side, 3) uint8 (black where a unit has fewer than k), ``values`` (units, k)
    (NaN there); shown as the command's sheet of the strongest units. ``run``: what the pass
    over the photos did (``images`` looked at, ``skipped`` as seen before, ``bad``, ``seconds``)."""

    layer: str
    store: Any  # assets.crops.CropStore
    run: Any  # assets.crop_job.CropRun

    @property
    def images(self) -> int:
        """Photos looked at."""
        return self.run.images

    @functools.cached_property
    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        stored = self.store.load(self.layer)
        units, k = (stored.top.values.shape if stored is not None else (0, 0))
        side = int(stored.pool.shape[1]) if stored is not None and stored.pool is not None and stored.pool.ndim == 4 \
            else 0
        array = np.zeros((units, k, side, side, 3), np.uint8)
        values = np.full((units, k), np.nan, np.float32)
        for unit in range(units):
            found = self.store.unit(self.layer, unit)
            if found is not None and len(found[1]):
                n = len(found[1])
                array[unit, :n], values[unit, :n] = found[0], found[1]
        return array, values

    @property
    def array(self) -> np.ndarray:
        return self._arrays[0]

    @property
    def values(self) -> np.ndarray:
        return self._arrays[1]

    @functools.cached_property
    def sheet(self) -> np.ndarray | None:
        """The command's <layer>_crops.png picture (None: nothing found)."""
        from toolbox.assets.crop_sheets import crop_sheet

        return crop_sheet(self.store, self.layer)

    def unit(self, unit: int) -> tuple[np.ndarray, np.ndarray]:
        """(crops, values) of one unit, only those it has."""
        keep = ~np.isnan(self.values[unit])
        return self.array[unit][keep], self.values[unit][keep]

    def picture(self) -> np.ndarray:
        return self.sheet if self.sheet is not None else np.zeros((8, 8, 3), np.uint8)

    def held(self) -> "Crops":
        """The same, read into memory (its store may go away)."""
        _ = self._arrays, self.sheet
        return self

    def __repr__(self) -> str:
        units, k = self.array.shape[:2]
        return f"Crops({self.layer}: top {k} of {units} units over {self.images} images)"


__all__ = ["Circuit", "Classes", "Crops", "Map", "Picture", "Result", "UnitImages"]
