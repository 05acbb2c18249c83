"""Kernel events of one traced run -> RunRecord, ProcessRecord and FileAccessRecord.

``RunCollector`` replays the per-process story the events tell (fork, exec attempts, exec, opens, chdir,
exit) and aggregates opens per (process, path, mode). Paths are made absolute against the process's
cwd (inherited at fork, followed through chdir/fchdir) or against the fd table for dirfd-relative opens.

Live tracing (``liubai.collector.live_events``) and replay (``liubai.collector.recording``) both feed
this class, so a recorded file replays into the same records. ``ingest_run`` hands the records to the
one ingest pipeline (``liubai.collector.ingest``); nothing here writes to a store itself.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from liubai.collector.ingest import ingest_records
from liubai.ebpf.events import (
    AT_FDCWD,
    ChdirEvent,
    Event,
    ExecArgsEvent,
    ExecEvent,
    ExecFailEvent,
    ExitEvent,
    ForkEvent,
    OpenEvent,
)
from liubai.ebpf.procfs import ProcInfo
from liubai.lineage.model import RejectedRecord
from liubai.lineage.provenance import EBPF_WRITER
from liubai.lineage.records import FileAccessRecord, ProcessRecord, Record, RunRecord, iso_utc
from liubai.lineage.store.base import LineageStore

__all__ = [
    "BinaryHasher",
    "IngestStats",
    "RunCollector",
    "RunInfo",
    "access_mode",
    "ingest_run",
    "resolve_path",
    "run_items",
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


# -- into the store -----------------------------------------------------------------------------------


@dataclass(slots=True)
class IngestStats:
    processes: int = 0
    file_accesses: int = 0
    rejected: int = 0
    nodes_created: int = 0
    edges_created: int = 0


def run_items(collector: RunCollector, rejected: Sequence[RejectedRecord] = ()) -> Iterator[Record]:
    """The run as pipeline items: the lines a replay could not use first (kept, countable), then the
    run's records."""
    yield from rejected
    yield from collector.records()


def ingest_run(
    store: LineageStore,
    collector: RunCollector,
    rejected: Sequence[RejectedRecord] = (),
    *,
    batch_size: int = 5000,
) -> IngestStats:
    """Join the run's records and store them in batches of ``batch_size`` records (idempotent), through
    the ingest pipeline: a store that is briefly down is retried by its one policy."""
    summary = ingest_records(store, run_items(collector, rejected), batch_size=batch_size, writer=EBPF_WRITER)
    return IngestStats(
        processes=summary.count("ProcessRecord"),
        file_accesses=summary.count("FileAccessRecord"),
        rejected=summary.rejected,
        nodes_created=summary.nodes_created,
        edges_created=summary.edges_created,
    )
