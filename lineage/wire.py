"""GraphBatch <-> JSON: the versioned envelope agents send to ``POST /v1/ingest``.

The envelope names its batch by the sha256 of the canonical body, so a batch re-sent after a crash,
a timeout or a spool replay is recognisably the same batch and the API applies it exactly once.
Validation is strict: a batch is the unit the store applies atomically, so one bad fact refuses the
whole envelope with an error that names the field (``body.nodes[3].id: ...``).
"""

from __future__ import annotations

import hashlib
import math
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    field_validator,
    model_validator,
)

from liubai.lineage.errors import ErrorCode, LiubaiError
from liubai.lineage.model import Edge, EdgeKind, GraphBatch, Node, NodeKind, RejectedRecord, node_kind_of
from liubai.lineage.text import clip

__all__ = [
    "FORMAT",
    "VERSION",
    "DecodedBatch",
    "WireError",
    "batch_id_of",
    "decode_batch",
    "encode_batch",
]

FORMAT = "liubai.batch"
VERSION = 1
MAX_ID = 4096
MAX_TEXT = 1 << 20
_ERRORS_SHOWN = 3

Id = Annotated[str, Field(min_length=1, max_length=MAX_ID)]
Text = Annotated[str, Field(max_length=MAX_TEXT)]


class WireError(LiubaiError, ValueError):
    """An envelope that cannot be applied; the message names the field and what is wrong with it."""

    code = ErrorCode.BAD_INPUT


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_props(props: dict[str, JsonValue]) -> dict[str, JsonValue]:
    stack: list[Any] = [props]
    while stack:
        value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("property values must be finite numbers (no NaN or Infinity)")
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return props


class WireNode(_Strict):
    id: Id
    kind: NodeKind | None = None
    props: dict[str, JsonValue] = Field(default_factory=dict)
    placeholder: bool = False

    @field_validator("id")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        node_kind_of(value)  # ValueError names the id
        return value

    @field_validator("props")
    @classmethod
    def _finite(cls, value: dict[str, JsonValue]) -> dict[str, JsonValue]:
        return _check_props(value)

    @model_validator(mode="after")
    def _kind_matches(self) -> WireNode:
        if self.kind is not None and self.kind != node_kind_of(self.id):
            raise ValueError(f"kind {self.kind.value!r} does not match id {clip(self.id)!r}")
        return self


class WireEdge(_Strict):
    src: Id
    kind: EdgeKind
    dst: Id
    props: dict[str, JsonValue] = Field(default_factory=dict)

    @field_validator("src", "dst")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        node_kind_of(value)
        return value

    @field_validator("props")
    @classmethod
    def _finite(cls, value: dict[str, JsonValue]) -> dict[str, JsonValue]:
        return _check_props(value)


class WireRejected(_Strict):
    source: Annotated[str, Field(min_length=1, max_length=MAX_ID)]
    location: Annotated[str, Field(max_length=MAX_ID)]
    reason: Annotated[str, Field(min_length=1, max_length=MAX_ID)]
    raw: Text = ""


class WireCheckpoint(_Strict):
    source: Annotated[str, Field(min_length=1, max_length=MAX_ID)]
    key: Annotated[str, Field(max_length=MAX_ID)]
    value: Annotated[str, Field(max_length=MAX_ID)]


class AgentStats(_Strict):
    """What the sending agent reports about itself, so the API's /metrics shows every agent's spool."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    spool_bytes: Annotated[int, Field(ge=0)] = 0
    spooled_batches: Annotated[int, Field(ge=0)] = 0
    dropped_batches: Annotated[int, Field(ge=0)] = 0


class WireBody(_Strict):
    source: Annotated[str, Field(min_length=1, max_length=200)]
    nodes: list[WireNode] = Field(default_factory=list)
    edges: list[WireEdge] = Field(default_factory=list)
    rejected: list[WireRejected] = Field(default_factory=list)
    checkpoints: list[WireCheckpoint] = Field(default_factory=list)


class WireEnvelope(_Strict):
    format: Literal["liubai.batch"]
    version: Literal[1]
    batch_id: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    body: WireBody
    agent: AgentStats | None = None


class DecodedBatch(BaseModel):
    """A validated envelope: the batch, its id, the sender's source name and its agent stats."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    batch_id: str
    source: str
    batch: GraphBatch
    agent: AgentStats | None = None


