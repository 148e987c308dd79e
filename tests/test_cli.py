"""The `deepvis` command as a user runs it: its exit codes and what it writes, run in this process
(conftest's deepvis); `python -m toolbox` itself in a real process where that is the point."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import EXAMPLES, REPO, deepvis


def python_m_toolbox(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "toolbox", *args], capture_output=True, cwd=REPO, timeout=300,
                          **kwargs)


COMMANDS = ("layers", "spec", "predict", "activations", "dream", "units", "attribute", "classes", "invert",
            "accentuate", "fool", "crops", "circuit", "precompute", "atlas", "live", "examples")
NO_NETWORK = ("examples",)  # commands without --model, --weights, --settings


def test_help_lists_and_explains_every_command():
    from toolbox.cli import build_parser

    parser = build_parser()
    assert sorted(parser._subparsers._group_actions[0].choices) == sorted(COMMANDS)
    out = deepvis("--help").stdout
    for command in COMMANDS:
        assert command in out
        r = deepvis(command, "--help")
        assert r.returncode == 0 and "example" in r.stdout, command
        assert ("--settings" in r.stdout) == (command not in NO_NETWORK), command


def test_a_newcomers_first_commands():
    """Issue 21: `deepvis` alone said "the following arguments are required" after a doubled
    "deepvis: error: deepvis:"; there was no --version; nothing said where the photos are."""
    import toolbox

    alone = python_m_toolbox(text=True)  # the process itself: nothing on stderr, not even TensorFlow's
    assert alone.returncode == 0 and alone.stderr == ""
    assert alone.stdout.startswith("usage: deepvis") and all(c in alone.stdout for c in COMMANDS)
    version = deepvis("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"deepvis {toolbox.__version__}"
    for args, says in ((["frob"], "invalid choice: 'frob'"), (["live", "--frames", "x"], "live: argument --frames")):
        r = deepvis(*args)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert r.stderr.startswith("deepvis: error: ") and "deepvis: error: deepvis" not in r.stderr
        assert says in r.stderr, r.stderr
    examples = deepvis("examples")
    assert examples.returncode == 0 and (Path(examples.stdout.strip()) / "chelsea.png").is_file()
    listed = deepvis("examples", "--list").stdout.split()
    assert any(p.endswith("coffee.png") for p in listed) and all(Path(p).is_file() for p in listed)


def test_layers_json_in_network_order(settings_file, lite0):
    r = deepvis("layers", "--json", settings=settings_file)
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [row["name"] for row in rows] == lite0.spec.layer_names
    assert rows[0]["shape"] == [112, 112, 32] and rows[-1]["shape"] == [7, 7, 1280]


def test_predict_and_activations(settings_file):
    r = deepvis("predict", str(EXAMPLES / "coffee.png"), str(EXAMPLES / "chelsea.png"), "--top", "2",
                settings=settings_file)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert "espresso" in lines[0] and "cat" in lines[1] and len(lines) == 2
    r = deepvis("activations", str(EXAMPLES / "chelsea.png"), "--layer", "block9_add", "--json",
                settings=settings_file)
    assert r.returncode == 0, r.stderr
    stats = json.loads(r.stdout)["block9_add"]
    assert stats["shape"] == [14, 14, 112] and len(stats["mean"]) == len(stats["max"]) == 112
    assert all(m <= x for m, x in zip(stats["mean"], stats["max"]))


def _bad_inputs(tmp):
    (tmp / "empty.png").write_bytes(b"")
    (tmp / "text.png").write_text("not an image")
    data = (EXAMPLES / "chelsea.png").read_bytes()
    (tmp / "cut.png").write_bytes(data[: len(data) // 3])
    (tmp / "nothing_here").mkdir()
    chelsea = str(EXAMPLES / "chelsea.png")
    return {
        "missing": (["predict", str(tmp / "missing.jpg")], "not found"),
        "zero-byte": (["predict", str(tmp / "empty.png")], "empty"),
        "truncated": (["predict", str(tmp / "cut.png")], "truncated"),
        "text as png": (["predict", str(tmp / "text.png")], "not a readable image"),
        "empty folder": (["predict", str(tmp / "nothing_here")], "no images"),
        "unknown network": (["predict", chelsea, "--model", "resnet9000"], "unknown model"),
        "unknown layer": (["activations", chelsea, "--layer", "block9_ad"], "did you mean: block9_add"),
    }


@pytest.mark.parametrize("case", ["missing", "zero-byte", "truncated", "text as png", "empty folder",
                                  "unknown network", "unknown layer"])
def test_bad_input_is_one_line_and_exit_2(tmp_path, settings_file, case):
    args, message = _bad_inputs(tmp_path)[case]
    r = deepvis(*args, settings=settings_file)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("deepvis: error:") and message in lines[0], r.stderr


def test_dream_keeps_size_of_any_input_kind(tmp_path, settings_file):
    from PIL import Image

    import numpy as np

    gray16 = (np.linspace(0, 65535, 90 * 120).reshape(90, 120)).astype(np.uint16)
    Image.fromarray(gray16).save(tmp_path / "gray16.png")
    r = deepvis("dream", str(tmp_path / "gray16.png"), "-o", str(tmp_path / "out.png"), "--octaves", "2",
                "--steps", "3", settings=settings_file)
    assert r.returncode == 0, r.stderr
    from toolbox.images import read_image

    assert read_image(tmp_path / "out.png").shape == (90, 120, 3)
    assert "dream" in r.stderr and "100%" in r.stderr  # the progress bar ran to the end


def test_dream_zoom_video_gif_and_guide(tmp_path, settings_file):
    import cv2

    out = tmp_path / "zoom.png"
    r = deepvis("dream", str(EXAMPLES / "coffee.png"), "-o", str(out), "--octaves", "1", "--steps", "2",
                "--zoom-frames", "3", "--gif", "--guide", str(EXAMPLES / "chelsea.png"), settings=settings_file)
    assert r.returncode == 0, r.stderr
    video = cv2.VideoCapture(str(tmp_path / "zoom.mp4"))
    frames = 0
    while video.read()[0]:
        frames += 1
    assert frames == 4 and (tmp_path / "zoom.gif").stat().st_size > 0 and out.is_file()
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


@pytest.mark.slow
def test_units_writes_images_sheet_json_and_is_deterministic(tmp_path, settings_file):
    args = ["units", "--layer", "block9_add", "--units", "0,5-6", "--steps", "6", "--size", "48", "--seed", "3"]
    r = deepvis(*args, "-o", str(tmp_path / "a"), settings=settings_file)
    assert r.returncode == 0, r.stderr
    files = sorted(p.name for p in (tmp_path / "a").iterdir() if not p.name.startswith("."))  # not the lock
    assert files == ["block9_add_0000.png", "block9_add_0005.png", "block9_add_0006.png",
                     "block9_add_objectives.json", "block9_add_sheet.png", "deepvis-assets.json"]
    data = json.loads((tmp_path / "a" / "block9_add_objectives.json").read_text())
    assert sorted(data["units"]) == ["0", "5", "6"] and data["model"] == "efficientnet_lite0"
    deepvis(*args, "-o", str(tmp_path / "b"), settings=settings_file)
    for name in files[:3]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


@pytest.mark.parametrize("args, message", [
    (["units", "--layer", "block9_add", "--units", "110-112"], "unit 112 is out of range"),
    (["units", "--layer", "block9_add", "--units", "3-x"], "bad unit spec"),
    (["units", "--layer", "block9_add", "--units", "1", "--preset", "lucidd"], "did you mean: lucid"),
    (["dream", str(EXAMPLES / "coffee.png"), "-o", "/tmp/out.txt"], "must end in"),
    (["dream", str(EXAMPLES / "coffee.png"), "-o", "/tmp/x.png", "--layers", "block9_add:x"], "bad layer weight"),
    # every command that takes a class matches words inside labels (issue 21) and meanings (issue 32)
    (["classes", "--classes", "magpie,cat", "-o", "/tmp/c"], "by meaning and by label: tabby (281), tiger cat (282)"),
    (["fool", str(EXAMPLES / "coffee.png"), "--target", "cat", "-o", "/tmp/f.png"], "tiger cat (282)"),
])
def test_engine_command_mistakes(args, message, settings_file):
    r = deepvis(*args, settings=settings_file)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert message in r.stderr.strip().splitlines()[-1]


def _units(out, *extra):
    return ["units", "--layer", "block9_add", "--units", "0-1", "--steps", "2", "--size", "32", "-o", str(out),
            *extra]


@pytest.mark.parametrize("args, message", [
    (_units("/proc/deepvis-out"), "cannot"),
    (["dream", str(EXAMPLES / "coffee.png"), "-o", "/proc/x.png"], "cannot"),
    (["dream", str(EXAMPLES / "coffee.png"), "-o", str(REPO / "examples")], "must end in"),
    (["dream", str(EXAMPLES / "coffee.png"), "-o", str(EXAMPLES)+ ".png", "--zoom-frames", "-3"], "at least 0"),
    (["dream", str(EXAMPLES / "coffee.png"), "-o", "/tmp/x.png", "--octaves", "0"], "--octaves (dream.octaves)"),
    (["dream", str(EXAMPLES / "coffee.png"), "-o", "/tmp/x.png", "--octave-scale", "0"], "above 1.0"),
    (["dream", str(EXAMPLES / "coffee.png"), "-o", "/tmp/x.png", "--octave-scale", "-2"], "above 1.0"),
    (["dream", str(EXAMPLES / "coffee.png"), "-o", "/tmp/x.png", "--steps", "0"], "--steps (dream.steps)"),
    (_units("/tmp/u", "--size", "0"), "--size (units.size) must be at least 16"),
    (_units("/tmp/u", "--size", "-5"), "at least 16"),
    (_units("/tmp/u", "--size", "100000"), "at most 2048"),
    (_units("/tmp/u", "--steps", "-1"), "at least 1"),
    (_units("/tmp/u", "--batch", "0"), "at least 1"),
    (_units("/tmp/u", "--size", "2048", "--batch", "1024"), "GiB"),
    (["predict", str(EXAMPLES / "coffee.png"), "--top", "-1"], "at least 1"),
    (["predict", str(EXAMPLES / "coffee.png"), "--model", "m" * 300], "unknown model"),
    (["live", "--headless", "--video", "/tmp"], "must end in"),
    (["live", "--headless", "--video", str(REPO)+ "/x.avi"], "must end in"),
])
def test_bad_options_and_outputs_are_one_line_before_any_work(args, message, settings_file):
    r = deepvis(*args, settings=settings_file)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert lines[-1].startswith("deepvis: error:") and message in lines[-1], r.stderr


def test_output_that_is_an_existing_file_or_folder(tmp_path, settings_file):
    (tmp_path / "file").write_text("x")
    (tmp_path / "dir.png").mkdir()
    for args in (_units(tmp_path / "file"), ["dream", str(EXAMPLES / "coffee.png"), "-o", str(tmp_path / "dir.png")]):
        r = deepvis(*args, settings=settings_file)
        assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_predict_folder_with_broken_files_goes_on(tmp_path, settings_file):
    import shutil

    shutil.copy(EXAMPLES / "coffee.png", tmp_path / "a_coffee.png")
    (tmp_path / "b_broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    shutil.copy(EXAMPLES / "chelsea.png", tmp_path / "c_chelsea.png")
    r = deepvis("predict", str(tmp_path), "--top", "1", settings=settings_file)
    assert r.returncode == 0, r.stderr
    assert [line.split(":")[0] for line in r.stdout.strip().splitlines()] == [
        str(tmp_path / "a_coffee.png"), str(tmp_path / "c_chelsea.png")]
    assert "b_broken.jpg" in r.stderr and "1 of 3 images could not be read" in r.stderr
    r = deepvis("predict", str(tmp_path), "--strict", settings=settings_file)
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("deepvis: error:")


@pytest.mark.slow
@pytest.mark.e2e
def test_file_names_that_are_not_utf8(tmp_path, settings_file):
    import os
    import shutil

    folder = os.fsencode(tmp_path)
    good, bad = folder + b"/caf\xe9.png", folder + b"/broken\xff.png"
    shutil.copy(EXAMPLES / "coffee.png", good)
    with open(bad, "wb") as f:
        f.write(b"garbage")
    # a real process: its argv and its stdout and stderr as the operating system hands them over
    r = python_m_toolbox("predict", good, bad, "--top", "1", "--settings", str(settings_file))
    err = r.stderr.decode("utf-8", "replace")
    assert r.returncode == 0 and b"espresso" in r.stdout and "Traceback" not in err, err
    assert "broken" in err


def test_activations_plot(tmp_path, settings_file):
    from toolbox.images import read_image

    out = tmp_path / "stats.png"
    r = deepvis("activations", str(EXAMPLES / "chelsea.png"), "--layer", "block9_add", "--plot", str(out),
                "--unit", "17", settings=settings_file)
    assert r.returncode == 0, r.stderr
    chart = read_image(out)
    assert chart.shape[0] > 400 and chart.std() > 10  # two panels, drawn


def test_layer_lists_name_each_layer_once_in_the_order_given(tiny):
    from toolbox.cli import parse_layers
    from toolbox.errors import UserError

    assert parse_layers("conv_b, conv_a,conv_b", tiny) == ["conv_b", "conv_a"]  # a repeat would crash crops
    assert parse_layers("all", tiny) == tiny.spec.layer_names
    with pytest.raises(UserError):
        parse_layers(" , ", tiny)
