"""The atlas: every unit of a network on a stable, linkable page, as plain files.

    SITE/index.html              the layers, with how much of each is computed
    SITE/style.css, SITE/keys.js one stylesheet; the arrow keys (and o/u) move between pages
    SITE/<layer>/index.html      every unit's optimized image (lazy-loaded thumbnails)
    SITE/<layer>/<unit>.html     one unit: optimized image, top and bottom crops (and their
                                 backprop crops when stored), values, neighbours
    SITE/<layer>/img/<unit>.png  the unit's optimized image (a copy: the site stands alone)
    SITE/<layer>/crops/<unit>_{top,bottom,backprop}.png  its crops side by side

Every link is relative, so the site works from the file system (file://) and anywhere it is
copied or served. What the asset folder lacks is shown as "not computed yet". The assets are
read through their owners in ``toolbox.assets``; the site is written through
``toolbox.files`` / ``toolbox.images``.

``<layer>`` in a path or a link is the layer's name through ``names.safe_name`` (an ordinary
name as it is; one with ``<``, ``/`` or 300 characters as a short stem and a digest); the pages
show the real name, escaped. A published site holds only what the asset folder holds as
regular files inside it: a unit image that is a link (to /etc/passwd, say) is skipped with a
warning, never copied; the site's own folders are real folders, never links.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Collection, Sequence
from urllib.parse import quote

import numpy as np

from toolbox.assets.circuits import CircuitStore
from toolbox.assets.crops import CropStore
from toolbox.assets.unit_images import MAX_IMAGE_BYTES, UnitImageFolder
from toolbox.errors import UserError
from toolbox.files import atomic_write, check_output_dir, clean_stray_parts, read_inside, real_folder
from toolbox.images import write_image
from toolbox.names import safe_name
from toolbox.nets.network import relu_side

log = logging.getLogger(__name__)

STYLE = """\
body { background: #16181c; color: #dde1e6; font: 15px/1.45 system-ui, sans-serif; margin: 0 auto;
       max-width: 1100px; padding: 12px 20px 40px; }
