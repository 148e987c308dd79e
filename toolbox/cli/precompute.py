"""deepvis precompute: a whole network's unit images, crops and circuits, resumable, on one
machine or a Ray cluster."""

from __future__ import annotations

import argparse
import logging

from toolbox.cli.common import (
    bounded,
    parse_layers,
    parse_units,
    progress,
    setting_option,
    settings_of,
    unit_folder_network,
)
from toolbox.errors import UserError

log = logging.getLogger("toolbox.cli")


def add_parser(command) -> None:
    p = command("precompute", run, "a whole network's unit images, crops and circuits, resumable, on one "
                "machine or a Ray cluster",
                "Plans the work as tasks (a layer's batch of units; a shard of images for crops), records each\n"
                "finished task in DIR/precompute/done/, and on a re-run does only what is missing. Results do not\n"
                "depend on the number of workers. Without --crops or --circuits it makes unit images; with them\n"
                "only what they ask for, unless --unit-images is given too. --circuits measures every unit's\n"
                "strongest inputs and outputs on its top-crop images (after this run's crops), for the atlas.\n"
                "Ctrl-C keeps every finished task. Ray is an optional extra: pip install 'deepvis[cluster]'.\n"
                "examples:\n  deepvis precompute --layers block9_add,block12_add\n"
                "  deepvis precompute --unit-images --crops ~/photos --circuits --workers 2\n"
                "  deepvis precompute --layers all --unit-images --crops /shared/val --cluster ray://head:10001 "
                "-o /shared/atlas")
    p.add_argument("--layers", help="a,b or all (default: every layer the network offers)")
    p.add_argument("--units", "-u", default="all", metavar="SPEC",
                   help="units of each layer (unit images, circuits), e.g. 0-15 (default all)")
    p.add_argument("--unit-images", action="store_true", help="make unit images (the default without --crops)")
    p.add_argument("--crops", nargs="+", metavar="SRC",
                   help="also (or only) each unit's top crops from these folders, videos, lists or images")
    p.add_argument("--circuits", action="store_true",
                   help="also (or only) each unit's strongest inputs and outputs, on its stored top-crop images")
    setting_option(p, ["--circuit-units"], "precompute.circuit_units", int)
    setting_option(p, ["--workers", "-w"], "precompute.workers", int)
    setting_option(p, ["--cluster"], "precompute.cluster", metavar="ADDRESS")
    setting_option(p, ["--threads"], "precompute.threads", int)
    setting_option(p, ["--shard"], "precompute.shard", int)
    setting_option(p, ["-o", "--output"], "units.output_dir", metavar="DIR")
    setting_option(p, ["--size"], "units.size", int)
    setting_option(p, ["--steps"], "units.steps", int)
    setting_option(p, ["--preset"], "units.preset")
    setting_option(p, ["--batch"], "units.batch", int)
    setting_option(p, ["--top", "-k"], "crops.top", int)
    p.add_argument("--seed", type=bounded(int, 0), default=0,
                   help="random seed, as deepvis units uses it: same seed, same images (default 0)")


