"""`deepvis dream`: a dream of a photo written to an image file, and optionally a zoom video
(and GIF) in which each frame is dreamed from the zoomed-in previous one."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, ContextManager

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


def dream_once(network: Network, image: np.ndarray, settings: DreamSettings, *, layers: dict[str, float] | None,
               guide_image: np.ndarray | None, seed: int, on_step: Callable[..., None] | None = None,
               dreamer: DeepDream | None = None):
    """(the dream of ``image`` at the size it was dreamed, the DeepDream that made it): what the
    command and ``deepvis.dream`` both make; the dream is at least the network's smallest size.
    ``dreamer``: one made earlier for the same objective (its steps compiled already)."""
    dreamer = dreamer or DeepDream(network, dream_objective(network, layers, guide_image, settings.objective))
    work = ensure_min_side(image, network.spec.min_size)
    schedule = DreamSchedule(settings.octaves, settings.octave_scale, settings.steps, settings.step_size,
                             settings.tile, seed)
    return dreamer.run(work, schedule, on_progress=on_step), dreamer


def dream_steps(network: Network, image: np.ndarray, settings: DreamSettings) -> int:
    """How many steps ``dream_once`` takes on ``image`` (for a progress bar)."""
    work = ensure_min_side(image, network.spec.min_size)
    return len(octave_sizes(*work.shape[:2], settings.octaves, settings.octave_scale, network.spec.min_size)) * \
        settings.steps


def dream_to_files(network: Network, image: np.ndarray, output: str | Path, settings: DreamSettings, *,
                   layers: dict[str, float] | None, guide_image: np.ndarray | None, seed: int, zoom_frames: int,
                   gif: bool, progress: Callable[[int, str], ContextManager]) -> None:
    """Dream on ``image`` into ``output`` (same size); with ``zoom_frames``, also OUTPUT.mp4
    (and OUTPUT.gif), each frame dreamed for one octave from the zoomed previous one. Ctrl-C
    during the video keeps the frames made so far (a playable MP4)."""
    h, w = image.shape[:2]
    with progress(dream_steps(network, image, settings) + zoom_frames * settings.steps, "dream") as bar:
        tick = lambda *_: bar.update(1)  # noqa: E731
        frame, dreamer = dream_once(network, image, settings, layers=layers, guide_image=guide_image, seed=seed,
                                    on_step=tick)
        write_image(output, resize(frame, w, h))
        if not zoom_frames:
            return
        out = Path(output)
        gif_frames = []
        with VideoWriter(out.with_suffix(".mp4"), settings.fps) as video:
            for k in range(zoom_frames + 1):
                if k:
                    one_octave = DreamSchedule(1, settings.octave_scale, settings.steps, settings.step_size,
                                               settings.tile, seed + k)
                    frame = dreamer.run(zoom_in(frame, settings.zoom), one_octave, on_progress=tick)
                video.write(resize(frame, w, h))
                if gif:
                    s = min(1.0, GIF_SIDE / max(h, w))
                    gif_frames.append(resize(frame, max(1, round(w * s)), max(1, round(h * s))))
        if gif:
            write_gif(out.with_suffix(".gif"), gif_frames, settings.fps)
