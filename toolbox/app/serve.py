"""The live toolbox in a browser: ``deepvis live --serve [HOST:]PORT``.

A second front end of the one live core (``LiveApp``): the same worker, state, keys and
dashboard drawing as the OpenCV window. The server's event loop is the UI thread: it ticks
the app, encodes the dashboard as JPEG when what it shows changed, and sends it to every tab
over a WebSocket, latest wins (a slow tab skips dashboards; nothing queues). Keys and clicks
come back as small JSON messages and act at once. With ``--input browser`` the page's own
camera is the source: the server asks a tab for a frame when it has used the last one.

Safe by default: it listens on 127.0.0.1 unless told otherwise, and every request needs the
random token printed in its URL (as Jupyter does); the WebSocket's Origin must be the page's
own; the server sends its page and dashboards only (no file of its disk); uploaded frames
are limited in bytes, pixels and rate; a bad message is dropped, never a crash.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import cv2
import numpy as np

from toolbox.app.keys import SPECIAL_CODES
from toolbox.app.sources import BrowserCamera
from toolbox.errors import UserError

if TYPE_CHECKING:  # the window's module brings TensorFlow: parse_address must not
    from toolbox.app.window import LiveApp, LiveSession

log = logging.getLogger(__name__)

LOOPBACK = ("127.0.0.1", "localhost", "::1")
MAX_MESSAGE_BYTES = 4 << 20  # an uploaded camera frame (a JPEG of at most a few hundred KB in practice)
MAX_FRAMES_PER_SECOND = 30  # uploads of one tab beyond this are dropped
JPEG_QUALITY = 80
TICK_SECONDS = 0.010  # the window's waitKeyEx(10)
# the browser's KeyboardEvent.key -> the key names of live.keys
BROWSER_KEYS = {"ArrowLeft": "left", "ArrowUp": "up", "ArrowRight": "right", "ArrowDown": "down", " ": "space",
                "Escape": "esc", "Enter": "enter", "Tab": "tab", "Backspace": "backspace"}


def parse_address(text: str) -> tuple[str, int]:
    """``"[HOST:]PORT"`` -> (host, port); the host is 127.0.0.1 when not given."""
    host, sep, port = str(text).rpartition(":")
    host = host.strip("[]") if sep else "127.0.0.1"
    try:
        number = int(port)
    except ValueError:
        raise UserError(f"--serve takes [HOST:]PORT (e.g. 8765 or 0.0.0.0:8765), not '{str(text)[:40]}'") from None
    if not 0 <= number <= 65535:
        raise UserError(f"port {number} is out of range (0..65535)")
    return host or "127.0.0.1", number


def key_code(key: str) -> int | None:
    """A browser key (``KeyboardEvent.key``) as the code the window's key map reads."""
    name = BROWSER_KEYS.get(key, key)
    if name in SPECIAL_CODES:
        return SPECIAL_CODES[name]
    return ord(name) if len(name) == 1 and name.isprintable() else None


@dataclass(eq=False)
class Tab:
    """One connected page: the newest dashboard not yet sent to it (latest wins)."""

    socket: object
    pending: bytes | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    uploads: list[float] = field(default_factory=list)  # times of its recent camera frames

    def offer(self, jpeg: bytes) -> None:
        self.pending = jpeg
        self.ready.set()

    def may_upload(self, now: float) -> bool:
        self.uploads = [t for t in self.uploads if now - t < 1.0]
        if len(self.uploads) >= MAX_FRAMES_PER_SECOND:
            return False
        self.uploads.append(now)
        return True


