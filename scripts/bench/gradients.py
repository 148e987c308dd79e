"""Benchmark part `gradients`: attribution maps on lite0, one 224 px photo: attribution_overhead_lite0_METHOD = ms per
call / a bare compiled tf.GradientTape gradient of the same class score, for gradient,
guided, deconv and gradcam, and attribution_overhead_lite0 = the worst of them (goal
<= 1.5); smoothgrad with n samples over n x that floor (goal <= 1)
"""

from __future__ import annotations

from bench.common import emit, example_image, interleaved, load


def run(quick: bool) -> None:
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
