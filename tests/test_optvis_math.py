"""The engine's math on hand-made tensors and a tiny 8x8 model: fast and exact."""

import numpy as np
import pytest
import tensorflow as tf

from toolbox.optvis import (Ascent, Context, DeepDream, DreamSchedule, channel, class_logit, deepdream, diversity,
                            get_preset, guide, neuron, total_variation)
from toolbox.optvis.dream import octave_sizes, tile_edges
from toolbox.optvis.params import fourier, maco, natural_magnitude, pixels
from toolbox.optvis.transforms import (affine, compose, crops, jitter, keep_size, noise, pad, rotate, scale, standard,
                                       standard_affine)
from toolbox.optvis.updates import NAdam, gaussian_blur

RNG = np.random.default_rng(0)


def ctx(units=(0, 1)):
    a = tf.constant(RNG.normal(size=(2, 4, 5, 3)), tf.float32)
    b = tf.constant(RNG.normal(size=(2, 3, 3, 6)), tf.float32)
    images = tf.constant(RNG.uniform(size=(2, 8, 8, 3)), tf.float32)
    return Context({"a": a, "b": b}, images, tf.constant(units, tf.int32)), a.numpy(), b.numpy()


def test_objectives_compose_like_numbers():
    c, a, b = ctx()
    obj = 0.5 * channel("a", 2) - neuron("b", 1) + 3.0
    expected = 0.5 * a[..., 2].mean(axis=(1, 2)) - b[:, 1, 1, 1] + 3.0
    np.testing.assert_allclose(obj(c).numpy(), expected, rtol=1e-5)
    assert obj.layers == {"a", "b"}
    summed = type(obj).sum([channel("a", 0), channel("a", 1)])
    np.testing.assert_allclose(summed(c).numpy(), a[..., :2].mean(axis=(1, 2)).sum(-1), rtol=1e-5)


def test_unit_none_means_each_rows_own_unit():
    c, a, _ = ctx(units=(2, 0))
    np.testing.assert_allclose(channel("a")(c).numpy(), [a[0, ..., 2].mean(), a[1, ..., 0].mean()], rtol=1e-5)


def test_deepdream_guide_diversity_tv():
    c, a, b = ctx()
    dd = deepdream({"a": 1.0, "b": 0.5})(c).numpy()
    np.testing.assert_allclose(dd, (a ** 2).mean(axis=(1, 2, 3)) + 0.5 * (b ** 2).mean(axis=(1, 2, 3)), rtol=1e-5)
    g = RNG.normal(size=(2, 2, 3)).astype(np.float32)
    flat = a.reshape(2, -1, 3)
    expected = (flat @ g.reshape(-1, 3).T).max(-1).mean(-1)
    np.testing.assert_allclose(guide("a", g)(c).numpy(), expected, rtol=1e-5)
    same = Context({"a": tf.tile(c.acts["a"][:1], [3, 1, 1, 1])}, c.images, c.units)
    np.testing.assert_allclose(diversity("a")(same).numpy(), [-1, -1, -1], atol=1e-5)
    flat_image = Context({}, tf.fill([1, 8, 8, 3], 0.3), c.units)
    assert total_variation(-1.0)(flat_image).numpy()[0] == 0.0
    assert total_variation(-1.0)(c).numpy()[0] < 0


def test_class_logit_reads_pre_softmax_scores(tiny):
    from toolbox.nets.network import LOGITS

    x = RNG.uniform(0, 1, (1, 8, 8, 3)).astype(np.float32)
    view = tiny.view([LOGITS], with_probs=True)
    out = view(x)
    np.testing.assert_allclose(tf.nn.softmax(out[LOGITS]).numpy(), out["probs"].numpy(), atol=1e-6)
    c = Context({LOGITS: out[LOGITS]}, tf.constant(x), tf.zeros([1], tf.int32))
    assert class_logit(2)(c).numpy()[0] == pytest.approx(float(out[LOGITS][0, 2]))


