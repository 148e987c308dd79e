import os
import struct
import subprocess
import sys
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from toolbox.errors import UserError
from toolbox.images import (VideoWriter, atomic_write, ensure_min_side, fit_square, list_images, read_image,
                            write_image)


def _gradient(h=40, w=60):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 4 % 256, y * 6 % 256, (x + y) % 256], -1).astype(np.uint8)


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".webp", ".jpg"])
def test_formats_round_trip_as_rgb_uint8(tmp_path, suffix):
    img = _gradient()
    write_image(tmp_path / f"a{suffix}", img)
    got = read_image(tmp_path / f"a{suffix}")
    assert got.dtype == np.uint8 and got.shape == img.shape
    tolerance = 0 if suffix in (".png", ".bmp") else 40  # lossy formats
    assert np.abs(got.astype(int) - img).mean() <= tolerance


def test_grayscale_alpha_and_16_bit_become_rgb(tmp_path):
    Image.fromarray(np.full((10, 12), 200, np.uint8), "L").save(tmp_path / "g.png")
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:, :6, 3] = 255  # left half opaque red, right half transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    Image.fromarray(np.full((10, 12), 65535 // 2, np.uint16)).save(tmp_path / "d.png")
    g, a, d = (read_image(tmp_path / n) for n in ("g.png", "a.png", "d.png"))
    assert g.shape == a.shape == d.shape == (10, 12, 3)
    assert (g == 200).all()
    assert (a[:, 0] == [255, 0, 0]).all() and (a[:, -1] == [255, 255, 255]).all()
    assert abs(int(d[0, 0, 0]) - 127) <= 1


def _png_bomb(path, side=50_000):
    """A real, complete PNG of side x side black grayscale pixels (2.5 GB decoded for 50,000)
    in about 2.4 MB. zlib restarts its state at a full flush, so the compressed form of one
    block of zero rows is made once and repeated; the checksum of N zeros is known."""
    rows = 500
    raw = bytes((side + 1) * rows)  # each row: filter byte 0, then side zero pixels
    c = zlib.compressobj(9)
    head = c.compress(raw) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(raw) + c.flush(zlib.Z_FULL_FLUSH)
    total = (side + 1) * side
    adler = ((total % 65521) << 16) | 1  # adler32 of `total` zero bytes
    stream = head + block * (side // rows - 1) + b"\x03\x00" + adler.to_bytes(4, "big")  # empty final block

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", stream) + chunk(b"IEND", b""))


BOMB_READER = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))  # a regression fails here, not the machine
from toolbox.errors import UserError
from toolbox.images import read_image
try:
    read_image(sys.argv[1])
    print("decoded")
except UserError as e:
    print(e)
