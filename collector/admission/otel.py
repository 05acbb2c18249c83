"""The audit id as OpenTelemetry resource attributes, merged into a container's ``OTEL_RESOURCE_ATTRIBUTES``.

The variable is comma-separated ``key=value`` pairs whose values are percent-encoded outside the W3C
baggage octets (OTel SDK environment specification). A key the user set is never replaced; an entry this
module wrote for an earlier audit id is recognised by its exact value and replaced on a new rollout.
"""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import quote

from liubai.lineage.model import AuditId

__all__ = ["AUDIT_ID_ATTRIBUTE", "OTEL_ENV", "REVISION_ATTRIBUTE", "merge_resource_attributes", "strip_ours"]

OTEL_ENV = "OTEL_RESOURCE_ATTRIBUTES"
AUDIT_ID_ATTRIBUTE = "gitops.audit_id"
REVISION_ATTRIBUTE = "vcs.ref.head.revision"  # semantic conventions: the commit a deployment runs

# W3C baggage-octet: %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E, less "%" itself, which encodes.
_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '",;\\%')


def _encode(value: str) -> str:
    return quote(value, safe=_SAFE)


def ours(audit: AuditId) -> list[tuple[str, str]]:
    """The attributes the stamp of ``audit`` adds, values encoded."""
    pairs = [(AUDIT_ID_ATTRIBUTE, _encode(audit.canonical))]
    if audit.commit is not None:
        pairs.append((REVISION_ATTRIBUTE, audit.commit))
    return pairs


def _is_ours(key: str, value: str, known: Collection[AuditId]) -> bool:
    return any((key, value) in ours(a) for a in known)


def _pairs(value: str) -> list[tuple[str, str, str]]:
    """(key, value, the item as written) for each non-empty item."""
    out = []
    for item in value.split(","):
        if item.strip():
            key, _, val = item.partition("=")
            out.append((key.strip(), val.strip(), item))
    return out


def strip_ours(value: str, known: Collection[AuditId]) -> str:
    """``value`` without the entries a stamp of any of the ``known`` ids wrote."""
    return ",".join(item for key, val, item in _pairs(value) if not _is_ours(key, val, known))


def merge_resource_attributes(value: str, audit: AuditId, known: Collection[AuditId] = ()) -> str:
    """``value`` with the attributes of ``audit`` appended; entries written for ``known`` earlier ids are
    dropped first, and a key the user set keeps the user's value. Merging twice changes nothing more."""
    kept = _pairs(strip_ours(value, [audit, *known]))
    user_keys = {key for key, _, _ in kept}
    items = [item for _, _, item in kept]
    items.extend(f"{key}={val}" for key, val in ours(audit) if key not in user_keys)
    return ",".join(items)
