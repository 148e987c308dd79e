"""deepvis as a library: the calls the commands are made of, with the settings' defaults.

Every option a command has is a keyword here with the same default (read from the settings
the network was loaded with) and the same range check, so ``size=100000`` is the same one-line
``DeepvisError`` as ``--size 100000``. Units are named as Lucid names them, ``"layer:unit"``.
The commands call these functions and then write files; nothing is computed twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from toolbox.errors import UserError
from toolbox.library.results import Circuit, Classes, Crops, Map, Picture, Result, UnitImages
from toolbox.settings import Settings, load_settings, parse_units, with_overrides

log = logging.getLogger(__name__)

DeepvisError = UserError  # what every call raises for a mistake in what it was asked (one line, as the commands say it)


@dataclass(frozen=True, eq=False)
class Net:
    """A loaded network and the settings it was loaded with (the defaults of every call on
    it). ``network`` is the toolbox's own ``Network`` (its views, shapes and fields)."""

    network: Any
    settings: Settings
    _engines: dict = field(default_factory=dict, init=False, repr=False)  # compiled once, reused by every call

    def engine(self, key: tuple, make: Callable[[], Any]) -> Any:
        """The engine object ``make`` builds for ``key`` (an Attributor, an Ascent for a layer...),
        made once: its compiled steps serve every later call, as they serve a command's run."""
        if key not in self._engines:
            self._engines[key] = make()
        return self._engines[key]

    @property
    def name(self) -> str:
        return self.network.name

    @property
    def layers(self) -> tuple[str, ...]:
        """The layers offered, input side first (the names every call takes)."""
        return tuple(self.network.spec.layer_names)

    @property
    def input_size(self) -> int:
        return self.network.spec.input_size

    @property
    def device(self) -> str:
        """Where it runs: "GPU" when TensorFlow sees one, else "CPU"."""
        import tensorflow as tf

        return "GPU" if tf.config.list_logical_devices("GPU") else "CPU"

    def unit(self, name: str) -> tuple[str, int]:
        """``"layer:unit"`` -> (the layer's name, the unit), both checked."""
        layer, sep, unit = str(name).rpartition(":")
        if not sep or not unit.strip().isdigit():
            raise UserError(f"name a unit as layer:unit (e.g. {self.layers[-1]}:3), not '{str(name)[:60]}'")
        layer = self.network.spec.layer(layer).name
        self.network.check_unit(layer, int(unit))
        return layer, int(unit)

    def fit(self, photo: np.ndarray) -> np.ndarray:
        """The photo as the network sees it (its square input, fitted as ``images.fit`` says)."""
        return self.network.fit_input(photo, self.settings.images.fit)

    def predict(self, photo: np.ndarray, top: int = 5) -> Classes:
        """The ``top`` classes of ``photo`` (RGB uint8, any size), best first.

        >>> net.predict(deepvis.read_image("examples/chelsea.png"), top=3)  # doctest: +SKIP
        """
        from toolbox.nets import Probe

        self.network.spec.require_classifier("predict")
        observation = Probe(self.network, [])(self.fit(photo))
        probs = np.asarray(observation.probs, np.float32)
        order = np.argsort(-probs)[:top]
        return Classes(tuple(self.network.labels[i] for i in order), tuple(int(i) for i in order), probs[order])

    def __repr__(self) -> str:
        return f"Net({self.name}: {len(self.layers)} layers offered, {self.input_size} px input)"


def load(model: Any = None, settings: Settings | str | Path | None = None, *, needs_classifier: str | None = None,
         **overrides: Any) -> Net:
    """A network by name (``"efficientnet_lite0"``, ``"auto"``), a spec or ``.keras``/``.h5``
    file, or a ``keras.Model`` you have in memory; ``settings`` a settings file or object
    (default: the built-in defaults); ``overrides`` top-level settings (``weights=``,
    ``preprocess=``, ``labels=``, ``cache_dir=``).

    >>> net = deepvis.load("efficientnet_lite0")  # doctest: +SKIP
    """
    from toolbox.tfstart import start_tensorflow_quietly

    base = settings if isinstance(settings, Settings) else load_settings(settings)
    start_tensorflow_quietly()
    import keras

    if isinstance(model, keras.Model):
        from toolbox.nets.keras_model import network_from_model
        from toolbox.nets.registry import overrides_of

        s = with_overrides(base, overrides, {k: f"{k}=" for k in overrides})
        network = network_from_model(model, overrides_of(s), needs_classifier)
    else:
        from toolbox.nets import load_network

        wanted = {"model": model, **overrides} if model is not None else overrides
        s = with_overrides(base, wanted, {k: f"{k}=" for k in wanted})
        network = load_network(s, needs_classifier=needs_classifier)
    from toolbox.nets.memory import check_input_fits

    check_input_fits(network)
    net = Net(network, s)
    device = net.device
    log.log(logging.INFO if device == "GPU" else logging.DEBUG, "%s runs on the %s", net.name, device)
    return net


