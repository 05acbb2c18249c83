"""The user-space rules the tracer applies where the kernel's answer is gone: descriptor reads withdrawn
when the number was reused before the read, and the credential rules of set*uid and exec; and what the
model states as certain, and what not."""

from __future__ import annotations

import struct

from liubai.collector.live_events import LiveEvents
from liubai.collector.live_reads import _check_open_reads, _Read
from liubai.collector.runs import RunCollector, RunInfo
from liubai.ebpf.credentials import Creds, compare, effective_file_caps, exec_creds
from liubai.ebpf.events import (
    EV_FD,
    FD_CLOSE,
    ChdirEvent,
    Event,
    EventDecoder,
    ExecArgsEvent,
    ExecEvent,
    FdEvent,
    OpenEvent,
    RenameEvent,
)
from liubai.lineage.records import FileAccessRecord, ProcessRecord


def _open(ts: int, fd: int, path: str, kernel_path: str) -> OpenEvent:
    return OpenEvent(7, 7, 0, ts, 1, path=path, fd=fd, kernel_path=kernel_path)


def test_a_number_reused_by_a_later_read_open_does_not_hide_the_stale_read() -> None:
    """fd 6 opened via /proc/self/fd (read back late, when 6 was already another file), closed, then
    reused by a /dev/fd open read back too: the close withdraws the first read, not the second."""
    first = _open(100, 6, "/proc/self/fd/5/procself", "/w/dirB")
    second = _open(300, 6, "/dev/fd/4", "/w/dirA")
    pending = {7: {6: [_Read(1000, first), _Read(1001, second)]}}
    for event in (first, FdEvent(7, 7, 0, 200, 1, op=FD_CLOSE, fd=6), second):
        _check_open_reads(pending, event)
    assert first.kernel_path is None  # read after its descriptor was freed: withdrawn
    assert second.kernel_path == "/w/dirA"  # its own open, not yet freed at the read: kept
    _check_open_reads(pending, FdEvent(7, 7, 0, 2000, 1, op=FD_CLOSE, fd=6))
    assert second.kernel_path == "/w/dirA" and not pending[7]  # closed after the read: still true


def test_the_consumer_never_sees_a_read_the_later_close_withdraws() -> None:
    """The close that frees the number comes after the open in kernel order, still raw; the open must
    already carry no kernel path when it is handed out (a consumer records it at once)."""
    live = LiveEvents(EventDecoder())
    opened = _open(100, 6, "/proc/self/fd/5/procself", "/w")  # read back after 6 became "."
    close = struct.pack("<IIIIQQ", EV_FD, 7, 7, 0, 200, 1) + struct.pack("<IiiIII", FD_CLOSE, 6, -1, 0, 0, 0)
    live._items = [opened, close]
    live._open_reads = {7: {6: [_Read(1000, opened)]}}
    seen = []
    for event in live.events():
        seen.append(event)
        if event is opened:
            assert opened.kernel_path is None
    assert isinstance(seen[1], FdEvent) and seen[1].fd == 6 and live.decode_errors == 0


ROOT = Creds(0, 0, 0, 0, (1 << 41) - 1)
NOBODY = Creds(65534, 65534, 65534, 65534, 0)


def test_root_becoming_nobody_is_a_drop_and_nobody_regaining_root_an_escalation() -> None:
    assert compare(ROOT, NOBODY) == (False, True)
    assert compare(Creds(65534, 65534, 0, 65534, 0), Creds(65534, 0, 0, 0, None)) == (True, False)
    assert compare(ROOT, Creds(65534, 0, 0, 0, ROOT.cap_eff)) == (False, False)  # setresuid(65534,0,0)


