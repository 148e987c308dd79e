"""Where frames come from: a webcam, a video file (looping), a folder of images (sorted,
cycling) or a single image. Every source gives RGB uint8 frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from toolbox.errors import UserError
from toolbox.files import display_path
from toolbox.images import IMAGE_SUFFIXES, list_images, open_video, read_image

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


class StillImages:
    """A list of image files; ``step`` moves through them, wrapping around."""

    live = False

    def __init__(self, paths: list[Path], max_pixels: int) -> None:
        self.paths, self.max_pixels = paths, max_pixels
        self.index = 0
        self._frame = read_image(paths[0], max_pixels)

    @property
    def label(self) -> str:
        return f"{self.paths[self.index].name} ({self.index + 1}/{len(self.paths)})"

    def read(self) -> np.ndarray:
        return self._frame

    def step(self, delta: int) -> None:
        self.index = (self.index + delta) % len(self.paths)
        try:
            self._frame = read_image(self.paths[self.index], self.max_pixels)
        except UserError:
            self._frame = np.zeros((64, 64, 3), np.uint8)  # an unreadable file shows black, not a crash

    def close(self) -> None:
        pass


class _Capture:
    """Frames from cv2.VideoCapture."""

    live = True

    def __init__(self, capture: cv2.VideoCapture, label: str) -> None:
        self._capture, self._label = capture, label
        self._frame: np.ndarray | None = None
        self.index = 0

    @property
    def label(self) -> str:
        return f"{self._label} #{self.index}"

    def _grab(self) -> np.ndarray | None:
        ok, bgr = self._capture.read()
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) if ok else None

    def read(self) -> np.ndarray:
        frame = self._grab()
        if frame is None:
            frame = self._restart()
        if frame is not None:
            self._frame, self.index = frame, self.index + 1
        if self._frame is None:
            raise UserError(f"no frames from {self._label}")
        return self._frame

    def _restart(self) -> np.ndarray | None:
        return None

    def step(self, delta: int) -> None:
        pass

    def close(self) -> None:
        self._capture.release()


class VideoFile(_Capture):
    def __init__(self, path: Path) -> None:
        capture = open_video(path)
        if not capture.isOpened():
            raise UserError(f"cannot open video {display_path(path)}")
        super().__init__(capture, path.name)

    def _restart(self) -> np.ndarray | None:  # loop at the end
        self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
        self.index = 0
        return self._grab()

    def step(self, delta: int) -> None:
        """Skip ahead or back ``delta`` frames (``read`` then shows the frame after)."""
        position = self._capture.get(cv2.CAP_PROP_POS_FRAMES)
        self._capture.set(cv2.CAP_PROP_POS_FRAMES, max(0, position + delta - 1))


class Webcam(_Capture):
    def __init__(self, index: int) -> None:
        capture = cv2.VideoCapture(index)
        if not capture.isOpened():
            capture.release()
            raise UserError(f"no camera at webcam:{index} (is one connected, and free?)")
        super().__init__(capture, f"webcam:{index}")


class BrowserCamera:
    """The camera of the page that shows the live toolbox (``deepvis live --serve --input
    browser``): the newest frame a page sent wins; until the first, a grey frame."""

    live = True

    def __init__(self) -> None:
        self._frame: np.ndarray | None = None
        self.index = 0
        self.wants_frame = True  # the last frame sent has been read: time to ask for the next

    @property
    def label(self) -> str:
        return f"browser camera #{self.index}" if self._frame is not None else "browser camera (waiting for a page)"

    def put(self, frame: np.ndarray) -> None:
        self._frame, self.index, self.wants_frame = frame, self.index + 1, False

    def read(self) -> np.ndarray:
        self.wants_frame = True
        return self._frame if self._frame is not None else np.full((240, 320, 3), 96, np.uint8)

    def step(self, delta: int) -> None:
        pass

    def close(self) -> None:
        pass


def open_source(spec: str, max_pixels: int = 100_000_000) -> StillImages | VideoFile | Webcam | BrowserCamera:
    """``webcam``, ``webcam:N``, ``browser`` (the served page's camera), a video file, a folder
    of images or one image."""
    if spec == "browser":
        return BrowserCamera()
    if spec == "webcam" or spec.startswith("webcam:"):
        try:
            index = int(spec.partition(":")[2] or 0)
        except ValueError:
            raise UserError(f"bad camera '{spec}' (use webcam or webcam:N)") from None
        return Webcam(index)
    path = Path(spec).expanduser()
    if path.is_dir():
        return StillImages(list_images(path), max_pixels)
    if not path.exists():
        raise UserError(f"input not found: {path}")
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return VideoFile(path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return StillImages([path], max_pixels)
    raise UserError(f"unsupported input {path}: use a folder, an image ({', '.join(IMAGE_SUFFIXES)}), "
                    f"a video ({', '.join(VIDEO_SUFFIXES)}) or webcam[:N]")
