"""The graph the cluster join writes does not depend on the order its records arrive in.

A watcher reads each resource type on its own stream, so a ReplicaSet may land before or after its
Deployment (which it first creates as a placeholder), and a watcher restarted after a crash cuts its
batches elsewhere than one that ran through. Both must end with the same stored graph.
"""

from __future__ import annotations

from itertools import permutations
from pathlib import Path
from typing import Any

import pytest

from liubai.lineage.join import join_records
from liubai.lineage.records import ClusterObjectRecord, PodRecord, Record
from liubai.lineage.store import open_store

AT = "2026-03-01T10:00:00.000000Z"
LATER = "2026-03-01T10:05:00.000000Z"

RECORDS: list[Record] = [
    ClusterObjectRecord(None, "apps/v1", "Deployment", "shop", "web", "uid-d", AT, replicas=1),
    ClusterObjectRecord(
        None,
        "apps/v1",
        "ReplicaSet",
        "shop",
        "web-5d8",
        "uid-r",
        AT,
        owner_kind="Deployment",
        owner_name="web",
    ),
    PodRecord(
        None, "shop", "web-5d8-x", "uid-p", AT, phase="Running", owner_kind="ReplicaSet", owner_name="web-5d8"
    ),
    PodRecord(None, "shop", "web-5d8-x", "uid-p", LATER, deleted=True),
]


def stored(tmp_path: Path, name: str, batches: list[list[Record]]) -> dict[str, Any]:
    store = open_store(f"sqlite:///{tmp_path / name}.db")
    try:
        for records in batches:
            store.upsert(join_records(records))
        return {n.id: (n.placeholder, n.props) for b in store.iter_nodes() for n in b}
    finally:
        store.close()


@pytest.mark.parametrize("order", list(permutations(range(3))))
def test_records_in_any_order_and_batching_store_the_same_graph(
    tmp_path: Path, order: tuple[int, ...]
) -> None:
    one_batch = stored(tmp_path, "one", [RECORDS])
    # the Pod's deletion stays last: a Pod is never deleted before it is seen
    shuffled = [[RECORDS[i]] for i in order] + [[RECORDS[3]]]
    assert stored(tmp_path, "each", shuffled) == one_batch
    pod = one_batch["pod:uid-p"][1]
    assert pod["phase"] == "Deleted" and pod["deleted_at"] == LATER
    assert "deleted_at" not in one_batch["workload:Deployment/shop/web"][1]
