"""Node and edge kinds are GraphQL enums named as the model spells them, so answers read as before."""

from __future__ import annotations

from typing import Any

import pytest

from liubai.api.schema import schema
from liubai.lineage.model import EdgeKind, NodeKind


def _type(name: str) -> dict[str, Any]:
    result = schema.execute_sync(
        "query($n: String!) { __type(name: $n) { kind enumValues { name } fields { name type { ofType { name } } } } }",
        variable_values={"n": name},
    )
    assert result.errors is None and result.data is not None
    found: dict[str, Any] = result.data["__type"]
    return found


def test_kind_enums_hold_every_model_kind_by_its_value() -> None:
    nodes, edges = _type("NodeKind"), _type("EdgeKind")
    assert nodes["kind"] == edges["kind"] == "ENUM"
    assert [v["name"] for v in nodes["enumValues"]] == [k.value for k in NodeKind]
    assert [v["name"] for v in edges["enumValues"]] == [k.value for k in EdgeKind]


def test_node_and_edge_kind_fields_are_the_enums() -> None:
    node = {f["name"]: f["type"]["ofType"] for f in _type("Node")["fields"]}
    edge = {f["name"]: f["type"]["ofType"] for f in _type("Edge")["fields"]}
    assert node["kind"] == {"name": "NodeKind"} and edge["kind"] == {"name": "EdgeKind"}


def test_kind_arguments_take_the_enums() -> None:
    result = schema.execute_sync(
        '{ __type(name: "Query") { fields { name args { name type { kind ofType { kind ofType { name } } } } } } }'
    )
    assert result.errors is None and result.data is not None
    types = {(f["name"], a["name"]): a["type"] for f in result.data["__type"]["fields"] for a in f["args"]}
    for field, arg, enum in (
        ("search", "kinds", "NodeKind"),
        ("lineage", "edgeKinds", "EdgeKind"),
        ("neighbors", "edgeKinds", "EdgeKind"),
    ):
        assert types[(field, arg)] == {
            "kind": "LIST",
            "ofType": {"kind": "NON_NULL", "ofType": {"name": enum}},
        }


def _error(query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    result = schema.execute_sync(query, variable_values=variables)
    assert result.errors is not None and len(result.errors) == 1, result
    ext: dict[str, Any] = result.errors[0].extensions or {}
    return ext


@pytest.mark.parametrize(
    ("query", "variables", "enum"),
    [
        ('{ search(text: "x", kinds: [Deployment]) { totalCount } }', None, NodeKind),
        ('{ search(text: "x", kinds: ["Commit"]) { totalCount } }', None, NodeKind),
        (
            'query($k: [NodeKind!]) { search(text: "x", kinds: $k) { totalCount } }',
            {"k": ["Commit", "commit"]},
            NodeKind,
        ),
        ('{ lineage(from: "x", edgeKinds: [DEPLOYS]) { truncated } }', None, EdgeKind),
        (
            'query($k: [EdgeKind!]) { neighbors(id: "x", edgeKinds: $k) { truncated } }',
            {"k": ["declares"]},
            EdgeKind,
        ),
    ],
)
def test_a_bad_kind_fails_validation_naming_the_valid_ones(
    query: str, variables: dict[str, Any] | None, enum: type[NodeKind] | type[EdgeKind]
) -> None:
    ext = _error(query, variables)
    assert ext["code"] == "BAD_INPUT" and ext["retryable"] is False
    assert f"Valid values: {', '.join(k.value for k in enum)}." in ext["message"]


def test_a_variable_of_the_wrong_type_is_the_clients_mistake_not_an_internal_error() -> None:
    query = 'query($d: Direction!, $n: Int!) { lineage(from: "x", direction: $d, depth: $n) { truncated } }'
    direction = _error(query, {"d": "SIDEWAYS", "n": 1})
    assert (
        direction["code"] == "BAD_INPUT"
        and "Valid values: UPSTREAM, DOWNSTREAM, BOTH." in direction["message"]
    )
    depth = _error(query, {"d": "UPSTREAM", "n": "deep"})
    assert depth["code"] == "BAD_INPUT" and "Int cannot represent" in depth["message"]
    assert "errorId" not in direction and "errorId" not in depth
