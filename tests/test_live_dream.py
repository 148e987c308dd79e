"""Live dream mode: the flow warp, the per-frame dream on the tiny network, and the live
window's dream mode end to end (worker and headless dashboards)."""

import cv2
import numpy as np
import pytest

from conftest import EXAMPLES


def _texture(h=96, w=128, seed=0):
    """A smooth random RGB texture (optical flow needs structure to follow)."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (h // 8, w // 8, 3)).astype(np.float32)
    return np.clip(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), 0, 255).astype(np.uint8)


def _grey(image):
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def test_flow_warp_carries_the_previous_picture_to_the_moved_frame():
    from toolbox.optvis.live_dream import backward_flow, warp

    scene = _texture(seed=1)
    before, after = scene[:, 8:-8], scene[:, 5:-11]  # the camera pans: content moves 3 px to the right
    flow = backward_flow(_grey(after), _grey(before))
    inner = (slice(12, -12), slice(12, -12))
    assert np.median(flow[inner][..., 0]) == pytest.approx(-3, abs=0.5)
    assert np.abs(flow[inner][..., 1]).mean() < 0.5
    carried = warp(before.astype(np.float32), flow)
    still = np.abs(before.astype(float) - after)[inner].mean()
    assert np.abs(carried - after)[inner].mean() < 0.25 * still
    # a still scene has no flow: the previous picture stays where it was
    same = backward_flow(_grey(before), _grey(before))
    assert np.abs(same).mean() < 0.01 and np.abs(same).max() < 0.5
    assert np.abs(warp(before.astype(np.float32), same) - before).mean() < 0.05


def test_dream_size_bounds_both_sides():
    from toolbox.optvis.live_dream import dream_size

    assert dream_size(240, 320, 320, 32) == (240, 320)
    assert dream_size(480, 640, 320, 32) == (240, 320)
    assert dream_size(3000, 40, 320, 32) == (2400, 32)  # never below the network's smallest input


@pytest.fixture()
def live_dream(tiny):
    from toolbox.optvis.live_dream import LiveDream
    from toolbox.optvis.objectives import deepdream

    return LiveDream(tiny, deepdream({"conv_b": 1.0}), steps=2, step_size=0.02, blend=0.85, side=64, seed=0)


def test_each_frame_gets_a_dream_that_a_still_scene_keeps(live_dream):
    frame = _texture(48, 64, seed=2)
    dreams = [live_dream(frame).astype(float) for _ in range(12)]
    assert dreams[0].shape == (48, 64, 3)
    amount = np.abs(dreams[-1] - frame).mean()
    assert amount > 5  # it dreams: the picture is not the frame
    # each frame carries on from the last dream (12 frames of 2 steps dream far more than one
    # frame's 2 steps), and the dream settles: frame N+1's dream is close to frame N's
    assert amount > 3 * np.abs(dreams[0] - frame).mean()
    assert np.abs(dreams[-1] - dreams[-2]).mean() < 0.1 * amount


def test_a_moving_scene_drags_its_dream_along(live_dream):
    scene = _texture(64, 96, seed=3)
    frames = [scene[:, 16 - 2 * k:16 - 2 * k + 64] for k in range(8)]  # content moves 2 px right per frame
    dreams = [live_dream(f).astype(float) for f in frames]
    inner = (slice(10, -10), slice(14, -14))
    moved = np.abs(dreams[-1][:, 2:] - dreams[-2][:, :-2])[inner].mean()  # compared where the content went
    in_place = np.abs(dreams[-1] - dreams[-2])[inner].mean()
    assert moved < 0.6 * in_place


def test_reset_forgets_the_previous_dream(live_dream):
    frame = _texture(48, 64, seed=4)
    first = live_dream(frame)
    for _ in range(5):
        live_dream(frame)
    live_dream.reset()
    again = live_dream(frame)
    assert np.abs(again.astype(int) - first).mean() < np.abs(live_dream(frame).astype(int) - first).mean() + 1


def test_worker_dreams_frames_in_dream_mode_only(tiny, tmp_path):
    from toolbox.app.modes.dream import DreamRequest
    from toolbox.app.worker import FrameRequest, NetworkWorker, UnitImageSettings
    from toolbox.assets import UnitImageFolder

    worker = NetworkWorker(tiny, UnitImageFolder(tmp_path / "u"), UnitImageSettings("lucid", 16, 8))
    frame = _texture(48, 64, seed=5)
    square = tiny.fit_input(frame)
    want = DreamRequest((("conv_b", 1.0),), 2, 0.02, 0.85, "crop", 320)
    results = [worker.observe(FrameRequest(i, square, (("dream", want),), raw=frame)).part("dream") for i in range(3)]
    assert all(r is not None and r.shape == square.shape for r in results)
    assert not results[-1].flags.writeable
    assert np.abs(results[-1].astype(int) - square).mean() > 1
    assert worker.observe(FrameRequest(9, square)).part("dream") is None


def test_headless_dream_mode_records_dreams_in_the_input_pane(tiny, tiny_settings, tmp_path):
    from dataclasses import replace

    from toolbox.app import layout as L
    from toolbox.app.live import build_live_app
    from toolbox.app.sources import open_source
    from toolbox.images import read_image

    panes = {}
    for dream in (False, True):
        settings = replace(tiny_settings, live=replace(tiny_settings.live, dream=dream, dream_step_size=0.05),
                           units=replace(tiny_settings.units, output_dir=str(tmp_path / "units")))
        app = build_live_app(tiny, settings, open_source(str(EXAMPLES / "coffee.png")))
        out = tmp_path / f"dream_{dream}"
        out.mkdir()
        written = app.run_headless(3, out, tmp_path / f"rec_{dream}.mp4")
        assert len(written) == 3 and (tmp_path / f"rec_{dream}.mp4").is_file()
        panes[dream] = [read_image(p)[L.INPUT.y:L.INPUT.y + L.INPUT.h, L.INPUT.x:L.INPUT.x + L.INPUT.w].astype(int)
                        for p in written]
    assert np.array_equal(panes[False][0], panes[False][2])  # the photo, unchanged
    assert np.abs(panes[True][2] - panes[False][2]).mean() > 2  # the dream of it
    assert np.abs(panes[True][2] - panes[False][2]).mean() > np.abs(panes[True][0] - panes[False][0]).mean()



def test_a_frame_that_fails_in_the_worker_is_answered_and_the_next_one_is_sent(tiny, tiny_settings, tmp_path):
    from dataclasses import replace

    from toolbox.app.live import build_live_app
    from toolbox.app.sources import open_source

    settings = replace(tiny_settings, units=replace(tiny_settings.units, output_dir=str(tmp_path / "units")))
    app = build_live_app(tiny, settings, open_source(str(EXAMPLES / "coffee.png")))
    session = app.new_session()
    real, failures = app.worker.observe, ["boom"]

    def flaky(request):
        if failures:
            raise RuntimeError(failures.pop())
        return real(request)

    app.worker.observe = flaky
    app._feed(session)
    app.worker._turn()  # the worker's turn, without its thread
    app._collect(session)
    assert session.message == "RuntimeError: boom" and session.waiting_for is None  # was stuck for good
    app._feed(session)
    app.worker._turn()
    app._collect(session)
    assert session.latest is not None and session.latest.frame_id == session.frame_id == 2
