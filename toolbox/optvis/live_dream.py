"""DeepDream on a moving picture: a dream per frame that evolves instead of flickering.

Each frame starts from the previous frame's dream, carried to the new frame along the
optical flow between the two (OpenCV's Farneback: for every pixel of the new frame, where it
was in the previous one) and blended with the new frame; then a few ascent steps of the same
compiled gradient the dream command uses (``DeepDream``). A still scene therefore keeps its
dream and refines it, a moving one drags the dream along with what moves, and new content
fades in at the rate of the blend. OpenCV is used here as a numeric library only.
"""

from __future__ import annotations

import cv2
import numpy as np

from toolbox.nets import Network
from toolbox.optvis.dream import DeepDream
from toolbox.optvis.objectives import Objective
from toolbox.settings import LiveSettings

_DEFAULTS = LiveSettings()  # the one place for default numbers is toolbox.settings

# Farneback's parameters: pyramid scale, levels, window, iterations, poly_n, poly_sigma, flags
FLOW_PARAMS = (0.5, 3, 15, 3, 5, 1.2, 0)


def backward_flow(grey: np.ndarray, previous_grey: np.ndarray) -> np.ndarray:
    """(H, W, 2) offsets: pixel (x, y) of the new frame was at (x + dx, y + dy) in the previous one."""
    return cv2.calcOpticalFlowFarneback(grey, previous_grey, None, *FLOW_PARAMS)


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``image`` (of the previous frame) carried to the new frame along ``backward_flow``."""
    h, w = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(image, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def dream_size(height: int, width: int, side: int, min_side: int) -> tuple[int, int]:
    """(h, w) a frame is dreamed at: the longer side at most ``side``, the shorter at least
    ``min_side`` (the network's smallest input)."""
    s = min(1.0, side / max(height, width))
    s = max(s, min_side / min(height, width))
    return max(min_side, round(height * s)), max(min_side, round(width * s))


class LiveDream:
    """Feed it frames in order; it returns each one's dream (RGB uint8, at ``dream_size``)."""

    def __init__(self, network: Network, objective: Objective, steps: int = _DEFAULTS.dream_steps,
                 step_size: float = _DEFAULTS.dream_step_size, blend: float = _DEFAULTS.dream_blend,
                 side: int = _DEFAULTS.dream_side, seed: int = 0, dreamer: DeepDream | None = None) -> None:
        self.network = network
        self.dreamer = dreamer or DeepDream(network, objective)
        self.steps, self.step_size, self.blend, self.side = steps, step_size, blend, side
        self._rng = np.random.default_rng(seed)
        self._grey: np.ndarray | None = None
        self._dream: np.ndarray | None = None  # float32 (h, w, 3) in [0, 255]

    def reset(self) -> None:
        """Forget the previous dream: the next frame starts afresh."""
        self._grey = self._dream = None

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        h, w = dream_size(*frame.shape[:2], self.side, self.network.spec.min_size)
        small = frame if frame.shape[:2] == (h, w) else cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        base = small.astype(np.float32)
        if self._dream is not None and self._dream.shape[:2] == (h, w):
            carried = warp(self._dream, backward_flow(grey, self._grey))
            dream = self.blend * carried + (1.0 - self.blend) * base
        else:
            dream = base
        self._dream, self._grey = self.refine(dream), grey
        return np.clip(np.round(self._dream), 0, 255).astype(np.uint8)

    def refine(self, dream: np.ndarray) -> np.ndarray:
        """``steps`` normalized ascent steps, each on a randomly rolled copy (rolled back)."""
        h, w = dream.shape[:2]
        step = self.step_size * 255.0
        tile = self.network.spec.input_size if self.network.fixed_input else max(h, w)  # see DeepDream.run
        max_shift = min(h, w) // 8
        for _ in range(self.steps):
            dy, dx = self._rng.integers(-max_shift, max_shift + 1, size=2)
            _, grad = self.dreamer.tiled_gradient(np.roll(dream, (dy, dx), axis=(0, 1)), tile)
            grad = np.roll(grad, (-dy, -dx), axis=(0, 1))
            dream = np.clip(dream + grad * (step / (np.abs(grad).mean() + 1e-8)), 0.0, 255.0)
        return dream.astype(np.float32)
