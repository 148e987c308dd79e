"""Benchmark part `soak`: the live loop (worker thread + dashboards) over a looping video for 10 minutes (2 with
--quick): RSS per minute and soak_rss_growth, last minute / first minute (goal < 1.05)
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

from bench.common import EXAMPLES, emit, live_app, load


def rss_bytes() -> int:
    """Resident memory of this process now (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run(quick: bool) -> None:
    """The live loop for minutes over a looping video: the window's threaded worker and UI
    ticks (drawing every dashboard), as `deepvis live --input VIDEO` runs without the screen.
    soak_rss_growth = median RSS of the last minute / median of the first (goal < 1.05)."""
    import tempfile

    from toolbox.images import VideoWriter, read_image, resize

    minutes, sample_every = (2, 2.0) if quick else (10, 5.0)
    net = load("efficientnet_lite0")
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "loop.mp4"
        photos = [resize(read_image(p), 320, 240) for p in sorted(EXAMPLES.glob("*.png"))]
        with VideoWriter(video, fps=10) as writer:
            for k in range(60):  # six seconds, then it loops
                writer.write(photos[(k // 10) % len(photos)])
        app = live_app(net, max(net.spec.layers, key=lambda l: l.channels).name, str(video))
        session = app.new_session()
        app.worker.start()
        samples: list[tuple[float, int]] = []
        frames = 0
        try:
            start = next_sample = time.perf_counter()
            while (now := time.perf_counter()) < start + 60 * minutes:
                before = session.latest
                app.tick(session)
                frames += session.latest is not before
                if now >= next_sample:
                    samples.append((now - start, rss_bytes()))
                    next_sample += sample_every
                time.sleep(0.010)  # the window's waitKeyEx(10)
        finally:
            app.worker.stop()
    per_minute = [statistics.median(r for t, r in samples if m * 60 <= t < (m + 1) * 60) / 2**20
                  for m in range(minutes)]
    print("soak_rss_mb_per_minute: " + " ".join(f"{v:.0f}" for v in per_minute), flush=True)
    emit("soak_frames", frames, f"frames in {minutes} min")
    emit("soak_rss_growth", per_minute[-1] / per_minute[0], "x")
