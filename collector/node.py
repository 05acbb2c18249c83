"""Kernel events of pod containers on one node -> per-window records of their processes and files.

``NodeCollector`` keeps one process model per container: a ``RunCollector`` without a root, so the
descriptor, path, credential and hashing truth rules of traced runs apply unchanged. Every window it
emits what changed: the processes new, changed or ended in it (with their file accesses, totals per
process), each container's opens aggregated per (path, mode) with counts per exec image, and the
Container records with what was folded or left out. Caps and filters bound the volume; each keeps a
count on the Container node, so nothing is left out unseen.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace

from liubai.collector.node_container import (
    ContainerLike,
    ContainerRun,
    ContainerSeed,
    ContainerState,
    Key,
    NodeEventLike,
    iso_ns,
)
from liubai.collector.node_options import NodeCollectorOptions
from liubai.collector.node_runtime import RuntimeSetup
from liubai.collector.runs import RunInfo
from liubai.ebpf import procfs
from liubai.ebpf.events import AdoptEvent, Event, ExecEvent, ForkEvent
from liubai.ebpf.procfs import ProcInfo
from liubai.lineage.model import RejectedRecord
from liubai.lineage.records import (
    ContainerOpensRecord,
    ContainerRecord,
    FileAccessRecord,
    ProcessRecord,
    Record,
)

__all__ = ["ContainerLike", "ContainerSeed", "NodeCollector", "NodeEventLike"]

log = logging.getLogger("liubai.node")

_PROC_TICK_NS = 20_000_000  # /proc's start times are in clock ticks (10 ms at 100 Hz), with a margin


class NodeCollector:
    """Consumes a node's events (``add``), emits each window's records (``flush``)."""

    def __init__(
        self,
        opts: NodeCollectorOptions,
        *,
        seeds: dict[str, ContainerSeed] | None = None,
        gap: tuple[str, str] | None = None,
        boot_offset_ns: int | None = None,
    ) -> None:
        """``seeds``: containers the journal knew (their totals continue); ``gap``: the time the agent
        was not watching before this start, recorded on every container it knew and every one it
        finds running now."""
        self.opts = opts
        self.boot_offset_ns = procfs.boot_offset_ns() if boot_offset_ns is None else boot_offset_ns
        self.containers: dict[str, ContainerState] = {}
        self.unattributed = 0
        self.window_start_ns: int | None = None
        self.gap = {"from": gap[0], "to": gap[1]} if gap else None
        for cid, seed in (seeds or {}).items():
            rec = seed.record
            if self.gap is not None and self.gap not in rec.gaps and rec.running:
                rec.gaps = (*rec.gaps, self.gap)  # it was running when the agent stopped
            self.containers[cid] = ContainerState(
                rec,
                opts,
                totals=seed.totals,
                changed=self.gap is not None,
                journaled=dict(seed.running),
                setup=RuntimeSetup(started=bool(seed.running) or rec.processes > 0),
            )

    def _iso(self, boot_ns: int) -> str:
        return iso_ns(boot_ns + self.boot_offset_ns)

    def adopted_all(self) -> None:
        """The processes running at start are adopted: a container first seen after this was not
        running while the agent was away, so the gap is not its."""
        self.gap = None

    def _container(self, ref: ContainerLike, now_ns: int) -> ContainerState:
        c = self.containers.get(ref.container_id)
        if c is None:
            at = self._iso(now_ns)
            rec = ContainerRecord(
                host=self.opts.host,
                container_id=ref.container_id,
                runtime=ref.runtime,
                cgroup=ref.cgroup,
                pod_uid=ref.pod_uid,
                first_seen=at,
                last_seen=at,
                qos=ref.qos,
                gaps=(self.gap,) if self.gap else (),
            )
            c = self.containers[ref.container_id] = ContainerState(rec, self.opts)
        elif not c.record.cgroup:  # known from the journal only by its processes or opens
            rec = c.record
            rec.runtime, rec.cgroup, rec.pod_uid, rec.qos = ref.runtime, ref.cgroup, ref.pod_uid, ref.qos
            rec.first_seen = rec.first_seen or self._iso(now_ns)
        if c.run is None and c.excluded is None:
            self._classify(c)
            if c.excluded is None:
                c.run = ContainerRun(RunInfo(self.opts.host, 0, 0, (), self.boot_offset_ns), c)
        return c

    def _classify(self, c: ContainerState) -> None:
        rec = c.record
        if rec.namespace is None and rec.pod_uid and self.opts.namespace_of is not None:
            rec.namespace = self.opts.namespace_of(rec.pod_uid)
        c.excluded = self.opts.namespace_verdict(rec.namespace)
        if c.excluded:
            log.info("container %s of pod %s: %s", rec.container_id[:12], rec.pod_uid, c.excluded)

    # -- input ---------------------------------------------------------------------------------------

    def adopt(self, info: ProcInfo, container: ContainerLike, audit_id: str | None = None) -> None:
        """A process already running in a container when the agent started, as /proc described it."""
        c = self._container(container, procfs.clock_boot_ns())
        if c.run is None:
            c.excluded_events += 1
            return
        if c.setup.adopted((info.pid, info.start_ns), info.comm or None):
            return  # the runtime setting the container up (a created container not yet started)
        self._adopt_into(c, c.run, info, audit_id)

    def _adopt_into(
        self,
        c: ContainerState,
        run: ContainerRun,
        info: ProcInfo,
        audit_id: str | None,
        ppid_known: bool = True,
    ) -> None:
        known = c.journaled.get(info.pid)
        if known is not None and known != info.start_ns and abs(known - info.start_ns) <= _PROC_TICK_NS:
            # the process the journal knew: /proc tells its start only to the clock tick
            c.alias[(info.pid, info.start_ns)] = known
            info = replace(info, start_ns=known)
        parent = run.key_of(info.ppid) if ppid_known else None
        key = (info.pid, info.start_ns)
        fresh = key not in run.procs
        run.adopt(info, parent)
        if not ppid_known:
            run.procs[key].ppid = None
        c.adopted.add(key)
        c.dirty.add(key)  # recorded in the first window, events or not
        c.changed = True
        if parent is None:
            c.tops.add(key)
        if fresh:
            self._admit(c, key)
        if audit_id:
            c.audit[key] = audit_id

    def _adopted(self, c: ContainerState, run: ContainerRun, event: AdoptEvent, audit_id: str | None) -> None:
        """The tracer found a process already running in a pod (a pod root found later, or a process
        moved into a pod cgroup): what /proc showed of it, None parts left unknown."""
        if c.setup.adopted((event.pid, event.start_ns), event.comm or None):
            return  # the runtime setting the container up: its events are counted, not recorded
        info = ProcInfo(
            pid=event.pid,
            ppid=event.ppid or 0,
            start_ns=event.start_ns,
            uid=event.uid,
            comm=event.comm or "",
            argv=event.argv or (),
            binary=event.binary,
            cwd=event.cwd,
        )
        self._adopt_into(c, run, info, audit_id, ppid_known=event.ppid is not None)
        if event.argv is None:
            run.procs[
                (event.pid, c.alias.get((event.pid, event.start_ns), event.start_ns))
            ].argv_status = "unknown"

    def add(self, item: NodeEventLike) -> None:
        event, ref = item.event, item.container
        if ref is None:
            self.unattributed += 1
            return
        if self.window_start_ns is None:
            self.window_start_ns = event.ts
        c = self.containers.get(ref.container_id)
        if c is None or c.run is None or not c.record.cgroup:  # new, left out, or known only from the journal
            c = self._container(ref, event.ts)
        c.last_seen_ns = event.ts  # the record's last_seen, formatted once per window (flush)
        c.changed = True
        run = c.run
        if run is None:
            c.excluded_events += 1
            return
        if isinstance(event, AdoptEvent):
            self._adopted(c, run, event, item.audit_id)
            return
        if c.alias:
            _unalias(c.alias, event)
        for taken in c.setup.take(event, (event.pid, event.start_ns) in run.procs):
            self._model(c, run, taken, item.audit_id)

    def _model(self, c: ContainerState, run: ContainerRun, event: Event, audit_id: str | None) -> None:
        """One event of a workload process into the container's process model."""
        key = (event.pid, event.start_ns)
        if key not in run.procs:  # first seen mid-life: its parent is outside the container
            c.tops.add(key)
            self._admit(c, key)
        run.now_ns = event.ts
        run.add(event)
        c.dirty.add(key)
        if isinstance(event, ForkEvent):
            child = (event.child, event.child_start_ns)
            self._admit(c, child)
            c.dirty.add(child)
        elif isinstance(event, ExecEvent):
            if audit_id:
                c.audit[key] = audit_id
            else:
                c.audit.pop(key, None)  # a new image with its own environment

    def _admit(self, c: ContainerState, key: Key) -> None:
        c.record.processes += 1
        c.new_procs += 1
        if c.new_procs > self.opts.max_processes:
            c.folded.add(key)
            c.record.folded_processes += 1

    # -- output --------------------------------------------------------------------------------------

    def flush(self, now_ns: int) -> list[Record]:
        """The records of the window that ends at ``now_ns`` (boot clock), and a new window begins."""
        start = self.window_start_ns if self.window_start_ns is not None else now_ns
        window = (self._iso(start), self._iso(now_ns))
        out: list[Record] = []
        for c in self.containers.values():
            out.extend(self._container_records(c, window))
            if c.excluded is not None and c.record.namespace is None and self.opts.namespace_of is not None:
                c.excluded = None  # its Pod may be known by now: its next events are classified again
        if self.unattributed:
            out.append(
                RejectedRecord(
                    f"node:{self.opts.host}",
                    f"window {window[0]}..{window[1]}",
                    f"{self.unattributed} events of processes whose container could not be read from their cgroup",
                )
            )
            self.unattributed = 0
        self.window_start_ns = now_ns
        return out

    def _container_records(self, c: ContainerState, window: tuple[str, str]) -> Iterator[Record]:
        run = c.run
        if run is not None:
            for key in sorted(c.dirty, key=lambda k: (k[1], k[0])):
                if key not in c.folded:
                    yield from self._process_records(c, run, key)
            yield from self._opens(c, window)
        rec = c.record
        if c.last_seen_ns is not None:
            rec.last_seen, c.last_seen_ns = self._iso(c.last_seen_ns), None
        if run is not None:
            for key in list(run.procs):
                if run.procs[key].end_ns is not None:
                    self._forget(c, run, key)
            running = len(run.procs)
            c.changed |= running != rec.running
            rec.running = running
        rec.excluded, rec.excluded_events = c.excluded, c.excluded_events
        setup = c.setup
        if setup.events or setup.processes:  # totals: the journal's record carries the earlier ones
            rec.runtime_setup_events += setup.events
            rec.runtime_setup_processes += setup.processes
            setup.events = setup.processes = 0
            c.changed = True
        if c.changed:
            yield replace(rec)  # as of now: the live one keeps counting
        c.dirty.clear()
        c.new_procs = 0
        c.window_paths.clear()
        c.window.clear()
        c.window_seen.clear()
        c.changed = False

    def _process_records(self, c: ContainerState, run: ContainerRun, key: Key) -> Iterator[Record]:
        rec = c.record
        shown = c.shown.setdefault(key, {})
        seen = c.seen.get(key, {})
        for r in run.process_records(key):
            if isinstance(r, ProcessRecord):
                r.run_pid = r.run_start_ns = 0
                r.container_id, r.pod_uid = rec.container_id, rec.pod_uid
                r.container_top = key in c.tops
                r.adopted = key in c.adopted
                r.audit_id = c.audit.get(key)
                yield r
            elif isinstance(r, FileAccessRecord):
                slot = (r.path, r.mode)
                if shown.get(slot) == r.count:
                    continue  # unchanged since the last window
                shown[slot] = r.count
                r.container_id = rec.container_id
                first_last = seen.get(slot)
                if first_last is not None:
                    r.first_at, r.last_at = self._iso(first_last[0]), self._iso(first_last[1])
                yield r

    def _opens(self, c: ContainerState, window: tuple[str, str]) -> Iterator[ContainerOpensRecord]:
        for slot in sorted(c.window):
            counts = c.window[slot]
            totals = c.totals.setdefault(slot, {})
            for image, n in counts.items():
                totals[image] = totals.get(image, 0) + n
            first, last = c.window_seen[slot]
            yield ContainerOpensRecord(
                host=self.opts.host,
                container_id=c.record.container_id,
                path=slot[0],
                mode=slot[1],
                window_start=window[0],
                window_end=window[1],
                counts=dict(counts),
                totals=dict(totals),
                first_at=self._iso(first),
                last_at=self._iso(last),
            )

    def _forget(self, c: ContainerState, run: ContainerRun, key: Key) -> None:
        run.forget(key)
        for table in (c.shown, c.seen, c.audit):
            table.pop(key, None)
        c.tops.discard(key)
        c.adopted.discard(key)
        c.folded.discard(key)


def _unalias(alias: dict[Key, int], event: Event) -> None:
    """An adopted process's events under the start time the journal knew it by (and its forks')."""
    start = alias.get((event.pid, event.start_ns))
    if start is not None:
        event.start_ns = start
