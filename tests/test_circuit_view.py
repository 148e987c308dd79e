"""The live window's circuit view: its keys on the state, the worker's answer (the engine's
contributions from the gradient pane's own pass), and the real window under Xvfb: the view
appears, a jump lands on the input unit, back returns."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import time

import numpy as np
import pytest

from test_live import X_TOOLS, _photos, _screenshot, _settings_file, missing  # noqa: F401 (xserver: a fixture)
from test_live import xserver  # noqa: F401

CHANNELS = (32, 16, 24, 40)


def test_jump_back_and_from_on_the_state():
    from toolbox.app.keys import Action
    from toolbox.app.state import ViewState, apply, jump

    s = apply(ViewState(layer=3, unit=7), Action.CIRCUIT, CHANNELS)
    assert s.circuit and s.circuit_from == 1
    s = apply(apply(s, Action.CIRCUIT_FROM, CHANNELS), Action.CIRCUIT_FROM, CHANNELS)
    assert s.circuit_from == 3  # three layers back: as far as layer 3 goes
    assert apply(s, Action.CIRCUIT_FROM, CHANNELS).circuit_from == 1  # round again
    s = apply(s, Action.CIRCUIT_NEXT, CHANNELS)
    assert s.circuit_pick == 1
    there = jump(s, 2, 11)
    assert (there.layer, there.unit, there.path, there.circuit_from, there.circuit_pick) == (2, 11, ((3, 7),), 1, 0)
    further = jump(there, 1, 5)
    back = apply(further, Action.CIRCUIT_BACK, CHANNELS)
    assert (back.layer, back.unit, back.path) == (2, 11, ((3, 7),))
    back = apply(back, Action.CIRCUIT_BACK, CHANNELS)
    assert (back.layer, back.unit, back.path) == (3, 7, ())
    assert apply(back, Action.CIRCUIT_BACK, CHANNELS) == back  # at the path's start: nothing
    frozen = jump(apply(ViewState(layer=3, unit=7), Action.FREEZE_BACKPROP, CHANNELS), 1, 2)
    assert frozen.frozen == (1, 2) and frozen.explained == (1, 2)  # the frozen unit follows the path


@pytest.fixture()
def worker(tiny, tmp_path):
    from toolbox.app.worker import NetworkWorker, UnitImageSettings
    from toolbox.assets import UnitImageFolder

    w = NetworkWorker(tiny, UnitImageFolder(tmp_path / "units"), UnitImageSettings("lucid", size=16, steps=8))
    w.start()
    yield w
    w.stop()


def _answer(worker, frame_id, timeout=120.0):
    from toolbox.app.worker import FrameResult, WorkerError

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            r = worker.results.get(timeout=0.1)
        except queue.Empty:
            continue
        if isinstance(r, WorkerError):
            raise AssertionError(r.message)
        if isinstance(r, FrameResult) and r.frame_id == frame_id:
            return r
    raise AssertionError(f"no answer to frame {frame_id} within {timeout}s")


def test_worker_answers_the_circuit_from_the_gradient_panes_pass(worker, tiny):
    from toolbox.app.worker import BackpropRequest, CircuitRequest, FrameRequest
    from toolbox.optvis.circuits import CircuitTracer

    image = np.random.default_rng(3).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    expected, values = CircuitTracer(tiny).inputs(image[None].astype(np.float32), "conv_b", 4)
    order = np.argsort(-expected[0])
    want = CircuitRequest("conv_b", 4, "relu_a", excitatory=2, inhibitory=1)
    for frame_id, backprop in enumerate((None, BackpropRequest("conv_b", 4, "guided", "norm"),
                                         BackpropRequest("conv_b", 1, "gradient", "raw")), 1):
        worker.frames.put(FrameRequest(frame_id, image, backprop, circuit=want))
        result = _answer(worker, frame_id)
        got = result.circuit
        assert got.request == want and got.value == pytest.approx(values[0], rel=1e-5)
        positive = [int(k) for k in order if expected[0, k] > 0][:2]
        assert [link.unit for link in got.links[:got.excitatory]] == positive
        assert all(link.contribution < 0 for link in got.links[got.excitatory:])
        assert (result.gradient is None) == (backprop is None)
        if backprop is not None:
            assert result.gradient.request == backprop
    worker.frames.put(FrameRequest(9, image))  # the view off: no circuit, the Probe alone
    assert _answer(worker, 9).circuit is None


@pytest.mark.skipif(bool(missing), reason=f"needs {', '.join(missing)} (apt-get install xvfb xdotool imagemagick)")
def test_real_window_circuit_view_jumps_to_an_input_and_back(tmp_path, cache_dir, lite0, xserver):  # noqa: F811
    import cv2

    from toolbox.app import layout as L
    from toolbox.app.dashboard import BACKGROUND, circuit_title, fill, new_canvas
    from toolbox.app.worker import CircuitRequest
    from toolbox.images import read_image
    from toolbox.optvis.circuits import CircuitTracer

    photos = _photos(tmp_path)
    first = sorted(photos.iterdir())[0]
    layer, source, further = "block9_add", "block9_dw_relu", "block8_project_bn"  # the window's first layer
    contributions, _ = CircuitTracer(lite0).inputs(lite0.fit_input(read_image(first))[None].astype(np.float32),
                                                   layer, 0)
    strongest = int(np.argmax(contributions[0]))
    strip = (slice(L.CROPS.y - 22, L.CROPS.y - 2), slice(L.CROPS.x, L.CROPS.x + L.CROPS.w))

    def expected_title(request):
        canvas = new_canvas()
        fill(canvas, BACKGROUND)
        circuit_title(canvas, request)
        return cv2.cvtColor(canvas[strip], cv2.COLOR_RGB2BGR).astype(int)

    start_title = expected_title(CircuitRequest(layer, 0, source))
    input_title = expected_title(CircuitRequest(source, strongest, further))
    env = {**os.environ, "DISPLAY": xserver}
    proc = subprocess.Popen([sys.executable, "-m", "toolbox", "live", "--input", str(photos),
                             "--settings", str(_settings_file(tmp_path, cache_dir))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        window = ""
        for _ in range(120):
            window = subprocess.run(["xdotool", "search", "--name", "^deepvis$"], capture_output=True, text=True,
                                    env=env).stdout.split()
            if window or proc.poll() is not None:
                break
            time.sleep(0.5)
        assert window, proc.communicate(timeout=5)[1]
        window = window[0]

        def wait_for(ok, timeout=120.0):
            """The first screenshot for which ``ok`` holds (the last one when time runs out)."""
            deadline = time.time() + timeout
            while True:
                shot = _screenshot(xserver)
                if ok(shot) or time.time() > deadline:
                    return shot
                time.sleep(0.3)

        def key(name):
            subprocess.run(["xdotool", "key", "--window", window, name], env=env, capture_output=True)

        def shows(title):
            return lambda shot: np.abs(shot[strip] - title).mean() < 1.0

        notes = L.CIRCUIT_NOTES
        inputs_drawn = lambda shot: shot[notes.y:notes.y + 40, notes.x:notes.x + 150].std() > 10  # noqa: E731
        grid = (slice(L.GRID.y, L.GRID.y + L.GRID.h), slice(L.GRID.x, L.GRID.x + L.GRID.w))
        wait_for(lambda shot: shot[grid].std() > 5)  # the network's first answer is drawn
        key("v")
        shot = wait_for(lambda s: shows(start_title)(s) and inputs_drawn(s))
        assert shows(start_title)(shot) and inputs_drawn(shot), "the circuit view did not appear"
        key("Return")  # to the strongest excitatory input, highlighted at first
        shot = wait_for(lambda s: shows(input_title)(s) and inputs_drawn(s))
        assert shows(input_title)(shot), f"the jump did not land on {source} unit {strongest}"
        key("BackSpace")
        shot = wait_for(shows(start_title))
        assert shows(start_title)(shot), "back did not return to the first unit"
        key("q")
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
