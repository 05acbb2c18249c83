"""Decoding, flag mapping, path resolution, rendering and aggregation: everything that needs no kernel."""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

import pytest

from liubai.collector.live_events import LiveEvents
from liubai.collector.recording import RecordingWriter, replay_recording
from liubai.collector.runs import BinaryHasher, RunCollector, RunInfo, access_mode, resolve_path
from liubai.ebpf.event_json import event_from_json, event_to_json
from liubai.ebpf.events import (
    AT_FDCWD,
    ChdirEvent,
    DecodeError,
    EventDecoder,
    ExecArgsEvent,
    ExecEvent,
    ExecFailEvent,
    ExitEvent,
    ForkEvent,
    OpenEvent,
    RenameEvent,
)
from liubai.ebpf.procfs import clock_boot_ns
from liubai.ebpf.program import ProgramOptions, load_source, render_program, wakeup_bytes_for
from liubai.lineage.records import FileAccessRecord, ProcessRecord, RunRecord
from tests.ebpf.recordings import PROCESS, RUN_HEADER

OPTS = ProgramOptions(max_args=4, arg_len=32, path_len=64)


def _later() -> int:
    return clock_boot_ns() + 10**9


HDR = struct.Struct("<IIIIQQ")


def hdr(
    kind: int, pid: int = 10, tid: int = 11, uid: int = 1000, ts: int = 5_000, start: int = 4_000
) -> bytes:
    return HDR.pack(kind, pid, tid, uid, ts, start)


def cstr(text: str, size: int) -> bytes:
    raw = text.encode()[: size - 1]
    return raw + b"\0" * (size - len(raw))


# --------------------------------------------------------------------------- decoding


def test_decode_every_event_kind_from_kernel_layout() -> None:
    d = EventDecoder(OPTS)
    fork = d.decode(hdr(1) + struct.pack("<IIQ", 77, 0, 4_500))
    assert fork == ForkEvent(10, 11, 1000, 5_000, 4_000, child=77, child_start_ns=4_500)

    exe = d.decode(hdr(2) + struct.pack("<II", 10, 0) + cstr("cat", 16) + cstr("/usr/bin/cat", 64))
    assert isinstance(exe, ExecEvent) and (exe.filename, exe.comm, exe.old_pid) == ("/usr/bin/cat", "cat", 10)

    argv = b"sh\0-c\0echo hi\0junk-after-argc\0"  # packed as the kernel sends them
    args = d.decode(hdr(3) + struct.pack("<IIiI", 3, 1, AT_FDCWD, 0) + cstr("/bin/sh", 64) + argv)
    assert isinstance(args, ExecArgsEvent)
    assert args.argv == ("sh", "-c", "echo hi") and args.truncated and args.filename == "/bin/sh"
    assert not args.unreadable and not args.cut
    odd = d.decode(hdr(3) + struct.pack("<IIiI", 1, 6, 3, 0x1000) + cstr("", 64) + b"\0")
    assert (
        isinstance(odd, ExecArgsEvent)
        and odd.unreadable
        and odd.cut
        and (odd.dfd, odd.at_flags) == (3, 0x1000)
    )

    fail = d.decode(hdr(4) + struct.pack("<iI", 2, 0))
    assert fail == ExecFailEvent(10, 11, 1000, 5_000, 4_000, errno=2)

    op = d.decode(hdr(5) + struct.pack("<iiII", 3, AT_FDCWD, 0o1101, 0) + cstr("out/b.txt", 64))
    assert op == OpenEvent(10, 11, 1000, 5_000, 4_000, path="out/b.txt", fd=3, dfd=AT_FDCWD, flags=0o1101)

    ex = d.decode(hdr(6) + struct.pack("<iI", -9, 1) + cstr("sleep", 16))
    assert isinstance(ex, ExitEvent) and ex.exit_code == -9 and ex.comm == "sleep"
    unknown = d.decode(hdr(6) + struct.pack("<iI", 0, 0) + cstr("x", 16))
    assert isinstance(unknown, ExitEvent) and unknown.exit_code is None

    cd = d.decode(hdr(7) + struct.pack("<ii", 0, -1) + cstr("../src", 64))
    assert cd == ChdirEvent(10, 11, 1000, 5_000, 4_000, path="../src", fd=-1)

    names = b"out.tmp\0/w/caf\xe9\0"  # the new name right after the old one's NUL, as the kernel packs them
    raw = hdr(13) + struct.pack("<iiII", AT_FDCWD, 5, 1, 8) + names
    mv = d.decode(raw)
    assert mv == RenameEvent(
        10,
        11,
        1000,
        5_000,
        4_000,
        old_path="out.tmp",
        new_path="/w/caf\\xe9",
        old_dfd=AT_FDCWD,
        new_dfd=5,
        flags=1,
    )
    assert d.os_paths(raw) == ("out.tmp", os.fsdecode(b"/w/caf\xe9"))  # the name open() needs
    assert d.os_paths(raw[:-1]) == ("out.tmp", None)  # cut short: no name rather than a wrong one


