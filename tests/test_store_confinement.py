"""A store reads only its own files, believes no size a file declares, and takes any layer name
(issue 29: kind 1, and the store part of kinds 3 and 4).

- kind 1: a unit image, transparency map, objectives JSON, network record, crop index, crop
  layer file or pool, circuits file or precompute done-record that is a symbolic link to a
  file outside (a stand-in for /etc/passwd), and a store folder that is a link elsewhere, are
  refused: nothing of them is read, and the published site holds no copy and no link;
- kind 3: a store's .npz whose member declares a huge array (a (50000, 50000) header over a
  few bytes; 256 MiB of deflated zeros) is refused before anything is allocated;
- kind 4: a deeply nested JSON where a store keeps its index, record or done-record is a
  damaged file (ignored or moved aside, one warning), never a traceback; a layer named with
  300 characters, ``<``/``>`` or ``/`` gets its files and its atlas pages.

No network: the stores are filled through their own writers with small arrays.
"""

from __future__ import annotations

import html
import io
import json
import logging
import os
import re
import tracemalloc
import zipfile
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest

from toolbox.assets.circuits import CircuitStore
from toolbox.assets.crops import CropStore, Entries, LayerCrops
from toolbox.assets.precompute import TaskRecords, UnitParams, plan_unit_tasks
from toolbox.assets.unit_images import UnitImageFolder
from toolbox.errors import UserError

MODEL = "tiny"
LAYER = "conv"
SECRET = b"root:x:0:0:SECRET-7f3a9c:/root:/bin/bash\n"


@pytest.fixture()
def outside(tmp_path) -> Path:
    """A folder outside the store with a file standing in for /etc/passwd."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "passwd").write_bytes(SECRET)
    return folder


def _image(value: int = 100) -> np.ndarray:
    return np.full((16, 16, 3), value, np.uint8)


def _found(values, sources, crops_value: int = 10) -> LayerCrops:
    """A layer's new entries (top side only), crops filled with ``crops_value`` + slot."""
    values = np.asarray(values, np.float32)
    n = values.size
    entries = Entries(values, np.asarray(sources, np.int64), np.zeros((*values.shape, 2), np.int16),
                      np.arange(n).reshape(values.shape))
    pool = (crops_value + np.arange(n, dtype=np.uint8))[:, None, None, None] * np.ones((1, 4, 4, 3), np.uint8)
    return LayerCrops(entries, None, pool=pool)


def _fill(root: Path, layer: str = LAYER, source: str | None = None) -> Path:
    """An asset folder of MODEL with, for ``layer``: unit 0's image and transparency map, its
    objective, crops of 2 units, and with a ``source`` layer their circuits from it."""
    folder = UnitImageFolder(root)
    folder.prepare()
    folder.claim(MODEL)
    folder.save(layer, 0, _image(), np.ones((16, 16)))
    folder.record(MODEL, layer, {0: 1.5}, preset="lucid", size=16, steps=8)
    CropStore(root).commit({layer: _found([[3.0, 2.0], [5.0, 1.0]], [[1, 2], [1, 2]])},
                           {1: {"path": "a.png"}, 2: {"path": "b.png"}},
                           {"model": MODEL, "k": 2, "side": 4, "layers": {layer: {"field": [3, 1, 0, 0]}}})
    if source is not None:
        CircuitStore(root).commit(layer, [0, 1], 2, source, "", np.ones((2, 2), np.float32),
                                  np.zeros((2, 0), np.float32), np.ones(2, np.float32), np.array([2, 2]),
                                  np.array([[1, 2], [1, 2]]))
    return root


def _link(path: Path, target: Path) -> None:
    """``path`` replaced by a symbolic link to ``target``."""
    if path.is_dir() and not path.is_symlink():
        path.rename(path.with_name(path.name + ".moved"))
    else:
        path.unlink(missing_ok=True)
    os.symlink(target, path)


def _assert_nothing_from_outside(site: Path) -> None:
    """The published site: no link anywhere, no file holding the secret's bytes."""
    for folder, dirs, files in os.walk(site):
        for name in dirs + files:
            assert not os.path.islink(os.path.join(folder, name)), os.path.join(folder, name)
        for name in files:
            assert SECRET.strip() not in Path(folder, name).read_bytes(), os.path.join(folder, name)


