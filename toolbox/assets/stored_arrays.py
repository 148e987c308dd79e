"""The one reader of a store's ``.npz`` files (crop layers, circuits): a file anyone may have
written, read without trusting what it declares.

``np.load`` believes a member's ``.npy`` header: a few bytes declaring a (50000, 50000) array
make it allocate 10 GB before it finds the data missing, and a deflated member of zeros
(a megabyte on disk) inflates to gigabytes. Here every member is checked before a byte of its
data is inflated or an array allocated:

- the file is opened by ``files.open_inside`` (a regular file inside the store, no link);
- a member may not declare more bytes than the whole file holds: deepvis writes its stores
  with ``np.savez`` (stored, not compressed), so what a real store needs in memory is what it
  has on disk, and a compressed member is refused for what it could inflate to;
- its header (read from the member, a few hundred bytes) must declare a plain numeric or
  text dtype, a shape within the caller's limits (from the layer: units, K), and exactly
  as many bytes as the member holds.

Only then is the member read, into an array of that size. A member the caller does not name
is skipped unread (a newer deepvis may add some).
"""

from __future__ import annotations

import zipfile

import numpy as np
from numpy.lib import format as npy

from toolbox.files import PathLike, display_path, open_inside

MAX_HEADER = 10_000  # characters of a .npy header (numpy's own default limit)


class DamagedArrays(ValueError):
    """A store's .npz that is not what its reader expects; the message says why in a few words."""


Shapes = dict[str, tuple[int, ...]]  # member -> the largest size of each axis (its length: the ndim)


def read_npz(root: PathLike, path: PathLike, what: str, shapes: Shapes) -> dict[str, np.ndarray] | None:
    """The members of the store file ``path`` that ``shapes`` names, each checked against its
    limit before it is read; None when there is no such file. ``files.Refused`` (a UserError)
    for a link or anything outside ``root``; ``DamagedArrays`` for a file whose members
    declare more than the file holds or than ``shapes`` allows (or that is not an npz)."""
    f = open_inside(root, path, what)
    if f is None:
        return None
    with f:
        size = f.seek(0, 2)
        f.seek(0)
        try:
            with zipfile.ZipFile(f) as z:
                infos = {info.filename.removesuffix(".npy"): info for info in z.infolist()}
                declared = sum(info.file_size for name, info in infos.items() if name in shapes)
                if declared > size:
                    raise DamagedArrays(f"its arrays declare {declared:,} bytes, more than the file's {size:,}")
                return {name: _member(z, info, shapes[name]) for name, info in infos.items() if name in shapes}
        except DamagedArrays:
            raise
        except zipfile.BadZipFile as e:
            raise DamagedArrays(f"not an npz file ({e})") from None
        except (ValueError, RecursionError, MemoryError, EOFError, OSError, SyntaxError) as e:  # its own headers
            why = " ".join(str(e).split())[:120] or type(e).__name__
            raise DamagedArrays(f"a damaged member ({display_path(why)})") from None


def _member(z: zipfile.ZipFile, info: zipfile.ZipInfo, limits: tuple[int, ...]) -> np.ndarray:
    """One member's array, its header checked before its data is read."""
    name = info.filename
    with z.open(info) as m:
        version = npy.read_magic(m)
        if version == (1, 0):
            shape, fortran, dtype = npy.read_array_header_1_0(m, max_header_size=MAX_HEADER)
        elif version == (2, 0):
            shape, fortran, dtype = npy.read_array_header_2_0(m, max_header_size=MAX_HEADER)
        else:
            raise DamagedArrays(f"{name} has npy format {version}")
        if dtype.hasobject or dtype.kind not in "biufcSU" or dtype.itemsize == 0:
            raise DamagedArrays(f"{name} holds {dtype}, not numbers or text")
        if len(shape) != len(limits) or any(n > top for n, top in zip(shape, limits)):
            raise DamagedArrays(f"{name} declares shape {shape[:8]}, beyond {limits}")
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if m.tell() + count * dtype.itemsize != info.file_size:
            raise DamagedArrays(f"{name} declares {count:,} x {dtype.itemsize} bytes, not what it holds")
        array = np.empty(count, dtype)
        view = memoryview(array.view(np.uint8))
        got = 0
        while got < len(view):
            n = m.readinto(view[got:])
            if not n:
                raise DamagedArrays(f"{name} is cut short")
            got += n
    return array.reshape(shape[::-1]).T if fortran else array.reshape(shape)


__all__ = ["DamagedArrays", "Shapes", "read_npz"]
