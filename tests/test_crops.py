"""Natural exemplars: the exact top-K merge, receptive fields, and `deepvis crops` on real
lite0 against a brute-force computation, split runs, killed runs and bad inputs."""

import logging
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
import yaml

from conftest import EXAMPLES, deepvis
from toolbox.assets.crops import EMPTY, CropStore, Entries, merge

LAYERS = ["block4_add", "block9_add"]
K = 5


def _random_entries(rng, units, n, ids):
    values = rng.normal(size=(units, n)).astype(np.float32)
    values[:, 0] = values[:, 1]  # ties, broken by source id
    return Entries(values, rng.choice(ids, size=(units, n), replace=False).astype(np.int64)
                   if units == 1 else np.stack([rng.permutation(ids)[:n] for _ in range(units)]),
                   rng.integers(0, 7, size=(units, n, 2)).astype(np.int16))


@pytest.mark.parametrize("descending", [True, False])
def test_merge_of_parts_equals_top_k_of_the_union(descending):
    rng = np.random.default_rng(0)
    full = _random_entries(rng, units=6, n=40, ids=np.arange(1000, 1100))
    split = [Entries(full.values[:, a:b], full.sources[:, a:b], full.positions[:, a:b]) for a, b in
             [(0, 13), (13, 29), (29, 40)]]
    one = merge([full], K, descending)[0]
    stepwise = Entries.empty(6, K, descending)
    for part in split:
        stepwise = merge([stepwise, part], K, descending)[0]
    for u in range(6):  # brute force: sort by (value, source)
        pairs = sorted(zip(full.values[u], full.sources[u]), key=lambda p: ((-p[0] if descending else p[0]), p[1]))
        assert [s for _, s in pairs[:K]] == one.sources[u].tolist() == stepwise.sources[u].tolist()
    assert np.array_equal(one.values, stepwise.values) and np.array_equal(one.positions, stepwise.positions)


@pytest.mark.parametrize("descending", [True, False])
def test_merging_only_the_units_a_candidate_can_enter_changes_nothing(descending):
    from toolbox.assets.crops import merge_candidates

    rng = np.random.default_rng(1)
    best = Entries.empty(30, K, descending)
    for start in range(0, 200, 8):  # batches of 8 images, ids in order
        batch = Entries(rng.normal(size=(30, 8)).astype(np.float32),
                        np.broadcast_to(np.arange(start, start + 8), (30, 8)).copy(), np.zeros((30, 8, 2), np.int16))
        full = merge([best, batch], K, descending)[0]
        best = merge_candidates(best, batch, descending)
        assert np.array_equal(best.sources, full.sources) and np.array_equal(best.values, full.values)


def test_merge_drops_a_source_seen_twice_and_keeps_crop_slots_with_their_entries():
    values = np.array([[5.0, 4.0, 3.0]], np.float32)
    a = Entries(values, np.array([[7, 8, 9]]), np.zeros((1, 3, 2), np.int16), np.array([[0, 1, 2]]))
    b = Entries(values - 0.5, np.array([[8, 10, 11]]), np.zeros((1, 3, 2), np.int16), np.array([[10, 11, 12]]))
    out, _ = merge([a, b], 4, True)
    assert out.sources[0].tolist() == [7, 8, 10, 9]  # 8 appears once, with its better value (from b)
    assert out.values[0].tolist() == [5.0, 4.5, 3.5, 3.0]
    assert out.slots[0].tolist() == [0, 10, 11, 2]
    assert merge([Entries.empty(1, 3, True), Entries.empty(1, 3, True)], 3, True)[0].sources[0].tolist() == [EMPTY] * 3


def _found(values, sources, crops_value, k=2):
    """A layer's new entries (one unit per row, top side only) whose crops are filled with
    ``crops_value`` + slot."""
    from toolbox.assets.crops import LayerCrops

    n = values.shape[0] * values.shape[1]
    entries = Entries(np.asarray(values, np.float32), np.asarray(sources, np.int64),
                      np.zeros((*values.shape, 2), np.int16), np.arange(n).reshape(values.shape))
    pool = (crops_value + np.arange(n, dtype=np.uint8))[:, None, None, None] * np.ones((1, 4, 4, 3), np.uint8)
    return LayerCrops(entries, None, pool=pool)


