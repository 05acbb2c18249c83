"""Reaching Neo4j: URL forms, credentials from the environment, and one clear line when it fails."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest

from liubai.lineage.model import GraphBatch
from liubai.lineage.store import StoreUnavailable, open_store
from liubai.lineage.store.neo4j import Neo4jStore

pytestmark = pytest.mark.neo4j


def _parts(url: str) -> tuple[str, int, str]:
    p = urlsplit(url)
    assert p.hostname and p.port and p.password
    return p.hostname, p.port, p.password


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_server_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LIUBAI_NEO4J_PASSWORD", raising=False)
    port = _closed_port()
    with pytest.raises(StoreUnavailable) as err:
        open_store(f"bolt://neo4j:pw@127.0.0.1:{port}")
    msg = str(err.value)
    assert "\n" not in msg and f"127.0.0.1:{port}" in msg and "unreachable" in msg
    assert "pw@" not in msg  # the password is never echoed


def test_wrong_password_is_one_line(neo4j_url: str) -> None:
    host, port, _ = _parts(neo4j_url)
    with pytest.raises(StoreUnavailable) as err:
        open_store(f"bolt://neo4j:not-the-password@{host}:{port}")
    msg = str(err.value)
    assert "\n" not in msg and "refused the login" in msg and "not-the-password" not in msg


def test_missing_password_says_where_to_put_it(neo4j_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LIUBAI_NEO4J_PASSWORD", raising=False)
    host, port, _ = _parts(neo4j_url)
    with pytest.raises(StoreUnavailable, match="LIUBAI_NEO4J_PASSWORD"):
        open_store(f"bolt://{host}:{port}")


def test_password_from_environment_and_routing_scheme(
    neo4j_clean_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    host, port, password = _parts(neo4j_clean_url)
    monkeypatch.setenv("LIUBAI_NEO4J_PASSWORD", password)
    store = open_store(f"neo4j://{host}:{port}")  # routing driver: the server advertises itself
    try:
        assert isinstance(store, Neo4jStore) and "***" not in store.url and password not in store.url
        b = GraphBatch()
        b.add_node("trace:t-env", {"trace_id": "t-env"})
        assert store.upsert(b).nodes_created == 1
    finally:
        store.close()
    again = open_store(neo4j_clean_url)  # a second store on the same server sees the write
    try:
        node = again.get("trace:t-env")
        assert node is not None and node.props == {"trace_id": "t-env"}
    finally:
        again.close()


def test_unknown_database_is_one_line(neo4j_url: str) -> None:
    host, port, password = _parts(neo4j_url)
    with pytest.raises(StoreUnavailable) as err:
        open_store(f"bolt://neo4j:{password}@{host}:{port}/nosuchdb")
    assert "nosuchdb" in str(err.value) and "\n" not in str(err.value)


def test_url_with_password_is_redacted(neo4j_url: str) -> None:
    store = open_store(neo4j_url)
    try:
        assert _parts(neo4j_url)[2] not in store.url and ":***@" in store.url
    finally:
        store.close()
