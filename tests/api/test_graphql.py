"""The GraphQL contract, exercised over HTTP against the real app on every real store (tests/stores.py)."""

from __future__ import annotations

import base64

import pytest
from fastapi.testclient import TestClient

from liubai.lineage.model import commit_node_id
from liubai.lineage.store.base import StoreUnavailable
from tests.api.conftest import CONFIG_MAPS, HOSTILE_BODY, HOSTILE_SUBJECT, World, data, error, gql

LINEAGE = """
query($from: ID!, $direction: Direction, $depth: Int, $kinds: [EdgeKind!], $limit: Int) {
  lineage(from: $from, direction: $direction, depth: $depth, edgeKinds: $kinds, limit: $limit) {
    nodes { id kind placeholder label time properties }
    edges { source target kind properties }
    depths truncated
  }
}"""


@pytest.mark.parametrize("direction", ["DOWNSTREAM", "BOTH"])
def test_lineage_of_a_commit_reaches_its_workloads_and_the_trace_of_its_audit_id(
    client: TestClient, world: World, direction: str
) -> None:
    graph = data(
        client, LINEAGE, **{"from": commit_node_id(world.deploy), "direction": direction, "depth": 3}
    )["lineage"]
    ids = {n["id"] for n in graph["nodes"]}
    assert set(world.workloads) <= ids
    assert {world.audit_node, world.trace_node, world.run} <= ids
    assert graph["depths"][commit_node_id(world.deploy)] == 0
    assert graph["depths"][world.trace_node] == 2  # commit <-FOR_COMMIT- audit -CORRELATES-> trace
    edges = {(e["source"], e["kind"], e["target"]) for e in graph["edges"]}
    for workload in world.workloads:
        assert (commit_node_id(world.deploy), "DECLARES", workload) in edges
    assert (world.audit_node, "CORRELATES", world.trace_node) in edges
    assert all(e["source"] in ids and e["target"] in ids for e in graph["edges"])
    commit = next(n for n in graph["nodes"] if n["id"] == commit_node_id(world.deploy))
    assert commit["label"] == f"{world.deploy[:12]} deploy web 1.2"
    assert commit["time"] == commit["properties"]["committed_at"]
    assert graph["truncated"] is False


def test_downstream_does_not_climb_to_the_parent_but_upstream_does(client: TestClient, world: World) -> None:
    down = data(client, LINEAGE, **{"from": commit_node_id(world.deploy), "depth": 3})["lineage"]
    up = data(client, LINEAGE, **{"from": commit_node_id(world.deploy), "direction": "UPSTREAM", "depth": 1})[
        "lineage"
    ]
    assert commit_node_id(world.base) not in {n["id"] for n in down["nodes"]}
    assert commit_node_id(world.base) in {n["id"] for n in up["nodes"]}


def test_lineage_edge_kind_filter_and_limit(client: TestClient, world: World) -> None:
    only_declares = data(
        client, LINEAGE, **{"from": commit_node_id(world.deploy), "depth": 3, "kinds": ["DECLARES"]}
    )
    nodes = {n["id"] for n in only_declares["lineage"]["nodes"]}
    assert nodes == {commit_node_id(world.deploy), *world.workloads}
    capped = data(client, LINEAGE, **{"from": commit_node_id(world.deploy), "depth": 3, "limit": 2})[
        "lineage"
    ]
    assert len(capped["nodes"]) == 2 and capped["truncated"] is True


def test_lineage_accepts_a_commit_prefix_and_a_raw_audit_id(client: TestClient, world: World) -> None:
    by_prefix = data(client, LINEAGE, **{"from": world.deploy[:8], "depth": 1})["lineage"]
    assert by_prefix["depths"] == {**by_prefix["depths"], commit_node_id(world.deploy): 0}
    by_audit = data(client, LINEAGE, **{"from": world.audit_raw, "depth": 1})["lineage"]
    assert by_audit["depths"][world.audit_node] == 0
    assert set(world.workloads) <= set(by_audit["depths"])


