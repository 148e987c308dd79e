"""Benchmark part `live`: headless dashboards on the largest offered layer: live_fps_lite0 (goal >= 15),
draw_overhead = dashboard frame time / bare probe time (goal <= 1.25), ui_hz = UI
loop rate while the worker thread runs the network (goal >= 30), the worst delay
from a key to the screen, also while the worker compiles and runs an on-demand unit
image (goal <= 100 ms) or accentuates the selected unit in the frames
(live_accentuate_seconds: seconds per finished accentuation, the compile excluded, at the
accentuate defaults, while frames keep flowing), live_fps_backprop_lite0 with the guided gradient pane on (goal >= 12),
live_fps_inception_v3 (random weights, 299 px) and live_fps_googlenet (random weights,
224 px; goal >= 15)
"""

from __future__ import annotations

import time
from dataclasses import replace

from bench.common import emit, interleaved, live_app, load


def dashboard_times(net, quick: bool, overrides: dict | None = None) -> dict[str, float]:
    """Seconds per headless dashboard frame (probe + draw, and with ``live.backprop`` among
    ``overrides`` the map and its display too) and per bare probe, interleaved."""
    from toolbox.app.dashboard import draw_dashboard, new_canvas
    from toolbox.app.worker import FrameRequest

    largest = max(net.spec.layers, key=lambda l: l.channels).name
    app = live_app(net, largest, overrides=overrides)
    session = app.new_session()
    frames = [app.prepare(app.files.read())]
    app.files.step(1)
    frames.append(app.prepare(app.files.read()))
    counter = iter(range(10**9))
    canvas = new_canvas()

    def dashboard():  # what the headless recorder does per frame
        session.latest = app.worker.observe(app.request(0, frames[next(counter) % 2], session.state))
        draw_dashboard(app.view(session), canvas)

    def probe():
        app.worker.observe(FrameRequest(0, frames[next(counter) % 2]))

    return interleaved({"dashboard": dashboard, "probe": probe}, rounds=3 if quick else 7, per_round=5)


def run(quick: bool) -> None:
    from toolbox.settings import load_settings

    net = load("efficientnet_lite0")
    times = dashboard_times(net, quick)
    emit("live_fps_lite0", 1.0 / times["dashboard"], "fps")
    emit("draw_overhead", times["dashboard"] / times["probe"], "x")
    emit("dashboard_draw_ms", (times["dashboard"] - times["probe"]) * 1000, "ms")
    # the gradient pane on: guided backprop of a unit of the same layer in every frame (goal >= 12)
    guided = dashboard_times(net, quick, {"live.backprop": "guided"})
    emit("live_fps_backprop_lite0", 1.0 / guided["dashboard"], "fps")

    # The UI loop while the worker thread keeps the network busy: first a stream of frames,
    # then frames plus an on-demand unit image (the worker compiles and runs the engine), then
    # frames plus accentuation mode (each finished accentuation starts again on the newest frame).
    app = live_app(net, "block9_add")
    app.files.live = True  # treat the photos as a stream: a new frame whenever the worker is free
    session = app.new_session()
    from toolbox.app.window import favour_ui_thread

    favour_ui_thread()  # as the window does
    app.worker.start()
    try:
        while session.latest is None:  # the network's first frame (its one-off compile) comes first
            app.tick(session)
            time.sleep(0.010)
        phases = (("stream", 3 if quick else 8), ("unit_image", 6 if quick else 12),
                  ("accentuate", 12 if quick else 30))
        for phase, seconds in phases:
            if phase == "unit_image":
                session.selection_since = -1e9
                app.settings = load_settings(None, {"live.layer": "block9_add", "live.unit_image_delay": 0.0})
            if phase == "accentuate":
                session.state = replace(session.state, accentuate=True)
                deadline = time.perf_counter() + 600
                accent = session.slot("accent")
                while accent.get() is None or not accent.get().done:  # the first one compiles
                    if accent.failed is not None or time.perf_counter() > deadline:
                        raise RuntimeError(f"no accentuation: {session.message or 'none within 600 s'}")
                    app.tick(session)
                    time.sleep(0.010)
            accentuated, last_accent = 0, session.slot("accent").get()
            frames_done, loops, periods = 0, 0, []
            start = time.perf_counter()
            while time.perf_counter() < start + seconds:
                before, t = session.latest, time.perf_counter()
                app.tick(session)
                frames_done += session.latest is not before
                shown = session.slot("accent").get()
                if shown is not last_accent and shown.done:
                    accentuated += 1
                last_accent = shown
                loops += 1
                time.sleep(0.010)  # the window's waitKeyEx(10)
                periods.append(time.perf_counter() - t)
            elapsed = time.perf_counter() - start
            suffix = {"stream": "", "unit_image": "_with_unit_image", "accentuate": "_accentuating"}[phase]
            emit(f"ui_hz{suffix}", loops / elapsed, "Hz")
            # a key arrives during the wait that ends a pass and is drawn by the next pass
            emit(f"key_to_screen_worst_ms{suffix}", 1000 * max(periods), "ms")
            emit(f"live_network_fps_during_ui{suffix}", frames_done / elapsed, "fps")
            if phase == "accentuate":
                emit("live_accentuate_seconds", elapsed / max(accentuated, 1), f"s ({accentuated} finished)")
    finally:
        app.worker.stop()

    inception = load("inception_v3", random_weights=True)
    emit("live_fps_inception_v3", 1.0 / dashboard_times(inception, quick)["dashboard"], "fps (random weights, 299 px)")
    googlenet = load("googlenet", random_weights=True)
    emit("live_fps_googlenet", 1.0 / dashboard_times(googlenet, quick)["dashboard"], "fps (random weights, 224 px)")
