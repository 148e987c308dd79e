"""The README's Python runs as written: its ``python`` blocks and then the guide's
(docs/guide.md), in order, in one session, on the real lite0 and the bundled photos (blocks
marked ``python illustration`` need weights from the internet and are only shown)."""

from __future__ import annotations

import re

import pytest

from conftest import REPO


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.M | re.S)


@pytest.mark.slow
def test_the_readmes_python_runs(tmp_path, monkeypatch):
    readme = python_blocks((REPO / "README.md").read_text())
    blocks = readme + python_blocks((REPO / "docs" / "guide.md").read_text())
    assert len(readme) >= 1 and "deepvis.load" in readme[0] and len(blocks) >= 3
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # its default cache, not the user's
    monkeypatch.chdir(tmp_path)
    (tmp_path / "examples").symlink_to(REPO / "examples")
    session: dict = {}
    for i, block in enumerate(blocks):
        exec(compile(block, f"python block {i + 1} of the README and the guide", "exec"), session)  # noqa: S102
    assert (tmp_path / "dream.png").is_file()
