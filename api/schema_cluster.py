"""The cluster side of the GraphQL schema: ``drift``, what runs that Git does not account for.

One base class of the root ``Query`` (``liubai.api.schema``), so the cluster fields grow here without
touching the lineage resolvers.
"""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from liubai.api.schema_context import with_store
from liubai.lineage.drift import Drift, find_drift

__all__ = ["ClusterQuery", "GDrift"]


@strawberry.type(name="Drift", description="A running workload (or bare Pod) Git does not account for.")
class GDrift:
    id: strawberry.ID = strawberry.field(description="The object's node id (`workload:...` or `pod:<uid>`).")
    kind: str
    namespace: str
    name: str
    cluster: str | None = strawberry.field(description="The cluster name given to `ingest k8s --cluster`.")
    reason: str = strawberry.field(
        description="no-audit-id, bad-audit-id, no-commit, unknown-commit (not in the store) or undeclared "
        "(the commit does not declare the workload)."
    )
    detail: str = strawberry.field(description="The reason in words.")
    audit_id: str | None = strawberry.field(description="The audit id the object carries, as read.")
    commit: str | None = strawberry.field(description="The commit its audit id names.")

    @classmethod
    def of(cls, d: Drift) -> GDrift:
        return cls(
            id=strawberry.ID(d.node_id),
            kind=d.kind,
            namespace=d.namespace,
            name=d.name,
            cluster=d.cluster,
            reason=d.reason.value,
            detail=d.detail,
            audit_id=d.audit_id,
            commit=d.commit,
        )


@strawberry.type
class ClusterQuery:
    """Query fields of what runs in clusters; one part of ``liubai.api.schema.Query``."""

    @strawberry.field(
        description="Running workloads with no audit id, a malformed one, or one whose commit Git never "
        "declared for them; of every cluster, or of the named `cluster`."
    )
    async def drift(self, info: Info, cluster: str | None = None) -> list[GDrift]:
        found = await with_store(info, lambda s: find_drift(s, cluster, every_cluster=cluster is None))
        return [GDrift.of(d) for d in found]
