"""`deepvis invert`: per layer an image whose features match the photo's there, and a sheet
of the photo and the inversions side by side, shallow to deep, each captioned with its
layer and relative feature error."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, ContextManager

import numpy as np

from toolbox.errors import UserError
from toolbox.files import sibling_path
from toolbox.images import write_image
from toolbox.nets import Network
from toolbox.optvis.inversion import Inversion, invert
from toolbox.settings import InvertSettings
from toolbox.sheets import contact_sheet


def layers_in_order(network: Network, text: str) -> list[str]:
    """'a,b' -> the spec's names for them (aliases resolved, unknown names a UserError),
    without repeats, shallow to deep."""
    names = {network.spec.layer(p.strip()).name for p in text.split(",") if p.strip()}
    if not names:
        raise UserError("--layers names no layer (see: deepvis layers)")
    return [n for n in network.spec.layer_names if n in names]


def invert_to_files(network: Network, photo: np.ndarray, layers: list[str], output: str | Path,
                    settings: InvertSettings, seed: int,
                    progress: Callable[[int, str], ContextManager]) -> tuple[list[Inversion], list[Path]]:
    """``photo``: the network's square input view. Writes OUT_<layer>.png per layer and the
    sheet to ``output``; returns the inversions and the paths written."""
    with progress(settings.steps * len(layers), f"inverting {len(layers)} layers") as bar:
        inversions = invert(network, photo, layers, settings.steps, settings.tv, seed=seed,
                            on_step=lambda: bar.update(1))
    paths = []
    for inv in inversions:
        paths.append(sibling_path(output, inv.layer))
        write_image(paths[-1], inv.image)
    captions = ["photo"] + [f"{inv.layer}\nerr {inv.relative_error:.3f}" for inv in inversions]
    write_image(output, contact_sheet([photo] + [inv.image for inv in inversions], captions,
                                      columns=len(inversions) + 1))
    return inversions, paths + [Path(output)]
