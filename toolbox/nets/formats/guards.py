"""The guards every reader of a foreign weights file shares: one refusal, the limits on what a
file may make the reader allocate, and reading a whole file under its limit.

A weights file comes from anywhere. Each reader checks what the file declares (lengths,
counts, shapes) against these limits and against the bytes really there before it allocates
anything of that size, and says why it stops with ``Refused``, which ``refusals`` turns into
one line naming the file.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from toolbox.errors import UserError
from toolbox.files import read_input

MAX_BYTES = 1 << 30  # a file read whole (Caffe, GraphDef): far above bvlc_googlenet (53 MB)
# one array of a protobuf weights file (a Caffe blob, a graph constant)
MAX_ARRAY_ELEMENTS = 1 << 28
# a PyTorch file's storages and tensors, each and all together: 256 MB of float32, 3x the
# largest net read here (the 2015 InceptionV3: 21.8 million; lite2 6.1 million)
MAX_TENSOR_ELEMENTS = 1 << 26


class Refused(Exception):
    """Why the data is not read; turned into a UserError naming the file at the top."""


def read_bytes(path: str | Path, what: str) -> bytes:
    """The whole file, refused past MAX_BYTES before it is read."""
    return read_input(path, what, MAX_BYTES)


@contextlib.contextmanager
def refusals(path: str | Path, what: str = "weights file") -> Iterator[None]:
    """Turns a refusal or a read failure inside the block into a one-line UserError naming
    ``path`` (``what``: the kind of file, as the message says it)."""
    try:
        yield
    except Refused as e:
        reason = " ".join(str(e).split())[:300]
        raise UserError(f"refusing {what} {path}: {reason}") from None
    except OSError as e:
        raise UserError(f"cannot read {what} {path}: {e.strerror or e}") from None
