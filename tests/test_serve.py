"""deepvis live --serve: the live toolbox as a web page, on the tiny network. What any client
may send is checked without a browser; keys, clicks, two tabs and the browser's own camera
are driven in a real headless Chromium (the system's, through Selenium)."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
import urllib.error
import urllib.request
from dataclasses import replace

import pytest

from conftest import EXAMPLES


def _wait(done, what: str, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = done()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"waited {timeout:.0f} s for {what}")


@pytest.fixture()
def served(tiny, tiny_settings, tmp_path):
    """A LiveServer on a free port of 127.0.0.1, in its own thread; its source made by the
    test (``serve(source)``)."""
    from toolbox.app.live import build_live_app
    from toolbox.app.serve import LiveServer
    from toolbox.app.sources import open_source

    settings = replace(tiny_settings, units=replace(tiny_settings.units, output_dir=str(tmp_path / "units")),
                       live=replace(tiny_settings.live, unit_image_steps=4, unit_image_size=16))
    made = []

    def serve(source: str = str(EXAMPLES)):
        server = LiveServer(build_live_app(tiny, settings, open_source(source)), "127.0.0.1", 0)
        ready = threading.Event()
        thread = threading.Thread(target=server.run, kwargs={"on_ready": lambda url: ready.set()}, daemon=True)
        thread.start()
        assert ready.wait(60), "the server did not start"
        made.append((server, thread))
        return server

    yield serve
    for server, thread in made:  # as Ctrl-C would: the loop's main task cancelled
        loop = server.loop
        loop.call_soon_threadsafe(server.stop)
        thread.join(30)
        assert not thread.is_alive(), "the server did not stop"


def _status(url: str, headers: dict | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_every_request_needs_the_token_and_the_server_serves_nothing_else(served):
    server = served()
    base = server.url.split("?")[0]
    assert _status(server.url) == 200
    assert _status(base) == 403 and _status(base + "?token=wrong") == 403
    assert _status(base + "ws") == 403  # the socket too
    assert _status(base + "etc/passwd?token=" + server.token) == 404  # no path of the disk
    assert _status(base + "..%2f..%2fetc%2fpasswd?token=" + server.token) == 404


def test_a_socket_from_another_origin_or_sending_garbage_is_refused_or_dropped(served):
    import aiohttp

    server = served()
    ws_url = server.url.replace("http://", "ws://").replace("/?", "/ws?")

    async def talk():
        async with aiohttp.ClientSession() as client:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await client.ws_connect(ws_url, headers={"Origin": "http://evil.example"})
            assert refused.value.status == 403
            async with client.ws_connect(ws_url) as ws:
                for junk in ("{", "[1,2]", '{"key": 5}', '{"click": ["a", 1]}', '{"click": [1e400, 2]}',
                             '{"key": "' + "x" * 5000 + '"}', "[" * 100000):
                    await ws.send_str(junk)
                await ws.send_bytes(b"\xff\xd8" + b"\x00" * 1000)  # a broken JPEG (and no browser camera)
                await ws.send_bytes(b"not a picture")
                got = await ws.receive(timeout=60)  # the server still sends dashboards
                assert got.type == aiohttp.WSMsgType.BINARY and got.data[:2] == b"\xff\xd8"
            async with client.ws_connect(ws_url) as ws:  # and takes the next tab
                got = await ws.receive(timeout=60)
                assert got.type == aiohttp.WSMsgType.BINARY

    asyncio.run(talk())


@pytest.fixture()
def chromium():
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not chromedriver:
        pytest.skip("needs chromium and chromium-driver (apt-get install chromium chromium-driver)")
    drivers = []

    def start(*extra: str):
        options = Options()
        options.binary_location = chromium
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1400,900", *extra):
            options.add_argument(arg)
        driver = webdriver.Chrome(service=Service(chromedriver), options=options)
        drivers.append(driver)
        return driver

    yield start
    for driver in drivers:
        driver.quit()


def _dashboards(driver) -> int:
    return driver.execute_script("return window.deepvisDashboards ? window.deepvisDashboards() : 0")


@pytest.mark.slow
def test_keys_and_a_click_on_the_page_drive_the_live_core(served, chromium):
    from selenium.webdriver.common.by import By

    from toolbox.app import layout as L
    from toolbox.app.layout import grid_geometry

    server = served()
    driver = chromium()
    driver.get(server.url)
    _wait(lambda: _dashboards(driver) > 0, "the first dashboard on the page")
    layer = server.session.state.layer
    body = driver.find_element(By.TAG_NAME, "body")
    body.send_keys("o")  # next layer, as in the window
    _wait(lambda: server.session.state.layer == (layer + 1) % len(server.app.layers), "the key to reach the core")
    before = _dashboards(driver)
    _wait(lambda: _dashboards(driver) > before, "the dashboard of the new layer on the page")
    geo = grid_geometry(server.app.channels[server.session.state.layer])
    row, col = geo.cell(3)
    x, y = L.GRID.x + col * geo.tile + geo.tile // 2, L.GRID.y + row * geo.tile + geo.tile // 2
    dash = driver.find_element(By.ID, "dash")
    scale = dash.size["width"] / L.WIDTH
    driver.execute_script(
        "const r = arguments[0].getBoundingClientRect();"
        "arguments[0].dispatchEvent(new MouseEvent('click', {clientX: r.left + arguments[1], "
        "clientY: r.top + arguments[2], bubbles: true}));", dash, x * scale, y * scale)
    _wait(lambda: server.session.state.unit == 3, "the click to select unit 3")
    first = L.layer_rows(server.session.state.layer, len(server.app.layers))[0]  # a line of the layer list
    driver.execute_script(
        "const r = arguments[0].getBoundingClientRect();"
        "arguments[0].dispatchEvent(new MouseEvent('click', {clientX: r.left + arguments[1], "
        "clientY: r.top + arguments[2], bubbles: true}));", dash, (L.LAYERS.x + 40) * scale, (L.LAYERS.y + 7) * scale)
    _wait(lambda: server.session.state.layer == first, "the click on the layer list to pick that layer")


@pytest.mark.slow
def test_two_tabs_at_once_both_update(served, chromium):
    server = served()
    first, second = chromium(), chromium()
    for driver in (first, second):
        driver.get(server.url)
    _wait(lambda: _dashboards(first) > 0 and _dashboards(second) > 0, "dashboards in both tabs")
    counts = (_dashboards(first), _dashboards(second))
    first.find_element("tag name", "body").send_keys("z")  # a key in one tab changes what both show
    _wait(lambda: _dashboards(first) > counts[0] and _dashboards(second) > counts[1], "both tabs to update")


@pytest.mark.slow
def test_the_browsers_camera_is_the_source_and_the_grid_follows_it(served, chromium):
    import numpy as np

    server = served("browser")
    driver = chromium("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream")
    driver.get(server.url)
    camera = server.camera
    _wait(lambda: camera.index >= 3, "camera frames from the page")
    seen = []

    def grid_moved() -> bool:
        latest = server.session.latest
        if latest is not None:
            seen.append(np.asarray(latest.observation.activations[server.app.layers[0]]).copy())
        return len(seen) > 2 and any(np.abs(seen[-1] - a).mean() > 1e-4 for a in seen[:-1])

    _wait(grid_moved, "the grid to respond to the moving camera picture")
    assert "browser camera" in server.app.source.label


def test_in_a_notebook_live_serve_is_the_page_inline(tiny_settings, tmp_path, monkeypatch):
    """deepvis.live(net, serve=True) in a kernel: the server runs beside it and the page comes
    back shown inline (an iframe of its address, token included), which answers until stopped."""
    import deepvis
    import toolbox.library as library

    settings = replace(tiny_settings, units=replace(tiny_settings.units, output_dir=str(tmp_path / "units")))
    net = deepvis.load(settings=settings)
    monkeypatch.setattr(library, "_in_notebook", lambda: True)
    page = deepvis.live(net, EXAMPLES, serve=True)
    try:
        url = page.url
        assert "token=" in url and url.replace("&", "&amp;") in page._repr_html_() and "<iframe" in page._repr_html_()
        assert _status(url) == 200 and _status(url.split("?")[0]) == 403
    finally:
        page.stop()
    with pytest.raises(urllib.error.URLError):  # stopped: the address no longer answers
        urllib.request.urlopen(url, timeout=10)
