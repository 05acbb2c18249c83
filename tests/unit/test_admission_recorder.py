"""Admission records reach the store off the admission path; a slow or dead store only costs records."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from liubai.collector.admission.recorder import WEBHOOK_WRITER, AdmissionRecorder
from liubai.collector.retry import RetryPolicy
from liubai.lineage.model import Direction, EdgeKind, GraphBatch, admission_node_id, workload_node_id
from liubai.lineage.records import AdmissionRecord
from liubai.lineage.store import LineageStore, StoreError, open_store

FAST_RETRY = RetryPolicy(deadline=0.5, initial=0.01, max_wait=0.02, store_attempts=2)


def record(i: int, decision: str = "patched") -> AdmissionRecord:
    return AdmissionRecord(
        request_uid=f"uid-{i}",
        cluster=None,
        time="2026-05-01T00:00:00.000000Z",
        username="system:serviceaccount:argocd:argocd-application-controller",
        operation="CREATE",
        kind="Deployment",
        namespace="shop",
        name=f"web-{i}",
        decision=decision,
        audit_id=f"git-sha1:{'ab' * 20}|trace:{i:032x}",
        commit_source="argocd",
        trace_source="new",
    )


def wait_until(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_records_land_in_the_store_as_admission_nodes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'lineage.db'}"
    recorder = AdmissionRecorder(lambda: open_store(url), retry=FAST_RETRY)
    recorder.start()
    for i in range(50):
        assert recorder.record(record(i))
    recorder.close()
    assert recorder.stats.stored == 50 and recorder.stats.dropped == 0
    store = open_store(url)
    try:
        node = store.get(admission_node_id("uid-7"))
        assert node is not None and node.props["username"].endswith("argocd-application-controller")
        assert node.props["decision"] == "patched" and node.props["name"] == "web-7"
        page = store.neighbors(admission_node_id("uid-7"), Direction.DOWNSTREAM)
        edges = {(e.kind, e.dst) for e in page.edges}
        assert (EdgeKind.ADMITTED, workload_node_id("Deployment", "shop", "web-7")) in edges
        assert any(kind is EdgeKind.STAMPED for kind, _ in edges)
        assert (
            store.provenance([admission_node_id("uid-7")])[admission_node_id("uid-7")].writer
            == WEBHOOK_WRITER
        )
    finally:
        store.close()


class HangingStore:
    """A store whose writes wait until released: the store of a database that stopped answering."""

    url = "test://hanging"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.batches = 0

    def upsert(self, batch: GraphBatch) -> Any:
        self.release.wait()  # released only after every record() call returned
        self.batches += 1
        raise StoreError("gave up")

    def close(self) -> None:
        pass


def test_a_hanging_store_never_blocks_record_and_the_overflow_is_counted() -> None:
    store = HangingStore()
    recorder = AdmissionRecorder(lambda: store, queue_size=10, batch_size=1, retry=FAST_RETRY)  # type: ignore[arg-type,return-value]
    recorder.start()
    # Had record() waited for the store, this would never return: the store answers only after it.
    accepted = [recorder.record(record(i)) for i in range(100)]
    # the writer holds at most one record (its batch), the queue takes 10, the rest are dropped
    assert 10 <= accepted.count(True) <= 11 and recorder.stats.dropped_full == accepted.count(False)
    store.release.set()
    recorder.close(timeout=10)
    assert recorder.stats.stored == 0
    assert recorder.stats.dropped == 100 and recorder.stats.last_error == "gave up"


def test_a_store_that_is_down_then_back_loses_only_what_came_while_it_was_down(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'lineage.db'}"
    down = threading.Event()
    down.set()

    def opener() -> LineageStore:
        if down.is_set():
            raise StoreError("connection refused")
        return open_store(url)

    recorder = AdmissionRecorder(opener, retry=FAST_RETRY)
    recorder.start()
    recorder.record(record(1))
    wait_until(lambda: recorder.stats.dropped_failed == 1)
    assert recorder.stats.last_error == "connection refused"
    down.clear()
    recorder.record(record(2))
    wait_until(lambda: recorder.stats.stored == 1)
    recorder.close()
    store = open_store(url)
    try:
        assert store.get(admission_node_id("uid-2")) is not None
        assert store.get(admission_node_id("uid-1")) is None
    finally:
        store.close()
