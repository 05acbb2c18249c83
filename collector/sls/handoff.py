"""SLS reading in a child process: the hand-over sink that sends its batches to the storing parent.

``SlsCollector(offload=True)`` pulls, decodes, maps and joins here, on another core, while the parent
only writes to the store (one process tops out well below the store's rate).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Literal

from aliyun.log import LogClient

from liubai.collector.ingest import BatchPace
from liubai.collector.logfields import FieldMap
from liubai.collector.offload import Emit, for_the_writer
from liubai.collector.retry import RetryPolicy
from liubai.collector.sls.consume import ConsumeStats, SlsCollector
from liubai.lineage.model import GraphBatch

__all__ = ["Handoff", "Reader"]


class Handoff:
    """The reader process's sink and checkpoint source: each batch goes to the parent with the counts so
    far, and ``finish`` sends the final counts; checkpoint reads see the parent's at start-up plus those
    of every batch handed over since."""

    stats: ConsumeStats  # the collector's own, once it exists

    def __init__(
        self,
        emit: Emit,
        checkpoints: dict[tuple[str, str], str],
        prepare: Callable[[GraphBatch], Any] | None,
    ) -> None:
        self._emit = emit
        self._checkpoints = dict(checkpoints)
        self._prepare = prepare
        self.pace = BatchPace()

    def write(self, batch: GraphBatch, rows: Any = None) -> None:
        """Hand ``batch`` to the parent (``rows``: unused, this process prepares them itself)."""
        sent, rows = for_the_writer(batch, self._prepare)
        self.pace.hand_over(partial(self._emit, sent, (self._seen(), rows, False)))
        self._checkpoints.update(batch.checkpoints)

    def finish(self) -> None:
        """The final counts (pulls, finished shards), which may change after the last batch."""
        self._emit(GraphBatch(), (self._seen(), None, True))

    def _seen(self) -> ConsumeStats:
        s = self.stats
        return replace(s, shards=set(s.shards), finished_shards=set(s.finished_shards))

    def checkpoints(self, source: str | None = None) -> dict[tuple[str, str], str]:
        return {k: v for k, v in self._checkpoints.items() if source is None or k[0] == source}

    def get_checkpoint(self, source: str, key: str) -> str | None:
        return self._checkpoints.get((source, key))


@dataclass(frozen=True, slots=True)
class Reader:
    """Everything a reader process needs to run one ``SlsCollector`` method (picklable: no store, no
    callbacks)."""

    client: LogClient
    project: str
    logstore: str
    source: str
    fieldmap: FieldMap
    retry: RetryPolicy
    pull_count: int
    id_mode: Literal["cursor", "content"]
    checkpoints: dict[tuple[str, str], str]
    method: Literal["consume", "backfill"]
    options: dict[str, Any]
    prepare: Callable[[GraphBatch], Any] | None  # a ``RowStore``'s ``prepare_rows``

    def __call__(self, emit: Emit) -> None:
        handoff = Handoff(emit, self.checkpoints, self.prepare)
        collector = SlsCollector(
            self.client,
            self.project,
            self.logstore,
            handoff,  # type: ignore[arg-type]  # as the store only the checkpoint reads are used
            source=self.source,
            fieldmap=self.fieldmap,
            retry=self.retry,
            pull_count=self.pull_count,
            id_mode=self.id_mode,
            sink=handoff,
            pace=handoff.pace,
        )
        handoff.stats = collector.stats
        getattr(collector, self.method)(**self.options)
        handoff.finish()
