"""Named recipes for unit images: parameterization + transforms + update rule."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from toolbox.errors import UserError, closest
from toolbox.optvis import params, transforms
from toolbox.optvis.updates import Adam, NAdam, RegularizedAscent


@dataclass(frozen=True)
class Preset:
    name: str
    param: params.Param
    transform: transforms.Transform
    update: Adam | NAdam | RegularizedAscent
    transparency: bool = False  # its images come with a transparency map worth keeping
    steps: int = 128  # the steps it needs, when units.steps (--steps) does not say


def _maco() -> Preset:
    """MACO (Fel et al. 2023): phases under a fixed natural spectrum, NAdam, each step one
    random crop of 20-50% of the image per unit (resized to half the image's side, so the
    network sees its parts at 1-2.5x) plus noise. The rate is 0.3, not MACO's 1.0: with one
    crop per unit and step instead of 32 the gradient is noisier (on lite0 block9_add 0-15:
    12 of 16 units selective at 0.3, 7 at 1.0, the same activation ratio). It needs 256 steps
    (5 of 16 selective at 128)."""
    return Preset("maco", params.maco(), transforms.compose([transforms.crops(0.2, 0.5, 0.5), transforms.noise(0.05)]),
                  NAdam(lr=0.3), transparency=True, steps=256)


def _yosinski(n: int, **regularizers) -> Callable[[], Preset]:
    """Pixels, 4-px jitter and setting ``n`` of the regularizers of Yosinski et al. 2015."""
    return lambda: Preset(f"yosinski{n}", params.pixels(), transforms.jitter_only(4), RegularizedAscent(**regularizers))


PRESETS: dict[str, Callable[[], Preset]] = {
    # Fourier basis, decorrelated colour, Adam; Lucid's pad/jitter/scale/rotate as one warp per
    # row at the size asked (the network sees 128 px for 128 asked, not 126-158: a third less
    # work per step, and the same quality in half the steps, see scripts/bench/units.py)
    "lucid": lambda: Preset("lucid", params.fourier(), transforms.standard_affine(), Adam(lr=0.05)),
    # Phase-only Fourier under a natural magnitude spectrum, random crops and noise, NAdam
    "maco": _maco,
    # The four hyperparameter settings of Yosinski et al. 2015, "Understanding Neural
    # Networks Through Deep Visualization", table of regularization combinations.
    "yosinski1": _yosinski(1, decay=0.0, blur_every=4, blur_width=0.5, norm_pct=50),
    "yosinski2": _yosinski(2, decay=0.3, norm_pct=20),
    "yosinski3": _yosinski(3, decay=0.0001, blur_every=4, blur_width=1.0),
    "yosinski4": _yosinski(4, decay=0.0, blur_every=4, blur_width=0.5, contrib_pct=90),
}
DEFAULT_PRESET = "lucid"


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise UserError(f"unknown preset '{name}'{closest(name, PRESETS)}; known: {', '.join(PRESETS)}")
    return PRESETS[name]()


def steps_of(name: str, asked: int | None) -> int:
    """The steps a unit image of preset ``name`` takes: ``asked`` (units.steps), else the preset's own."""
    return asked or get_preset(name).steps
