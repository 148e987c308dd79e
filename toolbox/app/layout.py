"""Where everything sits on the dashboard: one place for pane rectangles and grid geometry,
used by drawing, by mouse hit-testing and by selection movement alike."""

from __future__ import annotations

import math
from dataclasses import dataclass

WIDTH, HEIGHT = 1280, 760


@dataclass(frozen=True)
class Rect:
    x: int
    y: int
    w: int
    h: int

    def contains(self, px: int, py: int) -> bool:
        return self.x <= px < self.x + self.w and self.y <= py < self.y + self.h


INPUT = Rect(10, 30, 300, 300)
CLASSES = Rect(10, 360, 300, 110)
LAYERS = Rect(10, 495, 300, 235)
GRID = Rect(330, 30, 450, 450)
GRID_INFO = Rect(330, 485, 450, 20)
CROPS = Rect(330, 535, 450, 189)  # the selected unit's top natural-image crops, 3 x 3
UNIT = Rect(800, 30, 225, 225)
UNIT_IMAGE = Rect(1045, 30, 225, 225)
UNIT_INFO = Rect(800, 260, 225, 60)
UNIT_IMAGE_INFO = Rect(1045, 260, 225, 60)
GRADIENT = Rect(800, 345, 225, 225)  # the explained unit's gradient map (the input's size: 224 px is 1:1)
GRADIENT_INFO = Rect(800, 575, 225, 60)
NOTES = Rect(1045, 345, 225, 380)
STATUS = Rect(0, 735, WIDTH, 25)

MIN_TILE = 6  # smallest grid tile (pixels) before the grid pages instead of shrinking


@dataclass(frozen=True)
class GridGeometry:
    channels: int
    cols: int
    rows: int
    tile: int  # side of one channel's tile, gap included
    per_page: int

    def page_of(self, unit: int) -> int:
        return unit // self.per_page

    @property
    def pages(self) -> int:
        return -(-self.channels // self.per_page)

    def cell(self, unit: int) -> tuple[int, int]:
        """(row, col) of a unit on its page."""
        i = unit % self.per_page
        return i // self.cols, i % self.cols

    def unit_at(self, px: int, py: int, page: int, area: Rect = GRID) -> int | None:
        if not area.contains(px, py):
            return None
        col, row = (px - area.x) // self.tile, (py - area.y) // self.tile
        if col >= self.cols or row >= self.rows:
            return None
        unit = page * self.per_page + row * self.cols + col
        return unit if unit < self.channels else None


def grid_geometry(channels: int, area: Rect = GRID) -> GridGeometry:
    """Square-ish grid of every channel; beyond what fits at MIN_TILE, pages."""
    side = min(area.w, area.h)
    per_page = min(channels, (side // MIN_TILE) ** 2)
    cols = math.ceil(math.sqrt(per_page))
    rows = math.ceil(per_page / cols)
    return GridGeometry(channels, cols, rows, side // cols, per_page)


# The circuit view, a mode of the crops pane: 6 excitatory inputs in the top row, 3 inhibitory
# below, each a thumbnail over its unit and share; the rest of the bottom row says the keys.
CIRCUIT_CELL_W, CIRCUIT_CELL_H, CIRCUIT_THUMB = 75, 94, 56
CIRCUIT_ROW = (6, 3)  # cells in the top (excitatory) and bottom (inhibitory) rows
CIRCUIT_NOTES = Rect(CROPS.x + CIRCUIT_ROW[1] * CIRCUIT_CELL_W + 8, CROPS.y + CIRCUIT_CELL_H,
                     CROPS.w - CIRCUIT_ROW[1] * CIRCUIT_CELL_W - 8, CROPS.h - CIRCUIT_CELL_H)


def circuit_cell(i: int) -> Rect:
    """Cell ``i`` of the circuit view: 0-5 excitatory, 6-8 inhibitory."""
    row, col = (0, i) if i < CIRCUIT_ROW[0] else (1, i - CIRCUIT_ROW[0])
    return Rect(CROPS.x + col * CIRCUIT_CELL_W, CROPS.y + row * CIRCUIT_CELL_H, CIRCUIT_CELL_W, CIRCUIT_CELL_H)


def circuit_cell_at(px: int, py: int) -> int | None:
    for i in range(sum(CIRCUIT_ROW)):
        if circuit_cell(i).contains(px, py):
            return i
    return None


LAYER_ROW = 15  # the layer list's line height


def layer_rows(current: int, count: int, area: Rect = LAYERS) -> range:
    """The layers the list shows (indices), keeping the current one in the middle."""
    rows = area.h // LAYER_ROW
    first = min(max(0, current - rows // 2), max(0, count - rows))
    return range(first, min(count, first + rows))


def layer_at(px: int, py: int, current: int, count: int, area: Rect = LAYERS) -> int | None:
    """The layer whose line of the list holds the point (a line spans the 15 px above its text's base)."""
    if not area.contains(px, py):
        return None
    shown = layer_rows(current, count, area)
    i = (py - area.y + 3) // LAYER_ROW  # the text's base sits 12 px below the line's top
    return shown[i] if 0 <= i < len(shown) else None
