"""`deepvis attribute`: a class named as people name it, an attribution map written as an
image, and its heat map over the input beside it (OUT_overlay.png)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from toolbox.errors import UserError, closest
from toolbox.files import sibling_path
from toolbox.images import write_image
from toolbox.optvis.attribution import Attribution
from toolbox.optvis.attribution_display import display, evidence_heat, heat_colors, overlay


def _normalized(name: str) -> str:
    """Lower case, with underscores, hyphens and runs of spaces as one space and without
    apostrophes: 'Egyptian_cat' and 'egyptian  cat' name Egyptian cat, 'jack-o-lantern'
    names jack-o'-lantern."""
    return " ".join(re.split(r"[\s_-]+", name.lower().replace("'", ""))).strip()


def _words(name: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", _normalized(name))


def _listing(labels: tuple[str, ...] | list[str], found: list[int], most: int = 8) -> str:
    shown = ", ".join(f"{labels[i]} ({i})" for i in found[:most])
    return shown + (f" and {len(found) - most} more" if len(found) > most else "")


def class_index(labels: tuple[str, ...] | list[str], name_or_id: str) -> int:
    """A class by its number, by its label (any case; underscores and hyphens as spaces), or
    by words inside one label ('egyptian' -> Egyptian cat). A UserError otherwise: when the
    words are inside several labels it lists them with their numbers ('cat': tiger cat,
    Persian cat, ...), else it names the labels that contain the text or are spelt alike."""
    text = name_or_id.strip()
    if text.isdigit():
        if int(text) >= len(labels):
            raise UserError(f"class {text} is out of range (0..{len(labels) - 1})")
        return int(text)
    wanted = _normalized(text)
    found = [i for i, label in enumerate(labels) if _normalized(label) == wanted]
    if len(found) == 1:
        return found[0]
    if found:
        raise UserError(f"class '{text[:60]}' is one of several: {', '.join(map(str, found))}; give the number")
    words = _words(text)
    found = [i for i, label in enumerate(labels) if words and set(words) <= set(_words(label))]
    if len(found) == 1:
        return found[0]
    if found:
        raise UserError(f"class '{text[:60]}' is in {len(found)} labels: {_listing(labels, found)}; "
                        "give one of them (in quotes) or its number")
    found = [i for i, label in enumerate(labels) if wanted and wanted in _normalized(label)]
    if found:  # inside a word ('cat' in 'polecat'): suggest, never guess
        raise UserError(f"unknown class '{text[:60]}' (labels that contain it: {_listing(labels, found)})")
    # matching ignores case, so suggestions may too
    raise UserError(f"unknown class '{text[:60]}'{closest(wanted, [_normalized(label) for label in labels])}")


def attribution_images(attribution: Attribution, image: np.ndarray, filter: str) -> dict[str, np.ndarray]:
    """{"map": ..., "overlay": ...}: RGB uint8 images of the input's size. The overlay is the
    heat over the input: a CAM's own heat, or for a gradient-like map where its evidence lies
    (the norm-blur filter's values). A CAM's map is its heat in colour (the filters are for
    gradient-like maps)."""
    photo = np.asarray(image, np.uint8)
    if attribution.heat is None:
        return {"map": display(attribution.map, filter), "overlay": overlay(photo, evidence_heat(attribution.map))}
    return {"map": heat_colors(attribution.heat), "overlay": overlay(photo, attribution.heat)}


def attribution_to_files(attribution: Attribution, image: np.ndarray, output: str | Path, filter: str) -> list[Path]:
    """Write the map to ``output`` and its overlay beside it (OUT_overlay.png); returns the
    paths written."""
    images = attribution_images(attribution, image, filter)
    paths = {"map": Path(output), "overlay": sibling_path(output, "overlay")}
    for kind, picture in images.items():
        write_image(paths[kind], picture)
    return [paths[kind] for kind in images]
