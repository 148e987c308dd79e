"""`deepvis precompute`: the task plan, identical outputs in-process and on Ray with 2 workers,
a killed Ray worker (its task retried), a killed driver (the re-run does only what is left).

One small job throughout, on the real lite0: 2 layers x 8 units (48 px, 32 steps, batches of
4: 4 unit tasks) and crops of 20 images in shards of 5 (4 crop tasks). One local Ray runtime
(2 CPUs) serves every Ray test of the module and is shut down, its files removed, at the end.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, local_ray, photo_variants
from toolbox.assets import UnitImageFolder

LAYERS = "block2_add,block4_dw_relu"
JOB = ["--model", "efficientnet_lite0", "--layers", LAYERS, "--units", "0-7", "--unit-images", "--size", "48",
       "--steps", "32", "--batch", "4", "--shard", "5"]
TASKS = 8  # 2 layers x 2 batches of units, 20 images / 5 per shard


@pytest.fixture(scope="module")
def photos_dir(tmp_path_factory) -> Path:
    return photo_variants(tmp_path_factory.mktemp("photos"), 20)


def precompute(out: Path, settings_file: Path, photos_dir: Path, *extra: str) -> str:
    from toolbox.cli import main

    return_code = main(["precompute", *JOB, "--crops", str(photos_dir), "-o", str(out),
                        "--settings", str(settings_file), *extra])
    assert return_code == 0
    return ""


def asset_files(root: Path) -> dict[str, Path]:
    """The outputs (not the task records, locks or temporaries) by relative path."""
    return {str(p.relative_to(root)): p for p in sorted(root.rglob("*"))
            if p.is_file() and "precompute" not in p.relative_to(root).parts and not p.name.startswith(".")}


def assert_same_assets(a: Path, b: Path) -> None:
    """Same unit images byte for byte, same JSON, same top K: the entries of every unit and
    the pixels of their crops (the crop pool's record order follows the order in which shards
    were committed, so its files are compared through the store, not byte for byte)."""
    from toolbox.assets.crops import CropStore

    fa, fb = asset_files(a), asset_files(b)
    assert sorted(fa) == sorted(fb)
    said = sum("said" in entry for name in fa if name.endswith("_objectives.json")
               for entry in json.loads(fa[name].read_text())["units"].values())
    assert sum(name.endswith(".png") for name in fa) + said == 16  # each unit made, or said why not
    for name in fa:
        if name.endswith(".json"):
            assert json.loads(fa[name].read_text()) == json.loads(fb[name].read_text()), name
        elif not name.startswith("crops/"):
            assert fa[name].read_bytes() == fb[name].read_bytes(), name
    sa, sb = CropStore(a), CropStore(b)
    for layer in LAYERS.split(","):
        x, y = sa.load(layer), sb.load(layer)
        assert x is not None and y is not None
        for side in ("top", "bottom"):
            ex, ey = getattr(x, side), getattr(y, side)
            assert (ex is None) == (ey is None)
            if ex is None:
                continue
            for field in ("values", "sources", "positions"):
                np.testing.assert_array_equal(getattr(ex, field), getattr(ey, field), err_msg=f"{layer} {side}")
            for unit in range(len(ex.values)):
                np.testing.assert_array_equal(sa.unit(layer, unit, side == "bottom")[0],
                                              sb.unit(layer, unit, side == "bottom")[0])
        assert np.isfinite(x.top.values).all()  # 20 images fill every unit's top 9


def records(root: Path) -> set[str]:
    return {p.name for p in (root / "precompute" / "done").glob("*.json")}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, settings_file, photos_dir) -> Path:
    """The job run in this process: what every other way of running it must equal."""
    out = tmp_path_factory.mktemp("in-process")
    precompute(out, settings_file, photos_dir)
    return out


@pytest.fixture(scope="module")
def ray_runtime():
    """One local Ray runtime (2 CPUs) for the module."""
    with local_ray(2) as ray:
        yield ray


def test_cli_does_not_import_ray():
    code = "import sys, toolbox.cli; toolbox.cli.build_parser(); print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "False"


def test_plan_has_fixed_boundaries_and_the_seeds_of_deepvis_units():
    from toolbox.assets.precompute import CropParams, UnitParams, plan_crop_tasks, plan_unit_tasks

    p = UnitParams("lucid", 48, 32, 4, seed=7)
    tasks = plan_unit_tasks({"a": range(10), "b": [3, 5]}, p)
    assert [(t.layer, t.units, t.seed) for t in tasks] == [
        ("a", (0, 1, 2, 3), 7), ("a", (4, 5, 6, 7), 11), ("a", (8, 9), 15), ("b", (3, 5), 7)]
    assert [t.id for t in plan_unit_tasks({"a": range(10), "b": [3, 5]}, p)] == [t.id for t in tasks]  # stable
    other = plan_unit_tasks({"a": range(10)}, UnitParams("lucid", 48, 64, 4, seed=7))
    assert not {t.id for t in other} & {t.id for t in tasks}  # other parameters: other tasks
    c = CropParams(9, 48, 10, 16, 10**8, "crop")
    shards = plan_crop_tasks([(f"/x/{i}.png", False) for i in range(11)], ["a"], 5, c)
    assert [t.size for t in shards] == [5, 5, 1] and len({t.id for t in shards}) == 3


@pytest.mark.slow
def test_in_process_unit_images_equal_deepvis_units(reference, settings_file, tmp_path):
    from toolbox.cli import main

    assert len(records(reference)) == TASKS
    assert main(["units", "--model", "efficientnet_lite0", "--layer", "block4_dw_relu", "--units", "0-7",
                 "--size", "48", "--steps", "32", "--batch", "4", "-o", str(tmp_path),
                 "--settings", str(settings_file)]) == 0
    made = [unit for unit in range(8) if (tmp_path / f"block4_dw_relu_{unit:04d}.png").is_file()]
    assert made  # (units says why it leaves out the others: an image a plain one beats)
    for unit in made:
        name = f"block4_dw_relu_{unit:04d}.png"
        assert (tmp_path / name).read_bytes() == (reference / name).read_bytes()
    said = UnitImageFolder(tmp_path).nothing_to_show("efficientnet_lite0", "block4_dw_relu")
    assert said == UnitImageFolder(reference).nothing_to_show("efficientnet_lite0", "block4_dw_relu")  # the same said


def test_without_a_size_each_layer_gets_its_recipes_size_as_deepvis_units_gives_it(settings_file, tmp_path):
    """precompute made every layer at 128 px while deepvis units followed the field: block2_add
    (a 19-pixel field) is 64 px in both now, with the same bytes and the same units said."""
    from toolbox.cli import main
    from toolbox.images import read_image

    common = ["--model", "efficientnet_lite0", "--units", "0-3", "--steps", "8", "--batch", "4",
              "--settings", str(settings_file)]
    assert main(["precompute", "--layers", "block2_add", "--unit-images", "-o", str(tmp_path / "p"), *common]) == 0
    assert main(["units", "--layer", "block2_add", "-o", str(tmp_path / "u"), *common]) == 0
    for folder in ("p", "u"):
        images = sorted((tmp_path / folder).glob("block2_add_00??.png"))
        assert all(read_image(p).shape == (64, 64, 3) for p in images)
    assert [p.read_bytes() for p in sorted((tmp_path / "p").glob("block2_add_00??.png"))] == \
        [p.read_bytes() for p in sorted((tmp_path / "u").glob("block2_add_00??.png"))]
    assert UnitImageFolder(tmp_path / "p").objectives("efficientnet_lite0", "block2_add").keys() == \
        UnitImageFolder(tmp_path / "u").objectives("efficientnet_lite0", "block2_add").keys() == {"0", "1", "2", "3"}


def test_a_changed_recipe_makes_new_tasks():
    """Images made by an earlier recipe (or before units were judged) are not kept as done."""
    from types import SimpleNamespace

    from toolbox.assets.precompute import UnitParams, plan_unit_tasks

    p = UnitParams("lucid", None, 32, 4, seed=0)
    old, new = (SimpleNamespace(size=64, key=lambda layer, k=k: k) for k in ("a", "b"))
    ids = [{t.id for t in plan_unit_tasks({"l": range(8)}, p, "m", {"l": r})} for r in (old, new)]
    assert ids[0] and not ids[0] & ids[1]


@pytest.mark.slow
def test_ray_with_two_workers_gives_identical_files(ray_runtime, reference, settings_file, photos_dir, tmp_path,
                                                   capsys):
    precompute(tmp_path, settings_file, photos_dir, "--workers", "2")
    assert "did 8 of 8 tasks (0 done earlier) 2 Ray workers" in capsys.readouterr().out
    assert_same_assets(reference, tmp_path)
    assert len(records(tmp_path)) == TASKS
    workers = {json.loads((tmp_path / "precompute" / "done" / r).read_text())["worker"] for r in records(tmp_path)}
    assert len(workers) == 2  # both took tasks


@pytest.mark.slow
def test_a_killed_ray_worker_loses_only_its_task(ray_runtime, reference, lite0_settings, photos_dir, tmp_path):
    from toolbox.assets.cluster import RayRunner
    from toolbox.assets.precompute import (Committer, CropParams, UnitParams, plan_crop_tasks, plan_unit_tasks,
                                           source_list)

    units = UnitParams("lucid", 48, 32, 4, 0)
    crops = CropParams(9, 48, 10, 16, 10**8, "crop")
    layers = LAYERS.split(",")
    tasks = (plan_unit_tasks({name: range(8) for name in layers}, units)
             + plan_crop_tasks(source_list([str(photos_dir)]), layers, 5, crops))
    runner = RayRunner(lite0_settings, units, crops, workers=2)
    killed = []

    def kill_the_other_worker(task, result) -> None:
        if not killed:
            mine = int(result["worker"].rsplit("-", 1)[1])
            victim = next(pid for pid in runner.pids.values() if pid != mine)
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

    commit = Committer(tmp_path, "efficientnet_lite0", units)
    outcome = runner.run(tasks, commit, kill_the_other_worker)
    commit.finish()
    assert killed and outcome.retried >= 1 and outcome.done == TASKS
    assert len(records(tmp_path)) == TASKS
    assert_same_assets(reference, tmp_path)


@pytest.mark.slow
@pytest.mark.e2e
def test_a_killed_driver_resumes_with_only_the_remaining_tasks(reference, settings_file, photos_dir, tmp_path, capsys):
    command = [sys.executable, "-m", "toolbox", "precompute", *JOB, "--crops", str(photos_dir), "-o", str(tmp_path),
               "--settings", str(settings_file)]
    driver = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while len(records(tmp_path)) < 2 and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        driver.send_signal(signal.SIGKILL)
    finally:
        driver.wait(30)
    done_before = len(records(tmp_path))
    assert 2 <= done_before < TASKS, "the driver should have been killed midway"
    precompute(tmp_path, settings_file, photos_dir)
    left = TASKS - done_before
    assert f"did {left} of {TASKS} tasks ({done_before} done earlier)" in capsys.readouterr().out
    assert len(records(tmp_path)) == TASKS
    assert_same_assets(reference, tmp_path)
    precompute(tmp_path, settings_file, photos_dir)  # all done: nothing to do
    assert f"did 0 of {TASKS} tasks ({TASKS} done earlier)" in capsys.readouterr().out


def test_mistakes_are_one_line_before_any_long_work(settings_file, tmp_path, capsys):
    from toolbox.cli import main

    assert main(["precompute", *JOB, "--crops", str(tmp_path / "nowhere"), "-o", str(tmp_path / "out"),
                 "--settings", str(settings_file)]) == 2
    assert "image source not found" in capsys.readouterr().err
    assert main(["precompute", *JOB, "--workers", "-1", "--settings", str(settings_file)]) == 2
    assert "--workers (precompute.workers) must be at least 0" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
