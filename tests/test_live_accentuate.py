"""The window's accentuation mode: the optimized-image pane shows the selected unit made
stronger in the frame on screen (optvis.accentuation), refined by the network worker between
frames; the key, the worker's messages, the window's requests and headless recordings."""

import time

import numpy as np
import pytest

from conftest import worker_results


def _worker(net, tmp_path, steps=24):
    from toolbox.app.modes.accent import AccentSettings
    from toolbox.app.worker import NetworkWorker, UnitImageSettings
    from toolbox.assets import UnitImageFolder

    return NetworkWorker(net, UnitImageFolder(tmp_path / "units"), UnitImageSettings("lucid", 16, 24),
                         AccentSettings(net.spec.input_size, steps, 1.0))


def _picture(seed=0, side=8):
    from toolbox.app.protocol import frozen

    return frozen(np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8))


def test_the_accentuate_key_toggles_the_pane():
    from toolbox.app.modes import apply, key_map
    from toolbox.app.state import ViewState
    from toolbox.settings import DEFAULT_KEYS, Settings

    assert key_map({}).lookup(ord(DEFAULT_KEYS["accentuate"][0])) == ("accentuate", False)
    on = apply(ViewState(), "accentuate", (4, 6))
    assert on.accentuate and not apply(on, "accentuate", (4, 6)).accentuate
    assert not Settings().live.accentuate


def test_the_worker_refines_an_accentuation_visibly_between_frames(tiny, tmp_path):
    from toolbox.app.modes.accent import AccentImage, AccentRequest
    from toolbox.app.worker import FrameRequest, FrameResult

    worker = _worker(tiny, tmp_path)
    worker.start()
    try:
        request = AccentRequest("conv_b", 1, _picture())
        worker.ask("accent", request)
        worker.frames.put(FrameRequest(1, _picture(1)))  # frames are answered while it refines
        shown = worker_results(worker, AccentImage, lambda r: r.done)
        assert [r.result.steps for r in shown] == [8, 16, 24] and all(r.request is request for r in shown)
        assert all(r.result.image.shape == (8, 8, 3) and not r.result.image.flags.writeable for r in shown)
        last = shown[-1].result
        assert last.after > last.before and np.isfinite(last.psnr)
        worker.frames.put(FrameRequest(2, _picture(1)))
        worker_results(worker, FrameResult, lambda r: r.frame_id == 2)
    finally:
        worker.stop()
    again = worker.at_once("accent", request)[""]  # all at once (headless): the same picture, step for step
    assert np.array_equal(again.result.image, last.image) and again.result.after == pytest.approx(last.after, rel=1e-4)


def test_a_new_request_replaces_the_accentuation_and_none_stops_it(tiny, tmp_path):
    """Driven turn by turn (no thread), so what each turn does is certain."""
    from toolbox.app.modes.accent import AccentImage, AccentRequest
    from toolbox.app.protocol import Answer

    worker = _worker(tiny, tmp_path, steps=16)

    def turns(n):
        for _ in range(n):
            worker._turn()
        sent = []
        while not worker.results.empty():
            sent.append(worker.results.get_nowait())
        return [r.value for r in sent if isinstance(r, Answer) and isinstance(r.value, AccentImage)]

    first, second = AccentRequest("conv_b", 1, _picture(0)), AccentRequest("conv_a", 2, _picture(1))
    worker.ask("accent", first)
    assert turns(1) == []  # 4 steps: nothing to show yet
    worker.ask("accent", second)  # the selection moved: the first is dropped
    shown = turns(10)
    assert [r.request for r in shown] == [second] * 2 and shown[-1].done
    worker.ask("accent", first)
    worker.ask("accent", None)  # accentuation mode off
    assert turns(10) == []


@pytest.fixture()
def app_settings(tiny_settings, tmp_path):
    from toolbox.settings import load_settings

    return load_settings(None, {"model": "tiny", "models_dir": tiny_settings.models_dir,
                                "cache_dir": tiny_settings.cache_dir, "units.output_dir": str(tmp_path / "units"),
                                "live.unit_image_delay": 0.0, "live.unit_image_steps": 8, "live.unit_image_size": 16,
                                "live.accentuate": True, "accentuate.steps": 16})


@pytest.fixture()
def still_photos(tmp_path):
    from toolbox.app.sources import open_source
    from toolbox.images import write_image

    folder = tmp_path / "photos"
    folder.mkdir()
    for k in range(2):
        write_image(folder / f"p{k}.png", np.repeat(np.repeat(_picture(k, 8), 4, 0), 4, 1))
    return open_source(str(folder))


def _pane(app, session):
    """(title, picture, note) of the optimized-image pane as the dashboard draws it."""
    from toolbox.app.modes.accent import TITLE

    view = app.view(session)
    data = view.data(view.owner("unit_image"))
    return (TITLE, data.image, data.note) if view.owner("unit_image") == "accent" else (data.title, data.image,
                                                                                        data.note)