def read_image(path: str | Path, max_pixels: int | None = None) -> np.ndarray:
    """An image file as RGB uint8 (H, W, 3), any size (refused above ``images.max_pixels``).

    >>> photo = deepvis.read_image("examples/chelsea.png")  # doctest: +SKIP
    """
    from toolbox.images import read_image as read

    return read(path, max_pixels or Settings().images.max_pixels)


def _options(net: Net, section: str, **values: Any) -> Any:
    """``net``'s settings of ``section`` with the keywords given (None: the default) laid over,
    checked as the command line's options are."""
    given = {f"{section}.{k}": v for k, v in values.items() if v is not None}
    return getattr(with_overrides(net.settings, given, {k: f"{k.partition('.')[2]}=" for k in given}), section)


def units(net: Net, layer: str, units: Sequence[int] | int | str | None = None, *, preset: str | None = None,
          size: int | None = None, steps: int | None = None, batch: int | None = None, seed: int = 0,
          folder: Any = None, progress: Callable[[int, str], Any] | None = None) -> UnitImages:
    """Optimized images of ``units`` of ``layer`` (a list, one unit, ``"3,17,40-45"`` or
    ``"all"``; default all), made as ``deepvis units`` makes them: a unit with nothing to show
    (nearly constant, never on, at its most on a plain image) gets no image, nor does one whose
    image a plain image matches; ``said`` says why. ``folder`` (a ``UnitImageFolder``) also
    stores them there as the command does; ``progress(total_steps, what)``, a context manager
    whose value has ``update(1)`` (a tqdm bar), follows the work.

    >>> deepvis.units(net, "block9_add", [3, 17])  # doctest: +SKIP
    """
    from contextlib import nullcontext

    from toolbox.assets.jobs import render_unit_images, unit_batches
    from toolbox.assets.quality import example_variation
    from toolbox.nets.memory import check_fits
    from toolbox.optvis.presets import unit_recipe

    u = _options(net, "units", preset=preset, size=size, steps=steps, batch=batch)
    spec = net.network.spec.layer(layer)
    chosen = parse_units(_unit_text(units), spec.channels)
    recipe = unit_recipe(net.network, spec.name, u.preset, u.size, u.steps)  # size and steps: the layer's own
    check_fits(net.network, recipe.size, min(u.batch, len(chosen)), "size and batch (--size, --batch)")
    variation = net.engine(("variation", spec.name), lambda: example_variation(net.network, spec.name))
    if folder is not None:
        folder.claim(net.name)  # one network's assets per folder, claimed once the layer and units are known
    flat = [unit for unit in chosen if variation[unit].flat]
    total = recipe.steps * len(unit_batches(chosen, u.batch, flat))
    made_count = len(chosen) - len(flat)
    with (progress or (lambda *_: nullcontext(None)))(total, f"{spec.name}: {made_count} units at {recipe.size} px") \
            as bar:
        ascent = net.engine(("ascent", spec.name, u.preset, recipe.size),
                            lambda: recipe.ascent(net.network, spec.name))
        made = render_unit_images(net.network, spec.name, chosen, folder, u.preset, recipe.size, recipe.steps,
                                  u.batch, seed, on_step=(lambda: bar.update(1)) if bar is not None else None,
                                  ascent=ascent, variation=variation)
    side = recipe.size
    return UnitImages(spec.name, tuple(made.units),
                      np.stack(made.images) if made.images else np.zeros((0, side, side, 3), np.uint8),
                      np.asarray(made.objectives, np.float32),
                      None if made.transparency is None or not made.images else np.stack(made.transparency),
                      {unit: record["said"] + ("; the image made earlier is kept" if record.get("kept_earlier")
                                               else "; no image") for unit, record in made.said.items()})


