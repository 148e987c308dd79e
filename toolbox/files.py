"""Files in and out, in one place: every file the toolbox writes goes through here, and every
input file it reads whole (images, weights, settings, lists) is opened by ``read_input``.

Inputs: only regular files are read (a FIFO, a device such as /dev/zero or a socket named as
an image, a video or a list is refused in one line instead of blocking or filling memory), and
never more than a limit the caller states, checked before and while reading.

Stores (an asset folder: unit images, crops, circuits, precompute records) read only their own
files: ``open_inside`` / ``read_inside`` open a file only when it is a regular file reached from
the store's folder without following any link below it, so a unit image that is a link to
/etc/passwd, or a ``circuits`` folder that is a link elsewhere, is refused, never read or
published. ``real_folder`` is the same rule for the folders a store or a site writes into.

Outputs are written under a temporary name in the target's folder and renamed onto the
final name only when complete, so a reader (or the next run) never sees half a file:
a crash, a full disk or Ctrl-C leaves at most a temporary, never a damaged output.
Temporary names say who writes them, ``.{name}.{host}-{pid}-{random}.part[.ext]``, so a
later run can remove those of killed runs (``clean_stray_parts``) without ever touching
the file a live process is still writing.

Files that several processes update (JSON indexes) are changed under an exclusive lock
(``locked``, ``update_json``); a damaged one is moved aside, never silently dropped.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import socket
import stat
import time
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator, Union

from toolbox.errors import UserError
from toolbox.jsonfile import MAX_JSON_BYTES, BadJSON, parse_json

log = logging.getLogger(__name__)

PathLike = Union[str, bytes, os.PathLike]  # what os.fsdecode takes

_NAME_BYTES = 120  # of the target's name kept in a temporary's name (NAME_MAX is 255)


def display_path(p: PathLike) -> str:
    """``p`` as printable one-line text: bytes that are not UTF-8 as ``\\xNN``, control
    characters escaped, so an error message about any file can always be printed."""
    try:
        text = os.fsencode(p).decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a str with surrogates that no file name decodes to
        text = os.fspath(p).encode("utf-8", "backslashreplace").decode("utf-8")  # type: ignore[union-attr]
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def _as_path(p: PathLike) -> Path:
    return Path(os.fsdecode(p))


def _reason(e: OSError) -> str:
    """The OS's reason alone ('No space left on device'), without errno or file names."""
    return " ".join((e.strerror or str(e) or type(e).__name__).split())


def write_error(path: PathLike, e: OSError) -> UserError:
    """The one-line error for an output that could not be written."""
    return UserError(f"cannot write {display_path(path)}: {_reason(e)}")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "localhost"


def part_path(path: PathLike, suffix: str = "") -> Path:
    """A fresh temporary name beside ``path`` that says which host and process write it;
    ``suffix`` (``.mp4``) goes last for writers that choose the format by it."""
    p = _as_path(path)
    # plain ASCII: libraries such as OpenCV crash on names that are not valid UTF-8
    name = re.sub(r"[^A-Za-z0-9._-]", "_", os.fsencode(p.name)[:_NAME_BYTES].decode("ascii", "replace"))
    return p.parent / f".{name}.{_host()}-{os.getpid()}-{secrets.token_hex(4)}.part{suffix}"


def _part_pattern(host: str) -> re.Pattern[str]:
    return re.compile(rf"^\..*\.{re.escape(host)}-(?P<pid>\d+)-[0-9a-f]+\.part(\.[A-Za-z0-9]+)?$", re.DOTALL)


class PartFile:
    """One output in the making: a reserved temporary beside ``target`` that becomes
    ``target`` on ``commit()`` or disappears on ``discard()``. For writers that live across
    calls (a video); a single block of writing wants ``atomic_output``."""

    def __init__(self, target: PathLike, suffix: str = "") -> None:
        self.target = _as_path(target)
        if os.path.isdir(self.target):
            raise UserError(f"cannot write {display_path(self.target)}: it is a folder")
        try:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            self.path = part_path(self.target, suffix)
            # reserve the name; os.open's mode honours the umask, so outputs are ordinary files
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except OSError as e:
            raise write_error(self.target, e) from e

    def commit(self) -> Path:
        """Flush the temporary to disk and rename it onto the target (discarded on failure)."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(fd)  # the data is on disk before the name points at it
            finally:
                os.close(fd)
            os.replace(self.path, self.target)
        except OSError as e:
            self.discard()
            raise write_error(self.target, e) from e
        return self.target

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_output(path: PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds it is renamed onto
    ``path``, on any exception it is removed. An OSError (disk full, read-only, quota...)
    becomes a one-line UserError naming ``path``."""
    part = PartFile(path, suffix)
    try:
        yield part.path
    except OSError as e:
        part.discard()
        raise write_error(part.target, e) from e
    except BaseException:
        part.discard()
        raise
    part.commit()


