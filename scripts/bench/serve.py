"""serve: the live toolbox as a web page against the window, lite0 at the defaults on the
example photos treated as a stream, measured in a real headless Chromium.

- serve_window_dashboards_per_s: distinct dashboards a second of the window's UI loop (a new
  network frame or a new picture from a job: what a viewer sees change), as context;
- serve_page_dashboards_per_s: dashboards a second the page received and showed, one tab;
- serve_page_over_window: their ratio (goal >= 0.8), measured in alternating rounds;
- serve_key_to_page_ms_median / _p90: a key sent from the page until the dashboard it changed
  is shown there (the source paused, so only the key changes it; goal: median <= 150 ms);
- serve_bytes_per_dashboard: the JPEG's size;
- serve_encode_cpu: CPU seconds a second spent encoding dashboards for the tabs (once for all
  of them; each tab adds only its socket's send), with one tab connected.
"""

from __future__ import annotations

import shutil
import statistics
import threading
import time
from dataclasses import replace

from bench.common import emit, live_app, load


def _chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,900"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def _window_rate(app, seconds: float) -> float:
    """Distinct dashboards a second of the window's loop (tick, then its 10 ms wait)."""
    session = app.new_session()
    shown, last = 0, None
    start = time.perf_counter()
    while time.perf_counter() < start + seconds:
        app.tick(session)
        if session.latest is not last:
            shown, last = shown + 1, session.latest
        time.sleep(0.010)
    return shown / (time.perf_counter() - start)


def run(quick: bool) -> None:
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        print("serve: skipped (needs chromium and chromium-driver)")
        return
    from toolbox.app.serve import LiveServer

    net = load("efficientnet_lite0")
    seconds, rounds = (4, 2) if quick else (8, 3)
    window = live_app(net, "block9_add")
    window.files.live = True
    window.worker.start()
    server = LiveServer(live_app(net, "block9_add"), "127.0.0.1", 0)
    server.app.files.live = True
    ready = threading.Event()
    threading.Thread(target=server.run, kwargs={"on_ready": lambda url: ready.set()}, daemon=True).start()
    ready.wait(120)
    driver = _chromium()
    try:
        driver.get(server.url)

        def page_count() -> int:
            return driver.execute_script("return window.deepvisDashboards()")

        while page_count() == 0:  # the first frame compiles
            time.sleep(0.1)
        window_rates, page_rates = [], []
        def page_paused(paused: bool) -> None:  # the page's loop is idle while the window is measured
            def set_state() -> None:
                server.session.state = replace(server.session.state, paused=paused)

            server.loop.call_soon_threadsafe(set_state)

        for _ in range(rounds):  # alternating: the machine's noise falls on both alike
            page_paused(True)
            time.sleep(0.5)
            window_rates.append(_window_rate(window, seconds))
            page_paused(False)
            time.sleep(0.5)
            before, t = page_count(), time.perf_counter()
            time.sleep(seconds)
            page_rates.append((page_count() - before) / (time.perf_counter() - t))
        emit("serve_window_dashboards_per_s", statistics.median(window_rates), "/s")
        emit("serve_page_dashboards_per_s", statistics.median(page_rates), "/s")
        emit("serve_page_over_window", statistics.median(page_rates) / max(statistics.median(window_rates), 1e-9),
             "x (goal >= 0.8)")
        emit("serve_bytes_per_dashboard", len(server._jpeg or b"") / 1000, "KB")

        encoded, t = server.encode_seconds, time.perf_counter()
        time.sleep(seconds)
        emit("serve_encode_cpu", (server.encode_seconds - encoded) / (time.perf_counter() - t), "CPU s/s (one tab)")

        driver.get(server.url)
        while page_count() == 0:
            time.sleep(0.1)
        driver.find_element("tag name", "body").send_keys(" ")  # pause: from now on only keys change it
        time.sleep(2.0)
        latencies = []
        for _ in range(10 if quick else 30):
            latencies.append(driver.execute_async_script(
                "const done = arguments[arguments.length - 1], n = window.deepvisDashboards(), t = performance.now();"
                "socket.send(JSON.stringify({key: 'z'}));"
                "(function wait() { if (window.deepvisDashboards() > n) done(performance.now() - t);"
                " else setTimeout(wait, 1); })();"))
            time.sleep(0.2)
        latencies.sort()
        emit("serve_key_to_page_ms_median", statistics.median(latencies), "ms (goal <= 150)")
        emit("serve_key_to_page_ms_p90", latencies[int(0.9 * (len(latencies) - 1))], "ms")
    finally:
        driver.quit()
        server.loop.call_soon_threadsafe(server.stop)
        window.worker.stop()