def run(args: argparse.Namespace) -> None:
    import dataclasses

    from toolbox.tfstart import start_tensorflow_quietly

    settings = settings_of(args)
    p, u, c = settings.precompute, settings.units, settings.crops
    distributed = bool(p.workers or p.cluster)
    if distributed:
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise UserError("--workers and --cluster need Ray: pip install 'deepvis[cluster]'")
    start_tensorflow_quietly()  # the asset modules bring TensorFlow
    if p.cluster:  # before the slow start: Ray retries a dead address for minutes
        from toolbox.assets.cluster import check_address

        check_address(p.cluster)
    from toolbox.assets.precompute import (
        CircuitParams,
        Committer,
        CropParams,
        Outcome,
        TaskRecords,
        UnitParams,
        Worker,
        plan_circuit_tasks,
        plan_crop_tasks,
        plan_unit_tasks,
        remaining,
        run_in_process,
        source_list,
    )

    sources = source_list(args.crops) if args.crops else []  # a missing source fails before the network loads
    if args.crops is not None and not sources:
        raise UserError("--crops found no images")
    make_units = args.unit_images or not (args.crops or args.circuits)
    from toolbox.optvis.presets import steps_of, unit_recipe

    steps = steps_of(u.preset, u.steps) if make_units else 0
    lib, folder = unit_folder_network(settings)
    net = lib.network
    layers = parse_layers(args.layers, net)
    folder.claim(net.name)  # one network's assets per folder
    unit_params = UnitParams(u.preset, u.size, steps, u.batch, args.seed) if make_units else None
    crop_params = (CropParams(c.top, c.side, c.every, c.batch, settings.images.max_pixels, settings.images.fit)
                   if sources else None)
    circuit_params = (CircuitParams(settings.circuit.batch, settings.images.max_pixels, settings.images.fit)
                      if args.circuits else None)
    tasks = []
    if unit_params is not None:
        from toolbox.nets.memory import check_fits

        recipes = {name: unit_recipe(net, name, u.preset, u.size, u.steps) for name in layers}  # each layer's own
        check_fits(net, max(r.size for r in recipes.values()), u.batch, "--size and --batch")
        tasks += plan_unit_tasks({name: parse_units(args.units, net.spec.layer(name).channels) for name in layers},
                                 unit_params, net.name, recipes)
    from toolbox.assets.crops import CropStore

    store = CropStore(folder.root)
    if crop_params is not None:
        store.check_compatible(net.name, c.side)  # before any work
        store.repair(layers)
        tasks += plan_crop_tasks(sources, layers, p.shard, crop_params, net.name)
    if circuit_params is not None:
        from toolbox.nets.memory import check_fits

        check_fits(net, net.spec.input_size, settings.circuit.batch, "circuit.batch")
        if crop_params is None and not store.exists():
            raise UserError(f"--circuits needs crops: none are stored in {folder.root} (add --crops SRC)")
    records = TaskRecords(folder.root)
    commit = Committer(folder.root, net.name, unit_params)
    runner = None
    if distributed:
        from toolbox.assets.cluster import RayRunner

        worker_settings = dataclasses.replace(settings, model=net.name) if settings.model == "auto" else settings
        runner = RayRunner(worker_settings, unit_params, crop_params, p.workers, p.cluster, p.threads, p.retries,
                           circuit_params)
    worker = None

    def execute(planned: list, what: str):
        """Run the planned tasks not done earlier, with one progress bar; the outcome."""
        nonlocal worker
        todo = remaining(planned, records)
        log.info("%d %s: %d done by an earlier run, %d to do", len(planned), what, len(planned) - len(todo),
                 len(todo))
        with progress(len(todo), "precompute", "task") as bar:
            def done(task, result) -> None:
                bar.set_postfix_str(f"{task.describe()} ({result['seconds']:.1f} s)", refresh=False)
                bar.update(1)

            if runner is not None:
                return runner.run(todo, commit, done)
            if worker is None:
                worker = Worker(net, unit_params, crop_params, circuit_params)
            return run_in_process(worker, todo, commit, done)

    outcomes, planned = [], len(tasks)
    if tasks:
        outcomes.append(execute(tasks, "tasks"))
    if circuit_params is not None:  # planned from the crops stored now, this run's included
        commit.finish()
        chosen = {name: parse_units(args.units, net.spec.layer(name).channels) for name in layers}
        circuits = plan_circuit_tasks(store, net.spec.layer_names, chosen, p.circuit_units, net.name)
        if not circuits:
            raise UserError(f"--circuits: no crops of {', '.join(layers)[:200]} are stored in {folder.root}")
        planned += len(circuits)
        outcomes.append(execute(circuits, "circuit tasks"))
    outcome = Outcome(planned=planned, workers=max((o.workers for o in outcomes), default=1))
    for o in outcomes:
        outcome.done, outcome.retried, outcome.seconds = (outcome.done + o.done, outcome.retried + o.retried,
                                                          outcome.seconds + o.seconds)
    skipped = planned - sum(o.planned for o in outcomes)  # an outcome plans the tasks it was given
    commit.finish()
    where = f"{outcome.workers} Ray workers" if distributed else "in this process"
    retried = f", {outcome.retried} retried after a worker died" if outcome.retried else ""
    bad = f", {commit.bad} unreadable images skipped" if commit.bad else ""
    said = (f"; {commit.said} unit{'s' * (commit.said != 1)} with nothing to show, no image (why: in "
            "<layer>_objectives.json)" if commit.said else "")
    print(f"did {outcome.done} of {planned} tasks ({skipped} done earlier) {where} in "
          f"{outcome.seconds:.1f} s{retried}{bad}{said}; assets in {folder.root}")
