"""Benchmark part `dream`: dream_speedup_vs_baseline: the tutorial way (whole network, a fresh trace per octave,
no tiling) over deepvis' DeepDream, same photo, layers and schedule (goal >= 1.5);
full mode adds dream_large_peak_rss_gb, a 4000x3000 dream in a child process
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from bench.common import EXAMPLES, emit, interleaved, load


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


def run(quick: bool) -> None:
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