def test_decode_shows_bytes_that_are_not_utf8_as_escapes() -> None:
    d = EventDecoder(OPTS)
    raw = b"/tmp/caf\xe9"
    ev = d.decode(hdr(5) + struct.pack("<iiII", 4, AT_FDCWD, 0, 0) + raw + b"\0" * (64 - len(raw)))
    assert isinstance(ev, OpenEvent)
    assert ev.path == "/tmp/caf\\xe9"
    ev.path.encode("utf-8")  # storable: no lone surrogate


@pytest.mark.parametrize(
    "data, needle",
    [(b"\1\0", "shorter than"), (hdr(99), "unknown event type 99"), (hdr(5) + b"\0" * 3, "event type 5")],
)
def test_decode_rejects_bad_bytes_with_a_reason(data: bytes, needle: str) -> None:
    with pytest.raises(DecodeError, match=needle):
        EventDecoder(OPTS).decode(data)


def test_the_numbers_of_a_write_open_and_a_rename_are_those_a_full_decode_gives() -> None:
    """The reader models written files from ``open_numbers``/``rename_numbers`` and decodes the events
    themselves after the run: the two must agree on every number, and the names (``os_path(s)``) must
    reach the very bytes the kernel sent."""
    d = EventDecoder(OPTS)
    name = b"/tmp/caf\xe9.pyc.1"
    open_raw = (
        hdr(5, pid=7, tid=8, uid=9, ts=77, start=66) + struct.pack("<iiII", 4, 3, 0o2000101, 0) + name + b"\0"
    )
    full = d.decode(open_raw)
    light = d.open_numbers(open_raw)
    assert isinstance(full, OpenEvent)
    assert (light.pid, light.tid, light.uid, light.ts, light.start_ns) == (7, 8, 9, 77, 66)
    assert (light.fd, light.dfd, light.flags, light.kind) == (full.fd, full.dfd, full.flags, full.kind)
    assert light.path == "" and full.path == "/tmp/caf\\xe9.pyc.1"
    assert d.os_path(open_raw) is not None and os.fsencode(d.os_path(open_raw) or "") == name

    old, new = b"a.tmp", b"dir/caf\xe9"
    rename_raw = (
        hdr(13, ts=90) + struct.pack("<iiII", AT_FDCWD, 5, 2, len(old) + 1) + old + b"\0" + new + b"\0"
    )
    full_r = d.decode(rename_raw)
    light_r = d.rename_numbers(rename_raw)
    assert isinstance(full_r, RenameEvent)
    assert (light_r.old_dfd, light_r.new_dfd, light_r.flags, light_r.ts) == (AT_FDCWD, 5, 2, 90)
    assert (full_r.old_path, full_r.new_path) == ("a.tmp", "dir/caf\\xe9")
    assert [os.fsencode(n or "") for n in d.os_paths(rename_raw)] == [old, new]
    assert d.os_paths(rename_raw[:-1])[1] is None  # the last name cut short: not a name to open


@pytest.mark.parametrize("method", ["open_numbers", "rename_numbers"])
def test_the_numbers_of_bad_bytes_are_refused_with_a_reason(method: str) -> None:
    d = EventDecoder(OPTS)
    with pytest.raises(DecodeError, match="bytes"):
        getattr(d, method)(hdr(5 if method == "open_numbers" else 13) + b"\0" * 3)
    with pytest.raises(DecodeError, match="not an? "):
        getattr(d, method)(hdr(8) + b"\0" * 24)


def test_json_round_trip_and_bad_lines() -> None:
    events = [
        ForkEvent(1, 1, 0, 2, 3, child=4, child_start_ns=5),
        ExecArgsEvent(4, 4, 0, 6, 5, filename="/bin/ls", argv=("ls", "-l"), truncated=False),
        ExecEvent(4, 4, 0, 7, 5, filename="/bin/ls", comm="ls", sha256="ab" * 32, cwd="/w"),
        OpenEvent(4, 4, 0, 8, 5, path="x", fd=3, dfd=AT_FDCWD, flags=0),
        ExitEvent(4, 4, 0, 9, 5, exit_code=0, comm="ls"),
        RenameEvent(4, 4, 0, 10, 5, old_path="a.tmp", new_path="a", old_dfd=3, flags=2),
    ]
    for ev in events:
        assert event_from_json(json.loads(json.dumps(event_to_json(ev)))) == ev
    with pytest.raises(ValueError, match="unknown event type"):
        event_from_json({"type": "teleport", "pid": 1})
    with pytest.raises(ValueError, match="pid must be an integer"):
        event_from_json({"type": "exit", "pid": "1", "tid": 1, "uid": 0, "ts": 1, "start_ns": 1})


# --------------------------------------------------------------------------- flags and paths


