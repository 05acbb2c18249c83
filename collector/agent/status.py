"""The agent's settings and what it reports (``status.json`` in its state dir, batch envelopes, metrics)."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["LIFETIME_TOTALS", "AgentConfig", "AgentStatus"]


@dataclass(slots=True)
class AgentStatus:
    """What the agent reports (``status.json`` in its state dir, batch envelopes, ``--metrics-port``)."""

    name: str
    positions: dict[str, dict[str, Any]] = field(default_factory=dict)
    shipped_records: dict[str, int] = field(default_factory=dict)
    sent_batches: int = 0
    duplicate_batches: int = 0
    spooled_batches: int = 0
    replayed_batches: int = 0
    dropped_batches: int = 0
    refused_batches: int = 0  # kept in the spool's dead-letter directory
    split_batches: int = 0  # halved because the API refused them as too large
    oversized_records: int = 0  # sent as rejected records: alone over the API's limit
    ingest_limit_bytes: int | None = None
    spool_bytes: int = 0
    spool_pending: int = 0
    api_up: bool = True
    done: bool = False


# counts kept over the agent's life, not per process
LIFETIME_TOTALS = ("dropped_batches", "refused_batches", "split_batches", "oversized_records")


@dataclass(slots=True)
class AgentConfig:
    server: str
    token: str | None
    state_dir: Path
    name: str = field(default_factory=socket.gethostname)
    batch_size: int = 500
    spool_max_bytes: int = 256 * 1024 * 1024
    send_deadline_s: float = 10.0  # retry window for one batch before it goes to the spool
    request_timeout_s: float = 10.0
    poll_s: float = 1.0
    max_backoff_s: float = 15.0
    deadline_s: float | None = None  # give up waiting for the API after this long (one-shot runs)