def test_exec_rules_of_setuid_and_file_capability_images() -> None:
    assert exec_creds(NOBODY, 0, 0) == Creds(65534, 0, 0, 0, None)
    assert compare(NOBODY, exec_creds(NOBODY, 0, 0)) == (True, False)
    assert exec_creds(NOBODY, None, 4) == Creds(65534, 65534, 65534, 65534, 4)
    assert compare(NOBODY, exec_creds(NOBODY, None, 4)) == (True, False)
    assert exec_creds(NOBODY, None, 0) == NOBODY
    assert exec_creds(ROOT, None, 0) == ROOT


def test_security_capability_xattr_effective_set() -> None:
    v2 = struct.pack("<IIIII", 0x02000001, 1 << 2, 0, 1, 0)  # effective flag, cap 2 and cap 32
    assert effective_file_caps(v2) == (1 << 2) | (1 << 32)
    assert effective_file_caps(struct.pack("<IIIII", 0x02000000, 1 << 2, 0, 0, 0)) == 0  # not effective
    assert effective_file_caps(None) == 0 and effective_file_caps(b"\x01") == 0


# --------------------------------------------------------------------------- what the model states


def _run(events: list[Event], lost: int = 0) -> tuple[RunCollector, dict[tuple[str, str], FileAccessRecord]]:
    info = RunInfo(host="h", root_pid=100, start_ns=1, command=("sh",), boot_offset_ns=0, cwd="/w")
    c = RunCollector(info)
    for event in events:
        c.add(event)
    info.lost_events = lost  # known when the run ends, after its events were read
    accesses = {(r.path, r.mode): r for r in c.records() if isinstance(r, FileAccessRecord)}
    return c, accesses


def _proc(c: RunCollector) -> ProcessRecord:
    (proc,) = [r for r in c.records() if isinstance(r, ProcessRecord)]
    return proc


def _at(ts: int, **kw: object) -> dict[str, object]:
    return {"pid": 100, "tid": 100, "uid": 0, "ts": ts, "start_ns": 1, **kw}


def test_an_exec_whose_argv_was_never_seen_stores_none_not_the_previous_images() -> None:
    c, _ = _run(
        [
            ExecArgsEvent(**_at(2, filename="/bin/sh", argv=("sh", "-c", "secret"))),  # type: ignore[arg-type]
            ExecEvent(**_at(3, filename="/bin/sh", comm="sh")),  # type: ignore[arg-type]
            ExecEvent(**_at(4, filename="/usr/bin/cat", comm="cat")),  # type: ignore[arg-type]
        ]
    )
    proc = _proc(c)
    assert [(x["argv"], x["argv_status"]) for x in proc.execs] == [
        (["sh", "-c", "secret"], "complete"),
        ([], "unknown"),
    ]
    assert (proc.argv, proc.argv_status) == ((), "unknown")


def test_an_executed_path_keeps_the_certainty_it_was_resolved_with() -> None:
    c, acc = _run(
        [
            ChdirEvent(**_at(2, path="sub")),  # type: ignore[arg-type]
            ExecArgsEvent(**_at(3, filename="../tool", argv=("../tool",))),  # type: ignore[arg-type]
            ExecEvent(**_at(4, filename="../tool", comm="tool")),  # type: ignore[arg-type]
        ]
    )
    assert acc[("/w/tool", "exec")].certainty == "lexical"  # sub may be a symlink: ".." leaves its target
    assert [x["certainty"] for x in _proc(c).execs] == ["lexical"]
    assert c.doubts()["execs whose image path is uncertain"] == 1


def test_a_walked_path_stays_walked_when_the_same_file_is_also_opened_exactly() -> None:
    walked = OpenEvent(**_at(2, path="l/../f", fd=3, kernel_path="/w/real/f", walked=True))  # type: ignore[arg-type]
    exact = OpenEvent(**_at(3, path="/w/real/f", fd=4))  # type: ignore[arg-type]
    kernel = OpenEvent(**_at(4, path="/dev/fd/9", fd=5, kernel_path="/w/k"))  # type: ignore[arg-type]
    c, acc = _run([walked, exact, kernel])
    assert acc[("/w/real/f", "read")].certainty == "walked" and acc[("/w/real/f", "read")].count == 2
    assert acc[("/w/k", "read")].certainty == "kernel"
    assert c.doubts() == {"opens with a path walked after the process ended": 1}


