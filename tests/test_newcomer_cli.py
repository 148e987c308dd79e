"""What a new user meets on the command line, each a small thing that said too little or the
wrong thing: a crops run over fewer images than the crops it keeps."""

from __future__ import annotations

import shutil

from conftest import EXAMPLES, deepvis


def test_crops_over_fewer_images_than_it_keeps_says_so_and_names_its_sheets(tiny_settings_file, tmp_path):
    few = tmp_path / "few"
    few.mkdir()
    for name in ("chelsea.png", "coffee.png"):
        shutil.copy(EXAMPLES / name, few / name)
    r = deepvis("crops", "--images", str(few), "--layers", "conv_a,conv_b", "-o", str(tmp_path / "out"),
                settings=tiny_settings_file)
    assert r.returncode == 0, r.stderr
    assert "only 2 images looked at in all: each unit has at most 2 crops of the 9 asked" in r.stderr
    assert "top 2 crops of" in r.stdout and "<layer>" not in r.stdout
    assert "conv_a_crops.png" in r.stdout and "conv_b_crops.png" in r.stdout
