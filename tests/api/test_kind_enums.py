"""Node and edge kinds are GraphQL enums named as the model spells them, so answers read as before."""

from __future__ import annotations

from typing import Any

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
