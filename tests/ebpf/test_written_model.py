"""When the tracer hashes a written file: at the last close of it in the run, as the descriptor model
follows forks (shared or copied tables), dup2, close_range, close-on-exec and exits, and under the name a
rename gave it. Real files on disk, events as the kernel program would send them (no kernel needed)."""

from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path

import pytest

from liubai.collector.closed_file import digest_open_file
from liubai.collector.live_events import LiveEvents
from liubai.collector.written_files import WrittenFiles
from liubai.ebpf import procfs
from liubai.ebpf.descriptors import CLONE_FILES, O_CLOEXEC
from liubai.ebpf.events import (
    FD_CLOSE,
    FD_CLOSE_RANGE,
    FD_DUP,
    RENAME_EXCHANGE,
    DigestEvent,
    EventDecoder,
    ExecEvent,
    ExitEvent,
    FdEvent,
    ForkEvent,
    OpenEvent,
    RenameEvent,
)
from liubai.ebpf.procfs import clock_boot_ns

O_WRONLY_CREAT_TRUNC = 0o1 | 0o100 | 0o1000
HDR = struct.Struct("<IIIIQQ")  # type, tgid, tid, uid, ts, start_ns: the kernel's event header
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


def _rename(
    old: Path | None, new: Path | None, pid: int = 1, flags: int = 0, ts: int = LATER + 5
) -> RenameEvent:
    return RenameEvent(pid, pid, 0, ts, 10, old_path=str(old), new_path=str(new), flags=flags)


def _renamed(files: WrittenFiles, old: Path | None, new: Path | None, **kw: int) -> list[DigestEvent]:
    return files.renamed(
        _rename(old, new, **kw), None if old is None else str(old), None if new is None else str(new)
    )


def test_a_file_renamed_after_its_close_is_hashed_once_under_its_new_name(tmp_path: Path) -> None:
    """Write aside, close, rename: both the write and the rename get the digest, read under the name the
    file ends under (the temporary name exists no more when the batch settles)."""
    tmp, final = tmp_path / "out.tmp", _file(tmp_path, "out", b"atomic\n")
    files = WrittenFiles(0)
    files.opened(*_open(tmp, 3))
    (written,) = files.after(_fd(FD_CLOSE, 3))
    (moved,) = _renamed(files, tmp, final, pid=2)
    files.settle()
    assert written.sha256 == moved.sha256 == hashlib.sha256(b"atomic\n").hexdigest()
    assert written.hash_note is None and written.path == str(tmp)  # the write it vouches for
    assert (moved.path, moved.opener_pid, moved.opened_ts, moved.pid) == (str(final), 2, LATER + 5, 2)


def test_a_file_renamed_while_still_open_is_hashed_under_its_new_name_at_its_close(tmp_path: Path) -> None:
    tmp, final = tmp_path / "held.tmp", _file(tmp_path, "held", b"held\n")
    files = WrittenFiles(0)
    files.opened(*_open(tmp, 3))
    _renamed(files, tmp, final)
    (closed,) = _done(files, files.after(_fd(FD_CLOSE, 3)))
    assert (closed.path, closed.sha256) == (str(final), hashlib.sha256(b"held\n").hexdigest())


def test_a_name_given_to_another_file_by_a_rename_is_not_hashed_as_the_first_files(tmp_path: Path) -> None:
    """P wrote out and closed it; before the batch settles, a rename puts another file at out. What lies
    at out now is not what P wrote, whatever the change times say."""
    out, other = _file(tmp_path, "out", b"theirs\n"), tmp_path / "other"
    held = tmp_path / "held"
    files = WrittenFiles(0)
    files.opened(*_open(out, 3))
    files.opened(*_open(held, 4))
    (first,) = files.after(_fd(FD_CLOSE, 3))
    (renamed,) = _renamed(files, other, out)
    _renamed(files, other, held)  # held is still open: its later close cannot be hashed by the name
    (later,) = files.after(_fd(FD_CLOSE, 4))
    _done(files, [])
    note = "a rename gave its name to another file before it could be hashed"
    assert (first.sha256, first.hash_note) == (None, note) and (later.sha256, later.hash_note) == (None, note)
    assert renamed.sha256 == hashlib.sha256(b"theirs\n").hexdigest()


def test_a_file_found_gone_is_hashed_when_the_next_batch_tells_where_it_went(tmp_path: Path) -> None:
    tmp, final = tmp_path / "late.tmp", _file(tmp_path, "late", b"late\n")
    files = WrittenFiles(0)
    files.opened(*_open(tmp, 3))
    (written,) = files.after(_fd(FD_CLOSE, 3))
    files.settle()  # the batch ends before the rename is read: the temporary name is gone
    assert written.hash_note == "the file was gone before it could be hashed"
    (moved,) = _renamed(files, tmp, final)
    files.settle()
    assert written.sha256 == moved.sha256 == hashlib.sha256(b"late\n").hexdigest()
    assert written.hash_note is None