a { color: #8cc4ff; text-decoration: none; } a:hover { text-decoration: underline; }
nav { display: flex; gap: 16px; flex-wrap: wrap; align-items: baseline; padding: 6px 0 10px;
      border-bottom: 1px solid #333a44; margin-bottom: 14px; }
nav .here { font-weight: 600; color: #fff; }
h1 { font-size: 22px; margin: 6px 0 10px; } h2 { font-size: 16px; margin: 22px 0 8px; color: #b8c0cc; }
table { border-collapse: collapse; } td, th { padding: 3px 12px 3px 0; text-align: left; }
th { color: #98a2b0; font-weight: 500; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(92px, 1fr)); gap: 8px; }
.grid a, .grid span { display: block; text-align: center; font-size: 12px; color: #aab3bf; }
.grid img, .grid .missing { width: 88px; height: 88px; display: block; margin: 0 auto 2px; border-radius: 3px; }
.missing { background: #23272e; color: #77808c; font-size: 12px; display: flex; align-items: center;
           justify-content: center; text-align: center; border: 1px dashed #3a414b; }
.unit { display: flex; gap: 28px; flex-wrap: wrap; align-items: flex-start; }
.unit .optimized { width: 256px; height: 256px; image-rendering: auto; border-radius: 4px; }
.unit .missing.big { width: 256px; height: 256px; font-size: 15px; }
.missing.row { width: 480px; height: 96px; }
.missing.nothing { color: #b9a36a; }
.strip { image-rendering: pixelated; height: 96px; border-radius: 3px; display: block; }
.values { color: #98a2b0; font-size: 12px; font-variant-numeric: tabular-nums; margin: 2px 0 0; }
.keys { color: #77808c; font-size: 12px; margin-top: 30px; }
.links { display: flex; gap: 10px; flex-wrap: wrap; margin: 4px 0 2px; }
.links a, .links span.unit { display: block; width: 76px; text-align: center; font-size: 12px; color: #aab3bf; }
.links img, .links .missing { width: 64px; height: 64px; display: block; margin: 0 auto 2px; border-radius: 3px; }
.links img.crop { object-fit: cover; object-position: left; image-rendering: pixelated; }
.links .share { font-variant-numeric: tabular-nums; } .links .up { color: #ffb070; } .links .down { color: #80b0ff; }
"""

KEYS_JS = """\
// Arrow keys move between pages like the live window: left/right the previous/next unit,
// up/down (or u/o) the previous/next layer, Escape up to the layer or the index.
document.addEventListener("keydown", function (event) {
  if (event.altKey || event.ctrlKey || event.metaKey) return;
  var go = {ArrowLeft: "left", ArrowRight: "right", ArrowUp: "up", ArrowDown: "down",
            u: "up", o: "down", Escape: "parent"}[event.key];
  var target = go && document.body.dataset[go];
  if (target) { event.preventDefault(); window.location.href = target; }
});
"""

NOT_COMPUTED = "not computed yet"
NOTHING_TO_SHOW = "nothing to show"  # a unit whose objectives entry says why it has no image


@dataclass
class AtlasReport:
    layers: int = 0
    units: int = 0  # pages
    unit_images: int = 0  # units with an optimized image
    nothing_to_show: int = 0  # units whose objectives entry says why they have none
    units_with_crops: int = 0


def _page(title: str, body: str, depth: int, links: dict[str, str]) -> bytes:
    up = "../" * depth
    data = " ".join(f'data-{k}="{html.escape(v)}"' for k, v in links.items() if v)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<title>{html.escape(title)}</title>\n<link rel="stylesheet" href="{up}style.css">\n'
            f'<script src="{up}keys.js" defer></script>\n</head>\n<body {data}>\n{body}\n'
            f'<p class="keys">keys: &larr; &rarr; previous/next unit, &uarr; &darr; (or u/o) previous/next '
            f'layer, Esc up</p>\n</body>\n</html>\n').encode()


def _href(*parts: str) -> str:
    return "/".join(quote(p) for p in parts)


def _layer_href(layer: str, *rest: str) -> str:
    """A link to a page or file in ``layer``'s folder, from a page of another layer."""
    return _href("..", safe_name(layer), *rest)


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'s' * (n != 1)}"


def _missing(text: str = NOT_COMPUTED, kind: str = "") -> str:
    return f'<div class="missing{" " + kind if kind else ""}">{text}</div>'


def _strip(crops: np.ndarray, gap: int = 2) -> np.ndarray:
    """Crops (n, S, S, 3) side by side with a dark gap."""
    n, s = crops.shape[:2]
    out = np.full((s, n * s + (n - 1) * gap, 3), 22, np.uint8)
    for i, crop in enumerate(crops):
        out[:, i * (s + gap):i * (s + gap) + s] = crop
    return out


def _publish(data: bytes, site: Path, target: Path) -> None:
    """``data`` at ``target`` in the site (left alone when it is there already, as a regular
    file: a link there is replaced, never followed)."""
    try:
        if read_inside(site, target, "site file", MAX_IMAGE_BYTES) == data:
            return
    except UserError:
        pass
    atomic_write(target, data)


class _Layer:
    """What the asset folder holds for one layer."""

    def __init__(self, name: str, channels: int, folder: UnitImageFolder, store: CropStore, index: dict,
                 model: str, ends_in_relu: bool = False) -> None:
        """``index``: the crop index when it is ``model``'s, else empty (another network's
        crops are not shown, even where its layer names are the same)."""
        self.name, self.channels = name, channels
        self.before, self.after = relu_side(ends_in_relu, True), relu_side(ends_in_relu, False)  # said of its values
        self.dir = safe_name(name)  # its folder in the site
        self.objectives = folder.objectives(model, name)
        self.images = {u for u in range(channels) if folder.has_image(name, u)}  # regular files, no links
        self.said = {u: why for u, why in folder.nothing_to_show(model, name).items() if u not in self.images}
        self.crops = store.load(name) if index else None
        self.field = index.get("layers", {}).get(name, {}).get("field")  # the crops' window (clamped)
        self.circuits = CircuitStore(folder.root).load(name, channels)

    @property
    def pages(self) -> list[int]:
        """The units that get a page: every unit when crops are stored, else those with an
        optimized image or a recorded objective; none for a layer with nothing computed."""
        if self.crops is not None:
            return list(range(self.channels))
        return sorted(self.images | {int(u) for u in self.objectives if int(u) < self.channels})


def write_atlas(model: str, layers: Sequence[tuple[str, int]], assets: str | Path, site: str | Path,
                on_layer: Callable[[int], None] | None = None,
                fields: dict[str, tuple[int, int]] | None = None, relu: Collection[str] = ()) -> AtlasReport:
    """Write the site of ``model``'s ``layers`` [(name, channels)] from the asset folder
    ``assets`` (unit images and crops) into ``site``: pages for the layers and units with
    something computed; the index lists every layer. ``fields``: {layer: (size, stride)} of
    the network's receptive fields (``Network.receptive_field``), shown on unit pages beside
    the crops' window when that is smaller (a field wider than the image); ``relu``: the layers
    that end in a ReLU (``Network.ends_in_relu``), whose numbers say which side of it they are."""
    folder, store = UnitImageFolder(assets), CropStore(assets)
    folder.check_model(model)  # before the site's folder is made
    site = check_output_dir(site)
    clean_stray_parts(site)
    index = store.index()
    if index and index.get("model") not in (None, model):
        index = {}
    looked_at = len(index.get("images", {}))
    atomic_write(site / "style.css", STYLE.encode())
    atomic_write(site / "keys.js", KEYS_JS.encode())
    report = AtlasReport()
    infos = [_Layer(name, channels, folder, store, index, model, name in relu) for name, channels in layers]
    computed = [layer for layer in infos if layer.pages]
    for li, layer in enumerate(computed):
        _write_layer(site, model, layer, li, computed, folder, store, report, (fields or {}).get(layer.name),
                     {info.name: info for info in computed})
        if on_layer is not None:
            on_layer(1)
    if on_layer is not None and len(infos) > len(computed):
        on_layer(len(infos) - len(computed))

    def name_cell(layer: _Layer) -> str:
        if not layer.pages:
            return html.escape(layer.name)
        return f'<a href="{_href(layer.dir, "index.html")}">{html.escape(layer.name)}</a>'

    rows = "".join(
        f'<tr><td>{name_cell(layer)}</td>'
        f'<td class="num">{layer.channels}</td><td class="num">{len(layer.images)} / {layer.channels}</td>'
        f'<td>{"yes" if layer.crops is not None else NOT_COMPUTED}</td></tr>\n' for layer in infos)
    rest = len(infos) - len(computed)
    body = (f'<nav><span class="here">{html.escape(model)}</span></nav>\n'
            f'<h1>{html.escape(model)}: unit atlas</h1>\n'
            f'<p>{len(infos)} layers, {sum(layer.channels for layer in infos)} units; '
            f'{report.unit_images} optimized images, crops from {looked_at} images.'
            + (f" Pages for the {len(computed)} layers with something computed; the other {rest} are listed "
               f"here, {NOT_COMPUTED} (<code>deepvis precompute --layers ...</code> makes them)." if rest else "")
            + f'</p>\n<table>\n<tr><th>layer</th><th>units</th><th>optimized images</th><th>crops</th></tr>\n'
            f'{rows}</table>')
    first = _href(computed[0].dir, "index.html") if computed else ""
    atomic_write(site / "index.html", _page(f"{model} atlas", body, 0, {"right": first, "down": first}))
    report.layers = len(computed)
    return report


def _write_layer(site: Path, model: str, layer: _Layer, li: int, computed: list[_Layer], folder: UnitImageFolder,
                 store: CropStore, report: AtlasReport, field: tuple[int, int] | None,
                 with_pages: dict[str, _Layer]) -> None:
    """The pages of one computed layer; ``computed``: the layers with pages, in order (the
    previous and next layer links skip the others), ``with_pages`` the same by name."""
    out = site / layer.dir
    real_folder(site, out / "img")  # never written through a link
    real_folder(site, out / "crops")
    prev = computed[li - 1] if li > 0 else None
    after = computed[li + 1] if li + 1 < len(computed) else None
    prev_layer, next_layer = (prev.name if prev else None), (after.name if after else None)
    pages = layer.pages
    has_page = set(pages)
    cells = []
    for unit in range(layer.channels):
        data = folder.image_bytes(layer.name, unit) if unit in layer.images else None  # confined, as has_image
        if data is None:
            layer.images.discard(unit)  # refused since it was listed: shown as missing
        if data is not None:
            _publish(data, site, out / "img" / f"{unit}.png")
            thumb = f'<img loading="lazy" src="img/{unit}.png" alt="{html.escape(layer.name)} unit {unit}">'
            report.unit_images += 1
        elif unit in layer.said:
            thumb = _missing(NOTHING_TO_SHOW, "nothing")
            report.nothing_to_show += 1
        else:
            thumb = _missing()
        hint = f' title="{html.escape(layer.said[unit])}"' if unit in layer.said else ""
        cells.append(f'<a href="{unit}.html"{hint}>{thumb}{unit}</a>' if unit in has_page
                     else f'<span{hint}>{thumb}{unit}</span>')
    for i, unit in enumerate(pages):
        _write_unit(out, model, layer, unit, pages[i - 1] if i else None, pages[i + 1] if i + 1 < len(pages) else None,
                    prev, after, store, report, field, with_pages)
    before = behind = ""
    if prev_layer:
        before = f'<a href="{_layer_href(prev_layer, "index.html")}">&larr; {html.escape(prev_layer)}</a>'
    if next_layer:
        behind = f'<a href="{_layer_href(next_layer, "index.html")}">{html.escape(next_layer)} &rarr;</a>'
    nav = (f'<nav><a href="../index.html">{html.escape(model)}</a>{before}'
           f'<span class="here">{html.escape(layer.name)}</span>{behind}</nav>')
    nothing = f", {_count(len(layer.said), 'unit')} with {NOTHING_TO_SHOW}" if layer.said else ""
    body = (f'{nav}\n<h1>{html.escape(layer.name)}</h1>\n<p>{layer.channels} units; {len(layer.images)} optimized '
            f'images{nothing}; crops: '
            f'{"stored" if layer.crops is not None else NOT_COMPUTED}.</p>\n'
            f'<div class="grid">\n' + "\n".join(cells) + "\n</div>")
    links = {"up": _layer_href(prev_layer, "index.html") if prev_layer else "",
             "down": _layer_href(next_layer, "index.html") if next_layer else "",
             "right": f"{pages[0]}.html", "parent": "../index.html"}
    atomic_write(out / "index.html", _page(f"{model} {layer.name}", body, 1, links))


def _field_rows(field: tuple[int, int] | None, window: Sequence[int] | None) -> list[tuple[str, str]]:
    """The unit's receptive field (from the network) and, when it differs, the window its
    crops show (a field wider than the image is cut to the image-sized window around it)."""
    rows = []
    if field is not None:
        rows.append(("receptive field", f"{field[0]} px, stride {field[1]}"))
    if window and (field is None or int(window[0]) != field[0]):
        note = " (the field is wider than the image: the image-sized window around the unit)" if field else ""
        rows.append(("crops show", f"{int(window[0])} px{note}"))
    return rows


def _values(values: np.ndarray) -> str:
    return " ".join(f"{v:.3g}" for v in values)


CIRCUIT_LINKS = (6, 3)  # strongest excitatory and inhibitory links listed, as the window shows them


def _circuit_sections(layer: _Layer, unit: int, store: CropStore, with_pages: dict[str, _Layer]) -> list[str]:
    """The unit's strongest inputs (from the offered layer before) and outputs (the units of
    the layer after it adds most to and takes most from), measured by ``precompute
    --circuits`` on its top-crop images; each a link to that unit's page (where it has one),
    shown by its optimized image, else its best top crop (the left end of its crops strip)."""
    stored = None if layer.circuits is None else layer.circuits.unit(layer.name, unit)
    if stored is None or stored.inputs is stored.outputs is None:  # (no layer before or after it: nothing to show)
        return ["<h2>strongest inputs and outputs</h2>" + _missing(kind="row")]
    sections = []
    for circuit, title in ((stored.inputs, "strongest inputs from {}"), (stored.outputs, "strongest outputs to {}")):
        if circuit is None:
            continue
        other = with_pages.get(circuit.source)
        pages = set(other.pages) if other is not None else set()
        cells = []
        for links, kind in ((circuit.links(CIRCUIT_LINKS[0]), "up"),
                            (circuit.links(CIRCUIT_LINKS[1], inhibitory=True), "down")):
            for link in links:
                k, name = link.unit, html.escape(circuit.source)
                if other is not None and k in other.images:
                    thumb = f'<img loading="lazy" src="{_layer_href(circuit.source, "img", f"{k}.png")}" alt="">'
                elif k in pages and other.crops is not None and len((store.unit(circuit.source, k) or ((), ()))[1]):
                    strip = _layer_href(circuit.source, "crops", f"{k}_top.png")
                    thumb = f'<img class="crop" loading="lazy" src="{strip}" alt="">'
                else:
                    thumb = _missing("no image")
                label = (f'{thumb}{k} <span class="share {kind}">{link.share:+.1%}</span>')
                hint = f'title="{name} unit {k}: contribution {link.contribution:.4g}"'
                cells.append(f'<a href="{_layer_href(circuit.source, f"{k}.html")}" {hint}>{label}</a>' if k in pages
                             else f'<span class="unit" {hint}>{label}</span>')
        sections.append(f"<h2>{title.format(html.escape(circuit.source))}</h2>"
                        f'<div class="links">{"".join(cells) or "none"}</div>')
    what = (f"activation x gradient of the unit's max{layer.before}, summed over "
            f"space, mean over its {stored.inputs.images if stored.inputs else stored.outputs.images} top images; "
            "outputs: its share in each later unit's value; orange adds, blue takes away; share: of all "
            "|contributions|")
    sections.append(f'<p class="values">{html.escape(what)}</p>')
    return sections


def _write_unit(out: Path, model: str, layer: _Layer, unit: int, prev_page: int | None, next_page: int | None,
                prev: _Layer | None, after: _Layer | None, store: CropStore, report: AtlasReport,
                field: tuple[int, int] | None, with_pages: dict[str, _Layer]) -> None:
    """One unit's page; ``prev_page`` / ``next_page``: the neighbouring units with pages in
    this layer, ``prev`` / ``after``: the neighbouring layers with pages."""
    name = layer.name
    image = (f'<img class="optimized" src="img/{unit}.png" alt="optimized image of {html.escape(name)} unit {unit}">'
             if unit in layer.images else
             _missing(f"optimized image:<br>{NOTHING_TO_SHOW}:<br>{html.escape(layer.said[unit])}", "big nothing")
             if unit in layer.said else _missing(f"optimized image:<br>{NOT_COMPUTED}", "big"))
    stats = []
    entry = layer.objectives.get(str(unit))
    if unit in layer.said:
        stats.append((NOTHING_TO_SHOW, layer.said[unit]))
    elif entry:
        stats.append(("on its image", f"mean {entry.get('objective', float('nan')):.4g}{layer.before}"))
        stats.append(("made with", f"{entry.get('preset', '?')}, {entry.get('size', '?')} px, "
                                   f"{entry.get('steps', '?')} steps"))
    sections = []
    if layer.crops is not None:
        report.units_with_crops += 1
        for side, title in (("top", "top images"), ("bottom", "bottom images (what turns it off)")):
            got = store.unit(name, unit, bottom=side == "bottom")
            if got is None:
                if side == "top":
                    sections.append(f"<h2>{title}</h2>{_missing(kind='row')}")
                continue
            crops, values = got
            if not len(crops):
                sections.append(f"<h2>{title}</h2><p>none</p>")
                continue
            write_image(out / "crops" / f"{unit}_{side}.png", _strip(crops))
            sections.append(f'<h2>{title}</h2><img class="strip" src="crops/{unit}_{side}.png" '
                            f'alt="{side} crops of {html.escape(name)} unit {unit}">'
                            f'<p class="values">values: {_values(values)}</p>')
            extreme = "min" if side == "bottom" else "max"
            stats.append((f"{side} values", f"{extreme} {values[0]:.4g} .. {values[-1]:.4g}{layer.after} "
                                            f"(mean {values.mean():.4g}, {len(values)} images)"))
            if side == "top":
                backprop = store.unit_backprop(name, unit)
                if backprop is not None and len(backprop):
                    rule = layer.crops.backprop.rule if layer.crops.backprop else "backprop"
                    write_image(out / "crops" / f"{unit}_backprop.png", _strip(backprop))
                    sections.append(f'<h2>{html.escape(rule)} backprop of the top images</h2><img class="strip" '
                                    f'src="crops/{unit}_backprop.png" alt="{html.escape(rule)} crops">')
    else:
        sections.append(f"<h2>top and bottom images</h2>{_missing(kind='row')}")
    sections += _circuit_sections(layer, unit, store, with_pages)
    stats.extend(_field_rows(field, layer.field))
    table = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in stats)
    prev_unit = f"{prev_page}.html" if prev_page is not None else ""
    next_unit = f"{next_page}.html" if next_page is not None else ""

    def other(there: _Layer | None) -> str:  # the same unit number there (or its last unit), else its index
        if there is None:
            return ""
        target = min(unit, there.channels - 1)
        return _layer_href(there.name, f"{target}.html" if target in there.pages else "index.html")

    up, down = other(prev), other(after)
    nav = (f'<nav><a href="../index.html">{html.escape(model)}</a><a href="index.html">{html.escape(name)}</a>'
           + (f'<a href="{prev_unit}" rel="prev">&larr; unit {prev_page}</a>' if prev_unit else "")
           + f'<span class="here">unit {unit}</span>'
           + (f'<a href="{next_unit}" rel="next">unit {next_page} &rarr;</a>' if next_unit else "")
           + (f'<a href="{up}">&uarr; {html.escape(prev.name)}</a>' if up else "")
           + (f'<a href="{down}">&darr; {html.escape(after.name)}</a>' if down else "") + "</nav>")
    body = (f'{nav}\n<h1>{html.escape(name)} unit {unit}</h1>\n<div class="unit"><div>{image}</div>'
            f'<div><table>{table or f"<tr><td>{NOT_COMPUTED}</td></tr>"}</table></div></div>\n' + "\n".join(sections))
    links = {"left": prev_unit, "right": next_unit, "up": up, "down": down, "parent": "index.html"}
    atomic_write(out / f"{unit}.html", _page(f"{model} {name} unit {unit}", body, 1, links))
    report.units += 1
