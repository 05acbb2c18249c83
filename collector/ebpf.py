"""Kernel events of one traced run -> RunRecord, ProcessRecord and FileAccessRecord.

``RunCollector`` replays the per-process story the events tell (fork, exec attempts, exec, opens, chdir,
exit) and aggregates opens per (process, path, mode). Paths are made absolute against the process's
cwd (inherited at fork, followed through chdir/fchdir) or against the fd table for dirfd-relative opens.

Live tracing and replay share this class: while tracing, ``LiveEvents`` adds what only the live machine
can know (sha256 of executed binaries, /proc cwd where an event alone cannot tell it) to the events
*before* they are recorded, so replaying a recorded file never looks at the local filesystem and gives
the same records.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from liubai.ebpf.events import (
    AT_FDCWD,
    EV_CHDIR,
    EV_EXEC,
    EV_EXIT,
    EV_FORK,
    ChdirEvent,
    DecodeError,
    Event,
    EventDecoder,
    ExecArgsEvent,
    ExecEvent,
    ExecFailEvent,
    ExitEvent,
    ForkEvent,
    OpenEvent,
    event_from_json,
    event_to_json,
    typed_fields,
    typed_value,
)
from liubai.ebpf.procfs import ProcInfo, read_cwd
from liubai.lineage.join import add_record
from liubai.lineage.model import GraphBatch, RejectedRecord
from liubai.lineage.provenance import EBPF_WRITER
from liubai.lineage.records import FileAccessRecord, ProcessRecord, RunRecord, iso_utc
from liubai.lineage.store.base import LineageStore
from liubai.lineage.text import visible

__all__ = [
    "BinaryHasher",
    "IngestStats",
    "RECORDING_FORMAT",
    "RecordingWriter",
    "Replay",
    "RunCollector",
    "RunInfo",
    "replay_recording",
    "access_mode",
    "LiveEvents",
    "ingest_run",
    "resolve_path",
]

O_WRONLY = 0o1
O_RDWR = 0o2
O_CREAT = 0o100
O_TRUNC = 0o1000
_WRITE_FLAGS = O_WRONLY | O_RDWR | O_CREAT | O_TRUNC


def access_mode(flags: int) -> str:
    """'write' when the open can change the file (O_WRONLY, O_RDWR, O_CREAT, O_TRUNC), else 'read'."""
    return "write" if flags & _WRITE_FLAGS else "read"


def resolve_path(path: str, base: str | None) -> str | None:
    """``path`` made absolute against ``base`` and normalised lexically; None if relative with no base."""
    if not path:
        return None
    if path.startswith("/"):
        joined = path
    elif base is None:
        return None
    else:
        joined = posixpath.join(base, path)
    out = posixpath.normpath(joined)
    return "/" + out.lstrip("/") if out.startswith("//") else out


class BinaryHasher:
    """sha256 of files, cached by (device, inode, mtime, size) so a binary run 1,000 times is read once."""

    def __init__(self) -> None:
        self._cache: dict[tuple[int, int, int, int], str] = {}

    def sha256(self, path: str) -> str | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        key = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        digest = hashlib.sha256()
        try:
            with open(path, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
        except OSError:
            return None
        value = digest.hexdigest()
        self._cache[key] = value
        return value


@dataclass(slots=True)
class RunInfo:
    """What the tracer knows about the run besides kernel events (recorded as the file's first line)."""

    host: str
    root_pid: int
    start_ns: int
    command: tuple[str, ...]
    boot_offset_ns: int
    cwd: str | None = None
    commit: str | None = None
    audit_id: str | None = None
    trace_id: str | None = None
    repo: str | None = None
    root_ppid: int | None = None
    root_uid: int | None = None
    end_ns: int | None = None
    exit_code: int | None = None
    lost_events: int = 0


@dataclass(slots=True)
class _Proc:
    pid: int
    start_ns: int
    ppid: int | None = None
    parent_start_ns: int | None = None
    parent_uid: int | None = None
    uid: int | None = None
    comm: str = ""
    binary: str | None = None
    binary_sha256: str | None = None
    argv: tuple[str, ...] = ()
    cwd: str | None = None
    fds: dict[int, str] = field(default_factory=dict)
    exec_attempts: int = 0
    exec_failures: int = 0
    exec_ok: bool = False
    end_ns: int | None = None
    exit_code: int | None = None
    pending_argv: tuple[str, ...] | None = None
    pending_binary: str | None = None
    accesses: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    sha_by_path: dict[str, str | None] = field(default_factory=dict)


class RunCollector:
    """Accumulates the events of one run; ``records()`` gives the run, its processes and file accesses."""

    def __init__(self, info: RunInfo) -> None:
        self.info = info
        self.procs: dict[tuple[int, int], _Proc] = {}
        self.unresolved = 0
        self.events = 0
        self._latest: dict[int, tuple[int, int]] = {}
        root = _Proc(pid=info.root_pid, start_ns=info.start_ns, ppid=info.root_ppid, uid=info.root_uid)
        root.cwd = info.cwd
        root.argv = info.command
        self._add(root)

    # -- process table -------------------------------------------------------------------------------

    def _add(self, proc: _Proc) -> _Proc:
        self.procs[(proc.pid, proc.start_ns)] = proc
        self._latest[proc.pid] = (proc.pid, proc.start_ns)
        return proc

    def _proc(self, pid: int, start_ns: int) -> _Proc:
        proc = self.procs.get((pid, start_ns))
        if proc is None:  # seen first mid-life (e.g. a tree attached with --pid after it started)
            proc = self._add(_Proc(pid=pid, start_ns=start_ns))
        return proc

    def key_of(self, pid: int) -> tuple[int, int] | None:
        """(pid, start_ns) of the newest process seen with ``pid``."""
        return self._latest.get(pid)

    def adopt(self, info: ProcInfo, parent: tuple[int, int] | None) -> None:
        """A process that was already running when tracing began (``--pid``), as /proc described it."""
        proc = self._proc(info.pid, info.start_ns)
        proc.ppid = info.ppid
        if parent is not None:
            proc.parent_start_ns = parent[1]
            parent_proc = self.procs.get(parent)
            proc.parent_uid = parent_proc.uid if parent_proc else None
        proc.uid = info.uid
        proc.comm = info.comm
        proc.argv = info.argv
        proc.binary = info.binary
        proc.cwd = info.cwd

    # -- events --------------------------------------------------------------------------------------

    def add(self, event: Event) -> None:
        self.events += 1
        proc = self._proc(event.pid, event.start_ns)
        if proc.uid is None or not isinstance(event, ForkEvent):
            proc.uid = event.uid
        match event:
            case ForkEvent():
                child = self._add(_Proc(pid=event.child, start_ns=event.child_start_ns))
                child.ppid = event.pid
                child.parent_start_ns = event.start_ns
                child.parent_uid = event.uid
                child.uid = event.uid
                child.comm = proc.comm
                child.binary = proc.binary
                child.binary_sha256 = proc.binary_sha256
                child.argv = proc.argv
                child.cwd = proc.cwd
                child.fds = dict(proc.fds)
            case ExecArgsEvent():
                proc.exec_attempts += 1
                proc.pending_argv = event.argv
                proc.pending_binary = resolve_path(event.filename, proc.cwd) or event.filename
            case ExecFailEvent():
                proc.exec_failures += 1
            case ExecEvent():
                if proc.cwd is None and event.cwd:
                    proc.cwd = event.cwd
                binary = resolve_path(event.filename, proc.cwd) or event.filename
                proc.exec_ok = True
                proc.binary = binary
                proc.binary_sha256 = event.sha256
                proc.comm = event.comm
                if proc.pending_argv is not None:
                    proc.argv = proc.pending_argv
                    proc.pending_argv = None
                proc.pending_binary = None
                self._access(proc, binary, "exec", 0)
                proc.sha_by_path[binary] = event.sha256
            case OpenEvent():
                path = self._resolve(proc, event.path, event.dfd)
                if path is None:
                    self.unresolved += 1
                    return
                proc.fds[event.fd] = path
                self._access(proc, path, access_mode(event.flags), event.flags)
            case ChdirEvent():
                if event.fd >= 0:
                    new = proc.fds.get(event.fd) or event.cwd
                else:
                    new = resolve_path(event.path, proc.cwd) or event.cwd
                proc.cwd = new
            case ExitEvent():
                proc.end_ns = event.ts
                proc.exit_code = event.exit_code
                if event.comm:
                    proc.comm = event.comm

    def _resolve(self, proc: _Proc, path: str, dfd: int) -> str | None:
        if path.startswith("/"):
            return resolve_path(path, None)
        base = proc.cwd if dfd == AT_FDCWD else proc.fds.get(dfd)
        return resolve_path(path, base)

    @staticmethod
    def _access(proc: _Proc, path: str, mode: str, flags: int) -> None:
        slot = proc.accesses.get((path, mode))
        if slot is None:
            proc.accesses[(path, mode)] = [1, flags]
        else:
            slot[0] += 1
            slot[1] |= flags

    # -- output --------------------------------------------------------------------------------------

    def _iso(self, boot_ns: int | None) -> str | None:
        if boot_ns is None:
            return None
        return iso_utc((boot_ns + self.info.boot_offset_ns) / 1e9)

    def records(self) -> Iterator[RunRecord | ProcessRecord | FileAccessRecord]:
        """The run first, then each process followed by its file accesses (stable order)."""
        info = self.info
        root = self.procs.get((info.root_pid, info.start_ns))
        if root is not None and info.exit_code is not None:
            root.exit_code = info.exit_code
            root.end_ns = root.end_ns or info.end_ns
        yield RunRecord(
            host=info.host,
            root_pid=info.root_pid,
            start_ns=info.start_ns,
            command=tuple(info.command),
            started_at=self._iso(info.start_ns) or "",
            ended_at=self._iso(info.end_ns),
            end_ns=info.end_ns,
            exit_code=info.exit_code,
            commit=info.commit,
            audit_id=info.audit_id,
            trace_id=info.trace_id,
            repo=info.repo,
            cwd=info.cwd,
            lost_events=info.lost_events,
        )
        for key in sorted(self.procs, key=lambda k: (k[1], k[0])):
            p = self.procs[key]
            exec_failed = p.exec_failures > 0 and not p.exec_ok
            if exec_failed and p.pending_argv is not None:  # what it tried to run, not its parent's image
                p.argv, p.binary, p.binary_sha256 = p.pending_argv, p.pending_binary, None
            yield ProcessRecord(
                host=info.host,
                pid=p.pid,
                start_ns=p.start_ns,
                run_pid=info.root_pid,
                run_start_ns=info.start_ns,
                ppid=p.ppid,
                parent_start_ns=p.parent_start_ns,
                uid=p.uid,
                parent_uid=p.parent_uid,
                comm=p.comm,
                binary=p.binary,
                binary_sha256=p.binary_sha256,
                argv=p.argv,
                cwd=p.cwd,
                started_at=self._iso(p.start_ns),
                ended_at=self._iso(p.end_ns),
                exit_code=p.exit_code,
                exec_failed=exec_failed,
            )
            for (path, mode), (count, flags) in sorted(p.accesses.items()):
                yield FileAccessRecord(
                    host=info.host,
                    pid=p.pid,
                    start_ns=p.start_ns,
                    path=path,
                    mode=mode,
                    count=count,
                    flags=flags if mode != "exec" else None,
                    sha256=p.sha_by_path.get(path) if mode == "exec" else None,
                )


class LiveEvents:
    """The events of a live run, kept as raw bytes while the command runs and decoded afterwards.

    Appending bytes is the least work the reader can do per event, so tracing steals as little CPU as
    possible from the traced command. Fork, exec, chdir and exit events are decoded at once: an exec's
    binary is hashed while it is still the file that ran, and finding it by a relative name needs the
    process's cwd at that moment, which forks and chdirs carry from process to process in event order (a
    short-lived process is gone from /proc before its exec is read).

    Paths here are the OS's own str (``os.fsdecode``: lone surrogates for bytes that are not UTF-8), so
    that ``open`` reaches the very file the kernel named; events keep their shown ``\\xNN`` text. A hash
    is false evidence where no hash is only a gap, so every doubt (a dropped event, a cut path, a path
    the tracer would read in its own process) means no hash.
    """

    def __init__(
        self, decoder: EventDecoder, hasher: BinaryHasher | None = None, lost: Callable[[], int] | None = None
    ) -> None:
        """``lost``: how many events the kernel has dropped so far (``Tracer.lost_events``)."""
        self.decoder = decoder
        self.hasher = hasher or BinaryHasher()
        self.decode_errors = 0
        self._items: list[bytes | Event] = []
        self._lost = lost
        self._cwd: dict[int, str] = {}  # pid -> cwd, as far as the events so far tell it
        self._read_at: dict[int, tuple[int, int]] = {}  # pid -> boot-clock times around reading /proc's cwd
        self._following = True  # until the kernel drops an event, which may have been a fork or chdir

    def start_at(self, pid: int, os_cwd: str | None, read_between: tuple[int, int] | None = None) -> None:
        """The cwd of a traced process that no fork of the run introduces (the root, an adopted one).

        ``read_between``: the boot-clock times around reading it from /proc while the process was already
        traced (attaching). A chdir event from before that is in /proc's answer already, and one from
        during it may be: the first is not applied twice, the second makes the cwd unknown."""
        if os_cwd is None or not self._following or pid in self._cwd:
            return
        self._cwd[pid] = os_cwd
        if read_between is not None:
            self._read_at[pid] = read_between

    def __call__(self, raw: bytes) -> None:
        if raw[0] not in _DECODED_AT_ONCE:  # the type is a little-endian u32 below 256
            self._items.append(raw)
            return
        try:
            event = self.decoder.decode(raw)
        except DecodeError:
            self.decode_errors += 1
            return
        if isinstance(event, ForkEvent):
            self._forked(event)
        elif isinstance(event, ExecEvent):
            self._executed(event, self.decoder.os_path(raw))
        elif isinstance(event, ChdirEvent):
            self._changed_dir(event, self.decoder.os_path(raw))
        elif isinstance(event, ExitEvent):
            self._cwd.pop(event.pid, None)
            self._read_at.pop(event.pid, None)
        self._items.append(event)

    def _known_cwd(self, pid: int) -> str | None:
        """The cwd the events tell for ``pid``; None from the first dropped event on."""
        if self._following and self._lost is not None and self._lost():
            self._following = False
            self._cwd.clear()
        return self._cwd.get(pid)

    def _forked(self, event: ForkEvent) -> None:
        window = self._read_at.get(event.child)
        if window is not None and event.ts < window[0]:
            return  # a child adopted after this fork: /proc's answer for it is the later word
        cwd = self._cwd.get(event.pid)
        if cwd is None:
            self._cwd.pop(event.child, None)  # a reused pid's old cwd must not stand
        else:
            self._cwd[event.child] = cwd

    def _changed_dir(self, event: ChdirEvent, os_path: str | None) -> None:
        """Move the followed cwd. An fchdir names a descriptor, not a path: /proc's cwd, read now, shows
        where it led, but may already be past a later chdir, so the process's cwd is no longer followed."""
        if event.fd >= 0:
            event.cwd, cwd = read_cwd(event.pid), None
        else:
            cwd = _kernel_join(os_path, self._cwd.get(event.pid))
        window = self._read_at.get(event.pid)
        if window is not None:
            if event.ts < window[0]:
                return  # told by /proc already
            del self._read_at[event.pid]
            if event.ts <= window[1]:
                cwd = None  # /proc may or may not have told it
        if cwd is None or not self._following:
            self._cwd.pop(event.pid, None)
        else:
            self._cwd[event.pid] = cwd

    def _executed(self, event: ExecEvent, os_filename: str | None) -> None:
        """Hash the binary that ran (by the kernel's bytes: a name that is not UTF-8 gets its hash too);
        a relative name is resolved against the cwd the events tell. Not against /proc's: by the time the
        event is read the process may have moved on (a script's first ``cd``) or be gone."""
        if os_filename is None:
            return
        base = None
        if not os_filename.startswith("/"):
            base = self._known_cwd(event.pid)
            event.cwd = None if base is None else visible(resolve_path(base, None) or base)
        path = _kernel_join(os_filename, base)
        if path is not None and not path.startswith(_NOT_HERE):
            event.sha256 = self.hasher.sha256(path)

    def __len__(self) -> int:
        return len(self._items)

    def events(self) -> Iterator[Event]:
        for item in self._items:
            if not isinstance(item, bytes):
                yield item
                continue
            try:
                yield self.decoder.decode(item)
            except DecodeError:
                self.decode_errors += 1


_DECODED_AT_ONCE = frozenset((EV_FORK, EV_EXEC, EV_CHDIR, EV_EXIT))
# Paths that name a process's own descriptors: opened here, they would be the tracer's, not the traced one's.
_NOT_HERE = ("/dev/fd/", "/proc/")


def _kernel_join(path: str | None, base: str | None) -> str | None:
    """``path`` against ``base`` as the kernel walks it: ``..`` after a symlink leads out of its target,
    so no lexical normalising; None if relative with no base."""
    if path is None or (base is None and not path.startswith("/")):
        return None
    return path if base is None else posixpath.join(base, path)


# -- recordings ---------------------------------------------------------------------------------------

RECORDING_FORMAT = "liubai-events/1"


class RecordingWriter:
    """Writes a run as JSON lines: a ``run`` header, one line per (enriched) event, an ``end`` line."""

    def __init__(self, path: str, info: RunInfo) -> None:
        self._fh = open(path, "w", encoding="utf-8")  # closed in close()
        self._write({"type": "run", "format": RECORDING_FORMAT, **_info_json(info)})

    def _write(self, obj: dict[str, Any]) -> None:
        self._fh.write(json.dumps(obj, separators=(",", ":"), ensure_ascii=False) + "\n")

    def event(self, event: Event) -> None:
        self._write(event_to_json(event))

    def adopt(self, info: ProcInfo, parent: tuple[int, int] | None) -> None:
        self._write({"type": "adopt", "proc": asdict(info), "parent": list(parent) if parent else None})

    def close(self, info: RunInfo) -> None:
        self._write(
            {
                "type": "end",
                "end_ns": info.end_ns,
                "exit_code": info.exit_code,
                "lost_events": info.lost_events,
            }
        )
        self._fh.close()


def _info_json(info: RunInfo) -> dict[str, Any]:
    out = asdict(info)
    out["command"] = list(info.command)
    for key in ("end_ns", "exit_code", "lost_events"):
        out.pop(key)
    return out


@dataclass(slots=True)
class Replay:
    """A recording read back: the collector holding its events, plus lines that could not be used."""

    collector: RunCollector
    rejected: list[RejectedRecord]
    complete: bool


def replay_recording(
    lines: Iterable[str],
    source: str,
    *,
    commit: str | None = None,
    audit_id: str | None = None,
    trace_id: str | None = None,
    host: str | None = None,
) -> Replay:
    """Rebuild a run from a recording; a bad line becomes a rejected record and the rest still lands.

    ``commit``/``audit_id``/``trace_id``/``host`` override what the recording says (a demo replays one
    recorded run for its own commit). ValueError naming the line and field when the header is unusable.
    Read the file with ``errors="surrogateescape"``: a byte that is not UTF-8 then lands as the text
    ``\\xNN`` (``typed_value`` makes every string ``visible``), as in a live trace.
    """
    source = visible(source)
    it = iter(enumerate(lines, start=1))
    header: dict[str, Any] | None = None
    header_line = 1
    for header_line, line in it:
        if line.strip():
            try:
                header = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{source}:{header_line}: the first line is not JSON ({exc.msg})") from None
            except RecursionError:
                raise ValueError(
                    f"{source}:{header_line}: the first line is nested too deeply to parse"
                ) from None
            break
    if not isinstance(header, dict) or header.get("type") != "run":
        raise ValueError(f"{source}: not a liubai recording (the first line must be a 'run' header)")
    if header.get("format") != RECORDING_FORMAT:
        raise ValueError(f"{source}: unsupported recording format {visible(repr(header.get('format')))[:60]}")
    try:
        fields = typed_fields(RunInfo, {k: v for k, v in header.items() if k not in ("type", "format")})
        if not fields["host"]:
            raise ValueError("host must not be empty")
    except ValueError as exc:
        raise ValueError(f"{source}:{header_line}: bad run header: {exc}") from None
    info = RunInfo(**fields)
    for name, value in (("commit", commit), ("audit_id", audit_id), ("trace_id", trace_id), ("host", host)):
        if value is not None:
            setattr(info, name, visible(value))
    collector = RunCollector(info)
    rejected: list[RejectedRecord] = []
    complete = False
    for lineno, line in it:
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise ValueError("not a JSON object")
            kind = obj.get("type")
            if kind == "end":
                _end(info, obj)
                complete = True
            elif kind == "adopt":
                collector.adopt(*_adopted(obj))
            else:
                collector.add(event_from_json(obj))
        except (ValueError, RecursionError) as exc:
            reason = (exc.msg if isinstance(exc, json.JSONDecodeError)
                      else "nested too deeply to parse" if isinstance(exc, RecursionError) else str(exc))
            rejected.append(
                RejectedRecord(
                    f"events:{source}",
                    f"{source}:{lineno}",
                    f"unusable event line: {reason}",
                    visible(line[:2000]),
                )
            )
    return Replay(collector, rejected, complete)


def _end(info: RunInfo, obj: dict[str, Any]) -> None:
    """Apply an ``end`` line: when the run ended, how, and how many kernel events were lost."""
    try:
        end_ns = typed_value("end_ns", "int | None", obj.get("end_ns"))
        exit_code = typed_value("exit_code", "int | None", obj.get("exit_code"))
        lost_events = typed_value("lost_events", "int | None", obj.get("lost_events"))
    except ValueError as exc:
        raise ValueError(f"end line: {exc}") from None
    info.end_ns, info.exit_code, info.lost_events = end_ns, exit_code, lost_events or 0


def _adopted(obj: dict[str, Any]) -> tuple[ProcInfo, tuple[int, int] | None]:
    """An ``adopt`` line: a process that was running before tracing began, and its parent's key."""
    proc = obj.get("proc")
    if not isinstance(proc, dict):
        raise ValueError("adopt line: proc must be an object")
    try:
        info = ProcInfo(**typed_fields(ProcInfo, proc))
    except ValueError as exc:
        raise ValueError(f"adopt line: {exc}") from None
    parent = obj.get("parent")
    if parent is None:
        return info, None
    if not isinstance(parent, list) or len(parent) != 2:
        raise ValueError("adopt line: parent must be null or [pid, start_ns]")
    return info, (typed_value("pid", "int", parent[0]), typed_value("start_ns", "int", parent[1]))


# -- into the store -----------------------------------------------------------------------------------


@dataclass(slots=True)
class IngestStats:
    processes: int = 0
    file_accesses: int = 0
    rejected: int = 0
    nodes_created: int = 0
    edges_created: int = 0


def ingest_run(
    store: LineageStore,
    collector: RunCollector,
    rejected: Sequence[RejectedRecord] = (),
    *,
    batch_size: int = 5000,
) -> IngestStats:
    """Join the run's records and upsert them in batches of ``batch_size`` records (idempotent)."""
    stats = IngestStats(rejected=len(rejected))
    batch = GraphBatch(rejected=list(rejected))
    pending = 0
    for record in collector.records():
        if isinstance(record, ProcessRecord):
            stats.processes += 1
        elif isinstance(record, FileAccessRecord):
            stats.file_accesses += 1
        add_record(batch, record)
        pending += 1
        if pending >= batch_size:
            _flush(store, batch, stats)
            batch, pending = GraphBatch(), 0
    if batch:
        _flush(store, batch, stats)
    return stats


def _flush(store: LineageStore, batch: GraphBatch, stats: IngestStats) -> None:
    batch.writer = EBPF_WRITER
    result = store.upsert(batch)
    stats.nodes_created += result.nodes_created
    stats.edges_created += result.edges_created
