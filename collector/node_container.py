"""One pod container's state in the node agent: its process model and what the current window saw.

``ContainerState`` keeps the container's ``RunCollector`` (so the traced-run truth rules apply) and the
window's counts: an access is recorded only when the path filters and the distinct-path cap let it
through, and every one left out is counted on the container's record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from liubai.collector.node_options import NodeCollectorOptions, excluded_path
from liubai.collector.node_runtime import RuntimeSetup
from liubai.collector.runs import RunCollector, RunInfo, _Access, _Proc
from liubai.ebpf.events import Event
from liubai.lineage.records import ContainerRecord, iso_utc

__all__ = [
    "Access",
    "ContainerLike",
    "ContainerRun",
    "ContainerSeed",
    "ContainerState",
    "Key",
    "NodeEventLike",
    "iso_ns",
]

Key = tuple[int, int]
Access = tuple[str, str]  # (path, mode)


class ContainerLike(Protocol):
    """What the kernel half reads off a cgroup (``liubai.ebpf.cgroups.ContainerRef``)."""

    @property
    def container_id(self) -> str: ...
    @property
    def pod_uid(self) -> str | None: ...
    @property
    def runtime(self) -> str: ...
    @property
    def qos(self) -> str | None: ...
    @property
    def cgroup(self) -> str: ...


class NodeEventLike(Protocol):
    """One decoded event and the container of its process (``liubai.ebpf.node.NodeEvent``)."""

    @property
    def event(self) -> Event: ...
    @property
    def container(self) -> ContainerLike | None: ...
    @property
    def audit_id(self) -> str | None: ...


@dataclass(slots=True)
class ContainerSeed:
    """A container's totals as the journal last recorded them, so a restarted agent continues them."""

    record: ContainerRecord
    totals: dict[Access, dict[str, int]] = field(default_factory=dict)
    running: dict[int, int] = field(default_factory=dict)  # pid -> start time, of processes not ended


class ContainerRun(RunCollector):
    """A container's process model; every file access it accepts is also counted for the window. Files
    in containers are not hashed (the tracer does not read them), so no digests are waited for."""

    follows_digests = False

    def __init__(self, info: RunInfo, owner: ContainerState) -> None:
        super().__init__(info, root=False)
        self.owner = owner
        self.now_ns = 0

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
        if self.owner.admits(proc, path, mode, self.now_ns):
            return super()._access(proc, path, mode, flags, certainty, sha, via)
        return None

    def _iso(self, boot_ns: int | None) -> str | None:
        return None if boot_ns is None else iso_ns(boot_ns + self.info.boot_offset_ns)


@dataclass(slots=True)
class ContainerState:
    record: ContainerRecord
    opts: NodeCollectorOptions
    run: ContainerRun | None = None
    excluded: str | None = None  # why its processes are left out (a namespace filter)
    excluded_events: int = 0
    tops: set[Key] = field(default_factory=set)  # parent outside the container
    adopted: set[Key] = field(default_factory=set)
    folded: set[Key] = field(default_factory=set)  # over the process cap: counted, not recorded
    audit: dict[Key, str] = field(default_factory=dict)
    dirty: set[Key] = field(default_factory=set)
    shown: dict[Key, dict[Access, int]] = field(default_factory=dict)  # access counts already recorded
    seen: dict[Key, dict[Access, tuple[int, int]]] = field(default_factory=dict)  # first/last open ns
    new_procs: int = 0
    window_paths: set[Access] = field(default_factory=set)
    window: dict[Access, dict[str, int]] = field(default_factory=dict)
    window_seen: dict[Access, tuple[int, int]] = field(default_factory=dict)
    totals: dict[Access, dict[str, int]] = field(default_factory=dict)
    changed: bool = True
    last_seen_ns: int | None = None  # boot clock of its last event this window (record.last_seen at flush)
    journaled: dict[int, int] = field(default_factory=dict)  # pid -> start time the journal last knew
    alias: dict[Key, int] = field(default_factory=dict)  # /proc's start time -> the journal's
    setup: RuntimeSetup = field(default_factory=RuntimeSetup)  # the runtime's own processes, left out

    def admits(self, proc: _Proc, path: str, mode: str, now: int) -> bool:
        """Whether an access is recorded (counted for the window too), or left out by a path filter or
        the distinct-path cap (counted on the container)."""
        rec = self.record
        if mode != "exec" and excluded_path(path, self.opts.exclude_paths):
            rec.excluded_opens += 1
            return False
        slot = (path, mode)
        if slot not in self.window_paths:
            if len(self.window_paths) >= self.opts.max_paths:
                rec.folded_opens += 1
                return False
            self.window_paths.add(slot)
        image = proc.binary or "<unknown image>"
        counts = self.window.setdefault(slot, {})
        counts[image] = counts.get(image, 0) + 1
        first, _ = self.window_seen.get(slot, (now, now))
        self.window_seen[slot] = (first, now)
        key = (proc.pid, proc.start_ns)
        per = self.seen.setdefault(key, {})
        first, _ = per.get(slot, (now, now))
        per[slot] = (first, now)
        return True


_SECONDS: dict[int, str] = {}


def iso_ns(ns: int) -> str:
    """``iso_utc`` of nanoseconds since the epoch, exact to the microsecond (truncated), with the
    date-and-second part formatted once per second: a busy node has thousands of events per second."""
    sec, rem = divmod(ns, 1_000_000_000)
    prefix = _SECONDS.get(sec)
    if prefix is None:
        if len(_SECONDS) > 4096:
            _SECONDS.clear()
        prefix = _SECONDS[sec] = iso_utc(sec)[:19]
    return f"{prefix}.{rem // 1000:06d}Z"
