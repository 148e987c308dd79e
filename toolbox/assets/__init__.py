"""Precomputed per-unit assets: their on-disk layout and the jobs that make them."""

from toolbox.assets.jobs import render_unit_images
from toolbox.assets.unit_images import UnitImageFolder, contact_sheet

__all__ = ["UnitImageFolder", "contact_sheet", "render_unit_images"]
