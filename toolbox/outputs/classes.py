"""`deepvis classes`: one optimized image per class, written as each batch finishes, and a
labelled contact sheet (each caption says how sure the network is of its own image)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, ContextManager

from toolbox.errors import UserError
from toolbox.images import write_image
from toolbox.nets import Network
from toolbox.optvis.classes import ClassImages, class_images
from toolbox.outputs.attribution import class_index
from toolbox.settings import ClassImageSettings
from toolbox.sheets import contact_sheet

SHEET_NAME = "classes_sheet.png"


def parse_classes(labels: tuple[str, ...] | list[str], text: str) -> list[int]:
    """'magpie,tarantula,17' -> class numbers, in the order given, without repeats; names
    match labels in any case (a miss is a UserError that suggests the nearest labels)."""
    found: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        index = class_index(labels, part)
        if index not in found:
            found.append(index)
    if not found:
        raise UserError("--classes names no class (use e.g. \"magpie,tarantula,17\")")
    return found


def slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")[:40] or "class"


def image_path(folder: str | Path, index: int, label: str) -> Path:
    return Path(folder) / f"class_{index:04d}_{slug(label)}.png"


def classes_to_files(network: Network, classes: list[int], folder: str | Path, settings: ClassImageSettings,
                     seed: int, progress: Callable[[int, str], ContextManager]) -> tuple[ClassImages, list[Path]]:
    """Images of ``classes`` into ``folder`` (each batch stored as it finishes, so Ctrl-C
    keeps them) and the sheet; returns the images with the network's verdict and the paths."""
    labels = network.labels
    paths = [image_path(folder, c, labels[c]) for c in classes]

    def store(chunk: list[int], images) -> None:
        for c, image in zip(chunk, images):
            write_image(image_path(folder, c, labels[c]), image)

    batches = -(-len(classes) // settings.batch)
    with progress(settings.steps * batches, f"{len(classes)} classes") as bar:
        result = class_images(network, classes, settings.preset, settings.size, settings.steps, settings.batch,
                              seed, on_step=lambda: bar.update(1), on_batch=store)
    captions = [f"{c} p={p[c]:.2f}\n{labels[c]}" for c, p in zip(classes, result.probabilities)]
    sheet = Path(folder) / SHEET_NAME
    write_image(sheet, contact_sheet(list(result.images), captions))
    return result, paths + [sheet]
