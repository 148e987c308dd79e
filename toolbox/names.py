"""The one place a layer's name (which a user's model file chooses freely) becomes part of a
file name or a TensorFlow name scope.

Keras accepts nearly any text as a layer name: ``<``, ``/``, spaces, 300 characters. A file
name allows at most 255 bytes and no ``/``; a TensorFlow name scope allows only
``[A-Za-z0-9.][A-Za-z0-9_.\\-/>]*``. ``safe_name`` keeps an ordinary name as it is (so the
files of every network deepvis ships keep their names) and turns any other into a short ASCII
stem with a digest of the whole name, so two different names never share a file.
"""

from __future__ import annotations

import hashlib
import re

MAX_NAME_CHARS = 100  # of a name kept as it is; NAME_MAX is 255 and files add suffixes
_ORDINARY = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_NAME_CHARS - 1}}}\Z")


def safe_name(name: str) -> str:
    """``name`` when it is plain ASCII (letters, digits, ``._-``, at most ``MAX_NAME_CHARS``,
    not starting with a dot or dash), else a readable prefix of it and 12 hex digits of its
    SHA-256: ``"odd<name>"`` -> ``"odd_name_-3f2a..."``. Usable as a file name and as a
    TensorFlow name scope; different names give different results."""
    if _ORDINARY.match(name):
        return name
    prefix = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:40].lstrip("._-") or "layer"
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{prefix}-{digest}"


__all__ = ["MAX_NAME_CHARS", "safe_name"]
