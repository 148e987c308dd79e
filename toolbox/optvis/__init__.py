"""The numeric core: objectives, parameterizations, transforms, update rules, the ascent
loop, DeepDream and attribution maps. TensorFlow and numpy only: no windows, no files."""

from toolbox.optvis.attribution import METHODS, Attribution, Attributor, Target
from toolbox.optvis.attribution_display import FILTERS, display, heat_colors, overlay
from toolbox.optvis.dream import DeepDream, DreamSchedule
from toolbox.optvis.objectives import (Context, Objective, channel, class_logit, deepdream, diversity, guide,
                                       neuron, total_variation)
from toolbox.optvis.presets import DEFAULT_PRESET, PRESETS, Preset, get_preset
from toolbox.optvis.render import Ascent, Rendered

__all__ = ["Ascent", "Attribution", "Attributor", "Context", "DEFAULT_PRESET", "DeepDream", "DreamSchedule", "FILTERS",
           "METHODS", "Objective", "PRESETS", "Preset", "Rendered", "Target", "channel", "class_logit", "deepdream",
           "display", "diversity", "get_preset", "guide", "heat_colors", "neuron", "overlay", "total_variation"]