@pytest.mark.parametrize("param", [pixels(), fourier(), maco()])
def test_params_make_valid_images_of_any_size(param):
    for size in (8, 13):
        values = tf.constant(param.init(2, size, np.random.default_rng(0)))
        images = param.to_image(values, tf.constant(size)).numpy()
        assert images.shape == (2, size, size, 3) and images.min() >= 0 and images.max() <= 1


def test_transforms_are_seeded_and_shape_correct():
    images = tf.constant(RNG.uniform(size=(2, 16, 16, 3)), tf.float32)
    seed = tf.constant([1, 2])
    assert pad(3)(images, seed).shape == (2, 22, 22, 3)
    assert jitter(4)(images, seed).shape == (2, 12, 12, 3)
    assert scale([2.0])(images, seed).shape == (2, 32, 32, 3)
    np.testing.assert_allclose(rotate(0.0)(images, seed).numpy(), images.numpy(), atol=1e-5)
    t = standard()
    np.testing.assert_array_equal(t(images, seed).numpy(), t(images, seed).numpy())
    assert not np.array_equal(t(images, seed).numpy(), t(images, tf.constant([3, 4])).numpy())
    assert compose([])(images, seed) is images


def test_keep_size_and_affine_give_the_size_asked():
    images = tf.constant(RNG.uniform(size=(2, 16, 16, 3)), tf.float32)
    seed = tf.constant([1, 2])
    assert keep_size(compose([pad(5), scale([1.3])]))(images, seed).shape == (2, 16, 16, 3)
    small = keep_size(scale([0.5]))(images, seed).numpy()  # smaller: padded with mid-grey
    assert small.shape == (2, 16, 16, 3) and (small[:, 0] == 0.5).all() and (small[:, 4:12, 4:12] != 0.5).any()
    np.testing.assert_array_equal(keep_size(pad(4))(images, seed).numpy(), images.numpy())  # the centre is the image
    np.testing.assert_allclose(affine(0.0, (1.0, 1.0), 0.0)(images, seed).numpy(), images.numpy(), atol=1e-5)
    t = standard_affine()
    out = t(tf.concat([images[:1], images[:1]], 0), seed).numpy()
    assert out.shape == (2, 16, 16, 3) and not np.array_equal(out[0], out[1])  # each row its own draw
    np.testing.assert_array_equal(out, t(tf.concat([images[:1], images[:1]], 0), seed).numpy())
    # a zoom of 2 about the centre halves the slope of a ramp
    ramp = tf.tile(tf.range(16, dtype=tf.float32)[None, None, :, None], [1, 16, 1, 3]) / 16
    zoomed = affine(0.0, (2.0, 2.0), 0.0)(ramp, seed).numpy()
    np.testing.assert_allclose(np.diff(zoomed[0, 8, 4:12, 0]), 0.5 / 16, atol=1e-5)


def test_maco_crops_and_noise():
    images = tf.constant(RNG.uniform(size=(3, 20, 20, 3)), tf.float32)
    seed = tf.constant([5, 6])
    assert crops(0.2, 0.5, 0.5)(images, seed).shape == (3, 10, 10, 3)
    whole = crops(1.0, 1.0, 1.0)(images, seed).numpy()  # a crop of the whole image is the image
    np.testing.assert_allclose(whole, images.numpy(), atol=1e-5)
    noisy = noise(0.1)(tf.zeros([2, 64, 64, 3]), seed).numpy()
    assert 0.09 < noisy.std() < 0.11 and abs(noisy.mean()) < 0.01


