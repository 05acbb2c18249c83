"""A file its writer has closed, read back: is it still the regular file that was closed, unchanged since,
and its sha256. Only what its name shows to be a regular file is opened (opening a device or FIFO can
have effects), and a digest is kept only when the name's stat before opening and the descriptor's fstat
after reading agree."""

from __future__ import annotations

import hashlib
import os
import stat

__all__ = ["GONE", "INLINE_MAX", "digest_open_file", "is_device", "open_closed_file"]

# A change time later than the close by more than this is a change after it. Only the reading of the two
# clocks apart (microseconds, the offset being read at each batch) can put a write before the close after
# it: a coarse change time lags, never leads. A wider margin would vouch for writes just after the close.
CLOSE_SLACK_NS = 1_000_000
GONE = "the file was gone before it could be hashed"
INLINE_MAX = 256 << 10  # hashed on the reader's own thread up to this size (a hand-off costs more)
_CHUNK = 1 << 20
_READ_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY  # no wait on a FIFO, no tty taken


def open_closed_file(path: str, closed_boot_ns: int, boot_offset_ns: int) -> tuple[int, os.stat_result] | str:
    """A read descriptor of the file at ``path`` and the stat of that name, if it is the regular file its
    writer closed at ``closed_boot_ns`` (unchanged since), else why not. Opening a device or FIFO can
    have effects, so only what the name shows to be a regular file is opened; that the descriptor reached
    the same file, still unchanged, ``digest_open_file`` checks once it has read it."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return GONE
    except OSError as exc:
        return f"the file could not be read to hash it: {exc.strerror or exc}"
    if not stat.S_ISREG(named.st_mode):
        return "not a regular file"
    if named.st_ctime_ns > closed_boot_ns + boot_offset_ns + CLOSE_SLACK_NS:
        return "the file changed after its writer closed it, before it could be hashed"
    try:
        fd = os.open(path, _READ_FLAGS)
    except FileNotFoundError:
        return GONE
    except OSError as exc:
        return f"the file could not be opened to hash it: {exc.strerror or exc}"
    return fd, named


def digest_open_file(fd: int, named: os.stat_result) -> tuple[str | None, str | None]:
    """(sha256, None) of the file open at ``fd`` if it is the file ``named`` was taken of and did not change
    from then to the end of reading it, else (None, why); closes ``fd``. Reads in the file's own size, so
    a small file costs one read and no big buffer; once that size is read, no read looks for the end: a
    file that grew shows in the fstat after."""
    try:
        want, left = min(max(named.st_size, 1), _CHUNK), named.st_size
        try:
            first = os.read(fd, want)
            digest, left = hashlib.sha256(first), left - len(first)
            while left > 0 and (chunk := os.read(fd, _CHUNK)):
                digest.update(chunk)
                left -= len(chunk)
        except OSError as exc:
            return None, f"the file could not be read to hash it: {exc.strerror or exc}"
        after = os.fstat(fd)
    finally:
        os.close(fd)
    if (after.st_dev, after.st_ino) != (named.st_dev, named.st_ino):
        return None, "the file was replaced while it was being hashed"
    if (named.st_size, named.st_mtime_ns, named.st_ctime_ns) != (
        after.st_size,
        after.st_mtime_ns,
        after.st_ctime_ns,
    ):
        return None, "the file changed while it was being hashed"
    return digest.hexdigest(), None


def is_device(path: str) -> bool:
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False
