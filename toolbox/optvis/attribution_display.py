"""How people look at an attribution map: the Deep Visualization Toolbox's filters and a
heat map over the input. Pure numpy (no TensorFlow, no files), so the window, the command
line and tests share one definition.

Filters (all give (H, W, 3) uint8):

- raw: the signed map, each channel as a colour, zero at mid grey;
- gray: the mean over channels, signed, zero at mid grey;
- norm: the per-pixel L2 norm over channels, black at zero;
- norm-blur: the norm blurred (DVT's ``grad_norm_blur_radius`` of 4 px at 227 px), which
  shows where the evidence lies rather than its texture (``evidence_heat``: the same as a
  heat map in [0, 1], to lay over the photo).

Maps are scaled by a high percentile of their magnitude rather than their maximum: a few
extreme pixels would otherwise leave the rest at grey.
"""

from __future__ import annotations

import numpy as np

from toolbox.settings import MAP_FILTERS

FILTERS = MAP_FILTERS
BLUR_SIGMA = 4.0 / 227.0  # DVT's blur radius, as a fraction of the image side
PERCENTILE = 99.5


def _scale(values: np.ndarray, percentile: float) -> float:
    scale = float(np.percentile(values, percentile)) if values.size else 0.0
    return scale if scale > 0 else float(values.max(initial=0.0))


def signed_to_uint8(values: np.ndarray, percentile: float = PERCENTILE) -> np.ndarray:
    """Signed values -> uint8, zero at 128 and +-(the percentile of |values|) at 255 / 0."""
    scale = _scale(np.abs(values), percentile)
    unit = np.clip(values / scale, -1.0, 1.0) if scale > 0 else np.zeros_like(values)
    return np.round(127.5 + 127.5 * unit).astype(np.uint8)


def magnitude_to_uint8(values: np.ndarray, percentile: float = PERCENTILE) -> np.ndarray:
    """Non-negative values -> uint8, zero black and the percentile at 255."""
    scale = _scale(values, percentile)
    unit = np.clip(values / scale, 0.0, 1.0) if scale > 0 else np.zeros_like(values)
    return np.round(255.0 * unit).astype(np.uint8)


def gaussian_blur(plane: np.ndarray, sigma: float) -> np.ndarray:
    """A 2-D array blurred by a separable Gaussian (edges reflected)."""
    if sigma <= 0:
        return plane
    r = max(1, int(np.ceil(3 * sigma)))
    taps = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    taps /= taps.sum()
    h, w = plane.shape
    padded = np.pad(plane.astype(np.float32), r, mode="reflect" if min(h, w) > r else "edge")
    rows = sum(t * padded[i:i + h, :] for i, t in enumerate(taps))
    return sum(t * rows[:, i:i + w] for i, t in enumerate(taps)).astype(np.float32)


def display(attribution_map: np.ndarray, filter: str = "raw", percentile: float = PERCENTILE) -> np.ndarray:
    """An (H, W, 3) map as an (H, W, 3) uint8 image by one of ``FILTERS``."""
    m = np.asarray(attribution_map, np.float32)
    if filter == "raw":
        return signed_to_uint8(m, percentile)
    if filter == "gray":
        plane = signed_to_uint8(m.mean(-1), percentile)
    elif filter in ("norm", "norm-blur"):
        norm = np.sqrt(np.square(m).sum(-1))
        if filter == "norm-blur":
            norm = gaussian_blur(norm, BLUR_SIGMA * max(norm.shape))
        plane = magnitude_to_uint8(norm, percentile)
    else:
        raise ValueError(f"unknown filter '{filter}' (use {', '.join(FILTERS)})")
    return np.repeat(plane[..., None], 3, axis=-1)


def evidence_heat(attribution_map: np.ndarray, percentile: float = PERCENTILE) -> np.ndarray:
    """(H, W, 3) map -> (H, W) in [0, 1]: where the evidence lies (the norm-blur filter's
    values), the heat a gradient-like map lays over the photo as Grad-CAM's does."""
    norm = np.sqrt(np.square(np.asarray(attribution_map, np.float32)).sum(-1))
    norm = gaussian_blur(norm, BLUR_SIGMA * max(norm.shape))
    return magnitude_to_uint8(norm, percentile).astype(np.float32) / 255.0


def heat_colors(heat: np.ndarray) -> np.ndarray:
    """(H, W) values in [0, 1] -> (H, W, 3) uint8 in the jet colour map (blue low, red high)."""
    v = np.clip(np.asarray(heat, np.float32), 0.0, 1.0)[..., None]
    rgb = np.clip(1.5 - np.abs(4.0 * v - np.array([3.0, 2.0, 1.0], np.float32)), 0.0, 1.0)
    return np.round(255.0 * rgb).astype(np.uint8)


def overlay(image: np.ndarray, heat: np.ndarray, opacity: float = 0.5) -> np.ndarray:
    """The heat map's colours over an RGB uint8 image of the same size."""
    if image.shape[:2] != heat.shape:
        raise ValueError(f"heat map {heat.shape} and image {image.shape[:2]} differ in size")
    mixed = (1.0 - opacity) * image.astype(np.float32) + opacity * heat_colors(heat).astype(np.float32)
    return np.round(mixed).astype(np.uint8)
