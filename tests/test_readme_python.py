"""The README's Python runs as written: its ``python`` blocks, in order, in one session, on
the real lite0 and the bundled photos (blocks marked ``python illustration`` need weights
from the internet and are only shown)."""

from __future__ import annotations

import re

import pytest

from conftest import REPO


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.M | re.S)


@pytest.mark.slow
def test_the_readmes_python_runs(tmp_path, monkeypatch):
    blocks = python_blocks((REPO / "README.md").read_text())
    assert len(blocks) >= 3 and "deepvis.load" in blocks[0]
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # its default cache, not the user's
    monkeypatch.chdir(tmp_path)
    (tmp_path / "examples").symlink_to(REPO / "examples")
    session: dict = {}
    for i, block in enumerate(blocks):
        exec(compile(block, f"README.md python block {i + 1}", "exec"), session)  # noqa: S102 (our own README)
    assert (tmp_path / "dream.png").is_file()
