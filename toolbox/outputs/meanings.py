"""ImageNet classes by meaning: which of the 1000 classes a WordNet noun means ('motorcycle'
-> moped, and motor scooter nearest by meaning; 'dog' -> the 118 dogs), for ``class_index``
when a name is no label.

The facts come from class_meanings.tsv.gz beside this module, made once from WordNet 3.0 by
scripts/make_class_meanings.py (its docstring says what each column holds and how the
nearest classes are chosen). The table is read on first use, never at import, through
``toolbox.files.read_input`` with a size limit, and only for a network whose labels are the
ImageNet-1k labels (models/imagenet_labels.txt) or hold each of them once in another order
(GoogLeNet's 1008: the same classes after a placeholder, in another order); for any other
label list, and when the table cannot be read, there are no meanings (a warning says why,
once) and class names match by spelling alone.
"""

from __future__ import annotations

import functools
import logging
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

from toolbox.errors import UserError

log = logging.getLogger(__name__)

TABLE = Path(__file__).with_name("class_meanings.tsv.gz")
MAX_TABLE_BYTES = 1 << 20  # the table is about 100 KB
MAX_TEXT_BYTES = 4 << 20  # unpacked, about 300 KB
IMAGENET_CLASSES = 1000

# A plural's last word back to its singular (WordNet's own rules; irregular plurals such as
# 'mice' are lines of the table)
_PLURALS = (("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"), ("men", "man"),
            ("ies", "y"), ("s", ""))


@dataclass(frozen=True)
class Meaning:
    """What a name means among a label list's classes (indices into that list)."""

    beneath: tuple[int, ...]  # the classes it covers (its own synsets and their hyponyms), ascending
    stands_for: int | None  # the one class it may be taken as
    near: tuple[int, ...]  # nearest by meaning, nearest first, for a name with at most one class beneath


def meaning(labels: tuple[str, ...] | list[str], name: str) -> Meaning | None:
    """What ``name`` (already normalized as ``class_index`` does: lower case, single spaces)
    means among ``labels``, or None: not a WordNet noun with a class beneath or near, labels
    that are not ImageNet's, or no table."""
    positions = _positions(tuple(labels))
    if positions is None:
        return None
    table = _table()
    row = next((table[form] for form in _forms(name) if form in table), None)
    if row is None:
        return None
    beneath, stands_for, near = (tuple(positions[i] for i in column if i in positions) for column in row)
    if not beneath and not near:
        return None
    return Meaning(tuple(sorted(beneath)), stands_for[0] if len(stands_for) == 1 else None, near)


def _forms(name: str) -> list[str]:
    """``name``, then its singulars ('motorcycles' -> 'motorcycle', 'sports cars' -> 'sports car')."""
    head, _, last = name.rpartition(" ")
    singulars = [last[:-len(end)] + base for end, base in _PLURALS if last.endswith(end) and len(last) > len(end) + 1]
    return [name] + [f"{head} {word}".strip() for word in singulars]


@functools.lru_cache(maxsize=4)
def _positions(labels: tuple[str, ...]) -> dict[int, int] | None:
    """ImageNet-1k class -> its index in ``labels``, when ``labels`` are ImageNet's; None otherwise.
    A label that ImageNet holds twice (crane, maillot) is left out of a list in another order,
    where it cannot be told which is which."""
    imagenet = _imagenet_labels()
    if imagenet is None:
        return None
    if tuple(label.strip() for label in labels) == imagenet:
        return {i: i for i in range(len(imagenet))}
    where: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        where.setdefault(label.strip(), []).append(i)
    if not all(label in where for label in imagenet):
        return None
    twice = {label for label in imagenet if imagenet.count(label) > 1}
    return {i: where[label][0] for i, label in enumerate(imagenet) if label not in twice and len(where[label]) == 1}


@functools.lru_cache(maxsize=1)
def _imagenet_labels() -> tuple[str, ...] | None:
    from toolbox.files import read_input
    from toolbox.settings import bundled

    try:
        text = read_input(bundled("models") / "imagenet_labels.txt", "label list", MAX_TABLE_BYTES).decode()
    except (UserError, OSError, UnicodeDecodeError) as e:
        log.warning("class names match by spelling only: the ImageNet labels are unreadable (%s)", e)
        return None
    labels = tuple(line.strip() for line in text.splitlines() if line.strip())
    return labels if len(labels) == IMAGENET_CLASSES else None


@functools.lru_cache(maxsize=1)
def _table() -> dict[str, tuple[tuple[int, ...], ...]]:
    """name -> (classes beneath, the class it stands for, nearest by meaning); {} (with a
    warning) when the table is missing, too large or damaged."""
    try:
        return _parse(_read(TABLE))
    except (UserError, OSError, ValueError, zlib.error) as e:
        log.warning("class names match by spelling only: the class meanings table %s is unusable (%s)",
                    TABLE.name, e)
        return {}


def _read(path: Path) -> str:
    from toolbox.files import read_input

    packed = read_input(path, "class meanings table", MAX_TABLE_BYTES)
    unpack = zlib.decompressobj(wbits=31)  # gzip
    text = unpack.decompress(packed, MAX_TEXT_BYTES)
    if unpack.unconsumed_tail or not unpack.eof:
        raise ValueError(f"it unpacks to more than {MAX_TEXT_BYTES >> 20} MB or is cut short")
    return text.decode("utf-8")


def _parse(text: str) -> dict[str, tuple[tuple[int, ...], ...]]:
    table = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line or line.startswith("#"):
            continue
        name, *columns = line.split("\t")
        if len(columns) != 3 or not name:
            raise ValueError(f"line {number} is not name and three columns")
        table[name] = tuple(_indices(column, number) for column in columns)
    return table


def _indices(column: str, number: int) -> tuple[int, ...]:
    """'3,151-153' -> (3, 151, 152, 153)."""
    out: list[int] = []
    for part in filter(None, column.split(",")):
        match = re.fullmatch(r"(\d{1,4})(?:-(\d{1,4}))?", part)
        if not match:
            raise ValueError(f"line {number}: {part[:20]!r} is not a class or a run of classes")
        first, last = int(match[1]), int(match[2] or match[1])
        if not first <= last < IMAGENET_CLASSES:
            raise ValueError(f"line {number}: {part} is out of 0..{IMAGENET_CLASSES - 1}")
        out.extend(range(first, last + 1))
    return tuple(out)