class LiveServer:
    """The page and its WebSocket over one ``LiveApp``; ``run`` serves until stopped."""

    def __init__(self, app: LiveApp, host: str = "127.0.0.1", port: int = 8765, unit: int = 0,
                 token: str | None = None) -> None:
        self.app, self.host, self.port = app, host, port
        self.token = token or secrets.token_urlsafe(18)
        self.session: LiveSession = app.new_session(unit)
        self.tabs: set[Tab] = set()
        self.camera = app.source if isinstance(app.source, BrowserCamera) else None
        self._shown: object = None  # what the last encoded dashboard showed
        self._jpeg: bytes | None = None
        self._canvas: np.ndarray | None = None
        self._asked_frame = 0.0
        self.sent = 0  # dashboards encoded (for the benchmark)
        self.encode_seconds = 0.0  # CPU seconds spent encoding them (what tabs cost beyond the app itself)
        self.url = ""
        self.loop: asyncio.AbstractEventLoop | None = None  # the server's, once it listens
        self._stopped: asyncio.Event | None = None

    # -- the page ---------------------------------------------------------------------------

    def _authorized(self, request) -> bool:
        given = request.query.get("token", "")
        return secrets.compare_digest(given.encode(), self.token.encode())

    async def page(self, request):
        from aiohttp import web

        if not self._authorized(request):
            raise web.HTTPForbidden(text="deepvis: this page needs the token printed with its address\n")
        return web.Response(text=PAGE, content_type="text/html", headers={"Cache-Control": "no-store"})

    async def socket(self, request):
        from aiohttp import WSMsgType, web

        if not self._authorized(request):
            raise web.HTTPForbidden(text="deepvis: this socket needs the page's token\n")
        origin = request.headers.get("Origin")
        if origin is not None and origin not in (f"http://{request.host}", f"https://{request.host}"):
            raise web.HTTPForbidden(text="deepvis: a page of another origin may not connect\n")
        ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE_BYTES, heartbeat=30)
        await ws.prepare(request)
        tab = Tab(ws)
        self.tabs.add(tab)
        sender = asyncio.ensure_future(self._send(tab))
        if self._jpeg is not None:
            tab.offer(self._jpeg)
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    self._on_text(message.data)
                elif message.type == WSMsgType.BINARY:
                    self._on_frame(tab, message.data)
        finally:
            self.tabs.discard(tab)
            sender.cancel()
        return ws

    async def _send(self, tab: Tab) -> None:
        """Send the tab the newest dashboard whenever there is one it has not had."""
        while True:
            await tab.ready.wait()
            tab.ready.clear()
            jpeg, tab.pending = tab.pending, None
            if jpeg is None:
                continue
            try:
                await tab.socket.send_bytes(jpeg)
            except (ConnectionError, RuntimeError):  # a tab closed mid-frame
                return

    def _on_text(self, data: str) -> None:
        """A key or a click from a page: acted on at once, and the dashboard sent."""
        try:
            message = json.loads(data)
            if not isinstance(message, dict):
                return
            if isinstance(message.get("key"), str):
                code = key_code(message["key"][:16])
                if code is not None:
                    self.session = self.app.on_key(self.session, code, self._canvas_now())
            elif isinstance(message.get("click"), list) and len(message["click"]) == 2:
                x, y = (int(v) for v in message["click"])
                self.session = self.app.on_click(self.session, x, y)
            else:
                return
        except (ValueError, TypeError, OverflowError, RecursionError):
            return  # garbage from a client is dropped
        self._tick(force=True)

    def _on_frame(self, tab: Tab, data: bytes) -> None:
        """A camera frame from a page (--input browser): a JPEG, checked before decoding."""
        if self.camera is None or not tab.may_upload(time.monotonic()) or not data.startswith(b"\xff\xd8"):
            return
        from toolbox.images import decode_image

        try:
            frame = decode_image(bytes(data), "browser camera frame", max_pixels=4096 * 4096)
        except UserError:
            return
        self.camera.put(frame)

    # -- the UI loop --------------------------------------------------------------------------

    def _canvas_now(self) -> np.ndarray:
        if self._canvas is None:
            self._canvas = self.app.tick(self.session)
        return self._canvas

    def _showing(self) -> object:
        """What the dashboard shows, by identity of its parts (the status line's UI rate left out)."""
        s = self.session
        slots = tuple((name, id(slot.shown.get("")), id(slot.shown.get("crops")), id(slot.failed))
                      for name, slot in sorted(s.slots.items()))
        return id(s.latest), s.state, s.message, slots

    def _tick(self, force: bool = False) -> None:
        self._canvas = self.app.tick(self.session)
        if not self.tabs:
            return
        showing = self._showing()
        if showing == self._shown and not force:
            return
        started = time.process_time()
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(self._canvas, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            return
        self._shown, self._jpeg = showing, buf.tobytes()
        self.sent += 1
        self.encode_seconds += time.process_time() - started
        for tab in self.tabs:
            tab.offer(self._jpeg)

    async def _loop(self) -> None:
        while True:
            started = time.perf_counter()
            try:
                self._tick()
                self._want_frame()
            except Exception:  # the page shows the last dashboard; the server goes on
                log.exception("live page: a pass of the UI loop failed")
            await asyncio.sleep(max(0.0, TICK_SECONDS - (time.perf_counter() - started)))

    def _want_frame(self) -> None:
        """--input browser: ask one tab for its next camera frame once the last one is used."""
        camera = self.camera
        if camera is None or not self.tabs or not camera.wants_frame:
            return
        now = time.monotonic()
        if now - self._asked_frame < 1.0 / MAX_FRAMES_PER_SECOND:
            return
        self._asked_frame = now
        side = max(self.app.net.spec.input_size * 2, 320)
        tab = next(iter(self.tabs))
        asyncio.ensure_future(self._ask(tab, side))

    async def _ask(self, tab: Tab, side: int) -> None:
        try:
            await tab.socket.send_str(json.dumps({"frame": side}))
        except (ConnectionError, RuntimeError):
            pass

    # -- serving --------------------------------------------------------------------------

    def web_app(self):
        from aiohttp import web

        application = web.Application(client_max_size=MAX_MESSAGE_BYTES)
        application.router.add_get("/", self.page)
        application.router.add_get("/ws", self.socket)
        loop_task: list[asyncio.Task] = []

        async def start(_app) -> None:
            from toolbox.app.window import favour_ui_thread

            favour_ui_thread()
            self.app.worker.start()
            loop_task.append(asyncio.ensure_future(self._loop()))

        async def stop(_app) -> None:
            for task in loop_task:
                task.cancel()
            for tab in list(self.tabs):
                await tab.socket.close()
            self.app.worker.stop()
            self.app.close()

        application.on_startup.append(start)
        application.on_shutdown.append(stop)
        return application

    def address(self, port: int | None = None) -> str:
        host = self.host if self.host not in ("0.0.0.0", "::") else "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port or self.port}/?token={self.token}"

    def stop(self) -> None:
        """End ``run`` (call it in the server's loop: ``server.loop.call_soon_threadsafe(server.stop)``)."""
        self._stopped.set()

    def run(self, on_ready: Callable[[str], None] | None = None) -> None:
        """Serve until Ctrl-C or ``stop``; ``on_ready(url)`` once it listens."""
        from aiohttp import web

        async def main() -> None:
            runner = web.AppRunner(self.web_app(), handle_signals=False)
            await runner.setup()
            site = web.TCPSite(runner, self.host, self.port)
            try:
                await site.start()
            except OSError as e:
                await runner.cleanup()
                raise UserError(f"cannot listen on {self.host}:{self.port}: {e.strerror or e}") from None
            port = site._server.sockets[0].getsockname()[1] if self.port == 0 else self.port
            self.url = self.address(port)
            self.loop, self._stopped = asyncio.get_running_loop(), asyncio.Event()
            if on_ready is not None:
                on_ready(self.url)
            try:
                await self._stopped.wait()  # until stop(), or cancelled by Ctrl-C
            finally:
                await runner.cleanup()

        try:
            asyncio.run(main())
        except KeyboardInterrupt:
            pass


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>deepvis live</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body { margin: 0; background: #1c1c20; color: #ddd; font: 14px system-ui, sans-serif; }
 #dash { display: block; max-width: 100vw; height: auto; cursor: crosshair; }
 #note { position: fixed; right: 8px; bottom: 4px; color: #888; font-size: 12px; }
 video, canvas.grab { display: none; }
</style></head>
<body>
<img id="dash" alt="the deepvis dashboard" width="1280" height="760">
<div id="note">connecting...</div>
<video id="camera" playsinline muted></video>
<script>
"use strict";
// The dashboard comes as JPEG bytes over the socket (newest wins); keys and clicks go back as
// JSON. With --input browser the server asks for camera frames: {"frame": side}.
const token = new URLSearchParams(location.search).get("token") || "";
const dash = document.getElementById("dash"), note = document.getElementById("note");
const video = document.getElementById("camera");
let socket = null, shown = null, camera = null, starting = null, dashboards = 0;
window.deepvisDashboards = () => dashboards;
function connect() {
  socket = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host +
                         "/ws?token=" + encodeURIComponent(token));
  socket.binaryType = "blob";
  socket.onopen = () => { note.textContent = "live"; };
  socket.onclose = () => { note.textContent = "disconnected: reload the page"; };
  socket.onmessage = (event) => {
    if (typeof event.data === "string") { sendFrame(JSON.parse(event.data).frame); return; }
    const url = URL.createObjectURL(event.data);
    dash.onload = () => { if (shown) URL.revokeObjectURL(shown); shown = url; dashboards += 1; };
    dash.src = url;
  };
}
const handled = new Set(["ArrowLeft", "ArrowUp", "ArrowRight", "ArrowDown", " ", "Escape", "Enter", "Tab",
                         "Backspace"]);
document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.key.length !== 1 && !handled.has(event.key)) return;
  event.preventDefault();
  if (socket && socket.readyState === 1) socket.send(JSON.stringify({key: event.key}));
});
dash.addEventListener("click", (event) => {
  const box = dash.getBoundingClientRect();
  const x = Math.round((event.clientX - box.left) * dash.naturalWidth / box.width);
  const y = Math.round((event.clientY - box.top) * dash.naturalHeight / box.height);
  if (socket && socket.readyState === 1) socket.send(JSON.stringify({click: [x, y]}));
});
async function sendFrame(side) {
  if (!side) return;
  if (!camera) {  // asked once: frames asked for while it starts wait for the same start
    starting = starting || navigator.mediaDevices.getUserMedia({video: true, audio: false}).then(
      async (stream) => { video.srcObject = stream; await video.play(); camera = stream; note.textContent = "live"; });
    try { await starting; } catch (e) { starting = null; note.textContent = "no camera: " + e.name; return; }
  }
  if (!video.videoWidth) { setTimeout(() => sendFrame(side), 50); return; }
  const s = Math.min(1, side / Math.max(video.videoWidth, video.videoHeight));
  const grab = document.createElement("canvas");
  grab.width = Math.round(video.videoWidth * s); grab.height = Math.round(video.videoHeight * s);
  grab.getContext("2d").drawImage(video, 0, 0, grab.width, grab.height);
  grab.toBlob((blob) => { if (blob && socket.readyState === 1) socket.send(blob); }, "image/jpeg", 0.85);
}
connect();
</script></body></html>
"""