def _canonical(body: Any) -> bytes:
    try:
        return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    except TypeError as exc:  # a non-JSON value, a non-string key, an int beyond 64 bits
        raise WireError(f"body: not representable as JSON: {exc}") from None


def batch_id_of(body: Any) -> str:
    """sha256 (hex) of the canonical JSON of an envelope body: sorted keys, no spaces, UTF-8.

    An idempotence key between liubai's own agent and server, never evidence anyone else checks, so it
    keeps orjson's sorted form (ingest's hot path); what outsiders verify is RFC 8785
    (``liubai.lineage.canonical``)."""
    return hashlib.sha256(_canonical(body)).hexdigest()


def _body_dict(batch: GraphBatch, source: str) -> dict[str, Any]:
    return {
        "source": source,
        "nodes": [
            {"id": n.id, "kind": n.kind.value, "props": n.props, "placeholder": n.placeholder}
            for n in batch.nodes
        ],
        "edges": [{"src": e.src, "kind": e.kind.value, "dst": e.dst, "props": e.props} for e in batch.edges],
        "rejected": [
            {"source": r.source, "location": r.location, "reason": r.reason, "raw": r.raw}
            for r in batch.rejected
        ],
        "checkpoints": [
            {"source": s, "key": k, "value": v} for (s, k), v in sorted(batch.checkpoints.items())
        ],
    }


def _explain(exc: ValidationError, prefix: str = "") -> str:
    parts = []
    for err in exc.errors()[:_ERRORS_SHOWN]:
        where = prefix
        for loc in err["loc"]:
            where += f"[{loc}]" if isinstance(loc, int) else (f".{loc}" if where else str(loc))
        msg = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{where or 'envelope'}: {msg}")
    more = exc.error_count() - _ERRORS_SHOWN
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def encode_batch(batch: GraphBatch, source: str, agent: AgentStats | None = None) -> tuple[str, bytes]:
    """The envelope for ``batch`` as JSON bytes, and its batch id. The same facts always give the same id.

    The body is validated exactly as the API will validate it, so an agent never spools a batch the
    API would refuse.
    """
    body = _body_dict(batch, source)
    try:
        WireBody.model_validate(body)
    except ValidationError as exc:
        raise WireError(_explain(exc, "body")) from None
    bid = batch_id_of(body)
    envelope: dict[str, Any] = {"format": FORMAT, "version": VERSION, "batch_id": bid, "body": body}
    if agent is not None:
        envelope["agent"] = agent.model_dump()
    return bid, orjson.dumps(envelope)


def decode_batch(data: bytes | str) -> DecodedBatch:
    """Parse and validate an envelope; WireError (field named) for anything that is not a valid batch."""
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise WireError(f"envelope is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise WireError(f"envelope must be a JSON object, got {type(raw).__name__}")
    if raw.get("format") != FORMAT:
        raise WireError(f"format: expected {FORMAT!r}, got {clip(repr(raw.get('format')))}")
    if raw.get("version") != VERSION:
        raise WireError(f"version: this server reads version {VERSION}, got {clip(repr(raw.get('version')))}")
    try:
        env = WireEnvelope.model_validate(raw)
    except ValidationError as exc:
        raise WireError(_explain(exc)) from None
    actual = batch_id_of(raw["body"])
    if actual != env.batch_id:
        raise WireError(f"batch_id: does not match the body (its sha256 is {actual})")
    body = env.body
    batch = GraphBatch(
        nodes=[Node(n.id, node_kind_of(n.id), dict(n.props), n.placeholder) for n in body.nodes],
        edges=[Edge(e.src, e.kind, e.dst, dict(e.props)) for e in body.edges],
        rejected=[RejectedRecord(r.source, r.location, r.reason, r.raw) for r in body.rejected],
        checkpoints={(c.source, c.key): c.value for c in body.checkpoints},
    )
    return DecodedBatch(batch_id=env.batch_id, source=body.source, batch=batch, agent=env.agent)
