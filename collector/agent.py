"""The node agent: runs collectors, ships their batches to ``POST /v1/ingest``, spools while the API is away.

Guarantees, and how:
* Nothing is lost across ``kill -9``: a source's position moves only past batches the API or the spool
  accepted, and is saved atomically (``liubai.collector.agentstate``). A log file's position is its identity
  (device, inode) and the byte offset after the last line shipped, so appending, truncation
  (copytruncate) and rename rotation are told apart and followed (``liubai.collector.tail``); other sources
  count records. A restarted agent rebuilds the same batches from that position; their ids (sha256 of
  the body) are the ones already sent, so the API applies each exactly once. LogEvent ids are content
  hashes, so a line read from a rotated file's copy or its new name is the same node.
* Nothing is dropped for being large: a batch refused with 413 is halved by records (whole log lines)
  and resent, down to single records; the API's limit, stated in its 413 answer (or else taken as just
  under the refused size), is kept in the state file and later batches are built under it. A record
  that alone is over the limit is sent as a rejected record instead ("record of N bytes exceeds the
  server's ingest limit of M bytes", at its ``file:line``, with a bounded prefix of its text), so it is
  visible with ``liubai rejected`` and counted in ``oversized_records``. A spooled batch refused with
  413 is halved by facts (``liubai.collector.batchsplit``).
* A batch the API refuses for any other reason (422: it will never be valid) is kept in the spool's
  ``dead-letter/`` directory with the reason, and counted in ``refused_batches``; the position moves
  past it only once it is kept there.
* Order: while the spool holds anything, new batches queue behind it; the spool drains oldest first.
* A full spool (byte limit or full disk) drops the batch with a warning and counts it; the source's
  position does not move, so a re-readable source (a file) produces that batch again on a later pass.

The agent builds its own batches rather than feeding ``liubai.collector.ingest``: a batch here is a list
of units (a log line's records and the position after it), because a 413 halves it by units and the
position moves per delivered half; the pipeline's batches carry checkpoints, not positions to split
at. Delivery retries under the shared ``RetryPolicy``.
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
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import httpx

from liubai.collector.agentstate import CountPosition, Position, StateError, load_state
from liubai.collector.batchsplit import fact_count, halve
from liubai.collector.retry import RetryPolicy
from liubai.collector.spool import Spool, SpooledBatch, SpoolFull, atomic_write
from liubai.collector.tail import FilePosition, FileTail
from liubai.lineage.errors import ErrorCode, LiubaiError
from liubai.lineage.join import add_record
from liubai.lineage.model import GraphBatch, RejectedRecord
from liubai.lineage.records import Record
from liubai.lineage.urls import redact_url
from liubai.lineage.wire import AgentStats, WireError, decode_batch, encode_batch

__all__ = [
    "Agent",
    "AgentConfig",
    "AgentError",
    "AgentStatus",
    "Source",
    "Unit",
    "available_sources",
    "make_source",
]

log = logging.getLogger("liubai.agent")

_RAW_KEEP = 2000  # characters of an oversized record's text kept in its reject
_HEAD = 64 * 1024  # bytes looked at to tell JSON lines from pretty-printed documents


class AgentError(LiubaiError, RuntimeError):
    """A condition the agent cannot work around (bad token, unknown source); the message says what to fix."""

    code = ErrorCode.BAD_INPUT


class Unavailable(Exception):
    """The API did not take the batch this time (down, overloaded, timed out); try again later."""


class Refused(Exception):
    """The API will never take this batch as it is (too large, invalid)."""

    def __init__(self, status: int, message: str, limit: int | None = None) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.limit = limit  # the body limit a 413 answer stated


class _TooLarge(Exception):
    """A batch over the API's body limit (``limit``; ``stated`` when the API said it, else an upper bound)."""

    def __init__(self, limit: int, stated: bool) -> None:
        super().__init__(limit)
        self.limit = limit
        self.stated = stated


# --------------------------------------------------------------------------- sources


@dataclass(frozen=True, slots=True)
class Unit:
    """Records that always travel in the same batch (one log line's, or one record) and the position just
    after them; ``raw`` is the input text, quoted by the reject if the unit alone is over the API's limit."""

    records: tuple[Record, ...]
    after: Position
    location: str
    raw: bytes = b""
    oversized: bool = False  # already the reject standing in for an oversized unit


class Source(Protocol):
    """A re-readable, deterministic stream of records: the same input from the same position always yields
    the same units."""

    key: str  # where the position is kept, unique per input
    label: str  # the source name sent with each batch

    def units(self, position: Position | None) -> Iterator[Unit]: ...

    def close(self) -> None: ...


