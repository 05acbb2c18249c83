"""``liubai.lineage.model`` keeps every name callers import from it, now that kinds, the audit id and
graph batches live in modules of their own; each re-exported name is the very object of its home module."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

import liubai.lineage.model as model

# Every name ``liubai.lineage.model`` exported before the split, and where each lives now.
HOMES = {
    "kinds": ["Direction", "EdgeKind", "NodeKind", "node_kind_of"],
    "audit_id": [
        "AUDIT_ID_ANNOTATION",
        "AUDIT_ID_ENV",
        "COMMIT_KEYS",
        "AuditId",
        "AuditIdError",
        "parse_audit_id",
        "parse_traceparent",
    ],
    "batch": [
        "Edge",
        "GraphBatch",
        "Node",
        "Props",
        "RejectedRecord",
        "dedupe_batch",
        "merge_into",
        "merge_props",
    ],
    "model": [
        "admission_node_id",
        "audit_node_id",
        "commit_node_id",
        "file_node_id",
        "log_node_id",
        "pod_node_id",
        "process_node_id",
        "repo_node_id",
        "run_node_id",
        "trace_node_id",
        "workload_node_id",
    ],
}


@pytest.mark.parametrize(("home", "name"), [(h, n) for h, names in HOMES.items() for n in names])
def test_model_still_exports_each_name_from_its_home(home: str, name: str) -> None:
    assert name in model.__all__
    module = importlib.import_module(f"liubai.lineage.{home}")
    assert getattr(model, name) is getattr(module, name)


def test_the_parts_do_not_import_the_model() -> None:
    """Dependencies point one way (kinds <- batch <- model), so the parts load without the whole."""
    for part in ("kinds", "audit_id", "batch"):
        path = Path(importlib.import_module(f"liubai.lineage.{part}").__file__ or "")
        assert "liubai.lineage.model" not in path.read_text(), part


@pytest.mark.parametrize("part", ["model", "kinds", "audit_id", "batch"])
def test_each_part_is_small(part: str) -> None:
    path = Path(importlib.import_module(f"liubai.lineage.{part}").__file__ or "")
    assert len(path.read_text().splitlines()) <= 400