# -- kind 1: links and foreign files are refused ------------------------------------------------


def test_a_unit_image_linked_to_a_file_outside_is_not_published(tmp_path, outside, caplog):
    from toolbox.atlas import write_atlas

    assets = _fill(tmp_path / "assets")
    folder = UnitImageFolder(assets)
    _link(folder.image_path(LAYER, 1), outside / "passwd")
    _link(folder.image_path(LAYER, 2), assets / folder.image_path(LAYER, 0).name)  # even one to its own file
    with caplog.at_level(logging.WARNING):
        report = write_atlas(MODEL, [(LAYER, 4)], assets, tmp_path / "site")
    assert report.unit_images == 1  # unit 0 alone
    assert (tmp_path / "site" / LAYER / "img" / "0.png").read_bytes() == folder.image_bytes(LAYER, 0)
    assert not (tmp_path / "site" / LAYER / "img" / "1.png").exists()
    assert "symbolic link" in caplog.text
    _assert_nothing_from_outside(tmp_path / "site")
    assert folder.load(LAYER, 1) is None and folder.image_bytes(LAYER, 1) is None
    assert (outside / "passwd").read_bytes() == SECRET


def test_a_transparency_map_or_image_that_is_a_link_or_a_fifo_is_not_read(tmp_path, outside):
    from toolbox.images import write_image

    assets = _fill(tmp_path / "assets")
    folder = UnitImageFolder(assets)
    write_image(outside / "map.png", _image(200))
    _link(folder.transparency_path(LAYER, 0), outside / "map.png")
    assert folder.load_transparency(LAYER, 0) is None
    os.mkfifo(folder.image_path(LAYER, 3))  # would block a plain open
    assert folder.load(LAYER, 3) is None and not folder.has_image(LAYER, 3)


def test_a_linked_objectives_file_is_neither_shown_nor_written_through(tmp_path, outside):
    from toolbox.atlas import write_atlas

    assets = _fill(tmp_path / "assets")
    folder = UnitImageFolder(assets)
    foreign = {"model": MODEL, "layer": LAYER, "units": {"0": {"objective": 4242.5}}}
    (outside / "objectives.json").write_text(json.dumps(foreign))
    _link(folder.objectives_path(LAYER), outside / "objectives.json")
    assert folder.objectives(MODEL, LAYER) == {}
    write_atlas(MODEL, [(LAYER, 2)], assets, tmp_path / "site")
    assert "4242" not in (tmp_path / "site" / LAYER / "0.html").read_text()
    folder.record(MODEL, LAYER, {1: 2.0})  # the link is moved aside, its target left as it was
    assert json.loads((outside / "objectives.json").read_text()) == foreign
    assert not folder.objectives_path(LAYER).is_symlink() and list(folder.objectives(MODEL, LAYER)) == ["1"]


def test_a_linked_network_record_names_no_network(tmp_path, outside):
    assets = _fill(tmp_path / "assets")
    folder = UnitImageFolder(assets)
    (outside / "record.json").write_text(json.dumps({"model": "someone-elses-net"}))
    _link(folder.record_path, outside / "record.json")
    for path in [assets / "crops" / "index.json", *assets.glob("*_objectives.json")]:
        path.unlink()
    assert folder.held_model() is None
    folder.claim(MODEL)  # writes a record of its own in place of the link
    assert not folder.record_path.is_symlink() and folder.held_model() == MODEL
    assert json.loads((outside / "record.json").read_text()) == {"model": "someone-elses-net"}


