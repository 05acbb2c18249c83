"""Fixtures of the cluster collector's tests: a store to ingest into, and a cluster of their own for the
tests that stop and restart its API server (the session's cluster stays up for everyone else)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kube_cluster import KubeCluster


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'k8s.db'}"


@pytest.fixture(scope="module")
def own_cluster() -> Iterator[KubeCluster]:
    """A control plane for this module alone: its tests take the API server down and bring it back."""
    from tests import kube_cluster

    with kube_cluster.running() as cluster:
        yield cluster