def _unit_text(units: Sequence[int] | int | str | None) -> str:
    if units is None:
        return "all"
    if isinstance(units, str):
        return units
    if isinstance(units, (int, np.integer)):
        return str(int(units))
    return ",".join(str(int(u)) for u in units)


def target_of(net: Net, target: str | int, unit_value: str = "max"):
    """What an attribution explains: ``"layer:unit"``, or a class by number or name."""
    from toolbox.optvis.attribution import Target
    from toolbox.outputs.attribution import class_index

    if isinstance(target, str) and ":" in target:
        return Target.unit(*net.unit(target), unit_value)
    net.network.spec.require_classifier("explaining a class")
    return Target.klass(class_index(net.network.labels, str(target)))


def attribute(net: Net, photo: np.ndarray, target: str | int, method: str | None = None, *,
              filter: str | None = None, unit_value: str | None = None, samples: int | None = None,
              noise: float | None = None, steps: int | None = None, batch: int | None = None,
              smooth_base: str | None = None, cam_layer: str | None = None, seed: int = 0) -> Map:
    """What in ``photo`` drives ``target`` (``"layer:unit"``, or a class name or number), by
    ``method`` (gradient, guided, deconv, smoothgrad, integrated, gradcam, ...), as a map at
    the photo's size.

    >>> deepvis.attribute(net, photo, "block9_add:17", method="guided")  # doctest: +SKIP
    """
    from toolbox.nets.memory import check_fits
    from toolbox.optvis.attribution import Attributor
    from toolbox.optvis.fooling import PhotoFit

    a = _options(net, "attribute", method=method, filter=filter, unit_value=unit_value, samples=samples,
                 noise=noise, steps=steps, batch=batch, smooth_base=smooth_base)
    if cam_layer and a.method != "gradcam":
        raise UserError(f"cam_layer is for method gradcam, not {a.method}")
    wanted = target_of(net, target, a.unit_value)
    attributor = net.engine(("attributor",), lambda: Attributor(net.network))
    attributor.check(wanted)
    rows = {"smoothgrad": a.samples + 1, "integrated": a.steps + 2}.get(a.method, 1)
    check_fits(net.network, net.input_size, min(a.batch, rows), "batch (--batch)")
    fitted = net.fit(photo)
    result = attributor(fitted, wanted, a.method, cam_layer=cam_layer, smooth_base=a.smooth_base,
                        samples=a.samples, noise=a.noise, steps=a.steps, batch=a.batch, seed=seed)
    shape = (*photo.shape[:2], net.input_size, net.settings.images.fit)
    fit = net.engine(("photo fit", *shape), lambda: PhotoFit(*shape))  # its resize operators, made once a size
    name = (f"{wanted.layer}:{wanted.index}" if not wanted.is_class
            else f"class {wanted.index} ({net.network.labels[wanted.index]})")
    score_is = ("score before softmax" if wanted.is_class
                else f"{wanted.value}{net.network.relu_side(wanted.layer, True)}")
    return Map(name, a.method, float(result.score), _at_photo(result, fit), photo, a.filter, score_is)


def _at_photo(result, fit):
    """``result`` (made on the network's square view) carried to the photo's pixels: a
    gradient-like map through the fit's adjoint (the exact gradient with respect to the
    photo), a CAM's heat resized onto the part of the photo the network saw."""
    from dataclasses import replace

    from toolbox.images import resize

    heat = None
    if result.heat is not None:
        y, x, h, w = fit.box
        py, px, ph, pw = fit.place
        heat = np.zeros((fit.height, fit.width), np.float32)
        heat[y:y + h, x:x + w] = resize(np.asarray(result.heat[py:py + ph, px:px + pw], np.float32), w, h)
    return replace(result, map=fit.adjoint(result.map), heat=heat)


