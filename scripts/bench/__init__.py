"""The benchmark parts, one module each (``bench/<part>.py`` with ``run(quick)``), in the order
``scripts/benchmark.py`` runs them."""

PARTS = ("probe", "dream", "units", "layers", "library", "live", "serve", "soak", "crops", "gradients", "precompute",
         "seedimages", "circuits", "inception")
