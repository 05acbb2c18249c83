"""A growing log file read line by line from a byte offset, followed across truncation and rotation.

A file is known by its identity (``st_dev``, ``st_ino``) and the byte offset just after the last complete
line shipped, as Fluent Bit and Vector track it: a count of records per path cannot tell a rotated or
truncated file from the one it counted. At each pass, with the saved ``FilePosition``:

* the path is the same inode and its bytes before the offset are unchanged: read on from the offset;
* the same inode, now shorter than the offset or rewritten (copytruncate): the lines written between
  the last pass and the truncation live only in the copy, a sibling (``app.jsonl.1``,
  ``app.jsonl-20260101``) whose bytes before the offset match; that copy is read from the offset to its
  end first, then the truncated file from 0;
* another inode at the path, or none (rename rotation): the old inode is read to its end, through the
  descriptor still open from the last pass or found under its new name by inode, then the new file
  from 0.

"Bytes before the offset unchanged" is checked with a fingerprint of the first and the last bytes before
it, so a file truncated and written past the old offset again is still seen to be another text. Only
complete lines (ending in ``\\n``) are read from the live file, so a line caught half-written is read on
a later pass; a rotated file is finished, and its unterminated last line is read too.

Lines written between a copy and its truncation are in neither file: no reader can have them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["FilePosition", "FileTail", "TailLine"]

log = logging.getLogger("liubai.agent")

_WINDOW = 256  # bytes hashed at each end of the text before an offset
_CHUNK = 1 << 20
_SIBLINGS_MAX = 64  # rotated names looked at, newest first
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True, slots=True)
class FilePosition:
    """Where reading stops and resumes: the file (device, inode), the byte offset after the last line
    shipped, how many lines lie before it (for ``file:line`` locations), and the fingerprint of the text
    before it."""

    dev: int
    ino: int
    offset: int
    line: int
    fingerprint: str


@dataclass(frozen=True, slots=True)
class TailLine:
    """One line, the path it was read through, its number there, and the position just after it."""

    name: str
    lineno: int
    data: bytes
    after: FilePosition


def _fingerprint(head: bytes, tail: bytes) -> str:
    return hashlib.blake2b(head + b"\0" + tail, digest_size=12).hexdigest()


@dataclass(slots=True)
class _Open:
    """An open file and the identity it had when opened."""

    name: str
    fd: int
    dev: int
    ino: int

    @classmethod
    def of(cls, name: str) -> _Open | None:
        try:
            fd = os.open(name, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            return None
        return cls(name, fd, st.st_dev, st.st_ino)

    def same(self, pos: FilePosition) -> bool:
        return (self.dev, self.ino) == (pos.dev, pos.ino)

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def fingerprint(self, offset: int) -> str:
        head = os.pread(self.fd, min(offset, _WINDOW), 0)
        start = max(0, offset - _WINDOW)
        return _fingerprint(head, os.pread(self.fd, offset - start, start))

    def holds(self, pos: FilePosition) -> bool:
        """Whether this file's text before ``pos.offset`` is the text ``pos`` was taken from."""
        return self.size() >= pos.offset and self.fingerprint(pos.offset) == pos.fingerprint

    def close(self) -> None:
        os.close(self.fd)