@pytest.mark.slow
def test_the_pool_grows_by_what_a_commit_adds_and_is_compacted_when_mostly_dead(tmp_path):
    store = CropStore(tmp_path)
    record = 4 * 4 * 3
    store.commit({"L": _found(np.array([[3.0, 2.0], [5.0, 1.0]]), [[1, 2], [1, 2]], 10)}, {}, {})
    pools = sorted((tmp_path / "crops").glob("L.*.pool"))
    assert [p.name for p in pools] == ["L.1.pool"] and pools[0].stat().st_size == 4 * record
    # unit 0 gains one entry (4.0 > 2.0), unit 1 none: one crop appended, the rest untouched
    store.commit({"L": _found(np.array([[4.0, 0.5], [0.5, 0.2]]), [[3, 4], [3, 4]], 100)}, {}, {})
    assert (tmp_path / "crops" / "L.1.pool").stat().st_size == 5 * record
    crops, values = CropStore(tmp_path).unit("L", 0)
    assert values.tolist() == [4.0, 3.0] and crops[:, 0, 0, 0].tolist() == [100, 10]
    assert CropStore(tmp_path).unit("L", 1)[0][:, 0, 0, 0].tolist() == [12, 13]
    # a commit killed after appending: the records nobody points at are cut off by the next one
    with open(tmp_path / "crops" / "L.1.pool", "ab") as f:
        f.write(b"\x07" * record * 3)
    store.commit({"L": _found(np.array([[9.0, 0.1], [0.1, 0.1]]), [[5, 6], [5, 6]], 50)}, {}, {})
    assert (tmp_path / "crops" / "L.1.pool").stat().st_size == 6 * record
    assert CropStore(tmp_path).unit("L", 0)[0][:, 0, 0, 0].tolist() == [50, 100]
    # many commits push entries out; once most records are dead they move to a new pool
    store2 = CropStore(tmp_path)
    for i in range(700):
        store2.commit({"L": _found(np.array([[20.0 + i, 0.0], [20.0 + i, 0.0]]), [[1000 + i, 0], [1000 + i, 0]],
                                   i % 200)}, {}, {})
    names = [p.name for p in (tmp_path / "crops").glob("L.*.pool")]
    assert names == ["L.2.pool"], names
    crops, values = CropStore(tmp_path).unit("L", 1)
    assert values.tolist() == [719.0, 718.0] and crops[:, 0, 0, 0].tolist() == [699 % 200 + 2, 698 % 200 + 2]


def test_a_commit_removes_what_a_killed_writer_left_in_the_crops_folder(tmp_path):
    import os

    from toolbox.files import part_path

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: its pid names no live process
    folder = tmp_path / "crops"
    folder.mkdir()
    mine = part_path(folder / "L.npz")
    stray = mine.with_name(mine.name.replace(f"-{os.getpid()}-", f"-{child.pid}-"))
    stray.write_bytes(b"half a layer file")
    mine.write_bytes(b"a live writer's")
    CropStore(tmp_path).commit({"L": _found(np.array([[3.0, 2.0]]), [[1, 2]], 10)}, {}, {})
    assert not stray.exists() and mine.exists()
    assert CropStore(tmp_path).unit("L", 0)[1].tolist() == [3.0, 2.0]


def test_a_format_1_layer_file_is_read_and_moved_to_a_pool(tmp_path):
    folder = tmp_path / "crops"
    folder.mkdir()
    crops = np.arange(2 * 2, dtype=np.uint8).reshape(2, 2, 1, 1, 1) * np.ones((1, 1, 4, 4, 3), np.uint8)
    np.savez(folder / "L.npz", top_values=np.array([[3.0, 2.0], [1.0, -np.inf]], np.float32),
             top_sources=np.array([[1, 2], [1, EMPTY]]), top_positions=np.zeros((2, 2, 2), np.int16), top_crops=crops)
    store = CropStore(tmp_path)
    assert store.unit("L", 0)[0][:, 0, 0, 0].tolist() == [0, 1] and len(store.unit("L", 1)[0]) == 1
    store.commit({"L": _found(np.array([[9.0, 0.0], [0.0, 0.0]]), [[7, 8], [7, 8]], 50)}, {}, {})
    again = CropStore(tmp_path)
    assert again.unit("L", 0)[0][:, 0, 0, 0].tolist() == [50, 0] and again.unit("L", 1)[1].tolist() == [1.0, 0.0]
    assert "top_crops" not in np.load(folder / "L.npz").files


