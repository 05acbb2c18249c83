"""Alibaba Cloud SLS as a record source, on the real ``aliyun-log-python-sdk``.

Two modes:

* **shard consumption** (``SlsCollector.consume``): ListShards, GetCursor, PullLogs per shard; a pull (or,
  while the store falls behind, a few pulls of one shard) becomes one graph batch that carries the shard's
  next cursor as its checkpoint, so the checkpoint moves only when the store accepted the data (a crash
  re-reads, never loses, never doubles). Shards that appear
  later (split/merge) are picked up and read from their beginning; read-only parents are drained.
* **backfill by query** (``SlsCollector.backfill``): GetLogs over a time window, paged until complete.

Record ids: ``<shard>:<pull cursor>:<index>`` for consumed logs (a re-read starts at a stored checkpoint,
the same pull boundary, so it yields the same ids) and a content hash for query results.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from aliyun.log import LogClient, LogException
from aliyun.log.proto import LogGroupListRaw
from lz4.block import LZ4BlockError
from pydantic import BaseModel, SecretStr, ValidationError, field_validator
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_delay,
    wait_exponential_jitter,
)

from liubai.collector.ingest import BatchPace
from liubai.collector.logfields import FieldMap, log_mapper, stringify
from liubai.collector.offload import Emit, for_the_writer, run_in_subprocess
from liubai.collector.writer import BatchWriter
from liubai.lineage.errors import ErrorCode, LiubaiError
from liubai.lineage.join import record_joiner
from liubai.lineage.model import GraphBatch, RejectedRecord
from liubai.lineage.provenance import SLS_WRITER
from liubai.lineage.records import LogRecord, iso_utc
from liubai.lineage.store.base import LineageStore, StoreError, row_preparer, write_batch
from liubai.lineage.text import json_text
from liubai.lineage.urls import has_user_info, redact_url

__all__ = [
    "ConsumeStats",
    "RetryPolicy",
    "SlsCollector",
    "SlsCredentials",
    "SlsError",
    "is_retryable",
    "make_client",
    "sls_source",
]

log = logging.getLogger(__name__)

ENV_KEY_ID = "ALIBABA_CLOUD_ACCESS_KEY_ID"
ENV_KEY_SECRET = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"
ENV_TOKEN = "ALIBABA_CLOUD_SECURITY_TOKEN"
_MAX_PULL_GROUPS = 1000  # log groups one PullLogs returns at most
THROTTLE_CODES = frozenset(
    {
        "ReadQuotaExceed",
        "WriteQuotaExceed",
        "ShardReadQuotaExceed",
        "ShardWriteQuotaExceed",
        "ExceedQuota",
        "QuotaExceed",
        "ServerBusy",
        "RequestTimeout",
        "InternalServerError",
    }
)
TRANSIENT_CODES = frozenset({"LogRequestError", "BadResponse", "DecompressError"})
QUERY_PAGE = 100  # the SDK's own page size for GetLogs


class SlsError(LiubaiError, RuntimeError):
    """SLS refused or kept failing; the message is one line a user can act on (never a secret).
    ``sls_code`` is the error code SLS answered with, if any."""

    code = ErrorCode.SOURCE_FAILED

    def __init__(self, message: str, sls_code: str | None = None) -> None:
        super().__init__(message)
        self.sls_code = sls_code

    def __reduce__(self) -> tuple[type[SlsError], tuple[str, str | None]]:
        return (SlsError, (str(self), self.sls_code))  # the code survives the trip from a reader process


class SlsCredentials(BaseModel):
    """An AccessKey pair (optionally an STS token). Secrets are ``SecretStr``: they never print."""

    access_key_id: str
    access_key_secret: SecretStr
    security_token: SecretStr | None = None

    @field_validator("access_key_id", "access_key_secret", "security_token")
    @classmethod
    def _one_token(cls, value: str | SecretStr | None) -> str | SecretStr | None:
        """Refused up front: a key with a line break or other control character can never sign a request
        (the SDK would retry it until the deadline and echo it in the error)."""
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if text is not None and (not text.isascii() or not text.isprintable() or text != text.strip()):
            raise ValueError("contains a line break, space, control or non-ASCII character")
        return value

    @classmethod
    def load(cls, config_file: str | Path | None = None) -> SlsCredentials:
        """From ``config_file`` (YAML/JSON with ``access_key_id``/``access_key_secret``/``security_token``,
        or the ``ALIBABA_CLOUD_*`` names) when given, else from the environment."""
        if config_file is not None:
            path = Path(config_file)
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except UnicodeDecodeError:
                raise SlsError(f"cannot read credentials file {path}: not UTF-8 text") from None
            except (OSError, yaml.YAMLError) as exc:
                raise SlsError(f"cannot read credentials file {path}: {exc.__class__.__name__}") from None
            if not isinstance(data, dict):
                raise SlsError(f"credentials file {path} must be a mapping")
            data = {
                "access_key_id": data.get("access_key_id", data.get(ENV_KEY_ID)),
                "access_key_secret": data.get("access_key_secret", data.get(ENV_KEY_SECRET)),
                "security_token": data.get("security_token", data.get(ENV_TOKEN)),
            }
            where = f"credentials file {path}"
        else:
            data = {
                "access_key_id": os.environ.get(ENV_KEY_ID),
                "access_key_secret": os.environ.get(ENV_KEY_SECRET),
                "security_token": os.environ.get(ENV_TOKEN) or None,
            }
            where = f"environment ({ENV_KEY_ID}, {ENV_KEY_SECRET})"
        if not data["access_key_id"] or not data["access_key_secret"]:
            raise SlsError(f"no SLS AccessKey in {where}")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:  # names the field and the rule broken, never the value
            fields = "; ".join(f"{e['loc'][0]} {e['msg'].removeprefix('Value error, ')}" for e in exc.errors())
            raise SlsError(f"bad SLS credentials in {where}: {fields}") from None


class _SdkAnswer(Exception):
    """Carries the SDK's ``LogException`` past the retry loop inside ``LogClient._send``."""

    def __init__(self, error: LogException) -> None:
        super().__init__(str(error))
        self.error = error


