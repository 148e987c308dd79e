"""Estimate the natural-image magnitude spectrum the MACO preset keeps fixed, from the
photos shipped in examples/, and write it to toolbox/optvis/natural_spectrum.npy.

    python scripts/natural_spectrum.py

Square crops of REF px, at several scales (a crop covers 25-100% of a photo's short side),
with their mirror images, Hann-windowed (so a crop's edges add no cross to the spectrum),
in the decorrelated colour space of the Fourier parameterizations (the inverse of
``params.COLOR_MIX`` applied to the logit of the pixels: ``to_image`` then maps a photo's
own spectrum back to the photo). The mean magnitude of their rfft2d is stored whitened
(times max(|f|, 1/REF), over REF, so it varies slowly and interpolates well) as float16
(3, REF, REF // 2 + 1), rows from fy = -1/2 up (fftshifted); ``params.natural_magnitude``
reads it back at any size.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
REF = 128
FRACTIONS = (1.0, 0.7, 0.5, 0.35, 0.25)
CROPS = 12  # per photo and scale


def estimate(photos: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    from toolbox.optvis.params import COLOR_MIX

    unmix = np.linalg.inv(COLOR_MIX)
    window = np.outer(np.hanning(REF), np.hanning(REF))
    window /= np.sqrt(np.mean(window ** 2))
    total, count = np.zeros((3, REF, REF // 2 + 1)), 0
    for photo in photos:
        pixels = np.clip(photo.astype(np.float64) / 255.0, 0.01, 0.99)
        logits = np.log(pixels / (1 - pixels)) @ unmix.T  # to_image: sigmoid(COLOR_MIX @ x)
        for fraction in FRACTIONS:
            s = REF / (fraction * min(logits.shape[:2]))
            scaled = cv2.resize(logits.astype(np.float32), None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
            for _ in range(CROPS):
                y = rng.integers(0, scaled.shape[0] - REF + 1)
                x = rng.integers(0, scaled.shape[1] - REF + 1)
                crop = scaled[y:y + REF, x:x + REF]
                for view in (crop, crop[:, ::-1]):
                    mean = view.mean(axis=(0, 1))
                    windowed = (view - mean) * window[..., None] + mean
                    total += np.abs(np.fft.rfft2(np.moveaxis(windowed, -1, 0)))
                    count += 1
    magnitude = np.fft.fftshift(total / count, axes=1)
    fy = (np.arange(REF) - REF // 2) / REF
    fx = np.arange(REF // 2 + 1) / REF
    f = np.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)
    return (magnitude * np.maximum(f, 1.0 / REF) / REF).astype(np.float16)


def main() -> None:
    from toolbox.images import read_image

    photos = [read_image(p) for p in sorted((REPO / "examples").glob("*.*")) if p.suffix != ".md"]
    table = estimate(photos, np.random.default_rng(0))
    out = REPO / "toolbox" / "optvis" / "natural_spectrum.npy"
    np.save(out, table)
    print(f"wrote {out.relative_to(REPO)}: {table.shape} from {len(photos)} photos, {out.stat().st_size} bytes")


if __name__ == "__main__":
    main()
