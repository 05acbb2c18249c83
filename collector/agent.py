"""The node agent: runs collectors, ships their batches to ``POST /v1/ingest``, spools while the API is away.

Guarantees, and how:
* Nothing is lost across ``kill -9``: a source's position (records shipped) moves only after the API or
  the spool accepted the batch covering it, and is saved atomically. A restarted agent rebuilds the
  same batches from that position; their ids (sha256 of the body) are the ones already sent, so the
  API applies each exactly once.
* Order: while the spool holds anything, new batches queue behind it; the spool drains oldest first.
* A full spool (byte limit or full disk) drops the batch with a warning and counts it; the source's
  position does not move, so a re-readable source (a file) produces that batch again on a later pass.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import re
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_random_exponential

from collector.spool import Spool, SpoolFull
from lineage.join import add_record
from lineage.model import GraphBatch
from lineage.records import Record
from lineage.urls import redact_url
from lineage.wire import AgentStats, WireError, encode_batch

__all__ = [
    "Agent",
    "AgentConfig",
    "AgentError",
    "AgentStatus",
    "Source",
    "available_sources",
    "make_source",
]

log = logging.getLogger("liubai.agent")


class AgentError(RuntimeError):
    """A condition the agent cannot work around (bad token, unknown source); the message says what to fix."""


class Unavailable(Exception):
    """The API did not take the batch this time (down, overloaded, timed out); try again later."""


class Refused(Exception):
    """The API will never take this batch (too large, invalid); retrying cannot help."""


# --------------------------------------------------------------------------- sources


class Source(Protocol):
    """A re-readable, deterministic stream of records: the same input always yields the same sequence."""

    key: str  # where the position is kept, unique per input
    label: str  # the source name sent with each batch

    def records(self) -> Iterator[Record]: ...


@dataclass(slots=True)
class LogFileSource:
    """A log file, possibly still being written: only complete lines (ending in a newline) are read, so a
    line caught half-written is read on a later pass rather than rejected now."""

    path: str
    fmt: str = "jsonl"
    key: str = ""
    label: str = ""

    def __post_init__(self) -> None:
        from collector.logfile import default_source

        self.key = f"logs:{os.path.abspath(self.path)}"
        self.label = default_source(self.path)

    def _complete_lines(self) -> int | None:
        """Lines ending in a newline right now; None where that cannot be told (gzip, a single OTLP document)."""
        if self.fmt != "jsonl":
            return None
        with open(self.path, "rb") as fh:
            if fh.read(2) == b"\x1f\x8b":
                return None
            fh.seek(0)
            return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))

    def records(self) -> Iterator[Record]:
        from collector.logfile import read_log_file

        complete = self._complete_lines()
        for record in read_log_file(self.path, "otlp" if self.fmt == "otlp" else "jsonl"):
            if complete is not None:
                m = _LINE.search(record.location)
                if m is not None and int(m.group(1)) > complete:
                    return
            yield record


_LINE = re.compile(r":(\d+)(?:#|$)")


@dataclass(slots=True)
class EventsSource:
    """A recording made by ``liubai trace --record``: one traced pipeline run, replayed into records."""

    path: str
    key: str = ""
    label: str = ""

    def __post_init__(self) -> None:
        self.key = f"events:{os.path.abspath(self.path)}"
        self.label = f"events:{Path(self.path).name}"

    def records(self) -> Iterator[Record]:
        from collector.ebpf import replay_recording

        # bytes that are not UTF-8 become "\\xNN" text in the replay (see ``replay_recording``)
        with open(self.path, encoding="utf-8", errors="surrogateescape") as fh:
            try:
                replay = replay_recording(fh, self.path)
            except ValueError as exc:
                raise AgentError(str(exc)) from None
        yield from replay.rejected
        yield from replay.collector.records()


_SOURCES: dict[str, Callable[[str], Source]] = {
    "logs": lambda p: LogFileSource(p, "jsonl"),
    "otlp": lambda p: LogFileSource(p, "otlp"),
    "events": EventsSource,
}
_NEEDS = {"logs": "collector.logfile", "otlp": "collector.logfile", "events": "collector.ebpf"}


def available_sources() -> list[str]:
    """Source kinds whose collector module is installed here."""
    import importlib.util

    return [k for k in _SOURCES if importlib.util.find_spec(_NEEDS[k]) is not None]


def make_source(kind: str, path: str) -> Source:
    if kind not in available_sources():
        raise AgentError(f"source kind {kind!r} is not available here (available: {', '.join(available_sources())})")
    if not os.path.isfile(path):
        raise AgentError(f"{kind} input {path!r} does not exist or is not a file")
    return _SOURCES[kind](path)


# --------------------------------------------------------------------------- state


@dataclass(slots=True)
class AgentStatus:
    """What the agent reports (``status.json`` in its state dir, batch envelopes, ``--metrics-port``)."""

    name: str
    positions: dict[str, int] = field(default_factory=dict)
    sent_batches: int = 0
    duplicate_batches: int = 0
    spooled_batches: int = 0
    replayed_batches: int = 0
    dropped_batches: int = 0
    refused_batches: int = 0
    spool_bytes: int = 0
    spool_pending: int = 0
    api_up: bool = True
    done: bool = False


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


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


class Agent:
    def __init__(self, config: AgentConfig, sources: Sequence[Source], client: httpx.Client | None = None) -> None:
        keys = [s.key for s in sources]
        if len(set(keys)) != len(keys):
            raise AgentError("the same input is named twice")
        self.cfg = config
        self.sources = list(sources)
        config.state_dir.mkdir(parents=True, exist_ok=True)
        self.spool = Spool(config.state_dir / "spool", config.spool_max_bytes)
        self._state_path = config.state_dir / "state.json"
        self._status_path = config.state_dir / "status.json"
        self.status = AgentStatus(name=config.name, positions=self._load_positions())
        self._carry_totals()
        headers = {"Authorization": f"Bearer {config.token}"} if config.token else {}
        self._client = client or httpx.Client(
            base_url=config.server.rstrip("/"), headers=headers, timeout=config.request_timeout_s
        )
        self._exhausted: set[str] = set()
        self._full_warned = False

    # -- state -------------------------------------------------------------------------------------

    def _load_positions(self) -> dict[str, int]:
        try:
            data = json.loads(self._state_path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise AgentError(f"agent state {self._state_path} is unreadable ({exc}); move it away to start over") from None
        return {str(k): int(v) for k, v in data.get("positions", {}).items()}

    def _carry_totals(self) -> None:
        """Dropped and refused counts are totals over the agent's life, not per process."""
        try:
            old = json.loads(self._status_path.read_text())
        except (OSError, ValueError):
            return
        self.status.dropped_batches = int(old.get("dropped_batches") or 0)
        self.status.refused_batches = int(old.get("refused_batches") or 0)

    def _save_positions(self) -> None:
        """Saved after every accepted batch. If the disk is full the position stays behind: the batches
        after it are sent again later and the API answers them as duplicates, so nothing is lost."""
        try:
            _atomic_write(self._state_path, json.dumps({"positions": self.status.positions}).encode())
        except OSError as exc:
            log.warning("cannot save agent position to %s (%s); some batches will be re-sent", self._state_path, exc)

    def _save_status(self) -> None:
        self.status.spool_bytes = self.spool.size_bytes
        self.status.spool_pending = len(self.spool)
        with contextlib.suppress(OSError):  # status is informative; a full disk must not stop shipping
            _atomic_write(self._status_path, json.dumps(asdict(self.status), indent=1).encode())

    def _stats(self) -> AgentStats:
        return AgentStats(
            name=self.cfg.name,
            spool_bytes=self.spool.size_bytes,
            spooled_batches=len(self.spool),
            dropped_batches=self.status.dropped_batches,
        )

    # -- HTTP --------------------------------------------------------------------------------------

    def _post_once(self, data: bytes) -> str:
        try:
            resp = self._client.post("/v1/ingest", content=data, headers={"Content-Type": "application/json"})
        except httpx.HTTPError as exc:
            raise Unavailable(f"{type(exc).__name__}: {exc}") from None
        if resp.status_code == 200:
            try:
                answer = resp.json()
            except ValueError:
                answer = None
            if not isinstance(answer, dict):  # a proxy or another service on that address: try again later
                raise Unavailable("HTTP 200 without the API's JSON answer (is --server the liubai API?)")
            return str(answer.get("status", "applied"))
        message = _server_message(resp)
        if resp.status_code in (401, 403):
            raise AgentError(f"the API refused the agent's token ({resp.status_code}): {message}")
        if resp.status_code in (408, 429) or resp.status_code >= 500:
            raise Unavailable(f"HTTP {resp.status_code}: {message}")
        raise Refused(f"HTTP {resp.status_code}: {message}")

    def _post(self, data: bytes, window_s: float) -> str:
        retrying = Retrying(
            retry=retry_if_exception_type(Unavailable),
            wait=wait_random_exponential(multiplier=0.2, max=min(5.0, max(window_s, 0.1))),
            stop=stop_after_delay(window_s),
            reraise=True,
        )
        return retrying(self._post_once, data)

    def _count_answer(self, answer: str) -> None:
        if answer == "duplicate":
            self.status.duplicate_batches += 1
        else:
            self.status.sent_batches += 1

    # -- moving batches ------------------------------------------------------------------------------

    def drain(self, window_s: float = 0.0) -> bool:
        """Send spooled batches oldest first; True when the spool is empty."""
        while (entry := self.spool.oldest()) is not None:
            try:
                answer = self._post(entry.read(), window_s) if window_s else self._post_once(entry.read())
            except Unavailable as exc:
                self.status.api_up = False
                log.debug("API still unavailable: %s", exc)
                return False
            except Refused as exc:
                self.status.refused_batches += 1
                log.error("the API refused spooled batch %s for good, removing it: %s", entry.batch_id, exc)
                answer = "refused"
            if answer != "refused":
                self._count_answer(answer)
                self.status.replayed_batches += 1
            self.spool.remove(entry)
            self._save_status()
        self.status.api_up = True
        self._full_warned = False
        return True

    def _deliver(self, batch_id: str, data: bytes, label: str) -> bool:
        """True once the API or the spool holds the batch; False when it had to be dropped."""
        if self.status.api_up and len(self.spool) == 0:
            try:
                self._count_answer(self._post(data, self.cfg.send_deadline_s))
                return True
            except Unavailable as exc:
                self.status.api_up = False
                log.warning("API %s unavailable (%s); spooling batches in %s", redact_url(self.cfg.server), exc,
                            self.spool.dir)
            except Refused as exc:
                self.status.refused_batches += 1
                log.error("the API refused batch %s from %s for good: %s", batch_id, label, exc)
                return True
        try:
            self.spool.put(batch_id, data)
        except SpoolFull as exc:
            self.status.dropped_batches += 1
            if not self._full_warned:
                log.warning(
                    "%s; dropped batch %s from %s (%d dropped so far); %s will be read again from its last "
                    "accepted position once the API takes the spooled batches",
                    exc.reason, batch_id[:12], label, self.status.dropped_batches, label,
                )
                self._full_warned = True
            return False
        self.status.spooled_batches += 1
        return True

    def pump(self, source: Source) -> bool:
        """Ship ``source`` from its saved position; True when it is fully shipped."""
        start = self.status.positions.get(source.key, 0)
        index = 0
        pending: list[Record] = []

        def flush() -> bool:
            batch = GraphBatch()
            for record in pending:
                add_record(batch, record)
            try:
                batch_id, data = encode_batch(batch, source.label, self._stats())
            except WireError as exc:
                raise AgentError(f"{source.label}: cannot encode a batch: {exc}") from None
            if not self._deliver(batch_id, data, source.label):
                return False
            self.status.positions[source.key] = index
            self._save_positions()
            self._save_status()
            pending.clear()
            return True

        for record in source.records():
            index += 1
            if index <= start:
                continue
            pending.append(record)
            if len(pending) >= self.cfg.batch_size and not flush():
                return False
        return not pending or flush()

    def run(self, *, follow: bool = False, should_stop: Callable[[], bool] = lambda: False) -> AgentStatus:
        """Ship every source, then wait for the spool to drain (or keep polling with ``follow``)."""
        began = time.monotonic()
        backoff = self.cfg.poll_s
        try:
            while not should_stop():
                drained = self.drain(window_s=min(self.cfg.send_deadline_s, 2.0))
                for source in self.sources:
                    if source.key in self._exhausted and not follow:
                        continue
                    if self.pump(source):
                        self._exhausted.add(source.key)
                drained = drained and len(self.spool) == 0
                self._save_status()
                if not follow and drained and len(self._exhausted) == len(self.sources):
                    self.status.done = True
                    break
                if self.cfg.deadline_s is not None and time.monotonic() - began > self.cfg.deadline_s:
                    log.error(
                        "gave up after %.0f s: %d batches still spooled in %s (they are sent on the next run)",
                        self.cfg.deadline_s, len(self.spool), self.spool.dir,
                    )
                    break
                time.sleep(random.uniform(0.5, 1.0) * backoff)  # jitter
                backoff = self.cfg.poll_s if self.status.api_up else min(backoff * 2, self.cfg.max_backoff_s)
        finally:
            self._save_status()
        return self.status

    def close(self) -> None:
        self._client.close()


def _server_message(resp: httpx.Response) -> str:
    try:
        body: Any = resp.json()
    except ValueError:
        return resp.text[:300]
    detail = body.get("detail", body.get("error", body)) if isinstance(body, dict) else body
    if isinstance(detail, dict) and "message" in detail:
        return str(detail["message"])
    return str(detail)[:300]
