"""`deepvis attribute`: a class named as people name it, an attribution map written as an
image, and its heat map over the input beside it (OUT_overlay.png)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from toolbox.errors import UserError, closest
from toolbox.files import sibling_path
from toolbox.images import write_image
from toolbox.optvis.attribution import Attribution
from toolbox.optvis.attribution_display import display, evidence_heat, heat_colors, overlay
from toolbox.outputs.meanings import meaning

log = logging.getLogger(__name__)


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
    """A class by its number, by its label (any case; underscores and hyphens as spaces), by
    words inside one label ('egyptian' -> Egyptian cat), or, for the ImageNet labels, by the
    one class a WordNet noun stands for ('scooter' -> motor scooter, said in the log; see
    toolbox.outputs.meanings). A UserError otherwise: when the words are inside several
    labels or the noun covers several classes ('cat': tabby, tiger cat, ..., lion; 'bike':
    mountain bike, moped, ...; 'motorcycle': moped, and motor scooter nearest by meaning) it
    lists them with their numbers, else it names the classes nearest by meaning, the labels
    that contain the text, or those spelt alike."""
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
    sense = meaning(labels, wanted) if wanted else None  # WordNet, for the ImageNet labels only
    give = "give one of them (in quotes) or its number"
    if found:
        # the words of one label are its class unless the name means more ('bike': mountain bike, moped, ...)
        covered = sorted(set(found) | set(sense.beneath if sense else ()))
        if len(covered) == 1:
            return found[0]
        if len(covered) > len(found):
            raise UserError(f"class '{text[:60]}' covers {len(covered)} classes by meaning and by label: "
                            f"{_listing(labels, covered)}; {give}")
        raise UserError(f"class '{text[:60]}' is in {len(found)} labels: {_listing(labels, found)}; {give}")
    if sense is not None:
        near = f"; nearest by meaning: {_listing(labels, list(sense.near))}" if sense.near else ""
        if sense.stands_for is not None:
            log.info("%s: taking %s (%d), the class it means", text[:60], labels[sense.stands_for], sense.stands_for)
            return sense.stands_for
        if sense.beneath:
            count = f"{len(sense.beneath)} classes: " if len(sense.beneath) > 1 else ""
            raise UserError(f"class '{text[:60]}' is no label; by meaning it covers {count}"
                            f"{_listing(labels, list(sense.beneath))}{near}; {give}")
        raise UserError(f"unknown class '{text[:60]}' (nearest by meaning: {_listing(labels, list(sense.near))})")
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
