"""Drawing the dashboard: an immutable DashboardView in, an RGB image out.

Pure numpy + OpenCV drawing (no window, no TensorFlow), so the window, the headless
recorder and the tests all draw the same thing.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from toolbox.app import layout as L
from toolbox.app.layout import Rect, grid_geometry
from toolbox.app.state import ViewState

if TYPE_CHECKING:  # drawing needs no TensorFlow, only the observation's arrays
    from toolbox.app.worker import BackpropRequest, CircuitInputs, CircuitRequest, GradientImage, UnitCrops
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
    state: ViewState
    network: str
    layers: tuple[str, ...]
    channels: tuple[int, ...]
    frame: np.ndarray | None  # the network's square input
    observation: "Observation | None"
    top: tuple[tuple[str, float], ...]  # top classes of the observation
    receptive_field: tuple[int, int]  # (size, stride) of the current layer, input pixels
    unit_image: np.ndarray | None
    unit_image_note: str
    net_fps: float
    ui_fps: float
    source: str
    message: str = ""
    help_lines: tuple[tuple[str, str], ...] = ()  # (keys, what they do)
    signed: bool = False  # the current layer has negative values: drawn centred on zero
    crops: "UnitCrops | None" = None  # the selected unit's natural exemplars, when known
    patterns: dict | None = None  # pattern mode: unit -> optimized image of the current layer
    backprop: "BackpropRequest | None" = None  # what the gradient pane wants now; None: it is off
    gradient: "GradientImage | None" = None  # the newest map the worker made (maybe of an older request)
    dream: np.ndarray | None = None  # dream mode: the dream of the frame, fitted like ``frame``
    dream_note: str = ""  # what dreams, for the input pane's title
    circuit_want: "CircuitRequest | None" = None  # what the circuit view wants now (None: off, or no inputs)
    circuit: "CircuitInputs | None" = None  # the newest inputs the worker sent (maybe of an older request)
    classifier: bool = True  # False: the network ends at its features; the classes pane says so
    unit_image_title: str = "optimized image"  # or what accentuation mode shows there

    @property
    def layer(self) -> str:
        return self.layers[self.state.layer]

    @property
    def activations(self) -> np.ndarray | None:
        return None if self.observation is None else self.observation.activations[self.layer]


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
    their end says most)."""
    cut = 0
    while cut < len(s) and cv2.getTextSize((".." if cut else "") + s[cut:], FONT, scale, 1)[0][0] > width:
        cut += 1
    return (".." if cut else "") + s[cut:]


def title(canvas: np.ndarray, rect: Rect, s: str) -> None:
    text(canvas, s, rect.x, rect.y - 8, DIM, 0.45)


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


def draw_input(canvas: np.ndarray, view: DashboardView) -> None:
    if view.state.dream:
        title(canvas, L.INPUT, f"dream: {view.dream_note}" if view.dream is not None else "dream: starting...")
    else:
        title(canvas, L.INPUT, f"input: {view.source}")
    if view.frame is None:
        placeholder(canvas, L.INPUT, ["waiting for the first frame..."])
        return
    paste(canvas, view.dream if view.state.dream and view.dream is not None else view.frame, L.INPUT)
    acts = view.activations
    if acts is not None:
        x0, y0, x1, y1 = field_box(view, acts[..., view.state.unit])
        s = L.INPUT.w / view.frame.shape[0]
        cv2.rectangle(canvas, (L.INPUT.x + int(x0 * s), L.INPUT.y + int(y0 * s)),
                      (L.INPUT.x + int(x1 * s) - 1, L.INPUT.y + int(y1 * s) - 1), SELECT, 2)


