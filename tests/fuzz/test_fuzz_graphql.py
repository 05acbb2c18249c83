"""Schema-valid GraphQL queries (hypothesis-graphql) against the real schema over a real SQLite graph.

Whatever the arguments, the API answers with data or with structured, expected errors: never an
INTERNAL error (an unhandled exception) and never an error without a message and a code. hypothesis-graphql
writes no named fragments, so a second test moves generated selection sets into fragments, each spread
one to three times (fragments spreading fragments included), and aliases fields: the refusals name exactly
the limits the expanded document is over.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    InlineFragmentNode,
    NamedTypeNode,
    NameNode,
    OperationDefinitionNode,
    SelectionNode,
    SelectionSetNode,
    get_named_type,
    parse,
    print_ast,
)
from hypothesis import given
from hypothesis import strategies as st
from hypothesis_graphql import queries

from liubai.api.errors import StructuredErrors
from liubai.api.limits import LimitSettings, graphql_extensions
from liubai.api.query_cost import DocumentCost, measure
from liubai.api.schema import LineageSchema, Query
from liubai.api.schema_context import ApiContext
from liubai.lineage.join import join_records
from liubai.lineage.records import CommitRecord, LogRecord
from liubai.lineage.store import LineageStore, open_store
from tests.fuzz.conftest import FUZZ

pytestmark = pytest.mark.fuzz

SCHEMA = LineageSchema(
    query=Query, extensions=[*graphql_extensions(LimitSettings(timeout_s=30)), StructuredErrors]
)
# Limits the generated documents fall on both sides of (they reach about 200 selections and depth 3).
TIGHT = LimitSettings(timeout_s=30, max_fields=40, max_depth=2, max_aliases=4)
TIGHT_SCHEMA = LineageSchema(query=Query, extensions=[*graphql_extensions(TIGHT), StructuredErrors])
SHA = "5d" * 20


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LineageStore]:
    s = open_store(f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'g.db'}")
    s.upsert(
        join_records(
            [
                CommitRecord(
                    repo="r",
                    sha=SHA,
                    parents=(),
                    author_name="a",
                    author_email="a@x",
                    authored_at="2026-01-01T00:00:00Z",
                    committer_name="a",
                    committer_email="a@x",
                    committed_at="2026-01-01T00:00:00Z",
                    subject="deploy ' \" { } MATCH (n)",
                ),
                LogRecord(
                    source="app",
                    record_id="r1",
                    time="2026-01-01T00:00:01Z",
                    message="hello",
                    trace_id="ab" * 16,
                    audit_id=f"git-sha256:{SHA}|trace:{'ab' * 16}",
                ),
            ]
        )
    )
    yield s
    s.close()


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    lp = asyncio.new_event_loop()
    yield lp
    lp.close()


def test_fuzz_store_is_not_empty(store: LineageStore) -> None:
    assert store.counts()["Commit"] == 1 and store.counts()["LogEvent"] == 1


@FUZZ
@given(query=queries(SCHEMA.as_str()))
def test_schema_valid_queries_never_fail_unexpectedly(
    query: str, store: LineageStore, loop: asyncio.AbstractEventLoop
) -> None:
    result = loop.run_until_complete(SCHEMA.execute(query, context_value=ApiContext(lambda: store)))
    for error in result.errors or []:
        ext = error.extensions or {}
        assert error.message.strip() and ext.get("code"), error
        assert ext["code"] != "INTERNAL", f"{error.message} for query {query}"


class _Hoister:
    """Rewrites a generated operation so that chosen selection sets live in named fragments and chosen
    fields get (distinct) aliases."""

    def __init__(self, draw: Callable[[st.SearchStrategy[Any]], Any]) -> None:
        self.draw = draw
        self.fragments: list[FragmentDefinitionNode] = []
        self.aliases = 0

    def selection_set(self, node: SelectionSetNode, parent: GraphQLNamedType) -> SelectionSetNode:
        selections = [self.selection(s, parent) for s in node.selections]
        if not self.draw(st.booleans()):
            return SelectionSetNode(selections=tuple(selections))
        name = f"F{len(self.fragments)}"
        self.fragments.append(
            FragmentDefinitionNode(
                name=NameNode(value=name),
                type_condition=NamedTypeNode(name=NameNode(value=parent.name)),
                directives=(),
                selection_set=SelectionSetNode(selections=tuple(selections)),
            )
        )
        spreads = [FragmentSpreadNode(name=NameNode(value=name), directives=())] * self.draw(
            st.integers(1, 3)
        )
        return SelectionSetNode(selections=tuple(spreads))

    def selection(self, node: SelectionNode, parent: GraphQLNamedType) -> SelectionNode:
        if isinstance(node, FieldNode) and node.alias is None and self.draw(st.booleans()):
            self.aliases += 1
            node = replace(node, alias=NameNode(value=f"a{self.aliases}"))
        if isinstance(node, FieldNode) and node.selection_set is not None:
            assert isinstance(parent, GraphQLObjectType | GraphQLInterfaceType)
            inner = get_named_type(parent.fields[node.name.value].type)
            return replace(node, selection_set=self.selection_set(node.selection_set, inner))
        if isinstance(node, InlineFragmentNode):
            inner = SCHEMA._schema.get_type(node.type_condition.name.value) if node.type_condition else parent
            assert inner is not None
            return replace(node, selection_set=self.selection_set(node.selection_set, inner))
        return node


@st.composite
def with_fragments(draw: Callable[[st.SearchStrategy[Any]], Any]) -> str:
    document: DocumentNode = draw(queries(SCHEMA.as_str(), print_ast=lambda d: d))
    hoister = _Hoister(draw)
    query_type = SCHEMA._schema.query_type
    assert query_type is not None
    operations = [
        replace(d, selection_set=hoister.selection_set(d.selection_set, query_type))
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode)
    ]
    return print_ast(DocumentNode(definitions=(*operations, *hoister.fragments)))


@FUZZ
@given(query=with_fragments())
def test_queries_with_fragments_answer_within_the_limits_or_name_one(
    query: str, store: LineageStore, loop: asyncio.AbstractEventLoop
) -> None:
    result = loop.run_until_complete(TIGHT_SCHEMA.execute(query, context_value=ApiContext(lambda: store)))
    cost = measure(parse(query))
    assert isinstance(cost, DocumentCost)
    over = {
        "fields": cost.selections > TIGHT.max_fields,
        "aliases": cost.aliases > TIGHT.max_aliases,
        "depth": max(cost.depths.values()) > TIGHT.max_depth,
    }
    limits = {(e.extensions or {}).get("detail", {}).get("limit") for e in result.errors or []} - {None}
    assert limits == {name for name, hit in over.items() if hit}, query
    assert not limits or result.data is None
    for error in result.errors or []:
        ext = error.extensions or {}
        assert error.message.strip() and ext.get("code"), error
        assert ext["code"] != "INTERNAL", f"{error.message} for query {query}"
