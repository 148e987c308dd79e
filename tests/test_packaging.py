"""A plain (non-editable) install works from any folder: the model specs, labels and example
photos travel inside the package."""

import os
import subprocess
import sys

import pytest
import yaml

from conftest import REPO


@pytest.mark.slow
@pytest.mark.e2e
def test_non_editable_install_runs_from_another_folder(tmp_path, cache_dir, lite0):
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                        "--target", str(target), str(REPO)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert (target / "toolbox" / "data" / "models" / "efficientnet_lite0.yaml").is_file()
    assert (target / "toolbox" / "data" / "examples" / "chelsea.png").is_file()
    assert (target / "toolbox" / "optvis" / "natural_spectrum.npy").is_file()  # the maco preset's spectrum
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "settings.yaml").write_text(yaml.safe_dump({"model": "efficientnet_lite0",
                                                             "cache_dir": str(cache_dir)}))
    env = {**os.environ, "PYTHONPATH": str(target)}
    code = "import toolbox, sys; print(toolbox.__file__); from toolbox.cli import main; sys.exit(main())"
    r = subprocess.run([sys.executable, "-c", code, "live", "--headless", "--frames", "2", "-o", "shots"],
                       capture_output=True, text=True, cwd=elsewhere, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(str(target))  # the installed copy ran, not the checkout
    assert sorted(p.name for p in (elsewhere / "shots").iterdir()) == ["dashboard_0000.png", "dashboard_0001.png"]
    # the README's photos: a plain install has no ./examples, `deepvis examples` says where they are
    r = subprocess.run([sys.executable, "-c", code, "examples"], capture_output=True, text=True, cwd=elsewhere,
                       env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    folder = r.stdout.strip().splitlines()[-1]
    assert folder == str(target / "toolbox" / "data" / "examples")
    assert os.path.isfile(os.path.join(folder, "chelsea.png"))


def _fake_checkout(tmp_path, pip_says: str, pip_fails: bool = False):
    """A copy of scripts/venv-run in a checkout whose .venv/bin/python is a stand-in: it
    answers `-m pip` by writing ``pip_says`` on stderr (and failing with ``pip_fails``)."""
    root = tmp_path / "checkout"
    (root / "scripts").mkdir(parents=True)
    (root / "scripts" / "venv-run").write_bytes((REPO / "scripts" / "venv-run").read_bytes())
    (root / "scripts" / "venv-run").chmod(0o755)
    for name in ("setup.cfg", "setup.py", "pyproject.toml"):
        (root / name).write_text(name)
    python = root / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f"#!/bin/sh\necho '{pip_says}' >&2\nexit {1 if pip_fails else 0}\n")
    python.chmod(0o755)
    return root


def test_venv_run_keeps_pip_notices_out_of_sight_unless_it_fails(tmp_path):
    """Issue 21: the first `scripts/venv-run` showed setuptools' "Editable installation" banner."""
    banner = "BuildBackendWarning: Editable installation."
    root = _fake_checkout(tmp_path / "ok", banner)
    r = subprocess.run([str(root / "scripts" / "venv-run"), "echo", "ran"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "ran", r.stderr
    assert "Editable installation" not in r.stderr and "installing deepvis" in r.stderr
    assert (root / ".venv" / ".deepvis-installed").is_file()
    root = _fake_checkout(tmp_path / "bad", "ERROR: No matching distribution found", pip_fails=True)
    r = subprocess.run([str(root / "scripts" / "venv-run"), "echo", "ran"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "ran" not in r.stdout
    assert "No matching distribution found" in r.stderr and "installing failed" in r.stderr  # a failure shows all
