"""When the tracer hashes a written file: at the last close of it in the run, as the descriptor model
follows forks (shared or copied tables), dup2, close_range, close-on-exec and exits. Real files on disk,
events as the kernel program would send them (no kernel needed)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from liubai.collector.written_files import WrittenFiles
from liubai.ebpf.descriptors import CLONE_FILES, O_CLOEXEC
from liubai.ebpf.events import (
    FD_CLOSE,
    FD_CLOSE_RANGE,
    FD_DUP,
    DigestEvent,
    ExecEvent,
    ExitEvent,
    FdEvent,
    ForkEvent,
    OpenEvent,
)

O_WRONLY_CREAT_TRUNC = 0o1 | 0o100 | 0o1000
LATER = 2**62  # event times (boot offset 0, so about 2116): the closes come after every write here


def _open(
    path: Path | None, fd: int, pid: int = 1, flags: int = O_WRONLY_CREAT_TRUNC
) -> tuple[OpenEvent, str | None]:
    return OpenEvent(
        pid, pid, 0, LATER, 10, path=str(path), fd=fd, flags=flags
    ), None if path is None else str(path)


def _fd(op: int, fd: int, pid: int = 1, newfd: int = -1, last: int = 0) -> FdEvent:
    return FdEvent(pid, pid, 0, LATER + 1, 10 if pid == 1 else 20, op=op, fd=fd, newfd=newfd, last=last)


def _done(files: WrittenFiles, digests: list[DigestEvent]) -> list[DigestEvent]:
    files.finish(None)  # waits for the hashing under way
    return digests


def _file(tmp_path: Path, name: str = "out", text: bytes = b"made\n") -> Path:
    path = tmp_path / name
    path.write_bytes(text)
    return path


def test_a_close_while_another_descriptor_holds_the_file_does_not_hash_it(tmp_path: Path) -> None:
    out = _file(tmp_path)
    files = WrittenFiles(0)
    assert files.opened(*_open(out, 3)) == []
    assert files.after(_fd(FD_DUP, 3, newfd=5)) == []
    assert files.after(_fd(FD_CLOSE, 3)) == []  # fd 5 still refers to it
    (digest,) = _done(files, files.after(_fd(FD_CLOSE, 5)))
    assert digest.sha256 == hashlib.sha256(b"made\n").hexdigest() and digest.hash_note is None
    assert (digest.opener_pid, digest.opened_ts, digest.path) == (1, LATER, str(out))


def test_a_copied_table_keeps_the_file_open_until_the_last_holder_exits(tmp_path: Path) -> None:
    out = _file(tmp_path)
    files = WrittenFiles(0)
    files.opened(*_open(out, 3))
    files.after(ForkEvent(1, 1, 0, LATER, 10, child=2, child_start_ns=20, clone_flags=17))
    assert files.after(_fd(FD_CLOSE, 3, pid=2)) == []  # the child's copy only
    assert files.after(ExitEvent(2, 2, 0, LATER + 2, 20, exit_code=0)) == []
    (digest,) = _done(files, files.after(ExitEvent(1, 1, 0, LATER + 3, 10, exit_code=0)))
    assert digest.sha256 is not None and digest.pid == 1


def test_a_shared_table_is_closed_for_both_processes(tmp_path: Path) -> None:
    out = _file(tmp_path)
    files = WrittenFiles(0)
    files.opened(*_open(out, 3))
    files.after(ForkEvent(1, 1, 0, LATER, 10, child=2, child_start_ns=20, clone_flags=CLONE_FILES | 17))
    (digest,) = _done(files, files.after(_fd(FD_CLOSE, 3, pid=2)))
    assert digest.sha256 is not None and digest.pid == 2


def test_close_range_and_close_on_exec_close_written_files(tmp_path: Path) -> None:
    a, b, c = (_file(tmp_path, name) for name in "abc")
    files = WrittenFiles(0)
    files.opened(*_open(a, 3))
    files.opened(*_open(b, 4, flags=O_WRONLY_CREAT_TRUNC | O_CLOEXEC))
    files.opened(*_open(c, 9))
    closed = files.after(_fd(FD_CLOSE_RANGE, 8, last=0xFFFFFFFF))
    assert [d.path for d in closed] == [str(c)]
    closed += files.after(ExecEvent(1, 1, 0, LATER + 2, 10, filename="/bin/true"))
    assert [d.path for d in closed] == [str(c), str(b)]  # fd 3 survives the exec
    assert all(d.sha256 for d in _done(files, closed))


def test_no_digest_of_a_file_changed_after_the_close_gone_or_unresolved(tmp_path: Path) -> None:
    out, gone = _file(tmp_path), _file(tmp_path, "gone")
    files = WrittenFiles(-LATER)  # every close happened in 1970, before the writes above
    files.opened(*_open(out, 3))
    files.opened(*_open(gone, 4))
    files.opened(*_open(None, 5))
    os.unlink(gone)
    notes = _done(files, [d for fd in (3, 4, 5) for d in files.after(_fd(FD_CLOSE, fd))])
    assert [(d.sha256, d.hash_note) for d in notes] == [
        (None, "the file changed after its writer closed it, before it could be hashed"),
        (None, "the file was gone before it could be hashed"),
        (None, "its path could not be resolved while the run went on"),
    ]


def test_a_device_is_never_opened_and_a_file_still_open_at_the_end_gets_no_digest(tmp_path: Path) -> None:
    out = _file(tmp_path)
    files = WrittenFiles(0)
    (null,) = files.opened(*_open(Path("/dev/null"), 3))  # said at once; the descriptor is not followed
    assert not files.tracks(1) and files.after(_fd(FD_CLOSE, 3)) == []
    assert (null.sha256, null.hash_note) == (None, "not a regular file")
    files.opened(*_open(out, 4))
    (still,) = files.finish(None)
    assert still.sha256 is None and still.hash_note is not None
    assert still.hash_note.startswith("no last close of it was seen before tracing stopped")
