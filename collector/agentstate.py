"""The agent's saved state (``state.json``): where each source resumes, what it shipped, the API's limit.

Version 2 keeps a log file's position as its identity and byte offset (``liubai.collector.tail.FilePosition``)
and any other source's as a count of records shipped (``CountPosition``). A version-1 file (no
``version``; ``{"positions": {key: records}}``) is read, not reset: every position becomes a
``CountPosition``, so a log file resumes once after that many records and is tracked by byte offset
from its next batch on. A version written by a newer agent is refused with a message, never guessed at.
The file is replaced atomically (written aside, fsynced, renamed), so a crash leaves the old or the new.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from liubai.collector.tail import FilePosition
from liubai.lineage.errors import ErrorCode, LiubaiError

__all__ = [
    "STATE_VERSION",
    "AgentState",
    "CountPosition",
    "Position",
    "StateError",
    "load_state",
]

STATE_VERSION: Literal[2] = 2


@dataclass(frozen=True, slots=True)
class CountPosition:
    """Records shipped from the start of a source that is read whole each pass (recordings, gzip, OTLP)."""

    records: int


Position = FilePosition | CountPosition


class AgentState(BaseModel):
    model_config = ConfigDict(extra="ignore")

    version: Literal[2] = STATE_VERSION
    positions: dict[str, FilePosition | CountPosition] = Field(default_factory=dict)
    shipped_records: dict[str, int] = Field(default_factory=dict)  # over the agent's life, per source
    ingest_limit_bytes: int | None = None  # the API's body limit, once a 413 told it


class StateError(LiubaiError, ValueError):
    """The state file cannot be used; the message says what to do."""

    code = ErrorCode.BAD_INPUT


def load_state(path: Path) -> AgentState:
    """The state in ``path`` (a fresh one when there is none), version 1 read as described above."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return AgentState()
    except (OSError, ValueError) as exc:
        raise StateError(f"agent state {path} is unreadable ({exc}); move it away to start over") from None
    if not isinstance(data, dict):
        raise StateError(f"agent state {path} is not a JSON object; move it away to start over")
    version = data.get("version", 1)
    try:
        if version == 1:
            return AgentState(
                positions={str(k): CountPosition(int(v)) for k, v in data.get("positions", {}).items()}
            )
        if version != STATE_VERSION:
            raise StateError(
                f"agent state {path} is version {version!r}, written by another liubai (this one reads 1 and "
                f"{STATE_VERSION}); move it away to start over"
            )
        return AgentState.model_validate(data)
    except (ValidationError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, StateError):
            raise
        raise StateError(f"agent state {path} is damaged ({exc}); move it away to start over") from None