def test_receptive_field_of_a_tiny_network_is_exact(tiny):
    from toolbox.nets.fields import unit_field

    # conv_a: 3x3 "same" on the input; conv_b: 3x3 "same" on conv_a -> 5x5, centred on the unit
    assert unit_field(tiny, "conv_a").size == 3 and unit_field(tiny, "conv_a").offset_y == -1
    field = unit_field(tiny, "conv_b")
    assert (field.size, field.stride, field.offset_y, field.offset_x) == (5, 1, -2, -2)
    assert field.box(3, 4) == (1, 2, 6, 7)
    assert field.clamped(3).box(3, 4) == (2, 3, 5, 6)


def test_crop_of_a_field_outside_the_image_is_zero_padded():
    from toolbox.assets.crop_job import CropCutter, cut_crop

    image = np.zeros((20, 20, 3), np.uint8)
    image[:10, :10] = 200
    crop = cut_crop(image, -5, -5, 10, 10)  # a field of 10 px shown unscaled, its top-left quarter outside
    assert crop[:5, :5].max() == 0 and crop[5:, 5:].min() == 200
    assert (cut_crop(image, 0, 0, 10, 10) == 200).all()
    halved = cut_crop(image, -10, -10, 20, 10)  # a 20 px field shown at 10 px
    assert halved[:5, :5].max() == 0 and halved[5:, 5:].min() == 200
    assert cut_crop(image, 30, 30, 5, 5).max() == 0  # wholly outside: black
    # the cutter cuts each distinct box once and hands it to every entry that asked for it
    cutter = CropCutter({7: image, 8: 255 - image}, 10)
    boxes = np.array([[7, -5, -5], [8, 0, 0], [7, -5, -5]])
    crops = cutter.cut(boxes, 10)
    assert np.array_equal(crops[0], crop) and np.array_equal(crops[2], crop)
    assert (crops[1] == 55).all()


@pytest.mark.parametrize("lowest", [False, True])
def test_extremes_are_located_exactly_where_a_unit_reaches_its_bound(lowest):
    import tensorflow as tf

    from toolbox.assets.crop_job import _extreme

    rng = np.random.default_rng(3)
    a = rng.integers(-12, 13, size=(6, 5, 7, 9)).astype(np.float32)  # few values: many ties
    a[0, :, :, 0] = 2.0  # a unit equal everywhere: its first position
    flat = a.reshape(6, -1, 9)
    peak = flat.min(1) if lowest else flat.max(1)
    bound = np.median(peak, axis=0).astype(np.float32)  # about half the images reach it
    bound[0] = 2.0
    values, at = (v.numpy() for v in _extreme(tf.constant(a), tf.constant(bound), lowest))
    np.testing.assert_array_equal(values, peak)
    reach = (peak <= bound) if lowest else (peak >= bound)
    assert 0 < reach.sum() < reach.size
    first = (flat.argmin(1) if lowest else flat.argmax(1))  # numpy: the first of equal extremes
    np.testing.assert_array_equal(at[reach], first[reach])
    assert at[0, 0] == 0


