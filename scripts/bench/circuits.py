"""Benchmark part `circuits`: a unit's strongest inputs (issue 25), on lite0 at 224 px.

- circuit_ablation_wins_lite0: of 32 random units (random offered layers after the first),
  the share for which switching off the strongest contributing channel of the layer before
  lowers the unit (its value before ReLU, at its strongest position, mean over 5 photos) more
  than switching off a random other channel of that layer (goal >= 0.9);
  circuit_ablation_wins_inception_v3_2015 the same for the real InceptionV3 (299 px; skipped
  when its weights package is not installed);
- live_fps_circuit_lite0: headless dashboards per second on the largest offered layer with the
  circuit view on and the gradient pane off (goal >= 12, as with the gradient pane on);
  live_fps_circuit_guided_lite0 with the guided gradient pane on too (a second, plain backward
  pass); live_fps_backprop_lite0 (the guided pane alone) and live_fps_lite0 (neither) measured
  interleaved with them, for comparison;
- circuit_images_per_s_lite0: `deepvis circuit FOLDER` on JPEGs, in images a second once
  running (the difference between a folder of n and one of 2n images: start-up and compiling
  cancel out), and circuit_over_forward: its seconds per image over a bare batched forward pass;
- circuit_task_s_per_unit_LAYER: `precompute --circuits` seconds per unit (9 top-crop images
  each, inputs and outputs) for a few layers, and circuit_tasks_lite0_s_per_layer_mean: the
  mean over all 21 offered layers estimated from them (units x the rate of the nearest measured
  layer in depth).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench.common import EXAMPLES, distinct_photos, emit, interleaved, live_app, load


def _ablation(net, units: int) -> float:
    import numpy as np

    from toolbox.images import read_image
    from toolbox.optvis.circuits import CircuitTracer, ablation_drops

    photos = [p for p in sorted(EXAMPLES.glob("*.*")) if p.suffix != ".md"]
    images = np.stack([net.fit_input(read_image(p)) for p in photos]).astype(np.float32)
    tracer = CircuitTracer(net)
    rng = np.random.default_rng(32)
    names = net.spec.layer_names
    picks = [(int(rng.integers(1, len(names))), None) for _ in range(units)]
    picks = [(li, int(rng.integers(net.spec.layer(names[li]).channels))) for li, _ in picks]
    wins = 0
    for li in sorted({li for li, _ in picks}):  # one batch per layer: its units x the photos
        layer, source = names[li], names[li - 1]
        chosen = np.array([u for at, u in picks if at == li])
        rows = np.repeat(chosen, len(images))
        batch = np.tile(images, (len(chosen), 1, 1, 1))
        contributions, _ = tracer.inputs(batch, layer, rows, source)
        width = contributions.shape[1]
        strongest = contributions.reshape(len(chosen), len(images), width).mean(axis=1).argmax(axis=1)
        other = rng.integers(0, width - 1, len(chosen))
        other += other >= strongest
        drops = ablation_drops(net, np.concatenate([batch, batch]), layer, np.concatenate([rows, rows]), source,
                               np.repeat(np.concatenate([strongest, other]), len(images)))
        by_unit = drops.reshape(2, len(chosen), len(images)).mean(axis=2)
        wins += int((by_unit[0] > by_unit[1]).sum())
    return wins / units


def _dashboards(net, quick: bool) -> dict[str, float]:
    from toolbox.app.dashboard import draw_dashboard, new_canvas

    largest = max(net.spec.layers, key=lambda spec: spec.channels).name
    variants = {"plain": {}, "circuit": {"live.circuit": True}, "backprop": {"live.backprop": "guided"},
                "circuit_guided": {"live.circuit": True, "live.backprop": "guided"}}
    runs = {}
    for name, overrides in variants.items():
        app = live_app(net, largest, overrides=overrides)
        session = app.new_session()
        frames = [app.prepare(app.files.read())]
        app.files.step(1)
        frames.append(app.prepare(app.files.read()))
        canvas = new_canvas()

        def dashboard(app=app, session=session, frames=frames, canvas=canvas, counter=iter(range(10**9))):
            session.latest = app.worker.observe(app.request(0, frames[next(counter) % 2], session.state))
            draw_dashboard(app.view(session), canvas)

        runs[name] = dashboard
    return interleaved(runs, rounds=3 if quick else 7, per_round=5)


def _command(net, quick: bool) -> tuple[float, float]:
    """(images a second of `deepvis circuit FOLDER` once running, its seconds per image over a
    bare batched forward pass)."""
    import numpy as np
    import tensorflow as tf

    from toolbox.cli import main

    n = 32 if quick else 96
    with tempfile.TemporaryDirectory() as tmp:
        small, large = Path(tmp) / "small", Path(tmp) / "large"
        small.mkdir()
        large.mkdir()
        photos = distinct_photos(large, 2 * n)
        for p in photos[:n]:
            (small / p.name).write_bytes(p.read_bytes())
        seconds: dict[Path, list[float]] = {small: [], large: []}
        for _ in range(2 if quick else 3):  # alternately: the host's bursts fall on both alike
            for folder in (small, large):
                t = time.perf_counter()
                assert main(["circuit", str(folder), "--model", net.name, "--layer", "block9_add", "--unit", "17",
                             "--json"]) == 0
                seconds[folder].append(time.perf_counter() - t)
        per_image = (min(seconds[large]) - min(seconds[small])) / n
    view = net.view(["block9_add"])  # cut after the layer, as the circuit's own forward pass is

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def forward(pixels):
        return view(net.normalize(pixels), training=False)

    batch = tf.constant(np.random.default_rng(0).uniform(0, 255, (16, 224, 224, 3)).astype(np.float32))
    bare = interleaved({"forward": lambda: forward(batch)["block9_add"].numpy()}, rounds=3, per_round=2)["forward"]
    return 1.0 / per_image, per_image / (bare / 16)


def _tasks(net, quick: bool) -> None:
    """Seconds per unit of circuits tasks (9 top-crop images each), a few layers measured, the
    mean seconds per layer over all offered layers estimated from them."""
    from toolbox.assets.crops import CropStore
    from toolbox.assets.precompute import CircuitParams, Worker, plan_circuit_tasks
    from toolbox.cli import main
    from toolbox.settings import CircuitSettings

    measured = ["block2_add", "block9_add"] if quick else ["block2_add", "block6_add", "block9_add", "block13_add"]
    with tempfile.TemporaryDirectory() as tmp:
        photos = Path(tmp) / "photos"
        photos.mkdir()
        distinct_photos(photos, 24 if quick else 64)
        assert main(["crops", "--model", net.name, "--images", str(photos), "--layers", ",".join(measured),
                     "-o", str(Path(tmp) / "assets")]) == 0
        store = CropStore(Path(tmp) / "assets")
        worker = Worker(net, None, None, CircuitParams(CircuitSettings().batch, 10**8, "crop"))
        order = net.spec.layer_names
        rate = {}
        for layer in measured:
            tasks = plan_circuit_tasks(store, order, [layer], 16 if quick else 64, net.name)
            worker.run(tasks[0])  # compiles the layer's step
            t = time.perf_counter()
            units = 0
            for task in tasks[1:] if len(tasks) > 1 else tasks:
                worker.run(task)
                units += len(task.units)
            rate[layer] = (time.perf_counter() - t) / units
            emit(f"circuit_task_s_per_unit_{layer}", rate[layer], "s")
    depth = {name: i for i, name in enumerate(order)}
    total = 0.0
    for layer in net.spec.layers:
        nearest = min(rate, key=lambda m: abs(depth[m] - depth[layer.name]))
        total += layer.channels * rate[nearest]
    emit("circuit_tasks_lite0_s_per_layer_mean", total / len(order), f"s (whole lite0 about {total / 60:.0f} min, "
         f"1 worker)")


def run(quick: bool) -> None:
    from toolbox.errors import UserError

    try:
        inception = load("inception_v3_2015")
    except UserError as e:
        print(f"circuit_ablation_wins_inception_v3_2015: skipped ({e})")
    else:
        emit("circuit_ablation_wins_inception_v3_2015", _ablation(inception, 32), "(of 32 random units; goal >= 0.9)")
        del inception
    net = load("efficientnet_lite0")
    emit("circuit_ablation_wins_lite0", _ablation(net, 32), "(of 32 random units; goal >= 0.9)")
    times = _dashboards(net, quick)
    emit("live_fps_circuit_lite0", 1.0 / times["circuit"], "fps (goal >= 12)")
    emit("live_fps_circuit_guided_lite0", 1.0 / times["circuit_guided"], "fps (with the guided gradient pane)")
    emit("live_fps_backprop_lite0", 1.0 / times["backprop"], "fps (the guided pane alone, same run)")
    emit("live_fps_lite0", 1.0 / times["plain"], "fps (neither, same run)")
    rate, ratio = _command(net, quick)
    emit("circuit_images_per_s_lite0", rate, "images/s")
    emit("circuit_over_forward", ratio, "x (seconds per image over a bare batched forward pass)")
    _tasks(net, quick)
