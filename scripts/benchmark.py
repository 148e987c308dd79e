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
          image (goal <= 100 ms), live_fps_backprop_lite0 with the guided gradient pane on (goal >= 12),
          live_fps_inception_v3 (random weights, 299 px) and live_fps_googlenet (random weights,
          224 px; goal >= 15)
  crops   `deepvis crops` on lite0 (all layers, 224 px, JPEGs on disk): crops_images_per_s, and
          crops_overhead = its time per image / a bare batched forward pass (goal <= 1.3), the
          best of 4 runs of four chunks against the best bare pass (the host's bursts only slow
          things down), and crops_overhead_paired_median, the median of those runs each against
          the bare passes just before and after it
  soak    the live loop (worker thread + dashboards) over a looping video for 10 minutes (2 with
          --quick): RSS per minute and soak_rss_growth, last minute / first minute (goal < 1.05)
  gradients  attribution maps on lite0, one 224 px photo: attribution_overhead_lite0_METHOD = ms per
          call / a bare compiled tf.GradientTape gradient of the same class score, for gradient,
          guided, deconv and gradcam, and attribution_overhead_lite0 = the worst of them (goal
          <= 1.5); smoothgrad with n samples over n x that floor (goal <= 1)
  precompute  `deepvis precompute` on lite0 (128 px, 256 steps, batch 16): precompute_units_per_min in
          this process and with --workers 2 (local Ray, its start included), same run; seconds per crops
          image; InceptionV3's costs (random weights); atlas_hours_<net>_<N>_workers for whole atlases
  seedimages  issue 10 on lite0: live_dream_fps_lite0 (dashboards with the input pane dreaming, 320x240
          frames of a panning camera, 2 steps per frame; goal >= 5) and live_dream_cost against the same
          dashboards without it; classes_per_min_lite0 (224 px, 256 steps), classes_top1_rate_lite0 (20
          classes; goal >= 0.9), classes_transfer_top5_lite2; invert_error_<photo>_<layer>;
          fool_success_rate_lite0 (10 pairs, epsilon 2/255, read back from PNGs; goal >= 0.9) and
          fool_from_noise_min_probability (5 targets; goal >= 0.99)
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


def _live_app(net, layer: str, source: str = str(EXAMPLES), overrides: dict | None = None):
    """The window's application as `deepvis live` builds it, with unit images kept in a
    temporary folder and made only when a part asks for them; ``overrides``: more settings."""
    import tempfile

    from toolbox.app.live import build_live_app
    from toolbox.app.sources import open_source
    from toolbox.settings import load_settings

    settings = load_settings(None, {"live.layer": layer, "live.unit_image_delay": 3600.0,
                                    "units.output_dir": tempfile.mkdtemp(), **(overrides or {})})
    return build_live_app(net, settings, open_source(source))


def _dashboard_times(net, quick: bool, overrides: dict | None = None) -> dict[str, float]:
    """Seconds per headless dashboard frame (probe + draw, and with ``live.backprop`` among
    ``overrides`` the map and its display too) and per bare probe, interleaved."""
    from toolbox.app.dashboard import draw_dashboard, new_canvas
    from toolbox.app.worker import FrameRequest

    largest = max(net.spec.layers, key=lambda l: l.channels).name
    app = _live_app(net, largest, overrides=overrides)
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


def part_live(quick: bool) -> None:
    from toolbox.settings import load_settings

    net = load("efficientnet_lite0")
    times = _dashboard_times(net, quick)
    emit("live_fps_lite0", 1.0 / times["dashboard"], "fps")
    emit("draw_overhead", times["dashboard"] / times["probe"], "x")
    emit("dashboard_draw_ms", (times["dashboard"] - times["probe"]) * 1000, "ms")
    # the gradient pane on: guided backprop of a unit of the same layer in every frame (goal >= 12)
    guided = _dashboard_times(net, quick, {"live.backprop": "guided"})
    emit("live_fps_backprop_lite0", 1.0 / guided["dashboard"], "fps")

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
    googlenet = load("googlenet", random_weights=True)
    emit("live_fps_googlenet", 1.0 / _dashboard_times(googlenet, quick)["dashboard"], "fps (random weights, 224 px)")


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