def test_an_exchange_swaps_names_and_a_directory_rename_moves_what_lies_below(tmp_path: Path) -> None:
    a, b = _file(tmp_path, "a", b"was b\n"), _file(tmp_path, "b", b"was a\n")  # as after the exchange
    (tmp_path / "new").mkdir()
    inner = _file(tmp_path / "new", "f", b"inner\n")
    files = WrittenFiles(0)
    files.opened(*_open(a, 3))
    files.opened(*_open(tmp_path / "old" / "f", 4))
    wrote_a, wrote_f = files.after(_fd(FD_CLOSE, 3)) + files.after(_fd(FD_CLOSE, 4))
    at_b, at_a = _renamed(files, a, b, flags=RENAME_EXCHANGE)
    _renamed(files, tmp_path / "old", tmp_path / "new", ts=LATER + 6)
    _done(files, [])
    assert wrote_a.sha256 == at_b.sha256 == hashlib.sha256(b"was a\n").hexdigest()
    assert at_a.sha256 == hashlib.sha256(b"was b\n").hexdigest() and at_a.opened_ts == at_b.opened_ts + 1
    assert wrote_f.sha256 == hashlib.sha256(inner.read_bytes()).hexdigest()


def test_a_rename_to_a_name_not_resolved_says_so(tmp_path: Path) -> None:
    files = WrittenFiles(0)
    (moved,) = _renamed(files, tmp_path / "x", None)
    assert (moved.sha256, moved.hash_note) == (None, "its path could not be resolved while the run went on")


def test_names_resolved_in_a_batch_with_dropped_events_are_not_hashed(tmp_path: Path) -> None:
    """The kernel's drop count is read at the end of each batch: a batch it rose in may have lost a chdir
    before one of its opens, so a relative name resolved in it is not trusted, nor hashed."""
    rel, _ = _file(tmp_path, "rel", b"x\n"), _file(tmp_path, "rel2", b"y\n")
    lost = [0]
    live = LiveEvents(EventDecoder(), lost=lambda: lost[0], hash_written=True)
    live.start_at(1, str(tmp_path))
    later = clock_boot_ns() + 10**9

    def raw_open(fd: int, name: bytes) -> bytes:
        return (
            HDR.pack(5, 1, 1, 0, later, 10)
            + struct.pack("<iiII", fd, -100, O_WRONLY_CREAT_TRUNC, 0)
            + name
            + b"\0"
        )

    def raw_close(fd: int) -> bytes:
        return HDR.pack(8, 1, 1, 0, later + 1, 10) + struct.pack("<IiiIII", FD_CLOSE, fd, -1, 0, 0, 0)

    live(raw_open(3, b"rel"))
    live(raw_close(3))
    live.settle()
    live(raw_open(4, b"rel2"))
    live(raw_close(4))
    lost[0] = 1  # a drop during the second batch
    live.settle()
    first, second = [e for e in live.events() if isinstance(e, DigestEvent)]
    assert (first.path, first.sha256) == (str(rel), hashlib.sha256(b"x\n").hexdigest())
    assert (second.sha256, second.hash_note) == (
        None,
        "the kernel dropped events while it was named, so its path is not sure",
    )


def test_a_rename_from_a_name_not_resolved_still_takes_the_name_it_gives(tmp_path: Path) -> None:
    """Where a file came from is not known, where it went is: what P wrote there is no longer there."""
    out = _file(tmp_path, "out", b"someone else's\n")
    files = WrittenFiles(0)
    files.opened(*_open(out, 3))
    (written,) = files.after(_fd(FD_CLOSE, 3))
    (moved,) = _renamed(files, None, out)
    _done(files, [])
    assert (written.sha256, written.hash_note) == (
        None,
        "a rename gave its name to another file before it could be hashed",
    )
    assert moved.sha256 == hashlib.sha256(b"someone else's\n").hexdigest()


def test_a_file_written_again_before_its_batch_settles_gets_no_digest_of_the_first_write(
    tmp_path: Path,
) -> None:
    """P wrote out and closed it; Q opens it for writing before the batch is hashed. What lies there now
    may be Q's, and the change time cannot tell within its margin: only Q's close gets a digest."""
    out = _file(tmp_path, "out", b"second\n")
    files = WrittenFiles(0)
    files.opened(*_open(out, 3))
    (first,) = files.after(_fd(FD_CLOSE, 3))
    files.opened(*_open(out, 3, pid=2))
    (second,) = _done(files, files.after(_fd(FD_CLOSE, 3, pid=2)))
    assert (first.sha256, first.hash_note) == (
        None,
        "it was opened for writing again before it could be hashed",
    )
    assert (second.sha256, second.opener_pid) == (hashlib.sha256(b"second\n").hexdigest(), 2)