def test_linked_crop_files_and_folders_are_refused(tmp_path, outside, caplog):
    elsewhere = _fill(tmp_path / "elsewhere")  # a whole store outside: every file valid
    assets = _fill(tmp_path / "assets")
    index, layer_file = assets / "crops" / "index.json", CropStore(assets).layer_path(LAYER)
    _link(index, elsewhere / "crops" / "index.json")
    store = CropStore(assets)
    assert store.index() == {} and not store.exists()
    assert CropStore(assets).load(LAYER) is not None  # the layer file and its pool are its own
    _link(layer_file, elsewhere / "crops" / layer_file.name)
    assert CropStore(assets).load(LAYER) is None
    layer_file.unlink()
    _fill(assets)  # a real layer file again, now its pool is a link
    pool = next((assets / "crops").glob(f"{LAYER}.*.pool"))
    _link(pool, next((elsewhere / "crops").glob(f"{LAYER}.*.pool")))
    with caplog.at_level(logging.WARNING):
        assert CropStore(assets).load(LAYER) is None
    assert "symbolic link" in caplog.text
    # the whole crops folder a link: nothing read, nothing written or moved there
    _link(assets / "crops", elsewhere / "crops")
    before = sorted(p.name for p in (elsewhere / "crops").iterdir())
    store = CropStore(assets)
    assert store.load(LAYER) is None and store.index() == {}
    with pytest.raises(UserError, match="symbolic link"):
        store.commit({LAYER: _found([[9.0, 8.0], [9.0, 8.0]], [[7, 8], [7, 8]])}, {7: {"path": "c.png"}},
                     {"model": MODEL, "side": 4})
    with pytest.raises(UserError, match="symbolic link"):
        store.repair([LAYER])
    assert sorted(p.name for p in (elsewhere / "crops").iterdir()) == before


def test_linked_circuits_are_refused_and_never_written_through(tmp_path, outside):
    elsewhere = _fill(tmp_path / "elsewhere", source="prev")
    assets = _fill(tmp_path / "assets", source="prev")
    path = CircuitStore(assets).layer_path(LAYER)
    assert CircuitStore(assets).load(LAYER) is not None
    _link(path, elsewhere / "circuits" / path.name)
    assert CircuitStore(assets).load(LAYER) is None
    _link(assets / "circuits", elsewhere / "circuits")
    assert CircuitStore(assets).load(LAYER) is None and CircuitStore(assets).unit(LAYER, 0) is None
    before = (elsewhere / "circuits" / path.name).read_bytes()
    with pytest.raises(UserError, match="symbolic link"):
        CircuitStore(assets).commit(LAYER, [0], 2, "", "", np.ones((1, 0)), np.ones((1, 0)), np.ones(1),
                                    np.array([1]), np.array([[1, 2]]))
    assert (elsewhere / "circuits" / path.name).read_bytes() == before


def test_linked_done_records_do_not_count_and_are_never_written_through(tmp_path, outside):
    assets = _fill(tmp_path / "assets")
    records = TaskRecords(assets)
    task = plan_unit_tasks({LAYER: [0, 1]}, UnitParams("lucid", 16, 8, 2, 0), MODEL)[0]
    (outside / "done.json").write_text(json.dumps({"task": task.id}))
    records.dir.mkdir(parents=True)
    _link(records.path(task), outside / "done.json")
    assert not records.done(task)
    records.mark(task, seconds=1.0)  # replaces the link with its own record
    assert records.done(task) and not records.path(task).is_symlink()
    _link(assets / "precompute", outside)
    (outside / "done").mkdir()
    (outside / "done" / f"{task.id}.json").write_text(json.dumps({"task": task.id}))
    assert not TaskRecords(assets).done(task)
    with pytest.raises(UserError, match="symbolic link"):
        TaskRecords(assets).mark(task, seconds=1.0)


def test_a_site_folder_that_is_a_link_is_not_written_through(tmp_path, outside):
    from toolbox.atlas import write_atlas

    assets = _fill(tmp_path / "assets")
    site = tmp_path / "site"
    site.mkdir()
    os.symlink(outside, site / LAYER)
    with pytest.raises(UserError, match="symbolic link"):
        write_atlas(MODEL, [(LAYER, 2)], assets, site)
    assert sorted(p.name for p in outside.iterdir()) == ["passwd"]