def _counted(records: Iterable[Record], position: Position | None) -> Iterator[Unit]:
    """One unit per record, positioned by count, after the ``position.records`` already shipped."""
    start = position.records if isinstance(position, CountPosition) else 0
    for index, record in enumerate(records, 1):
        if index > start:
            yield Unit((record,), CountPosition(index), str(getattr(record, "location", "") or ""))


@dataclass(slots=True)
class LogFileSource:
    """A log file, possibly still being written and rotated. JSON lines are read from the saved byte offset
    (``liubai.collector.tail``), complete lines only, so a line caught half-written is read on a later pass.
    Gzip files, pretty-printed JSON documents and ``--otlp`` exports are read whole each pass and
    positioned by record count (they are written once, not appended to), and are not followed across
    rotation."""

    path: str
    fmt: str = "jsonl"
    key: str = ""
    label: str = ""
    _tail: FileTail = field(init=False)

    def __post_init__(self) -> None:
        from liubai.collector.logfile import default_source

        self.key = f"logs:{os.path.abspath(self.path)}"
        self.label = default_source(self.path)
        self._tail = FileTail(self.path)

    def close(self) -> None:
        self._tail.close()

    def _whole(self, position: Position | None) -> bool:
        """Whether the file is read whole: not JSON lines, or gzip, or pretty-printed documents (its first
        line with anything on it opens an object or an array alone, as ``read_jsonl`` tells them)."""
        from liubai.collector.logfile import DOCUMENT_OPENERS

        if self.fmt != "jsonl":
            return True
        if isinstance(position, FilePosition) and position.offset > 0:
            return False
        head = self._tail.head(_HEAD)
        if head[:2] == b"\x1f\x8b":
            return True
        for line in head.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                return False  # not complete yet: nothing is read from it this pass anyway
            if not line.isspace():
                return line.strip() in DOCUMENT_OPENERS
        return False

    def units(self, position: Position | None) -> Iterator[Unit]:
        if self._whole(position):
            yield from _counted(self._whole_records(), position)
            return
        from liubai.collector.logfields import FieldMap, log_mapper
        from liubai.collector.logfile import jsonl_line_items
        from liubai.lineage.text import visible

        fm = FieldMap()
        mapper = log_mapper(fm)
        skip = position.records if isinstance(position, CountPosition) else 0  # a version-1 position, once
        for line in self._tail.lines(position if isinstance(position, FilePosition) else None):
            where = f"{visible(line.name)}:{line.lineno}"
            records: tuple[Record, ...] = tuple(jsonl_line_items(line.data, self.label, where, mapper, fm))
            if skip:
                dropped = min(skip, len(records))
                skip -= dropped
                records = records[dropped:]
            yield Unit(records, line.after, where, line.data)

    def _complete_lines(self) -> int | None:
        """Lines ending in a newline right now; None where that cannot be told (gzip, a single OTLP document)."""
        if self.fmt != "jsonl":
            return None
        with open(self.path, "rb") as fh:
            if fh.read(2) == b"\x1f\x8b":
                return None
            fh.seek(0)
            return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))

    def _whole_records(self) -> Iterator[Record]:
        from liubai.collector.logfile import read_log_file

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

    def close(self) -> None:
        pass

    def units(self, position: Position | None) -> Iterator[Unit]:
        return _counted(self._records(), position)

    def _records(self) -> Iterator[Record]:
        from liubai.collector.recording import replay_recording
        from liubai.collector.runs import run_items

        # bytes that are not UTF-8 become "\\xNN" text in the replay (see ``replay_recording``)
        with open(self.path, encoding="utf-8", errors="surrogateescape") as fh:
            try:
                replay = replay_recording(fh, self.path)
            except ValueError as exc:
                raise AgentError(str(exc)) from None
        yield from run_items(replay.collector, replay.rejected)


_SOURCES: dict[str, Callable[[str], Source]] = {
    "logs": lambda p: LogFileSource(p, "jsonl"),
    "otlp": lambda p: LogFileSource(p, "otlp"),
    "events": EventsSource,
}
_NEEDS = {
    "logs": "liubai.collector.logfile",
    "otlp": "liubai.collector.logfile",
    "events": "liubai.collector.recording",
}


def available_sources() -> list[str]:
    """Source kinds whose collector module is installed here."""
    import importlib.util

    return [k for k in _SOURCES if importlib.util.find_spec(_NEEDS[k]) is not None]