def test_a_chunk_offers_only_the_entries_that_reach_the_stored_bound():
    from toolbox.assets.crop_job import _candidates

    values = np.array([[1.0, 5.0], [3.0, 2.0], [2.0, 7.0]], np.float32)  # 3 images, 2 units
    at = np.array([[0, 1], [2, 3], [4, 5]], np.int32)
    ids = np.array([10, 11, 12], np.int64)
    top = _candidates(values, at, ids, 2, np.array([2.0, 9.0], np.float32), True)
    assert top.values.shape == (2, 2)  # unit 0 has two (3.0 and 2.0), unit 1 none
    assert top.values[0].tolist() == [3.0, 2.0] and top.sources[0].tolist() == [11, 12]
    assert top.positions[0].tolist() == [[1, 0], [2, 0]]
    assert (top.sources[1] == EMPTY).all() and np.isneginf(top.values[1]).all()
    low = _candidates(values, at, ids, 2, np.array([np.inf, 2.0], np.float32), False)
    assert low.sources[0].tolist() == [10, 11, 12] and low.sources[1].tolist() == [11, EMPTY, EMPTY]


def test_large_fields_are_cut_from_a_scaled_framed_copy_like_cut_crop():
    from toolbox.assets.crop_job import CropCutter, cut_crop

    y, x = np.mgrid[:96, :96]
    image = np.stack([y * 2.5, x * 2.5, 128 + 100 * np.sin((x + y) / 9)], -1).astype(np.uint8)  # smooth, nowhere alike
    images = {9: 255 - image, 5: image}  # all of a layer's crops come from one gather over both
    cutter = CropCutter(images, 16)
    for size in (24, 40, 96):
        boxes = np.array([[5, 10, 20], [9, 10, 20], [5, -size // 2, -size // 2], [9, 80, 70], [5, 80, 70],
                          [5, -3 * size, 200]])
        got = cutter.cut(boxes, size)
        for box, crop in zip(boxes, got):
            want = cut_crop(images[int(box[0])], int(box[1]), int(box[2]), size, 16)  # one area resize per crop
            assert np.abs(crop.astype(int) - want).mean() < 10, (size, box)  # one scaled pixel off: 28
        assert got[5].max() == 0  # wholly outside: black
    with pytest.raises(ValueError):
        CropCutter({1: image, 2: image[:50]}, 16)


def test_the_store_remembers_what_it_wrote_as_a_fresh_read_sees_it(tmp_path):
    from toolbox.assets.crops import LayerCrops

    rng = np.random.default_rng(1)
    store = CropStore(tmp_path)
    for n in range(3):
        top = _random_entries(rng, 4, 3, np.arange(100 * n, 100 * n + 50))
        top = top.with_slots(np.arange(12).reshape(4, 3))
        pool = rng.integers(0, 256, size=(12, 8, 8, 3)).astype(np.uint8)
        store.commit({"l": LayerCrops(top, None, pool=pool)}, {i: {} for i in range(100 * n, 100 * n + 50)}, {})
        mine, fresh = store.load("l"), CropStore(tmp_path).load("l")
        for a, b in ((mine.top.values, fresh.top.values), (mine.top.sources, fresh.top.sources),
                     (mine.top.slots, fresh.top.slots), (mine.crops(mine.top.slots), fresh.crops(fresh.top.slots))):
            np.testing.assert_array_equal(a, b)


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    """40 photos: the examples and scikit-image's, flipped and rotated, small."""
    from skimage import data

    from toolbox.images import read_image, resize, write_image

    folder = tmp_path_factory.mktemp("photos")
    bases = [read_image(p) for p in sorted(EXAMPLES.glob("*.*")) if p.suffix != ".md"]
    for name in ("horse", "camera", "immunohistochemistry", "coins", "hubble_deep_field"):  # not in examples/
        img = np.asarray(getattr(data, name)())
        img = img.astype(np.uint8) * 255 if img.dtype == bool else img
        bases.append(np.repeat(img[..., None], 3, 2) if img.ndim == 2 else img[..., :3])
    made = []
    for base in bases:
        small = resize(base, 160, max(32, round(160 * base.shape[0] / base.shape[1])))
        for variant in (small, small[:, ::-1], np.rot90(small), small[::-1]):
            made.append(np.ascontiguousarray(variant))
    for i, image in enumerate(made[:40]):
        write_image(folder / f"sub{i % 3}" / f"photo_{i:02d}.png", image)  # subfolders: found recursively
    return folder


def _job(net, root, chunk=256):
    from toolbox.assets.crop_job import CropJob

    return CropJob(net, LAYERS, CropStore(root), K, 24, 100_000_000), chunk


def _run(net, root, paths, chunk=256, **kwargs):
    from toolbox.assets.crop_job import Source

    job, chunk = _job(net, root, chunk)
    return job.run([Source(p, False) for p in paths], batch=8, chunk=chunk, **kwargs)


def _stored(root, layer):
    return CropStore(root).load(layer)


@pytest.mark.slow
def test_top_k_equals_brute_force(lite0, photo_folder, tmp_path):
    from toolbox.assets.crops import content_digest, source_id
    from toolbox.images import list_images, read_image
    from toolbox.nets import Probe

    paths = list_images(photo_folder, recursive=True)
    assert len(paths) == 40
    report = _run(lite0, tmp_path, paths, chunk=16)
    assert report.images == 40 and report.bad == 0
    probe = Probe(lite0, LAYERS)
    ids = [source_id(content_digest(p.read_bytes())) for p in paths]
    acts = [probe(lite0.fit_input(read_image(p))).activations for p in paths]
    for layer in LAYERS:
        stored = _stored(tmp_path, layer)
        for unit in (0, 7, 23):
            peaks = [(float(a[layer][..., unit].max()), i) for a, i in zip(acts, ids)]
            best = sorted(peaks, key=lambda p: (-p[0], p[1]))[:K]
            assert stored.top.sources[unit].tolist() == [i for _, i in best]
            np.testing.assert_allclose(stored.top.values[unit], [v for v, _ in best], rtol=1e-4, atol=1e-4)
            lows = sorted(((float(a[layer][..., unit].min()), i) for a, i in zip(acts, ids)),
                          key=lambda p: (p[0], p[1]))[:K]
            assert stored.bottom.sources[unit].tolist() == [i for _, i in lows]
            # the stored position is where the unit peaks in that image
            a = acts[ids.index(best[0][1])][layer][..., unit]
            assert tuple(stored.top.positions[unit, 0]) == np.unravel_index(np.argmax(a), a.shape)
        crops = stored.crops(stored.top.slots)
        assert crops.shape[2:] == (24, 24, 3) and crops[:, 0].max() > 0
    # a second run over the same photos looks at none of them again
    again = _run(lite0, tmp_path, paths)
    assert (again.images, again.skipped) == (0, 40)


@pytest.mark.slow
def test_two_half_runs_and_a_killed_run_equal_one_full_run(lite0, photo_folder, tmp_path):
    from toolbox.images import list_images

    paths = list_images(photo_folder, recursive=True)
    _run(lite0, tmp_path / "full", paths)
    _run(lite0, tmp_path / "halves", paths[:20])
    _run(lite0, tmp_path / "halves", paths[20:])
    seen = []

    def interrupt(n):
        seen.append(n)
        if len(seen) == 27:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(lite0, tmp_path / "killed", paths, chunk=8, on_image=interrupt)
    resumed = _run(lite0, tmp_path / "killed", paths, chunk=8)
    assert resumed.skipped == 24 and resumed.images == 16  # three chunks of 8 were saved before the kill
    for layer in LAYERS:
        full = _stored(tmp_path / "full", layer)
        for other in ("halves", "killed"):
            got = _stored(tmp_path / other, layer)
            for side in ("top", "bottom"):
                a, b = getattr(full, side), getattr(got, side)
                assert np.array_equal(a.sources, b.sources), (other, layer, side)
                np.testing.assert_allclose(a.values, b.values, rtol=1e-4, atol=1e-4)
                assert np.array_equal(a.positions, b.positions)
                assert np.array_equal(full.crops(a.slots), got.crops(b.slots))


def _priority() -> int | None:
    """This thread's nice value (Linux), or None."""
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) if sys.platform.startswith("linux") else None


