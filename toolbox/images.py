"""Images in and out, in one place: every image file the toolbox reads or writes passes here.

Reading always yields RGB uint8 (H, W, 3): grayscale, palette, alpha and 16-bit files
are converted. Every read is one guarded decode: the size a file declares in its header
is checked against ``max_pixels`` before any pixel is decoded, so a small file that
declares a huge image (a decompression bomb) is refused instead of exhausting memory.
Callers that need the image only small pass ``needed_side`` and get it decoded reduced.
Writing goes through ``toolbox.files``: a file appears whole or not at all.
"""

from __future__ import annotations

import io
import logging
import os
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from toolbox.errors import UserError
from toolbox.files import PartFile, PathLike, atomic_write, check_regular_file, display_path, read_input

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# The only Pillow decoders ever used, whatever a file's name or content says: Pillow picks a
# plugin from the content, and some plugins run other programs (EPS runs Ghostscript) or
# parse formats deepvis does not document. (A camera's MPO, a JPEG with a preview, opens as JPEG.)
DECODERS = ("JPEG", "PNG", "BMP", "WEBP")

__all__ = ["IMAGE_SUFFIXES", "VideoWriter", "atomic_write", "ensure_min_side", "fit_square", "list_images",
           "decode_image", "read_image", "resize", "write_gif", "write_image"]


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


