"""The node agent's recording loop: the tracer's events into the collector, each window into the journal.

Shipping is separate (the agent's ``NodeJournalSource`` reads the journal), so the API being down never
slows or loses recording. A restart reads the journal first: the time since its last window is a gap
on every container that was running, and the processes running now are adopted (marked so).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from liubai.collector.node import ContainerLike, NodeCollector, NodeEventLike
from liubai.collector.node_journal import NodeJournal, read_journal_state
from liubai.collector.node_options import NodeCollectorOptions
from liubai.ebpf import procfs
from liubai.ebpf.procfs import ProcInfo
from liubai.lineage.model import RejectedRecord
from liubai.lineage.records import Record, iso_utc

__all__ = ["AdoptedLike", "NodeRecorder", "NodeTracerLike"]

log = logging.getLogger("liubai.node")


class AdoptedLike(Protocol):
    """A process running in a pod container when tracing began (``liubai.ebpf.node.AdoptedProcess``)."""

    @property
    def info(self) -> ProcInfo: ...
    @property
    def container(self) -> ContainerLike: ...
    @property
    def audit_id(self) -> str | None: ...


class NodeTracerLike(Protocol):
    """The kernel half (``liubai.ebpf.node.NodeTracer``)."""

    def start(self) -> Sequence[AdoptedLike]: ...
    def poll(self, timeout_ms: int = 100) -> Sequence[NodeEventLike]: ...
    def lost_events(self) -> int: ...
    def close(self) -> None: ...


class NodeRecorder:
    """Runs the tracer and writes a journal window every ``opts.window_s`` seconds."""

    def __init__(
        self,
        tracer: NodeTracerLike,
        opts: NodeCollectorOptions,
        state_dir: Path,
        *,
        clock: Callable[[], int] = procfs.clock_boot_ns,
    ) -> None:
        self.tracer = tracer
        self.opts = opts
        self.clock = clock
        self.boot_offset_ns = procfs.boot_offset_ns()
        self.journal = NodeJournal(state_dir)
        self.collector: NodeCollector | None = None
        self.windows = 0
        self.records = 0
        self._lost = 0
        self._window_start = 0
        self.error: str | None = None  # why recording stopped on its own

    def _iso(self, boot_ns: int) -> str:
        return iso_utc((boot_ns + self.boot_offset_ns) / 1e9)

    def start(self) -> int:
        """Load the tracer, continue from the journal, adopt what runs; the number adopted. The first
        window (the gap, the adopted processes) is written at once."""
        state = read_journal_state(self.journal.path)
        adopted = self.tracer.start()
        now = self.clock()
        gap = (state.last_window_end, self._iso(now)) if state.last_window_end else None
        if gap is not None:
            log.warning("node agent was not recording from %s to %s: recorded as a gap", *gap)
        self.collector = NodeCollector(
            self.opts, seeds=state.seeds, gap=gap, boot_offset_ns=self.boot_offset_ns
        )
        for a in adopted:
            self.collector.adopt(a.info, a.container, a.audit_id)
        self.collector.adopted_all()
        self._window_start = now
        self.collector.window_start_ns = now
        self.flush()
        return len(adopted)

    def step(self, timeout_ms: int = 100) -> None:
        """One poll; a window is written when it is due."""
        assert self.collector is not None, "start() first"
        for item in self.tracer.poll(timeout_ms):
            self.collector.add(item)
        if self.clock() - self._window_start >= self.opts.window_s * 1e9:
            self.flush()

    def flush(self) -> None:
        """Write the window that ends now (synced to disk before this returns)."""
        assert self.collector is not None
        now = self.clock()
        start = self.collector.window_start_ns if self.collector.window_start_ns is not None else now
        records: list[Record] = list(self.collector.flush(now))
        lost = self.tracer.lost_events()
        if lost > self._lost:
            records.append(
                RejectedRecord(
                    f"node:{self.opts.host}",
                    f"window {self._iso(start)}..{self._iso(now)}",
                    f"the kernel dropped {lost - self._lost} events in this window: what they said is unknown",
                )
            )
            self._lost = lost
        self.records += self.journal.write_window(records, self._iso(start), self._iso(now))
        self.windows += 1
        self._window_start = now

    def run(self, stop: threading.Event) -> None:
        """Record until ``stop`` is set; the last window is written before returning."""
        try:
            while not stop.is_set():
                self.step()
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
            log.error("node recording stopped: %s", self.error)
        finally:
            self.close()

    def close(self) -> None:
        flush_rest = getattr(self.tracer, "flush", None)  # events the tracer still held back
        if self.collector is not None:
            if callable(flush_rest):
                for item in flush_rest():
                    self.collector.add(item)
            self.flush()
        self.tracer.close()
        self.journal.close()