@pytest.mark.parametrize(
    "flags, mode",
    [
        (os.O_RDONLY, "read"),
        (os.O_RDONLY | os.O_CLOEXEC | os.O_DIRECTORY, "read"),
        (os.O_WRONLY, "write"),
        (os.O_RDWR, "write"),
        (os.O_RDONLY | os.O_CREAT, "write"),
        (os.O_RDONLY | os.O_TRUNC, "write"),
        (os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, "write"),
        (os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW, "read"),
    ],
)
def test_open_flags_map_to_read_or_write(flags: int, mode: str) -> None:
    assert access_mode(flags) == mode


@pytest.mark.parametrize(
    "path, base, expected",
    [
        ("/etc/passwd", None, "/etc/passwd"),
        ("a", "/work/x", "/work/x/a"),
        ("../y/./b", "/work/x", "/work/y/b"),
        ("//double//slash/", "/", "/double/slash"),
        ("/a/../../b", None, "/b"),
        ("rel", None, None),
        ("", "/w", None),
    ],
)
def test_resolve_path(path: str, base: str | None, expected: str | None) -> None:
    assert resolve_path(path, base) == expected


# --------------------------------------------------------------------------- render_program


def test_render_program_defines_sizes_and_keeps_the_source() -> None:
    text = render_program(
        ProgramOptions(
            max_args=8, arg_len=64, path_len=512, ringbuf_pages=256, max_procs=1024, wakeup_bytes=8192
        )
    )
    head = text.splitlines()[:8]
    assert head == [
        "#define MAX_ARGS 8",
        "#define ARG_LEN 64",
        "#define ARGS_BUF 16384",
        "#define ARGS_PER_CALL 16",
        "#define PATH_LEN 512",
        "#define RINGBUF_PAGES 256",
        "#define MAX_PROCS 1024",
        "#define WAKEUP_AFTER 8192",
    ]
    assert text.endswith(load_source())
    for tracepoint in (
        "TRACEPOINT_PROBE(sched, sched_process_fork)",
        "TRACEPOINT_PROBE(sched, sched_process_exec)",
        "TRACEPOINT_PROBE(sched, sched_process_exit)",
        "TRACEPOINT_PROBE(syscalls, sys_enter_execve)",
        "TRACEPOINT_PROBE(syscalls, sys_enter_openat)",
        "TRACEPOINT_PROBE(syscalls, sys_exit_openat)",
    ):
        assert tracepoint in text
    code = "\n".join(line.split("//", 1)[0] for line in text.splitlines())
    assert "task_struct" not in code and "bpf_get_current_task" not in code  # layout unknown on this kernel
    assert "BPF_RINGBUF_OUTPUT(events, RINGBUF_PAGES)" in text


def test_the_reader_is_woken_before_the_cpus_together_fill_half_the_buffer() -> None:
    """By default each CPU wakes the reader after its share of half the ring buffer (an eighth at most):
    with every CPU one event short of waking it, half the buffer is still free."""
    buffer = 1024 * 4096
    for cpus in (1, 2, 4, 64, 512):
        each = wakeup_bytes_for(1024, cpus)
        assert cpus * each <= buffer // 2 or each == 4096
        assert each <= buffer // 8
    assert "#define WAKEUP_AFTER 524288\n" in render_program(ProgramOptions(wakeup_bytes=524288))
    assert "#define WAKEUP_AFTER 64\n" in render_program(ProgramOptions(node=True))  # events, as measured


