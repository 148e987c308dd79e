"""Benchmark part `seedimages`: issue 10 on lite0: live_dream_fps_lite0 (dashboards with the input pane dreaming, 320x240
frames of a panning camera, 2 steps per frame; goal >= 5) and live_dream_cost against the same
dashboards without it; classes_per_min_lite0 (224 px, 256 steps), classes_top1_rate_lite0 (20
classes; goal >= 0.9), classes_transfer_top5_lite2; invert_error_<photo>_<layer>;
fool_success_rate_lite0 (10 pairs, epsilon 2/255, read back from PNGs; goal >= 0.9) and
fool_from_noise_min_probability (5 targets; goal >= 0.99)
"""

from __future__ import annotations

import time
from pathlib import Path

from bench.common import EXAMPLES, emit, live_app, load

SEED_CLASSES = (1, 15, 18, 22, 31, 76, 107, 130, 207, 281, 301, 309, 323, 340, 437, 483, 948, 963, 980, 985)


FOOL_TARGETS = (15, 76, 130, 309, 948, 1, 18, 430, 812, 980)


def _panning_frames(width: int, height: int, count: int, step: int = 3):
    """A camera panning across a photo: ``count`` frames of width x height, ``step`` px apart."""
    from toolbox.images import read_image, resize

    photo = read_image(EXAMPLES / "chelsea.png")
    photo = resize(photo, round(photo.shape[1] * (height + 40) / photo.shape[0]), height + 40)
    span = photo.shape[1] - width
    return [photo[20:20 + height, abs((k * step) % (2 * span) - span):][:, :width] for k in range(count)]


def live_dream_rates(net, quick: bool, layer: str = "block9_add") -> dict[bool, float]:
    """Dashboards per second without and with dream mode (dreaming ``layer``): 320x240 frames
    of a panning camera, 2 steps per frame, drawn as the headless recorder draws them."""
    from toolbox.app.dashboard import draw_dashboard, new_canvas

    frames = _panning_frames(320, 240, 24 if quick else 60)
    canvas = new_canvas()
    rates = {}
    for dream in (False, True):
        app = live_app(net, layer, overrides={"live.dream": dream, "live.dream_steps": 2})
        session = app.new_session()
        for warm in frames[:3]:
            session.latest = app.worker.observe(app.request(0, app.prepare(warm), session.state, warm))
        start = time.perf_counter()
        for i, frame in enumerate(frames):
            session.latest = app.worker.observe(app.request(i, app.prepare(frame), session.state, frame))
            draw_dashboard(app.view(session), canvas)
        rates[dream] = len(frames) / (time.perf_counter() - start)
    return rates


def run(quick: bool) -> None:
    """Class images, inversion, fooling images and the live dream on lite0 (issue 10)."""
    import numpy as np

    from toolbox.images import read_image, write_image
    from toolbox.optvis.classes import Classifier, class_images, rank_of
    from toolbox.optvis.fooling import fool_from_noise, fool_photos, psnr
    from toolbox.optvis.inversion import invert

    net = load("efficientnet_lite0")
    rates = live_dream_rates(net, quick)
    emit("live_dream_fps_lite0", rates[True], "fps (320x240 input, 2 steps per frame, block9_add; goal >= 5)")
    emit("live_fps_lite0_same_frames", rates[False], "fps (the same dashboards without the dream)")
    emit("live_dream_cost", rates[False] / rates[True], "x (dream frame time / plain frame time)")

    # class images: 20 classes at 224 px, 256 steps (quick: 8 classes, 64 steps)
    classes = list(SEED_CLASSES[:8] if quick else SEED_CLASSES)
    steps = 64 if quick else 256
    start = time.perf_counter()
    made = class_images(net, classes, size=224, steps=steps, batch=8)
    seconds = time.perf_counter() - start
    emit("classes_per_min_lite0", len(classes) * 60 / seconds * steps / 256, "classes/min at 224 px, 256 steps")
    emit("classes_top1_rate_lite0", made.top1_rate, f"({sum(r == 0 for r in made.ranks)} of {len(classes)}, "
         f"{steps} steps; goal >= 0.9)")
    try:
        lite2 = load("efficientnet_lite2")
    except Exception as e:  # noqa: BLE001 (offered only where it loads offline)
        print(f"classes_transfer_top5_lite2: skipped ({e})")
    else:
        resized = np.stack([lite2.fit_input(im) for im in made.images])
        verdict = Classifier(lite2)(resized)
        top5 = [rank_of(p, c) < 5 for p, c in zip(verdict, classes)]
        emit("classes_transfer_top5_lite2", float(np.mean(top5)), f"({sum(top5)} of {len(classes)} lite0 class "
             "images are in lite2's top 5)")

    # inversion: relative feature error per layer on two photos
    layers = ["stem_relu", "block2_add", "block5_project_bn", "block9_add", "block15_project_bn"]
    for name in ("chelsea.png", "coffee.png"):
        photo = net.fit_input(read_image(EXAMPLES / name))
        for inv in invert(net, photo, layers, steps=64 if quick else 256, tv=0.02):
            emit(f"invert_error_{Path(name).stem}_{inv.layer}", inv.relative_error, "(relative feature error)")

    # fooling: 10 (photo, target) pairs at epsilon 2/255, judged on the written PNGs read back
    import tempfile

    photos = [net.fit_input(read_image(p)) for p in sorted(EXAMPLES.glob("*.*")) if p.suffix != ".md"]
    pictures = np.stack((photos * 2)[:10])
    start = time.perf_counter()
    fooled = fool_photos(net, pictures, FOOL_TARGETS, 2 / 255, confidence=0.9, max_steps=300)
    emit("fool_seconds_10_pairs", time.perf_counter() - start, f"s ({fooled.steps} steps)")
    with tempfile.TemporaryDirectory() as tmp:
        back = []
        for i, image in enumerate(fooled.images):
            write_image(Path(tmp) / f"{i}.png", image)
            back.append(read_image(Path(tmp) / f"{i}.png"))
    back = np.stack(back)
    reached = Classifier(net)(back)[np.arange(10), list(FOOL_TARGETS)]
    quality = [psnr(b, p) for b, p in zip(back, pictures)]
    ok = [r >= 0.9 and q >= 40 for r, q in zip(reached, quality)]
    emit("fool_success_rate_lite0", float(np.mean(ok)), "(target p >= 0.9 read back and PSNR >= 40 dB; goal >= 0.9)")
    emit("fool_min_psnr_db", min(quality), "dB")
    emit("fool_min_target_probability", float(reached.min()))
    noise = fool_from_noise(net, FOOL_TARGETS[:5], 224, confidence=0.99, max_steps=300)
    emit("fool_from_noise_min_probability", float(noise.target_probabilities.min()), "(5 targets; goal >= 0.99)")
