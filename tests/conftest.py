"""Shared fixtures: the real lite0 network (converted once per session into a temporary
cache), the example photos, and a tiny 8x8 Keras model with its spec for fast math tests."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("deepvis-cache")


@pytest.fixture(scope="session")
def lite0_settings(cache_dir):
    from toolbox.settings import load_settings

    return load_settings(None, {"model": "efficientnet_lite0", "cache_dir": str(cache_dir)})


@pytest.fixture(scope="session")
def lite0(lite0_settings):
    from toolbox.nets import load_network

    return load_network(lite0_settings)


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    from toolbox.images import read_image

    return {p.stem: read_image(p) for p in sorted(EXAMPLES.glob("*.*")) if p.suffix != ".md"}


TINY_SPEC = """\
description: tiny test network
builder: keras_file
source: {{path: {path}}}
input_size: 8
min_size: 4
preprocess: {{mean: 0.0, std: 255.0}}
labels: labels.txt
dream_layers: {{conv_b: 1.0}}
layers:
  - {{name: conv_a, channels: 4}}
  - {{name: relu_a, channels: 4}}
  - {{name: conv_b, channels: 6}}
"""


def build_tiny_model(seed: int = 0):
    """8x8 RGB -> conv(4) -> relu -> conv(6) -> global mean -> dense(3) -> softmax."""
    import keras

    keras.utils.set_random_seed(seed)
    x = inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv_a")(x)
    x = keras.layers.ReLU(name="relu_a")(x)
    x = keras.layers.Conv2D(6, 3, padding="same", name="conv_b")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(3, name="logits")(x)
    return keras.Model(inputs, keras.layers.Softmax(name="predictions")(x))


@pytest.fixture(scope="session")
def tiny_settings(tmp_path_factory):
    """Settings whose models_dir holds a spec 'tiny' for a saved 8x8 Keras model."""
    from toolbox.settings import load_settings

    d = tmp_path_factory.mktemp("tiny-models")
    build_tiny_model().save(d / "tiny.keras")
    (d / "tiny.yaml").write_text(TINY_SPEC.format(path=d / "tiny.keras"))
    (d / "labels.txt").write_text("zero\none\ntwo\n")
    return load_settings(None, {"model": "tiny", "models_dir": str(d), "cache_dir": str(d / "cache")})


@pytest.fixture(scope="session")
def tiny(tiny_settings):
    from toolbox.nets import load_network

    return load_network(tiny_settings)
