"""deepvis benchmarks: one line per figure, `name: value unit`.

    python scripts/benchmark.py [--quick] [--only PART ...]

Each figure that has a goal is a ratio against a baseline measured in the same process
(machines here are noisy); absolute times are printed as context. Parts:

  probe   probe_overhead_lite0: probe time per image / bare compiled forward pass (goal <= 1.2)
  dream   dream_speedup_vs_baseline: the tutorial way (whole network, a fresh trace per octave,
          no tiling) over deepvis' DeepDream, same photo, layers and schedule (goal >= 1.5);
          full mode adds dream_large_peak_rss_gb, a 4000x3000 dream in a child process
  units   units_batched_speedup: units per minute optimized in one batch over one at a time,
          same size and steps (goal >= 1.3), for several batch sizes; reports the best
  live    headless dashboards on the largest offered layer: live_fps_lite0 (goal >= 15),
          draw_overhead = dashboard frame time / bare probe time (goal <= 1.25), ui_hz = UI
          loop rate while the worker thread runs the network (goal >= 30), the worst delay
          from a key to the screen, also while the worker compiles and runs an on-demand unit
          image (goal <= 100 ms), and live_fps_inception_v3 with random weights at 299 px
  soak    the live loop (worker thread + dashboards) over a looping video for 10 minutes (2 with
          --quick): RSS per minute and soak_rss_growth, last minute / first minute (goal < 1.05)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


def emit(name: str, value: float, unit: str = "") -> None:
    print(f"{name}: {value:.4g} {unit}".rstrip(), flush=True)


def interleaved(runs: dict[str, Callable[[], object]], rounds: int, per_round: int) -> dict[str, float]:
    """Median seconds per call of each function, measured in alternating rounds so that
    machine noise falls on all of them alike."""
    for f in runs.values():  # warm-up: traces, allocations
        f()
        f()
    samples: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(rounds):
        for name, f in runs.items():
            t = time.perf_counter()
            for _ in range(per_round):
                f()
            samples[name].append((time.perf_counter() - t) / per_round)
    return {k: statistics.median(v) for k, v in samples.items()}


def load(model: str, random_weights: bool = False):
    from toolbox.nets import load_network
    from toolbox.settings import load_settings

    return load_network(load_settings(None, {"model": model}), random_weights=random_weights)


def example_image(size: int):
    from toolbox.images import fit_square, read_image

    return fit_square(read_image(EXAMPLES / "chelsea.png"), size)


def part_probe(quick: bool) -> None:
    import numpy as np
    import tensorflow as tf

    from toolbox.nets import Probe

    net = load("efficientnet_lite0")
    image = example_image(224).astype(np.float32)
    model = net.model

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def bare(x):
        return model(x, training=False)

    normalized = net.normalize(image[None])
    probe = Probe(net, ["block9_add"])
    times = interleaved({"bare": lambda: bare(normalized).numpy(), "probe": lambda: probe(image)},
                        rounds=5 if quick else 15, per_round=5 if quick else 10)
    emit("probe_overhead_lite0", times["probe"] / times["bare"], "x")
    emit("probe_ms_lite0", times["probe"] * 1000, "ms")
    emit("bare_forward_ms_lite0", times["bare"] * 1000, "ms")


def baseline_dream(net, layers: dict[str, float], image, octaves: int, scale: float, steps: int, step_size: float):
    """DeepDream as the well-known tutorial writes it: the whole network, a tf.function
    without an input signature (a fresh trace for every octave size), no tiling."""
    import keras
    import numpy as np
    import tensorflow as tf

    names = list(layers)
    full = keras.Model(net.model.input, [net.model.get_layer(n).output for n in names] + [net.model.output])

    @tf.function
    def step(img):
        with tf.GradientTape() as tape:
            tape.watch(img)
            outs = full(net.normalize(img)[None], training=False)
            loss = tf.add_n([layers[n] * tf.reduce_mean(tf.square(o)) for n, o in zip(names, outs)])
        g = tape.gradient(loss, img)
        g /= tf.reduce_mean(tf.abs(g)) + 1e-8
        return tf.clip_by_value(img + g * step_size * 255.0, 0.0, 255.0)

    img = tf.constant(image, tf.float32)
    base = tf.shape(img)[:2]
    for i in range(octaves - 1, -1, -1):
        size = tf.cast(tf.cast(base, tf.float32) * scale ** -i, tf.int32)
        img = tf.image.resize(img, size)
        for _ in range(steps):
            img = step(img)
    return np.clip(img.numpy(), 0, 255).astype(np.uint8)


def part_dream(quick: bool) -> None:
    import subprocess
    import tempfile

    from toolbox.optvis import DeepDream, DreamSchedule, deepdream

    net = load("efficientnet_lite0")
    layers = dict(net.spec.dream_layers)
    from toolbox.images import read_image, resize, write_image

    image = read_image(EXAMPLES / "chelsea.png")
    schedule = DreamSchedule(octaves=4, octave_scale=1.4, steps=4 if quick else 10, step_size=0.006, tile=512)

    def ours():
        DeepDream(net, deepdream(layers)).run(image, schedule)

    def baseline():
        baseline_dream(net, layers, image, schedule.octaves, schedule.octave_scale, schedule.steps,
                       schedule.step_size)

    times = interleaved({"baseline": baseline, "ours": ours}, rounds=2 if quick else 3, per_round=1)
    emit("dream_speedup_vs_baseline", times["baseline"] / times["ours"], "x")
    emit("dream_seconds", times["ours"], "s")
    emit("dream_baseline_seconds", times["baseline"], "s")
    if quick:
        return
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "big.jpg"
        write_image(big, resize(image, 4000, 3000))
        code = ("import resource, sys; from toolbox.cli import main; rc = main(sys.argv[1:]); "
                "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)")
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-c", code, "dream", str(big), "-o", str(Path(tmp) / "out.jpg"),
                            "--model", "efficientnet_lite0", "--steps", "2"], capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"large dream failed: {r.stderr[-500:]}")
        emit("dream_large_peak_rss_gb", int(r.stdout.split()[-1]) / 2**20, "GB")
        emit("dream_large_seconds_2_steps_per_octave", time.perf_counter() - t, "s")


def part_units(quick: bool) -> None:
    from toolbox.optvis import Ascent, channel, get_preset

    net = load("efficientnet_lite0")
    ascent = Ascent(net, channel("block9_add"), get_preset("lucid"))
    size, steps = 128, 8 if quick else 24
    ascent.run([0], size, 2)
    best = (0.0, 0)
    for batch in ([8] if quick else [4, 8, 16]):
        units = list(range(batch))
        times = interleaved({"one": lambda: [ascent.run([u], size, steps) for u in units],
                             "batched": lambda: ascent.run(units, size, steps)}, rounds=2 if quick else 3, per_round=1)
        speedup = times["one"] / times["batched"]
        emit(f"units_batched_speedup_batch{batch}", speedup, "x")
        emit(f"units_per_minute_batch{batch}", batch * 60 / times["batched"] * steps / 256, "units/min at 256 steps")
        best = max(best, (speedup, batch))
    emit("units_batched_speedup", best[0], "x")
    emit("units_best_batch", best[1])


def _live_app(net, layer: str, source: str = str(EXAMPLES)):
    """The window's application as `deepvis live` builds it, with unit images kept in a
    temporary folder and made only when a part asks for them."""
    import tempfile

    from toolbox.app.live import build_live_app
    from toolbox.app.sources import open_source
    from toolbox.settings import load_settings

    settings = load_settings(None, {"live.layer": layer, "live.unit_image_delay": 3600.0,
                                    "units.output_dir": tempfile.mkdtemp()})
    return build_live_app(net, settings, open_source(source))


def _dashboard_times(net, quick: bool) -> dict[str, float]:
    """Seconds per headless dashboard frame (probe + draw) and per bare probe, interleaved."""
    from toolbox.app.dashboard import draw_dashboard, new_canvas
    from toolbox.app.worker import FrameRequest

    largest = max(net.spec.layers, key=lambda l: l.channels).name
    app = _live_app(net, largest)
    session = app.new_session()
    frames = [app.prepare(app.files.read())]
    app.files.step(1)
    frames.append(app.prepare(app.files.read()))
    counter = iter(range(10**9))
    canvas = new_canvas()

    def dashboard():  # what the headless recorder does per frame
        session.latest = app.worker.observe(FrameRequest(0, frames[next(counter) % 2]))
        draw_dashboard(app.view(session), canvas)

    def probe():
        app.worker.observe(FrameRequest(0, frames[next(counter) % 2]))

    return interleaved({"dashboard": dashboard, "probe": probe}, rounds=3 if quick else 7, per_round=5)


def part_live(quick: bool) -> None:
    from toolbox.settings import load_settings

    net = load("efficientnet_lite0")
    times = _dashboard_times(net, quick)
    emit("live_fps_lite0", 1.0 / times["dashboard"], "fps")
    emit("draw_overhead", times["dashboard"] / times["probe"], "x")
    emit("dashboard_draw_ms", (times["dashboard"] - times["probe"]) * 1000, "ms")

    # The UI loop while the worker thread keeps the network busy: first a stream of frames,
    # then frames plus an on-demand unit image (the worker compiles and runs the engine).
    app = _live_app(net, "block9_add")
    app.files.live = True  # treat the photos as a stream: a new frame whenever the worker is free
    session = app.new_session()
    from toolbox.app.window import favour_ui_thread

    favour_ui_thread()  # as the window does
    app.worker.start()
    try:
        while session.latest is None:  # the network's first frame (its one-off compile) comes first
            app.tick(session)
            time.sleep(0.010)
        for phase, seconds in (("stream", 3 if quick else 8), ("unit_image", 6 if quick else 12)):
            if phase == "unit_image":
                session.selection_since = -1e9
                app.settings = load_settings(None, {"live.layer": "block9_add", "live.unit_image_delay": 0.0})
            frames_done, loops, periods = 0, 0, []
            start = time.perf_counter()
            while time.perf_counter() < start + seconds:
                before, t = session.latest, time.perf_counter()
                app.tick(session)
                frames_done += session.latest is not before
                loops += 1
                time.sleep(0.010)  # the window's waitKeyEx(10)
                periods.append(time.perf_counter() - t)
            elapsed = time.perf_counter() - start
            suffix = "" if phase == "stream" else "_with_unit_image"
            emit(f"ui_hz{suffix}", loops / elapsed, "Hz")
            # a key arrives during the wait that ends a pass and is drawn by the next pass
            emit(f"key_to_screen_worst_ms{suffix}", 1000 * max(periods), "ms")
            emit(f"live_network_fps_during_ui{suffix}", frames_done / elapsed, "fps")
    finally:
        app.worker.stop()

    inception = load("inception_v3", random_weights=True)
    emit("live_fps_inception_v3", 1.0 / _dashboard_times(inception, quick)["dashboard"], "fps (random weights, 299 px)")


def rss_bytes() -> int:
    """Resident memory of this process now (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def part_soak(quick: bool) -> None:
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
        app = _live_app(net, max(net.spec.layers, key=lambda l: l.channels).name, str(video))
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


PARTS: dict[str, Callable[[bool], None]] = {"probe": part_probe, "dream": part_dream, "units": part_units,
                                            "live": part_live, "soak": part_soak}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, smaller inputs")
    parser.add_argument("--only", nargs="+", choices=sorted(PARTS), metavar="PART",
                        help=f"run only these parts ({', '.join(PARTS)})")
    args = parser.parse_args()
    from toolbox.tfstart import start_tensorflow_quietly

    start_tensorflow_quietly()
    for name in args.only or PARTS:
        PARTS[name](args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
