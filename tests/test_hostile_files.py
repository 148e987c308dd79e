"""Files that attack or confuse the toolbox (issue 20): each kind refused at its root, in one
line, without running another program, blocking, or filling memory; damaged stores mended
without losing what they held; one network per asset folder."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading

import numpy as np
import pytest

from conftest import EXAMPLES
from toolbox.errors import UserError

EPS = b"""%!PS-Adobe-3.0 EPSF-3.0
%%BoundingBox: 0 0 16 16
/Helvetica findfont 12 scalefont setfont 0 0 moveto (ran) show
showpage
"""


def _finishes(fn, seconds: float = 120.0):
    """Run ``fn`` on a thread; what it returned or raised, or a failure when it is still
    blocked after ``seconds`` (a generous bound: the point is 'does not block forever')."""
    out: dict = {}

    def body():
        try:
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001
            out["error"] = e

    t = threading.Thread(target=body, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"still blocked after {seconds} s"
    return out


def test_a_postscript_file_named_jpg_is_refused_without_starting_a_process(tmp_path, monkeypatch):
    from toolbox.images import read_image

    started = []
    real = subprocess.Popen.__init__

    def spy(self, *args, **kwargs):
        started.append(args[0] if args else kwargs.get("args"))
        raise RuntimeError("deepvis started a process while reading an image")

    monkeypatch.setattr(subprocess.Popen, "__init__", spy)
    path = tmp_path / "x.jpg"
    path.write_bytes(EPS)
    with pytest.raises(UserError, match="not one of the formats deepvis reads"):
        read_image(path)
    monkeypatch.setattr(subprocess.Popen, "__init__", real)
    assert started == []


def test_fifos_devices_and_huge_files_are_refused_without_blocking_or_reading(tmp_path):
    from toolbox.assets.crop_job import count_images, find_sources
    from toolbox.images import open_video, read_image

    fifo = tmp_path / "clip.mp4"
    os.mkfifo(fifo)
    os.mkfifo(tmp_path / "photo.jpg")
    for fn, what in [(lambda: read_image(tmp_path / "photo.jpg"), "not a regular file"),
                     (lambda: open_video(fifo), "not a regular file"),
                     (lambda: read_image("/dev/zero"), "not a regular file")]:
        out = _finishes(fn)
        assert isinstance(out.get("error"), UserError) and what in str(out["error"]), out
    # a folder holding a FIFO named like a video, and a list naming one and /dev/zero
    (tmp_path / "list.txt").write_text(f"{fifo}\n/dev/zero\n")
    from toolbox.images import write_image

    write_image(tmp_path / "real.png", np.zeros((8, 8, 3), np.uint8))
    out = _finishes(lambda: count_images(find_sources([str(tmp_path)]), 1))
    assert out.get("value") == 1, out  # the FIFOs are not sources
    listed = find_sources([str(tmp_path / "list.txt")])
    assert _finishes(lambda: count_images(listed, 1)).get("value") == 1  # /dev/zero counts as one image...
    # a sparse 3 GB file named .jpg is refused before it is read
    big = tmp_path / "big.jpg"
    with open(big, "wb") as f:
        f.truncate(3 << 30)
    with pytest.raises(UserError, match="it is 3221 MB; the limit is 817 MB"):
        read_image(big)


def test_a_crops_run_reports_special_files_in_a_list_and_goes_on(tiny, tmp_path):
    from toolbox.assets.crop_job import CropJob, find_sources
    from toolbox.assets.crops import CropStore
    from toolbox.images import write_image

    write_image(tmp_path / "ok.png", np.full((16, 16, 3), 120, np.uint8))
    os.mkfifo(tmp_path / "pipe.mp4")
    (tmp_path / "list.txt").write_text("ok.png\npipe.mp4\n/dev/zero\n")
    bad = []
    job = CropJob(tiny, ["conv_b"], CropStore(tmp_path / "assets"), 2, 8, 1_000_000)
    out = _finishes(lambda: job.run(find_sources([str(tmp_path / "list.txt")]), on_bad=bad.append))
    report = out["value"]
    assert report.images == 1 and report.bad == 2 and all("not a regular file" in str(e) for e in bad), bad


def test_a_graph_constant_filled_from_one_value_cannot_claim_gigabytes():
    from tensorflow.core.framework import graph_pb2

    from toolbox.nets.formats.graphdef_file import FrozenGraph

    graph = graph_pb2.GraphDef()
    node = graph.node.add(name="conv2d0_w", op="Const")
    tensor = node.attr["value"].tensor
    tensor.dtype = 1
    tensor.tensor_shape.dim.add(size=16384)
    tensor.tensor_shape.dim.add(size=16384)
    tensor.float_val.append(1.0)
    assert len(graph.SerializeToString()) < 100
    with pytest.raises(ValueError, match="from one"):
        FrozenGraph(None, {n.name: n for n in graph.node}).constant("conv2d0_w")


def test_googlenet_weights_with_a_bad_lrn_or_nan_are_refused():
    from toolbox.nets import googlenet

    with pytest.raises(ValueError, match="LRN"):
        googlenet.LRN(depth_radius=-3, bias=1.0, alpha=1e-4, beta=0.75)
    weights = googlenet.random_weights(width=0.25)
    weights.arrays["conv2d0_w"][0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        googlenet.build(weights)


def test_a_cluster_address_where_nobody_listens_fails_fast():
    from toolbox.assets.cluster import check_address

    with socket.socket() as s:  # a port that was free a moment ago
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        with pytest.raises(UserError, match="no Ray cluster answers"):
            check_address(address, timeout=5)
    with pytest.raises(UserError, match="not an address"):
        check_address("nonsense")


# -- crop stores ---------------------------------------------------------------------------


@pytest.fixture()
def crops_run(tiny, tmp_path):
    """A function that runs crops of the tiny network over 8 fixed images into tmp_path."""
    from toolbox.assets.crop_job import CropJob, Source
    from toolbox.assets.crops import CropStore
    from toolbox.images import write_image

    rng = np.random.default_rng(3)
    paths = []
    for i in range(8):
        paths.append(tmp_path / "photos" / f"{i}.png")
        write_image(paths[-1], rng.integers(0, 255, (16, 16, 3), dtype=np.uint8))

    def run(side=8, net=tiny):
        job = CropJob(net, ["conv_a", "conv_b"], CropStore(tmp_path / "assets"), 3, side, 1_000_000)
        return job.run([Source(p, False) for p in paths], batch=4)

    return run


def _arrays(root, layer):
    from toolbox.assets.crops import CropStore

    stored = CropStore(root).load(layer)
    return stored.top.values.copy(), stored.top.sources.copy(), stored.crops(stored.top.slots).copy()


def test_a_damaged_layer_file_is_moved_aside_and_made_again(crops_run, tmp_path, caplog):
    from toolbox.assets.crops import CropStore

    crops_run()
    root = tmp_path / "assets"
    before = {layer: _arrays(root, layer) for layer in ("conv_a", "conv_b")}
    layer_file = root / "crops" / "conv_b.npz"
    layer_file.write_bytes(layer_file.read_bytes()[:200])  # cut short
    assert CropStore(root).load("conv_b") is None  # readers: a warning, no traceback
    assert "damaged" in caplog.text
    report = crops_run()
    assert report.images == 8 and report.skipped == 0  # every image looked at again
    assert list((root / "crops").glob("conv_b.npz.damaged-*"))
    for layer in ("conv_a", "conv_b"):  # what was lost is back, what was kept unchanged
        for a, b in zip(before[layer], _arrays(root, layer)):
            assert np.array_equal(a, b)


@pytest.mark.parametrize("damage", ["pool outside", "slot out of range", "short arrays", "random bytes"])
def test_layer_files_that_disagree_or_point_outside_are_damaged_not_tracebacks(crops_run, tmp_path, damage):
    from toolbox.assets.crops import CropStore

    crops_run()
    root = tmp_path / "assets"
    path = root / "crops" / "conv_b.npz"
    (tmp_path / "secret.pool").write_bytes(b"\x01" * 10_000)
    if damage == "random bytes":
        path.write_bytes(os.urandom(3000))
    else:
        with np.load(path) as z:
            arrays = dict(z)
        if damage == "pool outside":
            arrays["pool"] = np.array("../../secret.pool")
        elif damage == "slot out of range":
            arrays["top_slots"] = arrays["top_slots"] + 10_000
        else:
            arrays["top_values"] = arrays["top_values"][:, :1]
        with open(path, "wb") as f:
            np.savez(f, **arrays)
    assert CropStore(root).load("conv_b") is None
    assert crops_run().skipped == 0  # remade on the next run


def test_indexes_with_wrong_content_are_set_aside_not_tracebacks(crops_run, tmp_path):
    from toolbox.assets.crops import CropStore, valid_index
    from toolbox.assets.unit_images import valid_index as valid_objectives

    crops_run()
    root = tmp_path / "assets"
    index = json.loads((root / "crops" / "index.json").read_text())
    assert valid_index(index)
    for wrong in ({**index, "layers": {"conv_b": {"field": "big"}}}, {**index, "images": {"1": 5}},
                  {**index, "side": "8"}, {**index, "images": {"x": {"path": 3}}}):
        assert not valid_index(wrong)
    (root / "crops" / "index.json").write_text(json.dumps({**index, "layers": {"conv_b": {"field": [1]}}}))
    assert CropStore(root).index() == {}
    crops_run()  # runs, remaking the index (the bad one moved aside)
    assert valid_index(CropStore(root).index())
    assert not valid_objectives({"model": "m", "layer": "l", "units": {"3": {"objective": "high"}}})
    assert valid_objectives({"model": "m", "layer": "l", "units": {"3": {"objective": 1.5, "size": 128}}})


def test_a_store_keeps_one_crop_side_and_one_network(crops_run, tmp_path, tiny):
    import dataclasses

    crops_run(side=8)
    with pytest.raises(UserError, match="are 8 px; give --side 8"):
        crops_run(side=12)
    other = dataclasses.replace(tiny, spec=dataclasses.replace(tiny.spec, name="tiny2"))
    with pytest.raises(UserError, match="holds crops of tiny, not tiny2"):
        crops_run(net=other)


def test_an_asset_folder_belongs_to_one_network(tmp_path):
    from toolbox.assets import UnitImageFolder

    folder = UnitImageFolder(tmp_path)
    folder.claim("efficientnet_lite0")
    folder.claim("efficientnet_lite0")  # again: fine
    with pytest.raises(UserError, match="holds the assets of efficientnet_lite0, not efficientnet_lite2"):
        folder.claim("efficientnet_lite2")
    legacy = UnitImageFolder(tmp_path / "old")  # an earlier version's folder: its objectives say
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "b_objectives.json").write_text(json.dumps({"model": "googlenet", "layer": "b", "units": {}}))
    with pytest.raises(UserError, match="googlenet"):
        legacy.check_model("efficientnet_lite0")


def test_task_ids_name_the_network_and_garbage_records_do_not_count(tmp_path):
    from toolbox.assets.precompute import TaskRecords, UnitParams, plan_unit_tasks

    p = UnitParams("lucid", 64, 32, 4, 0)
    a = plan_unit_tasks({"block9_add": range(8)}, p, "efficientnet_lite0")
    b = plan_unit_tasks({"block9_add": range(8)}, p, "efficientnet_lite2")
    assert {t.id for t in a}.isdisjoint(t.id for t in b)
    records = TaskRecords(tmp_path)
    records.dir.mkdir(parents=True)
    for content in (b"", b"garbage", b'{"task": "another"}', b"[1]"):
        records.path(a[0]).write_bytes(content)
        assert not records.done(a[0])
    records.mark(a[0])
    assert records.done(a[0])


# -- settings and outputs ----------------------------------------------------------------------


def test_settings_refuse_nul_bytes_deep_nesting_and_nan_weights(tmp_path):
    from toolbox.settings import load_settings

    deep = tmp_path / "deep.yaml"
    deep.write_text("live: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(UserError, match="nested too deeply"):
        load_settings(deep)
    with pytest.raises(UserError, match="NUL"):
        load_settings(None, {"units.output_dir": "a\x00b"})
    from toolbox.settings import parse_layer_weights

    with pytest.raises(UserError, match="finite"):
        parse_layer_weights("block9_add:nan")


def test_failing_commands_leave_no_output_folder(tmp_path, tiny_settings, capsys):
    from toolbox.cli import main

    models = str(tiny_settings.models_path)
    assert main(["atlas", "--assets", str(tmp_path / "missing"), "-o", str(tmp_path / "site")]) == 2
    assert main(["classes", "--classes", "no such class", "-o", str(tmp_path / "classes"),
                 "--model", "tiny", "--settings", _settings_file(tmp_path, models)]) == 2
    assert not (tmp_path / "site").exists() and not (tmp_path / "classes").exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("deepvis: error:") for line in err), err


def _settings_file(tmp_path, models: str) -> str:
    path = tmp_path / "settings.yaml"
    path.write_text(f"models_dir: {models}\ncache_dir: {tmp_path / 'cache'}\n")
    return str(path)


def test_opencv_and_ffmpeg_say_nothing_on_stderr_for_a_broken_video(tmp_path):
    import sys

    bad = tmp_path / "bad.mp4"
    bad.write_bytes(os.urandom(5000))
    code = ("import sys; from toolbox.cli import main; sys.exit(main(sys.argv[1:]))")
    out = subprocess.run([sys.executable, "-c", code, "live", "--input", str(bad), "--headless", "--frames", "1",
                          "-o", str(tmp_path / "live"), "--model", "efficientnet_lite0"],
                         capture_output=True, text=True, timeout=600, cwd=EXAMPLES.parent)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 2 and lines and all(line.startswith("deepvis: ") for line in lines), out.stderr
