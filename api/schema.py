"""The GraphQL schema the web UI and scripts query (strawberry; camelCase names).

``Query`` is composed here, in one place, from one class of fields per area; an area added later (e.g.
the cluster's fields) is one more base class below. Where each part lives:

* ``schema_context``: the per-request context and the pool blocking store calls run in;
* ``schema_types``: the answer types (``Node``, ``Edge``, ``Graph``, pages, audit views) and enums;
* ``schema_arguments``: argument checks shared by resolvers;
* ``schema_lookup``, ``schema_graph``, ``schema_audit``, ``schema_cluster``, ``schema_declared``: the query fields, by area.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import strawberry

from liubai.api.errors import StructuredErrors
from liubai.api.limits import LimitSettings, graphql_extensions
from liubai.api.schema_audit import AuditQueries
from liubai.api.schema_cluster import ClusterQuery
from liubai.api.schema_declared import DeclaredQuery
from liubai.api.schema_graph import GraphQueries
from liubai.api.schema_lookup import LookupQueries
from liubai.api.schema_types import node_types

__all__ = ["LineageSchema", "Query", "build_schema", "schema"]


@strawberry.type
class Query(LookupQueries, GraphQueries, AuditQueries, ClusterQuery, DeclaredQuery):
    """The query root: the fields of every area's class."""


class LineageSchema(strawberry.Schema):
    def __init__(self, query: type, *, types: Iterable[Any] = (), **options: Any) -> None:
        """Every node kind's type is in the schema, though fields name only the ``Node`` interface."""
        super().__init__(query=query, types=[*node_types(), *types], **options)

    def process_errors(self, errors: list[Any], execution_context: Any = None) -> None:
        """Logging happens in ``StructuredErrors`` (unexpected errors only), not for every user mistake."""


def build_schema(limits: LimitSettings | None = None) -> strawberry.Schema:
    """The schema with guards against queries built to be expensive (depth, tokens, aliases, page size,
    time); settings from ``LIUBAI_QUERY_*`` (see ``liubai.api.limits``)."""
    return LineageSchema(
        query=Query,
        extensions=[*graphql_extensions(limits or LimitSettings()), StructuredErrors],
    )


schema = build_schema()
