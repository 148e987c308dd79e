"""`deepvis circuit` and `deepvis precompute --circuits` on the real lite0: the command's
numbers are the engine's, precompute's stored circuits are each unit's inputs and outputs over
its top-crop images, resumable and the same on 2 Ray workers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import EXAMPLES, local_ray, photo_variants

LAYER = "block2_add"  # 24 units: between block1_project_bn and block3_project_bn


@pytest.fixture(scope="module")
def photos_dir(tmp_path_factory) -> Path:
    return photo_variants(tmp_path_factory.mktemp("photos"), 12)


@pytest.fixture(scope="module")
def assets(tmp_path_factory, settings_file, photos_dir) -> Path:
    """Crops of LAYER from the photos and its circuits, in this process, 3 tasks of 8 units."""
    from toolbox.cli import main

    out = tmp_path_factory.mktemp("assets")
    assert main(["precompute", "--layers", LAYER, "--crops", str(photos_dir), "--circuits", "--circuit-units", "8",
                 "-o", str(out), "--settings", str(settings_file)]) == 0
    return out


def test_circuit_command_prints_the_engines_numbers_and_draws_a_chart(settings_file, lite0, tmp_path, capsys):
    from toolbox.cli import main
    from toolbox.images import read_image
    from toolbox.optvis.circuits import CircuitTracer

    folder = tmp_path / "two"
    folder.mkdir()
    for name in ("chelsea.png", "coffee.png"):
        shutil.copy(EXAMPLES / name, folder / name)
    (folder / "broken.png").write_bytes(b"not an image")
    assert main(["circuit", str(folder), "--layer", "block9_add", "--unit", "17", "--top", "4", "--json",
                 "--settings", str(settings_file), "-o", str(tmp_path / "chart.png")]) == 0
    captured = capsys.readouterr()
    assert "could not be read" in captured.err  # the broken file: a warning, the run goes on
    got = json.loads(captured.out.splitlines()[0])
    images = np.stack([lite0.fit_input(read_image(folder / n)) for n in ("chelsea.png", "coffee.png")])
    expected = CircuitTracer(lite0).circuit(images.astype(np.float32), "block9_add", 17)
    assert got["from"] == "block9_dw_relu" and got["images"] == 2
    assert got["value"] == pytest.approx(expected.value, rel=1e-5)
    assert [link["unit"] for link in got["excitatory"]] == [link.unit for link in expected.links(4)]
    assert [link["unit"] for link in got["inhibitory"]] == [link.unit for link in expected.links(4, True)]
    assert got["excitatory"][0]["share"] == pytest.approx(expected.links(1)[0].share, rel=1e-4)
    chart = read_image(tmp_path / "chart.png")
    assert chart.shape[0] > 300 and chart.std() > 10
    assert main(["circuit", str(EXAMPLES / "chelsea.png"), "--layer", "stem_relu", "--unit", "0",
                 "--settings", str(settings_file)]) == 2
    assert "first layer" in capsys.readouterr().err
    assert main(["circuit", str(EXAMPLES / "chelsea.png"), "--layer", "block2_add", "--unit", "0", "--from",
                 "block9_add", "--settings", str(settings_file)]) == 2
    assert "does not come before" in capsys.readouterr().err


def _unit_images(lite0, root: Path, layer: str, unit: int) -> np.ndarray:
    from toolbox.assets.crop_job import _reload
    from toolbox.assets.crops import EMPTY, CropStore

    store = CropStore(root)
    index = store.index()["images"]
    return np.stack([_reload(index[str(s)], lite0, 10**8, "crop") for s in store.load(layer).top.sources[unit]
                     if s != EMPTY]).astype(np.float32)


@pytest.mark.slow
def test_precompute_stores_each_units_circuits_over_its_top_crop_images(assets, lite0, settings_file, capsys):
    from toolbox.assets.circuits import CircuitStore
    from toolbox.cli import main
    from toolbox.optvis.circuits import CircuitTracer

    store = CircuitStore(assets)
    tracer = CircuitTracer(lite0)
    for unit in (0, 13, 23):
        stored = store.unit(LAYER, unit)
        assert stored.inputs.source == "block1_project_bn" and stored.outputs.source == "block3_project_bn"
        images = _unit_images(lite0, assets, LAYER, unit)
        assert stored.inputs.images == len(images) == 9
        direct = tracer.circuit(images, LAYER, unit)
        np.testing.assert_allclose(stored.inputs.contributions, direct.contributions, rtol=1e-4, atol=1e-5)
        outputs, _ = tracer.outputs(images, LAYER, unit)
        np.testing.assert_allclose(stored.outputs.contributions, outputs.mean(axis=0), rtol=1e-4, atol=1e-5)
    capsys.readouterr()
    assert main(["precompute", "--layers", LAYER, "--circuits", "--circuit-units", "8", "-o", str(assets),
                 "--settings", str(settings_file)]) == 0
    assert "did 0 of 3 tasks (3 done earlier)" in capsys.readouterr().out


@pytest.mark.slow
def test_circuit_tasks_on_two_ray_workers_store_the_same(assets, lite0, lite0_settings, tmp_path):
    from toolbox.assets.circuits import CircuitStore
    from toolbox.assets.cluster import RayRunner
    from toolbox.assets.crops import CropStore
    from toolbox.assets.precompute import CircuitParams, Committer, plan_circuit_tasks

    shutil.copytree(assets / "crops", tmp_path / "crops")
    tasks = plan_circuit_tasks(CropStore(tmp_path), lite0.spec.layer_names, [LAYER], 8, "efficientnet_lite0")
    assert [t.units for t in tasks] == [tuple(range(0, 8)), tuple(range(8, 16)), tuple(range(16, 24))]
    with local_ray(2):
        params = CircuitParams(16, 10**8, "crop")
        outcome = RayRunner(lite0_settings, None, None, workers=2, circuit_params=params).run(
            tasks, Committer(tmp_path, "efficientnet_lite0", None))
    assert outcome.done == 3 and outcome.workers == 2
    a, b = CircuitStore(assets).load(LAYER), CircuitStore(tmp_path).load(LAYER)
    for field in ("inputs", "outputs", "values", "images", "made_from"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)



@pytest.mark.slow
def test_atlas_unit_pages_list_inputs_and_outputs_linking_to_their_pages(assets, settings_file, photos_dir,
                                                                       tmp_path):
    """Listed on every unit page of LAYER, each a link where that unit has a page (its layer has
    something computed), else named without one: never a link to a page that is not there."""
    import re

    from toolbox.assets.circuits import CircuitStore
    from toolbox.atlas import write_atlas
    from toolbox.cli import main

    layers = [("block1_project_bn", 24), (LAYER, 24), ("block3_project_bn", 40)]
    stored = CircuitStore(assets).unit(LAYER, 5)
    inputs = [k.unit for k in stored.inputs.links(6) + stored.inputs.links(3, inhibitory=True)]
    outputs = [k.unit for k in stored.outputs.links(6) + stored.outputs.links(3, inhibitory=True)]

    def listed(page: str, heading: str, layer: str) -> tuple[list[int], list[int]]:
        part = page.split(heading)[1].split("<h2>")[0]
        links = [int(u) for u in re.findall(rf'href="\.\./{layer}/(\d+)\.html"', part)]
        named = [int(u) for u in re.findall(r'class="unit" title="[^"]* unit (\d+):', part)]
        return links, named

    alone = tmp_path / "alone"
    write_atlas("efficientnet_lite0", layers, assets, alone)  # the neighbours have nothing computed
    page = (alone / LAYER / "5.html").read_text()
    assert listed(page, "strongest inputs from block1_project_bn", "block1_project_bn") == ([], inputs)
    assert listed(page, "strongest outputs to block3_project_bn", "block3_project_bn") == ([], outputs)
    assert f"{stored.inputs.links(1)[0].share:+.1%}" in page

    both = tmp_path / "assets"  # the neighbours' crops too (the same photos): every unit of theirs has a page
    assert main(["crops", "--images", str(photos_dir), "--layers", ",".join(name for name, _ in layers),
                 "-o", str(both), "--settings", str(settings_file)]) == 0
    shutil.copytree(assets / "circuits", both / "circuits")
    site = tmp_path / "site"
    write_atlas("efficientnet_lite0", layers, both, site)
    page = (site / LAYER / "5.html").read_text()
    assert listed(page, "strongest inputs from block1_project_bn", "block1_project_bn") == (inputs, [])
    assert listed(page, "strongest outputs to block3_project_bn", "block3_project_bn") == (outputs, [])
    for unit in outputs:
        assert (site / "block3_project_bn" / f"{unit}.html").is_file()  # every link resolves
    assert 'class="crop"' in page  # no optimized images: each shown by its best top crop
    elsewhere = (site / "block1_project_bn" / "0.html").read_text()  # no circuits stored for that layer
    assert "strongest inputs and outputs" in elsewhere and "not computed yet" in elsewhere