def test_a_save_that_fails_behind_the_network_stops_the_run_with_its_error(lite0, photo_folder, tmp_path, caplog):
    # chunks are saved on a thread while the network goes on: a failed save (a full disk)
    # must still end the run with its own error, and what was saved before it stays
    from toolbox.assets.crop_job import Source
    from toolbox.errors import UserError
    from toolbox.images import list_images

    paths = list_images(photo_folder, recursive=True)
    job, _ = _job(lite0, tmp_path)
    commit, commits = job.store.commit, []

    def failing_second(*args):
        commits.append(len(args[1]))
        assert _priority() in (19, None)  # the save yields the CPU to the network
        if len(commits) == 2:
            raise UserError("cannot write crops: no space left on device")
        commit(*args)

    job.store.commit = failing_second
    own_priority = _priority()
    with pytest.raises(UserError, match="no space left"):
        job.run([Source(p, False) for p in paths], batch=8, chunk=8)
    assert commits == [8, 8]  # nothing saved after the failure
    assert _priority() == own_priority  # only the saver's thread
    assert len(CropStore(tmp_path).index()["images"]) == 8
    # stopped (Ctrl-C) while that failing save runs: it is not lost without a word
    commits.clear()
    job.store = CropStore(tmp_path / "again")
    commit, job.store.commit = job.store.commit, failing_second
    shown = []

    def interrupt(n):
        shown.append(n)
        if len(shown) == 17:  # just after the second chunk went to be saved
            raise KeyboardInterrupt

    with caplog.at_level(logging.ERROR, "toolbox"), pytest.raises(KeyboardInterrupt):
        job.run([Source(p, False) for p in paths], batch=8, chunk=8, on_image=interrupt)
    assert commits == [8, 8] and "the save under way failed as well: cannot write crops: no space" in caplog.text