def draw_grid(canvas: np.ndarray, view: DashboardView) -> None:
    channels = view.channels[view.state.layer]
    title(canvas, L.GRID, f"layer {view.layer}: {channels} channels")
    acts = view.activations
    if acts is None:
        placeholder(canvas, L.GRID, ["loading the network..."])
        return
    s = view.state
    if s.pattern:
        grid = pattern_grid(view.patterns or {}, channels, s.unit)
        info = ("pattern mode: optimized images" + ("" if view.patterns is not None else " (loading...)")
                + f", {len(view.patterns or {})} of {channels} made (p: activations)")
    else:
        grid = activation_grid(acts, s.unit, mode=s.scale_mode, signed=view.signed)
        info = (f"{acts.shape[0]}x{acts.shape[1]} per channel, scale: {s.scale_mode} (a)"
                + (", signed: red +, blue -, white 0" if view.signed else ""))
    canvas[L.GRID.y:L.GRID.y + L.GRID.h, L.GRID.x:L.GRID.x + L.GRID.w] = grid
    geo = grid_geometry(channels)
    if geo.pages > 1:
        page = geo.page_of(view.state.unit)
        info += (f"   page {page + 1}/{geo.pages}: units {page * geo.per_page}-"
                 f"{min(channels, (page + 1) * geo.per_page) - 1}")
    text(canvas, info, L.GRID_INFO.x, L.GRID_INFO.y + 14, DIM, 0.42)


def draw_unit(canvas: np.ndarray, view: DashboardView) -> None:
    unit, mode = view.state.unit, view.state.zoom_mode
    title(canvas, L.UNIT, f"unit {unit} ({mode})")
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
    lines = [f"mean {unit_map.mean():.3f}   max {hi:.3f}", f"strongest at row {r}, column {c}",
             f"receptive field {view.receptive_field[0]} px, stride {view.receptive_field[1]}"]
    for i, line in enumerate(lines):
        text(canvas, line, L.UNIT_INFO.x, L.UNIT_INFO.y + 14 + 17 * i, TEXT if i == 0 else DIM, 0.42)


