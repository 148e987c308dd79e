"""Charts a person wants to look at, drawn with matplotlib (imported only when asked)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from toolbox.files import atomic_write


def plot_layer_activations(activations: np.ndarray, title: str, output: str | Path, unit: int | None = None) -> None:
    """A layer's per-channel mean and max on one image as a chart, and with ``unit`` that
    unit's histogram of values over the positions; written atomically to ``output``."""
    import matplotlib

    matplotlib.use("Agg")  # no window: this only writes a file
    import matplotlib.pyplot as plt

    channels = activations.shape[-1]
    mean, peak = activations.mean(axis=(0, 1)), activations.max(axis=(0, 1))
    rows = 2 if unit is not None else 1
    title = title.encode("utf-8", "backslashreplace").decode("utf-8")  # a file name may not be UTF-8
    fig, axes = plt.subplots(rows, 1, figsize=(max(6.0, min(24.0, channels / 12)), 3.2 * rows), squeeze=False)
    ax = axes[0, 0]
    x = np.arange(channels)
    ax.bar(x, peak, width=1.0, color="#f0a040", label="max over positions")
    ax.bar(x, mean, width=1.0, color="#3060c0", label="mean over positions")
    if unit is not None:
        ax.axvline(unit, color="#c02020", linewidth=1, label=f"unit {unit}")
    ax.set(title=title, xlabel="channel", ylabel="activation", xlim=(-0.5, channels - 0.5))
    ax.legend(loc="upper right", fontsize="small")
    if unit is not None:
        values = activations[..., unit].ravel()
        axes[1, 0].hist(values, bins=min(50, max(5, values.size // 4)), color="#3060c0")
        axes[1, 0].set(title=f"unit {unit}: values at {values.size} positions", xlabel="activation",
                       ylabel="positions")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format=Path(output).suffix.lstrip(".").lower() or "png", dpi=100)
    plt.close(fig)
    atomic_write(output, buf.getvalue())
