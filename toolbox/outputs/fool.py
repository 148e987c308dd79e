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
from toolbox.optvis.fooling import fool_from_noise, fool_photos, psnr
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
                  settings: FoolSettings, seed: int, progress: Callable[[int, str], ContextManager]) -> FoolReport:
    """With ``photo`` (the network's square input view): the bounded change; without: an
    image from noise. The verdict is taken on the file as written and read back."""
    classifier = Classifier(network)
    with progress(settings.steps, "fooling") as bar:
        if photo is None:
            fooled = fool_from_noise(network, [target], network.spec.input_size, settings.confidence,
                                     settings.steps, seed=seed, on_step=lambda: bar.update(1), classifier=classifier)
        else:
            fooled = fool_photos(network, photo[None], [target], settings.epsilon, settings.confidence,
                                 settings.steps, on_step=lambda: bar.update(1), classifier=classifier)
    image = fooled.images[0]
    write_image(output, image)
    paths = [Path(output)]
    back = read_image(output)
    after = classifier(back[None])[0]
    if photo is None:
        return FoolReport(target, None, after, None, None, fooled.steps, tuple(paths))
    write_image(sibling_path(output, "change"), amplified_change(back, photo, settings.amplify))
    paths.append(sibling_path(output, "change"))
    before = classifier(photo[None])[0]
    max_change = int(np.abs(back.astype(np.int16) - photo.astype(np.int16)).max())
    return FoolReport(target, before, after, psnr(back, photo), max_change, fooled.steps, tuple(paths))