def dream(net: Net, photo: np.ndarray, layers: str | dict[str, float] | None = None, *,
          guide: np.ndarray | None = None, octaves: int | None = None, octave_scale: float | None = None,
          steps: int | None = None, step_size: float | None = None, tile: int | None = None,
          objective: str | None = None, zoom: float | None = None, zoom_frames: int = 0,
          on_frame: Callable[[int, np.ndarray], None] | None = None, seed: int = 0,
          on_step: Callable[..., None] | None = None) -> Picture:
    """DeepDream of ``photo`` at its size: ``layers`` ("name[:weight],..." or {name: weight};
    default the network's dream layers) amplified, or with ``guide`` (an image) towards the
    guide's features. With ``zoom_frames``, that many more frames follow, each dreamed for one
    octave from the previous one zoomed in by ``zoom``: ``on_frame(k, frame)`` gets each at the
    photo's size as it is made (frame 0 is the dream itself), as `deepvis dream --zoom-frames`
    writes its video.

    >>> deepvis.dream(net, photo)  # doctest: +SKIP
    """
    from toolbox.images import resize
    from toolbox.outputs.dream import dream_frames
    from toolbox.settings import parse_layer_weights

    if zoom_frames and on_frame is None:
        raise UserError("zoom_frames= hands each frame to on_frame=(k, frame); give one (e.g. frames.append)")

    d = _options(net, "dream", octaves=octaves, octave_scale=octave_scale, steps=steps, step_size=step_size,
                 tile=tile, objective=objective, zoom=zoom, layers=layers if isinstance(layers, str) else None)
    weights = layers if isinstance(layers, dict) else parse_layer_weights(d.layers) if d.layers else None
    dreamer = None
    if guide is None:  # the objective is the layers': compiled once for them
        from toolbox.optvis import DeepDream
        from toolbox.outputs.dream import dream_objective

        dreamer = net.engine(("dreamer", tuple(sorted((weights or {}).items())), d.objective), lambda: DeepDream(
            net.network, dream_objective(net.network, weights, None, d.objective)))
    h, w = photo.shape[:2]
    first = None
    for k, frame in enumerate(dream_frames(net.network, photo, d, layers=weights, guide_image=guide, seed=seed,
                                           zoom_frames=zoom_frames, on_step=on_step, dreamer=dreamer)):
        frame = resize(frame, w, h)
        first = frame if first is None else first
        if on_frame is not None:
            on_frame(k, frame)
    return Picture("dream", first, {"octaves": d.octaves, "steps": d.steps})


def accentuate(net: Net, photo: np.ndarray, unit: str, *, size: int | None = None, steps: int | None = None,
               weight: float | None = None, seed: int = 0,
               on_step: Callable[[int], None] | None = None) -> Picture:
    """``unit`` (``"layer:unit"``) made stronger in ``photo``, which stays close (feature
    accentuation): the photo at its size with the part the network sees accentuated;
    ``values``: the unit's channel mean before its ReLU on the photo and after, the PSNR.

    >>> deepvis.accentuate(net, photo, "block9_add:17")  # doctest: +SKIP
    """
    from toolbox.nets.memory import check_fits
    from toolbox.optvis.accentuation import Accentuator
    from toolbox.optvis.fooling import PhotoFit

    layer, index = net.unit(unit)
    a = _options(net, "accentuate", size=size, steps=steps, weight=weight)
    side = a.size or net.input_size
    check_fits(net.network, side, 1, "size=")
    accentuator = net.engine(("accentuator", layer, side, a.weight), lambda: Accentuator(
        net.network, layer, side, weight=a.weight, fit=net.settings.images.fit))
    result = accentuator.accentuate(photo, index, a.steps, seed=seed, on_step=on_step)
    image = back_onto(photo, result.image, PhotoFit(*photo.shape[:2], side, net.settings.images.fit))
    return Picture(f"{layer}:{index} accentuated (its mean{net.network.relu_side(layer, True)})", image,
                   {"before": float(result.before), "after": float(result.after), "psnr": float(result.psnr)})


