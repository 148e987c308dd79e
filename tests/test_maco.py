"""The maco preset: its transparency maps kept beside the unit images (tiny model), and its
images driving their units on the real lite0 (issue 24: at least xplique's maco, 1 of 4
selective and a median activation ratio of 1.4)."""

import numpy as np

from toolbox.assets.unit_images import UnitImageFolder


def test_maco_units_come_with_transparency_maps_that_a_later_image_drops(tiny, tmp_path):
    from toolbox.assets import render_unit_images

    folder = UnitImageFolder(tmp_path)
    render_unit_images(tiny, "conv_b", [1, 4], folder, "maco", size=16, steps=6, batch=2)
    for unit in (1, 4):
        alpha = folder.load_transparency("conv_b", unit)
        assert alpha is not None and alpha.shape == (16, 16) and alpha.dtype == np.uint8 and alpha.max() == 255
        assert folder.load("conv_b", unit).shape == (16, 16, 3)
    render_unit_images(tiny, "conv_b", [4], folder, "lucid", size=16, steps=2, batch=1)
    assert folder.load_transparency("conv_b", 4) is None  # the map belonged to the maco image
    assert folder.load_transparency("conv_b", 1) is not None


def test_transparency_image_scales_to_its_largest():
    from toolbox.assets.unit_images import transparency_image

    assert transparency_image(np.array([[0.0, 2.0], [1.0, 4.0]])).tolist() == [[0, 128], [64, 255]]
    assert transparency_image(np.zeros((2, 2))).max() == 0


def test_maco_images_drive_their_units(lite0, photos):
    from toolbox.assets.quality import measure_unit_images, summarize
    from toolbox.optvis import Ascent, channel, get_preset

    units = list(range(8))
    rendered = Ascent(lite0, channel("block9_add"), get_preset("maco")).run(units, 128, 256, seed=0)
    quality = measure_unit_images(lite0, "block9_add", units, rendered.images, list(photos.values()), fit=True)
    selective, ratio = summarize(quality)
    print(f"\nmaco: {selective} of 8 selective, median ratio {ratio:.2f}")
    assert selective >= 3 and ratio >= 1.4, [(q.unit, q.selective, round(q.ratio, 2)) for q in quality]
    assert rendered.transparency.shape == (8, 128, 128) and (rendered.transparency > 0).mean() > 0.9


def test_each_preset_takes_its_own_steps_unless_steps_are_given(tiny_settings_file, tmp_path, capsys):
    """units.steps is null: maco runs its 256 steps, lucid its 128; --steps wins over both."""
    import json

    from toolbox.cli import main

    common = ["units", "--layer", "conv_b", "--units", "0", "--size", "16", "--settings", str(tiny_settings_file)]
    for preset, extra, steps in (("maco", [], 256), ("lucid", [], 128), ("maco", ["--steps", "3"], 3)):
        out = tmp_path / f"{preset}{len(extra)}"
        assert main([*common, "--preset", preset, *extra, "-o", str(out)]) == 0
        record = json.loads((out / "conv_b_objectives.json").read_text())
        assert record["units"]["0"]["steps"] == steps, (preset, extra)
    bad = tmp_path / "bad"
    assert main([*common, "--units", "0-99", "-o", str(bad)]) == 2  # a mistake ties no folder to the network
    assert not (bad / "deepvis-assets.json").exists()
