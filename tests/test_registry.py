"""The builders' table (issue 31): every spec shipped names a builder in it, an unknown builder
is one line with the known ones, and --weights is refused from the table's ``takes_weights``."""

from __future__ import annotations

import pytest
import yaml

from toolbox.errors import UserError


def test_every_shipped_spec_names_a_builder_of_the_table():
    from toolbox.nets.registry import BUILDERS
    from toolbox.nets.spec import available_specs, read_spec
    from toolbox.settings import load_settings

    models = load_settings(None, {}).models_path
    named = {read_spec(models / f"{name}.yaml")["builder"] for name in available_specs(models)}
    assert named and named <= set(BUILDERS)
    for name, builder in BUILDERS.items():
        assert builder.name == name
        whole = builder.network is not None  # makes the Network itself, or finds weights and converts them
        assert whole or (builder.find_weights is not None and builder.convert is not None), name


def test_an_unknown_builder_is_one_line_with_the_closest(tmp_path):
    from toolbox.nets import load_network
    from toolbox.settings import load_settings

    spec = tmp_path / "mine.yaml"
    for builder, said in (("googlenett", "did you mean: googlenet"), (["a", "list"], "unknown builder")):
        spec.write_text(yaml.safe_dump({"builder": builder, "input_size": 8, "min_size": 8, "preprocess": "unit",
                                        "layers": [{"name": "a", "channels": 1}], "dream_layers": {"a": 1}}))
        with pytest.raises(UserError, match=said) as e:
            load_network(load_settings(None, {"model": str(spec)}))
        assert "\n" not in str(e.value) and "known: efficientnet_lite" in str(e.value)


def test_weights_refused_where_the_table_says_none_is_read(tmp_path):
    from toolbox.nets import load_network
    from toolbox.nets.registry import BUILDERS
    from toolbox.settings import load_settings

    assert [name for name, b in BUILDERS.items() if not b.takes_weights] == ["efficientnet_lite"]
    with pytest.raises(UserError, match="efficientnet_lite0 takes no weights file") as e:
        load_network(load_settings(None, {"model": "efficientnet_lite0", "weights": str(tmp_path / "w.pth")}))
    assert "inception_v3, googlenet, inception_2015, keras_file" in str(e.value)
