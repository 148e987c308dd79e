"""Jobs that turn the engine's results into files: unit images for whole layers, dreams."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable, ContextManager, Sequence

import numpy as np

from toolbox.assets.unit_images import UnitImageFolder
from toolbox.images import VideoWriter, ensure_min_side, resize, write_gif, write_image
from toolbox.nets import Network
from toolbox.optvis import Ascent, DeepDream, DreamSchedule, Objective, channel, deepdream, get_preset, guide
from toolbox.optvis.dream import octave_sizes


def render_unit_images(network: Network, layer: str, units: Sequence[int], folder: UnitImageFolder,
                       preset: str, size: int, steps: int, batch: int, seed: int = 0,
                       on_step: Callable[[], None] | None = None) -> dict[int, float]:
    """Optimize one image per unit (``batch`` at a time) and store each batch as it finishes,
    so an interrupted job keeps what it made. Returns {unit: objective reached}."""
    for unit in units:
        network.check_unit(layer, unit)
    ascent = Ascent(network, channel(layer), get_preset(preset))
    results: dict[int, float] = {}
    images = []
    for start in range(0, len(units), batch):
        chunk = list(units[start:start + batch])
        rendered = ascent.run(chunk, size, steps, seed=seed + start,
                              on_step=(lambda *_: on_step()) if on_step else None)
        for unit, image, value in zip(chunk, rendered.images, rendered.objective):
            folder.save(layer, unit, image)
            results[unit] = float(value)
            images.append(image)
        folder.record(network.name, layer, {u: results[u] for u in chunk}, preset=preset, size=size, steps=steps)
    folder.save_sheet(layer, list(units), images)
    return results


def zoom_in(image: np.ndarray, factor: float) -> np.ndarray:
    """Crop the centre 1/factor of the image and scale it back to full size."""
    h, w = image.shape[:2]
    ch, cw = max(1, round(h / factor)), max(1, round(w / factor))
    y, x = (h - ch) // 2, (w - cw) // 2
    return resize(image[y:y + ch, x:x + cw], w, h)


def dream_objective(network: Network, layers: dict[str, float] | None, guide_image: np.ndarray | None):
    """DeepDream on weighted layers, or, with a guide image, towards the guide's features."""
    layers = layers or dict(network.spec.dream_layers)
    for name in layers:
        network.spec.layer(name)
    if guide_image is None:
        return deepdream(layers)
    guide_input = network.fit_input(guide_image)[None].astype(np.float32)
    acts = network.submodel(list(layers))(network.normalize(guide_input))
    return Objective.sum(w * guide(name, np.asarray(acts[name][0])) for name, w in layers.items())


def dream_to_files(network: Network, image: np.ndarray, output: str | Path, *, layers: dict[str, float] | None,
                   guide_image: np.ndarray | None, octaves: int, octave_scale: float, steps: int,
                   step_size: float, tile: int, seed: int, zoom_frames: int, zoom: float, fps: int, gif: bool,
                   progress: Callable[[int, str], ContextManager]) -> None:
    """Dream on ``image`` into ``output`` (same size); with ``zoom_frames``, also a zoom video
    (and GIF) beside it, each frame dreamed for one octave from the zoomed previous one."""
    dreamer = DeepDream(network, dream_objective(network, layers, guide_image))
    h, w = image.shape[:2]
    work = ensure_min_side(image, network.spec.min_size)
    schedule = DreamSchedule(octaves, octave_scale, steps, step_size, tile, seed)
    n_octaves = len(octave_sizes(*work.shape[:2], octaves, octave_scale, network.spec.min_size))
    with progress(n_octaves * steps + zoom_frames * steps, "dream") as bar:
        tick = lambda *_: bar.update(1)  # noqa: E731
        frame = dreamer.run(work, schedule, on_progress=tick)
        write_image(output, resize(frame, w, h))
        if not zoom_frames:
            return
        out = Path(output)
        gif_frames = []
        with VideoWriter(out.with_suffix(".mp4"), fps) as video:
            for k in range(zoom_frames + 1):
                if k:
                    frame = dreamer.run(zoom_in(frame, zoom), replace(schedule, octaves=1, seed=seed + k),
                                        on_progress=tick)
                video.write(resize(frame, w, h))
                if gif:
                    s = min(1.0, 480 / max(h, w))
                    gif_frames.append(resize(frame, max(1, round(w * s)), max(1, round(h * s))))
        if gif:
            write_gif(out.with_suffix(".gif"), gif_frames, fps)
