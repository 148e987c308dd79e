"""The numeric core: objectives, parameterizations, transforms, update rules, the ascent
loop and DeepDream. TensorFlow and numpy only: no windows, no files."""

from toolbox.optvis.dream import DeepDream, DreamSchedule
from toolbox.optvis.objectives import (Context, Objective, channel, class_logit, deepdream, diversity, guide,
                                       neuron, total_variation)
from toolbox.optvis.presets import DEFAULT_PRESET, PRESETS, Preset, get_preset
from toolbox.optvis.render import Ascent, Rendered

__all__ = ["Ascent", "Context", "DEFAULT_PRESET", "DeepDream", "DreamSchedule", "Objective", "PRESETS", "Preset",
           "Rendered", "channel", "class_logit", "deepdream", "diversity", "get_preset", "guide", "neuron",
           "total_variation"]
