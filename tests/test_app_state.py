"""The live window's logic without TensorFlow: state, keys, grid geometry, drawing, sources."""

import subprocess
import sys
from dataclasses import dataclass, replace

import numpy as np
import pytest

from toolbox.app.keys import SHIFT_CODES, SPECIAL_CODES, Action
from toolbox.app.layout import GRID, HEIGHT, WIDTH, grid_geometry
from toolbox.app.modes import apply, key_map
from toolbox.app.state import BACKPROP_FILTERS, BACKPROP_MODES, ZOOM_MODES, ViewState, select
from toolbox.errors import UserError

CHANNELS = (16, 112, 1280)


def test_app_modules_do_not_import_tensorflow():
    code = ("import sys; import toolbox.app.state, toolbox.app.keys, toolbox.app.dashboard, toolbox.app.sources; "
            "print('tensorflow' in sys.modules or 'keras' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_layers_cycle_and_unit_stays_in_range():
    s = ViewState(layer=1, unit=100)
    s = apply(s, Action.PREV_LAYER, CHANNELS)
    assert (s.layer, s.unit) == (0, 15)
    s = apply(apply(s, Action.PREV_LAYER, CHANNELS), Action.NEXT_LAYER, CHANNELS)
    assert s.layer == 0
    assert apply(ViewState(layer=2), Action.NEXT_LAYER, CHANNELS).layer == 0


def test_moves_follow_the_grid_and_clamp():
    cols = grid_geometry(112).cols
    s = ViewState(layer=1, unit=20)
    assert apply(s, Action.RIGHT, CHANNELS).unit == 21
    assert apply(s, Action.DOWN, CHANNELS).unit == 20 + cols
    assert apply(s, Action.UP, CHANNELS).unit == 20 - cols
    assert apply(s, Action.LEFT, CHANNELS, steps=5).unit == 15
    assert apply(ViewState(layer=1, unit=0), Action.UP, CHANNELS).unit == 0
    assert apply(ViewState(layer=1, unit=111), Action.RIGHT, CHANNELS, steps=5).unit == 111


def test_toggles():
    s = ViewState()
    assert apply(s, Action.PAUSE, CHANNELS).paused and apply(s, Action.HELP, CHANNELS).help
    assert apply(s, Action.SWITCH_SOURCE, CHANNELS).camera and apply(s, Action.QUIT, CHANNELS).quit
    zooms = [s.zoom_mode]
    for _ in ZOOM_MODES:
        s = apply(s, Action.ZOOM, CHANNELS)
        zooms.append(s.zoom_mode)
    assert zooms == [*ZOOM_MODES, ZOOM_MODES[0]]
    assert apply(ViewState(), Action.NEXT_IMAGE, CHANNELS) == ViewState()
    assert select(ViewState(), 7).unit == 7


def test_backprop_keys_cycle_method_and_filter_and_freeze_the_unit():
    s, modes = ViewState(), []
    for _ in BACKPROP_MODES:
        s = apply(s, "backprop", CHANNELS)
        modes.append(s.backprop_mode)
    assert modes == ["gradient", "guided", "deconv", "off"]
    s, filters = ViewState(), []
    for _ in BACKPROP_FILTERS:
        s = apply(s, "backprop_filter", CHANNELS)
        filters.append(s.backprop_filter_name)
    assert filters == ["gray", "norm", "norm-blur", "raw"]
    selected = ViewState(layer=1, unit=7, backprop=2)
    assert selected.explained == (1, 7) and selected.frozen is None
    frozen = apply(selected, "freeze_backprop", CHANNELS)
    browsed = apply(apply(frozen, Action.NEXT_LAYER, CHANNELS), Action.RIGHT, CHANNELS)
    assert (browsed.layer, browsed.unit) == (2, 8) and browsed.explained == (1, 7)  # the pane keeps its unit
    thawed = apply(browsed, "freeze_backprop", CHANNELS)
    assert thawed.frozen is None and thawed.explained == (2, 8)
    keys = key_map({})
    assert [keys.lookup(ord(k)) for k in "bnd"] == [("backprop", False), ("backprop_filter", False),
                                                   ("freeze_backprop", False)]


def test_keymap_defaults_shift_and_remapping():
    keys = key_map({})
    assert keys.lookup(ord("o")) == (Action.NEXT_LAYER, False)
    assert keys.lookup(SPECIAL_CODES["right"]) == (Action.RIGHT, False)
    assert keys.lookup(ord("L")) == (Action.RIGHT, True)
    assert keys.lookup(SHIFT_CODES[0]) is None
    assert keys.lookup(SPECIAL_CODES["down"]) == (Action.DOWN, True)  # Shift, then an arrow
    assert keys.lookup(SPECIAL_CODES["down"]) == (Action.DOWN, False)
    assert keys.lookup(27) == (Action.QUIT, False) and keys.lookup(ord("y")) is None
    remapped = key_map({"quit": ["y"]})
    assert remapped.lookup(ord("y")) == (Action.QUIT, False) and remapped.lookup(ord("q")) is None
    with pytest.raises(UserError, match="key 'x' is bound to both quit and accentuate"):
        key_map({"quit": ["x"]})  # x is accentuate's: rebind that too
    with pytest.raises(UserError, match=r"key 'I' \(Shift\+i, up\) is bound to both next_layer and up"):
        key_map({"next_layer": ["I"]})  # I is up's big step
    assert key_map({"quit": ["x"], "accentuate": ["y"]}).lookup(ord("x")) == (Action.QUIT, False)
    from toolbox.app.modes import MODE_ACTIONS

    assert len(keys.help_lines()) == len(Action) + len(MODE_ACTIONS)  # the window's and every mode's
    with pytest.raises(UserError, match="did you mean: quit"):
        key_map({"quitt": ["x"]})
    with pytest.raises(UserError, match="unknown key name 'lefty'"):
        key_map({"left": ["lefty"]})


def test_wide_layers_page_and_every_unit_is_reachable_by_click():
    for channels in (16, 112, 1280, 2048, 8000):
        geo = grid_geometry(channels)
        assert geo.per_page * geo.pages >= channels and geo.tile >= 6
        assert geo.cols * geo.tile <= GRID.w and geo.rows * geo.tile <= GRID.h
        for unit in {0, channels // 2, channels - 1}:
            row, col = geo.cell(unit)
            x, y = GRID.x + col * geo.tile + geo.tile // 2, GRID.y + row * geo.tile + geo.tile // 2
            assert geo.unit_at(x, y, geo.page_of(unit)) == unit
    assert grid_geometry(8000).pages == 2
    assert grid_geometry(112).unit_at(0, 0, 0) is None


@dataclass(frozen=True)
class FakeObservation:
    activations: dict
    probs: np.ndarray


def _view(state, acts, unit_image=None, unit_image_note="made when the selection rests", crops=None, patterns=None,
          backprop=None, gradient=None, **kw):
    """A dashboard's view as the window makes it: each active mode with its pane's data."""
    from toolbox.app.dashboard import DashboardView
    from toolbox.app.modes import MODES
    from toolbox.app.modes.gradient import GradientView
    from toolbox.app.modes.unit_image import UnitPanes
    from toolbox.app.protocol import Hints

    frame = np.full((224, 224, 3), 90, np.uint8)
    frame[50:100, 60:120] = 250
    data = {"gradient": GradientView(backprop, gradient), "patterns": patterns,
            "unit_image": UnitPanes("optimized image", unit_image, unit_image_note, crops, state.lowest)}
    defaults = dict(state=state, network="net", layers=("a", "b"), channels=(acts["a"].shape[-1], 3),
                    frame=frame, observation=FakeObservation(acts, np.array([0.7, 0.3])),
                    top=(("cat", 0.7), ("dog", 0.3)), receptive_field=(40, 8), net_fps=30.0, ui_fps=60.0,
                    source="x.png (1/1)", help_lines=(("q", "quit"),), hints=Hints(key_map({}).hints()),
                    modes=tuple((mode, data.get(mode.name)) for mode in MODES if mode.active(state)))
    defaults.update(kw)
    return DashboardView(**defaults)


def test_dashboard_draws_every_pane_and_reacts_to_state():
    from toolbox.app import layout as L
    from toolbox.app.dashboard import draw_dashboard

    rng = np.random.default_rng(0)
    acts = {"a": rng.normal(size=(7, 7, 40)).astype(np.float32), "b": np.zeros((7, 7, 3), np.float32)}
    base = draw_dashboard(_view(ViewState(), acts))
    assert base.shape == (HEIGHT, WIDTH, 3) and base.dtype == np.uint8

    def region(img, r):
        return img[r.y:r.y + r.h, r.x:r.x + r.w].astype(int)

    moved = draw_dashboard(_view(ViewState(unit=5), acts))
    assert np.abs(region(moved, L.GRID) - region(base, L.GRID)).sum() > 0  # the highlight moved
    assert np.abs(region(moved, L.UNIT) - region(base, L.UNIT)).sum() > 0  # another unit enlarged
    helped = draw_dashboard(_view(ViewState(help=True), acts))
    assert np.abs(helped.astype(int) - base).mean() > 1
    for zoom in range(len(ZOOM_MODES)):
        draw_dashboard(_view(ViewState(zoom=zoom), acts))
    with_image = draw_dashboard(_view(ViewState(), acts, unit_image=np.full((96, 96, 3), 200, np.uint8)))
    assert (region(with_image, L.UNIT_IMAGE) == 200).mean() > 0.9
    waiting = draw_dashboard(_view(ViewState(), acts, frame=None, observation=None, top=()))
    assert waiting.shape == base.shape
    dead = draw_dashboard(_view(ViewState(layer=1), acts))  # an all-zero layer draws without error
    assert dead.shape == base.shape


def test_classes_pane_of_a_network_without_a_classifier_says_features_only():
    from toolbox.app import layout as L
    from toolbox.app.dashboard import draw_dashboard

    acts = {"a": np.ones((7, 7, 4), np.float32), "b": np.zeros((7, 7, 3), np.float32)}
    pane = (slice(L.CLASSES.y, L.CLASSES.y + L.CLASSES.h), slice(L.CLASSES.x, L.CLASSES.x + L.CLASSES.w))
    no_classes = _view(ViewState(), acts, observation=FakeObservation(acts, np.zeros(0)), top=())
    empty = draw_dashboard(no_classes)[pane]
    features = draw_dashboard(replace(no_classes, classifier=False))[pane]
    assert np.abs(features.astype(int) - empty).sum() > 0  # the pane says so, it is not just empty


def test_activation_grid_pages_wide_layers():
    from toolbox.app.dashboard import activation_grid

    acts = np.random.default_rng(1).normal(size=(4, 4, 8000)).astype(np.float32)
    first, last = activation_grid(acts, 0), activation_grid(acts, 7999)
    assert first.shape == last.shape == (GRID.h, GRID.w, 3)
    assert not np.array_equal(first, last)


def test_sources(tmp_path):
    from toolbox.app.sources import StillImages, VideoFile, open_source
    from toolbox.images import VideoWriter, write_image

    for i in range(3):
        write_image(tmp_path / f"{i}.png", np.full((20, 30, 3), 80 * i, np.uint8))
    folder = open_source(str(tmp_path))
    assert isinstance(folder, StillImages) and folder.read()[0, 0, 0] == 0
    folder.step(-1)
    assert folder.read()[0, 0, 0] == 160 and "3/3" in folder.label
    with VideoWriter(tmp_path / "v.mp4", fps=5) as v:
        for i in range(4):
            v.write(np.full((32, 32, 3), 60 * i, np.uint8))
    video = open_source(str(tmp_path / "v.mp4"))
    assert isinstance(video, VideoFile)
    levels = [int(video.read().mean()) for _ in range(6)]  # loops after 4 frames
    assert abs(levels[4] - levels[0]) < 10 and levels[1] > levels[0] + 30
    with pytest.raises(UserError, match="no camera at webcam:97"):
        open_source("webcam:97")
    with pytest.raises(UserError, match="not found"):
        open_source(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images"):
        open_source(str(tmp_path / "empty"))


def test_grid_scale_modes_and_signed_layers():
    from toolbox.app.dashboard import grid_levels

    acts = np.zeros((2, 2, 3), np.float32)
    acts[..., 0] = [[0.0, 1.0], [2.0, 4.0]]  # a strong unit
    acts[..., 1] = [[0.0, 0.1], [0.2, 0.4]]  # a weak one
    acts[..., 2] = [[0.0, 0.0], [0.0, 1e-5]]  # a dead one (numerical dust)
    per_channel = grid_levels(acts, "channel", signed=False)
    assert per_channel[0].max() == per_channel[1].max() == 255  # each on its own scale: alike
    assert per_channel[2].max() < 5  # but a dead unit stays dark, not its dust amplified
    assert per_channel[0, 0, 0] == per_channel[1, 0, 0] == 1  # zero is always the same level
    layer = grid_levels(acts, "layer", signed=False)
    assert layer[0].max() == 255 and layer[1].max() < 40  # one scale: the strong unit stands out
    gamma = grid_levels(acts, "gamma", signed=False)
    assert layer[1].max() < gamma[1].max() < 255  # weak values lifted
    signed = grid_levels(acts - 2.0, "layer", signed=True)
    assert signed[0, 1, 1] > 128 and signed[0, 0, 0] < 128  # zero is 128: above positive, below negative
    assert signed.min() >= 1  # 0 stays the gap between tiles


def test_grid_tiles_are_apart_and_signed_layers_use_two_hues():
    """Issue 21: a dense signed layer read as TV static: tiles ran together and both signs
    looked purple. Now a gap of its own colour runs between tiles, and positive and negative
    values are told apart by hue (red, blue) with zero white."""
    from toolbox.app.dashboard import GAP, SIGNED_LUT, activation_grid, gap_of

    rng = np.random.default_rng(0)
    acts = rng.normal(size=(14, 14, 112)).astype(np.float32)
    grid = activation_grid(acts, 5, signed=True)
    geo = grid_geometry(112)
    t = geo.tile
    gap = gap_of(t)
    assert gap >= 2  # 112 channels: tiles of about 40 px, a gap a viewer sees
    for col in range(1, geo.cols):  # the columns between tiles (away from the selected outline)
        band = grid[2 * t:3 * t - gap, col * t - gap:col * t]
        assert (band == GAP).all(), col
    lut = SIGNED_LUT[:, 0].astype(int)
    assert (lut[128] > 230).all()  # zero: white
    assert lut[255, 0] > lut[255, 2] + 80 and lut[1, 2] > lut[1, 0] + 80  # positive red, negative blue
    assert lut[160, 0] > lut[160, 2] + 20 and lut[96, 2] > lut[96, 0] + 20  # even for small values
    positive = activation_grid(np.abs(acts), 5, signed=True)
    negative = activation_grid(-np.abs(acts), 5, signed=True)
    tile = (slice(0, t - gap), slice(0, t - gap))
    assert positive[tile][..., 0].mean() > positive[tile][..., 2].mean() + 20
    assert negative[tile][..., 2].mean() > negative[tile][..., 0].mean() + 20


def test_live_window_opens_on_a_layer_that_reads_at_a_glance():
    """lite0's dream layer (block9_add) is signed and dense; the window opens on the
    non-negative, sparse block9_dw_relu named by the spec's live_layer instead. A spec without
    one opens on its first dream layer."""
    from toolbox.nets import load_spec
    from toolbox.settings import bundled

    models = bundled("models")
    assert load_spec("efficientnet_lite0", models).first_live_layer == "block9_dw_relu"
    assert load_spec("efficientnet_lite2", models).first_live_layer == "block13_dw_relu"
    inception = load_spec("inception_v3", models)
    assert inception.live_layer is None and inception.first_live_layer == inception.dream_layers[0][0]


def test_crops_pane_and_pattern_mode_are_drawn():
    from toolbox.app import layout as L
    from toolbox.app.dashboard import draw_dashboard
    from toolbox.app.modes.unit_image import UnitCrops

    rng = np.random.default_rng(0)
    acts = {"a": rng.normal(size=(7, 7, 40)).astype(np.float32), "b": np.zeros((7, 7, 3), np.float32)}

    def region(img, r):
        return img[r.y:r.y + r.h, r.x:r.x + r.w].astype(int)

    top = (np.full((9, 24, 24, 3), 230, np.uint8), np.arange(9, 0, -1, dtype=np.float32))
    low = (np.full((4, 24, 24, 3), 40, np.uint8), -np.arange(1, 5, dtype=np.float32))
    crops = UnitCrops("a", 0, top, low)
    none = draw_dashboard(_view(ViewState(), acts))
    shown = draw_dashboard(_view(ViewState(), acts, crops=crops))
    assert (region(shown, L.CROPS) == 230).mean() > 0.3 and (region(none, L.CROPS) == 230).mean() == 0
    lowest = draw_dashboard(_view(ViewState(lowest=True), acts, crops=crops))
    assert (region(lowest, L.CROPS) == 40).mean() > 0.05 and (region(lowest, L.CROPS) == 230).mean() == 0
    images = {u: np.full((48, 48, 3), 200, np.uint8) for u in range(0, 40, 2)}  # every other unit has one
    pattern = draw_dashboard(_view(ViewState(pattern=True), acts, patterns=images))
    grid = region(pattern, L.GRID)
    assert (grid == 200).mean() > 0.2
    normal = draw_dashboard(_view(ViewState(), acts))
    assert (region(normal, L.GRID) == 200).mean() < 0.01


def test_gradient_pane_shows_the_map_or_says_why_not():
    from toolbox.app import layout as L
    from toolbox.app.dashboard import ACCENT, draw_dashboard
    from toolbox.app.modes.gradient import BackpropRequest, GradientImage

    acts = {"a": np.random.default_rng(0).normal(size=(7, 7, 40)).astype(np.float32),
            "b": np.zeros((7, 7, 3), np.float32)}

    def region(img, r):
        return img[r.y:r.y + r.h, r.x:r.x + r.w].astype(int)

    want = BackpropRequest("a", 0, "guided", "norm")
    gradient = GradientImage(want, np.full((224, 224, 3), 210, np.uint8), 1.5)
    on = ViewState(backprop=BACKPROP_MODES.index("guided"), backprop_filter=BACKPROP_FILTERS.index("norm"))
    off = draw_dashboard(_view(ViewState(), acts, gradient=gradient))  # a map left from before: not shown
    waiting = draw_dashboard(_view(on, acts, backprop=want))
    shown = draw_dashboard(_view(on, acts, backprop=want, gradient=gradient))
    assert (region(shown, L.GRADIENT) == 210).all(axis=-1).mean() > 0.95
    assert (region(off, L.GRADIENT) == 210).all(axis=-1).mean() == 0
    assert (region(waiting, L.GRADIENT) == 210).all(axis=-1).mean() == 0
    assert np.abs(region(off, L.GRADIENT) - region(waiting, L.GRADIENT)).sum() > 0  # each says why
    info = L.Rect(L.GRADIENT_INFO.x, L.GRADIENT_INFO.y, L.GRADIENT_INFO.w, L.GRADIENT_INFO.h)
    assert np.abs(region(shown, info) - region(off, info)).sum() > 0  # the score and the filter under the map
    title = L.Rect(L.GRADIENT.x, L.GRADIENT.y - 22, L.GRADIENT.w, 20)
    frozen = draw_dashboard(_view(replace(on, frozen=(0, 0)), acts, backprop=want, gradient=gradient))
    assert (region(frozen, title) == ACCENT).all(axis=-1).any() and not (region(shown, title) == ACCENT).all(
        axis=-1).any()
    long = BackpropRequest("a_very_long_layer_name_indeed", 1279, "gradient", "norm-blur")
    wide = draw_dashboard(_view(replace(on, frozen=(0, 0)), acts, backprop=long,
                                gradient=GradientImage(long, gradient.image, 1.5)))
    beyond = L.Rect(L.NOTES.x, L.GRADIENT.y - 22, 20, 20)
    assert np.abs(region(wide, beyond) - region(shown, beyond)).sum() == 0  # a long title shrinks to fit


def test_every_hint_on_screen_is_written_from_the_keys_bound(monkeypatch):
    """Rebind every key a hint names; each pane, the status line and the help overlay then name
    the new keys, and no default letter is left in a hint."""
    import cv2

    from toolbox.app.dashboard import draw_dashboard
    from toolbox.app.modes import MODES
    from toolbox.app.modes.circuit import CircuitInputs, CircuitRequest, CircuitView
    from toolbox.app.modes.gradient import BackpropRequest, GradientImage, GradientView
    from toolbox.app.modes.unit_image import UnitCrops, UnitPanes
    from toolbox.app.protocol import Hints
    from toolbox.optvis.circuits import Link

    rebound = {"scale": ["1"], "pattern": ["2"], "crops_side": ["3"], "backprop": ["4"], "backprop_filter": ["5"],
               "freeze_backprop": ["6"], "circuit": ["7"], "circuit_from": ["8"], "circuit_next": ["9"],
               "circuit_jump": ["space"], "circuit_back": ["0"], "next_layer": ["["], "prev_layer": ["]"],
               "help": ["?"], "zoom": ["/"], "pause": ["p"]}
    keymap = key_map(rebound)
    drawn: list[str] = []
    real = cv2.putText
    monkeypatch.setattr(cv2, "putText", lambda img, s, *a, **k: (drawn.append(s), real(img, s, *a, **k))[1])
    acts = {"a": np.random.default_rng(0).normal(size=(7, 7, 40)).astype(np.float32),
            "b": np.zeros((7, 7, 3), np.float32)}
    want = BackpropRequest("a", 0, "guided", "norm")
    circuit = CircuitRequest("b", 1, "a")
    data = {"gradient": GradientView(want, GradientImage(want, np.zeros((224, 224, 3), np.uint8), 1.0)),
            "unit_image": UnitPanes("optimized image", None, "", UnitCrops("a", 0, None, None), False),
            "circuit": CircuitView(circuit, CircuitInputs(circuit, 1.0, (Link(5, 2.0, 0.5),), 1, (None,))),
            "patterns": {}}
    off = GradientView(None, None)
    for state, extra in ((ViewState(backprop=2, help=True), {}), (ViewState(backprop=2, circuit=True, layer=1), {}),
                         (ViewState(pattern=True), {"gradient": off})):
        modes = tuple((m, {**data, **extra}.get(m.name)) for m in MODES if m.active(state))
        draw_dashboard(_view(state, acts, hints=Hints(keymap.hints()), help_lines=tuple(keymap.help_lines()),
                             modes=modes))
    screen = "\n".join(drawn)
    for hint in ("scale: channel (1)", "(2: activations)", "(3: lowest)", "gradient image: off (4)",
                 "4 method, 5 filter, 6 freeze", "9 next, Space go, 0 back", "8 from further back, 7 crops",
                 "layers ([ / ])", "?: help", "(map, /)"):
        assert hint in screen, hint
    for default in ("(a)", "(p:", "(t:", "off (b)", "b method", "Tab next", "f from", "(o / u)", "h: help"):
        assert default not in screen, default
    overlay = set(zip(drawn, drawn[1:]))  # the help overlay draws each action's keys, then what it does
    assert ("4", "gradient pane: off / gradient / guided / deconv") in overlay
    assert ("Space", "circuit: go to the highlighted input (or click it)") in overlay


def test_a_click_on_the_layer_list_picks_that_layer():
    from toolbox.app import layout as L

    channels = tuple(range(8, 8 + 40))  # 40 layers: more than the list shows
    shown = L.layer_rows(20, len(channels))
    assert 20 in shown and len(shown) == L.LAYERS.h // L.LAYER_ROW
    for i, layer in enumerate(shown):  # the middle of each drawn line picks its layer
        assert L.layer_at(L.LAYERS.x + 30, L.LAYERS.y + 12 + i * L.LAYER_ROW - 5, 20, len(channels)) == layer
    assert L.layer_at(L.GRID.x + 5, L.GRID.y + 5, 20, len(channels)) is None
