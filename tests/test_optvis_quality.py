"""Behaviour on the real lite0 network: unit images drive their units, dreams raise their objective."""

import numpy as np
import pytest

from conftest import dream_at_defaults

from toolbox.assets.quality import measure_unit_images
from toolbox.optvis.presets import unit_recipe
from toolbox.settings import Settings

UNITS = {"block9_add": [0, 13, 27, 41, 55, 69, 83, 97], "block13_add": [2, 26, 50, 74, 98, 122, 146, 170]}


def made_as_units_makes_them(net, layer, units):
    """Unit images of the default preset's recipe for ``layer`` (seed 0), as `deepvis units` makes them."""
    defaults = Settings().units
    recipe = unit_recipe(net, layer, defaults.preset, defaults.size, defaults.steps)
    return recipe, recipe.ascent(net, layer).run(units, recipe.size, recipe.steps, seed=0)


@pytest.fixture(scope="module")
def unit_quality(lite0, photos):
    results = []
    for layer, units in UNITS.items():
        _, rendered = made_as_units_makes_them(lite0, layer, units)
        results += measure_unit_images(lite0, layer, units, rendered.images, list(photos.values()), pre_relu=True)
    return results


def test_early_units_are_selective_and_reported_by_their_own_mean(lite0, photos):
    """block1_project_bn (an 11-pixel field): small images shifted by whole strides, against the
    layer's strongest other unit; before issue 30, 2 of 4 were selective. The value each image
    reports is its unit's channel mean (what the objectives file records), not the contrast."""
    units = [3, 9, 15, 21]
    recipe, rendered = made_as_units_makes_them(lite0, "block1_project_bn", units)
    q = measure_unit_images(lite0, "block1_project_bn", units, rendered.images, list(photos.values()), pre_relu=True)
    assert recipe.size == 64 and sum(x.selective for x in q) >= 3, [(x.unit, x.selective) for x in q]
    np.testing.assert_allclose(rendered.objective, [x.value for x in q], rtol=1e-3, atol=1e-3)


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