def test_maco_param_keeps_its_magnitude():
    """Whatever the phases, the image's spectrum (in the decorrelated colours, before the
    squashing) has the natural magnitude: only the phase is free."""
    from toolbox.optvis.params import COLOR_MIX

    param, size = maco(), 16
    magnitude = natural_magnitude(tf.constant(size)).numpy()
    for seed in (0, 1):
        phases = param.init(2, size, np.random.default_rng(seed))
        images = param.to_image(tf.constant(phases), tf.constant(size)).numpy()
        logits = np.log(images / (1 - images)) @ np.linalg.inv(COLOR_MIX).T
        spectrum = np.abs(np.fft.rfft2(np.moveaxis(logits, -1, 1)))
        # the bins irfft2d keeps whole (a real image drops the imaginary part at 0 and size / 2)
        inner = np.s_[..., 1:size // 2]
        np.testing.assert_allclose(spectrum[inner], np.broadcast_to(magnitude, spectrum.shape)[inner], rtol=2e-3)


def test_natural_magnitude_follows_the_size():
    """The same frequency in cycles per pixel gets a magnitude in proportion to the side:
    images of every size get the photos' contrast."""
    small, large = natural_magnitude(tf.constant(32)).numpy(), natural_magnitude(tf.constant(64)).numpy()
    np.testing.assert_allclose(large[:, 4, 8] / small[:, 2, 4], 2.0, rtol=1e-4)  # f = (1/16, 1/8)
    assert (small > 0).all() and small[:, 0, 0].min() > small[:, 0, 1:].max()  # the mean dominates


def test_nadam_ascends_a_quadratic():
    rule, x = NAdam(lr=0.1), tf.constant([3.0, -2.0])
    m = v = tf.zeros_like(x)
    for t in range(1, 200):
        x, m, v = rule.apply(x, -2 * x, m, v, tf.constant(t))  # the gradient of -|x|^2
    assert np.abs(x.numpy()).max() < 0.2


def test_gaussian_blur_keeps_constants_and_smooths_noise():
    const = tf.fill([1, 10, 10, 3], 0.25)
    np.testing.assert_allclose(gaussian_blur(const, 1.0).numpy(), 0.25, atol=1e-6)
    noise = tf.constant(RNG.normal(size=(1, 32, 32, 3)), tf.float32)
    assert gaussian_blur(noise, 1.0).numpy().std() < 0.6 * noise.numpy().std()


@pytest.mark.parametrize("preset", ["lucid", "maco", "yosinski1", "yosinski2", "yosinski3", "yosinski4"])
def test_every_preset_raises_its_objective(tiny, preset):
    ascent = Ascent(tiny, channel("conv_b"), get_preset(preset))
    start = ascent.run([0, 3], 16, steps=0).objective
    end = ascent.run([0, 3], 16, steps=40).objective
    assert (end > start).all(), (start, end)


def test_one_trace_across_steps_units_and_sizes_and_determinism(tiny):
    ascent = Ascent(tiny, channel("conv_b"), get_preset("lucid"))
    a = ascent.run([1, 2, 3], 16, steps=5, seed=7)
    ascent.run([5], 24, steps=5, seed=1)
    b = ascent.run([1, 2, 3], 16, steps=5, seed=7)
    assert ascent.trace_count == 1
    np.testing.assert_array_equal(a.images, b.images)


def test_steps_in_one_call_equal_single_steps(tiny):
    """A run cut into calls of any length computes the same values bit for bit: a call of
    N steps is the same graph and the same per-step seeds as N calls of one."""
    ascent = Ascent(tiny, channel("conv_b"), get_preset("lucid"))  # 20 steps: across the redirected ReLUs' 8
    whole = ascent.start([0, 2, 5], 16, steps=20, seed=3)
    objectives = whole.advance(20)
    single = ascent.start([0, 2, 5], 16, steps=20, seed=3)
    each = np.stack([single.step() for _ in range(20)])
    np.testing.assert_array_equal(whole.values, single.values)
    np.testing.assert_array_equal(objectives, each)
    a = Ascent(tiny, channel("conv_b"), get_preset("lucid"), steps_per_call=3).run([0, 2, 5], 16, 20, seed=3)
    np.testing.assert_array_equal(a.images, whole.result().images)
    np.testing.assert_array_equal(a.transparency, whole.result().transparency)
    assert whole.advance(5).shape == (0, 3) and whole.done


def test_transparency_is_where_the_gradient_fell(tiny):
    """Accumulated |gradient| on the image: zero where the objective never looks. A neuron
    at the centre of an 8x8 view through two 3x3 convolutions sees only the centre 5x5."""
    from toolbox.optvis import Preset
    from toolbox.optvis.transforms import unchanged
    from toolbox.optvis.updates import Adam

    preset = Preset("plain", pixels(), unchanged, Adam(lr=0.01))
    r = Ascent(tiny, neuron("conv_b", 1), preset).run([0], 8, steps=3)
    seen = r.transparency[0]
    assert r.transparency.shape == (1, 8, 8) and (seen[2:7, 2:7] > 0).all()
    assert seen[:2].sum() == 0 and seen[:, :2].sum() == 0 and seen[7:].sum() == 0


def test_dead_relu_unit_still_moves_through_pre_activation(tiny_settings):
    """A unit whose ReLU is off everywhere has zero gradient after the ReLU; the engine
    optimizes the value before it, so the unit still comes alive."""
    from conftest import build_tiny_model
    from toolbox.nets import Network, load_spec

    model = build_tiny_model()
    kernel, bias = model.get_layer("conv_a").get_weights()
    bias[0] = -0.5 * kernel[..., 0].sum() - 0.2  # unit 0 of relu_a is off on a mid-grey image
    model.get_layer("conv_a").set_weights([kernel, bias])
    net = Network(load_spec("tiny", tiny_settings.models_path), model, ("a", "b", "c"))
    ascent = Ascent(net, channel("relu_a"), get_preset("yosinski3"))
    before = ascent.run([0], 16, steps=0).objective[0]
    after = ascent.run([0], 16, steps=150).objective[0]
    assert before < 0 < after
    post = Ascent(net, channel("relu_a"), get_preset("yosinski3"), pre_relu=False)
    assert post.run([0], 16, steps=20).objective[0] == 0.0  # the trap the engine avoids


def test_callbacks_and_cancel(tiny):
    ascent = Ascent(tiny, channel("conv_b"), get_preset("lucid"))
    steps, images = [], []
    r = ascent.run([0], 16, steps=10, on_step=lambda s, n, v: steps.append(s),
                   on_image=lambda s, im: images.append((s, im.shape)), image_every=4)
    assert steps == list(range(1, 11)) and images == [(4, (1, 16, 16, 3)), (8, (1, 16, 16, 3))]
    assert r.steps == 10
    one_per_call = Ascent(tiny, channel("conv_b"), get_preset("lucid"), steps_per_call=1)
    stopped = one_per_call.run([0], 16, steps=10, should_stop=lambda: len(steps) >= 13,
                               on_step=lambda s, n, v: steps.append(s))
    assert stopped.steps == 3
    # asked between two calls of 4 steps, a run stops at the end of the call under way
    four_per_call = Ascent(tiny, channel("conv_b"), get_preset("lucid"), steps_per_call=4)
    seen: list[int] = []
    stopped = four_per_call.run([0], 16, steps=10, should_stop=lambda: len(seen) >= 5,
                                on_step=lambda s, n, v: seen.append(s))
    assert stopped.steps == 8 and seen == list(range(1, 9))


def test_tiles_and_octaves():
    assert tile_edges(10, 512) == [(0, 10)]
    edges = tile_edges(1000, 300)
    assert len(edges) == 4 and edges[0][0] == 0 and edges[-1][1] == 1000
    assert max(b - a for a, b in edges) <= 300
    sizes = octave_sizes(300, 451, 4, 1.4, 75)
    assert sizes[-1] == (300, 451) and all(min(s) >= 75 for s in sizes)
    assert [s[0] for s in sizes] == sorted(s[0] for s in sizes)


def test_dream_tiling_matches_whole_image_gradient_and_traces_once(tiny):
    dreamer = DeepDream(tiny, deepdream("conv_a"))
    image = RNG.uniform(0, 255, (20, 28, 3)).astype(np.float32)
    whole_value, whole = dreamer.tiled_gradient(image, 64)
    _, tiled = dreamer.tiled_gradient(image, 12)
    # conv_a has a 3x3 receptive field: away from tile borders the gradients agree, up to
    # the objective being a mean over the tile rather than over the whole image
    (y0, y1), (x0, x1) = tile_edges(20, 12)[0], tile_edges(28, 12)[0]
    np.testing.assert_allclose(tiled[2:y1 - 2, 2:x1 - 2],
                               whole[2:y1 - 2, 2:x1 - 2] * (20 * 28) / ((y1 - y0) * (x1 - x0)), rtol=1e-3)
    out = dreamer.run(image.astype(np.uint8), DreamSchedule(octaves=3, octave_scale=1.3, steps=3, step_size=0.006, tile=12))
    assert out.shape == image.shape and out.dtype == np.uint8
    assert dreamer.trace_count == 1
    assert dreamer.objective_of(out, 64) > whole_value


def test_channel_contrast_is_own_mean_minus_the_strongest_other():
    from toolbox.optvis.objectives import channel_contrast

    c, a, b = ctx(units=(2, 0))
    means = b.mean(axis=(1, 2))
    others = [np.delete(means[0], 2).max(), np.delete(means[1], 0).max()]
    expected = [means[0, 2] - 0.5 * others[0], means[1, 0] - 0.5 * others[1]]
    np.testing.assert_allclose(channel_contrast("b", 0.5)(c).numpy(), expected, rtol=1e-5)


def test_roll_shifts_by_whole_strides_and_wraps_around():
    from toolbox.optvis.transforms import roll

    image = tf.constant(RNG.uniform(size=(2, 16, 16, 3)), tf.float32)
    for k in range(8):
        out = roll(8, 4)(image, tf.constant([k, 1])).numpy()
        shifts = [(dy, dx) for dy in range(-8, 9, 4) for dx in range(-8, 9, 4)
                  if np.array_equal(out, np.roll(image.numpy(), (dy, dx), axis=(1, 2)))]
        assert shifts, "not a wrapped shift by a multiple of the stride"


def test_wrapped_warp_leaves_no_grey_border():
    image = tf.constant(np.zeros((1, 32, 32, 3)), tf.float32)  # black: any grey is the fill
    kept = affine(8.0, (0.9, 0.9), 10.0)(image, tf.constant([1, 2])).numpy()
    wrapped = affine(8.0, (0.9, 0.9), 10.0, fill_mode="WRAP")(image, tf.constant([1, 2])).numpy()
    assert kept.max() == pytest.approx(0.5) and wrapped.max() == 0.0


def test_unit_recipe_follows_the_field_unless_told(tiny):
    from toolbox.optvis.presets import PIXEL_CONTRAST, SMALLEST_SIZE, field_size, unit_recipe

    recipe = unit_recipe(tiny, "conv_b", "lucid")  # a 5-pixel field
    assert recipe.size == field_size(tiny, "conv_b") == SMALLEST_SIZE and recipe.steps == 128
    assert recipe.preset.redirect
    # a field this small: drawn in pixels, for the margin over the layer's strongest other unit
    assert recipe.preset.param.name == "pixels" and f", {PIXEL_CONTRAST})" in recipe.objective("conv_b").name
    told = unit_recipe(tiny, "conv_b", "lucid", size=40, steps=7)
    assert (told.size, told.steps) == (40, 7)
    maco = unit_recipe(tiny, "conv_b", "maco")
    assert maco.preset.name == "maco" and maco.steps == 256


def test_unit_recipe_draws_larger_fields_in_fourier_and_warps_the_largest(tiny, monkeypatch):
    from toolbox.optvis import presets

    monkeypatch.setattr(presets, "PIXEL_FIELD", 3)  # conv_b's 5-pixel field as a middle one
    middle = presets.unit_recipe(tiny, "conv_b", "lucid")
    assert middle.preset.param.name == "fourier" and f", {presets.CONTRAST})" in middle.objective("conv_b").name
    image = tf.random.uniform((1, 16, 16, 3), seed=1)
    shifted = middle.preset.transform(image, tf.constant([3, 4])).numpy()  # a wrapped shift: no pixel resampled
    assert sorted(shifted.ravel()) == sorted(image.numpy().ravel())
    monkeypatch.setattr(presets, "ROLL_FIELD", 3)  # and as a large one: the warp, which resamples
    large = presets.unit_recipe(tiny, "conv_b", "lucid")
    warped = large.preset.transform(image, tf.constant([3, 4])).numpy()
    assert large.preset.param.name == "fourier" and sorted(warped.ravel()) != sorted(image.numpy().ravel())
