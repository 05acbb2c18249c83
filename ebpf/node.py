"""Trace every process of the Kubernetes pods on this node, each attributed to its pod and container.

The BPF program runs in node mode: no root pid; a task in a pod cgroup joins the traced tree when it
forks or execs (the kernel checks its cgroup ancestors against the pod roots this module finds in
the cgroup v2 hierarchy and keeps up to date). Host processes never produce events. Processes already
running in pods when tracing starts are found in /proc and tracked from user space.

What the kernel cannot know is read from /proc at once and checked to be the same process: the start
time of a process the kernel adopted mid-life (events sent before it was known are fixed up), its
container (from its cgroup id, or /proc/<pid>/cgroup), ``X_GITOPS_AUDIT_ID`` from its environment at
exec. The events get the same treatment as ``liubai trace`` (``LiveEvents``: hash at exec, argv and
credentials from /proc, withdrawn reads), in the container's view of the filesystem.

Without pod cgroups in a v2 hierarchy (pure cgroup v1) the kernel cannot filter: every untracked exec
then asks user space, which reads /proc/<pid>/cgroup and tracks pod processes from that moment on:
what one did between its exec and that answer is not seen. ``attribution`` then says ``"procfs"``
(announce it as such) and ``counters["probes"]`` counts the questions.

With ``NodeOptions.handoff_socket`` the tracer also hosts ``liubai trace``'s hand-off
(``liubai.collector.handoff_server``) on its loaded program: a handed-off command is a host process tree,
so its events go to the run and never to the pod path, the /proc scans leave its pids alone, and the
hand-off refuses a pid in a pod container or already traced here (each process has one owner).
"""

from __future__ import annotations

import ctypes
import os
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from liubai.collector.handoff_server import HandoffServer
from liubai.collector.live_events import LiveEvents, same_process
from liubai.ebpf import cgroups, procfs
from liubai.ebpf.cgroups import ContainerRef
from liubai.ebpf.events import (
    ADOPT_PROBE,
    ADOPT_SCAN,
    EV_ADOPT,
    EV_CGROUP,
    AdoptEvent,
    Event,
    ExecEvent,
    ExitEvent,
    ForkEvent,
)
from liubai.ebpf.loader import Tracer
from liubai.ebpf.node_handoff import listen
from liubai.ebpf.program import ProgramOptions
from liubai.lineage.model import AUDIT_ID_ENV
from liubai.lineage.text import bytes_text

__all__ = ["AdoptedProcess", "NodeEvent", "NodeOptions", "NodeTracer", "read_environ_value"]

_HDR = struct.Struct("<IIIIQQ")
_CGROUP = struct.Struct("<QII")  # after the header: cgroup id, made (1) or removed (0), padding
_START_AT = 24  # byte offset of the header's start_ns
_BPF_EXIST = 2
_BUSY_POLL_MS = 5  # while a handed-off run waits for its events (HandoffServer.busy)


@dataclass(frozen=True, slots=True)
class NodeOptions:
    """``rescan_s``: how often the pod roots are looked for again (the first pod on a node creates
    them); ``cgroup2``: the cgroup v2 mount (found in /proc/self/mountinfo when None);
    ``handoff_socket``: where ``liubai trace`` may hand its command over (None: nowhere)."""

    program: ProgramOptions = field(default_factory=lambda: ProgramOptions(node=True))
    rescan_s: float = 2.0
    cgroup2: str | None = None
    handoff_socket: Path | None = None


@dataclass(slots=True)
class NodeEvent:
    """A kernel event with the container of its process (None: it could not be attributed, counted in
    ``NodeTracer.counters["unattributed"]``) and, on an exec or an adoption, the raw
    ``X_GITOPS_AUDIT_ID`` value of the process's environment (None: absent or unreadable)."""

    event: Event
    container: ContainerRef | None
    audit_id: str | None = None


@dataclass(slots=True)
class AdoptedProcess:
    """A process already running in a pod container when tracing began, as /proc described it."""

    info: procfs.ProcInfo
    container: ContainerRef
    audit_id: str | None = None


