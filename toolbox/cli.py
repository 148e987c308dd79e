"""The `deepvis` command: argparse -> settings -> one call into the toolbox.

Options that have a setting are declared with ``setting_option``: their help text (and
default) comes from ``toolbox.settings``, and their value reaches the toolbox as a
settings override, so a command-line value passes exactly the checks a settings file
does. A UserError anywhere below becomes one line on stderr and exit code 2; Ctrl-C is
exit code 130 with what was finished kept.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from toolbox.errors import UserError
from toolbox.settings import describe, parse_layer_weights

log = logging.getLogger("toolbox.cli")

DESCRIPTION = """\
deepvis: see what a convolutional network has learned.

Networks (--model): efficientnet_lite0 (real ImageNet weights, offline), efficientnet_lite2,
inception_v3 (needs its ImageNet weights: --weights FILE, Keras' cache, or internet),
googlenet (needs --weights tensorflow_inception_graph.pb or bvlc_googlenet.caffemodel),
a spec of your own in models/, or auto (the default: inception_v3 when its weights are
available, else efficientnet_lite0).
"""


class Parser(argparse.ArgumentParser):
    """argparse whose mistakes are one line, like every other error of deepvis."""

    def error(self, message: str):  # noqa: ANN201 (argparse's signature)
        self.exit(2, f"deepvis: error: {self.prog}: {message} (see: {self.prog} --help)\n")


def bounded(kind: type, lo: float, hi: float | None = None) -> Callable[[str], Any]:
    """An argparse type for numbers in [lo, hi] (options that have no setting)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a{'n' if kind is int else ''} {kind.__name__}, "
                                             f"got '{text[:40]}'") from None
        if value < lo or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"must be at least {lo}" + (f" and at most {hi}" if hi else "")
                                             + f", not {value}")
        return value

    parse.__name__ = kind.__name__
    return parse


def setting_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup, flags: Sequence[str], key: str,
                   kind: type = str, **kwargs: Any) -> None:
    """An option that overrides the setting ``key`` (dotted), documented from it."""
    long = next(f for f in flags if f.startswith("--"))
    kwargs.setdefault("metavar", long[2:].upper().replace("-", "_"))
    parser.add_argument(*flags, type=kind, default=None, dest=f"{SETTING}{key}", help=describe(key), **kwargs)
    SETTING_FLAGS[key] = long


SETTING = "setting:"  # the argparse dest of a setting option is "setting:<dotted key>"
SETTING_FLAGS: dict[str, str] = {}  # dotted key -> its option, for error messages