def test_lineage_bad_input_is_a_structured_error(client: TestClient, world: World) -> None:
    missing = error(client, LINEAGE, **{"from": "commit:" + "0" * 40})
    assert missing["code"] == "NOT_FOUND" and missing["retryable"] is False
    kind = error(client, LINEAGE, **{"from": commit_node_id(world.deploy), "kinds": ["DEPLOYS"]})
    assert kind["code"] == "BAD_INPUT" and "DECLARES" in kind["message"]
    deep = error(client, LINEAGE, **{"from": commit_node_id(world.deploy), "depth": 99})
    assert deep["code"] == "BAD_INPUT" and "depth" in deep["message"]
    nonsense = error(client, LINEAGE, **{"from": "no such thing"})
    assert nonsense["code"] == "BAD_INPUT"


COMMIT = "query($sha: String!) { commit(sha: $sha) { id label properties } }"


def test_commit_by_full_sha_and_unique_prefix(client: TestClient, world: World) -> None:
    full = data(client, COMMIT, sha=world.deploy)["commit"]
    assert full["id"] == commit_node_id(world.deploy)
    assert full["properties"]["sha"] == world.deploy
    assert data(client, COMMIT, sha=world.deploy[:7].upper())["commit"]["id"] == full["id"]
    assert data(client, COMMIT, sha=world.twin_a[:8])["commit"]["id"] == commit_node_id(world.twin_a)
    assert data(client, COMMIT, sha="0123456789")["commit"] is None


def test_ambiguous_commit_prefix_names_the_candidates(client: TestClient, world: World) -> None:
    shared = world.twin_a[:6]
    assert world.twin_b.startswith(shared)
    ext = error(client, COMMIT, sha=shared)
    assert ext["code"] == "AMBIGUOUS"
    assert set(ext["detail"]["candidates"]) == {commit_node_id(world.twin_a), commit_node_id(world.twin_b)}
    assert error(client, COMMIT, sha="abc")["code"] == "BAD_INPUT"
    assert error(client, COMMIT, sha="xyz!1234")["code"] == "BAD_INPUT"


AUDIT = """query($a: String!) { audit(auditId: $a) {
  auditId record { id properties } commit { id } workloads { id } trace { id } runs { id } logs { id time } } }"""


def test_audit_view_joins_commit_workloads_trace_runs_and_logs(client: TestClient, world: World) -> None:
    view = data(client, AUDIT, a=world.audit_raw)["audit"]
    assert view["auditId"] == world.audit_node.removeprefix("audit:")
    assert view["record"]["id"] == world.audit_node
    assert view["record"]["properties"]["raw"] == world.audit_raw
    assert view["commit"]["id"] == commit_node_id(world.deploy)
    assert {w["id"] for w in view["workloads"]} == set(world.workloads)
    assert view["trace"]["id"] == world.trace_node
    assert [r["id"] for r in view["runs"]] == [world.run]
    assert [log["id"] for log in view["logs"]] == world.logs  # time order
    unknown = f"git-sha256:{'e' * 64}"
    assert data(client, AUDIT, a=unknown)["audit"] is None


@pytest.mark.parametrize(
    ("raw", "reason_word"),
    [
        ("git-sha256:1234|trace:abc", "hex"),
        ("trace:a|trace:b", "duplicate"),
        ("", "empty"),
        ("owner:team-a", "neither"),
    ],
)
def test_malformed_audit_id_is_bad_audit_id_with_the_reason(
    client: TestClient, raw: str, reason_word: str
) -> None:
    ext = error(client, AUDIT, a=raw)
    assert ext["code"] == "BAD_AUDIT_ID"
    assert reason_word in ext["detail"]["reason"]
    assert ext["detail"]["reason"] in ext["message"]


PATH = """query($a: ID!, $b: ID!, $max: Int) { path(from: $a, to: $b, maxLength: $max) {
  nodes { id kind } edges { source target kind } depths } }"""


