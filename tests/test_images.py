import numpy as np
import pytest
from PIL import Image

from toolbox.errors import UserError
from toolbox.images import (atomic_write, ensure_min_side, fit_square, list_images, read_image,
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


def test_huge_image_is_decoded_reduced(tmp_path):
    Image.fromarray(_gradient(1500, 2000)).save(tmp_path / "big.jpg")
    got = read_image(tmp_path / "big.jpg", max_pixels=200_000)
    assert got.shape[0] * got.shape[1] <= 200_000
    assert abs(got.shape[1] / got.shape[0] - 2000 / 1500) < 0.02


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