def test_crops_command_skips_bad_images_and_refuses_missing_sources(tmp_path, photo_folder, cache_dir, lite0):
    import shutil

    settings = tmp_path / "settings.yaml"
    settings.write_text(yaml.safe_dump({"model": "efficientnet_lite0", "cache_dir": str(cache_dir),
                                        "crops": {"side": 16}}))
    src = tmp_path / "src"
    shutil.copytree(photo_folder / "sub0", src)
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")

    def crops(*args):
        return deepvis("crops", *args, settings=settings)

    r = crops("--images", str(src), "--layers", "block9_add", "-o", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    assert "broken.jpg" in r.stderr and "1 unreadable" in r.stdout and "Traceback" not in r.stderr
    assert CropStore(tmp_path / "out").unit("block9_add", 3)[0].shape[1:] == (16, 16, 3)
    sheet = tmp_path / "out" / "block9_add_crops.png"  # a picture a person can open, named in the summary
    assert sheet.is_file() and r.stdout.strip().endswith(f"to look at: {sheet}")
    for args, message in ((["--images", str(tmp_path / "nope")], "not found"),
                          (["--images", str(src), "--layers", "block9_ad"], "did you mean: block9_add"),
                          (["--images", str(src), "--top", "0"], "--top (crops.top)")):
        r = crops(*args, "-o", str(tmp_path / "out"))
        assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("deepvis: error:"), r.stderr
        assert message in r.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_backprop_crops_are_made_once_and_again_only_where_the_top_changed(lite0, photo_folder, tmp_path):
    from toolbox.assets.crop_job import backprop_crops
    from toolbox.images import list_images

    paths = list_images(photo_folder, recursive=True)
    _run(lite0, tmp_path, paths[:6])
    store = CropStore(tmp_path)
    made = backprop_crops(lite0, store, ["block9_add"], "guided", 100_000_000)
    filled = int((store.load("block9_add").top.sources != EMPTY).sum())
    assert made == filled == 112 * K
    maps = store.unit_backprop("block9_add", 3)
    assert maps.shape == (K, 24, 24, 3) and all(m.max() > 0 for m in maps)  # every crop has its map
    assert backprop_crops(lite0, store, ["block9_add"], "guided", 100_000_000) == 0  # nothing stale
    before = store.load("block9_add").top.sources.copy()
    _run(lite0, tmp_path, paths[6:12])  # new images enter some units' top K
    after = store.load("block9_add")
    changed = int((after.top.sources != before).sum())
    assert changed > 0 and after.backprop is not None  # kept through the merge, stale where it changed
    assert backprop_crops(lite0, store, ["block9_add"], "guided", 100_000_000) == changed
