"""The agent's loop: build batches from sources' units, deliver them (API, else spool, else dead letters),
drain the spool oldest first, and move each source's position only past what was delivered.

The guarantees this keeps are listed in ``liubai.collector.agent``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from typing import Any

import httpx

from liubai.collector.agent.errors import AgentError, Refused, TooLarge, Unavailable
from liubai.collector.agent.ingest_client import IngestClient
from liubai.collector.agent.sources import Source, Unit
from liubai.collector.agent.status import LIFETIME_TOTALS, AgentConfig, AgentStatus
from liubai.collector.agentstate import StateError, load_state
from liubai.collector.batchsplit import fact_count, halve
from liubai.collector.spool import Spool, SpooledBatch, SpoolFull, atomic_write
from liubai.lineage.join import add_record
from liubai.lineage.model import GraphBatch, RejectedRecord
from liubai.lineage.urls import redact_url
from liubai.lineage.wire import AgentStats, WireError, decode_batch, encode_batch

__all__ = ["Agent"]

log = logging.getLogger("liubai.agent")

_RAW_KEEP = 2000  # characters of an oversized record's text kept in its reject


class Agent:
    """Ships every source's units as batches: to the API, else the spool, else (refused) dead letters."""

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
        self._api = IngestClient(config.server, config.token, config.request_timeout_s, client)
        self._exhausted: set[str] = set()
        self._full_warned = False
        self._replayed_since_empty = 0  # spooled batches delivered since the spool was last empty
        self._status_written: dict[str, Any] | None = None  # what status.json holds (as last written here)

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
            for name in LIFETIME_TOTALS:
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
        now = asdict(self.status)  # a copy: later changes to the status do not reach it
        if now == self._status_written:
            return  # the loop saves every poll; an idle agent need not encode, write and fsync the same
        with contextlib.suppress(OSError):  # status is informative; a full disk must not stop shipping
            atomic_write(self._status_path, json.dumps(now, indent=1).encode())
            self._status_written = now

    def _stats(self) -> AgentStats:
        return AgentStats(
            name=self.cfg.name,
            spool_bytes=self.spool.size_bytes,
            spooled_batches=len(self.spool),
            dropped_batches=self.status.dropped_batches,
        )

    def _learn_limit(self, refused: Refused, size: int) -> TooLarge:
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
        return TooLarge(limit, stated)

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
                answer = self._api.post(data, window_s) if window_s else self._api.post_once(data)
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
                self._replayed_since_empty += 1
            self.spool.remove(entry)
            self._save_status()
        if self._replayed_since_empty:  # the counterpart of the one "spooling batches" line
            log.info(
                "API %s is back: %d spooled batches delivered, spool empty",
                redact_url(self.cfg.server),
                self._replayed_since_empty,
            )
            self._replayed_since_empty = 0
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
                self._count_answer(
                    self._api.post(piece, window_s) if window_s else self._api.post_once(piece)
                )
            except Unavailable as err:
                self.status.api_up = False
                log.debug("API still unavailable: %s", err)
                return False
            except Refused as err:
                if not self._dead_letter(batch_id, piece, decoded.source, err):
                    return False
        return True

    def _pieces(self, batch: GraphBatch, source: str, too_large: TooLarge) -> Iterator[tuple[str, bytes]]:
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
        be dropped. ``TooLarge`` when the API refused it as too large."""
        if self.status.api_up and len(self.spool) == 0:
            try:
                self._count_answer(self._api.post(data, self.cfg.send_deadline_s))
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
        self, source: str, where: str, size: int, text: str, too_large: TooLarge
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
                raise TooLarge(limit, True)
            delivered = self._deliver(batch_id, data, source.label)
        except TooLarge as too_large:
            return self._ship_smaller(source, units, len(data), too_large, batch_id, data)
        if delivered:
            self._advance(source.key, units)
        return delivered

    def _ship_smaller(
        self, source: Source, units: list[Unit], size: int, too_large: TooLarge, batch_id: str, data: bytes
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
        self._api.close()
        for source in self.sources:
            source.close()