def part_crops(quick: bool) -> None:
    """`deepvis crops` on lite0, every offered layer, 224 px, over JPEG photos on disk (read,
    hashed and decoded by the loader threads), against a bare batched forward pass of the
    whole network on the same number of images and the same batch size. Two phases: the
    first images into an empty store (every entry new, every crop cut and written), then a
    long run's steady state (the store already holds ``filled`` images: what further chunks
    of a big dataset cost): runs of four chunks, each between two bare passes of one chunk. A
    run saves a chunk while the network goes on with the next, and waits for its last save
    at the end (0.4-0.6 s here): a long run hides it, a run of four shows a quarter of a save
    per chunk."""
    import tempfile

    import numpy as np
    import tensorflow as tf

    from toolbox.assets.crop_job import CropJob, Source
    from toolbox.assets.crops import CropStore
    from toolbox.images import read_image
    from toolbox.settings import Settings

    net = load("efficientnet_lite0")
    c = Settings().crops
    first, filled, rounds = (128, 256, 2) if quick else (256, 1024, 4)
    run = 4 * c.chunk
    with tempfile.TemporaryDirectory() as tmp:
        paths = _distinct_photos(Path(tmp), filled + rounds * run + c.batch)
        os.sync()  # the photos' writeback would otherwise land in the measured commits' fsyncs
        sources = [Source(p, False) for p in paths]
        job = CropJob(net, net.spec.layer_names, CropStore(Path(tmp) / "warm"), c.top, c.side, 10**8)
        job.run(sources[-c.batch:], batch=c.batch)  # fields measured, the step compiled
        model = net.model

        @tf.function(input_signature=[tf.TensorSpec([None, 224, 224, 3], tf.float32)])
        def bare(x):
            return model(x, training=False)

        batch = tf.constant(np.stack([net.fit_input(read_image(p)) for p in paths[:c.batch]]).astype(np.float32))
        bare(batch)

        def forward(images: int) -> float:  # seconds per image
            t = time.perf_counter()
            for _ in range(images // c.batch):
                bare(batch).numpy()
            return (time.perf_counter() - t) / (images // c.batch * c.batch)

        def crops(part: list) -> float:  # seconds per image
            t = time.perf_counter()
            job.run(part, batch=c.batch, chunk=c.chunk)
            return (time.perf_counter() - t) / len(part)

        def against_bare(part: list, bare_images: int) -> tuple[float, float, float]:
            """(bare before, crops, bare after): seconds per image."""
            before = forward(bare_images)
            return before, crops(part), forward(bare_images)

        job.store = CropStore(Path(tmp) / "atlas")
        steal = steal_share()
        cold = against_bare(sources[:first], first)  # into an empty store
        crops(sources[first:filled])  # the store fills up
        steady = [against_bare(sources[filled + r * run:filled + (r + 1) * run], c.chunk)  # a long run's chunks
                  for r in range(rounds)]
        steal = steal_share(steal)
    # This machine shares its host: a neighbour's burst slows one measurement by up to 5x and
    # never speeds one up. Each figure is the best of its measurements (the bare pass's 2 x
    # rounds blocks against the crops' rounds runs: if anything, the bare pass is favoured).
    bare_s = min(t for b, _, a in steady + [cold] for t in (b, a))
    best = min(s for _, s, _ in steady)
    paired = [s / ((b + a) / 2) for b, s, a in steady]
    print("crops_overhead_rounds (each run of four chunks against the bare passes around it): "
          + " ".join(f"{r:.3f}" for r in paired), flush=True)
    emit("crops_images_per_s", 1 / best, f"images/s (lite0, all layers, 224 px, store holding {filled}+ images)")
    emit("crops_overhead", best / bare_s,
         f"x (per image, over a bare batched forward pass; best of {rounds} runs of {run}, store holding {filled}+)")
    emit("crops_overhead_paired_median", float(np.median(paired)),
         "x (the median of those runs, each against the bare passes just before and after it)")
    emit("crops_overhead_first_images", cold[1] / bare_s, f"x (the first {first} images, into an empty store)")
    emit("crops_bare_forward_images_per_s", 1 / bare_s, "images/s")
    emit("crops_cpu_steal", steal, "(share of the CPU time the host took while this part ran)")


def steal_share(since: tuple[int, int] | None = None):
    """Without ``since``: the (steal, total) CPU ticks so far (Linux /proc/stat); with it: the
    share stolen by the host since then (0 where nothing says)."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        ticks = []
    now = (ticks[7] if len(ticks) > 7 else 0, sum(ticks))
    if since is None:
        return now
    return (now[0] - since[0]) / max(1, now[1] - since[1])


def _distinct_photos(folder: Path, count: int, side: int = 480) -> list[Path]:
    """``count`` distinct JPEGs (a different flip and crop of each example photo)."""
    from toolbox.images import read_image, resize, write_image

    photos = [read_image(p) for p in sorted(EXAMPLES.glob("*.*")) if p.suffix != ".md"]
    paths = []
    for i in range(count):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        cut = photo[i % 17:h - i % 13, i % 11:w - i % 7]
        paths.append(folder / f"p{i:04d}.jpg")
        write_image(paths[-1], resize(cut[:, ::-1] if i % 2 else cut, side, round(side * cut.shape[0] / cut.shape[1])))
    return paths


def part_precompute(quick: bool) -> None:
    """`deepvis precompute` on lite0 with the unit-image defaults (128 px, 256 steps, batch 16;
    --quick: 32 steps, scaled to 256): units per minute in this process and with 2 Ray workers
    (a local runtime; its start and the workers' network loads included), the same units in
    the same run; the cost of a crops image (all layers); InceptionV3's costs (random weights:
    the speed does not depend on them); and from them the hours of whole atlases (every offered
    unit, 50,000 images for crops) on 1, 8 and 64 workers, each as fast as this machine."""
    import tempfile

    from toolbox.assets.precompute import (Committer, CropParams, UnitParams, Worker, plan_crop_tasks,
                                           plan_unit_tasks, run_in_process)
    from toolbox.settings import Settings

    s = Settings()
    steps = 32 if quick else s.units.steps
    units = {"block9_add": range(16), "block12_add": range(16)}  # 2 tasks: one for each worker
    count = sum(len(u) for u in units.values())
    params = UnitParams(s.units.preset, s.units.size, steps, s.units.batch, 0)
    net = load("efficientnet_lite0")
    tasks = plan_unit_tasks(units, params)
    per_min = {}
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        run_in_process(Worker(net, params, None), tasks, Committer(Path(tmp) / "a", net.name, params))
        per_min["in_process"] = count * 60 / (time.perf_counter() - t) * steps / 256
        try:
            from toolbox.assets.cluster import RayRunner
        except ImportError:
            RayRunner = None
        if RayRunner is not None:
            settings = Settings(model="efficientnet_lite0")
            t = time.perf_counter()
            outcome = RayRunner(settings, params, None, workers=2).run(tasks, Committer(Path(tmp) / "b", net.name,
                                                                                        params))
            seconds = time.perf_counter() - t
            per_min["workers2"] = count * 60 / seconds * steps / 256
            per_min["workers2_started"] = count * 60 / (seconds - outcome.startup) * steps / 256
            emit("precompute_ray_start_s", outcome.startup, "s (local runtime, 2 workers loading lite0)")
    emit("precompute_units_per_min", per_min["in_process"], f"units/min in this process (lite0, {count} units, "
         f"{params.size} px, 256 steps, batch {params.batch})")
    if "workers2" in per_min:
        emit("precompute_units_per_min_workers2", per_min["workers2"], "units/min with --workers 2 (Ray start included)")
        emit("precompute_units_per_min_workers2_started", per_min["workers2_started"],
             "units/min with --workers 2 once the workers have started")
        emit("precompute_workers2_over_in_process", per_min["workers2"] / per_min["in_process"], "x")
    crops = CropParams(s.crops.top, s.crops.side, s.crops.every, s.crops.batch, 10**8, "crop")

    def image_seconds(network, images: int) -> float:
        with tempfile.TemporaryDirectory() as tmp:
            paths = _distinct_photos(Path(tmp), images + s.crops.batch)
            worker = Worker(network, None, crops)
            layers = network.spec.layer_names
            measured, warm = plan_crop_tasks([(str(p), False) for p in paths], layers, images, crops)
            worker.run(warm)  # fields measured, the step compiled
            result = worker.run(measured)
            return result["seconds"] / images

    lite0_image = image_seconds(net, 32 if quick else 128)
    emit("precompute_seconds_per_image_lite0", lite0_image, "s (crops, all 21 layers, 224 px, in this process)")
    from toolbox.optvis import Ascent, channel, get_preset

    inception = load("inception_v3", random_weights=True)
    ascent = Ascent(inception, channel("mixed4"), get_preset(s.units.preset))
    few = 8 if quick else 16
    ascent.run(list(range(params.batch)), params.size, 2)
    t = time.perf_counter()
    ascent.run(list(range(params.batch)), params.size, few)
    inception_unit = (time.perf_counter() - t) / params.batch * 256 / few
    inception_image = image_seconds(inception, 16 if quick else 48)
    emit("precompute_seconds_per_unit_inception_v3", inception_unit, f"s ({params.size} px, 256 steps, batch "
         f"{params.batch}; from {few} steps)")
    emit("precompute_seconds_per_image_inception_v3", inception_image, "s (crops, all offered layers, 299 px)")
    lite0_unit = 60 / per_min["in_process"]
    emit("precompute_seconds_per_unit_lite0", lite0_unit, "s")
    for name, network, unit_s, image_s in (("lite0", net, lite0_unit, lite0_image),
                                           ("inception_v3", inception, inception_unit, inception_image)):
        total_units = sum(layer.channels for layer in network.spec.layers)
        hours = (total_units * unit_s + 50_000 * image_s) / 3600
        for workers in (1, 8, 64):
            emit(f"atlas_hours_{name}_{workers}_workers", hours / workers,
                 f"h ({total_units} units, 50,000 images; each worker as fast as this machine)")


def part_gradients(quick: bool) -> None:
    """Attribution maps on lite0 at 224 px: ms per call of each method for the class logit of
    one photo, over the floor: a bare compiled tf.GradientTape gradient of the same score,
    interleaved in the same run."""
    import numpy as np
    import tensorflow as tf

    from toolbox.nets.network import LOGITS
    from toolbox.optvis.attribution import Attributor, Target

    net = load("efficientnet_lite0")
    image = example_image(224).astype(np.float32)
    attributor = Attributor(net)
    klass = int(np.argmax(net.model(net.normalize(image[None]), training=False)[0]))
    target = Target.klass(klass)
    logits = net.view([LOGITS])

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def floor(pixels):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(pixels)
            score = logits(net.normalize(pixels), training=False)[LOGITS][:, klass]
        return tape.gradient(score, pixels)

    batch = tf.constant(image[None])
    samples = 8 if quick else 16
    runs = {"floor": lambda: floor(batch).numpy()}
    for method in ("gradient", "guided", "deconv", "gradcam"):
        runs[method] = lambda m=method: attributor(image, target, m)
    runs["smoothgrad"] = lambda: attributor(image, target, "smoothgrad", samples=samples)
    times = interleaved(runs, rounds=3 if quick else 7, per_round=2 if quick else 5)
    worst = 0.0
    for method in ("gradient", "guided", "deconv", "gradcam"):
        ratio = times[method] / times["floor"]
        worst = max(worst, ratio)
        emit(f"attribution_overhead_lite0_{method}", ratio, f"x ({times[method] * 1000:.1f} ms)")
    emit("attribution_overhead_lite0", worst, "x (worst of gradient, guided, deconv, gradcam; goal <= 1.5)")
    emit("attribution_floor_ms_lite0", times["floor"] * 1000, "ms")
    emit("smoothgrad_over_samples_x_floor", times["smoothgrad"] / (samples * times["floor"]),
         f"x ({samples} samples; goal <= 1)")


SEED_CLASSES = (1, 15, 18, 22, 31, 76, 107, 130, 207, 281, 301, 309, 323, 340, 437, 483, 948, 963, 980, 985)
FOOL_TARGETS = (15, 76, 130, 309, 948, 1, 18, 430, 812, 980)


def _panning_frames(width: int, height: int, count: int, step: int = 3):
    """A camera panning across a photo: ``count`` frames of width x height, ``step`` px apart."""
    from toolbox.images import read_image, resize

    photo = read_image(EXAMPLES / "chelsea.png")
    photo = resize(photo, round(photo.shape[1] * (height + 40) / photo.shape[0]), height + 40)
    span = photo.shape[1] - width
    return [photo[20:20 + height, abs((k * step) % (2 * span) - span):][:, :width] for k in range(count)]


def live_dream_rates(net, quick: bool) -> dict[bool, float]:
    """Dashboards per second without and with dream mode: 320x240 frames of a panning camera,
    2 steps per frame, drawn as the headless recorder draws them."""
    from toolbox.app.dashboard import draw_dashboard, new_canvas

    frames = _panning_frames(320, 240, 24 if quick else 60)
    canvas = new_canvas()
    rates = {}
    for dream in (False, True):
        app = _live_app(net, "block9_add", overrides={"live.dream": dream, "live.dream_steps": 2})
        session = app.new_session()
        for warm in frames[:3]:
            session.latest = app.worker.observe(app.request(0, app.prepare(warm), session.state, warm))
        start = time.perf_counter()
        for i, frame in enumerate(frames):
            session.latest = app.worker.observe(app.request(i, app.prepare(frame), session.state, frame))
            draw_dashboard(app.view(session), canvas)
        rates[dream] = len(frames) / (time.perf_counter() - start)
    return rates


def part_seedimages(quick: bool) -> None:
    """Class images, inversion, fooling images and the live dream on lite0 (issue 10)."""
    import numpy as np

    from toolbox.images import read_image, write_image
    from toolbox.optvis.classes import Classifier, class_images, rank_of
    from toolbox.optvis.fooling import fool_from_noise, fool_photos, psnr
    from toolbox.optvis.inversion import invert

    net = load("efficientnet_lite0")
    rates = live_dream_rates(net, quick)
    emit("live_dream_fps_lite0", rates[True], "fps (320x240 input, 2 steps per frame, block9_add; goal >= 5)")
    emit("live_fps_lite0_same_frames", rates[False], "fps (the same dashboards without the dream)")
    emit("live_dream_cost", rates[False] / rates[True], "x (dream frame time / plain frame time)")

    # class images: 20 classes at 224 px, 256 steps (quick: 8 classes, 64 steps)
    classes = list(SEED_CLASSES[:8] if quick else SEED_CLASSES)
    steps = 64 if quick else 256
    start = time.perf_counter()
    made = class_images(net, classes, size=224, steps=steps, batch=8)
    seconds = time.perf_counter() - start
    emit("classes_per_min_lite0", len(classes) * 60 / seconds * steps / 256, "classes/min at 224 px, 256 steps")
    emit("classes_top1_rate_lite0", made.top1_rate, f"({sum(r == 0 for r in made.ranks)} of {len(classes)}, "
         f"{steps} steps; goal >= 0.9)")
    try:
        lite2 = load("efficientnet_lite2")
    except Exception as e:  # noqa: BLE001 (offered only where it loads offline)
        print(f"classes_transfer_top5_lite2: skipped ({e})")
    else:
        resized = np.stack([lite2.fit_input(im) for im in made.images])
        verdict = Classifier(lite2)(resized)
        top5 = [rank_of(p, c) < 5 for p, c in zip(verdict, classes)]
        emit("classes_transfer_top5_lite2", float(np.mean(top5)), f"({sum(top5)} of {len(classes)} lite0 class "
             "images are in lite2's top 5)")

    # inversion: relative feature error per layer on two photos
    layers = ["stem_relu", "block2_add", "block5_project_bn", "block9_add", "block15_project_bn"]
    for name in ("chelsea.png", "coffee.png"):
        photo = net.fit_input(read_image(EXAMPLES / name))
        for inv in invert(net, photo, layers, steps=64 if quick else 256, tv=0.02):
            emit(f"invert_error_{Path(name).stem}_{inv.layer}", inv.relative_error, "(relative feature error)")

    # fooling: 10 (photo, target) pairs at epsilon 2/255, judged on the written PNGs read back
    import tempfile

    photos = [net.fit_input(read_image(p)) for p in sorted(EXAMPLES.glob("*.*")) if p.suffix != ".md"]
    pictures = np.stack((photos * 2)[:10])
    start = time.perf_counter()
    fooled = fool_photos(net, pictures, FOOL_TARGETS, 2 / 255, confidence=0.9, max_steps=300)
    emit("fool_seconds_10_pairs", time.perf_counter() - start, f"s ({fooled.steps} steps)")
    with tempfile.TemporaryDirectory() as tmp:
        back = []
        for i, image in enumerate(fooled.images):
            write_image(Path(tmp) / f"{i}.png", image)
            back.append(read_image(Path(tmp) / f"{i}.png"))
    back = np.stack(back)
    reached = Classifier(net)(back)[np.arange(10), list(FOOL_TARGETS)]
    quality = [psnr(b, p) for b, p in zip(back, pictures)]
    ok = [r >= 0.9 and q >= 40 for r, q in zip(reached, quality)]
    emit("fool_success_rate_lite0", float(np.mean(ok)), "(target p >= 0.9 read back and PSNR >= 40 dB; goal >= 0.9)")
    emit("fool_min_psnr_db", min(quality), "dB")
    emit("fool_min_target_probability", float(reached.min()))
    noise = fool_from_noise(net, FOOL_TARGETS[:5], 224, confidence=0.99, max_steps=300)
    emit("fool_from_noise_min_probability", float(noise.target_probabilities.min()), "(5 targets; goal >= 0.99)")


PARTS: dict[str, Callable[[bool], None]] = {"probe": part_probe, "dream": part_dream, "units": part_units,
                                            "live": part_live, "soak": part_soak, "crops": part_crops,
                                            "gradients": part_gradients, "precompute": part_precompute,
                                            "seedimages": part_seedimages}


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
