"""Feature accentuation: the Fourier start at the photo and the distance penalty on the tiny
model, the check of issue 24 on the real lite0 network (the unit rises 3x or more while
the picture stays 20 dB or closer to the photo), and the command as a user runs it."""

import numpy as np
import pytest
import tensorflow as tf

from conftest import EXAMPLES


def test_fourier_values_start_at_the_photo():
    from toolbox.images import fit_square, read_image
    from toolbox.optvis.params import fourier, fourier_values
    from toolbox.optvis.render import to_uint8

    photo = fit_square(read_image(EXAMPLES / "coffee.png"), 24)[None]
    values = fourier_values(photo)
    assert values.shape == (1, 3, 24, 13, 2)
    np.testing.assert_array_equal(to_uint8(fourier().to_image(tf.constant(values), tf.constant(24))), photo)


def test_distance_to_is_the_mean_squared_pixel_difference():
    from toolbox.optvis.objectives import Context, distance_to

    rng = np.random.default_rng(0)
    seed, source = rng.uniform(size=(8, 8, 3)), rng.uniform(size=(2, 8, 8, 3))
    c = Context({}, tf.constant(source[:, :6, :6], tf.float32), tf.constant([0, 0]), tf.constant(source, tf.float32))
    got = distance_to(tf.constant(seed, tf.float32), 3.0)(c).numpy()
    np.testing.assert_allclose(got, -3.0 * ((source - seed) ** 2).mean(axis=(1, 2, 3)), rtol=1e-5)
    with pytest.raises(ValueError, match="untransformed"):
        distance_to(tf.constant(seed, tf.float32))(Context({}, c.images, c.units))


def test_the_penalty_holds_the_image_to_the_photo(tiny):
    """With no weight the picture wanders off; with a heavy one it stays at the photo."""
    from toolbox.optvis.accentuation import Accentuator

    photo = (np.random.default_rng(1).uniform(size=(16, 16, 3)) * 255).astype(np.uint8)
    free = Accentuator(tiny, "conv_b", 16, weight=0.0, lr=0.05).accentuate(photo, 2, 40)
    held = Accentuator(tiny, "conv_b", 16, weight=100.0, lr=0.05).accentuate(photo, 2, 40)
    assert free.after > free.before and held.psnr > free.psnr + 6, (free, held)


def test_frames_refine_progressively_and_new_photos_do_not_retrace(tiny):
    from toolbox.optvis.accentuation import Accentuator

    rng = np.random.default_rng(2)
    accentuator = Accentuator(tiny, "conv_b", 16, lr=0.05)
    frames = list(accentuator.frames((rng.uniform(size=(20, 24, 3)) * 255).astype(np.uint8), 1, steps=10, every=4))
    assert [f.shape for f in frames] == [(16, 16, 3)] * 3  # after 4, 8 and 10 steps
    assert not np.array_equal(frames[0], frames[-1])
    run = accentuator.start((rng.uniform(size=(16, 16, 3)) * 255).astype(np.uint8), 4, steps=3)
    run.advance(1)
    assert accentuator._ascent.trace_count == 1


@pytest.mark.slow
@pytest.mark.parametrize("layer, unit_rank", [("block9_add", 0), ("block9_add", 10), ("block6_add", 3)])
def test_accentuation_raises_the_unit_3x_within_20_db(lite0, photos, layer, unit_rank):
    """Issue 24's check with the command's defaults, on a unit the photo already drives
    (its strongest, and its 11th strongest) and one of an earlier layer."""
    from toolbox.nets import Probe
    from toolbox.optvis.accentuation import Accentuator
    from toolbox.settings import Settings

    a = Settings().accentuate
    accentuator = Accentuator(lite0, layer, lite0.spec.input_size, weight=a.weight)
    fitted = accentuator.fit(photos["chelsea"])
    means = Probe(lite0, [layer])(fitted).activations[layer].mean(axis=(0, 1))
    unit = int(np.argsort(means)[::-1][unit_rank])
    result = accentuator.accentuate(photos["chelsea"], unit, a.steps)
    print(f"\n{layer} {unit}: {result.before:.2f} -> {result.after:.2f}, {result.psnr:.1f} dB")
    assert result.before > 0 and result.after >= 3 * result.before and result.psnr >= 20.0, result


# -- the command ---------------------------------------------------------------------------


def _main(capsys, *args):
    from toolbox.cli import main

    capsys.readouterr()
    try:
        code = main(list(args))
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_command_writes_the_image_and_prints_its_figures(tmp_path, tiny_settings_file, capsys):
    from toolbox.images import read_image

    out = tmp_path / "acc.png"
    code, stdout, stderr = _main(capsys, "accentuate", str(EXAMPLES / "chelsea.png"), "--layer", "conv_b", "--unit",
                                 "2", "--size", "16", "--steps", "8", "-o", str(out),
                                 "--settings", str(tiny_settings_file))
    assert code in (0, None), stderr
    photo = read_image(EXAMPLES / "chelsea.png")
    made = read_image(out)
    assert made.shape == photo.shape  # the photo's size: the part the network sees, accentuated
    side = photo.shape[0]
    x = (photo.shape[1] - side) // 2
    assert np.array_equal(made[:, :x - 1], photo[:, :x - 1]) and not np.array_equal(made[:, x:x + side],
                                                                                    photo[:, x:x + side])
    assert "conv_b unit 2:" in stdout and "dB PSNR from the photo" in stdout and "wrote" in stdout


@pytest.mark.parametrize("args, message", [
    (["--layer", "conv_b", "--unit", "6"], "out of range"),
    (["--layer", "conv_c", "--unit", "0"], "conv_b"),
    (["--layer", "conv_b", "--unit", "0", "--weight", "-1"], "at least 0"),
    (["--layer", "conv_b", "--unit", "0", "-o", "/tmp/x.txt"], "must end in one of"),
])
def test_mistakes_are_one_line(args, message, tiny_settings_file, capsys):
    code, _, stderr = _main(capsys, "accentuate", str(EXAMPLES / "chelsea.png"), *args,
                            "--settings", str(tiny_settings_file))
    assert code == 2 and "Traceback" not in stderr, stderr
    assert message in stderr.strip().splitlines()[-1]