# the peak of this program's own memory (ru_maxrss would also count the forked test process)
print(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")))
"""


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    bomb = tmp_path / "bomb.png"
    _png_bomb(bomb)
    assert bomb.stat().st_size < 3_000_000
    run = subprocess.run([sys.executable, "-c", BOMB_READER, str(bomb)], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    message, peak_kib = run.stdout.strip().splitlines()
    assert "50000x50000" in message and "images.max_pixels" in message and "bomb.png" in message
    assert int(peak_kib) < 1_000_000  # KiB: under 1 GB at its peak


def test_over_the_limit_is_refused_with_the_size(tmp_path):
    Image.fromarray(_gradient(300, 400)).save(tmp_path / "big.png")
    with pytest.raises(UserError, match=r"big\.png declares 400x300 pixels, more than the limit of 100,000"):
        read_image(tmp_path / "big.png", max_pixels=100_000)
    assert read_image(tmp_path / "big.png", max_pixels=120_000).shape == (300, 400, 3)


def test_needed_side_decodes_a_large_jpeg_reduced(tmp_path):
    Image.fromarray(_gradient(1500, 2000)).save(tmp_path / "big.jpg", quality=90)
    got = read_image(tmp_path / "big.jpg", needed_side=200)
    h, w = got.shape[:2]
    assert 200 <= h < 400 and got.dtype == np.uint8  # at most a factor 2 above what was asked
    assert abs(w / h - 2000 / 1500) < 0.01
    full = read_image(tmp_path / "big.jpg")
    assert full.shape == (1500, 2000, 3)
    small = cv2.resize(full, (w, h), interpolation=cv2.INTER_AREA)
    assert np.abs(small.astype(int) - got).mean() < 8  # the same picture, only smaller


def _pillow_decode(path, needed_side=None):
    """What Pillow alone gives for a JPEG (its draft when the image may come back reduced)."""
    with Image.open(path) as img:
        w, h = img.size
        if needed_side and min(w, h) // needed_side > 1:
            img.draft(None, (-(-w * needed_side // min(w, h)), -(-h * needed_side // min(w, h))))
        return np.asarray(img.convert("RGB"))


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_jpeg_decodes_as_pillow_does_and_truncation_is_still_reported(tmp_path, mode):
    # JPEGs go through OpenCV's decoder (faster); it must give Pillow's pixels, full and reduced
    picture = Image.fromarray(_gradient(500, 700)).convert(mode)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90": not applied, as Pillow does not
    picture.save(tmp_path / "a.jpg", quality=90, exif=exif)
    for needed in (None, 200, 100):
        got = read_image(tmp_path / "a.jpg", needed_side=needed)
        assert np.array_equal(got, _pillow_decode(tmp_path / "a.jpg", needed)), needed
    assert read_image(tmp_path / "a.jpg", needed_side=200).shape == (250, 350, 3)
    data = (tmp_path / "a.jpg").read_bytes()
    (tmp_path / "trailing.jpg").write_bytes(data + b"camera notes")  # valid, with data after its end
    assert np.array_equal(read_image(tmp_path / "trailing.jpg"), read_image(tmp_path / "a.jpg"))
    (tmp_path / "cut.jpg").write_bytes(data[:len(data) * 2 // 3])
    with pytest.raises(UserError, match="cut.jpg: truncated"):
        read_image(tmp_path / "cut.jpg")


def test_needed_side_reduces_other_formats_by_a_whole_factor(tmp_path):
    Image.fromarray(_gradient(600, 900)).save(tmp_path / "big.png")
    assert read_image(tmp_path / "big.png", needed_side=200).shape == (200, 300, 3)
    assert read_image(tmp_path / "big.png", needed_side=250).shape == (300, 450, 3)
    assert read_image(tmp_path / "big.png", needed_side=1000).shape == (600, 900, 3)  # never enlarged


def test_non_utf8_file_names_are_listed_read_and_reported(tmp_path):
    folder = os.fsencode(tmp_path)
    good, broken = os.path.join(folder, b"caf\xe9.png"), os.path.join(folder, b"bro\xffken.png")
    write_image(tmp_path / "plain.png", _gradient())
    os.rename(os.fsencode(tmp_path / "plain.png"), good)
    with open(broken, "wb") as f:
        f.write(b"not a picture")
    listed = list_images(tmp_path)
    assert [os.fsencode(p) for p in listed] == [broken, good]
    assert (read_image(listed[1]) == _gradient()).all() and read_image(good).shape == (40, 60, 3)
    for bad, shown in ((broken, "bro\\xffken.png: not a readable image"), (b"gone\xfe.jpg", "gone\\xfe.jpg")):
        with pytest.raises(UserError) as e:
            read_image(bad)
        message = str(e.value)
        message.encode("utf-8", "strict")  # printable anywhere: no lone surrogates
        assert shown in message and "\n" not in message


def test_hidden_files_are_not_listed_and_recursive_finds_subfolders(tmp_path):
    for name in ("a.png", ".a.png.host-1-0a0b0c0d.part", "._b.jpg", "sub/c.jpg"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in list_images(tmp_path)] == ["a.png"]
    assert [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path, recursive=True)] == ["a.png",
                                                                                                 "sub/c.jpg"]


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"this is text, not a picture", "not a readable image"),
])
def test_bad_files_are_user_errors(tmp_path, content, message):
    f = tmp_path / "x.png"
    f.write_bytes(content)
    with pytest.raises(UserError, match=message):
        read_image(f)


def test_truncated_and_missing(tmp_path):
    write_image(tmp_path / "ok.png", _gradient(200, 200))
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="truncated"):
        read_image(tmp_path / "cut.png")
    with pytest.raises(UserError, match="not found"):
        read_image(tmp_path / "missing.jpg")


def test_list_images_sorted_and_empty_folder(tmp_path):
    for n in ("b.png", "a.jpg", "notes.txt"):
        (tmp_path / n).write_bytes(b"x")
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.png"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images"):
        list_images(tmp_path / "empty")


def test_fit_square_and_min_side():
    img = _gradient(40, 80)
    assert fit_square(img, 32, "crop").shape == (32, 32, 3)
    box = fit_square(img, 32, "letterbox")
    assert box.shape == (32, 32, 3) and (box[0] == 0).all() and box[16].any()
    tiny = ensure_min_side(_gradient(5, 10), 75)
    assert tiny.shape[:2] == (75, 150)
    assert ensure_min_side(img, 10) is img


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "out.bin"

    with pytest.raises(TypeError):
        atomic_write(target, object())  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def _frames(n, h=48, w=64):
    return [np.full((h, w, 3), 20 + 30 * i, np.uint8) for i in range(n)]


def _video_levels(path):
    cap = cv2.VideoCapture(str(path))
    levels = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        levels.append(int(frame.mean()))
    cap.release()
    return levels


def test_video_interrupted_by_ctrl_c_keeps_the_frames_so_far(tmp_path):
    target = tmp_path / "v.mp4"
    with pytest.raises(KeyboardInterrupt):
        with VideoWriter(target, fps=5) as video:
            for frame in _frames(5):
                video.write(frame)
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == [target]
    levels = _video_levels(target)
    assert len(levels) == 5 and abs(levels[0] - 20) < 6 and abs(levels[4] - 140) < 6


def test_video_error_or_no_frames_leaves_nothing(tmp_path):
    with pytest.raises(ValueError):
        with VideoWriter(tmp_path / "v.mp4", fps=5) as video:
            for frame in _frames(3):
                video.write(frame)
            raise ValueError("boom")
    with VideoWriter(tmp_path / "empty.mp4", fps=5):
        pass
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(UserError, match="it is a folder"):
        VideoWriter(tmp_path, fps=5)


def test_video_that_does_not_play_is_an_error_and_not_kept(tmp_path):
    video = VideoWriter(tmp_path / "v.mp4", fps=5)
    for frame in _frames(4):
        video.write(frame)
    [part] = tmp_path.glob(".v.mp4.*.part.mp4")  # what a full disk leaves: headers lost
    os.truncate(part, 0)
    with pytest.raises(UserError, match=r"cannot write video .*v\.mp4: the finished file does not play"):
        video.close()
    assert list(tmp_path.iterdir()) == []


def test_video_names_opencv_cannot_take_are_one_line_errors(tmp_path):
    import os

    from toolbox.images import VideoWriter, opencv_path

    bad = os.fsdecode(os.fsencode(str(tmp_path)) + b"/v\xfe.mp4")
    with pytest.raises(UserError, match="valid UTF-8"):
        opencv_path(bad)
    with VideoWriter(bad, fps=5) as video:  # the temporary's name is plain ASCII; the rename keeps the name
        for i in range(3):
            video.write(np.full((16, 16, 3), 40 * i, np.uint8))
    assert os.path.isfile(os.fsencode(bad)) and not [n for n in os.listdir(tmp_path) if n.startswith(".")]