def back_onto(photo: np.ndarray, square: np.ndarray, fit) -> np.ndarray:
    """``photo`` with the part the network saw (``fit.box``) replaced by ``square`` (a picture
    of the network's square view, ``fit.place`` of it showing that part), at the photo's size."""
    from toolbox.images import resize

    out = np.array(photo, np.uint8, copy=True)
    y, x, h, w = fit.box
    py, px, ph, pw = fit.place
    scale = square.shape[0] / fit.size
    seen = square[round(py * scale):round((py + ph) * scale), round(px * scale):round((px + pw) * scale)]
    out[y:y + h, x:x + w] = resize(seen, w, h)
    return out


def circuit(net: Net, photos: np.ndarray | Iterable[np.ndarray], unit: str, *, source: str | None = None,
            top: int | None = None, batch: int | None = None, outputs: bool = True) -> Circuit:
    """The strongest inputs of ``unit`` (``"layer:unit"``) from ``source`` (default the offered
    layer before) and (``outputs``) its strongest outputs to the layer after, each with its
    share of all contributions, averaged over ``photos``: one photo, or several of any sizes
    (a list, or any iterable: a generator reading a folder is read ``batch`` at a time, as
    ``deepvis circuit`` reads one).

    >>> deepvis.circuit(net, photo, "block13_add:26")  # doctest: +SKIP
    """
    import itertools

    from toolbox.optvis.circuits import CircuitTracer, mean_circuit

    layer, index = net.unit(unit)
    c = _options(net, "circuit", top=top, batch=batch)
    tracer = net.engine(("tracer",), lambda: CircuitTracer(net.network))
    source = tracer.check_source(layer, source)
    target = tracer.next_layer(layer) if outputs else None
    photos = iter([photos] if isinstance(photos, np.ndarray) and photos.ndim == 3 else photos)
    rows: dict[str, list] = {"inputs": [], "outputs": [], "values": []}
    while part := [net.fit(p) for p in itertools.islice(photos, c.batch)]:
        got_in, got_out, values = tracer.both(np.stack(part).astype(np.float32), layer, [index] * len(part), source,
                                              target)
        rows["inputs"].append(got_in)
        rows["values"].append(values)
        if got_out is not None:
            rows["outputs"].append(got_out)
    if not rows["values"]:
        raise UserError("circuit: no photos to measure")
    values = np.concatenate(rows["values"])
    inputs = mean_circuit(layer, index, source, np.concatenate(rows["inputs"]), values)
    after = mean_circuit(layer, index, target, np.concatenate(rows["outputs"]), values) if rows["outputs"] else None
    return Circuit(inputs, after, c.top, inputs.contributions, net.network.relu_side(inputs.layer, True))


def crops(net: Net, source: str | Path | Sequence[str | Path], layers: str | Sequence[str], *,
          top: int | None = None, side: int | None = None, every: int | None = None, batch: int | None = None,
          folder: Any = None, on_image: Callable[[int], None] | None = None,
          on_bad: Callable[[UserError], None] | None = None) -> Crops | dict[str, Crops]:
    """Each unit's top natural-image crops over ``source`` (a folder, video, list or image, or
    several), as ``deepvis crops`` finds them: of ``layers`` (one layer: its ``Crops``; several,
    in one pass over the photos: {layer: Crops}). ``folder`` (a path) keeps them there as the
    command does, added to what it holds (else they live in a temporary folder for the call
    and are read into memory); ``on_image(n)`` as photos are looked at, ``on_bad(error)`` for
    each that cannot be read (default: skipped with a warning).

    >>> deepvis.crops(net, "examples/", "block9_add")  # doctest: +SKIP
    """
    import contextlib
    import tempfile

    from toolbox.assets.crop_job import CropJob, find_sources
    from toolbox.assets.crops import CropStore

    c = _options(net, "crops", top=top, side=side, every=every, batch=batch)
    names = [net.network.spec.layer(name).name for name in ([layers] if isinstance(layers, str) else layers)]
    many = [source] if isinstance(source, (str, Path)) else list(source)
    sources = find_sources([str(s) for s in many])
    keep = contextlib.nullcontext(str(folder)) if folder is not None else tempfile.TemporaryDirectory(
        prefix="deepvis-crops-")
    with keep as where:
        store = CropStore(where)
        job = CropJob(net.network, names, store, c.top, c.side, net.settings.images.max_pixels,
                      net.settings.images.fit)
        report = job.run(sources, c.every, c.batch, c.chunk, on_image=on_image,
                         on_bad=on_bad or (lambda e: log.warning("skipped: %s", e)))
        found = {name: Crops(name, store, report) for name in names}
        if folder is None:
            found = {name: result.held() for name, result in found.items()}
    return found[names[0]] if isinstance(layers, str) else found