def _decode(img: Image.Image, data: bytes, name: str, max_pixels: int, needed_side: int | None) -> np.ndarray:
    """Check the declared size, then decode (reduced when ``needed_side`` allows)."""
    w, h = img.size
    if w * h > max_pixels:
        raise UserError(f"image {name} declares {w}x{h} pixels, more than the limit of {max_pixels:,} "
                        f"(setting images.max_pixels); refused without decoding")
    # JPEG decodes straight to 1/2, 1/4 or 1/8 size; never below the needed side
    factor = max((f for f in (8, 4, 2) if needed_side and -(-min(w, h) // f) >= needed_side), default=1)
    rgb = _decode_jpeg(data, factor) if img.format == "JPEG" and img.mode in ("RGB", "L") else None
    if rgb is None:
        if factor > 1:  # Pillow's draft: a reduced JPEG decode, never below the requested size
            img.draft(None, (-(-w * needed_side // min(w, h)), -(-h * needed_side // min(w, h))))
        img.load()
        rgb = _to_rgb_uint8(img)
    factor = min(rgb.shape[:2]) // needed_side if needed_side else 1
    if factor > 1:  # formats without a reduced decode: box-filter down by a whole factor
        rgb = np.asarray(Image.fromarray(rgb).reduce(factor))
    return rgb


_REDUCED = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
            8: cv2.IMREAD_REDUCED_COLOR_8}


def _decode_jpeg(data: bytes, factor: int) -> np.ndarray | None:
    """An RGB or grayscale JPEG through OpenCV's decoder: the same libjpeg-turbo and the same
    pixels as Pillow's, in a third less time (Pillow copies and converts on the way); EXIF
    orientation not applied, as Pillow does not. None where OpenCV cannot decode it (truncated,
    corrupt, too large for it): Pillow then says what is wrong."""
    try:  # OpenCV refuses images over its own pixel cap, whatever images.max_pixels allows
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), _REDUCED[factor] | cv2.IMREAD_IGNORE_ORIENTATION)
    except cv2.error:
        return None
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def max_file_bytes(max_pixels: int) -> int:
    """The largest image file worth reading when images may have ``max_pixels`` pixels: 8
    bytes a pixel (a 16-bit RGBA PNG stored uncompressed) and 16 MB of metadata. One setting
    (images.max_pixels) bounds both what is decoded and what is read."""
    return 8 * max_pixels + (16 << 20)


def read_image(path: PathLike, max_pixels: int = 100_000_000, needed_side: int | None = None) -> np.ndarray:
    """Read an image file as RGB uint8 (H, W, 3); a UserError for anything unreadable, not a
    regular file, larger than ``max_file_bytes`` or declaring more than ``max_pixels`` pixels.
    With ``needed_side`` the image may come back smaller, its shorter side still at least
    ``needed_side`` (or the full size)."""
    p = Path(os.fsdecode(path))
    data = read_input(p, "image", max_file_bytes(max_pixels))
    return decode_image(data, display_path(p), max_pixels, needed_side)


def decode_image(data: bytes, name: str, max_pixels: int = 100_000_000, needed_side: int | None = None) -> np.ndarray:
    """``read_image`` for bytes already read (the crops job hashes a file and decodes it from
    one read): the same guarded decode, ``name`` for messages."""
    if not data:
        raise UserError(f"image file is empty: {name}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = None  # our own limit (max_pixels) applies instead
            with Image.open(io.BytesIO(data), formats=DECODERS) as img:
                rgb = _decode(img, data, name, max_pixels, needed_side)
    except UserError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        reason = "truncated" if "truncated" in str(e) else "not a readable image"
        detail = f"not one of the formats deepvis reads: {', '.join(IMAGE_SUFFIXES)}" if isinstance(e, UnidentifiedImageError) else " ".join(str(e).split())
        raise UserError(f"cannot read image {name}: {reason} ({display_path(detail)})") from None
    if rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise UserError(f"image has no pixels: {name}")
    return rgb


def list_images(folder: PathLike, recursive: bool = False) -> list[Path]:
    """The image files of a folder (and its subfolders when ``recursive``), sorted by path;
    hidden files (temporaries, ``._name`` litter) are skipped; a UserError when there are none.
    Names that are not valid UTF-8 are listed like any other and readable by ``read_image``."""
    p = Path(os.fsdecode(folder))
    if not p.is_dir():
        raise UserError(f"folder not found: {display_path(p)}")
    candidates = p.rglob("*") if recursive else p.iterdir()
    files = sorted(f for f in candidates
                   if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith(".") and f.is_file())
    if not files:
        raise UserError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder: {display_path(p)}")
    return files


def resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize with area averaging when shrinking by 2x or more, bilinear when shrinking by
    less (as good there, where each output pixel draws on at most 2x2 inputs, and a tenth of
    the cost: the crops job fits every photo it reads), bicubic when enlarging."""
    if image.shape[1] == width and image.shape[0] == height:
        return image
    shrink = max(image.shape[1] / width, image.shape[0] / height)
    if width * height > image.shape[0] * image.shape[1]:
        interpolation = cv2.INTER_CUBIC
    else:
        interpolation = cv2.INTER_AREA if shrink >= 2 else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


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


def write_image(path: PathLike, image: np.ndarray) -> None:
    """Write an RGB uint8 image (or a grey one, (H, W)); the format follows the suffix (png,
    jpg, bmp, webp)."""
    p = Path(os.fsdecode(path))
    suffix = p.suffix.lower() or ".png"
    if suffix not in IMAGE_SUFFIXES:
        raise UserError(f"cannot write {display_path(p)}: use one of {', '.join(IMAGE_SUFFIXES)}")
    image = np.ascontiguousarray(image)
    ok, buf = cv2.imencode(suffix, image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise UserError(f"could not encode image for {display_path(p)}")
    atomic_write(p, buf.tobytes())


def write_gif(path: PathLike, frames: list[np.ndarray], fps: float) -> None:
    """Write RGB uint8 frames as a looping GIF, atomically."""
    if not frames:
        raise ValueError("write_gif needs at least one frame")
    buf = io.BytesIO()
    first, *rest = [Image.fromarray(f) for f in frames]
    first.save(buf, format="GIF", save_all=True, append_images=rest, duration=int(1000 / fps), loop=0)
    atomic_write(path, buf.getvalue())


def opencv_path(path: PathLike) -> str:
    """``path`` as OpenCV's video classes take it; they crash the process (not raise) on a
    name that is not valid UTF-8, so such a name is a one-line error instead."""
    text = os.fsdecode(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UserError(f"cannot open {display_path(text)} for video: OpenCV needs file and folder names "
                        f"that are valid UTF-8 (rename it)") from None
    return text


def open_video(path: PathLike) -> cv2.VideoCapture:
    """OpenCV's reader of a video file: the one place an input video is opened. Only a regular
    file is opened (OpenCV would block on a FIFO and read a device forever), under a name
    OpenCV can take; whether it then decodes, the caller asks ``isOpened()``."""
    return cv2.VideoCapture(opencv_path(check_regular_file(path, "video")))


def _playable_frames(path: Path) -> int:
    """How many frames the finished file holds when it opens and its first frame decodes;
    -1 when it does not play (a write error, a full disk)."""
    cap = open_video(path)
    try:
        if not cap.isOpened() or not cap.read()[0]:
            return -1
        return int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        cap.release()


class VideoWriter:
    """An MP4 written frame by frame (RGB uint8) to a temporary beside the target
    (``toolbox.files`` naming), renamed into place by ``close()`` only once it is proven
    playable. In a ``with`` block: success closes; Ctrl-C (KeyboardInterrupt) also closes,
    keeping the frames so far as a playable video, and the interrupt goes on; any other
    exception aborts (the temporary is removed). No frames written: no file at all."""

    FOURCC = "mp4v"

    def __init__(self, path: PathLike, fps: float) -> None:
        self.path = Path(os.fsdecode(path))
        if os.path.isdir(self.path):
            raise UserError(f"cannot write video {display_path(self.path)}: it is a folder")
        if self.path.suffix.lower() != ".mp4":
            raise UserError(f"video output must end in .mp4: {display_path(self.path)}")
        self._fps = fps
        self._part: PartFile | None = None
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        h, w = frame.shape[:2]
        if self._writer is None:
            self._part = PartFile(self.path, suffix=".mp4")
            try:
                self._writer = cv2.VideoWriter(opencv_path(self._part.path), cv2.VideoWriter_fourcc(*self.FOURCC),
                                               self._fps, (w, h))
                opened = self._writer.isOpened()
            except (cv2.error, UnicodeEncodeError):
                opened = False
            if not opened:
                self.abort()
                raise UserError(f"cannot write video {display_path(self.path)}: OpenCV cannot open an MP4 writer")
            self._size = (w, h)
        if (w, h) != self._size:
            raise ValueError(f"video frames must all be {self._size[0]}x{self._size[1]}, got {w}x{h}")
        self._writer.write(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self) -> None:
        """Finish the file, check it plays with the frames written, and rename it into place;
        a UserError (and nothing left behind) when it does not."""
        if self._writer is None or self._part is None:
            return
        self._writer.release()
        self._writer = None
        part, self._part = self._part, None
        held = _playable_frames(part.path)
        if held < 0 or abs(held - self.frames) > max(1, self.frames // 100):
            part.discard()
            found = "does not play" if held < 0 else f"holds {held} of the {self.frames} frames written"
            raise UserError(f"cannot write video {display_path(self.path)}: the finished file {found} "
                            f"(disk full or a write error?)")
        part.commit()
        log.debug("wrote %d frames to %s", self.frames, display_path(self.path))

    def abort(self) -> None:
        """Stop and remove the temporary; nothing is left under any name."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if self._part is not None:
            self._part.discard()
            self._part = None

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        elif issubclass(exc_type, KeyboardInterrupt):
            try:  # keep what was recorded; the interrupt itself goes on
                self.close()
            except (UserError, OSError) as e:
                self.abort()
                log.warning("interrupted video not kept: %s", e)
        else:
            self.abort()