def _tick_until(app, session, done, what, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        app.tick(session)
        if done():
            return
        time.sleep(0.01)
    raise AssertionError(f"waited {timeout:.0f} s for {what}")


def test_the_window_accentuates_the_picture_on_screen_and_follows_the_next_one(tiny, app_settings, still_photos,
                                                                               tmp_path):
    from toolbox.app.live import build_live_app
    from toolbox.settings import DEFAULT_KEYS

    app = build_live_app(tiny, app_settings, still_photos)
    session = app.new_session()
    app.worker.start()
    try:
        def accentuated():  # the pane shows the finished accentuation of the picture on screen
            a = session.slot("accent").get()
            return (a is not None and a.done and session.latest is not None
                    and a.request.image is session.latest.image)

        _tick_until(app, session, accentuated, "the first picture's accentuation")
        first = session.slot("accent").get()
        title, image, note = _pane(app, session)
        assert title == "accentuated in this frame" and image is first.result.image and "16/16" in note
        assert not (tmp_path / "units" / "conv_a_0000.png").exists()  # the pane is busy: no unit image made
        assert session.slot("unit_image").get("crops") is not None  # but the crops pane still gets the unit's crops

        canvas = app.tick(session)
        app.on_key(session, ord(DEFAULT_KEYS["next_image"][0]), canvas)
        _tick_until(app, session, lambda: accentuated() and session.slot("accent").get() is not first,
                    "the next picture's")
        assert not np.array_equal(session.slot("accent").get().request.image, first.request.image)

        app.on_key(session, ord(DEFAULT_KEYS["accentuate"][0]), canvas)  # off: the unit's optimized image
        assert not session.state.accentuate and "accentuate" in app.keymap.bindings
        made = session.slot("unit_image")
        _tick_until(app, session, lambda: made.get() is not None and made.get().done,
                    "the unit image once the pane is free")
        assert _pane(app, session)[0] == "optimized image" and session.slot("accent").asked is None
    finally:
        app.worker.stop()
        app.close()


def test_headless_recordings_accentuate_every_frame(tiny, app_settings, still_photos, tmp_path):
    import cv2

    from toolbox.app import layout as L
    from toolbox.app.live import build_live_app
    from toolbox.images import read_image

    app = build_live_app(tiny, app_settings, still_photos)
    written = app.run_headless(2, tmp_path / "out", None, unit=3)
    for path in written:
        shot = read_image(path).astype(float)
        pane = shot[L.UNIT_IMAGE.y:L.UNIT_IMAGE.y + L.UNIT_IMAGE.h, L.UNIT_IMAGE.x:L.UNIT_IMAGE.x + L.UNIT_IMAGE.w]
        photo = shot[L.INPUT.y:L.INPUT.y + L.INPUT.h, L.INPUT.x:L.INPUT.x + L.INPUT.w]
        photo = cv2.resize(photo, (L.UNIT_IMAGE.w, L.UNIT_IMAGE.h), interpolation=cv2.INTER_AREA)
        # the pane holds this frame, accentuated: close to the input pane's picture, not a unit image
        assert np.corrcoef(pane.ravel(), photo.ravel())[0, 1] > 0.6


def test_a_failed_accentuation_is_named_and_not_asked_again(tiny, app_settings, still_photos, monkeypatch,
                                                           tmp_path):
    """The worker drops what fails and says which; the window shows it failed and waits for
    a new selection instead of waiting forever or asking again at the frame rate."""
    from toolbox.app.live import build_live_app
    from toolbox.app.modes.accent import AccentRequest
    from toolbox.app.protocol import WorkerError

    worker = _worker(tiny, tmp_path)
    worker.ask("accent", AccentRequest("conv_b", 99, _picture()))  # out of range: fails at its start
    worker._turn()
    error = worker.results.get_nowait()
    assert isinstance(error, WorkerError) and "out of range" in error.message
    assert error.mode == "accent" and error.request.unit == 99

    app = build_live_app(tiny, app_settings, still_photos)
    starts = []

    def broken(request):
        starts.append(request)
        raise RuntimeError("no memory")

    monkeypatch.setattr(app.worker.work["accent"], "begin", broken)
    session = app.new_session()
    app.worker.start()
    try:
        _tick_until(app, session, lambda: session.slot("accent").failed is not None, "the failure to reach the window")
        for _ in range(20):
            app.tick(session)
        assert len(starts) == 1 and "no memory" in session.message
        assert _pane(app, session)[1:] == (None, "failed: see the status line")
        canvas = app.tick(session)
        app.on_key(session, ord("l"), canvas)  # another unit: asked again
        _tick_until(app, session, lambda: len(starts) == 2, "the next unit's accentuation to be asked for")
    finally:
        app.worker.stop()
        app.close()
