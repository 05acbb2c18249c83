"""The node tracer's hand-off socket: ``liubai trace`` commands traced with the node's loaded program.

Kept apart from ``liubai.ebpf.node`` so the pod path reads without it; the node tracer gives the server
its raw events first and a ``vet`` that refuses the pids its pod path owns.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from liubai.collector.handoff_server import HandoffServer, Tracker

__all__ = ["listen"]

log = logging.getLogger("liubai.node")


def listen(
    tracer: Tracker, path: Path, vet: Callable[[int], str | None], counters: Counter[str]
) -> HandoffServer:
    """A started server on ``path``; each run served is logged and counted in ``handoff_runs``.
    RuntimeError (one line) when the socket cannot be made."""

    def served(run: int, events: int) -> None:
        counters["handoff_runs"] += 1
        log.info("trace hand-off: served run %d (%d events)", run, events)

    server = HandoffServer(tracer, path, served, vet=vet)
    try:
        server.start()
    except OSError as exc:
        raise RuntimeError(f"cannot listen for 'liubai trace' on {path}: {exc.strerror or exc}") from None
    return server
