"""Drawing the dashboard: an immutable DashboardView in, an RGB image out.

Pure numpy + OpenCV drawing (no window, no TensorFlow), so the window, the headless
recorder and the tests all draw the same thing.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from toolbox.app import layout as L
from toolbox.app.layout import Rect, grid_geometry
from toolbox.app.protocol import Hints
from toolbox.app.state import ViewState

if TYPE_CHECKING:  # drawing needs no TensorFlow, only the observation's arrays
    from toolbox.app.modes.base import Mode
    from toolbox.nets import Observation

BACKGROUND = (28, 28, 32)
TEXT = (225, 225, 225)
DIM = (130, 130, 140)
ACCENT = (255, 200, 40)
SELECT = (60, 220, 255)
CLASS_BAR = (60, 90, 150)  # the top classes' probability bars
FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class DashboardView:
    """Everything one dashboard shows: the window's own panes' data, and for each active mode
    (``toolbox.app.modes``) its data, drawn by the mode itself."""

    state: ViewState
    network: str
    layers: tuple[str, ...]
    channels: tuple[int, ...]
    frame: np.ndarray | None  # the network's square input
    observation: "Observation | None"
    top: tuple[tuple[str, float], ...]  # top classes of the observation
    receptive_field: tuple[int, int]  # (size, stride) of the current layer, input pixels
    net_fps: float
    ui_fps: float
    source: str
    message: str = ""
    help_lines: tuple[tuple[str, str], ...] = ()  # (keys, what they do)
    signed: bool = False  # the current layer has negative values: drawn centred on zero
    relu_side: str = ""  # which of its units' values the grid and unit pane show (Network.relu_side)
    classifier: bool = True  # False: the network ends at its features; the classes pane says so
    modes: tuple[tuple["Mode", Any], ...] = ()  # the active modes, in the registry's order, with their data
    hints: Hints = field(default_factory=lambda: Hints({}))  # action -> its key as shown ("b", "Tab")

    @property
    def layer(self) -> str:
        return self.layers[self.state.layer]

    @property
    def activations(self) -> np.ndarray | None:
        return None if self.observation is None else self.observation.activations[self.layer]

    def owner(self, pane: str) -> str | None:
        """The mode that draws ``pane``: the last active one that claims it (None: the window's own)."""
        found = None
        for mode, _ in self.modes:
            if pane in mode.panes:
                found = mode.name
        return found

    def data(self, name: str) -> Any:
        """The data of the active mode ``name`` (None when it is not active)."""
        return next((data for mode, data in self.modes if mode.name == name), None)

    def hint(self, action: str) -> str:
        return self.hints[action]


def fill(image: np.ndarray, color: tuple[int, int, int]) -> None:
    """Paint a whole image one colour (OpenCV's fill; numpy broadcasting of a 3-tuple is slow)."""
    cv2.rectangle(image, (0, 0), (image.shape[1] - 1, image.shape[0] - 1), color, -1)


def text(canvas: np.ndarray, s: str, x: int, y: int, color=TEXT, scale: float = 0.45, bold: bool = False) -> None:
    # OpenCV's fonts draw ASCII only, and a file name that is not valid UTF-8 would crash it
    s = s.encode("ascii", "backslashreplace").decode("ascii")
    cv2.putText(canvas, s, (x, y), FONT, scale, color, 2 if bold else 1, cv2.LINE_AA)


@functools.lru_cache(maxsize=1024)
def fitted(s: str, width: int, scale: float = 0.45) -> str:
    """``s``, or its end after "..", to fit ``width`` pixels (nested models' layer names are long;
    their end says most). A name too long loses its ``<model>.`` parts as a whole, so every layer
    of a nested model is cut at the same place; a layer's own name still too long is cut by
    characters."""
    def fits(t: str) -> bool:
        return cv2.getTextSize(t, FONT, scale, 1)[0][0] <= width

    if fits(s):
        return s
    own = s.rpartition(".")[2]
    if own != s and fits(".." + own):
        return ".." + own
    cut = 1
    while cut < len(s) and not fits(".." + s[cut:]):
        cut += 1
    return ".." + s[cut:]


def title(canvas: np.ndarray, rect: Rect, s: str) -> None:
    text(canvas, s, rect.x, rect.y - 8, DIM, 0.45)


def shrunk_title(canvas: np.ndarray, rect: Rect, s: str, color=DIM, room: int = 0) -> None:
    """A pane's title that shrinks to fit ``rect``'s width (plus ``room``) rather than run into
    the next column (long layer names)."""
    width = cv2.getTextSize(s, FONT, 0.45, 1)[0][0]
    text(canvas, s, rect.x, rect.y - 8, color, 0.45 * min(1.0, (rect.w + room) / width))


def paste(canvas: np.ndarray, image: np.ndarray, rect: Rect, interpolation=cv2.INTER_AREA) -> None:
    canvas[rect.y:rect.y + rect.h, rect.x:rect.x + rect.w] = cv2.resize(image, (rect.w, rect.h),
                                                                         interpolation=interpolation)


def placeholder(canvas: np.ndarray, rect: Rect, lines: list[str]) -> None:
    cv2.rectangle(canvas, (rect.x, rect.y), (rect.x + rect.w - 1, rect.y + rect.h - 1), (70, 70, 78), 1)
    for i, line in enumerate(lines):
        text(canvas, line, rect.x + 10, rect.y + 24 + 18 * i, DIM, 0.42)


GAMMA = 0.5  # the "gamma" scale mode lifts weak activations: level ** GAMMA
CHANNEL_FLOOR = 0.02  # "channel" mode: a channel's scale is at least this share of the layer's,
#                       so a (nearly) dead channel stays dark instead of showing amplified noise


def grid_levels(acts: np.ndarray, mode: str, signed: bool) -> np.ndarray:
    """(h, w, C) -> (C, h, w) uint8 levels for the grid's colour table (0 stays free for the
    gaps between tiles). Zero is always the same level: unsigned layers map 0..top to 1..255
    (black to yellow), signed layers are centred on zero: 128 is zero (white), above it positive
    (red), below it negative (blue). ``mode``: "channel" scales each channel by its own largest
    value, so every unit's pattern reads (the default); "layer" uses one scale for the whole
    layer, so strong units stand out; "gamma" is "layer" with weak values lifted."""
    a = np.moveaxis(acts, -1, 0).astype(np.float32)
    size = np.abs(a) if signed else np.maximum(a, 0)
    layer_top = float(size.max()) if size.size else 0.0
    if mode == "channel":
        top = np.maximum(size.max(axis=(1, 2), keepdims=True), CHANNEL_FLOOR * layer_top)
    else:
        top = layer_top
    t = a / np.maximum(top, 1e-6)  # [-1, 1] signed, [0, 1] unsigned
    if mode == "gamma":
        t = np.sign(t) * np.abs(t) ** GAMMA
    if signed:
        return (128 + np.clip(t, -1, 1) * 127).round().astype(np.uint8)
    return (1 + np.clip(t, 0, 1) * 254).round().astype(np.uint8)


GAP = (74, 74, 84)  # between the grid's tiles: apart from both black (zero, unsigned) and white (zero, signed)


def _inferno_lut() -> np.ndarray:
    """256 RGB colours: index 0 is the gap between tiles, 1..255 the inferno colour map."""
    ramp = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_INFERNO)[:, 0, ::-1]
    lut = np.empty((256, 3), np.uint8)
    lut[0] = GAP
    lut[1:] = ramp[np.linspace(0, 255, 255).astype(int)]
    return lut


