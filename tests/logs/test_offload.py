"""Big log files are read, parsed and joined in a child process: the graph, the counts and the rejects must
be those of the in-process path, and a failure on either side must stop both with a clear error."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from liubai.collector.ingest import DEFAULT_DISTINCT, Item, join_batches, store_batches
from liubai.collector.logfile import OFFLOAD_MIN_BYTES, ingest_files, read_log_file
from liubai.collector.logfile.ingest import _offloaded
from liubai.collector.offload import Emit, OffloadError, join_in_subprocess
from liubai.lineage.model import GraphBatch, NodeKind, RejectedRecord
from liubai.lineage.records import LogRecord
from liubai.lineage.store.base import StoreError, UpsertResult
from liubai.lineage.store.sqlite import prepare_rows
from tests.logs.dataset import make_dataset, write_jsonl
from tests.logs.lineage_check import assert_exact_lineage, graph_of

GARBAGE = ["{not json", "[1, 2]", "\x00\x01binary"]


def _explode_after_one() -> Iterator[Item]:
    """A record source that fails part-way (module level: the spawned child imports it by name)."""
    yield LogRecord(source="boom", record_id="1", message="first line")
    raise ValueError("disk went away on purpose")


def test_child_process_builds_the_same_graph_counts_and_rejects(commits, tmp_path, new_store) -> None:  # type: ignore[no-untyped-def]
    ds = make_dataset(3_000, commits)
    path = str(write_jsonl(ds.lines, tmp_path / "app.jsonl.gz", garbage=GARBAGE))
    heard: dict[bool, list[RejectedRecord]] = {False: [], True: []}
    stores, stats = {}, {}
    for parallel in (False, True):
        stores[parallel] = new_store(f"parallel-{parallel}")
        stats[parallel] = ingest_files(  # fixed batches: the count below must not follow the machine's load
            stores[parallel],
            [path],
            batch_size=400,
            parallel=parallel,
            paced=False,
            on_reject=heard[parallel].append,
        )

    same = ("records", "rejected", "files")
    assert [getattr(stats[True], k) for k in same] == [getattr(stats[False], k) for k in same]
    assert stats[True].batches > stats[False].batches > 1  # the reader process starts with smaller batches
    assert stats[True].records == len(ds.lines)
    assert stats[True].rejected == ds.expected_rejects + len(GARBAGE)
    assert heard[True] == heard[False] and len(heard[True]) == stats[True].rejected
    assert graph_of(stores[True]) == graph_of(stores[False])
    assert_exact_lineage(stores[True], ds.lines)
    for words in ("step done", "checkout", ds.lines[7].fields["message"]):  # search texts made by the writer
        found = [{n.id for n in s.search(words, first=5000).nodes} for s in (stores[True], stores[False])]
        assert found[0] == found[1] and found[0]
    assert stores[True].rejected(first=10_000).records == stores[False].rejected(first=10_000).records


def test_a_failure_in_the_reader_reaches_the_caller_with_its_reason() -> None:
    with pytest.raises(OffloadError, match="ValueError: disk went away on purpose"):
        list(join_in_subprocess(_explode_after_one, 10))
    assert not multiprocessing.active_children()


class _FailingStore:
    """Accepts one batch, then fails for good (not retryable), like a full disk."""

    url = "failing://"

    def __init__(self) -> None:
        self.batches = 0

    def upsert(self, batch: GraphBatch) -> UpsertResult:
        self.batches += 1
        if self.batches > 1:
            raise StoreError("no space left on device")
        return UpsertResult()

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(name)


def test_a_store_failure_stops_the_reader_process(commits, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = str(write_jsonl(make_dataset(5_000, commits).lines, tmp_path / "app.jsonl"))
    store = _FailingStore()
    joined = join_in_subprocess(partial(read_log_file, path, "jsonl"), 100)
    with pytest.raises(StoreError, match="no space left"):
        store_batches(store, joined)  # type: ignore[arg-type]
    joined.close()
    assert store.batches == 2
    assert not multiprocessing.active_children()


def test_batches_from_the_child_equal_those_joined_here(commits, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = str(write_jsonl(make_dataset(1_000, commits).lines, tmp_path / "app.jsonl", garbage=GARBAGE))
    read = partial(read_log_file, path, "jsonl")
    here = list(join_batches(read(), 300, start_small=True))
    there = list(join_in_subprocess(read, 300, paced=False))  # batch for batch: sizes must not follow timing
    assert [p.records for p in there] == [p.records for p in here]
    for a, b in zip(there, here, strict=True):
        assert [(n.id, n.kind, n.props, n.placeholder) for n in a.batch.nodes] == [
            (n.id, n.kind, n.props, n.placeholder) for n in b.batch.nodes
        ]
        assert [(e.src, e.kind, e.dst, e.props) for e in a.batch.edges] == [
            (e.src, e.kind, e.dst, e.props) for e in b.batch.edges
        ]
        assert a.batch.rejected == b.batch.rejected


def test_rows_prepared_in_the_child_equal_those_prepared_here(commits, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """With a store's ``prepare_rows`` the child sends the rows, and of the batch only what the ingest
    summary counts: rejects, checkpoints and the real nodes of the counted kinds."""
    path = str(write_jsonl(make_dataset(1_000, commits).lines, tmp_path / "app.jsonl", garbage=GARBAGE))
    read = partial(read_log_file, path, "jsonl")
    here = list(join_batches(read(), 300, start_small=True))
    there = list(join_in_subprocess(read, 300, prepare_rows, paced=False))
    assert len(there) == len(here) > 2
    for a, b in zip(there, here, strict=True):
        assert a.rows == prepare_rows(b.batch)
        assert a.batch.rejected == b.batch.rejected and a.batch.checkpoints == b.batch.checkpoints
        counted = [n.id for n in b.batch.nodes if n.kind in DEFAULT_DISTINCT and not n.placeholder]
        assert [n.id for n in a.batch.nodes] == counted and not a.batch.edges


def test_the_writer_counts_only_kinds_the_reader_kept(commits, tmp_path, new_store) -> None:  # type: ignore[no-untyped-def]
    """A summary asked to count kinds whose nodes the reader process dropped fails loudly, not with 0."""
    path = str(write_jsonl(make_dataset(600, commits).lines, tmp_path / "app.jsonl"))
    read = partial(read_log_file, path, "jsonl")
    traces = frozenset({NodeKind.TRACE})
    here = store_batches(new_store("here"), join_batches(read(), 200), distinct_kinds=traces)
    there = store_batches(
        new_store("there"),
        join_in_subprocess(read, 200, prepare_rows, keep=traces),
        distinct_kinds=traces,
        background=False,
    )
    assert there.distinct == here.distinct and here.distinct["Trace"] > 0
    with (
        closing(join_in_subprocess(read, 200, prepare_rows, keep=traces)) as joined,
        pytest.raises(ValueError, match="cannot count AuditRecord, Repo, Workload nodes"),
    ):
        store_batches(new_store("short"), joined, background=False)


def test_batches_grow_while_the_store_is_slow_and_nothing_is_lost(commits, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A store that falls behind gets fewer, larger batches (fewer transactions); either way every record
    arrives exactly once."""
    ds = make_dataset(12_000, commits)
    read = partial(read_log_file, str(write_jsonl(ds.lines, tmp_path / "app.jsonl")), "jsonl")

    def sizes(store_seconds: float) -> list[int]:
        out = []
        for part in join_in_subprocess(read, 500, prepare_rows):
            out.append(sum(part.records.values()))
            time.sleep(store_seconds)  # the store writing this batch
        return out

    slow, fast = sizes(0.15), sizes(0)
    assert sum(slow) == sum(fast) == sum(sum(p.records.values()) for p in join_batches(read(), 500))
    # a store that takes 0.15 s per batch always blocks the reader; how a fast store's batches go depends on
    # the machine's load, so only the unit test (tests/unit/test_ingest_driver.py) pins their sizes down
    assert max(slow) > 500, f"batches did not grow behind a slow store: {slow}"


