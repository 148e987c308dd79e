"""Behaviour on the real lite0 network: unit images drive their units, dreams raise their objective."""

import numpy as np
import pytest

from conftest import dream_at_defaults

from toolbox.assets.quality import measure_unit_images
from toolbox.optvis import Ascent, channel, get_preset
from toolbox.settings import Settings

UNITS = {"block9_add": [0, 13, 27, 41, 55, 69, 83, 97], "block13_add": [2, 26, 50, 74, 98, 122, 146, 170]}


@pytest.fixture(scope="module")
def unit_quality(lite0, photos):
    defaults = Settings().units
    results = []
    for layer, units in UNITS.items():
        preset = get_preset(defaults.preset)
        rendered = Ascent(lite0, channel(layer), preset).run(units, defaults.size, preset.steps, seed=0)
        results += measure_unit_images(lite0, layer, units, rendered.images, list(photos.values()))
    return results


def test_unit_images_are_selective(unit_quality):
    selective = np.mean([q.selective for q in unit_quality])
    print(f"\nselectivity over {len(unit_quality)} units: {selective:.3f}")
    assert len(unit_quality) >= 16 and selective >= 0.9


def test_unit_images_drive_units_3x_harder_than_any_photo(unit_quality):
    ratios = [q.ratio for q in unit_quality]
    finite = [r for r in ratios if np.isfinite(r)]
    print(f"\nratio median {np.median(finite):.1f}, min {min(ratios):.1f}")
    assert min(ratios) >= 3.0, [(q.unit, q.value, q.best_photo_value) for q in unit_quality]


def test_dream_raises_objective_2x_with_defaults(lite0, photos):
    image = photos["chelsea"]
    out, before, after = dream_at_defaults(lite0, image)
    print(f"\ndream objective {before:.1f} -> {after:.1f}")
    assert out.shape == image.shape and after >= 2.0 * before
