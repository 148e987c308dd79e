"""Named recipes for unit images: parameterization + transforms + update rule."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable

from toolbox.errors import UserError, closest
from toolbox.optvis import params, transforms
from toolbox.optvis.updates import Adam, NAdam, RegularizedAscent

if TYPE_CHECKING:
    from toolbox.optvis.objectives import Objective


@dataclass(frozen=True)
class Preset:
    name: str
    param: params.Param
    transform: transforms.Transform
    update: Adam | NAdam | RegularizedAscent
    transparency: bool = False  # its images come with a transparency map worth keeping
    steps: int = 128  # the steps it needs, when units.steps (--steps) does not say
    redirect: bool = False  # ReLUs pass a redirected gradient where the true one is zero (relu_rules)


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
    # (wrapped around: the Fourier image is periodic, so the warp leaves no border to exploit);
    # ReLUs pass a redirected gradient where nothing else would (lite0 block13_dw_relu: 4 of 8
    # units selective instead of 1, the others' images no longer flat grey)
    "lucid": lambda: Preset("lucid", params.fourier(), transforms.standard_affine(fill_mode="WRAP"), Adam(lr=0.05),
                            redirect=True),
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


@dataclass(frozen=True)
class Recipe:
    """How one layer's unit images are made: the preset (its transforms fitted to the layer),
    the image side, the steps, and the objective of each row's unit."""

    preset: Preset
    size: int
    steps: int
    objective: Callable[[str], "Objective"]  # layer -> the objective, one unit per batch row
    contrast: float | None = None  # the objective's weight on the strongest other unit (None: plain channel)
    warp: str = "warp"  # "roll": shifted by whole strides instead of the preset's warp

    def describe(self) -> str:
        return f"{self.preset.name}, {self.size} px, {self.steps} steps"

    def key(self, layer: str) -> str:
        """What makes ``layer``'s images what they are, for a job's task ids (`precompute`): a
        recipe that changes makes new tasks instead of keeping images made the old way."""
        return (f"{self.preset.name}/{self.preset.param.name}/{self.warp}/{self.objective(layer).name}/"
                f"{self.size}/{self.steps}/judged")

    def ascent(self, network, layer: str):
        """The compiled ascent of ``layer``'s units by this recipe; its results report each
        unit's channel mean before the ReLU (``Rendered.objective``), whatever it optimizes."""
        from toolbox.optvis.objectives import channel
        from toolbox.optvis.render import Ascent

        return Ascent(network, self.objective(layer), self.preset, measure=channel(layer))


DEFAULT_SIZE = 128  # side of a unit image when neither units.size (--size) nor the layer says
LARGEST_SIZE = 128  # the most a layer's field asks for (lite0 block9_add: 30 unit images a minute)
SMALLEST_SIZE = 64  # the least (a 3-pixel field still wants a few hundred positions to tile)
FIELD_FRACTION = 0.5  # image side per pixel of the unit's receptive field
# fields up to this many pixels: shifts by the layer's stride instead of a warp (a warp resamples
# the grid phase the units want: inception_v3_2015 mixed0-mixed2, fields 63-127, 19 of 24 units
# selective instead of 12; lite0 block4_add-block6_add as selective, 7-25x the best photo, was 5-16x)
ROLL_FIELD = 128
# fields up to this many pixels: the image's own pixels instead of the Fourier basis, whose 1/f
# spectrum holds back the pixel-fine colour and phase patterns such units want (inception_v3_2015
# conv0 at 80 px: a linear program says each of its 4 judged units can lead; 2 did in Fourier, 3 in
# pixels, 4 with PIXEL_CONTRAST; conv0-conv4 at 8 units: 27 of 40 selective instead of 22; lite0 and
# lite2 up to block3/block4 all selective, as before, their capped units 1.3-2.3x nearer the bound).
# Not beyond: mixed0-mixed2 in pixels were 21 of 24 against 19, but as saturated pixel noise where
# Fourier draws textures
PIXEL_FIELD = 48
# the default preset maximizes a unit's mean minus this times the strongest other unit's: where
# units share what they like (lite0 stem_relu: colours), a plain channel image is everyone's
# (stem_relu 5 of 8 selective instead of 1, block1_project_bn 8 instead of 5; deep layers as before)
CONTRAST = 0.5
# the same on PIXEL_FIELD layers, whose units differ in little but colour and phase: the margin
# itself (inception_v3_2015 conv0-conv4 at 4 units: 16 of 20 selective instead of 14 at 0.5)
PIXEL_CONTRAST = 1.0


def field_size(network, layer: str) -> int:
    """The side a unit image of ``layer`` needs: half its receptive field, a multiple of 8,
    within SMALLEST_SIZE..LARGEST_SIZE and at least the network's smallest input. A unit
    that sees 7 pixels is as clear at 64 px as at 128, for a quarter of the work."""
    field = network.receptive_field(layer)[0]
    side = round(field * FIELD_FRACTION / 8) * 8
    return max(min(max(side, SMALLEST_SIZE), LARGEST_SIZE), -(-network.spec.min_size // 8) * 8)


def unit_recipe(network, layer: str, preset: str, size: int | None = None, steps: int | None = None) -> Recipe:
    """The recipe for ``layer``'s unit images with preset ``preset``: ``size`` and ``steps``
    when given (units.size, units.steps), else what the layer needs. The default preset
    (lucid) fits itself to the layer: the image side follows the unit's receptive field
    (``field_size``); a unit with a small field (up to ROLL_FIELD px) is shifted by whole
    multiples of its layer's stride, wrapped around, instead of warped (the pixel-fine
    patterns early units want survive: lite0 block0-block2 8/8, 5/8, 7/8 selective against 7,
    4, 6 of 8 with the warp); a unit with a field of up to PIXEL_FIELD px is drawn in pixels,
    not the Fourier basis; the objective is the unit's mean against the layer's strongest
    other unit (``channel_contrast``, CONTRAST; PIXEL_CONTRAST in pixels). Use ``Recipe.ascent``."""
    from toolbox.optvis.objectives import channel, channel_contrast

    recipe = get_preset(preset)
    if preset != DEFAULT_PRESET:
        return Recipe(recipe, size or DEFAULT_SIZE, steps or recipe.steps, channel)
    field, stride = network.receptive_field(layer)
    contrast, warp = CONTRAST, "warp"
    if field <= ROLL_FIELD:
        recipe, warp = replace(recipe, transform=transforms.roll(max(8, stride), stride)), "roll"
    if field <= PIXEL_FIELD:
        recipe, contrast = replace(recipe, param=params.pixels()), PIXEL_CONTRAST
    return Recipe(recipe, size or field_size(network, layer), steps or recipe.steps,
                  lambda name: channel_contrast(name, contrast), contrast, warp)