def _common(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("common options")
    setting_option(g, ["--model", "-m"], "model")
    setting_option(g, ["--weights"], "weights")
    g.add_argument("--settings", help="settings YAML (default: ./settings.yaml when present)")


def settings_of(args: argparse.Namespace):
    """The settings file, with this command's options laid over it."""
    from toolbox.settings import load_settings

    path = args.settings
    if path is None and os.path.isfile("settings.yaml"):
        path = "settings.yaml"
    overrides = {dest[len(SETTING):]: value for dest, value in vars(args).items()
                 if dest.startswith(SETTING) and value is not None}
    labels = {key: SETTING_FLAGS[key] for key in overrides}
    return load_settings(path, overrides, labels)


def _network(settings):
    """Start TensorFlow (quietly) and load the network the settings name."""
    from toolbox.tfstart import start_tensorflow_quietly

    start_tensorflow_quietly()
    from toolbox.nets import load_network

    return load_network(settings)


def _unit_folder_network(settings):
    """The network and its unit-image folder, prepared (writable, stray temporaries of killed
    runs removed). A folder the user named is prepared before the network loads, so a mistake
    there is an error before the slow start; the default folder needs the network's name."""
    from toolbox.tfstart import start_tensorflow_quietly

    start_tensorflow_quietly()  # the assets package brings TensorFlow
    from toolbox.assets import UnitImageFolder

    folder = None
    if settings.units.output_dir:
        folder = UnitImageFolder(settings.unit_images_path(""))  # the model's name is not part of it
        folder.prepare()
    net = _network(settings)
    if folder is None:
        folder = UnitImageFolder(settings.unit_images_path(net.name))
        folder.prepare()
    return net, folder


def _progress(total: int, what: str, unit: str = "step"):
    from tqdm import tqdm

    return tqdm(total=total, desc=what, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=True)


def _inputs(sources: Sequence[str]) -> list[Path]:
    """Files named directly, and the images of named folders; a missing path is a UserError."""
    from toolbox.images import list_images

    paths = []
    for source in sources:
        p = Path(source)
        if p.is_dir():
            paths.extend(list_images(p))
        elif p.exists():
            paths.append(p)
        else:
            raise UserError(f"image not found: {source}")
    return paths


class BadInputs:
    """Counts inputs that could not be read: one warning line each, or the end of the run
    with ``strict``."""

    def __init__(self, strict: bool) -> None:
        self.strict, self.count = strict, 0

    def skip(self, error: UserError) -> None:
        if self.strict:
            raise error
        self.count += 1
        log.warning("skipped: %s", error)


def cmd_layers(args: argparse.Namespace) -> None:
    net = _network(settings_of(args))
    shapes = net.layer_shapes()
    if args.json:
        print(json.dumps([{"name": n, "shape": list(s)} for n, s in shapes.items()]))
        return
    size = net.spec.input_size
    print(f"{net.name}: {len(shapes)} layers at {size}x{size} input")
    for name, (h, w, c) in shapes.items():
        print(f"  {name:<22} {h:>4} x {w:<4} x {c:>5}")


def cmd_predict(args: argparse.Namespace) -> None:
    from toolbox.files import display_path
    from toolbox.images import read_image

    paths = _inputs(args.images)
    settings = settings_of(args)
    net = _network(settings)
    from toolbox.nets import Probe

    probe, bad, done = Probe(net, []), BadInputs(args.strict or len(paths) == 1), 0
    for path in paths:
        try:
            image = read_image(path, settings.images.max_pixels, needed_side=net.spec.input_size)
        except UserError as e:
            bad.skip(e)
            continue
        top = probe(net.fit_input(image, settings.images.fit)).top(net.labels, args.top)
        print(f"{display_path(path)}: {_classes_line(top)}", flush=True)
        done += 1
    if bad.count:
        log.warning("%d of %d images could not be read", bad.count, len(paths))
    if not done:
        raise UserError(f"none of the {len(paths)} inputs could be read")


def cmd_activations(args: argparse.Namespace) -> None:
    from toolbox.files import check_output_file
    from toolbox.images import read_image

    if args.plot:
        check_output_file(args.plot, (".png", ".svg", ".pdf"))
    settings = settings_of(args)
    image = read_image(args.image, settings.images.max_pixels)
    net = _network(settings)
    from toolbox.nets import Probe

    args.layer = net.spec.layer(args.layer).name  # our name for it, also when given by an alias
    if args.unit is not None:
        net.check_unit(args.layer, args.unit)
    act = Probe(net, [args.layer])(net.fit_input(image, settings.images.fit)).activations[args.layer]
    mean, peak = act.mean(axis=(0, 1)), act.max(axis=(0, 1))
    if args.plot:
        from toolbox.plots import plot_layer_activations

        plot_layer_activations(act, f"{net.name} {args.layer} on {Path(args.image).name}", args.plot, args.unit)
    if args.json:
        print(json.dumps({args.layer: {"shape": list(act.shape), "mean": mean.tolist(), "max": peak.tolist()}}))
        return
    print(f"{args.layer} {act.shape[0]}x{act.shape[1]}x{act.shape[2]} on {args.image}")
    print("unit      mean       max")
    for unit in range(act.shape[2]):
        print(f"{unit:4d} {mean[unit]:9.4f} {peak[unit]:9.4f}")
    if args.plot:
        print(f"wrote {args.plot}")


def parse_units(text: str, channels: int) -> list[int]:
    """'3,17,40-45' or 'all' -> sorted unit indices, each checked against ``channels``."""
    if text.strip() == "all":
        return list(range(channels))
    units: set[int] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            lo, _, hi = part.partition("-")
            first, last = int(lo), int(hi or lo)
        except ValueError:
            raise UserError(f"bad unit spec '{part[:40]}' (use e.g. 3,17,40-45 or all)") from None
        if not 0 <= first < channels or not 0 <= last < channels:
            bad = first if not 0 <= first < channels else last
            raise UserError(f"unit {bad} is out of range for this layer (0..{channels - 1})")
        units.update(range(first, last + 1))
    if not units:
        raise UserError("--units selects no unit")
    return sorted(units)


def cmd_dream(args: argparse.Namespace) -> None:
    from toolbox.files import check_output_file, clean_stray_parts
    from toolbox.images import IMAGE_SUFFIXES, read_image

    check_output_file(args.output, IMAGE_SUFFIXES)
    if args.zoom_frames:
        check_output_file(str(Path(args.output).with_suffix(".mp4")), (".mp4",))
        if args.gif:
            check_output_file(str(Path(args.output).with_suffix(".gif")), (".gif",))
    clean_stray_parts(Path(args.output).parent)
    settings = settings_of(args)
    image = read_image(args.image, settings.images.max_pixels)
    guide_image = read_image(args.guide, settings.images.max_pixels) if args.guide else None
    layers = parse_layer_weights(settings.dream.layers) if settings.dream.layers else None
    net = _network(settings)
    from toolbox.outputs.dream import dream_to_files

    dream_to_files(net, image, args.output, settings.dream, layers=layers, guide_image=guide_image,
                   seed=args.seed, zoom_frames=args.zoom_frames, gif=args.gif, progress=_progress)


def cmd_units(args: argparse.Namespace) -> None:
    from toolbox.tfstart import start_tensorflow_quietly

    settings = settings_of(args)
    start_tensorflow_quietly()  # the engine's imports below bring TensorFlow
    from toolbox.optvis.presets import get_preset

    u = settings.units
    get_preset(u.preset)
    net, folder = _unit_folder_network(settings)
    layer = net.spec.layer(args.layer)
    args.layer = layer.name  # ours, also when it was named by an alias
    units = parse_units(args.units, layer.channels)
    from toolbox.assets import render_unit_images
    from toolbox.nets.memory import check_fits

    check_fits(net, u.size, min(u.batch, len(units)), "--size and --batch")
    with _progress(u.steps * -(-len(units) // u.batch), f"{args.layer}: {len(units)} units") as bar:
        results = render_unit_images(net, args.layer, units, folder, u.preset, u.size, u.steps, u.batch,
                                     args.seed, on_step=lambda: bar.update(1))
    print(f"wrote {len(results)} unit images, {folder.sheet_path(args.layer).name} and "
          f"{folder.objectives_path(args.layer).name} to {folder.root}")


def cmd_attribute(args: argparse.Namespace) -> None:
    from toolbox.files import check_output_file, clean_stray_parts, display_path, sibling_path
    from toolbox.images import IMAGE_SUFFIXES, read_image

    if (args.layer is None) == (args.klass is None):
        raise UserError("say what to explain: --layer L --unit U, or --class NAME_OR_ID (one of the two)")
    if (args.layer is None) != (args.unit is None):
        raise UserError("--layer and --unit go together: --layer L --unit U")
    settings = settings_of(args)
    a = settings.attribute
    if args.cam_layer and a.method != "gradcam":
        raise UserError(f"--cam-layer is for --method gradcam, not {a.method}")
    output = args.output or f"{Path(args.image).stem}_{a.method}.png"
    check_output_file(output, IMAGE_SUFFIXES)
    if a.method == "gradcam":
        check_output_file(sibling_path(output, "overlay"), IMAGE_SUFFIXES)
    clean_stray_parts(Path(output).parent)
    image = read_image(args.image, settings.images.max_pixels)
    net = _network(settings)
    from toolbox.nets.memory import check_fits
    from toolbox.optvis.attribution import Attributor, Target
    from toolbox.outputs.attribution import attribution_to_files, class_index

    target = (Target.klass(class_index(net.labels, args.klass)) if args.klass is not None
              else Target.unit(net.spec.layer(args.layer).name, args.unit, a.unit_value))
    attributor = Attributor(net)
    attributor.check(target)
    rows = {"smoothgrad": a.samples + 1, "integrated": a.steps + 2}.get(a.method, 1)
    check_fits(net, net.spec.input_size, min(a.batch, rows), "--batch")
    fitted = net.fit_input(image, settings.images.fit)
    result = attributor(fitted, target, a.method, cam_layer=args.cam_layer, smooth_base=a.smooth_base,
                        samples=a.samples, noise=a.noise, steps=a.steps, batch=a.batch, seed=args.seed)
    written = attribution_to_files(result, fitted, output, a.filter)
    if target.is_class:
        what = f"class {target.index} ({net.labels[target.index]}): score {result.score:.4f} before softmax"
    else:
        where = "at its strongest position" if target.value == "max" else "summed over positions"
        where += " (before any ReLU of the layer)"
        what = f"{target.layer} unit {target.index}: {result.score:.4f} {where}"
    extra = f"; Grad-CAM at {result.cam_layer}" if result.cam_layer else ""
    if result.completeness_gap is not None:  # how far sum(map) is from score(image) - score(black)
        difference = float(result.map.sum()) - result.completeness_gap
        share = 100 * abs(result.completeness_gap) / max(abs(difference), 1e-12)
        extra += f"; completeness gap {result.completeness_gap:.4g} ({share:.2g}% of the score's rise from black)"
    print(what + extra)
    print(f"wrote {' and '.join(display_path(p) for p in written)}")


def fraction(text: str) -> float:
    """'2/255' or '0.0078' -> a float (an argparse type)."""
    top, slash, bottom = text.partition("/")
    try:
        value = float(top) / float(bottom) if slash else float(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"expected a number or a fraction such as 2/255, not '{text[:40]}'") from None
    return value


fraction.__name__ = "float"


def _classes_line(top: list[tuple[str, float]]) -> str:
    """[(label, probability)] as predict and fool print them."""
    return ", ".join(f"{label} {p:.3f}" for label, p in top)


def cmd_classes(args: argparse.Namespace) -> None:
    from toolbox.files import check_output_dir, clean_stray_parts, display_path

    from toolbox.tfstart import start_tensorflow_quietly

    settings = settings_of(args)
    c = settings.classes
    start_tensorflow_quietly()  # the engine's imports below bring TensorFlow
    from toolbox.optvis.presets import get_preset

    get_preset(c.preset)
    clean_stray_parts(check_output_dir(args.output))
    net = _network(settings)
    from toolbox.nets.memory import check_fits
    from toolbox.outputs.classes import classes_to_files, parse_classes

    classes = parse_classes(net.labels, args.classes)
    check_fits(net, c.size, min(c.batch, len(classes)), "--size and --batch")
    result, paths = classes_to_files(net, classes, args.output, c, args.seed, _progress)
    for index, rank, p in zip(result.classes, result.ranks, result.probabilities):
        verdict = "top-1" if rank == 0 else f"rank {rank + 1}"
        print(f"{index:4d} {net.labels[index]}: {verdict}, p={p[index]:.3f} (top: {net.labels[int(p.argmax())]})")
    print(f"{sum(r == 0 for r in result.ranks)} of {len(classes)} images are top-1 for {net.name}; "
          f"wrote {len(paths) - 1} images and {paths[-1].name} to {display_path(args.output)}")


def cmd_invert(args: argparse.Namespace) -> None:
    from toolbox.files import check_output_file, clean_stray_parts, display_path
    from toolbox.images import read_image

    output = args.output or f"{Path(args.image).stem}_invert.png"
    check_output_file(output, (".png", ".bmp", ".jpg", ".jpeg", ".webp"))
    clean_stray_parts(Path(output).parent)
    settings = settings_of(args)
    image = read_image(args.image, settings.images.max_pixels)
    net = _network(settings)
    from toolbox.outputs.invert import invert_to_files, layers_in_order

    layers = layers_in_order(net, args.layers)
    photo = net.fit_input(image, settings.images.fit)
    inversions, paths = invert_to_files(net, photo, layers, output, settings.invert, args.seed, _progress)
    for inv in inversions:
        print(f"{inv.layer}: relative feature error {inv.relative_error:.4f}")
    print(f"wrote {', '.join(display_path(p) for p in paths)}")


def cmd_fool(args: argparse.Namespace) -> None:
    from toolbox.files import check_output_file, clean_stray_parts, display_path, sibling_path
    from toolbox.images import read_image

    if args.from_noise == (args.image is not None):
        raise UserError("give an IMAGE to change, or --from-noise (one of the two)")
    stem = "noise" if args.from_noise else Path(args.image).stem
    output = args.output or f"{stem}_fooled.png"
    lossless = (".png", ".bmp")  # a lossy format would undo a change of a few levels
    check_output_file(output, lossless)
    if not args.from_noise:
        check_output_file(sibling_path(output, "change"), lossless)
    clean_stray_parts(Path(output).parent)
    settings = settings_of(args)
    image = None if args.from_noise else read_image(args.image, settings.images.max_pixels)
    net = _network(settings)
    from toolbox.nets.probe import top_classes
    from toolbox.outputs.attribution import class_index
    from toolbox.outputs.fool import fool_to_files

    target = class_index(net.labels, args.target)
    photo = None if image is None else net.fit_input(image, settings.images.fit)
    report = fool_to_files(net, photo, target, output, settings.fool, args.seed, _progress)
    if report.before is not None:
        print(f"before: {_classes_line(top_classes(report.before, net.labels))}")
    print(f"after (read back from {display_path(output)}): {_classes_line(top_classes(report.after, net.labels))}")
    change = "" if report.psnr is None else (f"; PSNR {report.psnr:.1f} dB against the photo, largest change "
                                             f"{report.max_change}/255")
    goal = settings.fool.confidence
    verdict = "reached" if report.reached >= goal else "NOT reached"
    print(f"target {target} ({net.labels[target]}): p={report.reached:.4f}, {verdict} {goal} in {report.steps} "
          f"steps{change}")
    print(f"wrote {' and '.join(display_path(p) for p in report.paths)}")


def parse_layers(text: str | None, network) -> list[str]:
    """'a,b' or 'all' (or None: all) -> layer names, each checked against the network, each
    once (a name given twice, or a layer and its alias, in the order first given)."""
    if text is None or text.strip() == "all":
        return network.spec.layer_names
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise UserError("--layers names no layer")
    return list(dict.fromkeys(network.spec.layer(name).name for name in names))


def cmd_crops(args: argparse.Namespace) -> None:
    from toolbox.tfstart import start_tensorflow_quietly

    settings = settings_of(args)
    start_tensorflow_quietly()  # crop_job brings TensorFlow
    from toolbox.assets.crop_job import count_images, find_sources

    sources = find_sources(args.images)  # a missing source fails before the network loads
    net, folder = _unit_folder_network(settings)
    from toolbox.assets.crop_job import CropJob
    from toolbox.assets.crops import CropStore

    c = settings.crops
    layers = parse_layers(args.layers, net)
    units = sum(net.spec.layer(n).channels for n in layers)
    store = CropStore(folder.root)
    job = CropJob(net, layers, store, c.top, c.side, settings.images.max_pixels, settings.images.fit)
    bad = BadInputs(args.strict)
    with _progress(count_images(sources, c.every), f"crops of {len(layers)} layers", "img") as bar:
        report = job.run(sources, c.every, c.batch, c.chunk, on_image=bar.update, on_bad=bad.skip)
    if not report.images and not report.skipped:
        raise UserError(f"none of the {report.bad} images could be read")
    if args.backprop:
        from toolbox.assets.crop_job import backprop_crops

        with _progress(units, f"{args.backprop} crops", "unit") as bar:
            made = backprop_crops(net, layers=layers, store=store, rule=args.backprop,
                                  max_pixels=settings.images.max_pixels, fit=settings.images.fit, on_unit=bar.update)
        print(f"made {made} {args.backprop} crops")
    rate = report.images / max(report.seconds, 1e-9)
    print(f"looked at {report.images} images ({rate:.1f}/s), skipped {report.skipped} seen before"
          + (f", {report.bad} unreadable" if report.bad else "") + f"; top {c.top} crops of "
          f"{units} units in {store.dir}")


def cmd_precompute(args: argparse.Namespace) -> None:
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
    from toolbox.assets.precompute import (Committer, CropParams, TaskRecords, UnitParams, Worker, plan_crop_tasks,
                                           plan_unit_tasks, remaining, run_in_process, source_list)

    sources = source_list(args.crops) if args.crops else []  # a missing source fails before the network loads
    if args.crops is not None and not sources:
        raise UserError("--crops found no images")
    make_units = args.unit_images or not args.crops
    from toolbox.optvis.presets import get_preset

    if make_units:
        get_preset(u.preset)
    net, folder = _unit_folder_network(settings)
    layers = parse_layers(args.layers, net)
    unit_params = UnitParams(u.preset, u.size, u.steps, u.batch, args.seed) if make_units else None
    crop_params = (CropParams(c.top, c.side, c.every, c.batch, settings.images.max_pixels, settings.images.fit)
                   if sources else None)
    tasks = []
    if unit_params is not None:
        from toolbox.nets.memory import check_fits

        check_fits(net, u.size, u.batch, "--size and --batch")
        tasks += plan_unit_tasks({name: parse_units(args.units, net.spec.layer(name).channels) for name in layers},
                                 unit_params)
    if crop_params is not None:
        tasks += plan_crop_tasks(sources, layers, p.shard, crop_params)
    todo = remaining(tasks, TaskRecords(folder.root))
    log.info("%d tasks: %d done by an earlier run, %d to do", len(tasks), len(tasks) - len(todo), len(todo))
    commit = Committer(folder.root, net.name, unit_params)
    with _progress(len(todo), "precompute", "task") as bar:
        def done(task, result) -> None:
            bar.set_postfix_str(f"{task.describe()} ({result['seconds']:.1f} s)", refresh=False)
            bar.update(1)

        if distributed:
            from toolbox.assets.cluster import RayRunner

            worker_settings = dataclasses.replace(settings, model=net.name) if settings.model == "auto" else settings
            outcome = RayRunner(worker_settings, unit_params, crop_params, p.workers, p.cluster, p.threads,
                                p.retries).run(todo, commit, done)
        else:
            outcome = run_in_process(Worker(net, unit_params, crop_params), todo, commit, done)
    commit.finish()
    where = f"{outcome.workers} Ray workers" if distributed else "in this process"
    retried = f", {outcome.retried} retried after a worker died" if outcome.retried else ""
    bad = f", {commit.bad} unreadable images skipped" if commit.bad else ""
    print(f"did {outcome.done} of {len(tasks)} tasks ({len(tasks) - len(todo)} done earlier) {where} in "
          f"{outcome.seconds:.1f} s{retried}{bad}; assets in {folder.root}")


def cmd_atlas(args: argparse.Namespace) -> None:
    from toolbox.files import check_output_dir

    settings = settings_of(args)
    site = check_output_dir(settings.atlas.output_dir)
    if args.assets and not Path(args.assets).is_dir():
        raise UserError(f"asset folder not found: {args.assets}")
    net = _network(settings)
    from toolbox.atlas import write_atlas

    layers = [(name, net.spec.layer(name).channels) for name in net.spec.layer_names]
    with _progress(len(layers), "atlas", "layer") as bar:
        assets = Path(args.assets) if args.assets else settings.unit_images_path(net.name)
        report = write_atlas(net.name, layers, assets, site, on_layer=bar.update)
    print(f"wrote {report.units} unit pages of {report.layers} layers ({report.unit_images} with optimized images, "
          f"{report.units_with_crops} with crops) to {site}; open {site / 'index.html'}")


def cmd_live(args: argparse.Namespace) -> None:
    from toolbox.app.display import display_available
    from toolbox.app.sources import StillImages, open_source
    from toolbox.files import check_output_dir, check_output_file, clean_stray_parts

    settings = settings_of(args)
    headless = args.headless or bool(args.output or args.video or args.frames)
    if not headless and not display_available():
        log.warning("no display found (DISPLAY is not set); rendering the dashboard to files instead (--headless)")
        headless = True
    out_dir = args.output or (None if args.video else "deepvis-live")
    if headless:
        if out_dir:
            clean_stray_parts(check_output_dir(out_dir))
        if args.video:
            clean_stray_parts(check_output_file(args.video, (".mp4",)).parent)
    source = open_source(settings.live_input, settings.images.max_pixels)
    net = _network(settings)
    from toolbox.app.live import build_live_app

    app = build_live_app(net, settings, source)
    if not headless:
        app.run_window()
        return
    frames = args.frames or (len(source.paths) if isinstance(source, StillImages) else 30)
    with _progress(frames, "dashboards", "frame") as bar:
        written = app.run_headless(frames, Path(out_dir) if out_dir else None,
                                   Path(args.video) if args.video else None, unit=args.unit,
                                   progress=lambda: bar.update(1))
    where = [f"{len(written)} dashboard{'s' * (len(written) != 1)} in {out_dir}/"] if written else []
    where += [f"a recording in {args.video}"] if args.video else []
    print("wrote " + " and ".join(where))


def keys_help(width: int = 96) -> str:
    """The default key bindings as wrapped text, read from the settings' one list of them."""
    import textwrap

    from toolbox.settings import DEFAULT_KEYS

    text = ", ".join(f"{'/'.join(keys)} {action.replace('_', ' ')}" for action, keys in DEFAULT_KEYS.items())
    return textwrap.fill(text, width, initial_indent="  ", subsequent_indent="  ")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="deepvis", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser)

    def command(name: str, func: Callable, help: str, epilog: str = "") -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, epilog=epilog,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=func)
        _common(p)
        return p

    p = command("layers", cmd_layers, "list the layers a network offers, with their output shapes",
                "example: deepvis layers --model efficientnet_lite0 --json")
    p.add_argument("--json", action="store_true", help='print [{"name": ..., "shape": [h, w, c]}, ...]')

    p = command("predict", cmd_predict, "print the top classes for one or more images",
                "an unreadable image is skipped with a warning (and counted at the end); the run fails only\n"
                "when no input could be read, or at the first bad one with --strict.\n"
                "example: deepvis predict examples/chelsea.png examples/coffee.png --top 3")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="jpg, png, bmp or webp files, or folders of them")
    p.add_argument("--top", type=bounded(int, 1, 1000), default=5, help="how many classes to print (default 5)")
    p.add_argument("--strict", action="store_true", help="stop with exit code 2 at the first unreadable image")
    setting_option(p, ["--max-pixels"], "images.max_pixels", int)

    p = command("activations", cmd_activations, "per-channel mean and max of one layer on an image",
                "examples:\n  deepvis activations examples/chelsea.png --layer block9_add --json\n"
                "  deepvis activations examples/chelsea.png --layer block9_add --plot stats.png --unit 17")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--layer", "-l", required=True, help="layer name (see: deepvis layers)")
    p.add_argument("--json", action="store_true", help='print {"LAYER": {"shape", "mean", "max"}}')
    p.add_argument("--plot", metavar="OUT.png", help="also draw the per-channel mean and max as a chart "
                   "(.png, .svg or .pdf)")
    p.add_argument("--unit", "-u", type=bounded(int, 0), help="with --plot: add this unit's activation histogram")

    p = command("dream", cmd_dream, "DeepDream: amplify what a layer already sees in your photo",
                "examples:\n  deepvis dream examples/chelsea.png -o dream.png\n"
                "  deepvis dream photo.jpg -o out.png --layers block9_add:1,block12_add:0.5 --octaves 5\n"
                "  deepvis dream photo.jpg -o out.png --zoom-frames 60 --gif   # also out.mp4, out.gif\n"
                "Ctrl-C stops it; a zoom video keeps the frames made so far.")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("-o", "--output", required=True, help="output image (same size as the input)")
    setting_option(p, ["--layers"], "dream.layers")
    setting_option(p, ["--octaves"], "dream.octaves", int)
    setting_option(p, ["--octave-scale"], "dream.octave_scale", float)
    setting_option(p, ["--steps"], "dream.steps", int)
    setting_option(p, ["--step-size"], "dream.step_size", float)
    setting_option(p, ["--tile"], "dream.tile", int)
    setting_option(p, ["--zoom"], "dream.zoom", float)
    setting_option(p, ["--objective"], "dream.objective")
    p.add_argument("--guide", metavar="IMAGE", help="dream towards the features of this image instead")
    p.add_argument("--seed", type=bounded(int, 0), default=0, help="random seed (default 0)")
    p.add_argument("--zoom-frames", type=bounded(int, 0, 100_000), default=0, metavar="N",
                   help="also write OUTPUT.mp4: N frames, each dreamed (one octave) from the zoomed previous one")
    p.add_argument("--gif", action="store_true", help="with --zoom-frames, also write OUTPUT.gif")

    p = command("units", cmd_units, "optimized images of a layer's units (feature visualization)",
                "writes DIR/<layer>_<unit:04d>.png per unit, DIR/<layer>_sheet.png and DIR/<layer>_objectives.json;\n"
                "runs add to a folder, also two at once. Ctrl-C keeps every finished batch.\n"
                "examples:\n  deepvis units --layer block9_add --units 0-15 -o units/\n"
                "  deepvis units --layer block9_add --units all   # into the folder the live window reads")
    p.add_argument("--layer", "-l", required=True, help="layer name (see: deepvis layers)")
    p.add_argument("--units", "-u", required=True, metavar="SPEC", help="e.g. 3,17,40-45 or all")
    setting_option(p, ["-o", "--output"], "units.output_dir", metavar="DIR")
    setting_option(p, ["--size"], "units.size", int)
    setting_option(p, ["--steps"], "units.steps", int)
    setting_option(p, ["--preset"], "units.preset")
    setting_option(p, ["--batch"], "units.batch", int)
    p.add_argument("--seed", type=bounded(int, 0), default=0, help="random seed; same seed, same images (default 0)")

    p = command("attribute", cmd_attribute, "which pixels of an image drive a unit or a class (gradient maps)",
                "methods: gradient, guided (guided backprop), deconv, gradcam (also writes OUT_overlay.png, the\n"
                "heat map over the input), smoothgrad (a noise tunnel over --base), integrated (from a black\n"
                "image). Prints the unit's or class's score. The image is fitted to the network's input first.\n"
                "examples:\n"
                "  deepvis attribute examples/chelsea.png --class 'egyptian cat' --method guided -o cat.png\n"
                "  deepvis attribute examples/coffee.png --class espresso --method gradcam -o cup.png\n"
                "  deepvis attribute examples/chelsea.png --layer block9_add --unit 17 --filter norm-blur")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--layer", "-l", help="layer of the unit to explain (see: deepvis layers)")
    p.add_argument("--unit", "-u", type=bounded(int, 0), help="unit (channel) of --layer")
    p.add_argument("--class", "-c", dest="klass", metavar="NAME_OR_ID",
                   help="class to explain (its score before softmax): a label, any case, or its number")
    setting_option(p, ["--method"], "attribute.method")
    setting_option(p, ["--filter"], "attribute.filter")
    setting_option(p, ["--unit-value"], "attribute.unit_value")
    p.add_argument("--cam-layer", metavar="LAYER", help="gradcam: the layer whose maps are weighted (default: "
                   "for a class the last layer, for a unit the layer before its own)")
    setting_option(p, ["--base"], "attribute.smooth_base")
    setting_option(p, ["--samples"], "attribute.samples", int)
    setting_option(p, ["--noise"], "attribute.noise", float)
    setting_option(p, ["--steps"], "attribute.steps", int)
    setting_option(p, ["--batch"], "attribute.batch", int)
    p.add_argument("-o", "--output", metavar="OUT.png", help="the map (default: IMAGE_METHOD.png here)")
    p.add_argument("--seed", type=bounded(int, 0), default=0, help="smoothgrad's noise seed (default 0)")

    p = command("classes", cmd_classes, "images of classes: what the network thinks a magpie looks like",
                "writes DIR/class_<number>_<label>.png per class and DIR/classes_sheet.png, captioned with the\n"
                "network's probability for its own image; prints whether each image is top-1.\n"
                "examples:\n  deepvis classes --classes \"magpie,tarantula,17\" -o classes/\n"
                "  deepvis classes --classes robin --size 128 --steps 128")
    p.add_argument("--classes", "-c", required=True, metavar="LIST",
                   help="labels (any case) or numbers, separated by commas")
    p.add_argument("-o", "--output", default="classes", metavar="DIR", help="output folder (default: classes)")
    setting_option(p, ["--size"], "classes.size", int)
    setting_option(p, ["--steps"], "classes.steps", int)
    setting_option(p, ["--preset"], "classes.preset")
    setting_option(p, ["--batch"], "classes.batch", int)
    p.add_argument("--seed", type=bounded(int, 0), default=0, help="random seed (default 0)")

    p = command("invert", cmd_invert, "feature inversion: what a layer still knows about a photo",
                "for each layer an image whose features there match the photo's (the photo is fitted to the\n"
                "network's input first); writes OUT_<layer>.png per layer and OUT, a sheet of the photo and the\n"
                "inversions, shallow to deep. Prints each layer's relative feature error ||f(x)-f(photo)||/||f(photo)||.\n"
                "example:\n  deepvis invert examples/chelsea.png --layers stem_relu,block5_project_bn,block9_add -o inv.png")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--layers", "-l", required=True, help="layers, separated by commas (see: deepvis layers)")
    p.add_argument("-o", "--output", metavar="OUT.png", help="the sheet (default: IMAGE_invert.png here)")
    setting_option(p, ["--steps"], "invert.steps", int)
    setting_option(p, ["--tv"], "invert.tv", float)
    p.add_argument("--seed", type=bounded(int, 0), default=0, help="random seed (default 0)")

    p = command("fool", cmd_fool, "fooling images: an invisible change that flips the class, or noise the "
                "network is sure of",
                "changes the photo (fitted to the network's input) by at most --epsilon per pixel value until the\n"
                "network predicts --target; writes OUT (lossless: .png or .bmp) and OUT_change.png (the change,\n"
                "amplified around grey), and prints the top-5 before and after, the latter read back from OUT.\n"
                "--from-noise instead makes an image from noise that the network assigns to the target.\n"
                "examples:\n  deepvis fool examples/chelsea.png --target robin -o robin_cat.png\n"
                "  deepvis fool --from-noise --target tarantula -o tarantula_noise.png")
    p.add_argument("image", metavar="IMAGE", nargs="?", help="the photo to change (not with --from-noise)")
    p.add_argument("--target", "-t", required=True, metavar="CLASS", help="a label (any case) or its number")
    p.add_argument("--from-noise", action="store_true", help="start from noise instead of a photo")
    p.add_argument("-o", "--output", metavar="OUT.png", help="default: IMAGE_fooled.png (noise_fooled.png) here")
    setting_option(p, ["--epsilon"], "fool.epsilon", fraction)
    setting_option(p, ["--confidence"], "fool.confidence", float)
    setting_option(p, ["--steps"], "fool.steps", int)
    setting_option(p, ["--amplify"], "fool.amplify", float)
    p.add_argument("--seed", type=bounded(int, 0), default=0, help="--from-noise: the noise's seed (default 0)")

    p = command("crops", cmd_crops, "natural exemplars: each unit's top (and bottom) image crops",
                "For every unit of the chosen layers, keeps the K images where it fires most (and, for signed\n"
                "layers, least), with the crop of each under the unit's receptive field. Runs add to what is\n"
                "stored (images seen before, by content, are skipped); Ctrl-C loses at most the current\n"
                "chunk (crops.chunk images), a kill at most two. The live window shows them in its crops pane.\n"
                "examples:\n  deepvis crops --images ~/photos\n"
                "  deepvis crops --images val/ clips/lab.mp4 more.txt --layers block9_add,block12_add --top 16")
    p.add_argument("--images", nargs="+", required=True, metavar="SRC",
                   help="folders (recursive), video files, text files listing paths, images")
    p.add_argument("--layers", help="a,b or all (default: every layer the network offers)")
    setting_option(p, ["--top", "-k"], "crops.top", int)
    setting_option(p, ["--side"], "crops.side", int)
    setting_option(p, ["--batch"], "crops.batch", int)
    setting_option(p, ["--every"], "crops.every", int)
    setting_option(p, ["-o", "--output"], "units.output_dir", metavar="DIR")
    p.add_argument("--strict", action="store_true", help="stop with exit code 2 at the first unreadable image")
    p.add_argument("--backprop", choices=("gradient", "guided", "deconv"),
                   help="also store, for every top crop, the same crop of its image's map by this rule (what in the "
                        "crop made the unit fire; one backward pass per unit: slow for whole networks)")

    p = command("precompute", cmd_precompute, "a whole network's unit images and crops, resumable, on one "
                "machine or a Ray cluster",
                "Plans the work as tasks (a layer's batch of units; a shard of images for crops), records each\n"
                "finished task in DIR/precompute/done/, and on a re-run does only what is missing. Results do not\n"
                "depend on the number of workers. Without --crops it makes unit images; with --crops only crops,\n"
                "unless --unit-images is given too. Ctrl-C keeps every finished task. Ray is an optional extra:\n"
                "pip install 'deepvis[cluster]'.\n"
                "examples:\n  deepvis precompute --layers block9_add,block12_add\n"
                "  deepvis precompute --unit-images --crops ~/photos --workers 2\n"
                "  deepvis precompute --layers all --unit-images --crops /shared/val --cluster ray://head:10001 "
                "-o /shared/atlas")
    p.add_argument("--layers", help="a,b or all (default: every layer the network offers)")
    p.add_argument("--units", "-u", default="all", metavar="SPEC",
                   help="units of each layer, e.g. 0-15 (default all)")
    p.add_argument("--unit-images", action="store_true", help="make unit images (the default without --crops)")
    p.add_argument("--crops", nargs="+", metavar="SRC",
                   help="also (or only) each unit's top crops from these folders, videos, lists or images")
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

    p = command("atlas", cmd_atlas, "a static site of the precomputed assets: every unit on its own page",
                "Writes SITE/index.html (the layers), SITE/<layer>/index.html (every unit's optimized image) and\n"
                "SITE/<layer>/<unit>.html (optimized image, top and bottom crops, values, neighbours), from the\n"
                "folder deepvis precompute / units / crops fill. Works from the file system; arrow keys move.\n"
                "examples:\n  deepvis atlas -o atlas/ && xdg-open atlas/index.html\n"
                "  deepvis atlas --model efficientnet_lite0 --assets /shared/atlas -o site/")
    setting_option(p, ["-o", "--output"], "atlas.output_dir", metavar="SITE_DIR")
    p.add_argument("--assets", metavar="DIR", help="the asset folder to read (default: units.output_dir, else where "
                   "deepvis precompute writes for this network)")

    p = command("live", cmd_live, "the live toolbox window: every channel of a layer, on webcam, video or images",
                "inputs: webcam, webcam:N, a video file (loops), a folder of images (cycles), one image.\n"
                f"keys (default bindings; change them under live.keys in settings.yaml; h in the window lists them):\n"
                f"{keys_help()}\n"
                "Shift with a move: bigger steps; click a tile to select it. Unit images come from `deepvis units`\n"
                "output when present, else are made on demand.\n"
                "Ctrl-C ends a headless recording and keeps it (a playable MP4 of the frames so far).\n"
                "examples:\n  deepvis live                       # the example photos\n"
                "  deepvis live --input webcam\n"
                "  deepvis live --input examples --headless --frames 5 -o shots/ --video demo.mp4")
    setting_option(p, ["--input", "-i"], "live.input")
    setting_option(p, ["--layer", "-l"], "live.layer")
    setting_option(p, ["--backprop"], "live.backprop", metavar="METHOD")
    p.add_argument("--dream", action="store_true", default=None, dest=f"{SETTING}live.dream",
                   help=describe("live.dream") + "; also in headless recordings")
    SETTING_FLAGS["live.dream"] = "--dream"
    setting_option(p, ["--dream-layers"], "live.dream_layers")
    setting_option(p, ["--dream-steps"], "live.dream_steps", int)
    p.add_argument("--unit", "-u", type=bounded(int, 0), default=0,
                   help="unit selected first in headless mode (default 0)")
    p.add_argument("--headless", action="store_true", help="render dashboards to files instead of a window "
                   "(automatic when there is no display)")
    p.add_argument("--frames", type=bounded(int, 1, 10**9), help="headless: dashboards to render, advancing the "
                   "input each time (default: one per image of a folder, else 30)")
    p.add_argument("-o", "--output", metavar="DIR", help="headless: folder for dashboard PNGs (default deepvis-live)")
    p.add_argument("--video", metavar="OUT.mp4", help="headless: also record the dashboards as an MP4")
    return parser


class ProgressAwareHandler(logging.Handler):
    """Log lines on stderr, each on its own line even while a progress bar is drawn there."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 (logging must never raise)
            self.handleError(record)


def _setup_output() -> None:
    """Messages go to stderr as 'deepvis: ...'; file names that are not valid UTF-8 print as
    escapes instead of failing."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    handler = ProgressAwareHandler()
    handler.setFormatter(logging.Formatter("deepvis: %(message)s"))
    root = logging.getLogger("toolbox")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is first imported
    _setup_output()
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except UserError as e:
        print(f"deepvis: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("deepvis: interrupted (finished work is kept)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