def read_environ_value(pid: int, name: str) -> tuple[bool, str | None]:
    """(readable, value of ``name``) from ``/proc/<pid>/environ``."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            raw = fh.read()
    except OSError:
        return False, None
    prefix = name.encode() + b"="
    for item in raw.split(b"\0"):
        if item.startswith(prefix):
            return True, bytes_text(item[len(prefix) :])
    return True, None


class NodeTracer:
    """The node-mode tracer: ``start()``, then ``poll()`` in a loop, ``close()`` at the end.

    Events leave one poll late: a /proc read made for an event is withdrawn if a later event shows the
    process had moved on before the read, and that later event may only arrive with the next batch.
    ``flush()`` hands over the rest (at shutdown)."""

    def __init__(self, options: NodeOptions | None = None) -> None:
        self.options = options or NodeOptions()
        if not self.options.program.node:
            raise ValueError("NodeTracer needs ProgramOptions(node=True)")
        self.counters: Counter[str] = Counter()
        self.attribution = "kernel"  # "procfs" on a host without pod cgroups in a v2 hierarchy
        self.mount = self.options.cgroup2 or cgroups.cgroup2_mount()
        self._tracer: Tracer | None = None
        self._live: LiveEvents | None = None
        self._roots: dict[int, str] = {}  # cgroup id of a pod root -> its path
        self._by_cgroup: dict[int, ContainerRef | None] = {}
        self._container: dict[int, ContainerRef | None] = {}  # pid -> container, while it runs
        self._start_fix: dict[int, int] = {}  # pid -> start time the kernel did not know
        self._audit: dict[int, str | None] = {}  # id(exec event) -> audit id
        self._env_reads: dict[int, tuple[int, ExecEvent]] = {}  # pid -> (read time, exec event)
        self._held: list[NodeEvent] = []
        self._next_scan = 0
        self.handoff: HandoffServer | None = None

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> list[AdoptedProcess]:
        """Load the program, find the pod roots, and track the pod processes already running."""
        tracer = Tracer(self.options.program)
        self._tracer = tracer
        self._live = LiveEvents(
            tracer.decoder, lost=tracer.lost_events, container_view=True, on_exec=self._read_audit_id
        )
        tracer.on_raw(self._on_raw)
        if self.options.handoff_socket is not None:
            self.handoff = listen(tracer, self.options.handoff_socket, self._refuse_handoff, self.counters)
        self.rescan(adopt=False)
        return self._adopt_running()

    def _refuse_handoff(self, pid: int) -> str | None:
        """Why a handed-off run may not have ``pid``: the pod path records it (or is about to)."""
        assert self._tracer is not None
        ref = cgroups.container_of_pid(pid)
        if ref is not None:
            return f"process {pid} runs in pod container {ref.container_id}: the node agent records it there"
        table = self._tracer.bpf_table("tracked")
        if pid in self._container or table.get(table.Key(pid)) is not None:
            return f"process {pid} is already traced by the node agent"
        return None

    def _adopt_running(self) -> list[AdoptedProcess]:
        """Track the pod processes /proc shows that the kernel does not track yet (parents first)."""
        assert self._tracer is not None
        tracked = self._tracer.bpf_table("tracked")
        adopted: list[AdoptedProcess] = []
        for pid in _pids():
            if pid in self._container or tracked.get(tracked.Key(pid)) is not None:
                continue
            if self.handoff is not None and self.handoff.owns(pid):
                continue
            ref = cgroups.container_of_pid(pid)
            if ref is None:
                continue
            found = self._adopt_from_proc(pid, ref)
            if found is not None:
                adopted.append(found)
        adopted.sort(key=lambda a: (a.info.start_ns, a.info.pid))
        return adopted

    def _adopt_from_proc(self, pid: int, ref: ContainerRef) -> AdoptedProcess | None:
        assert self._tracer is not None and self._live is not None
        before = procfs.clock_boot_ns()
        try:
            info = procfs.proc_info(pid)
        except (OSError, ValueError, IndexError):
            return None
        self._tracer.track(pid, info.start_ns, info.ppid)
        info.cwd = _in_container(pid, info.cwd)
        info.binary = _in_container(pid, info.binary)
        readable, audit = read_environ_value(pid, AUDIT_ID_ENV)
        if not same_process(pid, info.start_ns):  # the pid went to another process meanwhile
            self._untrack(pid, info.start_ns)
            return None
        if not readable:
            self.counters["environ_unreadable"] += 1
        self._live.start_at(pid, info.cwd, (before, procfs.clock_boot_ns()))
        self._container[pid] = ref
        return AdoptedProcess(info, ref, audit)

    def _untrack(self, pid: int, start_ns: int) -> None:
        """Take ``pid`` out of the kernel's tree if the entry is still the one made for ``start_ns``."""
        assert self._tracer is not None
        table = self._tracer.bpf_table("tracked")
        try:
            entry = table[table.Key(pid)]
            if entry.start_ns == start_ns:
                del table[table.Key(pid)]
        except KeyError:
            pass

    def rescan(self, adopt: bool = True) -> None:
        """Find the pod roots again and give the kernel their cgroup ids; on a host whose pods are not
        in a cgroup v2 hierarchy, switch to asking /proc (and say so in ``attribution``).

        Processes already running under a root found only now (the node's first pod made it) are
        adopted from /proc and announced by an ``AdoptEvent`` (``ADOPT_SCAN``) in the event stream."""
        tracer = self._tracer
        if tracer is None:
            return
        self._next_scan = procfs.clock_boot_ns() + int(self.options.rescan_s * 1e9)
        roots = cgroups.pod_roots(self.mount) if self.mount else []
        table = tracer.bpf_table("pod_roots")
        new = False
        for path in roots:
            try:
                ino = os.stat(path).st_ino
            except OSError:
                continue
            if ino not in self._roots:
                table[table.Key(ino)] = table.Leaf(1)
                self._roots[ino] = path
                new = True
        if new and adopt:
            self._announce(self._adopt_running())
        if not self._roots and self.attribution == "kernel" and _v1_pod_roots():
            self.attribution = "procfs"
            probe = tracer.bpf_table("node_probe")
            probe[probe.Key(0)] = probe.Leaf(1)

    def _announce(self, adopted: list[AdoptedProcess]) -> None:
        assert self._live is not None
        now = procfs.clock_boot_ns()
        for a in adopted:
            info = a.info
            event = AdoptEvent(info.pid, info.pid, info.uid, now, info.start_ns, reason=ADOPT_SCAN)
            event.ppid, event.comm, event.argv, event.binary, event.cwd = (
                info.ppid,
                info.comm,
                info.argv,
                info.binary,
                info.cwd,
            )
            self._live.insert(event)
            self._audit[id(event)] = a.audit_id

    def close(self) -> None:
        if self.handoff is not None:
            self.handoff.close()
            self.handoff = None
        if self._tracer is not None:
            self._tracer.close()
            self._tracer = None

    def __enter__(self) -> NodeTracer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- events --------------------------------------------------------------------------------------

    def poll(self, timeout_ms: int = 100) -> list[NodeEvent]:
        """The events up to the previous poll, in kernel order (see the class text for the delay)."""
        if self._tracer is None or self._live is None:
            raise RuntimeError("NodeTracer.start() was not called")
        if procfs.clock_boot_ns() >= self._next_scan:
            self.rescan()
        handoff = self.handoff
        if handoff is not None and handoff.busy:
            timeout_ms = min(timeout_ms, _BUSY_POLL_MS)
        self._tracer.poll(timeout_ms)
        if handoff is not None:
            handoff.polled()
        out, self._held = self._held, self._batch()
        return out

    def flush(self) -> list[NodeEvent]:
        """Every event not yet handed over (the tracer is being stopped)."""
        if self._tracer is not None:
            self._tracer.drain()
            if self.handoff is not None:
                self.handoff.polled()
        out, self._held = self._held + self._batch(), []
        return out

    def lost_events(self) -> int:
        return 0 if self._tracer is None else self._tracer.lost_events()

    def _batch(self) -> list[NodeEvent]:
        assert self._live is not None
        out: list[NodeEvent] = []
        for event in self._live.take():
            ref = self._container.get(event.pid)
            if isinstance(event, ForkEvent):
                self._container[event.child] = ref
            if ref is None:
                self.counters["unattributed"] += 1
            audit = self._audit.pop(id(event), None) if isinstance(event, (ExecEvent, AdoptEvent)) else None
            out.append(NodeEvent(event, ref, audit))
            if isinstance(event, ExitEvent):
                self._container.pop(event.pid, None)
                self._start_fix.pop(event.pid, None)
                self._env_reads.pop(event.pid, None)
        self.counters["decode_errors"] = self._live.decode_errors
        return out

    def _on_raw(self, raw: bytes) -> None:
        assert self._live is not None
        kind, tgid, _tid, _uid, _ts, start = _HDR.unpack_from(raw)  # once: this runs for every event
        if kind == EV_CGROUP:
            self._cgroup_changed(raw)
            return
        if self.handoff is not None and self.handoff.feed(raw):
            return  # a handed-off run's event: a host process tree, not a pod's
        if kind == EV_ADOPT:
            self._adopted(raw)
            return
        if start == 0 and tgid in self._start_fix:  # sent before user space knew the adopted one's start
            raw = raw[:_START_AT] + struct.pack("<Q", self._start_fix[tgid]) + raw[_START_AT + 8 :]
        self._live(raw)

    def _cgroup_changed(self, raw: bytes) -> None:
        """Learn a container cgroup's id as it is made, forget it as it is removed: in stream order, so the
        adopt events of its processes find it even when they are read after it is gone."""
        cgroup_id, made, _pad = _CGROUP.unpack_from(raw, _HDR.size)
        if not made:
            self._by_cgroup.pop(cgroup_id, None)
            return
        path, nul, _rest = raw[_HDR.size + _CGROUP.size :].partition(b"\0")
        if not nul:  # cut at CGROUP_PATH_LEN: left to the scan of the pod roots
            self.counters["cgroup_path_cut"] += 1
            return
        ref = cgroups.parse_cgroup_path(bytes_text(path))
        if ref is not None:
            self._by_cgroup[cgroup_id] = ref

    def _adopted(self, raw: bytes) -> None:
        """A process the kernel found in a pod cgroup (or, probing, any exec): learn its start time and
        container, fix its kernel entry, and pass an ``AdoptEvent`` on in its place."""
        assert self._tracer is not None and self._live is not None
        event = self._tracer.decoder.decode(raw)
        assert isinstance(event, AdoptEvent)
        pid = event.pid
        probe = event.reason == ADOPT_PROBE
        if probe:
            self.counters["probes"] += 1
            ref = cgroups.container_of_pid(pid)
            if ref is None or pid in self._container:
                return
        else:
            ref = self._container_of_cgroup(event.cgroup_id, pid)
        before = procfs.clock_boot_ns()
        try:
            info = procfs.proc_info(pid)
        except (OSError, ValueError, IndexError):
            info = None
        known = info is not None and same_process(pid, info.start_ns) and info.start_ns <= event.ts
        if probe and not known:
            self.counters["probe_gone"] += 1  # ended before /proc answered: nothing of it was seen
            return
        if info is not None and known:
            event.start_ns = info.start_ns
            event.ppid, event.comm, event.argv, event.binary = info.ppid, info.comm, info.argv, info.binary
            event.cwd = _in_container(pid, info.cwd)
            event.binary = _in_container(pid, info.binary)
            readable, audit = read_environ_value(pid, AUDIT_ID_ENV)
            if readable and same_process(pid, info.start_ns):
                self._audit[id(event)] = audit
            else:
                self.counters["environ_unreadable"] += 1
        else:  # gone already: its identity keeps the adoption time, and says so by a count
            event.start_ns = event.ts
            self.counters["start_unknown"] += 1
        self._start_fix[pid] = event.start_ns
        self._fix_kernel_entry(pid, event.start_ns, event.ppid or 0, create=probe)
        self._live.start_at(pid, event.cwd, (before, procfs.clock_boot_ns()))
        self._container[pid] = ref
        self._live.insert(event)  # in kernel order, before the events it explains

    def _fix_kernel_entry(self, pid: int, start_ns: int, ppid: int, create: bool = False) -> None:
        """Give the kernel's entry of ``pid`` its start time, only while the entry exists (a process that
        has ended must not be re-added: its pid may go to a host process next). ``create``: a probed
        process /proc just showed alive, which the kernel does not track yet."""
        assert self._tracer is not None
        table = self._tracer.bpf_table("tracked")
        value = table.Leaf()
        value.start_ns = start_ns
        value.ppid = ppid
        if create:
            table[table.Key(pid)] = value
            return
        from bcc.libbcc import lib

        key = table.Key(pid)
        lib.bpf_update_elem(table.map_fd, ctypes.byref(key), ctypes.byref(value), _BPF_EXIST)

    def _container_of_cgroup(self, cgroup_id: int, pid: int) -> ContainerRef | None:
        if cgroup_id not in self._by_cgroup:
            for root in list(self._roots.values()):
                for ino, path in cgroups.pod_cgroup_ids(root):
                    self._by_cgroup[ino] = cgroups.parse_cgroup_path(path)
        ref = self._by_cgroup.get(cgroup_id)
        if ref is None:
            ref = cgroups.container_of_pid(pid)
            self.counters["cgroup_from_proc"] += 1
        return ref

    def _read_audit_id(self, event: ExecEvent) -> None:
        """``X_GITOPS_AUDIT_ID`` from the environment the exec gave the process, if /proc still shows
        this very process as it was at that exec (a later exec before the read withdraws it)."""
        readable, value = read_environ_value(event.pid, AUDIT_ID_ENV)
        at = procfs.clock_boot_ns()
        if not readable or not same_process(event.pid, event.start_ns):
            self.counters["environ_unreadable"] += 1
            return
        earlier = self._env_reads.get(event.pid)
        if earlier is not None and event.ts <= earlier[0]:
            if self._audit.pop(id(earlier[1]), None) is not None:
                self.counters["audit_id_withdrawn"] += 1
        self._audit[id(event)] = value
        self._env_reads[event.pid] = (at, event)


def _in_container(pid: int, path: str | None) -> str | None:
    """A path /proc showed for ``pid`` as its container sees it (links of a process in another mount
    namespace read so already; a chroot's are made relative to its root)."""
    return None if path is None else procfs.container_relative(pid, path)


def _pids() -> list[int]:
    return sorted(int(n) for n in os.listdir("/proc") if n.isdigit())


def _v1_pod_roots() -> bool:
    """Whether a cgroup v1 hierarchy holds kubelet pod roots (the pods then live only there)."""
    base = "/sys/fs/cgroup"
    try:
        hierarchies = [e.path for e in os.scandir(base) if e.is_dir() and e.name != "unified"]
    except OSError:
        return False
    return any(cgroups.pod_roots(h, max_depth=2) for h in hierarchies)