def atomic_write(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that it appears whole or not at all."""
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def check_output_dir(folder: PathLike, create: bool = True) -> Path:
    """Create ``folder`` if needed and prove it writable by creating and removing a
    temporary file, so a long job fails at once rather than when it saves its first result.
    ``create=False`` checks without making anything: the folder, or the nearest folder above
    it that exists, must be writable (so a run that fails later leaves no empty folder)."""
    p = _as_path(folder)
    if os.path.lexists(p) and not os.path.isdir(p):
        raise UserError(f"cannot write to folder {display_path(p)}: it is a file")
    if not create:
        above = p.absolute()
        while not os.path.lexists(above) and above != above.parent:
            above = above.parent
        if not os.path.isdir(above) or not os.access(above, os.W_OK | os.X_OK):
            raise UserError(f"cannot write to folder {display_path(p)}: {display_path(above)} is not a writable folder")
        return p
    try:
        p.mkdir(parents=True, exist_ok=True)
        probe = part_path(p / "write-test")
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        probe.unlink()
    except OSError as e:
        raise UserError(f"cannot write to folder {display_path(p)}: {_reason(e)}") from e
    return p


def sibling_path(output: PathLike, tag: str) -> Path:
    """A second output written beside ``output``: OUT.png -> OUT_<tag>.png."""
    p = _as_path(output)
    return p.with_name(f"{p.stem}_{tag}{p.suffix}")


def check_output_file(path: PathLike, suffixes: Iterable[str]) -> Path:
    """Check before long work that ``path`` can be written: a known suffix (any case), not
    a folder, in a writable folder."""
    p = _as_path(path)
    allowed = [s.lower() for s in suffixes]
    if p.suffix.lower() not in allowed:
        raise UserError(f"output {display_path(p)} must end in one of: {', '.join(allowed)}")
    if os.path.isdir(p):
        raise UserError(f"cannot write {display_path(p)}: it is a folder")
    check_output_dir(p.parent)
    return p


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def clean_stray_parts(folder: PathLike) -> int:
    """Remove the temporaries that runs killed on this host left in ``folder``; those of a
    live process (this one included) are kept. Returns how many were removed."""
    p = _as_path(folder)
    pattern = _part_pattern(_host())
    removed = 0
    try:
        entries = list(os.scandir(p))
    except OSError:
        return 0
    for entry in entries:
        m = pattern.match(entry.name)
        if not m or _alive(int(m["pid"])) or not entry.is_file(follow_symlinks=False):
            continue
        try:
            os.unlink(entry.path)
            removed += 1
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warning("cannot remove unfinished file %s: %s", display_path(entry.path), _reason(e))
    if removed:
        log.info("removed %d unfinished file(s) of stopped runs in %s", removed, display_path(p))
    return removed


@contextlib.contextmanager
def locked(path: PathLike) -> Iterator[None]:
    """Hold an exclusive lock for ``path`` (a ``flock`` on the hidden sibling ``.<name>.lock``).
    The lock file stays: deleting it would let two processes lock two different files."""
    p = _as_path(path)
    lock = p.with_name(f".{p.name}.lock")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)  # a planted link is refused
    except OSError as e:
        raise write_error(lock, e) from e
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _open_regular(p: Path, what: str) -> int:
    """A read-only descriptor of ``p``, which must be a regular file. Opened without blocking,
    so a FIFO with no writer is refused rather than waited on."""
    name = display_path(p)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            raise UserError(f"{what} not found: {name}") from None
        if e.errno == errno.EISDIR:
            raise UserError(f"expected a file, got a folder: {name}") from None
        raise UserError(f"cannot read {what} {name}: {_reason(e)}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a pipe, device or socket)"
        raise UserError(f"refusing {what} {name}: it is {kind}")
    return fd


_LINK_ERRNOS = (errno.ELOOP, errno.EMLINK)  # what O_NOFOLLOW gives for a link (Linux; BSD)
_NOFOLLOW = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class Refused(UserError):
    """A file a store will not read: a link, outside its folder, not a regular file; ``why``
    says which in a few words."""

    def __init__(self, path: Path, what: str, why: str) -> None:
        super().__init__(f"refusing {what} {display_path(path)}: {why}; a store reads only regular files inside its "
                         f"own folder")
        self.why = why


def _refused(path: Path, what: str, why: str) -> Refused:
    return Refused(path, what, why)


def _parts_inside(root: Path, path: Path, what: str) -> tuple[str, ...]:
    """The names that lead from ``root`` to ``path`` (``path`` as a store builds it: root / ...)."""
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        raise _refused(path, what, f"it is not inside {display_path(root)}") from None
    if not parts or any(part in (".", "..") for part in parts):
        raise _refused(path, what, f"it is not inside {display_path(root)}")
    return parts


def _is_link(name: str, dir_fd: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _open_dir_inside(root: Path, parts: tuple[str, ...], path: Path, what: str) -> int | None:
    """A descriptor of the folder ``root/parts...``, every name below ``root`` opened without
    following a link; None when one of them does not exist (or is a file)."""
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))  # root: as the user named it
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        raise UserError(f"cannot read {what} {display_path(path)}: {_reason(e)}") from None
    for part in parts:
        try:
            below = os.open(part, _NOFOLLOW | os.O_DIRECTORY, dir_fd=fd)
        except OSError as e:
            link = e.errno in _LINK_ERRNOS or (e.errno == errno.ENOTDIR and _is_link(part, fd))
            os.close(fd)
            if link:
                raise _refused(path, what, f"its folder {part} is a symbolic link") from None
            if e.errno in (errno.ENOENT, errno.ENOTDIR):
                return None
            raise UserError(f"cannot read {what} {display_path(path)}: {_reason(e)}") from None
        os.close(fd)
        fd = below
    return fd


def open_inside(root: PathLike, path: PathLike, what: str) -> BinaryIO | None:
    """``path`` opened for reading (a file object named ``path``, seekable, mappable) when it is
    a regular file inside the store folder ``root``, reached without following any link below
    ``root`` (``root`` itself is taken as the user named it); None when there is no such file.
    A link (to anything, inside or out), a link among the folders below ``root``, a path not
    under ``root``, a FIFO, device or folder: a one-line UserError naming it as ``what``.
    The checks are on the descriptor that is read, so nothing can be swapped in between."""
    r, p = _as_path(root), _as_path(path)
    parts = _parts_inside(r, p, what)
    dir_fd = _open_dir_inside(r, parts[:-1], p, what)
    if dir_fd is None:
        return None
    try:
        fd = os.open(parts[-1], _NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError as e:
        if e.errno in _LINK_ERRNOS:
            raise _refused(p, what, "it is a symbolic link") from None
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        if e.errno == errno.EISDIR:
            raise _refused(p, what, "it is a folder") from None
        raise UserError(f"cannot read {what} {display_path(p)}: {_reason(e)}") from None
    finally:
        os.close(dir_fd)
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise _refused(p, what, "it is a folder" if stat.S_ISDIR(mode) else
                       "it is not a regular file (a pipe, device or socket)")
    return open(os.fspath(p), "rb", opener=lambda *_: fd)  # named by its path, as np.memmap wants


def read_inside(root: PathLike, path: PathLike, what: str, limit: int) -> bytes | None:
    """The whole of ``path`` (at most ``limit`` bytes) when ``open_inside`` opens it; None when
    there is no such file; a one-line UserError for a file that is refused or too large."""
    f = open_inside(root, path, what)
    if f is None:
        return None
    with f:
        return _read_limited(f, _as_path(path), what, limit)


def read_stored(root: PathLike, path: PathLike, what: str, limit: int) -> bytes | None:
    """``read_inside`` for a store's readers, which show what is missing as "not computed": a
    refused file is logged as a one-line warning and read as missing."""
    try:
        return read_inside(root, path, what, limit)
    except UserError as e:
        log.warning("%s; ignored", e)
        return None


def real_folder(root: PathLike, folder: PathLike) -> Path:
    """``folder`` (under ``root``), made where missing, when it and every folder between
    ``root`` and it is a real folder: a store or a site never writes through a link (what it
    wrote would land outside it, and its readers would refuse it). A one-line UserError
    otherwise."""
    r, p = _as_path(root), _as_path(folder)
    try:
        parts = p.relative_to(r).parts
    except ValueError:
        raise UserError(f"cannot write {display_path(p)}: it is not inside {display_path(r)}") from None
    try:
        r.mkdir(parents=True, exist_ok=True)
        here = r
        for part in parts:
            here = here / part
            if part in (".", ".."):
                raise UserError(f"cannot write {display_path(p)}: it is not inside {display_path(r)}")
            with contextlib.suppress(FileExistsError):
                here.mkdir()
            mode = os.lstat(here).st_mode
            if stat.S_ISLNK(mode):
                raise UserError(f"cannot write into {display_path(here)}: it is a symbolic link (deepvis writes "
                                f"only inside its own folders; remove the link)")
            if not stat.S_ISDIR(mode):
                raise UserError(f"cannot write into {display_path(here)}: it is a file, not a folder")
    except OSError as e:
        raise write_error(p, e) from e
    return p


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n < 10**7 and n % 10**6 else f"{n / 1e6:.0f} MB"


def check_regular_file(path: PathLike, what: str) -> Path:
    """``path`` when it names a regular file (what OpenCV's video reader may open: it would
    block on a FIFO and read a device forever); a one-line UserError otherwise."""
    p = _as_path(path)
    os.close(_open_regular(p, what))
    return p


def read_input(path: PathLike, what: str, limit: int) -> bytes:
    """The whole of a regular file of at most ``limit`` bytes; ``what`` ("image", "settings
    file") names it in the one-line UserError for anything else. The limit holds even for a
    file that grows while it is read."""
    p = _as_path(path)
    with os.fdopen(_open_regular(p, what), "rb") as f:
        return _read_limited(f, p, what, limit)


def _read_limited(f: BinaryIO, p: Path, what: str, limit: int) -> bytes:
    """All of the open regular file ``f``, refused (one line) when it is over ``limit`` bytes,
    whether its size says so or it grows while read."""
    size = os.fstat(f.fileno()).st_size
    data = f.read(limit + 1) if size <= limit else b""
    if size > limit or len(data) > limit:
        raise UserError(f"refusing {what} {display_path(p)}: it is {_megabytes(max(size, len(data)))}; the limit "
                        f"is {_megabytes(limit)} (more than a file of this kind can need)")
    return data


def sha256_of(path: PathLike) -> str:
    """The SHA-256 of a file's bytes, hex (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def move_aside(p: Path, why: str) -> Path:
    """Rename a damaged file to ``<name>.damaged-<time>`` (never delete what a user made), with
    a warning saying ``why``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = p.with_name(f"{p.name}.damaged-{stamp}")
    n = 1
    while aside.exists():
        aside, n = p.with_name(f"{p.name}.damaged-{stamp}-{n}"), n + 1
    try:
        os.replace(p, aside)
    except OSError as e:
        raise write_error(p, e) from e
    log.warning("%s %s: moved it aside to %s and started a new one", display_path(p), why, aside.name)
    return aside


def update_json(path: PathLike, merge: Callable[[dict], dict],
                validate: Callable[[object], bool] = lambda data: True, indent: int | None = 1,
                root: PathLike | None = None) -> dict:
    """Read-modify-write a JSON object that other processes may update too: under the lock,
    read it (missing: ``{}``), ``merge``, write atomically. A file that is not JSON (deep
    nesting included), not an object or fails ``validate``, and one that is refused (a link,
    not a regular file, over the JSON limit), is moved aside to ``<name>.damaged-<time>``
    (with a warning; a link is renamed, its target left alone), so nothing a user made is
    lost, and the merge starts from ``{}``. ``root``: the store folder it belongs to (default
    its own folder); it is read only as ``read_inside`` allows and written only through real
    folders. ``indent`` None writes one line (Python's C encoder: a third of the time for a
    big index). Returns what was written."""

    p = _as_path(path)
    real_folder(p.parent if root is None else root, p.parent)
    with locked(p):
        data: dict = {}
        try:
            raw = read_inside(p.parent if root is None else root, p, "JSON file", MAX_JSON_BYTES)
        except Refused as e:
            move_aside(p, f"is refused ({e.why})")
            raw = None
        if raw is not None:
            try:
                current = parse_json(raw)
            except BadJSON as e:
                move_aside(p, f"is damaged ({e})")
            else:
                if isinstance(current, dict) and validate(current):
                    data = current
                else:
                    move_aside(p, "does not have the expected layout")
        result = merge(data)
        atomic_write(p, (json.dumps(result, indent=indent) + "\n").encode())
        return result


__all__ = ["PartFile", "Refused", "atomic_output", "atomic_write", "check_output_dir", "check_output_file",
           "check_regular_file", "clean_stray_parts", "display_path", "locked", "move_aside", "open_inside",
           "part_path", "read_input", "read_inside", "read_stored", "real_folder", "update_json", "write_error"]
