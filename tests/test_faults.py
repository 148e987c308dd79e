"""Faults a long job meets: kill -9 at any moment, Ctrl-C, leftovers of a killed run.
Real processes, real signals (the runs after a kill, in this process)."""

import json
import signal
import subprocess
import sys
import time

import cv2
import pytest
import yaml

from conftest import EXAMPLES, REPO, deepvis

pytestmark = [pytest.mark.slow, pytest.mark.e2e]  # real processes killed and interrupted


@pytest.fixture(scope="module")
def settings_file(tmp_path_factory, cache_dir, lite0):  # lite0: the weights are converted before any kill
    f = tmp_path_factory.mktemp("faults") / "settings.yaml"
    f.write_text(yaml.safe_dump({"model": "efficientnet_lite0", "cache_dir": str(cache_dir)}))
    return f


def start(*args, settings):
    return subprocess.Popen([sys.executable, "-m", "toolbox", *args, "--settings", str(settings)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, timeout=120.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def assert_valid_unit_folder(folder):
    from toolbox.images import read_image

    for png in folder.glob("*.png"):
        assert read_image(png).shape[2] == 3  # every file under a final name is whole
    for index in folder.glob("*_objectives.json"):
        json.loads(index.read_text())


UNITS = ["units", "--layer", "block9_add", "--units", "0-5", "--batch", "2", "--steps", "4", "--size", "32"]


MOMENTS = {  # kill points: while starting, amid the first batch's files, once an index exists
    "starting": lambda out: out.exists(),
    "first image": lambda out: bool(list(out.glob("block9_add_0000.png"))),
    "index written": lambda out: (out / "block9_add_objectives.json").exists(),
}


@pytest.mark.parametrize("moment", MOMENTS)
def test_kill_9_during_units_leaves_valid_files_and_rerun_completes(tmp_path, settings_file, moment):
    out = tmp_path / "units"
    proc = start(*UNITS, "-o", str(out), settings=settings_file)
    wait_for(lambda: MOMENTS[moment](out))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert_valid_unit_folder(out)
    r = deepvis(*UNITS, "-o", str(out), settings=settings_file)  # the rerun: the killed process is what matters
    assert r.returncode == 0, r.stderr
    assert_valid_unit_folder(out)
    from conftest import assert_each_unit_made_or_said

    assert_each_unit_made_or_said(r.stdout, out, "block9_add", list(range(6)))  # made, or said why not
    made = sorted(str(int(p.stem[-4:])) for p in out.glob("block9_add_00??.png"))
    assert not list(out.glob(".*.part*"))  # the killed run's temporaries were cleaned
    recorded = json.loads((out / "block9_add_objectives.json").read_text())["units"]
    assert sorted(u for u, entry in recorded.items() if "said" not in entry) == made  # the others: said why


def test_ctrl_c_stops_units_fast_and_keeps_finished_batches(tmp_path, settings_file):
    out = tmp_path / "units"
    proc = start(*UNITS[:-4], "--steps", "40", "--size", "64", "-o", str(out), settings=settings_file)
    wait_for(lambda: (out / "block9_add_objectives.json").exists())  # one batch is finished
    t = time.time()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and time.time() - t < 3 and "Traceback" not in err, err
    assert_valid_unit_folder(out)
    assert len(json.loads((out / "block9_add_objectives.json").read_text())["units"]) >= 2


def test_ctrl_c_ends_a_recording_by_finishing_it(tmp_path, settings_file):
    from toolbox.images import VideoWriter, read_image, resize

    loop = tmp_path / "loop.mp4"
    with VideoWriter(loop, fps=10) as w:
        for name in ("chelsea.png", "coffee.png") * 3:
            w.write(resize(read_image(EXAMPLES / name), 160, 120))
    rec = tmp_path / "rec.mp4"
    proc = start("live", "--input", str(loop), "--headless", "--frames", "100000", "--video", str(rec),
                 settings=settings_file)
    wait_for(lambda: any(p.stat().st_size > 50_000 for p in tmp_path.glob(".rec*part*")))
    t = time.time()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and time.time() - t < 3 and "Traceback" not in err, err
    video = cv2.VideoCapture(str(rec))
    frames = 0
    while video.read()[0]:
        frames += 1
    assert frames >= 2
    assert not list(tmp_path.glob(".rec*"))


def test_kill_9_during_dream_video_leaves_no_half_file(tmp_path, settings_file):
    out = tmp_path / "d.png"
    args = ["dream", str(EXAMPLES / "coffee.png"), "-o", str(out), "--octaves", "1", "--steps", "2",
            "--zoom-frames", "200"]
    proc = start(*args, settings=settings_file)
    wait_for(lambda: out.exists() and list(tmp_path.glob(".d*part*")))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "d.mp4").exists()  # the video never carries its name half-written
    r = deepvis(*args[:-1], "2", settings=settings_file)
    assert r.returncode == 0, r.stderr
    assert not list(tmp_path.glob(".*part*")) and cv2.VideoCapture(str(tmp_path / "d.mp4")).read()[0]