def test_a_directory_replaced_by_a_rename_leaves_no_digest_of_what_was_written_below_it(
    tmp_path: Path,
) -> None:
    """dir/f was written and closed, then removed (unlinks are not traced) and another directory renamed
    over dir: what dir/f names now is the other directory's file, never the one written."""
    (tmp_path / "dir").mkdir()
    files = WrittenFiles(0)
    files.opened(*_open(tmp_path / "dir" / "f", 3))
    (written,) = files.after(_fd(FD_CLOSE, 3))
    (tmp_path / "dir").rmdir()
    (tmp_path / "other").mkdir()
    _file(tmp_path / "other", "f", b"not written by the run\n")
    (tmp_path / "other").rename(tmp_path / "dir")
    _renamed(files, tmp_path / "other", tmp_path / "dir")
    _done(files, [])
    assert (written.sha256, written.hash_note) == (
        None,
        "a rename gave its name to another file before it could be hashed",
    )


def test_a_name_written_again_after_its_file_was_found_gone_does_not_take_the_gone_files_digests(
    tmp_path: Path,
) -> None:
    """P's out was gone when its batch was hashed (removed, unseen). Q then opens out for writing and
    renames it on while still open: what it holds is Q's, so P's write keeps its 'gone' note."""
    out, final = tmp_path / "out", _file(tmp_path, "final", b"someone else's\n")
    files = WrittenFiles(0)
    files.opened(*_open(out, 3))
    (written,) = files.after(_fd(FD_CLOSE, 3))
    files.settle()  # out is not there
    files.opened(*_open(out, 4, pid=2))
    _renamed(files, out, final, pid=2)
    _done(files, [])
    assert (written.sha256, written.hash_note) == (None, "the file was gone before it could be hashed")


def test_a_write_open_or_rename_read_after_the_hashing_withdraws_the_digest_it_may_predate(
    tmp_path: Path,
) -> None:
    """An event's time is its syscall's exit, and it is read in a later batch: a write open (it may
    truncate, and writes follow at once) or a rename read after a file was hashed may have changed it
    before the reading. The digest is withdrawn; the file is hashed again at the later close or rename."""
    opened, renamed = _file(tmp_path, "opened", b"new\n"), _file(tmp_path, "renamed", b"other\n")
    files = WrittenFiles(0)
    files.opened(*_open(opened, 3))
    files.opened(*_open(renamed, 4))
    first_opened, first_renamed = files.after(_fd(FD_CLOSE, 3)) + files.after(_fd(FD_CLOSE, 4))
    files.settle()
    assert first_opened.sha256 and first_renamed.sha256  # read, as far as this batch tells
    files.opened(*_open(opened, 3, pid=2))
    (moved,) = _renamed(files, tmp_path / "elsewhere", renamed, pid=2)
    (second_opened,) = _done(files, files.after(_fd(FD_CLOSE, 3, pid=2)))
    assert (first_opened.sha256, first_opened.hash_note) == (
        None,
        "seen only after it was hashed, a write open of it came (so the digest may be of that)",
    )
    assert (first_renamed.sha256, first_renamed.hash_note) == (
        None,
        "seen only after it was hashed, a rename gave its name to another file (so the digest may be of that)",
    )
    assert second_opened.sha256 == hashlib.sha256(b"new\n").hexdigest()
    assert moved.sha256 == hashlib.sha256(b"other\n").hexdigest()


def test_a_change_time_even_a_few_milliseconds_after_the_close_is_a_change(tmp_path: Path) -> None:
    """A change time, from a coarse clock, lags the event clock, never leads it: one 2 ms after the close
    is a write after it, and no digest vouches for it."""
    for after_ms, hashed in ((2, False), (0, True)):
        out = _file(tmp_path, f"out-{after_ms}", b"late write\n")
        changed_at = out.stat().st_ctime_ns
        files = WrittenFiles(changed_at - after_ms * 1_000_000 - (LATER + 1))  # the close's wall time
        files.opened(*_open(out, 3))
        (digest,) = _done(files, files.after(_fd(FD_CLOSE, 3)))
        assert (digest.sha256 is not None) is hashed, after_ms
        if not hashed:
            assert (
                digest.hash_note == "the file changed after its writer closed it, before it could be hashed"
            )