def draw_unit_image(canvas: np.ndarray, view: DashboardView) -> None:
    title(canvas, L.UNIT_IMAGE, view.unit_image_title)
    lines = view.unit_image_note.split("\n")
    if view.unit_image is not None:
        paste(canvas, view.unit_image, L.UNIT_IMAGE, cv2.INTER_CUBIC)
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
    title(canvas, L.LAYERS, "layers (o / u)")
    rows = L.LAYERS.h // 15
    first = min(max(0, view.state.layer - rows // 2), max(0, len(view.layers) - rows))
    for i, name in enumerate(view.layers[first:first + rows]):
        index = first + i
        current = index == view.state.layer
        y = L.LAYERS.y + 12 + i * 15
        color = ACCENT if current else TEXT
        count = str(view.channels[index])
        width = cv2.getTextSize(count, FONT, 0.42, 1)[0][0]
        room = L.LAYERS.w - 60 - width - 12
        text(canvas, f"{'>' if current else ' '} {fitted(name, room, 0.42)}", L.LAYERS.x, y, color, 0.42)
        text(canvas, count, L.LAYERS.x + L.LAYERS.w - 60 - width, y, color, 0.42)


def circuit_title(canvas: np.ndarray, request: "CircuitRequest", stale: bool = False) -> None:
    """The unit explained and where its inputs come from ("..." while a newer one is on its way);
    long layer names shrink the text rather than run into the next column."""
    s = f"circuit: {request.layer} {request.unit} <- {request.source}" + (" ..." if stale else "")
    width = cv2.getTextSize(s, FONT, 0.45, 1)[0][0]
    text(canvas, s, L.CROPS.x, L.CROPS.y - 8, DIM, 0.45 * min(1.0, L.CROPS.w / width))


def draw_circuit(canvas: np.ndarray, view: DashboardView) -> None:
    """The crops pane's circuit mode: the explained unit's strongest inputs, each a thumbnail
    (its optimized image or top crop; else its map on this frame) over its unit and share."""
    want, shown, s = view.circuit_want, view.circuit, view.state
    if want is None:
        title(canvas, L.CROPS, "circuit")
        placeholder(canvas, L.CROPS, ["the first layer has no earlier layer", "to draw its inputs from"])
        return
    if shown is None:
        circuit_title(canvas, want)
        placeholder(canvas, L.CROPS, ["measuring its inputs...", "(compiled once: a few seconds)"])
        return
    circuit_title(canvas, shown.request, stale=shown.request != want)
    maps = None if view.observation is None else view.observation.activations.get(shown.request.source)
    signed = maps is not None and bool((maps < 0).any())
    for cell in range(sum(L.CIRCUIT_ROW)):
        r = L.circuit_cell(cell)
        k = shown.at(cell)
        x, y = r.x + (r.w - L.CIRCUIT_THUMB) // 2, r.y + 2
        box = Rect(x, y, L.CIRCUIT_THUMB, L.CIRCUIT_THUMB)
        if k is None:
            cv2.rectangle(canvas, (x, y), (x + box.w - 1, y + box.h - 1), (60, 60, 68), 1)
            continue
        link, thumb = shown.links[k], shown.thumbnails[k]
        if thumb is not None:
            paste(canvas, thumb[0], box)
        elif maps is not None:  # its map on this frame, as the grid draws it
            paste(canvas, apply_lut(grid_levels(maps[..., link.unit:link.unit + 1], "channel", signed)[0], signed),
                  box, cv2.INTER_NEAREST)
        if cell == s.circuit_pick:
            cv2.rectangle(canvas, (x - 2, y - 2), (x + box.w + 1, y + box.h + 1), SELECT, 2)
        color = (255, 170, 90) if link.contribution > 0 else (120, 170, 255)
        text(canvas, f"{link.unit}", x, y + box.h + 15, TEXT, 0.42)
        text(canvas, f"{link.share:+.1%}", x, y + box.h + 31, color, 0.42)
    n = L.CIRCUIT_NOTES
    path = f", path {len(s.path)}" if s.path else ""
    lines = [(f"value {shown.value:.3g} (before ReLU)", TEXT), ("share of all |contributions|;", DIM),
             ("top row excites, this row inhibits", DIM), (f"Tab next, Enter go, Bksp back{path}", DIM),
             ("f from further back, v crops", DIM)]
    for i, (line, color) in enumerate(lines):
        text(canvas, line, n.x, n.y + 14 + 16 * i, color, 0.4)


def draw_crops(canvas: np.ndarray, view: DashboardView) -> None:
    if view.state.circuit:
        draw_circuit(canvas, view)
        return
    lowest = view.state.lowest
    title(canvas, L.CROPS, f"{'lowest' if lowest else 'top'} image crops of unit {view.state.unit} "
                           f"(t: {'top' if lowest else 'lowest'})")
    crops = view.crops
    if crops is None:
        placeholder(canvas, L.CROPS, ["shown when the selection rests"])
        return
    side = crops.lowest if lowest else crops.top
    if side is None or not len(side[1]):
        hint = ("this layer has no negative values" if lowest and crops.top is not None else
                "none yet: deepvis crops --images FOLDER")
        placeholder(canvas, L.CROPS, [hint])
        return
    cell = L.CROPS.h // 3
    montage = crops_montage(*side, cell)
    canvas[L.CROPS.y:L.CROPS.y + montage.shape[0], L.CROPS.x:L.CROPS.x + montage.shape[1]] = montage
    if not lowest and crops.backprop is not None:  # beside them, what in each crop made the unit fire
        maps = crops_montage(crops.backprop, side[1], cell)
        x = L.CROPS.x + montage.shape[1] + 8
        canvas[L.CROPS.y:L.CROPS.y + maps.shape[0], x:x + maps.shape[1]] = maps
        text(canvas, "their backprop", x + maps.shape[1] + 8, L.CROPS.y + 14, DIM, 0.4)
        return
    x = L.CROPS.x + montage.shape[1] + 12
    text(canvas, f"{len(side[1])} {'lowest' if lowest else 'strongest'} images", x, L.CROPS.y + 14, TEXT, 0.42)
    text(canvas, "value = the unit's " + ("minimum" if lowest else "maximum"), x, L.CROPS.y + 32, DIM, 0.4)
    text(canvas, "each: the input under the unit's", x, L.CROPS.y + 50, DIM, 0.4)
    text(canvas, "receptive field at that position", x, L.CROPS.y + 66, DIM, 0.4)


FILTER_NOTES = {"raw": "signed, per colour channel; grey is 0", "gray": "signed, channels averaged; grey is 0",
                "norm": "the map's size per pixel; black is 0", "norm-blur": "its size per pixel, blurred: where"}


def gradient_title(canvas: np.ndarray, request: "BackpropRequest", frozen: bool) -> None:
    """Method, filter and the unit explained, in the accent colour while frozen (the pane
    then explains another layer than the grid's, which should not go unnoticed); a long
    layer name shrinks the text rather than run into the next column."""
    s = f"{request.rule} ({request.filter}): {request.layer} unit {request.unit}" + (" frozen" if frozen else "")
    width = cv2.getTextSize(s, FONT, 0.45, 1)[0][0]
    scale = 0.45 * min(1.0, (L.GRADIENT.w + 15) / width)
    text(canvas, s, L.GRADIENT.x, L.GRADIENT.y - 8, ACCENT if frozen else DIM, scale)


def draw_gradient(canvas: np.ndarray, view: DashboardView) -> None:
    """The explained unit's map for the newest frame, as the worker made it visible. The
    title names the map shown, so a map still on its way says which one is on screen."""
    want, shown, frozen = view.backprop, view.gradient, view.state.frozen is not None
    if want is None:
        title(canvas, L.GRADIENT, "gradient image: off (b)")
        placeholder(canvas, L.GRADIENT, ["b: what in this frame drives", "the selected unit, by gradient,",
                                         "guided backprop or deconv"])
        return
    if shown is None:
        gradient_title(canvas, want, frozen)
        placeholder(canvas, L.GRADIENT, ["computing the first map...", "(compiled once: a few seconds)"])
        return
    gradient_title(canvas, shown.request, frozen)
    paste(canvas, shown.image, L.GRADIENT)
    lines = [f"score {shown.score:.3f} (its max, before ReLU)" + ("" if shown.request == want else " ..."),
             FILTER_NOTES.get(shown.request.filter, ""),
             "b method, n filter, d " + ("unfreeze" if frozen else "freeze")]
    for i, line in enumerate(lines):
        text(canvas, line, L.GRADIENT_INFO.x, L.GRADIENT_INFO.y + 14 + 17 * i, TEXT if i == 0 else DIM, 0.42)


def draw_status(canvas: np.ndarray, view: DashboardView) -> None:
    s = view.state
    parts = [view.network, f"layer {view.layer} ({s.layer + 1}/{len(view.layers)})", f"unit {s.unit}",
             f"zoom {s.zoom_mode}", "camera" if s.camera else "files", "PAUSED" if s.paused else "running",
             f"net {view.net_fps:.1f} fps", f"ui {view.ui_fps:.0f} Hz" if view.ui_fps else "ui -", "h: help"]
    fill(canvas[L.STATUS.y:], (45, 45, 52))
    text(canvas, "  |  ".join(parts), 10, L.STATUS.y + 17)
    if view.message:
        text(canvas, view.message, L.NOTES.x, L.NOTES.y + L.NOTES.h - 6, ACCENT, 0.42)


def draw_help(canvas: np.ndarray, view: DashboardView) -> None:
    lines = [*view.help_lines, ("", ""), ("mouse", "click a tile of the grid to select its unit")]
    w, h = 600, 50 + 20 * len(lines)
    x, y = (L.WIDTH - w) // 2, (L.HEIGHT - h) // 2
    region = canvas[y:y + h, x:x + w]
    region[:] = (region * 0.25).astype(np.uint8)
    cv2.rectangle(canvas, (x, y), (x + w - 1, y + h - 1), ACCENT, 1)
    text(canvas, "Keys", x + 20, y + 28, ACCENT, 0.55, bold=True)
    for i, (keys, meaning) in enumerate(lines):
        text(canvas, keys, x + 20, y + 52 + 20 * i, ACCENT, 0.5)
        text(canvas, meaning, x + 150, y + 52 + 20 * i, TEXT, 0.5)


def new_canvas() -> np.ndarray:
    return np.empty((L.HEIGHT, L.WIDTH, 3), np.uint8)


def draw_dashboard(view: DashboardView, out: np.ndarray | None = None) -> np.ndarray:
    """The dashboard as RGB uint8 (HEIGHT, WIDTH, 3). With ``out`` (from ``new_canvas``) it
    is drawn into that buffer and the buffer returned: a loop that shows or saves each
    frame before drawing the next avoids fetching fresh memory for every frame."""
    canvas = new_canvas() if out is None else out
    fill(canvas, BACKGROUND)
    draw_input(canvas, view)
    draw_classes(canvas, view)
    draw_layers(canvas, view)
    draw_grid(canvas, view)
    draw_unit(canvas, view)
    draw_unit_image(canvas, view)
    draw_crops(canvas, view)
    draw_gradient(canvas, view)
    draw_status(canvas, view)
    if view.state.help:
        draw_help(canvas, view)
    return canvas
