"""Which stored properties the Neo4j writes turn into ``DATETIME``: liubai's time names holding a real
time in exactly the ``iso_utc`` form, nothing else (Cypher's ``datetime()`` must never fail a batch)."""

from __future__ import annotations

import pytest

pytest.importorskip("neo4j")

from liubai.lineage.records import iso_utc
from liubai.lineage.store.neo4j.props import time_keys, to_neo4j


def test_only_real_times_in_the_iso_utc_form_under_time_names_are_listed() -> None:
    stored = to_neo4j(
        {
            "committed_at": iso_utc(1767323045.5),
            "first_seen": "2026-01-02T03:04:05.000000Z",
            "last_seen": "2026-01-02T03:04:05Z",  # not the collectors' form
            "started_at": "2026-02-30T03:04:05.000000Z",  # no such day
            "ended_at": "２０２６-01-02T03:04:05.000000Z",  # not ASCII digits
            "time": 1767323045,
            "deleted_at": None,
            "note": "2026-01-02T03:04:05.000000Z",  # a time's form under another name
        }
    )
    assert time_keys(stored) == ["committed_at", "first_seen"]
