"""A plain (non-editable) install works from any folder: the model specs, labels and example
photos travel inside the package."""

import os
import subprocess
import sys

import yaml

from conftest import REPO


def test_non_editable_install_runs_from_another_folder(tmp_path, cache_dir, lite0):
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                        "--target", str(target), str(REPO)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert (target / "toolbox" / "data" / "models" / "efficientnet_lite0.yaml").is_file()
    assert (target / "toolbox" / "data" / "examples" / "chelsea.png").is_file()
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