def test_after_lost_events_cwd_and_descriptor_resolutions_are_in_doubt() -> None:
    """A lost event may have been a chdir, close or dup: what was resolved through the followed cwd or
    descriptor table is stated ``after_loss``; absolute names and the kernel's own answers are not."""
    events: list[Event] = [
        OpenEvent(**_at(2, path="rel.txt", fd=3)),  # type: ignore[arg-type]
        OpenEvent(**_at(3, path="/w/d", fd=5)),  # type: ignore[arg-type]
        OpenEvent(**_at(4, path="x", fd=6, dfd=5)),  # type: ignore[arg-type]
        OpenEvent(**_at(5, path="/dev/fd/5/y", fd=7)),  # type: ignore[arg-type]
        OpenEvent(**_at(6, path="/etc/hostname", fd=8)),  # type: ignore[arg-type]
        OpenEvent(**_at(7, path="../z", fd=9, kernel_path="/k/z")),  # type: ignore[arg-type]
        ExecArgsEvent(**_at(8, filename="./tool", argv=("./tool",))),  # type: ignore[arg-type]
        ExecEvent(**_at(9, filename="./tool", comm="tool")),  # type: ignore[arg-type]
    ]
    through_state = {("/w/rel.txt", "read"), ("/w/d/x", "read"), ("/w/d/y", "read"), ("/w/tool", "exec")}
    _, trusted = _run(events)
    assert {k: a.certainty for k, a in trusted.items() if k in through_state} == dict.fromkeys(
        through_state, "exact"
    )
    c, doubted = _run(events, lost=1)
    certainty = {k: a.certainty for k, a in doubted.items()}
    assert {k: v for k, v in certainty.items() if k in through_state} == dict.fromkeys(
        through_state, "after_loss"
    )
    assert (certainty[("/w/d", "read")], certainty[("/etc/hostname", "read")]) == ("exact", "exact")
    assert certainty[("/k/z", "read")] == "kernel"
    assert [x["certainty"] for x in _proc(c).execs] == ["after_loss"]
    assert c.doubts() == {
        "accesses resolved through a cwd or descriptor table lost events may have changed": 4,
        "execs whose image path is uncertain": 1,
        "execs without a hash": 1,  # none given in this story
    }


def test_a_rename_is_a_write_of_its_new_name_and_moves_what_names_the_old() -> None:
    """After ``rename(d, e)`` a descriptor of d and a cwd inside it name e, as the kernel's do; an open
    relative to them lands under e. The rename itself is a write of e, ``via`` rename."""
    c, acc = _run(
        [
            OpenEvent(**_at(2, path="d", fd=3)),  # type: ignore[arg-type]
            ChdirEvent(**_at(3, path="/w/d/sub")),  # type: ignore[arg-type]
            RenameEvent(**_at(4, old_path="/w/d", new_path="/w/e")),  # type: ignore[arg-type]
            OpenEvent(**_at(5, path="out", fd=4, dfd=3, flags=0o101)),  # type: ignore[arg-type]
            OpenEvent(**_at(6, path="here", fd=5)),  # type: ignore[arg-type]
            RenameEvent(**_at(7, old_path="x", new_path="y", old_dfd=9)),  # type: ignore[arg-type]
        ]
    )
    assert acc[("/w/e", "write")].via == "rename"
    assert ("/w/e/out", "write") in acc and ("/w/e/sub/here", "read") in acc
    assert acc[("/w/e/sub/y", "write")].certainty == "exact"  # the new name, relative to the cwd
    assert c.unresolved == 0  # fd 9 (the old name's directory) was never seen, but only the new is written
