"""Crop sheets (toolbox/assets/crop_sheets.py): a picture per layer of its strongest units'
top crops, read through the crop store's public face."""

import numpy as np

from toolbox.assets.crop_sheets import LABEL_W, MIN_CELL, crop_sheet, strongest_units, write_crop_sheets
from toolbox.assets.crops import EMPTY, CropStore, Entries, LayerCrops
from toolbox.images import read_image
from toolbox.sheets import PAD


def _commit(store, values, sources):
    """One layer "L" whose entry (unit u, rank r) has a crop filled with 10 * u + r + 1."""
    values = np.asarray(values, np.float32)
    sources = np.asarray(sources, np.int64)
    units, k = values.shape
    slots = np.arange(units * k).reshape(units, k)
    pool = np.zeros((units * k, 8, 8, 3), np.uint8)
    for u in range(units):
        for r in range(k):
            pool[slots[u, r]] = 10 * u + r + 1
    store.commit({"L": LayerCrops(Entries(values, sources, np.zeros((units, k, 2), np.int16), slots), None,
                                  pool=pool)}, {}, {})


def test_strongest_units_first_and_saturated_ties_to_the_selective_one():
    values = np.array([[6, 6, 6], [6, 6, 1], [7, 2, 1], [9, 0, 0], [5, -np.inf, -np.inf]], np.float32)
    sources = np.array([[1, 2, 3], [1, 2, 3], [1, 2, 3], [1, EMPTY, EMPTY], [EMPTY] * 3])
    assert strongest_units(values, sources) == [3, 2, 1, 0]  # unit 4 has no crop; 1 stands out of 6s
    assert strongest_units(values, sources, count=2) == [3, 2]


def test_a_sheet_has_a_row_per_strong_unit_with_its_top_crops_best_first(tmp_path):
    store = CropStore(tmp_path)
    _commit(store, [[1.0, 0.5], [3.0, 2.0], [2.0, -np.inf]], [[1, 2], [1, 2], [3, EMPTY]])
    sheet = crop_sheet(CropStore(tmp_path), "L")
    cell = MIN_CELL  # the 8 px crops are enlarged
    head = sheet.shape[0] - 3 * (cell + PAD) - PAD
    assert sheet.shape[1] == PAD + LABEL_W + 2 * (cell + PAD)

    def crop_at(row, rank):
        y, x = head + row * (cell + PAD), PAD + LABEL_W + rank * (cell + PAD)
        patch = sheet[y + 4:y + cell - 4, x + 4:x + cell - 4]
        return int(patch.mean()) if patch.std() == 0 else None

    assert [crop_at(0, 0), crop_at(0, 1)] == [11, 12]  # unit 1 (max 3) first, its best crop first
    assert [crop_at(1, 0), crop_at(2, 0), crop_at(2, 1)] == [21, 1, 2]  # then unit 2 (max 2), unit 0
    assert crop_at(1, 1) == 24  # unit 2 has one crop: the rest of its row is background
    written = write_crop_sheets(CropStore(tmp_path), ["L", "nothing_stored"], tmp_path / "out")
    assert [p.name for p in written] == ["L_crops.png"] and read_image(written[0]).shape == sheet.shape