def make_source(kind: str, path: str) -> Source:
    if kind not in available_sources():
        raise AgentError(
            f"source kind {kind!r} is not available here (available: {', '.join(available_sources())})"
        )
    if not os.path.isfile(path):
        raise AgentError(f"{kind} input {path!r} does not exist or is not a file")
    return _SOURCES[kind](path)


# --------------------------------------------------------------------------- state


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


_LIFETIME_TOTALS = ("dropped_batches", "refused_batches", "split_batches", "oversized_records")


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
    def __init__(
        self, config: AgentConfig, sources: Sequence[Source], client: httpx.Client | None = None
    ) -> None:
        keys = [s.key for s in sources]
        if len(set(keys)) != len(keys):
            raise AgentError("the same input is named twice")
        self.cfg = config
        self.sources = list(sources)
        config.state_dir.mkdir(parents=True, exist_ok=True)
        self.spool = Spool(config.state_dir / "spool", config.spool_max_bytes)
        self._state_path = config.state_dir / "state.json"
        self._status_path = config.state_dir / "status.json"
        try:
            self.state = load_state(self._state_path)
        except StateError as exc:
            raise AgentError(str(exc)) from None
        self.status = AgentStatus(name=config.name, ingest_limit_bytes=self.state.ingest_limit_bytes)
        self._show_positions()
        self._carry_totals()
        headers = {"Authorization": f"Bearer {config.token}"} if config.token else {}
        self._client = client or httpx.Client(
            base_url=config.server.rstrip("/"), headers=headers, timeout=config.request_timeout_s
        )
        self._exhausted: set[str] = set()
        self._full_warned = False
        self._retry = RetryPolicy.from_env()

    # -- state -------------------------------------------------------------------------------------

    def _show_positions(self) -> None:
        self.status.positions = {k: asdict(v) for k, v in self.state.positions.items()}
        self.status.shipped_records = dict(self.state.shipped_records)

    def _carry_totals(self) -> None:
        """Dropped, refused, split and oversized counts are totals over the agent's life, not per process."""
        try:
            old = json.loads(self._status_path.read_text())
        except (OSError, ValueError):
            return
        if isinstance(old, dict):
            for name in _LIFETIME_TOTALS:
                with contextlib.suppress(TypeError, ValueError):
                    setattr(self.status, name, int(old.get(name) or 0))

    def _save_state(self) -> None:
        """Saved after every accepted batch. If the disk is full the position stays behind: the batches
        after it are sent again later and the API answers them as duplicates, so nothing is lost."""
        self._show_positions()
        try:
            atomic_write(self._state_path, self.state.model_dump_json().encode())
        except OSError as exc:
            log.warning(
                "cannot save agent position to %s (%s); some batches will be re-sent", self._state_path, exc
            )

    def _save_status(self) -> None:
        self.status.spool_bytes = self.spool.size_bytes
        self.status.spool_pending = len(self.spool)
        with contextlib.suppress(OSError):  # status is informative; a full disk must not stop shipping
            atomic_write(self._status_path, json.dumps(asdict(self.status), indent=1).encode())

    def _stats(self) -> AgentStats:
        return AgentStats(
            name=self.cfg.name,
            spool_bytes=self.spool.size_bytes,
            spooled_batches=len(self.spool),
            dropped_batches=self.status.dropped_batches,
        )

    def _learn_limit(self, refused: Refused, size: int) -> _TooLarge:
        """The API's body limit after it refused ``size`` bytes: the one its answer states, else (another
        server) at most one byte under what it refused; kept so later batches are built under it."""
        stated = refused.limit is not None and refused.limit > 0
        known = self.state.ingest_limit_bytes
        limit = refused.limit if stated and refused.limit is not None else min(known or size, size - 1)
        if limit != known:
            log.warning(
                "the API takes request bodies of at most %d bytes; building batches under that", limit
            )
        self.state.ingest_limit_bytes = self.status.ingest_limit_bytes = limit
        return _TooLarge(limit, stated)

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
        message, limit = _server_message(resp)
        if resp.status_code in (401, 403):
            raise AgentError(f"the API refused the agent's token ({resp.status_code}): {message}")
        if resp.status_code in (408, 429) or resp.status_code >= 500:
            raise Unavailable(f"HTTP {resp.status_code}: {message}")
        raise Refused(resp.status_code, message, limit)

    def _post(self, data: bytes, window_s: float) -> str:
        """``data`` posted, retried under the shared policy for ``window_s`` seconds while the API is away."""
        policy = replace(
            self._retry, deadline=window_s, max_wait=min(self._retry.max_wait, 5.0, max(window_s, 0.1))
        )
        return policy.call(self._post_once, data, retry_if=lambda exc: isinstance(exc, Unavailable))

    def _count_answer(self, answer: str) -> None:
        if answer == "duplicate":
            self.status.duplicate_batches += 1
        else:
            self.status.sent_batches += 1

    def _dead_letter(self, batch_id: str, data: bytes, label: str, exc: Refused) -> bool:
        """Keep a batch the API refused for good; True once it is kept (False: read it again later)."""
        try:
            path = self.spool.dead_letter(batch_id, data, f"{label}: {exc}")
        except OSError as err:
            log.error(
                "the API refused batch %s from %s for good (%s) and it cannot be kept (%s); it is read "
                "again on a later pass",
                batch_id[:12],
                label,
                exc,
                err,
            )
            return False
        self.status.refused_batches += 1
        log.error(
            "the API refused batch %s from %s for good: %s; kept in %s", batch_id[:12], label, exc, path
        )
        return True

    # -- moving batches ------------------------------------------------------------------------------

    def drain(self, window_s: float = 0.0) -> bool:
        """Send spooled batches oldest first; True when the spool is empty."""
        while (entry := self.spool.oldest()) is not None:
            data = entry.read()
            try:
                answer = self._post(data, window_s) if window_s else self._post_once(data)
            except Unavailable as exc:
                self.status.api_up = False
                log.debug("API still unavailable: %s", exc)
                return False
            except Refused as exc:
                if exc.status == 413:
                    if not self._resend_halved(entry, data, exc, window_s):
                        return False
                elif not self._dead_letter(entry.batch_id, data, "spooled batch", exc):
                    return False
                answer = "refused"
            if answer != "refused":
                self._count_answer(answer)
                self.status.replayed_batches += 1
            self.spool.remove(entry)
            self._save_status()
        self.status.api_up = True
        self._full_warned = False
        return True

    def _resend_halved(self, entry: SpooledBatch, data: bytes, exc: Refused, window_s: float) -> bool:
        """Send a spooled batch the API found too large as pieces under its limit; True once all are taken.
        The pieces are a function of the batch, so after an interruption they are resent as duplicates."""
        too_large = self._learn_limit(exc, len(data))
        try:
            decoded = decode_batch(data)
        except WireError as err:
            return self._dead_letter(
                entry.batch_id, data, "spooled batch", Refused(exc.status, f"{exc}; {err}")
            )
        for batch_id, piece in self._pieces(decoded.batch, decoded.source, too_large):
            try:
                self._count_answer(self._post(piece, window_s) if window_s else self._post_once(piece))
            except Unavailable as err:
                self.status.api_up = False
                log.debug("API still unavailable: %s", err)
                return False
            except Refused as err:
                if not self._dead_letter(batch_id, piece, decoded.source, err):
                    return False
        return True

    def _pieces(self, batch: GraphBatch, source: str, too_large: _TooLarge) -> Iterator[tuple[str, bytes]]:
        batch_id, data = self._encode_batch(batch, source)
        if len(data) <= too_large.limit:
            yield batch_id, data
        elif fact_count(batch) > 1:
            self.status.split_batches += 1
            for half in halve(batch):
                yield from self._pieces(half, source, too_large)
        else:
            what = batch.nodes[0].id if batch.nodes else "one fact"
            reject = self._oversized(source, what, len(data), data.decode("utf-8", "replace"), too_large)
            yield self._encode_batch(GraphBatch(rejected=[reject]), source)

    def _deliver(self, batch_id: str, data: bytes, label: str) -> bool:
        """True once the API, the spool or the dead-letter directory holds the batch; False when it had to
        be dropped. ``_TooLarge`` when the API refused it as too large."""
        if self.status.api_up and len(self.spool) == 0:
            try:
                self._count_answer(self._post(data, self.cfg.send_deadline_s))
                return True
            except Unavailable as exc:
                self.status.api_up = False
                log.warning(
                    "API %s unavailable (%s); spooling batches in %s",
                    redact_url(self.cfg.server),
                    exc,
                    self.spool.dir,
                )
            except Refused as exc:
                if exc.status == 413:
                    raise self._learn_limit(exc, len(data)) from None
                return self._dead_letter(batch_id, data, label, exc)
        try:
            self.spool.put(batch_id, data)
        except SpoolFull as exc:
            self.status.dropped_batches += 1
            if not self._full_warned:
                log.warning(
                    "%s; dropped batch %s from %s (%d dropped so far); %s will be read again from its last "
                    "accepted position once the API takes the spooled batches",
                    exc.reason,
                    batch_id[:12],
                    label,
                    self.status.dropped_batches,
                    label,
                )
                self._full_warned = True
            return False
        self.status.spooled_batches += 1
        return True

    def _encode_batch(self, batch: GraphBatch, label: str) -> tuple[str, bytes]:
        try:
            return encode_batch(batch, label, self._stats())
        except WireError as exc:
            raise AgentError(f"{label}: cannot encode a batch: {exc}") from None

    def _oversized(
        self, source: str, where: str, size: int, text: str, too_large: _TooLarge
    ) -> RejectedRecord:
        """The reject standing in for a record that alone is over the API's limit."""
        self.status.oversized_records += 1
        limit = f"of {too_large.limit} bytes" if too_large.stated else f"(at most {too_large.limit} bytes)"
        keep = max(0, min(_RAW_KEEP, too_large.limit // 4))  # the reject itself must fit
        log.error(
            "%s: record at %s is %d bytes, over the API's ingest limit; sent as a rejected record",
            source,
            where,
            size,
        )
        return RejectedRecord(
            source, where, f"record of {size} bytes exceeds the server's ingest limit {limit}", text[:keep]
        )

    def _ship(self, source: Source, units: list[Unit]) -> bool:
        """Send ``units`` as one batch, or as halves if the API finds it too large; the position moves past
        each part once the API, the spool or the dead-letter directory holds it. False: a part was dropped
        (the position stays before it)."""
        if not any(unit.records for unit in units):  # blank lines: nothing to send, nothing to lose
            self._advance(source.key, units)
            return True
        batch = GraphBatch()
        for unit in units:
            for record in unit.records:
                add_record(batch, record)
        batch_id, data = self._encode_batch(batch, source.label)
        limit = self.state.ingest_limit_bytes
        try:
            if limit is not None and len(data) > limit:
                raise _TooLarge(limit, True)
            delivered = self._deliver(batch_id, data, source.label)
        except _TooLarge as too_large:
            return self._ship_smaller(source, units, len(data), too_large, batch_id, data)
        if delivered:
            self._advance(source.key, units)
        return delivered

    def _ship_smaller(
        self, source: Source, units: list[Unit], size: int, too_large: _TooLarge, batch_id: str, data: bytes
    ) -> bool:
        if len(units) > 1:
            self.status.split_batches += 1
            mid = len(units) // 2
            return self._ship(source, units[:mid]) and self._ship(source, units[mid:])
        unit = units[0]
        if unit.oversized:  # even its reject does not fit: keep the batch for an operator
            refused = Refused(
                413, f"a {size}-byte rejected record is over the API's limit of {too_large.limit}"
            )
            if not self._dead_letter(batch_id, data, source.label, refused):
                return False
            self._advance(source.key, units)
            return True
        raw = unit.raw.decode("utf-8", "replace") if unit.raw else ""
        reject = self._oversized(
            source.label, unit.location or source.label, len(unit.raw) or size, raw, too_large
        )
        return self._ship(source, [Unit((reject,), unit.after, unit.location, oversized=True)])

    def _advance(self, key: str, units: list[Unit]) -> None:
        self.state.positions[key] = units[-1].after
        shipped = self.state.shipped_records
        shipped[key] = shipped.get(key, 0) + sum(len(unit.records) for unit in units)
        self._save_state()
        self._save_status()

    def pump(self, source: Source) -> bool:
        """Ship ``source`` from its saved position; True when it is fully shipped."""
        pending: list[Unit] = []
        count = 0
        for unit in source.units(self.state.positions.get(source.key)):
            pending.append(unit)
            count += len(unit.records)
            if count >= self.cfg.batch_size:
                if not self._ship(source, pending):
                    return False
                pending, count = [], 0
        return not pending or self._ship(source, pending)

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
                        self.cfg.deadline_s,
                        len(self.spool),
                        self.spool.dir,
                    )
                    break
                time.sleep(random.uniform(0.5, 1.0) * backoff)  # jitter
                backoff = self.cfg.poll_s if self.status.api_up else min(backoff * 2, self.cfg.max_backoff_s)
        finally:
            self._save_status()
        return self.status

    def close(self) -> None:
        self._client.close()
        for source in self.sources:
            source.close()


def _server_message(resp: httpx.Response) -> tuple[str, int | None]:
    """The API's message in an error answer, and the body limit a 413 answer states (``limit_bytes``)."""
    try:
        body: Any = resp.json()
    except ValueError:
        return resp.text[:300], None
    detail = body.get("detail", body.get("error", body)) if isinstance(body, dict) else body
    if isinstance(detail, dict) and "message" in detail:
        limit = detail.get("limit_bytes")
        return str(detail["message"]), limit if type(limit) is int else None
    return str(detail)[:300], None
