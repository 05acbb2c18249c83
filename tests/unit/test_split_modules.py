"""Modules split at a seam (issue 18) keep the names their callers import from the old module: the
split moves code, it does not make the old import path fail or hand out a second copy of a class."""

from __future__ import annotations

import importlib

import pytest

MOVED = {
    "liubai.collector.runs": {
        "BinaryHasher": "liubai.collector.binary_hasher",
        "RunInfo": "liubai.collector.run_model",
        "_Access": "liubai.collector.run_model",
        "_Proc": "liubai.collector.run_model",
        "IngestStats": "liubai.collector.run_ingest",
        "ingest_run": "liubai.collector.run_ingest",
        "run_items": "liubai.collector.run_ingest",
    },
    "liubai.collector.live_events": {"same_process": "liubai.collector.proc_facts"},
}


@pytest.mark.parametrize("old", sorted(MOVED))
def test_moved_names_import_from_the_old_module_as_the_same_objects(old: str) -> None:
    module = importlib.import_module(old)
    for name, home in MOVED[old].items():
        assert getattr(module, name) is getattr(importlib.import_module(home), name), name
        assert name in module.__all__, name


def test_a_run_collector_gives_its_records_through_the_split_out_base() -> None:
    from liubai.collector.run_records import RunRecords
    from liubai.collector.runs import RunCollector, RunInfo

    collector = RunCollector(RunInfo(host="h", root_pid=1, start_ns=5, command=("true",), boot_offset_ns=0))
    assert isinstance(collector, RunRecords)
    kinds = [type(r).__name__ for r in collector.records()]
    assert kinds == ["RunRecord", "ProcessRecord"]
