"""docs/tour.ipynb runs as stored (nbclient, the suite's own kernel): the library's tour
never goes stale, and its stored outputs are its pictures."""

from __future__ import annotations

import pytest

from conftest import REPO

TOUR = REPO / "docs" / "tour.ipynb"


@pytest.mark.slow
def test_the_tour_notebook_runs_and_shows_its_pictures(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    stored = nbformat.read(TOUR, as_version=4)
    shown = [o for c in stored.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(shown) >= 5  # a code host shows the pictures without running it
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    fresh = nbformat.read(TOUR, as_version=4)
    nbclient.NotebookClient(fresh, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(TOUR.parent)}}).execute()
    errors = [o for c in fresh.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    made = [o for c in fresh.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(made) == len(shown)
