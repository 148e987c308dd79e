"""Model files that are legal Keras but odd: layer names no file or TensorFlow scope takes, a
gray input straight into a convolution, a fixed input too large for memory; and a spec a
user wrote that ``deepvis spec`` must not overwrite. Each is one line or works, never a
traceback (issue 29, kind 4 and 5)."""

from __future__ import annotations

import json

import pytest

from conftest import EXAMPLES, deepvis

IMAGE = str(EXAMPLES / "chelsea.png")
ODD = "odd<name> & more"
LONG = "x" * 300


def _conv_model(shape, first: str):
    import keras

    inputs = keras.Input(shape)
    x = keras.layers.Conv2D(4, 3, activation="relu", name=first)(inputs)  # a fused ReLU: split by keras_graph
    x = keras.layers.Conv2D(6, 3, activation="relu", name="second")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="probs")(x))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import keras

    d = tmp_path_factory.mktemp("odd-models")
    keras.utils.set_random_seed(0)
    for file, shape, first in (("odd.keras", (16, 16, 3), ODD), ("long.keras", (16, 16, 3), LONG),
                               ("gray.keras", (16, 16, 1), "first"), ("huge.keras", (50000, 50000, 3), "first")):
        _conv_model(shape, first).save(d / file)
    (d / "settings.yaml").write_text(json.dumps({"cache_dir": str(d / "cache")}))
    return d


def run(argv, models):
    """deepvis ARGV in this process with the test settings: (exit code, stdout, stderr lines)."""
    r = deepvis(*argv, settings=models / "settings.yaml")
    return r.returncode, r.stdout, r.stderr.strip().splitlines()


@pytest.mark.parametrize("model, name", [("odd.keras", ODD), ("long.keras", LONG)])
def test_a_layer_named_beyond_what_files_and_scopes_take_works_under_its_own_name(model, name, models, tmp_path):
    from toolbox.names import safe_name

    path = str(models / model)
    rc, out, err = run(["layers", "--model", path, "--json"], models)
    assert rc == 0, err
    shown = [d["name"] for d in json.loads(out)]
    assert safe_name(name) in shown and name not in shown  # the name a graph can run with
    rc, out, err = run(["predict", IMAGE, "--model", path], models)
    assert rc == 0 and out.startswith(f"{IMAGE}: class "), err
    # asked for by the name the model gives it, the layer gets unit images in files of its safe name
    rc, out, err = run(["units", "--layer", name, "--units", "0-1", "--size", "16", "--steps", "2",
                        "-o", str(tmp_path / "units"), "--model", path], models)
    assert rc == 0, err
    from conftest import assert_each_unit_made_or_said

    assert_each_unit_made_or_said(out, tmp_path / "units", safe_name(name), [0, 1])  # files of its safe name
    assert all(p.name.startswith(safe_name(name)) for p in (tmp_path / "units").glob("*.png"))


def test_safe_names_keep_ordinary_names_and_never_merge_two_odd_ones():
    from toolbox.names import MAX_NAME_CHARS, safe_name

    for ordinary in ("block9_add", "mixed4c", "base.block1_add", "conv2d0_pre_relu", "a" * MAX_NAME_CHARS):
        assert safe_name(ordinary) == ordinary
    odd = ["a<b", "a>b", "a/b", "a b", "a" * (MAX_NAME_CHARS + 1), ".hidden", "-dash", "", "é", "a<b" + "x" * 300]
    made = [safe_name(n) for n in odd]
    assert len(set(made)) == len(odd)
    assert all(re_ok(m) and len(m) <= 60 for m in made), made


def re_ok(name: str) -> bool:
    """A name a file and a TensorFlow name scope both take."""
    import re

    return re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name) is not None


def test_a_gray_model_with_a_convolution_first_predicts(models):
    rc, out, err = run(["predict", IMAGE, "--model", str(models / "gray.keras")], models)
    assert rc == 0 and out.startswith(f"{IMAGE}: class "), err


def test_a_fixed_input_larger_than_memory_is_one_line_before_any_image(models):
    rc, out, err = run(["predict", IMAGE, "--model", str(models / "huge.keras")], models)
    assert rc == 2 and out == "", err
    assert "takes 50000x50000 px images: one forward pass needs about" in err[-1]
    assert "more than this machine has free" in err[-1]


def test_spec_keeps_a_spec_that_exists_unless_forced(models, tmp_path):
    spec = tmp_path / "mine.yaml"
    spec.write_text("# my edits\n")
    rc, out, err = run(["spec", str(models / "odd.keras"), "-o", str(spec)], models)
    assert rc == 2 and len(err) == 1 and "exists" in err[0] and "--force" in err[0], err
    assert spec.read_text() == "# my edits\n"
    rc, out, err = run(["spec", str(models / "odd.keras"), "-o", str(spec), "--force"], models)
    assert rc == 0 and "layers:" in spec.read_text(), err


@pytest.mark.parametrize("option", ["--weights", "--model"])
def test_spec_refuses_a_network_or_weights_it_would_ignore(option, models, tmp_path):
    rc, out, err = run(["spec", str(models / "odd.keras"), option, str(models / "gray.keras")], models)
    assert rc == 2 and len(err) == 1 and f"{option} does not apply" in err[0], err


@pytest.mark.slow
@pytest.mark.e2e
def test_spec_says_nothing_of_tensorflows_start(models, tmp_path):
    """Start-up lines are a process's own output: the command runs as a user runs it."""
    import subprocess
    import sys

    run_ = subprocess.run([sys.executable, "-m", "toolbox", "spec", str(models / "gray.keras"), "-o",
                           str(tmp_path / "gray.yaml"), "--settings", str(models / "settings.yaml")],
                          capture_output=True, text=True, timeout=600)
    assert run_.returncode == 0, run_.stderr
    assert "oneDNN" not in run_.stderr and "absl" not in run_.stderr and "cuda" not in run_.stderr.lower()


def test_the_time_left_leaves_out_the_first_steps_compile(monkeypatch):
    import io
    import sys

    from toolbox.cli.common import progress

    clock = [0.0]
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    bar = progress(100, "units")
    bar._time = lambda: clock[0]
    clock[0] = 30.0  # the first step compiles
    bar.update(1)
    assert "?" in str(bar).split("<")[1]  # no rate yet: not 49 minutes
    clock[0] = 31.0
    bar.update(2)  # then 2 steps a second
    assert bar.format_dict["rate"] == 2.0 and "00:48" in str(bar)  # 97 steps left at 2/s
    bar.close()
