"""Safe output files: atomic writes, early write checks, stray temporaries, locked JSON."""

import errno
import json
import logging
import os
import subprocess
import sys

import pytest

from toolbox import files
from toolbox.assets.unit_images import UnitImageFolder
from toolbox.errors import UserError
from toolbox.files import (atomic_output, atomic_write, check_output_dir, check_output_file, clean_stray_parts,
                           display_path, part_path, update_json)
from toolbox.images import write_image


def test_atomic_output_renames_on_success_with_ordinary_permissions(tmp_path):
    target = tmp_path / "out" / "x.bin"
    old = os.umask(0o022)
    try:
        with atomic_output(target) as tmp:
            assert tmp.parent == target.parent and tmp.name.startswith(".x.bin.") and tmp.name.endswith(".part")
            tmp.write_bytes(b"data")
            assert not target.exists()
    finally:
        os.umask(old)
    assert target.read_bytes() == b"data" and os.listdir(target.parent) == ["x.bin"]
    assert target.stat().st_mode & 0o777 == 0o644


def test_an_exception_inside_leaves_nothing_and_keeps_an_older_file(tmp_path):
    target = tmp_path / "x.bin"
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert os.listdir(tmp_path) == []
    atomic_write(target, b"old")
    with pytest.raises(TypeError):
        atomic_write(target, object())  # type: ignore[arg-type]
    assert os.listdir(tmp_path) == ["x.bin"] and target.read_bytes() == b"old"


class _FullDisk:
    def __init__(self, *args, **kwargs):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_is_a_one_line_user_error_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "open", _FullDisk, raising=False)  # atomic_write's open()
    out = tmp_path / "out"
    with pytest.raises(UserError, match=r"^cannot write .*out/x\.png: No space left on device$"):
        write_image(out / "x.png", __import__("numpy").zeros((4, 4, 3), "uint8"))
    assert os.listdir(out) == []
    with pytest.raises(UserError, match=r"^cannot write .*y\.bin: Disk quota exceeded$"):
        with atomic_output(out / "y.bin"):
            raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT), "y.bin")
    assert os.listdir(out) == []


def test_check_output_dir_creates_and_refuses_unwritable_places(tmp_path):
    assert check_output_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert os.listdir(tmp_path / "a" / "b") == []  # the probe file is gone
    (tmp_path / "file").write_text("x")
    cases = {"/proc/deepvis-test/out": "No such file or directory",  # tests run as root: chmod would not stop it
             str(tmp_path / "file"): "it is a file",
             str(tmp_path / "file" / "sub"): "Not a directory",
             str(tmp_path / ("n" * 300)): "File name too long"}
    for folder, reason in cases.items():
        with pytest.raises(UserError, match=f"^cannot write to folder .*: {reason}$"):
            check_output_dir(folder)


def test_check_output_file(tmp_path):
    assert check_output_file(tmp_path / "new" / "v.MP4", [".mp4"]) == tmp_path / "new" / "v.MP4"
    assert (tmp_path / "new").is_dir()
    with pytest.raises(UserError, match=r"must end in one of: \.png, \.jpg"):
        check_output_file(tmp_path / "x.gif", [".png", ".jpg"])
    (tmp_path / "d.png").mkdir()
    with pytest.raises(UserError, match="it is a folder"):
        check_output_file(tmp_path / "d.png", [".png"])
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(UserError, match="f.txt: it is a file"):
        check_output_file(tmp_path / "f.txt" / "x.png", [".png"])


def test_clean_stray_parts_removes_only_dead_writers_files(tmp_path, caplog):
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: its pid names no live process
    mine, mine_video = part_path(tmp_path / "a.png"), part_path(tmp_path / "v.mp4", ".mp4")
    dead = [p.with_name(p.name.replace(f"-{os.getpid()}-", f"-{child.pid}-")) for p in (mine, mine_video)]
    other_host = tmp_path / f".b.png.elsewhere-{child.pid}-0a1b2c3d.part"
    plain = tmp_path / "c.png"
    for p in (mine, mine_video, *dead, other_host, plain):
        p.write_bytes(b"x")
    with caplog.at_level(logging.INFO, logger="toolbox.files"):
        assert clean_stray_parts(tmp_path) == 2
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in (mine, mine_video, other_host, plain))
    assert [r.getMessage() for r in caplog.records] == [f"removed 2 unfinished file(s) of stopped runs in {tmp_path}"]
    caplog.clear()
    assert clean_stray_parts(tmp_path) == 0 and caplog.records == []


