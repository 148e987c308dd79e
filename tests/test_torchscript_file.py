"""The TorchScript archive reader, on archives crafted here without torch: an honest one read
back exactly, hostile or damaged ones refused in one line before anything is run or allocated."""

from __future__ import annotations

import zipfile

import numpy as np
from crafted_torch import Call, Global, IntList, Module, Storage, Tensor, refusal, write_torchscript

from toolbox.nets.formats.torchscript_file import read_torchscript


def _net(weights: Storage, **conv_attributes) -> Module:
    conv = Module("__torch__.net.___torch_mangle_3.Conv", weight=Tensor(weights, 0, (3, 4), (4, 1)), stride=2,
                  padding=IntList([0, 3]), **conv_attributes)
    return Module("__torch__.net.Net", conv=conv, pool=Module("__torch__.torch.nn.modules.pooling.MaxPool2d"))


def _refusal(path, match: str) -> str:
    return refusal(read_torchscript, path, match)


def test_crafted_archive_round_trips(tmp_path):
    data = Storage("0", np.arange(12, dtype=np.float32))
    root = _net(data, w_t=Tensor(data, 0, (4, 3), (1, 4)), every_other=Tensor(data, 1, (2, 3), (6, 2)))
    write_torchscript(tmp_path / "ok.pt", root, [data])
    m = read_torchscript(tmp_path / "ok.pt")
    assert m.types == {"": "__torch__.net.Net", "conv": "__torch__.net.Conv",
                       "pool": "__torch__.torch.nn.modules.pooling.MaxPool2d"}
    assert m.children("") == ["conv", "pool"] and m.children("conv") == []
    grid = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(m.tensors["conv.weight"], grid)
    np.testing.assert_array_equal(m.tensors["conv.w_t"], grid.T)
    np.testing.assert_array_equal(m.tensors["conv.every_other"], [[1, 3, 5], [7, 9, 11]])
    assert m.attributes["conv.stride"] == 2 and m.attributes["conv.padding"] == (0, 3)
    assert m.attributes["training"] is False and m.attributes["pool._is_full_backward_hook"] is None


def test_a_pickle_naming_os_system_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    data = Storage("0", np.arange(12, dtype=np.float32))
    write_torchscript(tmp_path / "evil.pt", _net(data, hook=Call(Global("os", "system"), (f"touch {marker}",))),
                      [data])
    _refusal(tmp_path / "evil.pt", "os.system")
    assert not marker.exists()
    # a module class outside __torch__, or a list builder fed something else, is refused too
    write_torchscript(tmp_path / "class.pt", Module("builtins.eval"), [])
    _refusal(tmp_path / "class.pt", "builtins.eval")
    write_torchscript(tmp_path / "list.pt", Module("__torch__.Net", sizes=Call(
        Global("torch.jit._pickle", "build_intlist"), ([1, "rm -rf"],))), [])
    _refusal(tmp_path / "list.pt", "build_intlist got something other than a list of ints")


def test_a_storage_shorter_than_its_tensor_is_refused(tmp_path):
    short = Storage("0", np.arange(6, dtype=np.float32))  # the tensor is 3x4
    write_torchscript(tmp_path / "short.pt", _net(short), [short])
    _refusal(tmp_path / "short.pt", "tensor conv.weight reaches element 11 of storage 0, which holds 6")
    # the record says 12 elements, the zip entry holds 6: refused before it is read
    lying = Storage("0", np.arange(6, dtype=np.float32), claimed=12)
    write_torchscript(tmp_path / "lying.pt", _net(lying), [lying])
    _refusal(tmp_path / "lying.pt", "archive/data/0 holds 24 bytes, its record says 48")
    data = Storage("0", np.arange(12, dtype=np.float32))
    write_torchscript(tmp_path / "missing.pt", _net(data), [])
    _refusal(tmp_path / "missing.pt", "archive/data/0 is missing")


def test_a_huge_declared_size_is_refused_before_allocating(tmp_path):
    huge = Storage("0", np.arange(12, dtype=np.float32), claimed=1 << 40)
    write_torchscript(tmp_path / "huge_storage.pt", _net(huge), [huge])
    _refusal(tmp_path / "huge_storage.pt", f"storage 0 claims {1 << 40} elements")
    data = Storage("0", np.arange(12, dtype=np.float32))
    root = Module("__torch__.Net", weight=Tensor(data, 0, (1 << 20, 1 << 20), (0, 0)))
    write_torchscript(tmp_path / "huge_tensor.pt", root, [data])
    _refusal(tmp_path / "huge_tensor.pt", f"tensor weight claims {1 << 40} elements")


def test_damaged_archives_are_refused_in_one_line(tmp_path):
    (tmp_path / "not_zip.pt").write_bytes(b"\x80\x02garbage" * 10)
    _refusal(tmp_path / "not_zip.pt", "not a readable zip archive")
    with zipfile.ZipFile(tmp_path / "empty.pt", "w") as archive:
        archive.writestr("archive/version", "3\n")
    _refusal(tmp_path / "empty.pt", "not a TorchScript archive")
    with zipfile.ZipFile(tmp_path / "bad_pickle.pt", "w") as archive:
        archive.writestr("archive/data.pkl", b"\x80\x02garbage")
    _refusal(tmp_path / "bad_pickle.pt", "damaged pickle")
    write_torchscript(tmp_path / "no_module.pt", [1, 2, 3], [])
    _refusal(tmp_path / "no_module.pt", "holds no module")
    _refusal(tmp_path / "missing.pt", "cannot read")
