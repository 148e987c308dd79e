"""Benchmark part `precompute`: `deepvis precompute` on lite0 (128 px, the default preset's steps, batch 16): precompute_units_per_min in
this process and with --workers 2 (local Ray, its start included), same run; seconds per crops
image; InceptionV3's costs (random weights); atlas_hours_<net>_<N>_workers for whole atlases
"""

from __future__ import annotations

import time
from pathlib import Path

from bench.common import distinct_photos, emit, load


def run(quick: bool) -> None:
    """`deepvis precompute` on lite0 with the unit-image defaults (128 px, the preset's 128 steps,
    batch 16; --quick: 32 steps, scaled to 128): units per minute in this process and with 2 Ray workers
    (a local runtime; its start and the workers' network loads included), the same units in
    the same run; the cost of a crops image (all layers); InceptionV3's costs (random weights:
    the speed does not depend on them); and from them the hours of whole atlases (every offered
    unit, 50,000 images for crops) on 1, 8 and 64 workers, each as fast as this machine."""
    import tempfile

    from toolbox.assets.precompute import (
        Committer,
        CropParams,
        UnitParams,
        Worker,
        plan_crop_tasks,
        plan_unit_tasks,
        run_in_process,
    )
    from toolbox.optvis.presets import steps_of
    from toolbox.settings import Settings

    s = Settings()
    full = steps_of(s.units.preset, s.units.steps)  # the default preset's steps (128)
    steps = 32 if quick else full
    units = {"block9_add": range(16), "block12_add": range(16)}  # 2 tasks: one for each worker
    count = sum(len(u) for u in units.values())
    params = UnitParams(s.units.preset, s.units.size, steps, s.units.batch, 0)
    net = load("efficientnet_lite0")
    tasks = plan_unit_tasks(units, params)
    per_min = {}
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        run_in_process(Worker(net, params, None), tasks, Committer(Path(tmp) / "a", net.name, params))
        per_min["in_process"] = count * 60 / (time.perf_counter() - t) * steps / full
        try:
            from toolbox.assets.cluster import RayRunner
        except ImportError:
            RayRunner = None
        if RayRunner is not None:
            settings = Settings(model="efficientnet_lite0")
            t = time.perf_counter()
            outcome = RayRunner(settings, params, None, workers=2).run(tasks, Committer(Path(tmp) / "b", net.name,
                                                                                        params))
            seconds = time.perf_counter() - t
            per_min["workers2"] = count * 60 / seconds * steps / full
            per_min["workers2_started"] = count * 60 / (seconds - outcome.startup) * steps / full
            emit("precompute_ray_start_s", outcome.startup, "s (local runtime, 2 workers loading lite0)")
    emit("precompute_units_per_min", per_min["in_process"], f"units/min in this process (lite0, {count} units, "
         f"{params.size} px, {full} steps, batch {params.batch})")
    if "workers2" in per_min:
        emit("precompute_units_per_min_workers2", per_min["workers2"], "units/min with --workers 2 (Ray start included)")
        emit("precompute_units_per_min_workers2_started", per_min["workers2_started"],
             "units/min with --workers 2 once the workers have started")
        emit("precompute_workers2_over_in_process", per_min["workers2"] / per_min["in_process"], "x")
    crops = CropParams(s.crops.top, s.crops.side, s.crops.every, s.crops.batch, 10**8, "crop")

    def image_seconds(network, images: int) -> float:
        with tempfile.TemporaryDirectory() as tmp:
            paths = distinct_photos(Path(tmp), images + s.crops.batch)
            worker = Worker(network, None, crops)
            layers = network.spec.layer_names
            measured, warm = plan_crop_tasks([(str(p), False) for p in paths], layers, images, crops)
            worker.run(warm)  # fields measured, the step compiled
            result = worker.run(measured)
            return result["seconds"] / images

    lite0_image = image_seconds(net, 32 if quick else 128)
    emit("precompute_seconds_per_image_lite0", lite0_image, "s (crops, all 21 layers, 224 px, in this process)")
    from toolbox.optvis import Ascent, channel, get_preset

    inception = load("inception_v3", random_weights=True)
    ascent = Ascent(inception, channel("mixed4"), get_preset(s.units.preset))
    few = 8 if quick else 16
    ascent.run(list(range(params.batch)), params.size, 2)
    t = time.perf_counter()
    ascent.run(list(range(params.batch)), params.size, few)
    inception_unit = (time.perf_counter() - t) / params.batch * full / few
    inception_image = image_seconds(inception, 16 if quick else 48)
    emit("precompute_seconds_per_unit_inception_v3", inception_unit, f"s ({params.size} px, {full} steps, batch "
         f"{params.batch}; from {few} steps)")
    emit("precompute_seconds_per_image_inception_v3", inception_image, "s (crops, all offered layers, 299 px)")
    lite0_unit = 60 / per_min["in_process"]
    emit("precompute_seconds_per_unit_lite0", lite0_unit, "s")
    for name, network, unit_s, image_s in (("lite0", net, lite0_unit, lite0_image),
                                           ("inception_v3", inception, inception_unit, inception_image)):
        total_units = sum(layer.channels for layer in network.spec.layers)
        hours = (total_units * unit_s + 50_000 * image_s) / 3600
        for workers in (1, 8, 64):
            emit(f"atlas_hours_{name}_{workers}_workers", hours / workers,
                 f"h ({total_units} units, 50,000 images; each worker as fast as this machine)")
