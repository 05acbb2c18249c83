"""What a traced run's process model holds: the run (``RunInfo``), each process (``_Proc``) and its file
accesses aggregated per (path, mode) (``_Access``), and the small rules that fill them (an open's access
mode, an exec's argv). ``liubai.collector.runs`` fills them from events; ``liubai.collector.run_records``
turns them into records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from liubai.ebpf.credentials import Creds
from liubai.ebpf.descriptors import FdTable, FsContext
from liubai.ebpf.events import ExecArgsEvent, ExecEvent
from liubai.ebpf.paths import EXACT, Resolved
from liubai.ebpf.procfs import ProcInfo

__all__ = ["ProcessTable", "RunInfo", "_Access", "_Proc", "access_mode", "argv_of"]


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
    repo_url: str | None = None  # the URI of the repository's remote (None: no remote known)
    root_ppid: int | None = None
    root_uid: int | None = None
    end_ns: int | None = None
    exit_code: int | None = None
    lost_events: int = 0
    still_running: int = 0  # processes of the tree alive when tracing stopped (their activity was cut)


@dataclass(slots=True)
class _Access:
    count: int = 0
    flags: int = 0
    certainty: str = EXACT
    exec_ids: set[int] = field(default_factory=set)
    sha256: str | None = None  # exec: the image's; write: the file's at its last close in the run
    via: str | None = None  # how an exec not seen as execve was known (ldso.VIA)
    hash_note: str | None = None  # write: why the run left no digest of the file
    hashed_at: str | None = None
    through_state: bool = False  # resolved through the cwd or descriptor table the model follows


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
    hash_note: str | None = None
    argv: tuple[str, ...] = ()
    argv_status: str = "complete"
    table: FdTable = field(default_factory=FdTable)
    fs: FsContext = field(default_factory=FsContext)
    exec_attempts: int = 0
    exec_failures: int = 0
    exec_ok: bool = False
    end_ns: int | None = None
    exit_code: int | None = None
    pending: ExecArgsEvent | None = None
    pending_binary: Resolved | None = None
    accesses: dict[tuple[str, str], _Access] = field(default_factory=dict)
    execs: list[dict[str, Any]] = field(default_factory=list)
    execs_through_state: list[bool] = field(default_factory=list)  # per exec: its name needed cwd/table
    creds: Creds = field(default_factory=Creds)
    escalation: bool = False
    privilege_drop: bool = False
    incomplete: str | None = None
    loader_program: str | None = None  # a loader image's program name, until its first open

    @property
    def exec_id(self) -> int:
        """The image now running: 0 the one inherited at fork, n the n-th exec of this process."""
        return len(self.execs)


O_WRONLY = 0o1
O_RDWR = 0o2
O_CREAT = 0o100
O_TRUNC = 0o1000
_WRITE_FLAGS = O_WRONLY | O_RDWR | O_CREAT | O_TRUNC


def access_mode(flags: int) -> str:
    """'write' when the open can change the file (O_WRONLY, O_RDWR, O_CREAT, O_TRUNC), else 'read'."""
    return "write" if flags & _WRITE_FLAGS else "read"


def argv_of(pending: ExecArgsEvent | None, event: ExecEvent) -> tuple[tuple[str, ...], str]:
    """The argv of an exec and how complete it is: the kernel's copy, or /proc's where that was partial.
    No copy at all (its attempt was not seen, nor /proc read): no argv, never the image's before."""
    if event.cmdline is not None:
        return event.cmdline, "complete"
    if pending is None:
        return (), "unknown"
    if pending.unreadable:
        return pending.argv, "unreadable"
    if pending.truncated or pending.cut:
        return pending.argv, "truncated"
    return pending.argv, "complete"


class ProcessTable:
    """The processes of a run by (pid, start_ns): every one seen (``procs``), the newest per pid, and
    those not seen exiting (``_live``: their descriptors and cwds follow renames)."""

    procs: dict[tuple[int, int], _Proc]
    _latest: dict[int, tuple[int, int]]
    _live: dict[tuple[int, int], _Proc]

    def _add(self, proc: _Proc) -> _Proc:
        self.procs[(proc.pid, proc.start_ns)] = proc
        self._live[(proc.pid, proc.start_ns)] = proc
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
        proc.fs.cwd = info.cwd

    def forget(self, key: tuple[int, int]) -> None:
        """Drop an ended process once its records left (a long-lived model stays bounded)."""
        self.procs.pop(key, None)
        self._live.pop(key, None)
        if self._latest.get(key[0]) == key:
            del self._latest[key[0]]