def live(net: Net, source: str | Path | None = None, *, unit: int = 0, headless: bool = False,
         frames: int | None = None, output: str | Path | None = None, video: str | Path | None = None,
         serve: bool | str | None = None, on_frame: Callable[[], None] | None = None,
         on_ready: Callable[[str], None] | None = None) -> Any:
    """The live toolbox on ``source`` (a folder, image, video or ``webcam[:N]``; default the
    settings' ``live.input``, else the bundled photos): the window until it is closed, or with
    ``headless`` (or no display) ``frames`` dashboards written to ``output`` (PNGs) and/or
    ``video`` (an MP4); returns the PNGs written. With ``serve`` (True, or "[HOST:]PORT") it is a
    web page instead (``toolbox.app.serve``): in a notebook, shown inline (the server runs
    beside the kernel; the ``LivePage`` returned shows it and ``stop()`` ends it); elsewhere
    served until Ctrl-C, ``on_ready(url)`` told its address. ``source="browser"``: the page's own camera.

    >>> deepvis.live(net, "examples/", headless=True, frames=3, output="dashboards")  # doctest: +SKIP
    >>> deepvis.live(net, serve=True)  # in a notebook: the live page inline  # doctest: +SKIP
    """
    from toolbox.app.display import display_available
    from toolbox.app.live import build_live_app
    from toolbox.app.sources import StillImages, open_source

    s = net.settings
    opened = source if hasattr(source, "read") else open_source(str(source) if source is not None else s.live_input,
                                                                s.images.max_pixels)  # (or one opened already)
    app = build_live_app(net.network, s, opened)
    if serve:
        return _serve(app, "127.0.0.1:0" if serve is True else str(serve), unit, on_ready)
    if not headless:
        if display_available():
            app.run_window(unit=unit)
            return []
        log.warning("no display found (DISPLAY is not set); rendering the dashboard to files instead")
    count = frames or (len(opened.paths) if isinstance(opened, StillImages) else 30)
    out = Path(output) if output is not None else (None if video is not None else Path("deepvis-live"))
    return app.run_headless(count, out, Path(video) if video is not None else None, unit=unit, progress=on_frame)


def _serve(app: Any, address: str, unit: int, on_ready: Callable[[str], None] | None) -> Any:
    """Serve ``app``'s page: beside a running notebook kernel (a LivePage returned), else here
    until Ctrl-C."""
    import threading

    from toolbox.app.serve import LiveServer, parse_address

    server = LiveServer(app, *parse_address(address), unit=unit)
    if not _in_notebook():
        server.run(on_ready or (lambda url: log.warning("deepvis live: serving %s", url)))
        return server
    ready = threading.Event()
    thread = threading.Thread(target=server.run, kwargs={"on_ready": lambda url: ready.set()}, name="deepvis-serve",
                              daemon=True)
    thread.start()
    if not ready.wait(60):
        raise UserError("the live page did not start within 60 s")
    return LivePage(server.url, server, thread)


class LivePage:
    """The live page served beside a notebook's kernel: shown inline (an iframe of ``url``);
    ``stop()`` ends the server."""

    def __init__(self, url: str, server: Any, thread: Any) -> None:
        self.url, self._server, self._thread = url, server, thread

    def _repr_html_(self) -> str:
        import html

        return (f'<iframe src="{html.escape(self.url)}" width="1300" height="790" style="border: 0"></iframe>'
                f'<p><a href="{html.escape(self.url)}" target="_blank">open the live page in its own tab</a></p>')

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.loop.call_soon_threadsafe(self._server.stop)
            self._thread.join(30)

    def __repr__(self) -> str:
        return f"LivePage({self.url})"


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and shell.__class__.__name__ == "ZMQInteractiveShell"


__all__ = ["Circuit", "Classes", "Crops", "DeepvisError", "Map", "Net", "Picture", "Result", "UnitImages",
           "accentuate", "attribute", "circuit", "crops", "dream", "live", "load", "read_image", "units"]
