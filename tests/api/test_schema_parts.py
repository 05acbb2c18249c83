"""The query root is composed of one class of fields per area: every area's fields are served."""

from __future__ import annotations

from typing import Any

import pytest

from liubai.api.schema import Query, schema
from liubai.api.schema_audit import AuditQueries
from liubai.api.schema_graph import GraphQueries
from liubai.api.schema_lookup import LookupQueries


def _served_fields() -> dict[str, Any]:
    result = schema.execute_sync('{ __type(name: "Query") { fields { name args { name } } } }')
    assert result.errors is None and result.data is not None
    return {f["name"]: sorted(a["name"] for a in f["args"]) for f in result.data["__type"]["fields"]}


@pytest.mark.parametrize("part", [LookupQueries, GraphQueries, AuditQueries])
def test_every_field_of_each_area_is_on_the_query_root(part: type) -> None:
    assert issubclass(Query, part)
    served = _served_fields()
    fields = part.__strawberry_definition__.fields  # type: ignore[attr-defined]
    assert fields, part
    for field in fields:
        name = schema.config.name_converter.get_graphql_name(field)
        assert name in served, f"{part.__name__}.{field.python_name} is not served"
        assert served[name] == sorted(
            schema.config.name_converter.get_graphql_name(a) for a in field.arguments
        )
