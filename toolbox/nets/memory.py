"""Will a computation fit in memory? An estimate made before the work, so that an
option like ``--size 100000`` is refused with a figure instead of attempted."""

from __future__ import annotations

import os

from toolbox.errors import UserError
from toolbox.nets.network import Network

BYTES_PER_VALUE = 4  # float32
TAPE_FACTOR = 3  # forward values kept for the backward pass, their gradients, scratch


def _values_per_pixel(network: Network) -> float:
    """Activation values per input pixel summed over every layer of the network, measured
    symbolically at its input size (every layer scales with the input's area)."""
    shapes = network.all_layer_shapes()
    side = network.spec.input_size
    return sum(h * w * c for h, w, c in shapes) / (side * side)


def available_bytes() -> int:
    """Memory this process could still get: MemAvailable on Linux, else the physical size."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def ascent_bytes(network: Network, side: int, batch: int) -> int:
    """Estimated peak bytes of gradient ascent on ``batch`` images of ``side`` pixels."""
    return int(_values_per_pixel(network) * side * side * batch * BYTES_PER_VALUE * TAPE_FACTOR)


def forward_bytes(network: Network, side: int) -> int:
    """Estimated peak bytes of one forward pass on one image of ``side`` pixels (the input,
    its float copy, every layer's values)."""
    return int((_values_per_pixel(network) + 2 * 3) * side * side * BYTES_PER_VALUE)


def _refuse_above(need: int, what: str, then: str, advice: str) -> None:
    have = available_bytes()
    if need > 0.8 * have:
        raise UserError(f"{what} need{then} about {need / 2**30:.1f} GiB, more than this machine has free "
                        f"({have / 2**30:.1f} GiB); {advice}")


def check_fits(network: Network, side: int, batch: int, what: str) -> None:
    """A one-line UserError when gradient ascent on ``batch`` images of ``side`` px would not fit."""
    _refuse_above(ascent_bytes(network, side, batch), f"{what}: {batch} image(s) of {side} px", f" on {network.name}",
                  "use a smaller size or batch")


def check_input_fits(network: Network) -> None:
    """A one-line UserError, before any image is made, when one forward pass at the network's
    input size would not fit in memory (a model file with a fixed 50000x50000 input): the one
    check of an input size against memory, made once as a network loads."""
    side = network.spec.input_size
    _refuse_above(forward_bytes(network, side), f"{network.name} takes {side}x{side} px images: one forward pass",
                  "s", "where the model takes other sizes, write its spec (deepvis spec) with a smaller input_size")
