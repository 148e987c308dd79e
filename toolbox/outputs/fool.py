"""`deepvis fool`: a fooled image written losslessly, the change made visible beside it, and
the network's verdict on the written file as read back (the check that counts)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ContextManager

import numpy as np

from toolbox.files import sibling_path
from toolbox.images import read_image, write_image
from toolbox.nets import Network
from toolbox.optvis.classes import Classifier
from toolbox.optvis.fooling import fool_from_noise, fool_photo, psnr
from toolbox.settings import FoolSettings

def amplified_change(fooled: np.ndarray, photo: np.ndarray, amplify: float) -> np.ndarray:
    """The change, ``amplify`` times larger, around mid-grey (grey: unchanged)."""
    diff = fooled.astype(np.float32) - photo.astype(np.float32)
    return np.clip(np.round(127.5 + amplify * diff), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class FoolReport:
    target: int
    before: np.ndarray | None  # probabilities on the photo (None from noise)
    after: np.ndarray  # probabilities on the written file, read back
    psnr: float | None  # dB against the photo (None from noise)
    max_change: int | None  # largest change of a pixel value, in levels of 255
    steps: int
    paths: tuple[Path, ...]

    @property
    def reached(self) -> float:
        return float(self.after[self.target])


def fool_to_files(network: Network, photo: np.ndarray | None, target: int, output: str | Path,
                  settings: FoolSettings, seed: int, progress: Callable[[int, str], ContextManager],
                  fit: str = "crop", max_pixels: int = 100_000_000) -> FoolReport:
    """With ``photo`` (the user's photo, any size): the bounded change at the photo's own size,
    made through the network's ``fit``; without: an image from noise (the network's input
    size). The verdict is taken on the file as written, read back and fitted as ``predict``
    reads and fits any photo."""
    classifier = Classifier(network)
    with progress(settings.steps, "fooling") as bar:
        if photo is None:
            fooled = fool_from_noise(network, [target], network.spec.input_size, settings.confidence,
                                     settings.steps, seed=seed, on_step=lambda: bar.update(1), classifier=classifier)
            image, steps = fooled.images[0], fooled.steps
        else:
            changed = fool_photo(network, photo, target, settings.epsilon, fit, settings.confidence, settings.steps,
                                 on_step=lambda: bar.update(1), classifier=classifier)
            image, steps = changed.image, changed.steps
    write_image(output, image)
    paths = [Path(output)]
    seen = read_image(output, max_pixels, needed_side=network.spec.input_size)  # read and fitted as predict does
    after = classifier(network.fit_input(seen, fit)[None])[0]
    if photo is None:
        return FoolReport(target, None, after, None, None, steps, tuple(paths))
    back = read_image(output, max_pixels)  # every pixel, for the change and its size
    write_image(sibling_path(output, "change"), amplified_change(back, photo, settings.amplify))
    paths.append(sibling_path(output, "change"))
    before = classifier(network.fit_input(photo, fit)[None])[0]
    max_change = int(np.abs(back.astype(np.int16) - photo.astype(np.int16)).max())
    return FoolReport(target, before, after, psnr(back, photo), max_change, steps, tuple(paths))
