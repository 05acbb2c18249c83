"""The ``declared`` query field: what a commit's tree declares, replayed from the stored graph."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from liubai.api.schema_context import with_store
from liubai.api.schema_types import GNode
from liubai.lineage.declared import DeclaredView, declared_at, resolve_at
from liubai.lineage.store.base import LineageStore

__all__ = ["DeclaredQuery", "GDeclared", "GDeclaredObject"]


@strawberry.type(name="DeclaredObject", description="One object a commit's tree declares.")
class GDeclaredObject:
    node: GNode = strawberry.field(description="The Workload node.")
    path: str = strawberry.field(description="The manifest it is declared in.")
    since: str = strawberry.field(description="The sha of the commit that last changed it.")
    rendered_by: str | None = strawberry.field(
        default=None,
        description="The Flux Kustomization or Argo CD Application whose render declares it "
        "(`Kustomization/<namespace>/<name>`); null for a manifest file read as it is.",
    )


@strawberry.type(name="Declared", description="Everything a commit's tree declares.")
class GDeclared:
    commit: str = strawberry.field(description="The full sha the `at` argument named.")
    complete: bool = strawberry.field(
        description="False when the store lacks part of the commit's first-parent history."
    )
    objects: list[GDeclaredObject]

    @classmethod
    def of(cls, v: DeclaredView) -> GDeclared:
        return cls(
            commit=v.commit,
            complete=v.complete,
            objects=[
                GDeclaredObject(
                    node=GNode.of(o.node), path=o.path, since=o.since, rendered_by=o.rendered_by or None
                )
                for o in v.objects
            ],
        )


@strawberry.type
class DeclaredQuery:
    """Query fields of what Git declares; one part of ``liubai.api.schema.Query``."""

    @strawberry.field(
        description="The Kubernetes objects the tree of `at` declares: a commit sha (or unique prefix) or "
        "an ingested ref (`main`, `refs/tags/v1`); without `at`, the tip of the only ingested ref. "
        "`repo` picks the repository whose refs `at` names."
    )
    async def declared(self, info: Info, at: str | None = None, repo: str | None = None) -> GDeclared:
        def answer(store: LineageStore) -> DeclaredView:
            return declared_at(store, resolve_at(store, at, repo))

        return GDeclared.of(await with_store(info, answer))