# ColorBrewer's RdBu, strongest negative (blue) to strongest positive (red), white in the middle
_RDBU = ((33, 102, 172), (67, 147, 195), (146, 197, 222), (209, 229, 240), (247, 247, 247),
         (253, 219, 199), (244, 165, 130), (214, 96, 77), (178, 24, 43))


def _diverging_lut() -> np.ndarray:
    """256 RGB colours centred on 128 (white: zero): red above for positive values, blue below
    for negative ones, two hues a viewer tells apart at a glance even where the values are
    dense; 0 is the gap between tiles."""
    stops = np.linspace(1, 255, len(_RDBU))
    levels = np.arange(256)
    lut = np.stack([np.interp(levels, stops, [c[i] for c in _RDBU]) for i in range(3)], axis=1)
    lut = lut.round().astype(np.uint8)
    lut[0] = GAP
    return lut


GRID_LUT = _inferno_lut()[:, None, :]  # as cv2.applyColorMap takes a user colour map: (256, 1, 3)
SIGNED_LUT = _diverging_lut()[:, None, :]


def apply_lut(levels: np.ndarray, signed: bool = False) -> np.ndarray:
    """uint8 (h, w) levels -> RGB through a colour table (OpenCV's table lookup: fast)."""
    return cv2.applyColorMap(np.ascontiguousarray(levels), SIGNED_LUT if signed else GRID_LUT)


