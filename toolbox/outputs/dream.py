"""`deepvis dream`: a dream of a photo written to an image file, and optionally a zoom video
(and GIF) in which each frame is dreamed from the zoomed-in previous one."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from toolbox.images import VideoWriter, ensure_min_side, resize, write_gif, write_image
from toolbox.nets import Network
from toolbox.optvis import DeepDream, DreamSchedule, Objective, guide
from toolbox.optvis.dream import octave_sizes
from toolbox.optvis.objectives import DREAM_OBJECTIVES
from toolbox.settings import DreamSettings

GIF_SIDE = 480  # GIF frames are scaled down to at most this side


def dream_objective(network: Network, layers: dict[str, float] | None, guide_image: np.ndarray | None,
                    kind: str = "l2"):
    """DeepDream on weighted layers (``kind``: l2 or abs-square, see DREAM_OBJECTIVES), or,
    with a guide image, towards the guide's features."""
    layers = {network.spec.layer(name).name: w for name, w in (layers or dict(network.spec.dream_layers)).items()}
    if guide_image is None:
        return DREAM_OBJECTIVES[kind](layers)
    acts = network.activations(network.fit_input(guide_image)[None], list(layers))
    return Objective.sum(w * guide(name, acts[name][0]) for name, w in layers.items())


def zoom_in(image: np.ndarray, factor: float) -> np.ndarray:
    """Crop the centre 1/factor of the image and scale it back to full size."""
    h, w = image.shape[:2]
    ch, cw = max(1, round(h / factor)), max(1, round(w / factor))
    y, x = (h - ch) // 2, (w - cw) // 2
    return resize(image[y:y + ch, x:x + cw], w, h)


def dream_frames(network: Network, image: np.ndarray, settings: DreamSettings, *, layers: dict[str, float] | None,
                 guide_image: np.ndarray | None, seed: int, zoom_frames: int = 0,
                 on_step: Callable[..., None] | None = None, dreamer: DeepDream | None = None) -> Iterator[np.ndarray]:
    """The dream of ``image`` (at the size it was dreamed: at least the network's smallest),
    then ``zoom_frames`` frames, each dreamed for one octave from the zoomed-in previous one:
    what the command and ``deepvis.dream`` both make, one frame at a time. ``dreamer``: one made
    earlier for the same objective (its steps compiled already)."""
    dreamer = dreamer or DeepDream(network, dream_objective(network, layers, guide_image, settings.objective))
    work = ensure_min_side(image, network.spec.min_size)
    schedule = DreamSchedule(settings.octaves, settings.octave_scale, settings.steps, settings.step_size,
                             settings.tile, seed)
    frame = dreamer.run(work, schedule, on_progress=on_step)
    yield frame
    for k in range(1, zoom_frames + 1):
        one_octave = DreamSchedule(1, settings.octave_scale, settings.steps, settings.step_size, settings.tile,
                                   seed + k)
        frame = dreamer.run(zoom_in(frame, settings.zoom), one_octave, on_progress=on_step)
        yield frame


def dream_steps(network: Network, image: np.ndarray, settings: DreamSettings, zoom_frames: int = 0) -> int:
    """How many steps ``dream_frames`` takes on ``image`` (for a progress bar)."""
    work = ensure_min_side(image, network.spec.min_size)
    octaves = len(octave_sizes(*work.shape[:2], settings.octaves, settings.octave_scale, network.spec.min_size))
    return (octaves + zoom_frames) * settings.steps


class DreamFiles:
    """Where `deepvis dream` writes the frames ``deepvis.dream`` hands over (``write(k, frame)``,
    each at the photo's size): frame 0 to ``output`` at once, and with ``zoom_frames`` every
    frame to OUTPUT.mp4 (and OUTPUT.gif) as it comes, so Ctrl-C during the video keeps the
    still and a playable MP4 of the frames made so far."""

    def __init__(self, output: str | Path, zoom_frames: int, fps: float, gif: bool) -> None:
        self.output, self.fps, self.gif = Path(output), fps, gif
        self.video = VideoWriter(self.output.with_suffix(".mp4"), fps) if zoom_frames else None
        self.gif_frames: list[np.ndarray] = []

    def write(self, k: int, frame: np.ndarray) -> None:
        if k == 0:
            write_image(self.output, frame)
        if self.video is None:
            return
        self.video.write(frame)
        if self.gif:
            h, w = frame.shape[:2]
            s = min(1.0, GIF_SIDE / max(h, w))
            self.gif_frames.append(resize(frame, max(1, round(w * s)), max(1, round(h * s))))

    def __enter__(self) -> "DreamFiles":
        if self.video is not None:
            self.video.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.video is not None:
            self.video.__exit__(*exc)
            if self.gif and self.gif_frames and exc[0] is None:  # a GIF of a whole video only
                write_gif(self.output.with_suffix(".gif"), self.gif_frames, self.fps)
