"""Contact sheets: pictures in a grid, each with a caption that fits under it.

Pure numpy + OpenCV (no TensorFlow, no files): the unit-image folder, class images,
inversions and the crops sheets all lay their pictures out here. A caption is wrapped at
spaces to its picture's width (a newline in it starts a line of its own), in a smaller font
when one word would not fit, and only as a last resort cut short with "..", so a caption
never runs into its neighbour's picture.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX
SCALES = (0.4, 0.35, 0.3)  # font scales tried in turn until every word fits its picture's width
BACKGROUND = (24, 24, 24)
INK = (230, 230, 230)
PAD = 4


def text_width(text: str, scale: float) -> int:
    return cv2.getTextSize(text, FONT, scale, 1)[0][0]


def line_height(scale: float) -> int:
    return int(np.ceil(34 * scale))


def _cut(line: str, width: int, scale: float) -> str:
    """``line`` cut short with '..' until it fits ``width``."""
    if text_width(line, scale) <= width:
        return line
    while len(line) > 1 and text_width(line + "..", scale) > width:
        line = line[:-1]
    return line + ".."


def wrap(caption: str, width: int, scale: float) -> list[str]:
    """``caption`` in lines no wider than ``width`` pixels: broken at spaces and newlines, a
    word wider than the width cut short."""
    lines: list[str] = []
    for paragraph in caption.split("\n"):
        line = ""
        for word in paragraph.split():
            trial = f"{line} {word}" if line else word
            if line and text_width(trial, scale) > width:
                lines.append(line)
                line = word
            else:
                line = trial
        lines.append(line)
    return [_cut(line, width, scale) for line in lines]


def caption_scale(captions: Sequence[str], width: int) -> float:
    """The largest of SCALES at which every word of every caption fits ``width``."""
    words = [word for caption in captions for word in caption.split()]
    for scale in SCALES:
        if all(text_width(word, scale) <= width for word in words):
            return scale
    return SCALES[-1]


def contact_sheet(images: Sequence[np.ndarray], captions: Sequence[str], columns: int = 0,
                  title: str = "") -> np.ndarray:
    """Images of one size in a grid, each with its caption underneath (wrapped to the image's
    width: see the module's note), on a dark background; ``title`` above the grid."""
    n = len(images)
    columns = columns or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / columns))
    h, w = images[0].shape[:2]
    width = w - 2
    scale = caption_scale(captions, width)
    wrapped = [wrap(caption, width, scale) for caption in captions]
    step = line_height(scale)
    caption_h = step * max((len(lines) for lines in wrapped), default=0) + 4
    top = line_height(0.5) + PAD if title else 0
    cell_h = h + caption_h
    sheet = np.empty((top + rows * (cell_h + PAD) + PAD, columns * (w + PAD) + PAD, 3), np.uint8)
    sheet[:] = BACKGROUND
    if title:
        cv2.putText(sheet, _cut(title, sheet.shape[1] - 2 * PAD, 0.5), (PAD, top - 4), FONT, 0.5, INK, 1,
                    cv2.LINE_AA)
    for i, (image, lines) in enumerate(zip(images, wrapped)):
        y, x = top + PAD + (i // columns) * (cell_h + PAD), PAD + (i % columns) * (w + PAD)
        sheet[y:y + h, x:x + w] = image
        for j, line in enumerate(lines):
            cv2.putText(sheet, line, (x + 1, y + h + step * (j + 1)), FONT, scale, INK, 1, cv2.LINE_AA)
    return sheet
