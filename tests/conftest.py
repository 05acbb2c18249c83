"""Fixtures shared across the suite: real parts that several test areas need."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

from tests._real import missing

# Under CI (``.ci/run`` sets LIUBAI_DERANDOMIZE=1) every hypothesis test draws the cases its own source
# determines, with no example database: a run fails or passes on the change, not on a draw. Elsewhere each
# run draws new cases, and ``make fuzz`` draws many.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("LIUBAI_DERANDOMIZE") == "1":
    settings.load_profile("ci")


@pytest.fixture(scope="session")
def neo4j_url() -> Iterator[str]:
    """Bolt URL of a real Neo4j started for this test session (see scripts/neo4j-test-server)."""
    try:
        from tests import neo4j_server
    except ImportError as exc:
        missing("neo4j", f"the test server helper cannot load: {exc}")
    with neo4j_server.running() as url:
        yield url


@pytest.fixture
def neo4j_clean_url(neo4j_url: str) -> str:
    """The session's Neo4j, emptied: every contract test starts from a blank graph."""
    from tests import neo4j_server

    neo4j_server.wipe(neo4j_url)
    return neo4j_url
