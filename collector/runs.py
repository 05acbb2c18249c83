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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from liubai.collector import ldso
from liubai.collector.ingest import ingest_records
from liubai.ebpf.credentials import Creds, apply_cred_event, compare, exec_creds
from liubai.ebpf.descriptors import (
    CLONE_FILES,
    CLONE_FS,
    O_CLOEXEC,
    FdEntry,
    FdTable,
    FsContext,
    apply_fd_event,
)
from liubai.ebpf.events import (
    AT_FDCWD,
    CD_CHROOT,
    OPEN_BY_HANDLE,
    OPEN_MEMFD,
    ChdirEvent,
    CredEvent,
    DigestEvent,
    Event,
    ExecArgsEvent,
    ExecEvent,
    ExecFailEvent,
    ExitEvent,
    FdEvent,
    ForkEvent,
    OpenEvent,
    UringEvent,
)
from liubai.ebpf.paths import (
    AFTER_LOSS,
    EXACT,
    KERNEL,
    LEXICAL,
    UNRESOLVED,
    WALKED,
    Resolved,
    fd_link,
    join_path,
    resolve_path,
    through_state,
    weakest,
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
AT_EMPTY_PATH = 0x1000


def access_mode(flags: int) -> str:
    """'write' when the open can change the file (O_WRONLY, O_RDWR, O_CREAT, O_TRUNC), else 'read'."""
    return "write" if flags & _WRITE_FLAGS else "read"


class BinaryHasher:
    """sha256 of files, cached by (device, inode, change time, size) so a binary run 1,000 times is read
    once; the change time moves with every write, rename or chmod of the inode."""

    def __init__(self) -> None:
        self._cache: dict[tuple[int, int, int, int], str] = {}

    def sha256(self, path: str) -> str | None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            return self.sha256_fd(fd)
        finally:
            os.close(fd)

    def sha256_fd(self, fd: int) -> str | None:
        """The hash of the open file ``fd`` (the very inode, whatever its name is now)."""
        try:
            st = os.fstat(fd)
        except OSError:
            return None
        key = (st.st_dev, st.st_ino, st.st_ctime_ns, st.st_size)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        digest = hashlib.sha256()
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            for chunk in iter(lambda: os.read(fd, 1 << 20), b""):
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


class RunCollector:
    """Accumulates the events of one run; ``records()`` gives the run, its processes and file accesses."""

    follows_digests = True  # write opens are kept until the digest of their last close arrives

    def __init__(self, info: RunInfo, *, root: bool = True) -> None:
        """``root=False``: no root process (a container's processes, which the node agent meets as they
        come), so ``info.root_pid`` names nothing."""
        self.info = info
        self.procs: dict[tuple[int, int], _Proc] = {}
        self.unresolved = 0
        self.lexical = 0
        self.walked = 0
        self.events = 0
        self._latest: dict[int, tuple[int, int]] = {}
        self._write_opens: dict[tuple[int, int, int], str] = {}  # (pid, start_ns, ts) of a write open -> path
        self._unsealed: dict[str, list[_Access]] = {}  # path -> write accesses since its last digest
        if root:
            first = _Proc(pid=info.root_pid, start_ns=info.start_ns, ppid=info.root_ppid, uid=info.root_uid)
            first.fs.cwd = info.cwd
            first.argv = info.command
            self._add(first)

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
        proc.fs.cwd = info.cwd

    # -- events --------------------------------------------------------------------------------------

    def add(self, event: Event) -> None:
        self.events += 1
        proc = self._proc(event.pid, event.start_ns)
        if proc.uid is None or not isinstance(event, ForkEvent):
            proc.uid = event.uid
        match event:
            case ForkEvent():
                self._forked(proc, event)
            case ExecArgsEvent():
                proc.exec_attempts += 1
                proc.pending = event
                proc.pending_binary = self._exec_name(proc, event) or (event.filename, UNRESOLVED)
            case ExecFailEvent():
                proc.exec_failures += 1
            case ExecEvent():
                self._executed(proc, event)
            case OpenEvent():
                self._opened(proc, event)
            case FdEvent():
                proc.table = apply_fd_event(proc.table, event)
                if event.op == 5 and event.arg & CLONE_FS:  # unshare(CLONE_FS)
                    proc.fs = proc.fs.copy()
            case ChdirEvent():
                self._changed_dir(proc, event)
            case UringEvent():
                proc.incomplete = "io_uring"
            case DigestEvent():
                self._digested(event)
            case CredEvent():
                self._set_creds(proc, apply_cred_event(proc.creds, event))
            case ExitEvent():
                proc.end_ns = event.ts
                proc.exit_code = event.exit_code
                if event.comm:
                    proc.comm = event.comm

    def _forked(self, proc: _Proc, event: ForkEvent) -> None:
        child = self._add(_Proc(pid=event.child, start_ns=event.child_start_ns))
        child.ppid = event.pid
        child.parent_start_ns = event.start_ns
        child.parent_uid = event.uid
        child.uid = event.uid
        child.comm = proc.comm
        child.binary = proc.binary
        child.binary_sha256 = proc.binary_sha256
        child.hash_note = proc.hash_note
        child.argv = proc.argv
        child.argv_status = proc.argv_status
        child.table = proc.table if event.clone_flags & CLONE_FILES else proc.table.copy()
        child.fs = proc.fs if event.clone_flags & CLONE_FS else proc.fs.copy()
        child.creds = proc.creds
        child.incomplete = proc.incomplete  # an inherited ring can still be used

    def _exec_name(self, proc: _Proc, event: ExecArgsEvent) -> Resolved | None:
        """The absolute name an exec attempt asked for (execveat relative to a descriptor included)."""
        if event.at_flags & AT_EMPTY_PATH and not event.filename:
            entry = proc.table.get(event.dfd)
            return (entry.path, entry.certainty) if entry else None
        return self._resolve(proc, event.filename, event.dfd)

    def _executed(self, proc: _Proc, event: ExecEvent) -> None:
        if proc.fs.cwd is None and event.cwd:
            proc.fs.cwd = event.cwd
        pending, proc.pending = proc.pending, None
        proc.table = proc.table.copy()  # exec unshares the table, then closes close-on-exec descriptors
        proc.table.close_on_exec()
        asked = proc.pending_binary if pending is not None else None
        named = pending.filename if pending is not None else event.filename
        if asked is None or asked[1] == UNRESOLVED or asked[0].startswith(("/dev/fd/", "/proc/")):
            # the attempt's name unknown (a page not resident at entry) or naming a descriptor: the kernel's
            named = event.filename
            asked = self._resolve(proc, named, AT_FDCWD) or (named, UNRESOLVED)
        binary, certainty = asked
        state = through_state(named)  # an execveat of a descriptor (empty name) included
        if binary.startswith(("/dev/fd/", "/proc/")) and event.image:
            # fexecve of a descriptor the events never showed opened (a memfd): the kernel's name
            binary, certainty, state = event.image, KERNEL, False
        proc.pending_binary = None
        proc.exec_ok = True
        proc.binary, proc.binary_sha256, proc.hash_note = binary, event.sha256, event.hash_note
        proc.comm = event.comm
        proc.argv, proc.argv_status = _argv_of(pending, event)
        status = proc.argv_status
        creds_from: str | None = None
        if event.euid is not None:
            self._set_creds(proc, Creds(event.ruid, event.euid, event.suid, event.fsuid, event.cap_eff))
            creds_from = "proc"
        elif event.image_rights:  # the process was gone: the kernel's exec rules on what is known
            self._set_creds(proc, exec_creds(proc.creds, event.image_setuid, event.image_caps))
            creds_from = "exec rules"  # assumes no ptrace and no no_new_privs, which would deny them
        else:
            self._set_creds(proc, Creds())
        proc.execs.append(
            {
                "id": len(proc.execs) + 1,
                "binary": binary,
                "certainty": certainty,
                "sha256": event.sha256,
                "hash_note": event.hash_note,
                "image": event.image,
                "argv": list(proc.argv),
                "argv_status": status,
                "at": self._iso(event.ts),
                "euid": proc.creds.euid,
                "cap_eff": proc.creds.cap_eff,
                "creds_from": creds_from,
            }
        )
        proc.execs_through_state.append(state)
        slot = self._access(proc, binary, "exec", 0, certainty, event.sha256)
        if slot is not None:
            slot.through_state |= state
        proc.loader_program = ldso.program_of(proc.argv) if ldso.is_loader(binary) else None
        if event.image and event.image != binary and event.image_sha256 is not None:
            self._access(proc, event.image, "exec", 0, KERNEL, event.image_sha256)  # a #! interpreter

    def _set_creds(self, proc: _Proc, new: Creds) -> None:
        rise, fall = compare(proc.creds, new)
        proc.escalation |= rise
        proc.privilege_drop |= fall
        proc.creds = new

    def _resolve(self, proc: _Proc, path: str, dfd: int) -> Resolved | None:
        is_link, target = fd_link(path, proc.pid, proc.table)
        if is_link:
            return target
        if path.startswith("/"):
            return join_path(path, None, EXACT, proc.fs.root)
        if dfd == AT_FDCWD:
            return join_path(path, proc.fs.cwd, proc.fs.cwd_certainty, proc.fs.root)
        entry = proc.table.get(dfd)
        return join_path(path, entry.path, entry.certainty) if entry else None

    def _opened(self, proc: _Proc, event: OpenEvent) -> None:
        resolved: Resolved | None
        if event.kind == OPEN_MEMFD:  # a descriptor, not a file access: named as the kernel shows it
            proc.table.opened(
                event.fd, FdEntry(f"/memfd:{event.path} (deleted)", KERNEL, bool(event.flags & 1))
            )
            return
        state = False
        if event.kernel_path:
            resolved = (event.kernel_path, WALKED if event.walked else KERNEL)
        elif event.kind == OPEN_BY_HANDLE:
            resolved = None
        else:
            resolved = self._resolve(proc, event.path, event.dfd)
            state = through_state(event.path)
        if resolved is None:
            self.unresolved += 1
            where = (
                "handle"
                if event.kind == OPEN_BY_HANDLE
                else "cwd"
                if event.dfd == AT_FDCWD
                else f"fd {event.dfd}"
            )
            path, certainty = f"<unresolved {where}>/{event.path}".rstrip("/"), UNRESOLVED
            proc.table.opened(event.fd, None)
        else:
            path, certainty = resolved
            if certainty == LEXICAL:
                self.lexical += 1
            elif certainty == WALKED:
                self.walked += 1
            proc.table.opened(event.fd, FdEntry(path, certainty, bool(event.flags & O_CLOEXEC)))
        mode = access_mode(event.flags)
        slot = self._access(proc, path, mode, event.flags, certainty)
        if slot is not None:
            slot.through_state |= state
        if mode == "write" and slot is not None and self.follows_digests:
            self._write_opens[(proc.pid, proc.start_ns, event.ts)] = path
            unsealed = self._unsealed.setdefault(path, [])
            if not any(s is slot for s in unsealed):
                unsealed.append(slot)
        program, proc.loader_program = proc.loader_program, None
        if program is not None and event.path == program and certainty != UNRESOLVED:
            loaded = self._access(proc, path, "exec", 0, certainty, via=ldso.VIA)  # the loader's first open
            if loaded is not None:
                loaded.through_state |= state

    def _changed_dir(self, proc: _Proc, event: ChdirEvent) -> None:
        if event.fd >= 0:
            entry = proc.table.get(event.fd)
            resolved = (
                (entry.path, entry.certainty) if entry else ((event.cwd, KERNEL) if event.cwd else None)
            )
        else:
            resolved = self._resolve(proc, event.path, AT_FDCWD)
            if resolved is None and event.cwd:
                resolved = (event.cwd, KERNEL)
        if event.kind == CD_CHROOT:
            proc.fs.root = resolved[0] if resolved else "/"
            return
        proc.fs.cwd, proc.fs.cwd_certainty = resolved if resolved else (None, EXACT)

    def _access(
        self,
        proc: _Proc,
        path: str,
        mode: str,
        flags: int,
        certainty: str,
        sha: str | None = None,
        via: str | None = None,
    ) -> _Access | None:
        """The access slot counted (None: one a subclass did not admit)."""
        slot = proc.accesses.setdefault((path, mode), _Access())
        if via is not None:
            slot.via = via
        slot.certainty = weakest(slot.certainty, certainty) if slot.count else certainty
        slot.count += 1
        slot.flags |= flags
        slot.exec_ids.add(proc.exec_id)
        if mode == "exec":
            slot.sha256 = sha
        return slot

    def _digested(self, event: DigestEvent) -> None:
        """A written file's digest at its last close: it holds for every write of it since the last one."""
        path = self._write_opens.pop((event.opener_pid, event.opener_start_ns, event.opened_ts), None)
        if path is None:  # the write open itself was not seen (a dropped event): the hashed name
            if not event.path:
                return
            path = event.path
        slots = self._unsealed.pop(path, [])
        if not slots:
            opener = self.procs.get((event.opener_pid, event.opener_start_ns))
            slot = opener.accesses.get((path, "write")) if opener else None
            slots = [slot] if slot is not None else []
        for slot in slots:
            slot.sha256, slot.hash_note, slot.hashed_at = event.sha256, event.hash_note, self._iso(event.ts)

    # -- output --------------------------------------------------------------------------------------

    def doubts(self) -> dict[str, int]:
        """What the run could not know for sure, by kind (only the non-zero counts)."""
        procs = self.procs.values()
        counts = {
            "opens with an unresolved path": self.unresolved,
            "opens with a lexical path": self.lexical,
            "opens with a path walked after the process ended": self.walked,
            "accesses resolved through a cwd or descriptor table lost events may have changed": sum(
                1 for p in procs for a in p.accesses.values() if self._after_loss(a.through_state)
            ),
            "processes with io_uring (file activity incomplete)": sum(1 for p in procs if p.incomplete),
            "execs without a hash": sum(1 for p in procs for x in p.execs if x["sha256"] is None),
            "execs whose image path is uncertain": sum(
                1
                for p in procs
                for x, state in zip(p.execs, p.execs_through_state, strict=True)
                if self._certainty(x["certainty"], state) not in (EXACT, KERNEL)
            ),
            "execs with partial argv": sum(
                1 for p in procs for x in p.execs if x["argv_status"] != "complete"
            ),
            "processes still running when tracing stopped": self.info.still_running,
        }
        return {k: v for k, v in counts.items() if v}

    def _after_loss(self, through_state: bool) -> bool:
        """Whether a resolution through the followed cwd or descriptor table is in doubt: the run lost
        events, and any of them may have been a chdir, close or dup of any process (none says whose)."""
        return through_state and self.info.lost_events > 0

    def _certainty(self, certainty: str, through_state: bool) -> str:
        return weakest(certainty, AFTER_LOSS) if self._after_loss(through_state) else certainty

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
        procs = [self.procs[k] for k in sorted(self.procs, key=lambda k: (k[1], k[0]))]
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
            repo_url=info.repo_url,
            cwd=info.cwd,
            lost_events=info.lost_events,
            unresolved_opens=self.unresolved,
            lexical_paths=self.lexical,
            incomplete_processes=sum(1 for p in procs if p.incomplete),
            unhashed_images=sum(1 for p in procs for x in p.execs if x["sha256"] is None),
            partial_argv=sum(1 for p in procs for x in p.execs if x["argv_status"] != "complete"),
            still_running=info.still_running,
            cut_at=self._iso(info.end_ns) if info.still_running else None,
        )
        for p in procs:
            yield from self._process_records(p)

    def process_records(self, key: tuple[int, int]) -> Iterator[ProcessRecord | FileAccessRecord]:
        """One process's record and its file accesses (totals so far), as ``records()`` gives them."""
        proc = self.procs.get(key)
        if proc is not None:
            yield from self._process_records(proc)

    def forget(self, key: tuple[int, int]) -> None:
        """Drop an ended process once its records left (a long-lived model stays bounded)."""
        self.procs.pop(key, None)
        if self._latest.get(key[0]) == key:
            del self._latest[key[0]]

    def _process_records(self, p: _Proc) -> Iterator[ProcessRecord | FileAccessRecord]:
        info = self.info
        exec_failed = p.exec_failures > 0 and not p.exec_ok
        if exec_failed and p.pending is not None:  # what it tried to run, not its parent's image
            asked = p.pending_binary[0] if p.pending_binary else p.pending.filename
            p.argv, p.binary, p.binary_sha256 = p.pending.argv, asked, None
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
            cwd=p.fs.cwd,
            started_at=self._iso(p.start_ns),
            ended_at=self._iso(p.end_ns),
            exit_code=p.exit_code,
            exec_failed=exec_failed,
            hash_note=p.hash_note if p.binary_sha256 is None else None,
            argv_status=p.argv_status,
            execs=tuple(
                {**x, "certainty": self._certainty(x["certainty"], state)}
                for x, state in zip(p.execs, p.execs_through_state, strict=True)
            ),
            euid=p.creds.euid,
            suid=p.creds.suid,
            cap_eff=p.creds.cap_eff,
            escalation=p.escalation,
            privilege_drop=p.privilege_drop,
            file_activity_incomplete=p.incomplete,
        )
        images = {i for a in p.accesses.values() for i in a.exec_ids}
        for (path, mode), a in sorted(p.accesses.items()):
            yield FileAccessRecord(
                host=info.host,
                pid=p.pid,
                start_ns=p.start_ns,
                path=path,
                mode=mode,
                count=a.count,
                flags=a.flags if mode != "exec" else None,
                sha256=a.sha256 if mode != "read" else None,
                hash_note=a.hash_note,
                hashed_at=a.hashed_at,
                certainty=self._certainty(a.certainty, a.through_state),
                exec_ids=tuple(sorted(a.exec_ids)) if len(images) > 1 else (),
                via=a.via,
            )


def _argv_of(pending: ExecArgsEvent | None, event: ExecEvent) -> tuple[tuple[str, ...], str]:
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
