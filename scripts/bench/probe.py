"""Benchmark part `probe`: probe_overhead_lite0: probe time per image / bare compiled forward pass (goal <= 1.2)
"""

from __future__ import annotations

from bench.common import emit, example_image, interleaved, load


def run(quick: bool) -> None:
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