def test_read_inside_refuses_links_everywhere_below_the_root(tmp_path, outside):
    from toolbox.files import Refused, read_inside

    root = tmp_path / "store"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "own.json").write_bytes(b"{}")
    os.symlink(outside, root / "away")
    os.symlink(root / "sub" / "own.json", root / "alias.json")
    assert read_inside(root, root / "sub" / "own.json", "file", 100) == b"{}"
    assert read_inside(root, root / "missing.json", "file", 100) is None
    for path in (root / "away" / "passwd", root / "alias.json", root / ".." / "outside" / "passwd",
                 outside / "passwd", root / "sub"):
        with pytest.raises(Refused):
            read_inside(root, path, "file", 100)
    with pytest.raises(UserError, match="limit"):
        read_inside(root, root / "sub" / "own.json", "file", 1)


# -- kind 3: what an .npz declares is checked before anything is allocated ---------------------


def _npy_header(shape: tuple[int, ...], descr: str = "<f4") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asanyarray(array))
    return buf.getvalue()


def _peak_while(load) -> tuple[object, int]:
    """What ``load()`` returns and the most memory Python and numpy held meanwhile."""
    tracemalloc.start()
    try:
        result = load()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _circuit_members(**crafted: bytes) -> dict[str, bytes]:
    members = {"source": _npy(np.array("")), "target": _npy(np.array("")), "inputs": _npy(np.zeros((2, 0), np.float32)),
               "outputs": _npy(np.zeros((2, 0), np.float32)), "values": _npy(np.ones(2, np.float32)),
               "images": _npy(np.array([1, 1], np.int32)), "made_from": _npy(np.ones((2, 2), np.int64))}
    return {**members, **crafted}