def test_which_inputs_go_to_a_child_process(tmp_path: Path) -> None:
    small, big = tmp_path / "small.jsonl", tmp_path / "big.jsonl"
    small.write_text('{"message": "x"}\n')
    with big.open("wb") as f:
        f.truncate(OFFLOAD_MIN_BYTES)
    assert not _offloaded("-", True), "stdin is read where it is open"
    assert not _offloaded(str(big), False)
    assert _offloaded(str(small), True)
    assert not _offloaded(str(small), None)
    assert not _offloaded(str(tmp_path / "missing.jsonl"), None), "the in-process reader reports it"
    cpus = os.sched_getaffinity(0)
    if len(cpus) > 1:
        assert _offloaded(str(big), None)
    os.sched_setaffinity(0, {min(cpus)})  # as under taskset or a one-CPU cpuset
    try:
        assert not _offloaded(str(big), None), "a reader process on one CPU only adds pickling"
    finally:
        os.sched_setaffinity(0, cpus)


def _emit_pid_then_wait(emit: Emit) -> None:
    """A reader that says who it is and then waits for more input forever, like an idle ``--follow``."""
    emit(GraphBatch(), os.getpid())
    time.sleep(600)


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")  # exited (a zombie waits for whoever adopted it)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to watch the reader process")
def test_the_reader_process_ends_when_its_parent_is_killed() -> None:
    script = (
        "from liubai.collector.offload import run_in_subprocess\n"
        "from tests.logs.test_offload import _emit_pid_then_wait\n"
        "pairs = run_in_subprocess(_emit_pid_then_wait)\n"
        "batch, pid = next(pairs)\n"
        "print(pid, flush=True)\n"
        "import time; time.sleep(600)\n"
    )
    root = Path(__file__).resolve().parents[2]
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        reader = int(parent.stdout.readline())
        assert not _gone(reader)
    finally:
        parent.kill()
        parent.wait(10)
    deadline = time.monotonic() + 15
    while not _gone(reader):
        assert time.monotonic() < deadline, "the reader process outlived its killed parent"
        time.sleep(0.1)


def test_a_program_read_from_stdin_can_offload(tmp_path: Path) -> None:
    """``python - < script``: the reader process must not need the caller's main module, which has no file."""
    log = tmp_path / "app.jsonl"
    log.write_text('{"message": "hi", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}\n{"message": "x"}\n')
    script = (
        "from liubai.collector.logfile import ingest_files\n"
        "from liubai.lineage.store import open_store\n"
        f"store = open_store('sqlite:///{tmp_path / 'g.db'}')\n"
        f"print(ingest_files(store, [{str(log)!r}], 'jsonl', parallel=True).records)\n"
    )
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run(
        [sys.executable, "-"], input=script, cwd=root, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "2"
