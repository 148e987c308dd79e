"""The live window's circuit view: its keys on the state, the worker's answer (the engine's
contributions from the gradient pane's own pass), and the real window under Xvfb: the view
appears, a jump lands on the input unit, back returns."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import worker_results
from test_live import (  # noqa: F401 (xserver: a fixture)
    X_TOOLS,
    _photos,
    _screenshot,
    _settings_file,
    missing,
    xserver,  # noqa: F401
)

CHANNELS = (32, 16, 24, 40)


def test_jump_back_and_from_on_the_state():
    from toolbox.app.modes import apply
    from toolbox.app.modes.circuit import jump
    from toolbox.app.state import ViewState

    s = apply(ViewState(layer=3, unit=7), "circuit", CHANNELS)
    assert s.circuit and s.circuit_from == 1
    s = apply(apply(s, "circuit_from", CHANNELS), "circuit_from", CHANNELS)
    assert s.circuit_from == 3  # three layers back: as far as layer 3 goes
    assert apply(s, "circuit_from", CHANNELS).circuit_from == 1  # round again
    s = apply(s, "circuit_next", CHANNELS)
    assert s.circuit_pick == 1
    there = jump(s, 2, 11)
    assert (there.layer, there.unit, there.path, there.circuit_from, there.circuit_pick) == (2, 11, ((3, 7),), 1, 0)
    further = jump(there, 1, 5)
    back = apply(further, "circuit_back", CHANNELS)
    assert (back.layer, back.unit, back.path) == (2, 11, ((3, 7),))
    back = apply(back, "circuit_back", CHANNELS)
    assert (back.layer, back.unit, back.path) == (3, 7, ())
    assert apply(back, "circuit_back", CHANNELS) == back  # at the path's start: nothing
    frozen = jump(apply(ViewState(layer=3, unit=7), "freeze_backprop", CHANNELS), 1, 2)
    assert frozen.frozen == (1, 2) and frozen.explained == (1, 2)  # the frozen unit follows the path


def test_the_view_draws_thumbnails_or_each_inputs_map_and_its_share():
    from toolbox.app import layout as L
    from toolbox.app.dashboard import BACKGROUND, DashboardView, draw_dashboard
    from toolbox.app.modes.circuit import MODE, CircuitInputs, CircuitRequest, CircuitView
    from toolbox.app.state import ViewState
    from toolbox.nets.probe import Observation
    from toolbox.optvis.circuits import Link

    rng = np.random.default_rng(0)
    acts = {"a": rng.normal(size=(7, 7, 40)).astype(np.float32), "b": rng.normal(size=(7, 7, 16)).astype(np.float32)}
    want = CircuitRequest("b", 3, "a")
    links = tuple(Link(u, c, c / 10) for u, c in ((5, 3.0), (9, 2.0), (1, -1.0)))
    thumbnail = (np.full((64, 64, 3), 200, np.uint8), "optimized")
    shown = CircuitInputs(want, 7.5, links, 2, (thumbnail, None, None))
    state = ViewState(layer=1, unit=3, circuit=True)
    view = DashboardView(state=state, network="n", layers=("a", "b"), channels=(40, 16), frame=None,
                         observation=Observation(acts, np.ones(3) / 3), top=(), receptive_field=(3, 1),
                         net_fps=0.0, ui_fps=0.0, source="s", modes=((MODE, CircuitView(want, shown)),))
    canvas = draw_dashboard(view)

    def thumb(cell):
        r = L.circuit_cell(cell)
        x, y = r.x + (r.w - L.CIRCUIT_THUMB) // 2, r.y + 2
        return canvas[y:y + L.CIRCUIT_THUMB, x:x + L.CIRCUIT_THUMB]

    assert (thumb(0) == 200).all()  # the optimized image
    assert thumb(1).std() > 10  # no thumbnail: the input's map on this frame
    assert thumb(L.CIRCUIT_ROW[0]).std() > 10  # the first inhibitory cell
    assert (thumb(2)[2:-2, 2:-2] == BACKGROUND).all()  # only two excitatory inputs: the third cell is empty


@pytest.fixture()
def worker(tiny, tmp_path):
    from toolbox.app.worker import NetworkWorker, UnitImageSettings
    from toolbox.assets import UnitImageFolder

    w = NetworkWorker(tiny, UnitImageFolder(tmp_path / "units"), UnitImageSettings("lucid", size=16, steps=8))
    w.start()
    yield w
    w.stop()


def test_worker_answers_the_circuit_from_the_gradient_panes_pass(worker, tiny):
    from toolbox.app.modes.circuit import CircuitRequest
    from toolbox.app.modes.gradient import BackpropRequest
    from toolbox.app.worker import FrameRequest, FrameResult
    from toolbox.optvis.circuits import CircuitTracer

    image = np.random.default_rng(3).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    expected, values = CircuitTracer(tiny).inputs(image[None].astype(np.float32), "conv_b", 4)
    order = np.argsort(-expected[0])
    want = CircuitRequest("conv_b", 4, "relu_a", excitatory=2, inhibitory=1)
    for frame_id, backprop in enumerate((None, BackpropRequest("conv_b", 4, "guided", "norm"),
                                         BackpropRequest("conv_b", 1, "gradient", "raw")), 1):
        parts = ((("gradient", backprop),) if backprop else ()) + (("circuit", want),)
        worker.frames.put(FrameRequest(frame_id, image, parts))
        result = worker_results(worker, FrameResult, lambda r: r.frame_id == frame_id)[-1]
        got = result.part("circuit")
        assert got.request == want and got.value == pytest.approx(values[0], rel=1e-5)
        positive = [int(k) for k in order if expected[0, k] > 0][:2]
        assert [link.unit for link in got.links[:got.excitatory]] == positive
        assert all(link.contribution < 0 for link in got.links[got.excitatory:])
        assert (result.part("gradient") is None) == (backprop is None)
        if backprop is not None:
            assert result.part("gradient").request == backprop
    worker.frames.put(FrameRequest(9, image))  # the view off: no circuit, the Probe alone
    assert worker_results(worker, FrameResult, lambda r: r.frame_id == 9)[-1].part("circuit") is None


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.skipif(bool(missing), reason=f"needs {', '.join(missing)} (apt-get install xvfb xdotool imagemagick)")
def test_real_window_circuit_view_jumps_to_an_input_and_back(tmp_path, cache_dir, lite0, xserver):  # noqa: F811
    """v shows the circuit of block9_add unit 0 (its title names it and the inputs are drawn);
    Enter lands on its strongest input (computed here by the engine on the same photo: the
    title then names that unit and its own inputs); Backspace returns. Each wait is on what
    the window draws, with bounds for a loaded 2-core machine."""
    import cv2

    from toolbox.app import layout as L
    from toolbox.app.dashboard import BACKGROUND, CLASS_BAR, fill, new_canvas
    from toolbox.app.modes.circuit import CircuitRequest, circuit_title
    from toolbox.images import read_image
    from toolbox.optvis.circuits import CircuitTracer

    photos = _photos(tmp_path)
    first = sorted(photos.iterdir())[0]
    layer, source, further = "block9_add", "block9_dw_relu", "block8_project_bn"
    contributions, _ = CircuitTracer(lite0).inputs(lite0.fit_input(read_image(first))[None].astype(np.float32),
                                                   layer, 0)
    strongest = int(np.argmax(contributions[0]))
    strip = (slice(L.CROPS.y - 22, L.CROPS.y - 2), slice(L.CROPS.x, L.CROPS.x + L.CROPS.w))

    def expected_title(request):
        canvas = new_canvas()
        fill(canvas, BACKGROUND)
        circuit_title(canvas, request)
        return cv2.cvtColor(canvas[strip], cv2.COLOR_RGB2BGR).astype(int)  # screenshots are BGR

    start_title = expected_title(CircuitRequest(layer, 0, source))
    input_title = expected_title(CircuitRequest(source, strongest, further))
    env = {**os.environ, "DISPLAY": xserver}
    log = open(tmp_path / "live.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "toolbox", "live", "--input", str(photos), "--layer", layer,
                             "--settings", str(_settings_file(tmp_path, cache_dir))],
                            stdout=log, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path)

    def wait_for(what: str, timeout: float, check):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            found = check()
            if found is not None:
                return found
            time.sleep(0.25)
        log.seek(0)
        state = "is running" if proc.poll() is None else f"exited with {proc.returncode}"
        pytest.fail(f"waited {timeout:.0f} s for {what}; the process {state}; its output:\n{log.read()[-1500:]}")

    def shows(title):
        def check():
            shot = _screenshot(xserver)
            notes = shot[L.CIRCUIT_NOTES.y:L.CIRCUIT_NOTES.y + 40, L.CIRCUIT_NOTES.x:L.CIRCUIT_NOTES.x + 150]
            drawn = notes.std() > 10  # the inputs are on screen (not the "measuring..." placeholder)
            return shot if drawn and np.abs(shot[strip] - title).mean() < 1.0 else None
        return check

    def key(name):
        subprocess.run(["xdotool", "key", "--window", window, name], env=env, capture_output=True)

    try:
        def find_window():
            ids = subprocess.run(["xdotool", "search", "--name", "^deepvis$"], capture_output=True, text=True,
                                 env=env).stdout.split()
            return ids[0] if ids else None

        window = wait_for("the window named deepvis to appear", 240, find_window)

        def answered():  # the network's first answer: the top classes' bars are drawn
            shot = _screenshot(xserver)
            pane = shot[L.CLASSES.y:L.CLASSES.y + L.CLASSES.h, L.CLASSES.x:L.CLASSES.x + L.CLASSES.w]
            return shot if (np.abs(pane - np.array(CLASS_BAR[::-1])).sum(-1) < 12).sum() > 100 else None

        wait_for("the network's first answer on screen", 240, answered)
        key("v")
        wait_for(f"the circuit view of {layer} unit 0 with its inputs (compiled once)", 240, shows(start_title))
        key("Return")  # to the strongest excitatory input, highlighted at first
        wait_for(f"the jump to {source} unit {strongest}, the strongest input, with its own inputs", 90,
                 shows(input_title))
        key("BackSpace")
        wait_for(f"the way back to {layer} unit 0", 90, shows(start_title))
        key("q")
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
