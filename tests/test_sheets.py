"""Contact sheets (toolbox/sheets.py): every caption stays under its own picture."""

import numpy as np

from toolbox.sheets import INK, PAD, caption_scale, contact_sheet, text_width, wrap


def _ink_in_gaps(sheet: np.ndarray, side: int, columns: int) -> int:
    """Pixels drawn in the columns between pictures (where a too-long caption would run)."""
    ink = (sheet != sheet[0, 0]).any(axis=-1)
    total = 0
    for c in range(columns + 1):
        x = c * (side + PAD)
        total += int(ink[:, x:x + PAD].sum())
    return total


def test_captions_of_small_sheets_stay_under_their_picture_and_keep_the_number():
    """Issue 21: `units --size 64` and `classes` at 96 px wrote captions over the neighbouring
    tile and lost the unit number."""
    black = [np.zeros((64, 64, 3), np.uint8)] * 9
    sheet = contact_sheet(black, [f"block9_dw_relu {u}" for u in range(660, 669)], title="block9_dw_relu")
    assert _ink_in_gaps(sheet[30:], 64, 3) == 0
    scale = caption_scale(["block9_dw_relu 667"], 62)
    assert wrap("block9_dw_relu 667", 62, scale)[-1] == "667"  # the number on a line of its own, whole
    classes = [np.zeros((96, 96, 3), np.uint8)] * 4
    captions = ["238 p=0.97\nGreater Swiss Mountain dog", "285 p=0.99\nEgyptian cat", "18 p=1.00\nmagpie",
                "76 p=0.91\ntarantula"]
    sheet = contact_sheet(classes, captions, columns=4)
    assert _ink_in_gaps(sheet, 96, 4) == 0
    lines = wrap(captions[0], 94, caption_scale(captions, 94))
    assert lines[0] == "238 p=0.97" and " ".join(lines[1:]) == "Greater Swiss Mountain dog"  # nothing lost
    assert all(text_width(line, caption_scale(captions, 94)) <= 94 for line in lines)
    assert (sheet == INK).all(axis=-1).any()  # the captions are drawn


def test_a_word_wider_than_the_picture_is_cut_short_not_run_over():
    lines = wrap("supercalifragilisticexpialidocious 3", 30, 0.3)
    assert lines[0].endswith("..") and text_width(lines[0], 0.3) <= 30 and lines[-1] == "3"
