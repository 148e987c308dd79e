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


def plot_circuit(circuit, excitatory, inhibitory, thumbnails, title: str, output: str | Path,
                 relu_side: str = "") -> None:
    """``circuit_chart`` written atomically to ``output`` (png, svg or pdf, by its suffix)."""
    atomic_write(output, circuit_chart(circuit, excitatory, inhibitory, thumbnails, title,
                                       Path(output).suffix.lstrip(".").lower() or "png", relu_side))


def circuit_chart(circuit, excitatory, inhibitory, thumbnails, title: str, fmt: str = "png",
                  relu_side: str = "") -> bytes:
    """A unit's strongest inputs as horizontal bars, excitatory (warm) above inhibitory (cold),
    each labelled with its unit and share and, where given, its thumbnail ((image, kind) or
    None per link, in the order excitatory then inhibitory); the file's bytes in ``fmt``.
    ``relu_side``: which of the unit's values its max is (``Network.relu_side``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    links = list(excitatory) + list(inhibitory)
    gap = 0.6 if excitatory and inhibitory else 0.0
    ys = [-(i + (gap if i >= len(excitatory) else 0.0)) for i in range(len(links))]
    values = [link.contribution for link in links]
    colors = ["#e07020"] * len(excitatory) + ["#3070d0"] * len(inhibitory)
    title = title.encode("utf-8", "backslashreplace").decode("utf-8")
    fig, ax = plt.subplots(figsize=(8.0, 1.1 + 0.62 * max(len(links), 1)))
    ax.barh(ys, values, height=0.7, color=colors)
    ax.axvline(0, color="#444444", linewidth=0.8)
    ax.set_yticks(ys, [f"unit {link.unit}" for link in links])
    ax.set_ylim(min(ys, default=0) - 0.6, 0.6)
    span = max((abs(v) for v in values), default=1.0) or 1.0
    ax.set_xlim(min(min(values, default=0), 0) - 0.45 * span, max(max(values, default=0), 0) + 0.3 * span)
    for y, link in zip(ys, links):
        ax.text(link.contribution + (0.02 if link.contribution >= 0 else -0.02) * span, y, f"{link.share:+.1%}",
                va="center", ha="left" if link.contribution >= 0 else "right", fontsize=9)
    left = ax.get_xlim()[0]
    for y, thumb in zip(ys, thumbnails):
        if thumb is not None:
            image = thumb[0]
            box = OffsetImage(image, zoom=40 / max(image.shape[:2]))
            ax.add_artist(AnnotationBbox(box, (left, y), xybox=(24, 0), xycoords="data", boxcoords="offset points",
                                         frameon=False))
    over = "1 image" if circuit.images == 1 else f"mean over {circuit.images} images"
    ax.set_title(f"{title}: max {circuit.value:.3g}{relu_side} ({over})\n"
                 f"strongest inputs from {circuit.source} (orange: excitatory, blue: inhibitory)", fontsize=10)
    ax.set_xlabel("contribution (activation x gradient, summed over space); label: share of all |contributions|")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=100)
    plt.close(fig)
    return buf.getvalue()