def _write_npz(path: Path, members: dict[str, bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(f"{name}.npy", data)


def test_a_circuits_file_declaring_a_huge_array_is_refused_without_allocating_it(tmp_path, caplog):
    store = CircuitStore(tmp_path)
    path = store.layer_path(LAYER)
    _write_npz(path, _circuit_members())
    assert store.load(LAYER) is not None  # the crafted file's other members are sound
    _write_npz(path, _circuit_members(inputs=_npy_header((50000, 50000)) + bytes(64)))  # 10 GB declared
    with caplog.at_level(logging.WARNING):
        got, peak = _peak_while(lambda: CircuitStore(tmp_path).load(LAYER))
    assert got is None and peak < 16 << 20, peak
    assert "damaged" in caplog.text


def test_deflated_zeros_in_a_circuits_file_are_refused_before_inflating(tmp_path):
    path = CircuitStore(tmp_path).layer_path(LAYER)
    members = _circuit_members()
    del members["inputs"]
    _write_npz(path, members)
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        with z.open("inputs.npy", "w", force_zip64=True) as m:  # 256 MiB of zeros, about 1 MB on disk
            m.write(_npy_header((2, 1 << 25)))
            zeros = bytes(1 << 20)
            for _ in range(256):
                m.write(zeros)
    assert path.stat().st_size < 4 << 20
    got, peak = _peak_while(lambda: CircuitStore(tmp_path).load(LAYER))
    assert got is None and peak < 16 << 20, peak


def test_a_crops_file_declaring_a_huge_array_is_refused_without_allocating_it(tmp_path):
    _fill(tmp_path)
    path = CropStore(tmp_path).layer_path(LAYER)
    with zipfile.ZipFile(path) as z:
        members = {name.removesuffix(".npy"): z.read(name) for name in z.namelist()}
    members["top_values"] = _npy_header((50000, 50000)) + bytes(64)
    _write_npz(path, members)
    got, peak = _peak_while(lambda: CropStore(tmp_path).load(LAYER))
    assert got is None and peak < 16 << 20, peak


def test_read_npz_checks_declared_shapes_and_bytes(tmp_path):
    from toolbox.assets.stored_arrays import DamagedArrays, read_npz

    path = tmp_path / "a.npz"
    np.savez(path, a=np.arange(6.0).reshape(2, 3), f=np.asfortranarray(np.arange(6).reshape(2, 3)), s=np.array("x<y>"),
             unnamed=np.ones(3))
    got = read_npz(tmp_path, path, "arrays", {"a": (2, 3), "f": (4, 4), "s": ()})
    assert sorted(got) == ["a", "f", "s"] and got["f"].tolist() == [[0, 1, 2], [3, 4, 5]] and str(got["s"]) == "x<y>"
    got["a"][0, 0] = 7.0  # writable, as np.load's arrays are
    for shapes in ({"a": (1, 3)}, {"a": (2,)}):
        with pytest.raises(DamagedArrays, match="declares shape"):
            read_npz(tmp_path, path, "arrays", shapes)
    _write_npz(path, {"a": _npy_header((2, 3)) + bytes(8)})  # declares 24 bytes, holds 8
    with pytest.raises(DamagedArrays):
        read_npz(tmp_path, path, "arrays", {"a": (2, 3)})
    _write_npz(path, {"a": _npy(np.array([{"x": 1}], dtype=object))})
    with pytest.raises(DamagedArrays, match="not numbers"):
        read_npz(tmp_path, path, "arrays", {"a": (1,)})
    path.write_bytes(b"not a zip")
    with pytest.raises(DamagedArrays):
        read_npz(tmp_path, path, "arrays", {"a": (1,)})


# -- kind 4: deep JSON is damage; any layer name gets files ------------------------------------

DEEP = b"[" * 100_000


def test_deeply_nested_json_in_a_store_is_damage_not_a_traceback(tmp_path, caplog):
    assets = _fill(tmp_path)
    folder, store = UnitImageFolder(assets), CropStore(assets)
    task = plan_unit_tasks({LAYER: [0]}, UnitParams("lucid", 16, 8, 1, 0), MODEL)[0]
    records = TaskRecords(assets)
    records.mark(task)
    for path in (folder.record_path, store.index_path, folder.objectives_path(LAYER), records.path(task)):
        path.write_bytes(DEEP)
    with caplog.at_level(logging.WARNING):
        assert folder.held_model() is None
        assert store.index() == {} and folder.objectives(MODEL, LAYER) == {}
        assert not records.done(task)
    assert "nested too deeply" in caplog.text
    assert all(len(m.splitlines()) == 1 for m in caplog.messages)
    # the writers move them aside and start again
    folder.record(MODEL, LAYER, {1: 2.0})
    store.commit({LAYER: _found([[9.0, 8.0], [9.0, 8.0]], [[7, 8], [7, 8]])}, {7: {"path": "c.png"}},
                 {"model": MODEL, "side": 4})
    assert list(folder.objectives(MODEL, LAYER)) == ["1"] and list(store.index()["images"]) == ["7"]
    assert len(list(assets.glob(f"{LAYER}_objectives.json.damaged-*"))) == 1
    assert len(list((assets / "crops").glob("index.json.damaged-*"))) == 1
    records.mark(task)
    assert records.done(task)


def test_a_deeply_nested_record_is_ignored_by_the_atlas(tmp_path):
    from toolbox.atlas import write_atlas

    assets = _fill(tmp_path / "assets")
    UnitImageFolder(assets).record_path.write_bytes(DEEP)
    (assets / "crops" / "index.json").write_bytes(DEEP)
    report = write_atlas(MODEL, [(LAYER, 2)], assets, tmp_path / "site")
    assert report.unit_images == 1 and report.units_with_crops == 0  # the index is unreadable: crops not shown


LONG = "L" * 300
ODD_NAMES = [LONG, "mixed<4>", "a/b c", ".."]
_LINKED = re.compile(r'(?:href|src|data-[a-z]+)="([^"#]+)"')


@pytest.mark.parametrize("layer", ODD_NAMES)
def test_any_layer_name_gets_its_files_and_atlas_pages(tmp_path, layer):
    from toolbox.assets.crop_sheets import write_crop_sheets
    from toolbox.atlas import write_atlas
    from toolbox.names import safe_name

    assets = _fill(tmp_path / "assets", "plain")
    _fill(assets, layer, source="plain")
    folder, store = UnitImageFolder(assets), CropStore(assets)
    folder.save_sheet(layer, [0], [_image()])
    assert folder.load(layer, 0) is not None and folder.load_transparency(layer, 0) is not None
    assert folder.objectives(MODEL, layer)["0"]["objective"] == 1.5
    assert store.unit(layer, 1)[1].tolist() == [5.0, 1.0]
    assert CircuitStore(assets).unit(layer, 0).inputs.source == "plain"
    assert len(write_crop_sheets(store, [layer], assets)) == 1
    records = TaskRecords(assets)
    task = plan_unit_tasks({layer: [0]}, UnitParams("lucid", 16, 8, 1, 0), MODEL)[0]
    records.mark(task)
    assert records.done(task)
    names = [p for p in assets.rglob("*")]
    assert all(len(p.name.encode()) <= 255 for p in names)
    assert {p.parent for p in names if p.is_file()} <= {assets, assets / "crops", assets / "circuits",
                                                        records.dir}  # no folder made of a name's "/"

    site = tmp_path / "site"
    report = write_atlas(MODEL, [("plain", 2), (layer, 2)], assets, site)
    assert report.layers == 2 and report.unit_images == 2
    assert (site / safe_name(layer) / "img" / "0.png").is_file()
    assert f"<h1>{html.escape(layer)} unit 0</h1>" in (site / safe_name(layer) / "0.html").read_text()
    for page in site.rglob("*.html"):  # every link and image of every page is there
        for target in _LINKED.findall(page.read_text()):
            assert (page.parent / unquote(target)).exists(), (page, target)
    _assert_nothing_from_outside(site)


def test_circuits_of_a_layer_with_no_layer_before_or_after_show_as_none(tmp_path):
    """Found on the way: a network with one offered layer stores circuits with neither side,
    which the atlas took for a circuit and failed on."""
    from toolbox.atlas import write_atlas

    assets = _fill(tmp_path / "assets", source="")
    write_atlas(MODEL, [(LAYER, 2)], assets, tmp_path / "site")
    page = (tmp_path / "site" / LAYER / "0.html").read_text()
    assert 'strongest inputs and outputs</h2><div class="missing row">' in page


def test_a_model_whose_layers_no_file_can_be_named_after_gets_assets_and_a_site(tmp_path, capsys):
    """End to end on a tiny Keras model file: a ReLU named with 300 characters and ``<``/``>``
    gets unit images, crops, circuits, precompute records and atlas pages."""
    import keras

    from conftest import EXAMPLES
    from toolbox.cli import main

    keras.utils.set_random_seed(0)
    x = inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv<a>")(x)
    x = keras.layers.ReLU(name="relu<" + LONG + ">")(x)
    x = keras.layers.Conv2D(6, 3, padding="same", name="conv_b")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(3, name="logits")(x)
    keras.Model(inputs, keras.layers.Softmax(name="predictions")(x)).save(tmp_path / "odd.keras")
    (tmp_path / "settings.yaml").write_text(json.dumps({"cache_dir": str(tmp_path / "cache")}))
    common = ["--model", str(tmp_path / "odd.keras"), "--settings", str(tmp_path / "settings.yaml")]
    assert main(["layers", "--json", *common]) == 0
    layers = [entry["name"] for entry in json.loads(capsys.readouterr().out)]
    assert len(layers) == 2
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("chelsea.png", "coffee.png"):
        (photos / name).write_bytes((EXAMPLES / name).read_bytes())
    assets, site = tmp_path / "assets", tmp_path / "site"
    assert main(["precompute", "--layers", ",".join(layers), "--units", "0-1", "--unit-images", "--crops", str(photos),
                 "--circuits", "--size", "16", "--steps", "2", "--batch", "2", "-o", str(assets), *common]) == 0
    assert main(["atlas", "--assets", str(assets), "-o", str(site), *common]) == 0
    assert all(len(p.name.encode()) <= 255 for p in [*assets.rglob("*"), *site.rglob("*")])
    pages = list(site.rglob("*.html"))
    assert len(pages) == 1 + 2 + 4 + 6  # the index, each layer's, and with crops every unit's
    for page in pages:
        for target in _LINKED.findall(page.read_text()):
            assert (page.parent / unquote(target)).exists(), (page, target)
    _assert_nothing_from_outside(site)
