"""The ingest driver: checkpoints ride with the data before them, notices are reported and kept, and progress
shows records while a batch is still being built."""

from __future__ import annotations

from liubai.collector.ingest import BatchPace, Checkpoint, IngestSummary, Notice, ingest_records, join_batches
from liubai.lineage.records import LogRecord
from liubai.lineage.store.sqlite import SqliteStore


def _log(i: int) -> LogRecord:
    return LogRecord(source="app", record_id=str(i), message=f"line {i}", trace_id=f"{i % 3 + 1:032x}")


def test_a_checkpoint_is_stored_with_the_records_before_it_or_after_them() -> None:
    items = [_log(0), _log(1), Checkpoint("app", "pos", "2"), _log(2), Checkpoint("app", "pos", "3")]
    parts = list(join_batches(items, 2))
    assert [sum(p.records.values()) for p in parts] == [2, 1]
    assert parts[0].batch.checkpoints == {}, "the marker after record 1 arrives once batch 1 is closed"
    assert parts[1].batch.checkpoints == {("app", "pos"): "3"}


def test_progress_counts_records_inside_a_batch_and_notices_are_kept(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = SqliteStore(tmp_path / "l.db")
    seen: list[tuple[int, int]] = []

    def progress(s: IngestSummary) -> None:
        seen.append((s.count("LogRecord"), s.batches))

    notice = Notice("app", "app.jsonl", "history rewritten: something to hear", "raw")
    items = [*(_log(i) for i in range(600)), notice, *(_log(i) for i in range(600, 1000))]
    summary = ingest_records(store, items, batch_size=700, progress=progress)

    assert summary.count("LogRecord") == 1000 and summary.batches == 2
    assert (256, 0) in seen and (512, 0) in seen, "progress inside the first batch, before it is stored"
    assert seen[-1] == (1000, 2)
    assert summary.notices == [notice] and summary.rejected == 0
    kept = store.rejected().records
    assert [(r.location, r.reason) for r in kept] == [("app.jsonl", notice.message)]
    assert store.counts()["LogEvent"] == 1000
    store.close()


def test_batches_grow_while_the_store_falls_behind_and_shrink_once_it_keeps_up() -> None:
    pace = BatchPace(max_factor=4)
    sizes: list[int] = []
    # seconds each hand-over waited, for batches that took 0.04 s to build; 0.015 s is noise, not a trend
    waits = iter([0, 0, 0, 0, 0.5, 0.5, 0.5, 0, 0, 0.015, 0.015])
    for part in join_batches((_log(i) for i in range(20_000)), 100, start_small=True, pace=pace):
        sizes.append(sum(part.records.values()))
        pace.handed_over(next(waits, 0.0), built=0.04)
    # ramp-up, then x2 x4 (at most) while behind; noise resets the calm; 8 calm hand-overs halve
    assert sizes[:28] == [12, 24, 48, 96, 100, 200] + [400] * 13 + [200] * 8 + [100]
    assert sum(sizes) == 20_000 and set(sizes[28:-1]) == {100}
