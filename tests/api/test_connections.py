"""Relay cursor connections: walking every page of search results and of a node's neighbours gives each item
exactly once, ``PageInfo`` is complete and true at both ends, and cursors are opaque, repeatable and
resumable from any edge."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import CONFIG_MAPS, World, commit_id, data, error

PAGE_INFO = "pageInfo { hasNextPage hasPreviousPage startCursor endCursor }"
SEARCH = f"""query($first: Int!, $after: String) {{ search(text: "settings", kinds: [Workload], first: $first,
  after: $after) {{ totalCount {PAGE_INFO} edges {{ cursor node {{ id ... on Workload {{ name }} }} }} }} }}"""
NEIGHBORS = f"""query($id: ID!, $first: Int!, $after: String) {{
  neighborConnection(id: $id, first: $first, after: $after) {{ {PAGE_INFO}
    edges {{ cursor node {{ id kind }} link {{ source target kind }} }} }} }}"""


def _walk(client: TestClient, query: str, field: str, first: int, **variables: Any) -> list[dict[str, Any]]:
    """Every edge over every page, checking each page's ``PageInfo`` on the way."""
    edges: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        page = data(client, query, first=first, after=after, **variables)[field]
        info = page["pageInfo"]
        assert 0 < len(page["edges"]) <= first
        assert info["hasPreviousPage"] is (after is not None)
        assert info["startCursor"] == page["edges"][0]["cursor"]
        assert info["endCursor"] == page["edges"][-1]["cursor"]
        edges += page["edges"]
        if not info["hasNextPage"]:
            return edges
        after = info["endCursor"]


@pytest.mark.parametrize("first", [1, 4, 10, CONFIG_MAPS, 100])
def test_search_walk_gives_every_match_once(client: TestClient, world: World, first: int) -> None:
    edges = _walk(client, SEARCH, "search", first)
    ids = [e["node"]["id"] for e in edges]
    assert len(ids) == len(set(ids)) == CONFIG_MAPS
    assert set(ids) == set(world.config_maps)
    assert len({e["cursor"] for e in edges}) == len(edges)
    assert all(e["node"]["name"].startswith("settings-") for e in edges)


def test_search_cursors_repeat_and_resume_from_any_edge(client: TestClient, world: World) -> None:
    one = data(client, SEARCH, first=10)["search"]
    assert data(client, SEARCH, first=10)["search"] == one  # same query, same cursors
    every = [e["node"]["id"] for e in _walk(client, SEARCH, "search", CONFIG_MAPS)]
    for i, edge in enumerate(one["edges"]):
        rest = data(client, SEARCH, first=CONFIG_MAPS, after=edge["cursor"])["search"]
        assert [e["node"]["id"] for e in rest["edges"]] == every[i + 1 :]
        assert rest["pageInfo"]["hasPreviousPage"] is True and rest["pageInfo"]["hasNextPage"] is False


def test_an_empty_search_has_no_cursors(client: TestClient, world: World) -> None:
    query = f'{{ search(text: "no-such-text-anywhere") {{ totalCount edges {{ cursor }} {PAGE_INFO} }} }}'
    assert data(client, query)["search"] == {
        "totalCount": 0,
        "edges": [],
        "pageInfo": {"hasNextPage": False, "hasPreviousPage": False, "startCursor": None, "endCursor": None},
    }


@pytest.mark.parametrize("first", [1, 5, 100])
def test_neighbor_connection_walk_matches_the_whole_neighbourhood(
    client: TestClient, world: World, first: int
) -> None:
    center = commit_id(world.twin_a)
    whole = data(
        client,
        "query($id: ID!) { neighbors(id: $id, first: 1000) { nodes { id } edges { source target kind } } }",
        id=center,
    )["neighbors"]
    edges = _walk(client, NEIGHBORS, "neighborConnection", first, id=center)
    links = [(e["link"]["source"], e["link"]["kind"], e["link"]["target"]) for e in edges]
    assert len(links) == len(set(links)) == len(whole["edges"]) > CONFIG_MAPS
    assert set(links) == {(e["source"], e["kind"], e["target"]) for e in whole["edges"]}
    for e in edges:
        link = e["link"]
        assert center in (link["source"], link["target"])
        other = link["target"] if link["source"] == center else link["source"]
        assert e["node"]["id"] == other
    assert {e["node"]["id"] for e in edges} | {center} == {n["id"] for n in whole["nodes"]}


def test_neighbor_connection_resumes_after_any_edge(client: TestClient, world: World) -> None:
    center = commit_id(world.twin_a)
    every = _walk(client, NEIGHBORS, "neighborConnection", 100, id=center)
    for i in (0, 6, len(every) - 2):
        rest = data(client, NEIGHBORS, id=center, first=3, after=every[i]["cursor"])["neighborConnection"]
        assert [e["link"] for e in rest["edges"]] == [e["link"] for e in every[i + 1 : i + 4]]


@pytest.mark.parametrize(
    "after", ["not-a-cursor", "WzEsIDJd", "WyJ4IiwgLTFd", "WyJ4IiwgMTAwMDAwXQ==", "bnVsbA=="]
)
def test_a_cursor_not_from_an_answer_is_bad_input(client: TestClient, world: World, after: str) -> None:
    """Garbage, a wrong shape ([1, 2]), a negative or huge skip, JSON null: each one BAD_INPUT on ``after``."""
    for query, variables in (
        (SEARCH, {}),
        (NEIGHBORS, {"id": commit_id(world.twin_a)}),
        ("query($first: Int!, $after: String) { rejected(first: $first, after: $after) { totalCount } }", {}),
    ):
        found = error(client, query, first=2, after=after, **variables)
        assert (found["code"], found["detail"]["argument"]) == ("BAD_INPUT", "after")


def test_page_sizes_are_bounded(client: TestClient, world: World) -> None:
    for query, field, variables in (
        (SEARCH, "first", {}),
        (NEIGHBORS, "first", {"id": commit_id(world.twin_a)}),
        ("query($first: Int!) { rejected(first: $first) { totalCount } }", "first", {}),
    ):
        assert error(client, query, first=0, **variables)["detail"]["argument"] == field