def gap_of(tile: int) -> int:
    """Pixels between two tiles of the grid: enough to see where one channel ends."""
    return 1 if tile < 10 else 2 if tile < 24 else 3


def resample_tiles(levels: np.ndarray, side: int) -> np.ndarray:
    """(n, h, w) uint8 levels -> (n, side, side): linear between the values when enlarging
    (a 14x14 map reads as smooth blobs, not blocks), the nearest value when shrinking. OpenCV
    resizes up to 128 channels at once, so the maps go through it in such slices."""
    n, h, w = levels.shape
    if side <= min(h, w):
        return levels[:, (np.arange(side) * h) // side][:, :, (np.arange(side) * w) // side]
    out = np.empty((n, side, side), np.uint8)
    stacked = np.ascontiguousarray(levels.transpose(1, 2, 0))  # (h, w, n): channels last
    for i in range(0, n, 128):
        part = cv2.resize(stacked[..., i:i + 128], (side, side), interpolation=cv2.INTER_LINEAR)
        out[i:i + 128] = part.reshape(side, side, -1).transpose(2, 0, 1)
    return out


def activation_grid(acts: np.ndarray, selected: int, rect: Rect = L.GRID, mode: str = "channel",
                    signed: bool = False) -> np.ndarray:
    """Every channel of the page holding ``selected``, as tiles separated by gaps, the selected
    one outlined; ``mode`` and ``signed`` as in ``grid_levels`` (the layer's scale spans every
    page)."""
    geo = grid_geometry(acts.shape[-1], rect)
    page = geo.page_of(selected)
    first, last = page * geo.per_page, min(acts.shape[-1], (page + 1) * geo.per_page)
    levels = grid_levels(acts, mode, signed)[first:last]
    t = geo.tile
    inner = max(1, t - gap_of(t))
    sheet = np.zeros((geo.rows * geo.cols, t, t), np.uint8)
    sheet[:len(levels), :inner, :inner] = resample_tiles(levels, inner)  # linear keeps levels >= 1
    sheet = sheet.reshape(geo.rows, geo.cols, t, t).transpose(0, 2, 1, 3).reshape(geo.rows * t, geo.cols * t)
    out = np.empty((rect.h, rect.w, 3), np.uint8)
    fill(out, BACKGROUND)
    out[:sheet.shape[0] - (t - inner), :sheet.shape[1] - (t - inner)] = apply_lut(sheet, signed)[
        :sheet.shape[0] - (t - inner), :sheet.shape[1] - (t - inner)]
    for unit in range(last - first, geo.rows * geo.cols):  # cells past the last channel: background
        row, col = divmod(unit, geo.cols)
        out[row * t:(row + 1) * t, col * t:(col + 1) * t] = BACKGROUND
    row, col = geo.cell(selected)
    cv2.rectangle(out, (col * t - 1, row * t - 1), (col * t + inner, row * t + inner), SELECT, 2 if t > 8 else 1)
    return out


def pattern_grid(images: dict, channels: int, selected: int, rect: Rect = L.GRID) -> np.ndarray:
    """Pattern mode: every unit of the page holding ``selected`` as its optimized image (from
    ``images``, unit -> RGB); a unit without one is an empty tile. Same geometry as the
    activation grid, so selection, clicks and pages work alike."""
    geo = grid_geometry(channels, rect)
    page = geo.page_of(selected)
    t = geo.tile
    inner = max(1, t - gap_of(t))
    out = np.empty((rect.h, rect.w, 3), np.uint8)
    fill(out, BACKGROUND)
    for unit in range(page * geo.per_page, min(channels, (page + 1) * geo.per_page)):
        row, col = geo.cell(unit)
        image = images.get(unit)
        if image is None:
            cv2.rectangle(out, (col * t, row * t), (col * t + inner - 1, row * t + inner - 1), (60, 60, 68), 1)
        else:
            out[row * t:row * t + inner, col * t:col * t + inner] = cv2.resize(image, (inner, inner),
                                                                               interpolation=cv2.INTER_AREA)
    row, col = geo.cell(selected)
    cv2.rectangle(out, (col * t - 1, row * t - 1), (col * t + inner, row * t + inner), SELECT, 2 if t > 8 else 1)
    return out


def crops_montage(crops: np.ndarray, values: np.ndarray, cell: int, columns: int = 3) -> np.ndarray:
    """Up to columns x columns crops in a grid of ``cell``-pixel cells, each with its value."""
    rows = columns
    out = np.empty((rows * cell, columns * cell, 3), np.uint8)
    fill(out, BACKGROUND)
    for i, (crop, value) in enumerate(zip(crops[:rows * columns], values)):
        y, x = (i // columns) * cell, (i % columns) * cell
        out[y:y + cell - 2, x:x + cell - 2] = cv2.resize(crop, (cell - 2, cell - 2), interpolation=cv2.INTER_LINEAR)
        label = f"{value:.3g}"
        cv2.rectangle(out, (x, y + cell - 15), (x + 7 * len(label) + 4, y + cell - 3), (0, 0, 0), -1)
        cv2.putText(out, label, (x + 2, y + cell - 5), FONT, 0.35, TEXT, 1, cv2.LINE_AA)
    return out


def strongest_position(unit_map: np.ndarray) -> tuple[int, int]:
    return tuple(int(v) for v in np.unravel_index(np.argmax(unit_map), unit_map.shape))  # type: ignore[return-value]


def field_box(view: DashboardView, unit_map: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) in input pixels of the receptive field around the unit's strongest position."""
    size = view.frame.shape[0]
    r, c = strongest_position(unit_map)
    cy, cx = (r + 0.5) * size / unit_map.shape[0], (c + 0.5) * size / unit_map.shape[1]
    half = min(view.receptive_field[0], size) / 2
    x0, y0 = int(np.clip(cx - half, 0, size - 1)), int(np.clip(cy - half, 0, size - 1))
    x1, y1 = int(np.clip(cx + half, x0 + 1, size)), int(np.clip(cy + half, y0 + 1, size))
    return x0, y0, x1, y1


def draw_input(canvas: np.ndarray, view: DashboardView, heading: str | None = None,
               picture: np.ndarray | None = None) -> None:
    """The input pane: the frame (or ``picture`` in its place, a mode's, under ``heading``) with
    the selected unit's receptive field at its strongest position."""
    title(canvas, L.INPUT, heading or f"input: {view.source}")
    if view.frame is None:
        placeholder(canvas, L.INPUT, ["waiting for the first frame..."])
        return
    paste(canvas, picture if picture is not None else view.frame, L.INPUT)
    acts = view.activations
    if acts is not None:
        x0, y0, x1, y1 = field_box(view, acts[..., view.state.unit])
        s = L.INPUT.w / view.frame.shape[0]
        cv2.rectangle(canvas, (L.INPUT.x + int(x0 * s), L.INPUT.y + int(y0 * s)),
                      (L.INPUT.x + int(x1 * s) - 1, L.INPUT.y + int(y1 * s) - 1), SELECT, 2)


def draw_grid(canvas: np.ndarray, view: DashboardView) -> None:
    """The grid of every channel's activations on the frame."""
    acts = view.activations
    s = view.state
    grid = None if acts is None else activation_grid(acts, s.unit, mode=s.scale_mode, signed=view.signed)
    info = "" if acts is None else (f"{acts.shape[0]}x{acts.shape[1]} per channel, scale: {s.scale_mode} "
                                    f"({view.hint('scale')})" + (", signed: red +, blue -, white 0" if view.signed
                                                                 else ""))
    draw_grid_picture(canvas, view, grid, info)


def draw_grid_picture(canvas: np.ndarray, view: DashboardView, grid: np.ndarray | None, info: str) -> None:
    """The grid pane's frame around ``grid`` (a picture of the current page; None: the network
    is still loading), its title, ``info`` and where the page is."""
    channels = view.channels[view.state.layer]
    title(canvas, L.GRID, f"layer {view.layer}: {channels} channels")
    if grid is None or view.activations is None:
        placeholder(canvas, L.GRID, ["loading the network..."])
        return
    canvas[L.GRID.y:L.GRID.y + L.GRID.h, L.GRID.x:L.GRID.x + L.GRID.w] = grid
    geo = grid_geometry(channels)
    if geo.pages > 1:
        page = geo.page_of(view.state.unit)
        info += (f"   page {page + 1}/{geo.pages}: units {page * geo.per_page}-"
                 f"{min(channels, (page + 1) * geo.per_page) - 1}")
    text(canvas, info, L.GRID_INFO.x, L.GRID_INFO.y + 14, DIM, 0.42)


def draw_unit(canvas: np.ndarray, view: DashboardView) -> None:
    unit, mode = view.state.unit, view.state.zoom_mode
    title(canvas, L.UNIT, f"unit {unit} ({mode}, {view.hint('zoom')})")
    acts = view.activations
    if acts is None or view.frame is None:
        placeholder(canvas, L.UNIT, [])
        return
    unit_map = acts[..., unit]
    hi = float(unit_map.max())
    colored = apply_lut(grid_levels(unit_map[..., None], "channel", view.signed)[0], view.signed)
    if mode == "map":  # the grid's tile, enlarged: same colours, same scale as "channel"
        paste(canvas, colored, L.UNIT, cv2.INTER_NEAREST)
    elif mode == "overlay":
        size = view.frame.shape[0]
        heat = cv2.resize(colored, (size, size), interpolation=cv2.INTER_CUBIC)
        paste(canvas, cv2.addWeighted(view.frame, 0.45, heat, 0.55, 0), L.UNIT)
    else:  # the input under the unit's receptive field, at its strongest position
        x0, y0, x1, y1 = field_box(view, unit_map)
        paste(canvas, view.frame[y0:y1, x0:x1], L.UNIT, cv2.INTER_CUBIC)
    r, c = strongest_position(unit_map)
    lines = [f"mean {unit_map.mean():.3f}   max {hi:.3f}{view.relu_side}", f"strongest at row {r}, column {c}",
             f"receptive field {view.receptive_field[0]} px, stride {view.receptive_field[1]}"]
    for i, line in enumerate(lines):
        text(canvas, line, L.UNIT_INFO.x, L.UNIT_INFO.y + 14 + 17 * i, TEXT if i == 0 else DIM, 0.42)


def draw_unit_image(canvas: np.ndarray, heading: str, image: np.ndarray | None, note: str) -> None:
    """The optimized-image pane: ``image`` (None: a placeholder) under ``heading``, with ``note``."""
    title(canvas, L.UNIT_IMAGE, heading)
    lines = note.split("\n")
    if image is not None:
        paste(canvas, image, L.UNIT_IMAGE, cv2.INTER_CUBIC)
        for i, line in enumerate(lines):
            text(canvas, line, L.UNIT_IMAGE_INFO.x, L.UNIT_IMAGE_INFO.y + 14 + 17 * i, DIM, 0.42)
    else:
        placeholder(canvas, L.UNIT_IMAGE, lines)


def draw_classes(canvas: np.ndarray, view: DashboardView) -> None:
    if not view.classifier:
        title(canvas, L.CLASSES, "classes")
        placeholder(canvas, L.CLASSES, ["features only", f"{view.network} has no classifier"])
        return
    title(canvas, L.CLASSES, "top classes")
    for i, (label, p) in enumerate(view.top[:5]):
        y = L.CLASSES.y + 4 + i * 21
        cv2.rectangle(canvas, (L.CLASSES.x, y), (L.CLASSES.x + int(p * L.CLASSES.w), y + 16), CLASS_BAR, -1)
        text(canvas, f"{p:5.1%}  {label[:34]}", L.CLASSES.x + 4, y + 13)


def draw_layers(canvas: np.ndarray, view: DashboardView) -> None:
    title(canvas, L.LAYERS, f"layers ({view.hint('next_layer')} / {view.hint('prev_layer')})")
    for i, index in enumerate(L.layer_rows(view.state.layer, len(view.layers))):
        name = view.layers[index]
        current = index == view.state.layer
        y = L.LAYERS.y + 12 + i * L.LAYER_ROW
        color = ACCENT if current else TEXT
        count = str(view.channels[index])
        width = cv2.getTextSize(count, FONT, 0.42, 1)[0][0]
        room = L.LAYERS.w - 60 - width - 12
        text(canvas, f"{'>' if current else ' '} {fitted(name, room, 0.42)}", L.LAYERS.x, y, color, 0.42)
        text(canvas, count, L.LAYERS.x + L.LAYERS.w - 60 - width, y, color, 0.42)


def draw_status(canvas: np.ndarray, view: DashboardView) -> None:
    s = view.state
    parts = [view.network, f"layer {view.layer} ({s.layer + 1}/{len(view.layers)})", f"unit {s.unit}",
             f"zoom {s.zoom_mode}", "camera" if s.camera else "files", "PAUSED" if s.paused else "running",
             f"net {view.net_fps:.1f} fps", f"ui {view.ui_fps:.0f} Hz" if view.ui_fps else "ui -",
             f"{view.hint('help')}: help"]
    fill(canvas[L.STATUS.y:], (45, 45, 52))
    text(canvas, "  |  ".join(parts), 10, L.STATUS.y + 17)
    if view.message:
        text(canvas, view.message, L.NOTES.x, L.NOTES.y + L.NOTES.h - 6, ACCENT, 0.42)


HELP_SCALE = 0.5


def help_box(lines: list[tuple[str, str]]) -> tuple[int, int, int]:
    """(width, height, where the meanings start) of the help overlay: wide enough for its
    longest line, at most the dashboard's width."""
    keys = max(cv2.getTextSize(k, FONT, HELP_SCALE, 1)[0][0] for k, _ in lines)
    meanings = max(cv2.getTextSize(m, FONT, HELP_SCALE, 1)[0][0] for _, m in lines)
    column = max(130, keys + 20)
    return min(L.WIDTH - 20, 20 + column + meanings + 20), 50 + 20 * len(lines), 20 + column


def draw_help(canvas: np.ndarray, view: DashboardView) -> None:
    lines = [*view.help_lines, ("", ""), ("mouse", "click a tile of the grid to select its unit")]
    w, h, column = help_box(lines)
    x, y = (L.WIDTH - w) // 2, max(0, (L.HEIGHT - h) // 2)
    region = canvas[y:y + h, x:x + w]
    region[:] = (region * 0.25).astype(np.uint8)
    cv2.rectangle(canvas, (x, y), (x + w - 1, y + min(h, L.HEIGHT - y) - 1), ACCENT, 1)
    text(canvas, "Keys", x + 20, y + 28, ACCENT, 0.55, bold=True)
    for i, (keys, meaning) in enumerate(lines):
        text(canvas, keys, x + 20, y + 52 + 20 * i, ACCENT, HELP_SCALE)
        text(canvas, meaning, x + column, y + 52 + 20 * i, TEXT, HELP_SCALE)


def new_canvas() -> np.ndarray:
    return np.empty((L.HEIGHT, L.WIDTH, 3), np.uint8)


CORE_PANES = {"input": draw_input, "grid": draw_grid}  # the window's panes that a mode may draw instead


def draw_dashboard(view: DashboardView, out: np.ndarray | None = None) -> np.ndarray:
    """The dashboard as RGB uint8 (HEIGHT, WIDTH, 3). With ``out`` (from ``new_canvas``) it
    is drawn into that buffer and the buffer returned: a loop that shows or saves each
    frame before drawing the next avoids fetching fresh memory for every frame. Each active
    mode draws the panes it owns (``DashboardView.owner``)."""
    canvas = new_canvas() if out is None else out
    fill(canvas, BACKGROUND)
    for pane, draw in CORE_PANES.items():
        if view.owner(pane) is None:
            draw(canvas, view)
    draw_classes(canvas, view)
    draw_layers(canvas, view)
    draw_unit(canvas, view)
    for mode, data in view.modes:
        mode.draw(canvas, view, data, view.hints)
    draw_status(canvas, view)
    if view.state.help:
        draw_help(canvas, view)
    return canvas
