"""The one ingest pipeline: every source's batches reach the store through ``StoreSink``, retried under
the one ``RetryPolicy``; a store that keeps failing is reported in one line and loses nothing."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from liubai.api.ingest_http import apply_batch
from liubai.collector.git import GitCollector, ingest_git
from liubai.collector.ingest import Checkpoint, StoreSink, ingest_records
from liubai.collector.logfile import ingest_files
from liubai.collector.recording import replay_recording
from liubai.collector.retry import RetryPolicy
from liubai.collector.runs import ingest_run
from liubai.collector.sls import SlsCollector, SlsCredentials, make_client
from liubai.lineage.model import GraphBatch, RejectedRecord, commit_node_id
from liubai.lineage.provenance import EBPF_WRITER, GIT_WRITER, LOGS_WRITER, SLS_WRITER, remote_writer
from liubai.lineage.records import LogRecord
from liubai.lineage.store import LineageStore
from liubai.lineage.store.base import StoreUnavailable, UpsertResult
from liubai.lineage.store.sqlite.writes import SqliteWrites
from liubai.lineage.wire import decode_batch, encode_batch
from tests.ebpf.recordings import PROCESS, RUN_HEADER
from tests.gitrepo import GitRepoBuilder
from tests.logs.conftest import KEY_ID, KEY_SECRET, LOGSTORE, PROJECT
from tests.logs.dataset import make_dataset, put_into_sls, write_jsonl

FAST = RetryPolicy(deadline=5, initial=0.01, max_wait=0.02)


@pytest.fixture
def written(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, int]]]:
    """(writer, record count) of every batch ``StoreSink`` writes, in this process."""
    seen: list[tuple[str, int]] = []
    real = StoreSink.write

    def spy(self: StoreSink, batch: GraphBatch, rows: Any = None) -> UpsertResult:
        result = real(self, batch, rows)
        seen.append((self.writer, len(batch.nodes) + len(batch.rejected)))
        return result

    monkeypatch.setattr(StoreSink, "write", spy)
    yield seen


@pytest.fixture
def outside_sink(monkeypatch: pytest.MonkeyPatch, written: list[tuple[str, int]]) -> list[str]:
    """Writers of the store writes in this process that did not come through ``StoreSink.write``: a
    source writing to the store itself shows up here. (Every SQLite write ends in ``upsert_rows``.)"""
    bypassed: list[str] = []
    inside = threading.local()  # the pipeline writes on a background thread: the flag is per thread
    sink_write = StoreSink.write
    store_write = SqliteWrites.upsert_rows

    def through_sink(self: StoreSink, batch: GraphBatch, rows: Any = None) -> UpsertResult:
        inside.depth = getattr(inside, "depth", 0) + 1
        try:
            return sink_write(self, batch, rows)
        finally:
            inside.depth -= 1

    def store_upsert(self: SqliteWrites, rows: Any, batch: GraphBatch) -> UpsertResult:
        if not getattr(inside, "depth", 0):
            bypassed.append(batch.writer)
        return store_write(self, rows, batch)

    monkeypatch.setattr(StoreSink, "write", through_sink)
    monkeypatch.setattr(SqliteWrites, "upsert_rows", store_upsert)
    return bypassed


def _writers(seen: list[tuple[str, int]]) -> set[str]:
    return {writer for writer, _ in seen}


def test_every_source_kind_writes_through_the_one_sink(  # type: ignore[no-untyped-def]
    commits, sls_server, new_store, written, outside_sink, tmp_path: Path
) -> None:
    store = new_store("all")

    repo = GitRepoBuilder(tmp_path / "repo")
    repo.write("web.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: a}\n")
    base = repo.commit("first")
    repo.branch("feature")
    repo.checkout("feature")
    repo.write("README", "hello\n")
    repo.commit("feature work")
    repo.checkout("main")
    assert ingest_git(store, GitCollector(str(repo.path), branch="feature")).commits == 2
    repo.merge("feature")
    ingest_git(store, GitCollector(str(repo.path), branch="main"))  # main now holds the feature's commits
    based = store.get(commit_node_id(base))
    assert based is not None and based.props["branches"] == ["feature", "main"]
    ingest_git(store, GitCollector(str(repo.path), branch="main", cluster="prod"))  # new ids: old ones marked
    old = store.get("workload:Deployment/a/web")
    assert old is not None and old.props["superseded_by"] == "workload:prod:Deployment/a/web"
    assert _writers(written) == {GIT_WRITER}

    ds = make_dataset(300, commits)
    log_file = str(write_jsonl(ds.lines, tmp_path / "app.jsonl"))
    for parallel in (False, True):  # in this process, and parsed in a reader process
        written.clear()
        assert ingest_files(store, [log_file], parallel=parallel).records == 300
        assert _writers(written) == {LOGS_WRITER}

    written.clear()
    lines = [
        json.dumps(RUN_HEADER),
        json.dumps({"type": "open", **PROCESS, "ts": 1_010, "path": "/w/in"}),
        "junk",
    ]
    replay = replay_recording(lines, "run.jsonl")
    stats = ingest_run(store, replay.collector, replay.rejected)
    assert (stats.file_accesses, stats.rejected) == (1, 1)
    assert _writers(written) == {EBPF_WRITER}

    put_into_sls(sls_server, LOGSTORE, make_dataset(200, commits).lines)
    client = make_client(
        sls_server.endpoint, SlsCredentials(access_key_id=KEY_ID, access_key_secret=KEY_SECRET)
    )
    for offload in (False, True):
        written.clear()
        sls_store = new_store(f"sls-{offload}")
        assert (
            SlsCollector(client, PROJECT, LOGSTORE, sls_store, retry=FAST).consume(offload=offload).records
            == 200
        )
        assert _writers(written) == {SLS_WRITER}
        assert sum(n for _, n in written) > 0

    written.clear()
    _, body = encode_batch(GraphBatch(rejected=[RejectedRecord("edge", "x:1", "unusable", "raw")]), "edge")
    answer = apply_batch(store, decode_batch(body), remote_writer("edge"))
    assert answer["status"] == "applied"
    assert _writers(written) == {remote_writer("edge")}
    assert outside_sink == [], "these writers wrote to the store without StoreSink"


class _FlakyStore:
    """A real store whose writes fail (retryably) ``failures`` times from the ``from_call``-th one on."""

    def __init__(self, store: LineageStore, *, from_call: int, failures: int) -> None:
        self.store, self.from_call, self.failures, self.calls = store, from_call, failures, 0

    def upsert(self, batch: GraphBatch) -> UpsertResult:
        self.calls += 1
        if self.calls >= self.from_call and self.failures > 0:
            self.failures -= 1
            raise StoreUnavailable("database lineage.db is busy\nsecond line of the driver's message")
        return self.store.upsert(batch)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def _items(count: int) -> Iterator[LogRecord | Checkpoint]:
    for i in range(count):
        yield LogRecord(source="app", record_id=str(i), message=f"line {i}")
        yield Checkpoint("app", "pos", str(i + 1))


def test_a_briefly_failing_store_is_retried_and_nothing_is_lost(new_store, caplog) -> None:  # type: ignore[no-untyped-def]
    real = new_store("flaky")
    flaky = _FlakyStore(real, from_call=2, failures=2)
    with caplog.at_level(logging.WARNING, logger="liubai.collector.retry"):
        summary = ingest_records(flaky, _items(1000), batch_size=300, retry=FAST)  # type: ignore[arg-type]

    assert summary.batches == 4 and flaky.calls == 4 + 2
    assert real.counts()["LogEvent"] == 1000
    assert real.get_checkpoint("app", "pos") == "1000"
    retries = [r.getMessage() for r in caplog.records]
    assert retries == [
        f"store {real.url} failed (attempt {n}), retrying: database lineage.db is busy" for n in (1, 2)
    ], "one line per retry, naming the store and the store's own first line"


def test_a_store_that_stays_down_fails_after_the_policy_bound_keeping_its_checkpoint(  # type: ignore[no-untyped-def]
    new_store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIUBAI_RETRY_STORE_ATTEMPTS", "3")
    monkeypatch.setenv("LIUBAI_RETRY_INITIAL", "0.01")
    real = new_store("down")
    down = _FlakyStore(real, from_call=2, failures=10**6)
    with pytest.raises(StoreUnavailable, match="is busy"):
        ingest_records(down, _items(1000), batch_size=300)  # type: ignore[arg-type]
    assert down.calls == 1 + 3, "the second batch tried LIUBAI_RETRY_STORE_ATTEMPTS times"
    resume = int(real.get_checkpoint("app", "pos") or 0)
    assert real.counts()["LogEvent"] == 300 and resume == 299, "the checkpoint never passes the stored data"

    # Nothing is lost: a re-run from that checkpoint (the collector resumes there) stores the rest.
    rest = (item for item in _items(1000) if not isinstance(item, LogRecord) or int(item.record_id) >= resume)
    ingest_records(real, rest, batch_size=300)
    assert real.counts()["LogEvent"] == 1000 and real.get_checkpoint("app", "pos") == "1000"


def test_retry_policy_reads_its_environment_and_bounds_store_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIUBAI_RETRY_DEADLINE", "7.5")
    monkeypatch.setenv("LIUBAI_RETRY_STORE_ATTEMPTS", "2")
    policy = RetryPolicy.from_env()
    assert (policy.deadline, policy.attempts, policy.store_attempts) == (7.5, 0, 2)
    assert policy.for_store().attempts == 2
    assert RetryPolicy(attempts=1).for_store().attempts == 1

    calls: list[int] = []

    def fails() -> None:
        calls.append(1)
        raise StoreUnavailable("down")

    with pytest.raises(StoreUnavailable):
        RetryPolicy(attempts=3, initial=0.01).call(fails, retry_if=lambda e: isinstance(e, StoreUnavailable))
    assert len(calls) == 3
    calls.clear()
    with pytest.raises(StoreUnavailable):  # not transient by the caller's rule: tried once
        RetryPolicy(attempts=3, initial=0.01).call(fails, retry_if=lambda e: False)
    assert len(calls) == 1


def test_a_bad_retry_variable_is_one_line_naming_it_and_its_value(tmp_path: Path) -> None:
    logs = write_jsonl(make_dataset(10, ["ab" * 20]).lines, tmp_path / "app.jsonl")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIUBAI_RETRY_")}
    for name, value, reason in (
        ("LIUBAI_RETRY_DEADLINE", "soon", "valid number"),
        ("LIUBAI_RETRY_STORE_ATTEMPTS", "0", "greater than or equal to 1"),
        ("LIUBAI_RETRY_INITIAL", "nan", "finite number"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "liubai.api.cli.main", "--store", f"sqlite:///{tmp_path / 'x.db'}"]
            + ["ingest", "logs", str(logs)],
            env={**env, name: value},
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 1, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
        assert f"{name}={value!r}" in lines[0] and reason in lines[0]


def test_collectors_do_not_load_pydantic_settings_unless_a_retry_variable_is_set() -> None:
    """pydantic-settings adds about 0.3 s to every CLI run; the policy reads it only when needed."""
    code = (
        "import sys; from liubai.collector.git import GitCollector; from liubai.collector.retry import RetryPolicy;"
        "RetryPolicy.from_env(); print('pydantic_settings' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIUBAI_RETRY_")}
    quiet = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert quiet.stdout.strip() == "False"
    tuned = subprocess.run(
        [
            sys.executable,
            "-c",
            code.replace("RetryPolicy.from_env();", "assert RetryPolicy.from_env().deadline == 3;"),
        ],
        env={**env, "LIUBAI_RETRY_DEADLINE": "3"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert tuned.stdout.strip() == "True"
