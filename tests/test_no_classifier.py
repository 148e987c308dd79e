"""Networks without a classifier (``outputs: features`` in the spec): the commands that need
class scores refuse them in one line before loading anything; per-layer commands work."""

from __future__ import annotations

import pytest

FEATURES_SPEC = """\
builder: keras_file
source: {{path: {path}}}
input_size: 8
min_size: 4
preprocess: {{mean: 0.0, std: 255.0}}
outputs: features
dream_layers: {{conv_b: 1.0}}
layers:
  - {{name: conv_a, channels: 4}}
  - {{name: conv_b, channels: 6}}
"""


@pytest.fixture(scope="module")
def features_spec(tmp_path_factory):
    import keras

    d = tmp_path_factory.mktemp("features")
    x = inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv_a")(x)
    x = keras.layers.Conv2D(6, 3, padding="same", name="conv_b")(x)
    keras.Model(inputs, keras.layers.GlobalAveragePooling2D(name="pool")(x)).save(d / "feat.keras")
    spec = d / "feat.yaml"
    spec.write_text(FEATURES_SPEC.format(path=d / "feat.keras"))
    return spec


@pytest.mark.parametrize("argv", [["predict", "IMG"], ["classes", "--classes", "1"], ["fool", "IMG", "--target", "1"],
                                  ["attribute", "IMG", "--class", "1"]])
def test_commands_that_need_classes_refuse_in_one_line(features_spec, argv, tmp_path, capsys):
    from toolbox.cli import main

    from conftest import EXAMPLES

    argv = [str(EXAMPLES / "chelsea.png") if a == "IMG" else a for a in argv]
    rc = main(argv + ["--model", str(features_spec), *(["-o", str(tmp_path / "out")] if argv[0] == "classes" else [])])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith("deepvis: error: feat has no classifier: its weights end at the pooled features")


def test_per_layer_commands_work_without_classifier(features_spec, tmp_path, capsys):
    from conftest import EXAMPLES
    from toolbox.cli import main

    assert main(["layers", "--model", str(features_spec)]) == 0
    assert "conv_b" in capsys.readouterr().out
    out = tmp_path / "map.png"
    assert main(["attribute", str(EXAMPLES / "chelsea.png"), "--layer", "conv_b", "--unit", "2",
                 "--model", str(features_spec), "-o", str(out)]) == 0
    assert out.is_file()