def test_path_from_a_log_event_to_a_commit(client: TestClient, world: World) -> None:
    log = world.logs[1]  # a log linked only through its trace
    path = data(client, PATH, a=log, b=commit_node_id(world.deploy))["path"]
    order = [n["id"] for n in path["nodes"]]
    assert order[0] == log and order[-1] == commit_node_id(world.deploy)
    assert len(path["edges"]) == len(order) - 1 <= 8
    for (a, b), edge in zip(zip(order, order[1:], strict=False), path["edges"], strict=True):
        assert {edge["source"], edge["target"]} == {a, b}
    assert [path["depths"][i] for i in order] == list(range(len(order)))
    assert data(client, PATH, a=log, b=commit_node_id(world.deploy), max=1)["path"] is None
    assert error(client, PATH, a=log, b="commit:" + "0" * 40)["code"] == "NOT_FOUND"


SEARCH = """query($text: String!, $kinds: [NodeKind!], $first: Int, $after: String) {
  search(text: $text, kinds: $kinds, first: $first, after: $after) {
    edges { cursor node { id kind } } pageInfo { hasNextPage endCursor } totalCount } }"""


def test_search_pages_through_every_match_once_with_cursors(client: TestClient, world: World) -> None:
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        page = data(client, SEARCH, text="settings", kinds=["Workload"], first=10, after=after)["search"]
        assert page["totalCount"] == CONFIG_MAPS
        seen += [e["node"]["id"] for e in page["edges"]]
        pages += 1
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
        assert after == page["edges"][-1]["cursor"]
    assert pages == -(-CONFIG_MAPS // 10)
    assert sorted(seen) == sorted(world.config_maps) and len(seen) == len(set(seen))


def test_search_resumes_after_any_edge_cursor(client: TestClient, world: World) -> None:
    first = data(client, SEARCH, text="settings", first=10)["search"]
    ids = [e["node"]["id"] for e in first["edges"]]
    resumed = data(client, SEARCH, text="settings", first=3, after=first["edges"][4]["cursor"])["search"]
    assert [e["node"]["id"] for e in resumed["edges"]] == ids[5:8]


def test_search_kind_filter_and_bad_input(client: TestClient, world: World) -> None:
    commits = data(client, SEARCH, text="twin", kinds=["Commit"])["search"]
    assert {e["node"]["id"] for e in commits["edges"]} == {
        commit_node_id(world.twin_a),
        commit_node_id(world.twin_b),
    }
    assert all(e["node"]["kind"] == "Commit" for e in commits["edges"])
    assert error(client, SEARCH, text="x", kinds=["Deployment"])["code"] == "BAD_INPUT"
    assert error(client, SEARCH, text="settings", after="not-a-cursor")["code"] == "BAD_INPUT"
    too_deep = base64.urlsafe_b64encode(b"[" * 50_000 + b"]" * 50_000).decode()
    assert error(client, SEARCH, text="settings", after=too_deep)["code"] == "BAD_INPUT"
    assert error(client, SEARCH, text="   ")["code"] == "BAD_INPUT"
    assert error(client, SEARCH, text="x", first=0)["code"] == "BAD_INPUT"


NODE = "query($id: ID!) { node(id: $id) { id label properties } }"
STATS = "{ stats { counts } }"


def test_untrusted_text_round_trips_as_data(client: TestClient, world: World) -> None:
    before = data(client, STATS)["stats"]["counts"]
    node = data(client, NODE, id=commit_node_id(world.hostile))["node"]
    assert node["properties"]["subject"] == HOSTILE_SUBJECT
    assert node["properties"]["message"] == f"{HOSTILE_SUBJECT}\n\n{HOSTILE_BODY}"
    assert node["label"] == f"{world.hostile[:12]} {HOSTILE_SUBJECT}"
    # the same text as search input and as an id: found or not, it is never executed
    for text, in_subject in (
        ("'\"; DROP TABLE nodes; --", True),
        ("<script>alert(1)</script>", True),
        ("MATCH (n) DETACH DELETE n", False),
    ):
        hits = {e["node"]["id"] for e in data(client, SEARCH, text=text, first=5)["search"]["edges"]}
        assert (commit_node_id(world.hostile) in hits) is in_subject  # search covers subjects, not bodies
        assert data(client, NODE, id=text)["node"] is None
        assert error(client, LINEAGE, **{"from": text})["code"] == "BAD_INPUT"
    response = client.post(
        "/graphql", json={"query": NODE, "variables": {"id": commit_node_id(world.hostile)}}
    )
    assert response.headers["content-type"].startswith("application/json")
    assert data(client, STATS)["stats"]["counts"] == before


NEIGHBORS = """query($id: ID!, $first: Int, $after: String, $kinds: [EdgeKind!], $dir: Direction) {
  neighbors(id: $id, first: $first, after: $after, edgeKinds: $kinds, direction: $dir) {
    nodes { id } edges { source target kind } depths truncated endCursor } }"""


def test_neighbors_pages_with_end_cursor(client: TestClient, world: World) -> None:
    twin = commit_node_id(world.twin_a)
    found: set[str] = set()
    after = None
    while True:
        page = data(client, NEIGHBORS, id=twin, first=10, after=after, kinds=["DECLARES"], dir="DOWNSTREAM")
        graph = page["neighbors"]
        assert graph["depths"][twin] == 0
        found |= {e["target"] for e in graph["edges"]}
        assert all(e["source"] == twin and e["kind"] == "DECLARES" for e in graph["edges"])
        if not graph["truncated"]:
            assert graph["endCursor"] is None
            break
        after = graph["endCursor"]
    assert found == set(world.config_maps)


TRAIL = "query($id: ID!) { auditTrail(id: $id) { time via node { id kind } } }"


def test_audit_trail_is_time_ordered_and_says_how_each_node_was_reached(
    client: TestClient, world: World
) -> None:
    trail = data(client, TRAIL, id=world.audit_raw)["auditTrail"]
    ids = [t["node"]["id"] for t in trail]
    assert {
        commit_node_id(world.deploy),
        world.trace_node,
        world.run,
        *world.logs,
        *world.workloads,
        *world.processes,
    } <= set(ids)
    assert commit_node_id(world.hostile) not in ids  # a later commit is not part of this change
    times = [t["time"] for t in trail if t["time"] is not None]
    assert times == sorted(times)
    assert trail.index(next(t for t in trail if t["time"] is None)) >= len(times)  # untimed nodes last
    via = {t["node"]["id"]: t["via"] for t in trail}
    assert via[world.audit_node] is None
    assert via[commit_node_id(world.deploy)] == "FOR_COMMIT"
    assert via[world.workloads[0]] == "ANNOTATES"


def test_audit_trail_of_an_audit_id_never_stored_starts_at_its_commit(
    client: TestClient, world: World
) -> None:
    unseen = f"git-sha256:{world.deploy}|trace:{'f' * 32}"
    trail = data(client, TRAIL, id=unseen)["auditTrail"]
    via = {t["node"]["id"]: t["via"] for t in trail}
    assert via[commit_node_id(world.deploy)] is None
    assert {world.audit_node, *world.workloads} <= set(via)
    assert error(client, TRAIL, id=f"git-sha256:{'e' * 40}")["code"] == "NOT_FOUND"


def test_stats_counts_what_the_store_holds(client: TestClient, world: World) -> None:
    counts = data(client, STATS)["stats"]["counts"]
    assert counts == world.store.counts()
    assert counts["Commit"] == 5 and counts["rejected"] == 1


def test_alias_fan_out_is_refused(client: TestClient, world: World) -> None:
    query = "{ " + " ".join(f"a{i}: stats {{ counts }}" for i in range(40)) + " }"
    body = gql(client, query)
    assert body.get("data") is None
    assert body["errors"][0]["extensions"]["code"] == "BAD_INPUT"


def test_a_store_failure_on_a_later_page_is_not_called_a_bad_cursor(
    client: TestClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only ``InvalidCursor`` means "bad ``after``": a store error whose text mentions a cursor (SQLite
    says "closed cursor") stays a store error."""
    after = data(client, SEARCH, text="settings", first=10)["search"]["pageInfo"]["endCursor"]

    def fail(*args: object, **kwargs: object) -> None:
        raise StoreUnavailable("SQLite database api.db: Cannot operate on a closed cursor.")

    monkeypatch.setattr(world.store, "search", fail)
    assert error(client, SEARCH, text="settings", first=10, after=after)["code"] == "STORE_UNAVAILABLE"
