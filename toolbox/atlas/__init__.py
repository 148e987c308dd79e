"""`deepvis atlas`: a static site of a network's precomputed unit assets."""

from toolbox.atlas.site import AtlasReport, write_atlas

__all__ = ["AtlasReport", "write_atlas"]
