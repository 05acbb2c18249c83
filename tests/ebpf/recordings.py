"""Building blocks of hand-written recordings for the replay tests: a run header and an event's process."""

from __future__ import annotations

from typing import Any

RUN_HEADER: dict[str, Any] = {
    "type": "run",
    "format": "liubai-events/1",
    "host": "h",
    "root_pid": 100,
    "start_ns": 1_000,
    "command": ["sh"],
    "boot_offset_ns": 1_700_000_000 * 10**9,
}
PROCESS: dict[str, Any] = {"pid": 100, "tid": 100, "uid": 0, "start_ns": 1_000}