class FileTail:
    """Complete lines of one path from a ``FilePosition`` on. The files read are kept open while the
    position is in them, so a file renamed away (or deleted) is still read to its end."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._held: dict[tuple[int, int], _Open] = {}

    def close(self) -> None:
        for f in self._held.values():
            f.close()
        self._held.clear()

    def head(self, size: int) -> bytes:
        """The first ``size`` bytes at the path now (b"" if it cannot be read)."""
        try:
            with open(self.path, "rb") as fh:
                return fh.read(size)
        except OSError:
            return b""

    def lines(self, pos: FilePosition | None) -> Iterator[TailLine]:
        """The lines after ``pos`` (from the start of the file at the path when None)."""
        keep = None if pos is None else (pos.dev, pos.ino)
        for ident in [i for i in self._held if i != keep]:
            self._held.pop(ident).close()
        cur = self._hold(_Open.of(self.path))
        if pos is not None and pos.offset > 0:
            if cur is not None and cur.same(pos):
                if cur.holds(pos):
                    yield from _read(cur, pos.offset, pos.line, final=False)
                    return
                copy = self._find(pos, by_inode=False, skip=cur)
                log.warning(
                    "%s was truncated or rewritten (it was read to byte %d); %s",
                    self.path,
                    pos.offset,
                    f"reading the rest of its copy {copy.name} first"
                    if copy
                    else "no copy of it holds the lines after that byte, so any written before the truncation are lost",
                )
                if copy is not None:
                    yield from _read(copy, pos.offset, pos.line, final=True)
            else:
                old = self._held.get((pos.dev, pos.ino)) or self._find(pos, by_inode=True, skip=cur)
                if old is not None and old.holds(pos):
                    # finished once another file is at the path; while none is, the writer may still add to it
                    yield from _read(old, pos.offset, pos.line, final=cur is not None)
                else:
                    log.warning(
                        "%s was rotated and its old file is gone (it was read to byte %d); the lines after "
                        "that byte, if any, are lost",
                        self.path,
                        pos.offset,
                    )
        if cur is not None:
            yield from _read(cur, 0, 0, final=False)

    def _hold(self, f: _Open | None) -> _Open | None:
        """``f``, or the same file already held open (``f`` is then closed)."""
        if f is None:
            return None
        held = self._held.setdefault((f.dev, f.ino), f)
        if held is not f:
            f.close()
        return held

    def _find(self, pos: FilePosition, *, by_inode: bool, skip: _Open | None) -> _Open | None:
        """The rotated file ``pos`` was taken from: a sibling named ``<name>.*``, ``<name>-*`` or
        ``<name>_*`` with its inode (renamed), or else, not by inode, with its text before the offset (a
        copy); gzip files are not looked into."""
        for name in _siblings(self.path):
            found = _Open.of(name)
            if found is None:
                continue
            ident = (found.dev, found.ino)
            if (
                (skip is None or ident != (skip.dev, skip.ino))
                and os.pread(found.fd, 2, 0) != _GZIP_MAGIC
                and (found.same(pos) if by_inode else found.holds(pos))
            ):
                return self._hold(found)
            found.close()
        return None


def _siblings(path: str) -> list[str]:
    """Files next to ``path`` named like its rotations, newest first."""
    where = Path(path).parent
    base = Path(path).name
    prefixes = (base + ".", base + "-", base + "_")
    try:
        entries = [
            e for e in os.scandir(where) if e.name.startswith(prefixes) and e.is_file(follow_symlinks=False)
        ]
        entries.sort(key=lambda e: e.stat(follow_symlinks=False).st_mtime_ns, reverse=True)
    except OSError:
        return []
    return [str(where / e.name) for e in entries[:_SIBLINGS_MAX]]


def _read(f: _Open, offset: int, line: int, *, final: bool) -> Iterator[TailLine]:
    """Lines of ``f`` from byte ``offset`` (``line`` lines before it); an unterminated last line only when
    the file is ``final`` (rotated away, so no one will finish it)."""
    head = b""
    before = os.pread(
        f.fd, min(offset, _WINDOW), offset - min(offset, _WINDOW)
    )  # the text just before ``buf``
    buf = b""
    at = offset  # file offset of buf[0]
    while chunk := os.pread(f.fd, _CHUNK, at + len(buf)):
        if len(head) < _WINDOW:  # the start of the file, which only grows while it is appended to
            head = os.pread(f.fd, _WINDOW, 0)
        buf += chunk
        start = 0
        while (nl := buf.find(b"\n", start)) >= 0:
            line += 1
            yield _line(f, head, before, buf, at, start, nl + 1, line)
            start = nl + 1
        if start:
            before = (before + buf[:start])[-_WINDOW:]
            buf = buf[start:]
            at += start
    if final and buf:
        yield _line(f, head, before, buf, at, 0, len(buf), line + 1)


def _line(
    f: _Open, head: bytes, before: bytes, buf: bytes, at: int, start: int, end: int, line: int
) -> TailLine:
    """The line ``buf[start:end]`` (``buf`` starts at file offset ``at``, after the text ``before``)."""
    offset = at + end
    tail = buf[max(0, end - _WINDOW) : end]
    if len(tail) < _WINDOW:
        tail = (before + buf[:end])[-_WINDOW:]
    position = FilePosition(f.dev, f.ino, offset, line, _fingerprint(head[:_WINDOW][:offset], tail))
    return TailLine(f.name, line, buf[start:end], position)