class OneTryLogClient(LogClient):
    """A ``LogClient`` that sends each request once. The SDK retries 5xx answers and failed connections
    10 times (sleeping 1 s between) inside ``_send``, with no setting to turn that off, so a call could
    take minutes before ``RetryPolicy``'s deadline is even looked at. An error from the one request is
    handed past that loop and re-raised unchanged, leaving backoff and the deadline to ``RetryPolicy``;
    signing, headers and answer parsing stay the SDK's own. (The loop's other branch, refreshing
    credentials, only runs with ``set_credentials_auto_refresher``, which liubai does not use.)"""

    def _sendRequest(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super()._sendRequest(*args, **kwargs)  # type: ignore[misc]  # private, absent from stubs
        except LogException as exc:
            raise _SdkAnswer(exc) from None

    def _send(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super()._send(*args, **kwargs)  # type: ignore[misc]  # private, absent from stubs
        except _SdkAnswer as answer:
            raise answer.error from None


def _check_endpoint(endpoint: str) -> None:
    """What the SDK's endpoint parser would crash on (or silently misread), as an ``SlsError``."""
    shown = redact_url(endpoint)
    text = endpoint.strip()
    if has_user_info(text):  # checked first: a parser's message about such a URL may quote the password
        raise SlsError(f"bad SLS endpoint {shown!r}: no user or password in it; credentials come from "
                       "--credentials or the environment")
    try:
        parts = urlsplit(text if "://" in text else f"http://{text}")
        port = parts.port
    except ValueError as exc:
        raise SlsError(f"bad SLS endpoint {shown!r}: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise SlsError(f"bad SLS endpoint {shown!r}: the scheme must be http or https")
    if parts.username is not None or parts.password is not None:
        raise SlsError(f"bad SLS endpoint {shown!r}: no user or password in it; credentials come from "
                       "--credentials or the environment")
    if not parts.hostname or "[" in parts.netloc:
        raise SlsError(f"bad SLS endpoint {shown!r}: give a host name or IPv4 address (and optionally :port)")
    if port == 0:
        raise SlsError(f"bad SLS endpoint {shown!r}: port 0")


def make_client(endpoint: str, credentials: SlsCredentials, *, timeout: float = 30.0) -> LogClient:
    """A ``LogClient`` for ``endpoint`` (``cn-hangzhou.log.aliyuncs.com``, ``https://...`` or ``ip:port``)
    that sends each request once (see ``OneTryLogClient``); a malformed endpoint is an ``SlsError``."""
    _check_endpoint(endpoint)
    token = credentials.security_token.get_secret_value() if credentials.security_token else None
    try:
        client = OneTryLogClient(
            endpoint, credentials.access_key_id, credentials.access_key_secret.get_secret_value(), token
        )
    except ValueError as exc:
        raise SlsError(f"bad SLS endpoint {redact_url(endpoint)!r}: {exc}") from None
    client.timeout = timeout  # type: ignore[assignment]  # requests takes float seconds
    # The SDK tests for an IP endpoint before it strips the port, so "10.0.0.5:80" would be addressed as
    # "<project>.10.0.0.5", which no resolver knows. Address an IP endpoint directly (Host still names
    # the project).
    try:
        ipaddress.ip_address(getattr(client, "_logHost", ""))
    except ValueError:
        pass
    else:
        setattr(client, "_isRowIp", True)  # noqa: B010 - private SDK attribute, absent from its stubs
    return client


def sls_source(project: str, logstore: str) -> str:
    return f"sls:{project}/{logstore}"


def is_retryable(exc: BaseException) -> bool:
    """5xx, throttling, timeouts, dropped connections and mangled answers are worth another try."""
    if isinstance(exc, LogException):
        status = getattr(exc, "resp_status", 200) or 200
        code = exc.get_error_code()
        return status >= 500 or code in THROTTLE_CODES or code in TRANSIENT_CODES
    if isinstance(exc, StoreError):
        return exc.retryable
    # The SDK lets decompression and protobuf errors of a truncated or garbled answer escape unwrapped.
    return _garbled(exc) or isinstance(exc, (ConnectionError, TimeoutError))


def _garbled(exc: BaseException) -> bool:
    """A PullLogs body that does not decompress or decode: mangled on the way, worth fetching again."""
    return isinstance(exc, LZ4BlockError) or type(exc).__module__.split(".")[0] in ("lz4", "google")


_OS_REASON = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")


def _first_line(text: str) -> str:
    lines = text.splitlines()
    return lines[0][:200] if lines else ""


def _describe(exc: BaseException) -> str:
    """One line: the SLS error code and HTTP status of an answer, or why there was no answer."""
    if isinstance(exc, LogException):
        code, message = exc.get_error_code(), exc.get_error_message() or ""
        if code == "LogRequestError" and not exc.get_request_id() and not getattr(exc, "resp_header", ""):
            # raised by the SDK when the request got no HTTP answer at all (its status defaults to 200)
            reason = _OS_REASON.search(message)
            if reason is not None:
                return f"no answer: {reason.group(1).strip()}"
            if "timed out" in message.lower() or "timeout" in message.lower():
                return "no answer: timed out"
            return f"no answer: {_first_line(message)}"
        if code == "BadResponse":
            return f"malformed reply (HTTP {exc.get_resp_status()}): not the JSON SLS answers with"
        return f"{code} (HTTP {exc.get_resp_status()}): {_first_line(message)}"
    if _garbled(exc):
        return f"malformed reply: body does not decode ({type(exc).__name__}: {_first_line(str(exc))})"
    return f"{type(exc).__name__}: {_first_line(str(exc))}"


class MalformedReply(Exception):
    """An SLS answer (HTTP 200) whose content is not what the API returns."""


def _parsed(fn: Callable[[], Any], parse: Callable[[Any], Any]) -> Any:
    """``parse(fn())`` for an SDK call, with errors from reading its answer as one ``MalformedReply``: the
    SDK reads fields out of the decoded JSON without looking at its shape."""
    try:
        return parse(fn())
    except LogException:
        raise
    except (TypeError, KeyError, IndexError, AttributeError, ValueError) as exc:
        raise MalformedReply(f"malformed reply: {_first_line(str(exc)) or type(exc).__name__}") from None


def _cursor(resp: Any) -> str:
    cursor = resp.get_cursor()
    if not isinstance(cursor, str) or not cursor:
        raise ValueError(f"no cursor in it: {str(cursor)[:80]}")
    return cursor


def _shard_ids(resp: Any) -> list[tuple[int, bool]]:
    """(shard id, read-only) per entry of a ListShards answer; ``ValueError`` naming a bad entry."""
    listed = resp.get_shards_info()
    if not isinstance(listed, list):
        raise ValueError(f"expected a list of shards, got {type(listed).__name__}")
    out = []
    for i, info in enumerate(listed):
        shard = info.get("shardID") if isinstance(info, dict) else None
        if type(shard) is not int:
            raise ValueError(f"shard entry #{i} has no integer shardID: {str(info)[:80]}")
        out.append((shard, str(info.get("status", "readwrite")).lower() == "readonly"))
    return out


@dataclass(slots=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded by a deadline per call."""

    deadline: float = 120.0
    initial: float = 0.2
    max_wait: float = 10.0

    def call(self, what: str, fn: Callable[[], Any]) -> Any:
        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "%s failed (attempt %d), retrying: %s",
                what,
                state.attempt_number,
                _describe(exc) if exc else "",
            )

        retrying = Retrying(
            retry=retry_if_exception(is_retryable),
            wait=wait_exponential_jitter(multiplier=self.initial, max=self.max_wait, jitter=self.initial),
            stop=stop_after_delay(self.deadline),
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            return retrying(fn)
        except (StoreError, SlsError):
            raise
        except MalformedReply as exc:
            raise SlsError(f"{what}: {exc}", "MalformedReply") from None
        except Exception as exc:
            if isinstance(exc, LogException):
                raise SlsError(f"{what}: {_describe(exc)}", exc.get_error_code()) from None
            if is_retryable(exc):
                raise SlsError(f"{what}: {_describe(exc)}") from None
            raise


@dataclass(slots=True)
class ConsumeStats:
    records: int = 0
    rejected: int = 0
    batches: int = 0
    pulls: int = 0
    shards: set[int] = field(default_factory=set)
    finished_shards: set[int] = field(default_factory=set)


@dataclass(slots=True)
class _ShardState:
    cursor: str
    readonly: bool
    drained: bool = False


class SlsCollector:
    """Reads one logstore into a store. ``id_mode="content"`` gives consumed logs content-hash ids too
    (the same ids a JSONL/OTLP copy of the same lines gets under the same ``source``)."""

    def __init__(
        self,
        client: LogClient,
        project: str,
        logstore: str,
        store: LineageStore,
        *,
        source: str | None = None,
        fieldmap: FieldMap | None = None,
        retry: RetryPolicy | None = None,
        pull_count: int = 100,
        id_mode: Literal["cursor", "content"] = "cursor",
        progress: Callable[[ConsumeStats], None] | None = None,
        on_reject: Callable[[RejectedRecord], None] | None = None,
        handed_over: bool = False,
        pace: BatchPace | None = None,
    ) -> None:
        """``handed_over``: the "store" hands batches to another process that stores them (a reader process):
        each goes over in this thread and once, not on a writer thread with retries. ``pace``: store as many pulls
        of a shard per batch as its factor (a reader process raises it while the store falls behind)."""
        self.client = client
        self.project = project
        self.logstore = logstore
        self.store = store
        self.source = source or sls_source(project, logstore)
        self.checkpoint_source = sls_source(project, logstore)
        self.fieldmap = fieldmap or FieldMap()
        self.retry = retry or RetryPolicy()
        self.pull_count = pull_count
        self.id_mode = id_mode
        self.progress = progress
        self.on_reject = on_reject
        self.stats = ConsumeStats()
        self._shards: dict[int, _ShardState] = {}
        self._writer: BatchWriter[GraphBatch, None] | None = None
        self._handed_over = handed_over
        self.pace = pace

    # ------------------------------------------------------------------ shard consumption
    def consume(
        self,
        *,
        start: str = "begin",
        follow: bool = False,
        poll_interval: float = 1.0,
        shard_refresh: float = 10.0,
        stop: threading.Event | None = None,
        offload: bool = False,
    ) -> ConsumeStats:
        """Read every shard up to its end (``follow``: then keep polling until ``stop`` is set).

        ``start`` (``begin``, ``end`` or a unix time) applies to shards with no checkpoint on the first
        run; later-found shards, and any shard of a logstore already being followed, start at ``begin``.
        ``offload``: pull, map and join in a child process (see ``_offloaded``).
        """
        if offload:
            options = {"start": start, "follow": follow, "poll_interval": poll_interval, "shard_refresh": shard_refresh}
            return self._offloaded("consume", options, stop)
        stop = stop or threading.Event()
        with self._writing():
            resumed = bool(self.store.checkpoints(self.checkpoint_source))
            self._refresh_shards(start if not resumed else "begin")
            last_refresh = time.monotonic()
            while not stop.is_set():
                moved = False
                for shard_id, state in list(self._shards.items()):
                    if stop.is_set():
                        break
                    if not state.drained:
                        moved |= self._drain(shard_id, state, stop)
                if time.monotonic() - last_refresh >= shard_refresh or not moved:
                    before = set(self._shards)
                    self._refresh_shards("begin")
                    last_refresh = time.monotonic()
                    if set(self._shards) != before:
                        continue
                if not follow and not moved:
                    break
                if not moved:
                    self._drain_writes()
                    stop.wait(poll_interval)
        return self.stats

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Batches of this run are written on a background thread while the next pull is read."""
        with BatchWriter(self._store_batch, self._stored, in_flight=0 if self._handed_over else 1) as writer:
            self._writer = writer
            try:
                yield
            finally:
                self._writer = None

    def _drain_writes(self) -> None:
        if self._writer is not None:
            self._writer.drain()

    def _refresh_shards(self, start: str) -> None:
        self._drain_writes()  # checkpoints read below must include every batch already pulled
        listed = self.retry.call(
            f"ListShards {self.project}/{self.logstore}",
            partial(_parsed, partial(self.client.list_shards, self.project, self.logstore), _shard_ids),
        )
        listed_ids = {shard_id for shard_id, _ in listed}
        for gone in set(self._shards) - listed_ids:  # expired read-only shards disappear from the listing
            del self._shards[gone]
        for shard_id, readonly in listed:
            state = self._shards.get(shard_id)
            if state is not None:
                if readonly and not state.readonly:
                    state.readonly, state.drained = True, False  # split since: drain the rest once more
                continue
            key = f"shard:{shard_id}"
            cursor = self.store.get_checkpoint(self.checkpoint_source, key)
            if cursor is None:
                get = partial(self.client.get_cursor, self.project, self.logstore, shard_id, start)
                cursor = self.retry.call(f"GetCursor shard {shard_id}", partial(_parsed, get, _cursor))
            self._shards[shard_id] = _ShardState(cursor, readonly)
            self.stats.shards.add(shard_id)

    def _drain(self, shard_id: int, state: _ShardState, stop: threading.Event) -> bool:
        """Pull until the shard has nothing more; True if anything was read. A batch holds one pull, or
        the pace's factor of them while the store falls behind; it carries the cursor after its last."""
        moved = False
        batch, pulls, cursor = GraphBatch(), 0, state.cursor
        while not stop.is_set():
            try:
                resp = self.retry.call(f"PullLogs shard {shard_id}", partial(self._pull, shard_id, cursor))
            except SlsError as exc:
                if exc.sls_code != "ShardNotExist":
                    raise
                log.warning("shard %d no longer exists (expired after a split or merge)", shard_id)
                del self._shards[shard_id]
                break
            self.stats.pulls += 1
            next_cursor = resp.get_next_cursor()
            if resp.get_loggroup_count() == 0 or next_cursor == cursor:
                if state.readonly:
                    state.drained = True
                    self.stats.finished_shards.add(shard_id)
                break
            self._add_pull(batch, shard_id, cursor, resp)
            batch.checkpoints[(self.checkpoint_source, f"shard:{shard_id}")] = next_cursor
            cursor, moved, pulls = next_cursor, True, pulls + 1
            if pulls >= self._pulls_per_batch():
                self._upsert(batch)
                batch, pulls, state.cursor = GraphBatch(), 0, cursor  # past what is handed over, not beyond
        if pulls:
            self._upsert(batch)
            state.cursor = cursor
        return moved

    def _pulls_per_batch(self) -> int:
        """The pace's factor, as long as a batch stays under what one pull may return at most."""
        return 1 if self.pace is None else max(1, min(self.pace.factor, _MAX_PULL_GROUPS // self.pull_count))

    def _pull(self, shard_id: int, cursor: str) -> Any:  # a mangled body raises (retryable) from here
        resp = self.client.pull_logs(self.project, self.logstore, shard_id, cursor, count=self.pull_count)
        resp.loggroup_list  # noqa: B018 - parse inside the retry so a mangled body is re-fetched
        return resp

    def _add_pull(self, batch: GraphBatch, shard_id: int, cursor: str, resp: Any) -> None:
        """The lines of one pull into ``batch``. In cursor mode a line's id is the shard, the cursor the
        pull started at and its index in the pull: the same with the same ``pull_count``, however the
        pulls are batched."""
        mapper, join = log_mapper(self.fieldmap), record_joiner(LogRecord)
        at = f"{self.project}/{self.logstore} shard {shard_id} cursor {cursor} #"
        by_cursor = self.id_mode == "cursor"
        times: dict[tuple[int, int], str] = {}  # the lines of a log group mostly share one time
        index = 0
        groups = resp.loggroup_list
        # The SDK parses a pull its protobuf runtime refuses (text that is not UTF-8) as all bytes; upb
        # parses it, handing over as bytes only the strings that are not UTF-8.
        as_bytes = isinstance(groups, LogGroupListRaw)
        for group in groups.LogGroups:
            for entry in group.Logs:
                if as_bytes:
                    fields = {stringify(c.Key): stringify(c.Value) for c in entry.Contents}
                else:
                    fields = {c.Key: c.Value for c in entry.Contents}
                stamp = (entry.Time, entry.Time_ns if entry.HasField("Time_ns") else 0)
                when = times.get(stamp)
                if when is None:
                    when = times[stamp] = iso_utc(stamp[0] + stamp[1] / 1e9)
                rid = f"{shard_id}:{cursor}:{index}" if by_cursor else None
                try:
                    record, rejected = mapper.map(fields, self.source, f"{at}{index}", rid, when)
                except TypeError:  # a key that is not UTF-8, as bytes (the mapper's ``stringify`` takes values)
                    fields = {stringify(k): stringify(v) for k, v in fields.items()}
                    record, rejected = mapper.map(fields, self.source, f"{at}{index}", rid, when)
                self._add(batch, join, record, rejected)
                index += 1

    def _add(
        self,
        batch: GraphBatch,
        join: Callable[[GraphBatch, LogRecord], None],
        record: LogRecord,
        rejected: list[RejectedRecord],
    ) -> None:
        before = len(batch.rejected)
        join(batch, record)
        batch.rejected.extend(rejected)
        self.stats.records += 1
        if len(batch.rejected) > before:
            self.stats.rejected += len(batch.rejected) - before
            if self.on_reject is not None:
                for r in batch.rejected[before:]:
                    self.on_reject(r)

    def _upsert(self, batch: GraphBatch) -> None:
        assert self._writer is not None, "batches are only stored inside _writing()"
        self._writer.submit(batch)

    def _store_batch(self, batch: GraphBatch, rows: Any = None) -> None:
        """``batch`` into the store, or ``rows`` a reader process prepared for it (see ``RowStore``). A store
        that is briefly down is retried; a hand-over is not (a pipe that broke stays broken)."""
        batch.writer = SLS_WRITER
        if self._handed_over:
            self.store.upsert(batch)
            return
        self.retry.call(f"store {self.store.url}", partial(write_batch, self.store, batch, rows))

    def _stored(self, _: GraphBatch, __: None) -> None:
        self.stats.batches += 1
        if self.progress is not None:
            self.progress(self.stats)

    # ------------------------------------------------------------------ in a reader process
    def _offloaded(
        self, method: Literal["consume", "backfill"], options: dict[str, Any], stop: threading.Event | None
    ) -> ConsumeStats:
        """``method(**options)`` with pulling, decoding, mapping and joining in a child process and only the
        store writes here, so the two run on different cores (one process tops out well below the
        store's rate). Each batch still carries its shard checkpoint and is stored in order; a batch the
        child pulled but this process had not stored when stopped is simply pulled again next time."""
        reader = _Reader(
            client=self.client,
            project=self.project,
            logstore=self.logstore,
            source=self.source,
            fieldmap=self.fieldmap,
            retry=self.retry,
            pull_count=self.pull_count,
            id_mode=self.id_mode,
            checkpoints=self.store.checkpoints(self.checkpoint_source),
            method=method,
            options=options,
            prepare=row_preparer(self.store),
        )
        with closing(run_in_subprocess(reader, stop=stop, passthrough=(SlsError,))) as batches:
            for batch, (seen, rows, last) in batches:
                self.stats = replace(seen, batches=self.stats.batches)  # batches: those stored here
                if last:  # the final counts come alone, after the last batch
                    continue
                self._store_batch(batch, rows)
                if self.on_reject is not None:
                    for r in batch.rejected:
                        self.on_reject(r)
                self._stored(batch, None)
        return self.stats

    # ------------------------------------------------------------------ backfill by query
    def backfill(
        self, query: str, from_time: int, to_time: int, *, page_size: int = QUERY_PAGE, offload: bool = False
    ) -> ConsumeStats:
        """Every log matching ``query`` with ``from_time <= time < to_time`` (unix seconds), page by page."""
        if offload:
            options = {"query": query, "from_time": from_time, "to_time": to_time, "page_size": page_size}
            return self._offloaded("backfill", options, None)
        offset = 0
        mapper, join = log_mapper(self.fieldmap), record_joiner(LogRecord)
        with self._writing():
            for page in self._pages(query, from_time, to_time, page_size):
                batch = GraphBatch()
                for i, (fields, when) in enumerate(page):
                    where = f"{self.project}/{self.logstore} query {query!r} #{offset + i}"
                    record, rejected = mapper.map(fields, self.source, where, None, when)
                    self._add(batch, join, record, rejected)
                offset += len(page)
                self._upsert(batch)
        return self.stats

    def _pages(
        self, query: str, from_time: int, to_time: int, page_size: int
    ) -> Iterator[list[tuple[dict[str, str], str]]]:
        """Pages of (fields, time) per log."""
        offset = 0
        while True:

            def get(off: int = offset) -> Any:
                resp = self.client.get_log(
                    self.project,
                    self.logstore,
                    from_time,
                    to_time,
                    query=query or None,
                    offset=off,
                    size=page_size,
                )
                if not resp.is_completed():
                    raise LogException("RequestTimeout", "query did not complete", resp_status=503)
                return resp

            what = f"GetLogs {self.project}/{self.logstore}"
            logs = self.retry.call(what, partial(_parsed, get, _queried_logs))
            if logs:
                yield logs
            if len(logs) < page_size:
                return
            offset += len(logs)


def _queried_logs(resp: Any) -> list[tuple[dict[str, str], str]]:
    """(fields, ISO time) per log of a GetLogs answer, as text that can be stored (``json_text``)."""
    out = []
    for entry in resp.get_logs():
        contents = entry.get_contents()
        if not isinstance(contents, dict):
            raise ValueError(f"a log is not an object: {str(contents)[:80]}")
        fields = {json_text(str(k)): json_text(v) if isinstance(v, str) else v for k, v in contents.items()}
        out.append((fields, iso_utc(int(entry.get_time()))))
    return out


class _Handoff:
    """The reader process's stand-in for the store: each batch goes to the parent with the counts so far,
    and ``finish`` sends the final counts; checkpoint reads see the parent's at start-up plus those of
    every batch handed over since."""

    stats: ConsumeStats  # the collector's own, once it exists

    def __init__(
        self,
        emit: Emit,
        checkpoints: dict[tuple[str, str], str],
        prepare: Callable[[GraphBatch], Any] | None,
    ) -> None:
        self._emit = emit
        self._checkpoints = dict(checkpoints)
        self._prepare = prepare
        self.pace = BatchPace()

    def upsert(self, batch: GraphBatch) -> None:
        sent, rows = for_the_writer(batch, self._prepare)
        self.pace.hand_over(partial(self._emit, sent, (self._seen(), rows, False)))
        self._checkpoints.update(batch.checkpoints)

    def finish(self) -> None:
        """The final counts (pulls, finished shards), which may change after the last batch."""
        self._emit(GraphBatch(), (self._seen(), None, True))

    def _seen(self) -> ConsumeStats:
        s = self.stats
        return replace(s, shards=set(s.shards), finished_shards=set(s.finished_shards))

    def checkpoints(self, source: str | None = None) -> dict[tuple[str, str], str]:
        return {k: v for k, v in self._checkpoints.items() if source is None or k[0] == source}

    def get_checkpoint(self, source: str, key: str) -> str | None:
        return self._checkpoints.get((source, key))


@dataclass(frozen=True, slots=True)
class _Reader:
    """Everything a reader process needs to run one ``SlsCollector`` method (picklable: no store, no
    callbacks)."""

    client: LogClient
    project: str
    logstore: str
    source: str
    fieldmap: FieldMap
    retry: RetryPolicy
    pull_count: int
    id_mode: Literal["cursor", "content"]
    checkpoints: dict[tuple[str, str], str]
    method: Literal["consume", "backfill"]
    options: dict[str, Any]
    prepare: Callable[[GraphBatch], Any] | None  # a ``RowStore``'s ``prepare_rows``

    def __call__(self, emit: Emit) -> None:
        handoff = _Handoff(emit, self.checkpoints, self.prepare)
        collector = SlsCollector(
            self.client,
            self.project,
            self.logstore,
            handoff,  # type: ignore[arg-type]  # only upsert and the checkpoint reads are used
            source=self.source,
            fieldmap=self.fieldmap,
            retry=self.retry,
            pull_count=self.pull_count,
            id_mode=self.id_mode,
            handed_over=True,
            pace=handoff.pace,
        )
        handoff.stats = collector.stats
        getattr(collector, self.method)(**self.options)
        handoff.finish()
