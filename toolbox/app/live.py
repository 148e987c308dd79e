"""Assembling the live toolbox from settings: the one place the CLI and the benchmark
get a ready LiveApp from."""

from __future__ import annotations

from toolbox.app.modes.accent import AccentSettings
from toolbox.app.window import LiveApp
from toolbox.app.worker import NetworkWorker, UnitImageSettings
from toolbox.assets import UnitImageFolder
from toolbox.nets import Network
from toolbox.settings import Settings


def build_live_app(network: Network, settings: Settings, source) -> LiveApp:
    """The window's application on ``source`` (see sources.open_source): a network worker
    whose on-demand unit images go to, and come from, the folder ``deepvis units`` fills, and
    whose accentuations are ``deepvis accentuate``'s (the accentuate.* settings)."""
    from toolbox.optvis.presets import steps_of

    live, accent = settings.live, settings.accentuate
    folder = UnitImageFolder(settings.unit_images_path(network.name))
    folder.check_model(network.name)  # never show another network's unit images or crops
    worker = NetworkWorker(network, folder,
                           UnitImageSettings(settings.units.preset, live.unit_image_size,
                                             steps_of(settings.units.preset, live.unit_image_steps)),
                           AccentSettings(accent.size or network.spec.input_size, accent.steps, accent.weight))
    return LiveApp(worker, settings, source)
