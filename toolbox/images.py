"""Images in and out, in one place: every file the toolbox reads or writes passes here.

Reading always yields RGB uint8 (H, W, 3): grayscale, palette, alpha and 16-bit files
are converted; images with more than ``max_pixels`` pixels are decoded at reduced size
(JPEG decodes straight to the smaller size) so a huge photo cannot exhaust memory.
Writing is atomic: a file appears whole or not at all.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from toolbox.errors import UserError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def _to_rgb_uint8(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(img).astype(np.float64)
        top = 65535.0 if a.max() > 255 else 255.0
        a = np.clip(a * (255.0 / top), 0, 255).astype(np.uint8)
        return np.repeat(a[..., None], 3, axis=2)
    if img.mode == "F":
        a = np.asarray(img)
        a = np.clip(a * (255.0 if a.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
        return np.repeat(a[..., None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)  # transparent areas become white
    return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))


def read_image(path: str | Path, max_pixels: int = 100_000_000) -> np.ndarray:
    """Read an image file as RGB uint8 (H, W, 3); a UserError for anything unreadable."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"image not found: {p}")
    if p.is_dir():
        raise UserError(f"expected an image file, got a folder: {p}")
    if p.stat().st_size == 0:
        raise UserError(f"image file is empty: {p}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = None  # our own limit below applies instead
            with Image.open(p) as img:
                w, h = img.size
                if w * h > max_pixels:
                    factor = (w * h / max_pixels) ** 0.5
                    target = (max(1, int(w / factor)), max(1, int(h / factor)))
                    img.draft("RGB", target)  # JPEG: decode at 1/2, 1/4 or 1/8 size
                    img.thumbnail(target, Image.Resampling.LANCZOS)
                img.load()
                rgb = _to_rgb_uint8(img)
    except UserError:
        raise
    except (OSError, SyntaxError, ValueError) as e:
        reason = "truncated" if "truncated" in str(e) else "not a readable image"
        raise UserError(f"cannot read image {p}: {reason} ({e})") from None
    if rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise UserError(f"image has no pixels: {p}")
    return rgb


def list_images(folder: str | Path) -> list[Path]:
    """The image files of a folder, sorted by name; a UserError when there are none."""
    p = Path(folder)
    if not p.is_dir():
        raise UserError(f"folder not found: {p}")
    files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
    if not files:
        raise UserError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder: {p}")
    return files


def resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize with area averaging when shrinking and bicubic when enlarging."""
    if image.shape[1] == width and image.shape[0] == height:
        return image
    shrinking = width * height < image.shape[0] * image.shape[1]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


def ensure_min_side(image: np.ndarray, min_side: int) -> np.ndarray:
    """Upscale (keeping the aspect ratio) so that the shorter side is at least ``min_side``."""
    h, w = image.shape[:2]
    if min(h, w) >= min_side:
        return image
    s = min_side / min(h, w)
    return resize(image, max(min_side, round(w * s)), max(min_side, round(h * s)))


def fit_square(image: np.ndarray, size: int, mode: str = "crop") -> np.ndarray:
    """A ``size`` x ``size`` view of the image: centre-cropped, or letterboxed on black."""
    h, w = image.shape[:2]
    if mode == "crop":
        side = min(h, w)
        y, x = (h - side) // 2, (w - side) // 2
        return resize(image[y:y + side, x:x + side], size, size)
    if mode == "letterbox":
        s = size / max(h, w)
        small = resize(image, max(1, round(w * s)), max(1, round(h * s)))
        out = np.zeros((size, size, 3), np.uint8)
        y, x = (size - small.shape[0]) // 2, (size - small.shape[1]) // 2
        out[y:y + small.shape[0], x:x + small.shape[1]] = small
        return out
    raise UserError(f"unknown fit mode '{mode}' (use crop or letterbox)")


def atomic_write(path: str | Path, data: bytes) -> None:
    """Write bytes to ``path`` through a temporary file in the same folder, then rename."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes files private; outputs are ordinary files
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_image(path: str | Path, image: np.ndarray) -> None:
    """Write an RGB uint8 image; the format follows the suffix (png, jpg, bmp, webp)."""
    p = Path(path)
    suffix = p.suffix.lower() or ".png"
    if suffix not in IMAGE_SUFFIXES:
        raise UserError(f"cannot write {p}: use one of {', '.join(IMAGE_SUFFIXES)}")
    ok, buf = cv2.imencode(suffix, cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR))
    if not ok:
        raise UserError(f"could not encode image for {p}")
    atomic_write(p, buf.tobytes())


class VideoWriter:
    """An MP4 written frame by frame (RGB uint8) to a hidden temporary file in the target
    folder and renamed into place by ``close()``; ``abort()`` (or an exception inside a
    ``with`` block) removes it, so a half-written video never carries the final name."""

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() != ".mp4":
            raise UserError(f"video output must end in .mp4: {self.path}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.stem}.part.mp4")
        self._fps = fps
        self._writer: cv2.VideoWriter | None = None
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        if self._writer is None:
            h, w = frame.shape[:2]
            self._writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*"mp4v"), self._fps, (w, h))
            if not self._writer.isOpened():
                raise UserError(f"cannot write video {self.path}")
        self._writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            os.replace(self._tmp, self.path)

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.abort() if exc_type else self.close()


def write_gif(path: str | Path, frames: list[np.ndarray], fps: float) -> None:
    import io

    buf = io.BytesIO()
    first, *rest = [Image.fromarray(f) for f in frames]
    first.save(buf, format="GIF", save_all=True, append_images=rest, duration=int(1000 / fps), loop=0)
    atomic_write(path, buf.getvalue())
