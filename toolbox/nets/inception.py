"""InceptionV3 (Keras applications) with ImageNet weights, on inputs of any size >= 75 px.

Weights are looked for, in order: a path from settings / ``--weights``, Keras' own cache
(``~/.keras/models``), then a download when the internet is reachable.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from toolbox.errors import UserError

WEIGHTS_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels.h5"
WEIGHTS_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/" + WEIGHTS_FILE)
WEIGHTS_HOST = "storage.googleapis.com"


def keras_cache_file() -> Path:
    home = os.environ.get("KERAS_HOME") or Path.home() / ".keras"
    return Path(home) / "models" / WEIGHTS_FILE


def internet_reachable(host: str = WEIGHTS_HOST, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def find_weights(explicit: str | None, allow_download: bool) -> Path | None:
    """The weights file to use, or None when there is none and no download was allowed."""
    if explicit:
        p = Path(explicit).expanduser()
        if not p.is_file():
            raise UserError(f"InceptionV3 weights file not found: {p}")
        return p
    cached = keras_cache_file()
    if cached.is_file():
        return cached
    if allow_download and internet_reachable():
        import keras

        return Path(keras.utils.get_file(WEIGHTS_FILE, WEIGHTS_URL, cache_subdir="models"))
    return None


def missing_weights_error() -> UserError:
    return UserError(
        "no ImageNet weights for inception_v3: give a file with --weights or 'weights:' in settings.yaml, "
        f"put {WEIGHTS_FILE} in {keras_cache_file().parent}, or connect to the internet to download it "
        "(or use --model efficientnet_lite0, which works offline)")


def build(weights: Path | None, classes: int = 1000):
    """InceptionV3 on (None, None, 3) inputs; ``weights=None`` gives random weights."""
    import keras
    from keras.applications import InceptionV3

    body = InceptionV3(include_top=False, weights=None, input_shape=(None, None, 3))
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(body.output)
    out = keras.layers.Dense(classes, activation="softmax", name="predictions")(x)
    model = keras.Model(body.input, out, name="inception_v3")
    if weights is not None:
        try:  # Keras reads its own format(s); the fixed-size reference model checks the file
            reference = InceptionV3(include_top=True, weights=str(weights), classes=classes)
        except (OSError, ValueError) as e:
            raise UserError(f"cannot load InceptionV3 weights from {weights}: {e}") from None
        model.set_weights(reference.get_weights())
    return model