def test_display_path_prints_any_name():
    assert display_path(b"/out/caf\xe9.png") == "/out/caf\\xe9.png"
    assert display_path(os.fsdecode(b"x\xff\n.png")) == "x\\xff\\n.png"
    assert display_path("ok/é.png") == "ok/é.png"


def test_update_json_merges_and_moves_damaged_files_aside(tmp_path, caplog):
    path = tmp_path / "index.json"
    add = lambda key: lambda d: {**d, key: True}  # noqa: E731
    assert update_json(path, add("a")) == {"a": True}
    assert update_json(path, add("b")) == {"a": True, "b": True}
    path.write_bytes(b"\x00garbage{")
    with caplog.at_level(logging.WARNING, logger="toolbox.files"):
        assert update_json(path, add("c")) == {"c": True}
        path.write_text(json.dumps({"a": 1}))
        assert update_json(path, add("d"), validate=lambda d: "c" in d) == {"d": True}
    aside = sorted(tmp_path.glob("index.json.damaged-*"))
    assert [p.read_bytes() for p in aside] == [b"\x00garbage{", b'{"a": 1}']
    assert ["is damaged (not valid JSON" in caplog.messages[0], "expected layout" in caplog.messages[1]] == [True, True]
    assert (tmp_path / ".index.json.lock").exists()


def test_unit_index_damaged_or_wrong_shape_is_moved_aside(tmp_path, caplog):
    folder = UnitImageFolder(tmp_path)
    folder.prepare()
    path = folder.objectives_path("conv")
    for bad in (b"{not json", json.dumps({"model": "m", "layer": "conv", "units": {"x1": {}}}).encode(),
                json.dumps({"units": [1, 2]}).encode()):
        path.write_bytes(bad)
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            folder.record("m", "conv", {3: 1.5}, preset="p")
        assert "moved it aside" in caplog.text
        assert json.loads(path.read_text()) == {"model": "m", "layer": "conv",
                                                 "units": {"3": {"objective": 1.5, "preset": "p"}}}
    assert sorted(p.read_bytes() for p in tmp_path.glob("conv_objectives.json.damaged-*")) == sorted(
        [b"{not json", json.dumps({"model": "m", "layer": "conv", "units": {"x1": {}}}).encode(),
         json.dumps({"units": [1, 2]}).encode()])
    folder.record("m", "conv", {1: 2.0})
    assert list(json.loads(path.read_text())["units"]) == ["1", "3"]


RECORDER = """
import sys
from toolbox.assets.unit_images import UnitImageFolder
first = int(sys.argv[1])
print("ready", flush=True)
for line in sys.stdin:  # one folder per round; both writers get it at the same moment
    folder = UnitImageFolder(line.strip())
    for unit in range(first, first + 150):
        folder.record("m", "conv", {unit: float(unit)}, writer=first)
    print("done", flush=True)
"""


@pytest.mark.slow
@pytest.mark.e2e
def test_two_processes_recording_at_once_lose_nothing(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    writers = [subprocess.Popen([sys.executable, "-c", RECORDER, str(first)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=open(tmp_path / f"err{first}", "w"), text=True,
                                env=env) for first in (0, 150)]
    try:
        assert [w.stdout.readline() for w in writers] == ["ready\n"] * 2, (tmp_path / "err0").read_text()
        for round_ in range(3):
            folder = tmp_path / f"round{round_}"
            for w in writers:
                w.stdin.write(f"{folder}\n")
                w.stdin.flush()
            assert [w.stdout.readline() for w in writers] == ["done\n"] * 2
            units = json.loads((folder / "conv_objectives.json").read_text())["units"]
            assert list(units) == [str(u) for u in range(300)]
            assert all(units[str(u)] == {"objective": float(u), "writer": 0 if u < 150 else 150} for u in range(300))
            assert sorted(os.listdir(folder)) == [".conv_objectives.json.lock", "conv_objectives.json"]
    finally:
        for w in writers:
            w.stdin.close()
            w.wait(timeout=60)
    assert [w.returncode for w in writers] == [0, 0]
