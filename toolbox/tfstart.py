"""Starting TensorFlow without burying the user's output in its C++ start-up logs."""

from __future__ import annotations

import contextlib
import logging
import os
import sys


def start_tensorflow_quietly() -> None:
    """Import TensorFlow and start its devices with file descriptor 2 muted: its start-up
    notices (CUDA probing, oneDNN) ignore TF_CPP_MIN_LOG_LEVEL. Python errors raised here
    still reach stderr, as they are printed after the descriptor is restored."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        sys.stderr.flush()
        os.dup2(devnull, 2)
        import tensorflow as tf

        tf.config.list_physical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@contextlib.contextmanager
def expected_retracing(expected: bool = True):
    """Silence TensorFlow's warning about a function traced again and again, where that is
    expected (one compiled step per layer, made in a loop over layers), and only there."""
    if not expected:
        yield
        return
    tf_logger = logging.getLogger("tensorflow")

    def not_retracing(record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()

    tf_logger.addFilter(not_retracing)
    try:
        yield
    finally:
        tf_logger.removeFilter(not_retracing)