def test_a_digest_is_only_of_the_file_its_name_showed_unchanged_until_it_was_read(tmp_path: Path) -> None:
    """The name is looked up once (a device must never be opened) and the descriptor read after: the
    file read must be the one the name showed, with the size and times it had then."""
    out, other = _file(tmp_path, "out", b"closed\n"), _file(tmp_path, "other", b"another\n")
    named = os.stat(out)
    assert digest_open_file(os.open(other, os.O_RDONLY), named) == (
        None,
        "the file was replaced while it was being hashed",
    )
    named = os.stat(out)
    with out.open("ab") as fh:
        fh.write(b"more\n")  # between the lookup and the read
    fd = os.open(out, os.O_RDONLY)
    assert digest_open_file(fd, named) == (None, "the file changed while it was being hashed")
    with pytest.raises(OSError):  # closed, not left open
        os.fstat(fd)
    fd = os.open(out, os.O_RDONLY)
    assert digest_open_file(fd, os.stat(out)) == (hashlib.sha256(b"closed\nmore\n").hexdigest(), None)


def _live_open(fd: int, name: bytes, ts: int) -> bytes:
    """A write open by this very process (its descriptor is real, so /proc shows its link)."""
    pid = os.getpid()
    head = HDR.pack(5, pid, pid, 0, ts, procfs.start_ns(pid))
    return head + struct.pack("<iiII", fd, -100, O_WRONLY_CREAT_TRUNC, 0) + name + b"\0"


def _live_close(fd: int, ts: int) -> bytes:
    pid = os.getpid()
    return HDR.pack(8, pid, pid, 0, ts, procfs.start_ns(pid)) + struct.pack(
        "<IiiIII", FD_CLOSE, fd, -1, 0, 0, 0
    )


def test_a_path_read_back_after_its_descriptor_was_reused_is_not_hashed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``..`` name is resolved by reading the descriptor's link while the run goes on. The reader lags:
    if the writer closed the file and the number went to another file before the link was read, the
    link names that other file, which must not get this write's digest."""
    (tmp_path / "sub").mkdir()
    other = _file(tmp_path, "other", b"read, not written\n")
    monkeypatch.chdir(tmp_path)
    live = LiveEvents(EventDecoder(), lost=lambda: 0, hash_written=True)

    opened_at = clock_boot_ns()
    fd = os.open("sub/../out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.write(fd, b"written\n")
    os.close(fd)
    closed_at = clock_boot_ns()
    assert os.open(other, os.O_RDONLY) == fd  # the number now holds the other file
    live(_live_open(fd, b"sub/../out", opened_at))  # the reader reads the link only now
    live(_live_close(fd, closed_at))
    os.close(fd)

    fd = os.open("sub/../out2", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.write(fd, b"second\n")
    live(_live_open(fd, b"sub/../out2", clock_boot_ns()))  # read while the file is still open
    os.close(fd)
    live(_live_close(fd, clock_boot_ns()))
    live.settle()

    reused, kept = [e for e in live.events() if isinstance(e, DigestEvent)]
    assert (reused.sha256, reused.hash_note) == (
        None,
        "its descriptor was closed or replaced before its path was read back, so the path read may be "
        "another file's",
    )
    assert (kept.path, kept.sha256) == (str(tmp_path / "out2"), hashlib.sha256(b"second\n").hexdigest())


def test_a_number_replaced_by_dup2_or_closed_by_exec_before_its_link_was_read_leaves_no_digest(
    tmp_path: Path,
) -> None:
    """Every way a number is freed counts, and every descriptor of the file loses the unsure path; one
    freed after the read leaves the path as read."""
    a, b, c = (_file(tmp_path, name) for name in "abc")
    unsure = "its descriptor was closed or replaced before its path was read back, so the path read may be"
    files = WrittenFiles(0)
    files.opened(_open(a, 3)[0], str(a), LATER + 5)  # its link read at LATER + 5
    files.after(_fd(FD_DUP, 3, newfd=4))  # fd 4 refers to it too
    assert files.after(_fd(FD_DUP, 7, newfd=3)) == []  # 3 replaced at LATER + 1: fd 4 still holds it
    (first,) = files.after(FdEvent(1, 1, 0, LATER + 9, 10, op=FD_CLOSE, fd=4))
    files.opened(_open(b, 5, flags=O_WRONLY_CREAT_TRUNC | O_CLOEXEC)[0], str(b), LATER + 5)
    (second,) = files.after(ExecEvent(1, 1, 0, LATER + 2, 10, filename="/bin/true"))
    files.opened(_open(c, 6)[0], str(c), LATER - 5)  # read before the close below
    (third,) = files.after(_fd(FD_CLOSE, 6))
    _done(files, [first, second, third])
    assert [(d.sha256, (d.hash_note or "")[: len(unsure)]) for d in (first, second)] == [(None, unsure)] * 2
    assert (third.path, third.sha256) == (str(c), hashlib.sha256(b"made\n").hexdigest())
