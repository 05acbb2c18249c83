"""Kernel events of one traced run -> RunRecord, ProcessRecord and FileAccessRecord.

``RunCollector`` replays the per-process story the events tell (fork, exec attempts, exec, opens, chdir,
exit) and aggregates opens per (process, path, mode). Paths are made absolute against the process's
cwd (inherited at fork, followed through chdir/fchdir) or against the fd table for dirfd-relative opens.

Live tracing (``liubai.collector.live_events``) and replay (``liubai.collector.recording``) both feed
this class, so a recorded file replays into the same records.

The run's parts live beside it: the model it fills (``run_model``), the records it gives
(``run_records``, the base class of ``RunCollector``), the image hashing the live tracer does
(``binary_hasher``) and the hand-over to the ingest pipeline (``run_ingest``). Their public names are
importable from here as before.
"""

from __future__ import annotations

from liubai.collector import ldso
from liubai.collector.binary_hasher import BinaryHasher
from liubai.collector.run_ingest import IngestStats, ingest_run, run_items
from liubai.collector.run_model import ProcessTable, RunInfo, _Access, _Proc, access_mode, argv_of
from liubai.collector.run_records import RunRecords
from liubai.ebpf.credentials import Creds, apply_cred_event, compare, exec_creds
from liubai.ebpf.descriptors import (
    CLONE_FILES,
    CLONE_FS,
    O_CLOEXEC,
    FdEntry,
    apply_fd_event,
)
from liubai.ebpf.events import (
    AT_FDCWD,
    CD_CHROOT,
    OPEN_BY_HANDLE,
    OPEN_MEMFD,
    RENAME_EXCHANGE,
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
    RenameEvent,
    UringEvent,
)
from liubai.ebpf.paths import (
    EXACT,
    KERNEL,
    LEXICAL,
    UNRESOLVED,
    WALKED,
    Resolved,
    fd_link,
    follow_rename,
    join_path,
    resolve_path,
    through_state,
    weakest,
)

__all__ = [
    "BinaryHasher",
    "IngestStats",
    "RunCollector",
    "RunInfo",
    "access_mode",
    "ingest_run",
    "resolve_path",
    "run_items",
    "_Access",
    "_Proc",
]

AT_EMPTY_PATH = 0x1000


class RunCollector(ProcessTable, RunRecords):
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
        self._live: dict[tuple[int, int], _Proc] = {}
        self._write_opens: dict[tuple[int, int, int], str] = {}  # (pid, start_ns, ts) of a write open -> path
        self._unsealed: dict[str, list[_Access]] = {}  # path -> write accesses since its last digest
        if root:
            first = _Proc(pid=info.root_pid, start_ns=info.start_ns, ppid=info.root_ppid, uid=info.root_uid)
            first.fs.cwd = info.cwd
            first.argv = info.command
            self._add(first)

    # -- events --------------------------------------------------------------------------------------

    def add(self, event: Event) -> None:
        self.events += 1
        proc = self._proc(event.pid, event.start_ns)
        if proc.uid is None or not isinstance(event, ForkEvent):
            proc.uid = event.uid
        match event:  # the most frequent kinds first (the classes are disjoint: order is only cost)
            case FdEvent():
                proc.table = apply_fd_event(proc.table, event)
                if event.op == 5 and event.arg & CLONE_FS:  # unshare(CLONE_FS)
                    proc.fs = proc.fs.copy()
            case OpenEvent():
                self._opened(proc, event)
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
            case ChdirEvent():
                self._changed_dir(proc, event)
            case UringEvent():
                proc.incomplete = "io_uring"
            case DigestEvent():
                self._digested(event)
            case RenameEvent():
                self._renamed(proc, event)
            case CredEvent():
                self._set_creds(proc, apply_cred_event(proc.creds, event))
            case ExitEvent():
                self._live.pop((proc.pid, proc.start_ns), None)
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
        proc.argv, proc.argv_status = argv_of(pending, event)
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
            path, certainty = _unresolved(event.path, event.dfd, event.kind == OPEN_BY_HANDLE), UNRESOLVED
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
        if mode == "write" and slot is not None:
            self._await_digest(proc, path, slot, event.ts)
        program, proc.loader_program = proc.loader_program, None
        if program is not None and event.path == program and certainty != UNRESOLVED:
            loaded = self._access(proc, path, "exec", 0, certainty, via=ldso.VIA)  # the loader's first open
            if loaded is not None:
                loaded.through_state |= state

    def _renamed(self, proc: _Proc, event: RenameEvent) -> None:
        """A rename writes the name it moves a file to (both names of an exchange): a write of that
        path ``via`` rename, whose digest the live run takes as for a write open at the rename's time.
        Descriptors and cwds of live processes that name what it moved follow it."""
        exchange = bool(event.flags & RENAME_EXCHANGE)
        old = self._resolve(proc, event.old_path, event.old_dfd)
        new = self._resolve(proc, event.new_path, event.new_dfd)
        for n, (name, dfd, got) in enumerate(
            [(event.new_path, event.new_dfd, new), (event.old_path, event.old_dfd, old)][
                : 2 if exchange else 1
            ]
        ):
            path, certainty = got or (_unresolved(name, dfd), UNRESOLVED)
            self.unresolved += certainty == UNRESOLVED
            slot = self._access(proc, path, "write", 0, certainty, via="rename")
            if slot is not None:
                self._await_digest(proc, path, slot, event.ts + n)
        if old is not None and new is not None and UNRESOLVED not in (old[1], new[1]):
            live = self._live.values()
            follow_rename([p.table for p in live], [p.fs for p in live], old, new, exchange)

    def _await_digest(self, proc: _Proc, path: str, slot: _Access, ts: int) -> None:
        """A write of ``path`` at ``ts``: the digest of its last close (``DigestEvent``) seals it."""
        if self.follows_digests:
            self._write_opens[(proc.pid, proc.start_ns, ts)] = path
            unsealed = self._unsealed.setdefault(path, [])
            if not any(s is slot for s in unsealed):
                unsealed.append(slot)

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


def _unresolved(name: str, dfd: int, by_handle: bool = False) -> str:
    """How a name that could not be made absolute is stored: with what it was relative to."""
    where = "handle" if by_handle else "cwd" if dfd == AT_FDCWD else f"fd {dfd}"
    return f"<unresolved {where}>/{name}".rstrip("/")
