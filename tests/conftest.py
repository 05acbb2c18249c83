"""Fixtures shared across the suite: real parts that several test areas need."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
from hypothesis import settings

from tests._real import missing
from tests.kube_cluster import KubeCluster

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


@pytest.fixture(scope="session")
def kube_cluster() -> Iterator[KubeCluster]:
    """A real kube-apiserver + kube-controller-manager (and etcd) for this session (scripts/kube/cluster)."""
    from tests import kube_cluster as cluster

    with cluster.running() as running:
        yield running


@pytest.fixture
def kube_namespace(kube_cluster: KubeCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace of the session's cluster for one test, so tests never see each other's objects."""
    stem = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:40].strip("-")
    name = kube_cluster.create_namespace(f"t-{stem}-{secrets.token_hex(3)}")
    yield name
    kube_cluster.delete_namespace(name)
