"""Benchmark part `ownmodel`: a user's own Keras model, nested the way fine-tuning nests it
(keras.applications.ResNet101, random weights, inside a model with a new head: 347 layers).

- own_model_find_layers_s: rebuilding the graph from the outer input with the nested model
  opened up, and finding the layers to offer (what ``--model mine.keras`` adds to loading the
  file; goal: well under a second)
- own_model_infer_s: the rest of the inferred spec once the layers are found (their shapes at
  the input size, worked out symbolically, and the search for the smallest input size)
- own_model_find_layers_over_load: the first over ``keras.models.load_model`` of the file,
  measured in the same process (goal <= 0.5)
- guided_copy_s / guided_copy_clone_s: the network copy with rule ReLUs that guided backprop and
  deconv use, as it is made now (the graph called again with shared weights) and as it was made
  before (``keras.models.clone_model`` and a copy of the weights): the ratio is the speed-up
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from bench.common import emit


def _seconds(f, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def run(quick: bool) -> None:
    import keras

    from toolbox.nets.graph import is_relu
    from toolbox.nets.keras_graph import qualify_names, rebuild
    from toolbox.nets.keras_model import Loaded, infer, offered_layers
    from toolbox.optvis.relu_rules import rule_relu

    base = keras.applications.ResNet101(include_top=False, weights=None, input_shape=(224, 224, 3))
    inputs = keras.Input((224, 224, 3))
    x = base(keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs), training=False)
    x = keras.layers.Dense(5, name="head")(keras.layers.GlobalAveragePooling2D()(x))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "finetuned.keras"
        keras.Model(inputs, x).save(path)
        repeat = 2 if quick else 5
        load = _seconds(lambda: keras.models.load_model(path, compile=False, safe_mode=True), repeat)
        model = keras.models.load_model(path, compile=False, safe_mode=True)
    qualify_names(model)
    find = _seconds(lambda: offered_layers(rebuild(model)), repeat)
    graph = rebuild(model)
    loaded = Loaded(path, model, graph, qualify_names(model), 0.0)
    whole = _seconds(lambda: infer(loaded, "finetuned"), repeat)
    emit("own_model_layers_in_graph", len(graph.records))
    emit("own_model_layers_offered", len(offered_layers(graph)))
    emit("own_model_find_layers_s", find, "s")
    emit("own_model_infer_s", whole, "s")
    emit("own_model_load_s", load, "s")
    emit("own_model_find_layers_over_load", find / load, "x")
    guided = _seconds(lambda: rebuild(model, replace=lambda op: rule_relu(op) if is_relu(op) else op), repeat)

    def clone():
        copy = keras.models.clone_model(base, clone_function=lambda layer: rule_relu(layer) if is_relu(
            layer) else layer.__class__.from_config(layer.get_config()))
        copy.set_weights(base.get_weights())

    before = _seconds(clone, 1 if quick else 3)
    emit("guided_copy_s", guided, "s")
    emit("guided_copy_clone_s", before, "s")
    emit("guided_copy_speedup", before / guided, "x")