@pytest.mark.parametrize(
    "opts, needle",
    [
        (ProgramOptions(ringbuf_pages=3), "power of two"),
        (ProgramOptions(max_args=0), "max_args"),
        (ProgramOptions(path_len=8), "path_len"),
        (ProgramOptions(ringbuf_pages=16), "ring buffer too small"),
        (ProgramOptions(args_buf=1000), "args_buf"),
        (ProgramOptions(args_buf=32768), "32 KiB"),
        (ProgramOptions(wakeup_bytes=1024 * 4096), "wakeup_bytes"),
    ],
)
def test_render_program_refuses_unusable_sizes(opts: ProgramOptions, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        render_program(opts)


# --------------------------------------------------------------------------- aggregation


def _info(**kw: object) -> RunInfo:
    base: dict[str, object] = dict(
        host="h",
        root_pid=100,
        start_ns=1_000,
        command=("sh", "build.sh"),
        boot_offset_ns=1_700_000_000 * 10**9,
        cwd="/w",
        commit="ab" * 20,
        root_ppid=1,
        root_uid=1000,
    )
    base.update(kw)
    return RunInfo(**base)  # type: ignore[arg-type]


def _story() -> list[object]:
    """sh forks a child; the child tries two PATH entries, execs cat, opens relative + dirfd paths."""
    return [
        ExecArgsEvent(100, 100, 1000, 1_010, 1_000, filename="/bin/sh", argv=("sh", "build.sh")),
        ExecEvent(100, 100, 1000, 1_020, 1_000, filename="/bin/sh", comm="sh", sha256="11" * 32),
        OpenEvent(100, 100, 1000, 1_030, 1_000, path="build.sh", fd=3, dfd=AT_FDCWD, flags=os.O_RDONLY),
        ForkEvent(100, 100, 1000, 1_040, 1_000, child=101, child_start_ns=1_041),
        OpenEvent(
            101,
            101,
            1000,
            1_045,
            1_041,
            path="out.txt",
            fd=1,
            dfd=AT_FDCWD,
            flags=os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
        ),
        ExecArgsEvent(101, 101, 0, 1_050, 1_041, filename="/usr/local/bin/cat", argv=("cat", "in.txt")),
        ExecFailEvent(101, 101, 0, 1_051, 1_041, errno=2),
        ExecArgsEvent(101, 101, 0, 1_052, 1_041, filename="/usr/bin/cat", argv=("cat", "in.txt")),
        ExecEvent(101, 101, 0, 1_053, 1_041, filename="/usr/bin/cat", comm="cat", sha256="22" * 32),
        ChdirEvent(101, 101, 0, 1_054, 1_041, path="sub"),
        OpenEvent(101, 101, 0, 1_055, 1_041, path="../in.txt", fd=3, dfd=AT_FDCWD, flags=os.O_RDONLY),
        OpenEvent(
            101, 101, 0, 1_056, 1_041, path="../in.txt", fd=4, dfd=AT_FDCWD, flags=os.O_RDONLY | os.O_CLOEXEC
        ),
        OpenEvent(
            101, 101, 0, 1_057, 1_041, path="/w/lib", fd=5, dfd=AT_FDCWD, flags=os.O_RDONLY | os.O_DIRECTORY
        ),
        OpenEvent(101, 101, 0, 1_058, 1_041, path="x.so", fd=6, dfd=5, flags=os.O_RDONLY),
        OpenEvent(101, 101, 0, 1_059, 1_041, path="y.so", fd=7, dfd=42, flags=os.O_RDONLY),
        ExitEvent(101, 101, 0, 1_060, 1_041, exit_code=0, comm="cat"),
        ForkEvent(100, 100, 1000, 1_070, 1_000, child=102, child_start_ns=1_071),
        ExecArgsEvent(102, 102, 1000, 1_072, 1_071, filename="./missing", argv=("./missing",)),
        ExecFailEvent(102, 102, 1000, 1_073, 1_071, errno=2),
        ExitEvent(102, 102, 1000, 1_074, 1_071, exit_code=127, comm="sh"),
        ExitEvent(100, 100, 1000, 1_080, 1_000, exit_code=3, comm="sh"),
    ]


def test_collector_builds_tree_accesses_and_flags() -> None:
    c = RunCollector(_info())
    for ev in _story():
        c.add(ev)  # type: ignore[arg-type]
    recs = list(c.records())
    run = recs[0]
    assert isinstance(run, RunRecord) and run.root_pid == 100 and run.commit == "ab" * 20
    procs = {r.pid: r for r in recs if isinstance(r, ProcessRecord)}
    assert set(procs) == {100, 101, 102}
    cat = procs[101]
    assert (cat.ppid, cat.parent_start_ns, cat.binary, cat.argv) == (
        100,
        1_000,
        "/usr/bin/cat",
        ("cat", "in.txt"),
    )
    assert cat.cwd == "/w/sub" and cat.exit_code == 0 and not cat.exec_failed
    assert cat.privilege_change and cat.uid == 0 and cat.parent_uid == 1000
    assert procs[102].exec_failed and procs[102].exit_code == 127 and not procs[102].privilege_change
    assert procs[100].exit_code == 3 and procs[100].ppid == 1 and procs[100].parent_start_ns is None
    acc = {(r.pid, r.path, r.mode): r for r in recs if isinstance(r, FileAccessRecord)}
    assert acc[(101, "/w/in.txt", "read")].count == 2
    assert acc[(101, "/w/in.txt", "read")].flags == os.O_CLOEXEC
    assert acc[(101, "/w/out.txt", "write")].count == 1  # the shell's redirection, opened before exec
    assert acc[(101, "/usr/bin/cat", "exec")].sha256 == "22" * 32
    assert (101, "/w/lib/x.so", "read") in acc  # dirfd-relative, through the fd table
    assert (100, "/w/build.sh", "read") in acc
    # unknown dirfd: not guessed, stored as unresolved and counted on the run
    assert [path for _, path, _ in acc if path.endswith("y.so")] == ["<unresolved fd 42>/y.so"]
    assert c.unresolved == 1 and run.unresolved_opens == 1
    assert run.started_at == "2023-11-14T22:13:20.000001Z"


def test_binary_hasher_matches_hashlib_and_tracks_changes(tmp_path: Path) -> None:
    f = tmp_path / "tool"
    f.write_bytes(b"v1" * 1000)
    h = BinaryHasher()
    assert h.sha256(str(f)) == hashlib.sha256(f.read_bytes()).hexdigest()
    f.write_bytes(b"version two")
    os.utime(f, ns=(1, 123_456_789))
    assert h.sha256(str(f)) == hashlib.sha256(b"version two").hexdigest()
    assert h.sha256(str(tmp_path / "gone")) is None


def test_binary_hasher_reads_a_script_head_once_per_unchanged_inode(tmp_path: Path) -> None:
    """Whether an executed file is a ``#!`` script is kept per unchanged inode (a storm execs one binary
    thousands of times); a change to the file is read again, and an unreadable one is not kept."""
    f = tmp_path / "tool"
    f.write_bytes(b"#!/bin/sh\necho hi\n")
    h = BinaryHasher()
    first = f.stat()
    assert h.is_script(str(f), first)
    f.write_bytes(b"\x7fELF, longer than the script was")
    assert h.is_script(str(f), first)  # asked about the inode as it was: not read again
    assert not h.is_script(str(f), f.stat())  # rewritten: its size (and change time) moved
    gone = tmp_path / "gone"
    gone.write_bytes(b"#!/bin/sh\n")
    st = gone.stat()
    gone.unlink()
    assert not h.is_script(str(gone), st)  # could not be read: not known to be a script
    gone.write_bytes(b"#!/bin/sh\n")
    assert h.is_script(str(gone), st)  # the failed read was not kept: read again


def test_recording_replays_to_the_same_records_and_keeps_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    live = RunCollector(_info())
    w = RecordingWriter(str(path), live.info)
    for ev in _story():
        live.add(ev)  # type: ignore[arg-type]
        w.event(ev)  # type: ignore[arg-type]
    live.info.end_ns, live.info.exit_code = 1_090, 3
    w.close(live.info)
    lines = path.read_text().splitlines(keepends=True)
    replay = replay_recording(lines, "run.jsonl")
    assert replay.complete and not replay.rejected
    assert list(replay.collector.records()) == list(live.records())

    broken = lines[:3] + ["{not json\n", '{"type":"open","pid":"x"}\n'] + lines[3:]
    replay2 = replay_recording(broken, "run.jsonl", commit="cd" * 20)
    assert [r.location for r in replay2.rejected] == ["run.jsonl:4", "run.jsonl:5"]
    recs = list(replay2.collector.records())
    assert isinstance(recs[0], RunRecord) and recs[0].commit == "cd" * 20
    assert len([r for r in recs if isinstance(r, ProcessRecord)]) == 3  # the good lines all landed


def test_replay_refuses_a_file_that_is_not_a_recording() -> None:
    with pytest.raises(ValueError, match="not a liubai recording"):
        replay_recording(['{"type":"open"}\n'], "x.jsonl")
    with pytest.raises(ValueError, match="first line is not JSON"):
        replay_recording(["garbage\n"], "x.jsonl")


def test_live_events_enrich_execs_at_once_and_decode_the_rest_later(tmp_path: Path) -> None:
    tool = tmp_path / "tool"
    tool.write_bytes(b"#!/bin/sh\n")
    opts = ProgramOptions(max_args=4, arg_len=32, path_len=1024)
    live = LiveEvents(EventDecoder(opts))
    live(hdr(2, ts=_later()) + struct.pack("<II", 10, 0) + cstr("tool", 16) + cstr(str(tool), 1024))
    live(hdr(5) + struct.pack("<iiII", 3, AT_FDCWD, 0, 0) + cstr("in.txt", 1024))
    live(hdr(42))
    tool.write_bytes(b"replaced after the exec\n")  # the hash is of what ran, taken at once
    events = list(live.events())
    assert len(live) == 3 and len(events) == 2 and live.decode_errors == 1
    exe, op = events
    assert isinstance(exe, ExecEvent) and exe.sha256 == hashlib.sha256(b"#!/bin/sh\n").hexdigest()
    assert isinstance(op, OpenEvent) and op.path == "in.txt"


# --------------------------------------------------------------------------- untrusted recordings

_OPEN = {"type": "open", "pid": 100, "tid": 100, "uid": 0, "ts": 1_010, "start_ns": 1_000, "path": "/w/in"}
_END = '{"type":"end","end_ns":1090,"exit_code":0,"lost_events":0}'


@pytest.mark.parametrize(
    "field, value",
    [
        ("boot_offset_ns", "x"),
        ("boot_offset_ns", None),
        ("boot_offset_ns", 10**30),
        ("boot_offset_ns", 1e308),
        ("start_ns", "x"),
        ("start_ns", None),
        ("start_ns", 10**30),
        ("start_ns", float("inf")),
        ("root_pid", "x"),
        ("root_pid", None),
        ("root_pid", 1.5),
        ("root_pid", True),
        ("commit", 5),
        ("commit", [1]),
        ("host", None),
        ("host", ""),
        ("command", ["sh", 1]),
    ],
)
def test_replay_refuses_a_header_field_of_the_wrong_type_naming_line_and_field(
    field: str, value: object
) -> None:
    header = json.dumps({**RUN_HEADER, field: value})  # inf is written as Infinity, as 1e400 reads back
    with pytest.raises(ValueError, match=rf"^run\.jsonl:1: bad run header: {field} must"):
        replay_recording([header, json.dumps(_OPEN), _END], "run.jsonl")


_EV = {**PROCESS, "ts": 1_020}
_PROC = {
    "pid": 7,
    "ppid": 1,
    "start_ns": 900,
    "uid": 0,
    "comm": "c",
    "argv": ["c"],
    "binary": None,
    "cwd": None,
}


@pytest.mark.parametrize(
    "line, field",
    [
        ({**_EV, "type": "exec", "filename": 5, "comm": "x"}, "filename"),
        ({**_EV, "type": "open", "path": None}, "path"),
        ({**_EV, "type": "fork", "child": "z", "child_start_ns": None}, "child"),
        ({**_EV, "type": "exec_args", "filename": "/bin/x", "argv": ["x", None]}, "argv"),
        ({**_EV, "type": "exit", "exit_code": 2**40}, "exit_code"),
        ({**_EV, "type": "open", "path": "/w/x", "fd": True}, "fd"),
        ({**_EV, "type": "exit", "ts": 10**30}, "ts"),
        ({**_EV, "type": "chdir", "pid": -1, "path": "/"}, "pid"),
        ({"type": "adopt", "proc": {**_PROC, "pid": "x"}, "parent": None}, "pid"),
        ({"type": "adopt", "proc": {**_PROC, "argv": "c"}, "parent": None}, "argv"),
        ({"type": "adopt", "proc": _PROC, "parent": [1, "z"]}, "start_ns"),
    ],
)
def test_replay_rejects_an_event_line_of_the_wrong_type_and_the_rest_lands(
    tmp_path: Path, line: dict[str, object], field: str
) -> None:
    from liubai.collector.runs import ingest_run
    from liubai.lineage.store import open_store

    bad = json.dumps(line)
    replay = replay_recording([json.dumps(RUN_HEADER), json.dumps(_OPEN), bad, _END], "run.jsonl")
    assert [(r.location, r.raw) for r in replay.rejected] == [("run.jsonl:3", bad)]
    assert field in replay.rejected[0].reason
    store = open_store(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        stats = ingest_run(store, replay.collector, replay.rejected)
        assert (stats.processes, stats.file_accesses, stats.rejected) == (1, 1, 1)
        assert store.counts()["rejected"] == 1
    finally:
        store.close()


def test_replay_refuses_lost_events_that_are_not_an_integer() -> None:
    end = '{"type":"end","end_ns":1090,"exit_code":0,"lost_events":1e400}'
    replay = replay_recording([json.dumps(RUN_HEADER), json.dumps(_OPEN), end], "run.jsonl")
    assert [r.location for r in replay.rejected] == ["run.jsonl:3"]
    assert "lost_events" in replay.rejected[0].reason and not replay.complete
    run = next(iter(replay.collector.records()))
    assert isinstance(run, RunRecord) and run.lost_events == 0


def _raw_recording(path: Path) -> None:
    header = json.dumps({**RUN_HEADER, "host": "h@"}).encode().replace(b"@", b"\xff")
    exec_args = {"type": "exec_args", "pid": 100, "tid": 100, "uid": 0, "ts": 1_005, "start_ns": 1_000}
    args = json.dumps({**exec_args, "filename": "/bin/cat", "argv": ["cat", "in@"]})
    execed = json.dumps({**exec_args, "type": "exec", "ts": 1_006, "filename": "/bin/cat", "comm": "cat"})
    opened = json.dumps({**_OPEN, "path": "/w/in@"})
    body = "\n".join([args, execed, opened, _END]).encode().replace(b"@", b"\xff\xfe")
    path.write_bytes(header + b"\n" + body + b"\n")


def test_replay_shows_raw_bytes_as_escapes(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    _raw_recording(path)
    with open(path, encoding="utf-8", errors="surrogateescape") as fh:
        replay = replay_recording(fh, "run.jsonl")
    assert not replay.rejected
    recs = list(replay.collector.records())
    assert {r.host for r in recs} == {"h\\xff"}
    (proc,) = [r for r in recs if isinstance(r, ProcessRecord)]
    assert proc.argv == ("cat", "in\\xff\\xfe")
    assert {(r.path, r.mode) for r in recs if isinstance(r, FileAccessRecord)} == {
        ("/bin/cat", "exec"),
        ("/w/in\\xff\\xfe", "read"),
    }


def test_an_executed_path_that_was_not_utf8_is_hashed_by_its_bytes_not_by_its_shown_text(
    tmp_path: Path,
) -> None:
    """The byte 0xff is shown as ``\\xff``, which as text names another file that may exist (a decoy an
    attacker can plant): the hash must be of the file the kernel ran, found by its bytes."""
    opts = ProgramOptions(max_args=4, arg_len=32, path_len=1024)
    ran = os.fsencode(tmp_path) + b"/run\xff"
    with open(ran, "wb") as fh:
        fh.write(b"what ran")
    (tmp_path / "run\\xff").write_bytes(b"the decoy")  # literally named with a backslash
    live = LiveEvents(EventDecoder(opts))
    live(hdr(2, ts=_later()) + struct.pack("<II", 10, 0) + cstr("run", 16) + ran + b"\0" * (1024 - len(ran)))
    (exe,) = live.events()
    assert isinstance(exe, ExecEvent) and exe.filename == f"{tmp_path}/run\\xff"
    assert exe.sha256 == hashlib.sha256(b"what ran").hexdigest()


def _exec_record(pid: int, name: bytes) -> bytes:
    """An exec a second from now: the files of the test are older, so a gone process's file is hashed."""
    return (
        hdr(2, pid=pid, tid=pid, ts=_later())
        + struct.pack("<II", pid, 0)
        + cstr("tool", 16)
        + name
        + b"\0" * max(1, 1024 - len(name))
    )


def test_a_relative_exec_of_a_process_already_gone_is_hashed_in_the_cwd_its_fork_and_chdir_gave(
    tmp_path: Path,
) -> None:
    """A short-lived ``./tool`` has left /proc before its exec is read: its cwd is the root's, carried by
    the fork, then moved by its own chdir, in event order."""
    gone = 4_194_400  # past any pid_max: no /proc entry, as for a process that has exited
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "tool").write_bytes(b"what ran")
    (tmp_path / "tool").write_bytes(b"the root's cwd holds another tool")
    live = LiveEvents(EventDecoder(ProgramOptions(max_args=4, arg_len=32, path_len=1024)))
    live.start_at(gone, str(tmp_path))
    live(hdr(1, pid=gone) + struct.pack("<IIQ", gone + 1, 0, 4_500))  # the root forks the child
    live(hdr(7, pid=gone + 1) + struct.pack("<ii", 0, -1) + cstr("sub", 1024))  # the child: cd sub
    live(_exec_record(gone + 1, b"./tool"))
    live(_exec_record(gone, b"./tool"))  # the root, still where it started
    child_exec, root_exec = [e for e in live.events() if isinstance(e, ExecEvent)]
    assert (
        child_exec.sha256 == hashlib.sha256(b"what ran").hexdigest() and child_exec.cwd == f"{tmp_path}/sub"
    )
    assert root_exec.sha256 == hashlib.sha256(b"the root's cwd holds another tool").hexdigest()


def test_a_relative_exec_nobody_knows_the_cwd_of_gets_no_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No fork or chdir told the cwd: no hash, not even by /proc's cwd of a live process, which may have
    moved on since the exec (a script's first ``cd``)."""
    (tmp_path / "tool").write_bytes(b"here now, maybe not then")
    monkeypatch.chdir(tmp_path)
    live = LiveEvents(EventDecoder(ProgramOptions(max_args=4, arg_len=32, path_len=1024)))
    live(_exec_record(os.getpid(), b"./tool"))
    live(_exec_record(4_194_400, b"./tool"))
    assert [(e.sha256, e.cwd) for e in live.events() if isinstance(e, ExecEvent)] == [(None, None)] * 2


def _following(tmp_path: Path, lost: list[int]) -> LiveEvents:
    live = LiveEvents(
        EventDecoder(ProgramOptions(max_args=4, arg_len=32, path_len=1024)), lost=lambda: lost[0]
    )
    live.start_at(_GONE, str(tmp_path))
    return live


_GONE = 4_194_400  # past any pid_max: no /proc entry, as for a process that has exited


def _chdir_record(pid: int, path: bytes) -> bytes:
    return hdr(7, pid=pid, tid=pid) + struct.pack("<ii", 0, -1) + path + b"\0" * (1024 - len(path))


def test_after_a_dropped_event_a_followed_cwd_is_not_trusted(tmp_path: Path) -> None:
    """The dropped event may have been the chdir that moved the process: no hash rather than a wrong one."""
    (tmp_path / "tool").write_bytes(b"maybe not what ran")
    lost = [0]
    live = _following(tmp_path, lost)
    live(_exec_record(_GONE, b"./tool"))
    lost[0] = 1  # the kernel could not hand an event over
    live(_exec_record(_GONE, b"./tool"))
    before, after = [e for e in live.events() if isinstance(e, ExecEvent)]
    assert before.sha256 == hashlib.sha256(b"maybe not what ran").hexdigest()
    assert after.sha256 is None and after.cwd is None


def test_an_exited_process_leaves_no_cwd_for_a_reused_pid(tmp_path: Path) -> None:
    (tmp_path / "tool").write_bytes(b"the old process's tool")
    live = _following(tmp_path, [0])
    live(hdr(6, pid=_GONE, tid=_GONE) + struct.pack("<iI", 0, 1) + cstr("sh", 16))
    live(_exec_record(_GONE, b"./tool"))  # the pid again, introduced by a fork the kernel did not report
    (exe,) = [e for e in live.events() if isinstance(e, ExecEvent)]
    assert exe.sha256 is None


def test_a_chdir_through_a_symlink_and_dotdot_is_followed_as_the_kernel_walks_it(tmp_path: Path) -> None:
    (tmp_path / "real" / "sub").mkdir(parents=True)
    (tmp_path / "real" / "tool").write_bytes(b"where the kernel lands")
    (tmp_path / "tool").write_bytes(b"where a lexical .. lands")
    (tmp_path / "link").symlink_to(tmp_path / "real" / "sub")
    live = _following(tmp_path, [0])
    live(_chdir_record(_GONE, b"link/.."))
    live(_exec_record(_GONE, b"./tool"))
    (exe,) = [e for e in live.events() if isinstance(e, ExecEvent)]
    assert exe.sha256 == hashlib.sha256(b"where the kernel lands").hexdigest()


def test_full_length_paths_are_hashed_and_the_tracers_own_descriptors_are_not(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 250) / ("e" * 250) / ("f" * 250)
    deep.mkdir(parents=True)
    ran = os.fsencode(deep) + b"/" + b"t" * 250  # longer than any old 255-byte slot
    with open(ran, "wb") as fh:
        fh.write(b"what ran")
    with open(ran[:255], "wb") as fh:
        fh.write(b"a file the cut name happens to name")
    live = _following(tmp_path, [0])
    live(_exec_record(_GONE, ran))
    live(_exec_record(_GONE, b"/dev/fd/0"))  # execveat(fd, ""): fd 0 here would be the tracer's stdin
    assert [e.sha256 for e in live.events() if isinstance(e, ExecEvent)] == [
        hashlib.sha256(b"what ran").hexdigest(),
        None,
    ]


def test_an_adopted_process_chdir_from_before_its_proc_read_is_not_applied_twice(tmp_path: Path) -> None:
    """Attaching: /proc's cwd is read while the process is traced already. ``cd sub`` from before the read
    is in /proc's answer (``sub``), not to be applied again (``sub/sub``); one during the read may or may
    not be, so the cwd is unknown."""
    (tmp_path / "sub" / "sub").mkdir(parents=True)
    (tmp_path / "sub" / "tool").write_bytes(b"what ran")
    (tmp_path / "sub" / "sub" / "tool").write_bytes(b"one cd too many")
    live = LiveEvents(EventDecoder(ProgramOptions(max_args=4, arg_len=32, path_len=1024)))
    live.start_at(_GONE, str(tmp_path / "sub"), (5_000, 6_000))
    live.start_at(_GONE + 1, str(tmp_path / "sub"), (5_000, 6_000))
    live(hdr(7, pid=_GONE, tid=_GONE, ts=4_000) + struct.pack("<ii", 0, -1) + cstr("sub", 1024))
    live(_exec_record(_GONE, b"./tool"))
    live(hdr(7, pid=_GONE + 1, tid=_GONE + 1, ts=5_500) + struct.pack("<ii", 0, -1) + cstr("sub", 1024))
    live(_exec_record(_GONE + 1, b"./tool"))
    before, during = [e for e in live.events() if isinstance(e, ExecEvent)]
    assert before.sha256 == hashlib.sha256(b"what ran").hexdigest()
    assert during.sha256 is None


def test_after_an_fchdir_the_cwd_is_not_followed_from_a_proc_read_that_may_be_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``fchdir(fd)`` then ``chdir("sub")`` then ``./tool``: /proc, read when the fchdir is, already shows
    ``sub``; following on from it would hash ``sub/sub/tool``."""
    (tmp_path / "sub" / "sub").mkdir(parents=True)
    (tmp_path / "sub" / "sub" / "tool").write_bytes(b"one cd too many")
    monkeypatch.chdir(tmp_path / "sub")  # where the process already is when its fchdir is read
    pid = os.getpid()
    live = LiveEvents(EventDecoder(ProgramOptions(max_args=4, arg_len=32, path_len=1024)))
    live.start_at(pid, str(tmp_path))
    live(hdr(7, pid=pid, tid=pid) + struct.pack("<ii", 0, 3) + cstr("", 1024))  # fchdir(3)
    live(_chdir_record(pid, b"sub"))
    live(_exec_record(pid, b"./tool"))
    fchdir, _, exe = live.events()
    assert isinstance(fchdir, ChdirEvent) and fchdir.cwd == str(tmp_path / "sub")  # shown, as /proc said
    assert isinstance(exe, ExecEvent) and exe.sha256 is None


def test_a_relative_name_that_leads_into_proc_is_not_opened_here(tmp_path: Path) -> None:
    """cwd ``/proc/self`` and ``exec("exe")``: opened by the tracer, that would be the tracer's binary."""
    live = LiveEvents(EventDecoder(ProgramOptions(max_args=4, arg_len=32, path_len=1024)))
    live.start_at(_GONE, "/proc/self")
    live(_exec_record(_GONE, b"exe"))
    (exe,) = live.events()
    assert isinstance(exe, ExecEvent) and exe.sha256 is None
