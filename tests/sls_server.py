"""A local SLS-compatible HTTP server: the REST subset the collector uses, for the real SDK to talk to.

Speaks ListShards, GetCursor, PullLogs (protobuf ``LogGroupList``, lz4 when ``Accept-Encoding`` asks),
GetLogs (v2 ``POST .../logs`` and v1 ``GET ...?type=log``) and the consumer-group calls (create, update,
list, delete, heartbeat with the server-side shard assignment, checkpoint get/update: see
``_ConsumerGroup``), checks the SDK's ``Host: <project>.<endpoint>``
header and its v1 HMAC-SHA1 signature, can split a shard, and injects faults: 500, 403 throttling, a
dropped connection, a truncated body, a body that is not what the API answers (``garbage``: not JSON, or
for PullLogs bytes that claim to be lz4 and are not; ``malformed``: JSON of the wrong shape), a value
with a lone surrogate escape in GetLogs (``surrogate``). Run standalone for manual use:
``python -m tests.sls_server --port 9876`` (empty project ``demo``, logstore ``app`` with two shards).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import lz4.block
from aliyun.log.log_logs_raw_pb2 import LogGroupRaw  # type: ignore[attr-defined]  # generated protobuf module

__all__ = ["Fault", "SlsServer"]

HASH_MAX = 1 << 128
FAULT_KINDS = ("500", "throttle", "drop", "truncate", "delay", "garbage", "malformed", "surrogate")
# what a "malformed" fault answers per API: valid JSON, wrong shape
MALFORMED: dict[str, Any] = {"ListShards": [{"shardID": "x"}, 5, None], "GetCursor": "abc", "GetLogs": "abc"}


def _hash_key(n: int) -> str:
    return f"{n:032x}"


def _encode_cursor(offset: int) -> str:
    return base64.b64encode(str(offset).encode()).decode()


def _decode_cursor(cursor: str) -> int:
    try:
        return int(base64.b64decode(cursor, validate=True).decode())
    except (ValueError, UnicodeDecodeError):
        raise _ApiError(400, "InvalidCursor", f"cursor {cursor!r} is invalid") from None


class _ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(slots=True)
class Fault:
    """``kind`` (one of FAULT_KINDS) for the next ``times`` requests of ``api`` ("*" = any)."""

    api: str
    kind: str
    times: int = 1
    seconds: float = 0.0


@dataclass(slots=True)
class _Group:
    time: int
    encoded: bytes  # LogGroupList field 1 entry: tag + length + LogGroup bytes
    logs: list[dict[str, str]]
    source: str
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class _Consumer:
    last_beat: float  # time.monotonic() of its last heartbeat
    reported: set[int]  # the shards its last heartbeat said it still holds


@dataclass(slots=True)
class _ConsumerGroup:
    """A consumer group as SLS runs it. A heartbeat names the shards the consumer still holds and is
    answered with the shards assigned to it. A consumer silent for ``timeout`` seconds is dropped and its
    shards are free. Shards are spread evenly over the live consumers; a shard taken from a consumer (to
    rebalance) goes to another only once the holder's heartbeat stops naming it, so two consumers never
    hold one shard at a time. Checkpoints are per shard, kept with the consumer that wrote them."""

    name: str
    timeout: int
    in_order: bool
    consumers: dict[str, _Consumer] = field(default_factory=dict)
    owners: dict[int, str] = field(default_factory=dict)  # shard -> consumer holding or releasing it
    releasing: set[int] = field(default_factory=set)  # shards taken from their owner, not yet let go
    checkpoints: dict[int, tuple[str, int, str]] = field(default_factory=dict)  # cursor, µs, consumer

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "timeout": self.timeout, "order": self.in_order}

    def heartbeat(self, consumer: str, reported: set[int], shards: list[int], now: float) -> list[int]:
        for name, c in list(self.consumers.items()):
            if name != consumer and now - c.last_beat > self.timeout:
                del self.consumers[name]
        self.consumers[consumer] = _Consumer(now, reported)
        for shard, owner in list(self.owners.items()):
            gone = owner not in self.consumers or shard not in shards
            released = (
                shard in self.releasing
                and shard not in self.consumers.get(owner, _Consumer(0, set())).reported
            )
            if gone or released:
                del self.owners[shard]
                self.releasing.discard(shard)
        self._rebalance(shards)
        return sorted(s for s, o in self.owners.items() if o == consumer and s not in self.releasing)

    def _rebalance(self, shards: list[int]) -> None:
        held: dict[str, list[int]] = {name: [] for name in self.consumers}
        for shard, owner in sorted(self.owners.items()):
            if shard not in self.releasing:
                held[owner].append(shard)
        base, extra = divmod(len(shards), len(held))
        # the busiest keep the extra shards: fewest moves
        ranked = sorted(held, key=lambda name: (-len(held[name]), name))
        target = {name: base + (1 if i < extra else 0) for i, name in enumerate(ranked)}
        for name, mine in held.items():
            for shard in mine[target[name] :]:
                self.releasing.add(shard)
            del mine[target[name] :]
        free = [s for s in shards if s not in self.owners]
        for shard in free:
            name = max(held, key=lambda n: (target[n] - len(held[n]), n))
            if target[name] <= len(held[name]):
                break
            held[name].append(shard)
            self.owners[shard] = name


@dataclass(slots=True)
class _Shard:
    shard_id: int
    begin_key: int
    end_key: int
    create_time: int
    readonly: bool = False
    groups: list[_Group] = field(default_factory=list)

    def info(self) -> dict[str, Any]:
        return {
            "shardID": self.shard_id,
            "status": "readonly" if self.readonly else "readwrite",
            "inclusiveBeginKey": _hash_key(self.begin_key),
            "exclusiveEndKey": _hash_key(self.end_key),
            "createTime": self.create_time,
        }


def _text(value: str | bytes) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _stand_in(key: str | bytes) -> bytes:
    return bytes(b if b < 0x80 else 0x21 for b in key) if isinstance(key, bytes) else key.encode()


def _bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


class SlsServer:
    """In-process SLS peer on 127.0.0.1; use as a context manager or call start()/stop().

    ``access_key_id``/``access_key_secret`` set the only credentials it accepts (None: accept unsigned).
    """

    def __init__(
        self,
        project: str = "demo",
        access_key_id: str | None = "test-key-id",
        access_key_secret: str | None = "test-key-secret",
        port: int = 0,
        security_token: str | None = None,
    ) -> None:
        self.project = project
        self.security_token = security_token
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self._lock = threading.RLock()
        self._stores: dict[str, dict[int, _Shard]] = {}
        self._groups: dict[str, dict[str, _ConsumerGroup]] = {}  # logstore -> name -> group
        self._faults: list[Fault] = []
        self.requests: dict[str, int] = {}
        self.faults_served: dict[str, int] = {}
        self.pull_delay = 0.0
        # User-Agent -> (logstore, shard, first log group, count) per PullLogs answered: who read what
        self.pulled: dict[str, list[tuple[str, int, int, int]]] = {}
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.sls = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> SlsServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="sls-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> SlsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ data
    def create_logstore(self, logstore: str, shards: int = 2) -> None:
        step = HASH_MAX // shards
        now = int(time.time())
        with self._lock:
            self._stores[logstore] = {
                i: _Shard(i, i * step, HASH_MAX if i == shards - 1 else (i + 1) * step, now)
                for i in range(shards)
            }

    def shard_ids(self, logstore: str, *, writable: bool = False) -> list[int]:
        with self._lock:
            return [s.shard_id for s in self._stores[logstore].values() if not (writable and s.readonly)]

    def put_logs(
        self,
        logstore: str,
        shard_id: int,
        logs: Iterable[Mapping[str, Any]],
        *,
        log_time: int | None = None,
        topic: str = "",
        source: str = "10.0.0.1",
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """Append one log group to a writable shard. Values become strings, as SLS stores them; ``bytes``
        keys and values are stored as they are, even when they are not UTF-8, as SLS stores what a producer
        wrote. (Protobuf refuses such a key, so it is encoded as an ASCII stand-in of the same length and
        swapped in afterwards: make such keys distinctive.)"""
        raw = [
            {
                k if isinstance(k, bytes) else str(k): v if isinstance(v, str | bytes) else json.dumps(v)
                for k, v in log.items()
            }
            for log in logs
        ]
        items = [{_text(k): _text(v) for k, v in log.items()} for log in raw]  # what GetLogs answers in JSON
        ts = int(log_time if log_time is not None else time.time())
        group = LogGroupRaw()  # bytes fields: the wire format of LogGroup's strings, without the UTF-8 check
        group.Topic, group.Source = topic.encode(), source.encode()
        for tag_key, tag_value in (tags or {}).items():
            tag = group.LogTags.add()
            tag.Key, tag.Value = tag_key.encode(), tag_value.encode()
        for item in raw:
            log = group.Logs.add()
            log.Time = ts
            for k, v in item.items():
                c = log.Contents.add()
                c.Key, c.Value = _stand_in(k), _bytes(v)
        body = group.SerializeToString()
        for k in {k for item in raw for k in item if isinstance(k, bytes)}:
            body = body.replace(_stand_in(k), k)
        encoded = b"\x0a" + _varint(len(body)) + body
        with self._lock:
            shard = self._stores[logstore][shard_id]
            if shard.readonly:
                raise ValueError(f"shard {shard_id} is read-only (split)")
            shard.groups.append(_Group(ts, encoded, items, source, dict(tags or {})))

    def split_shard(self, logstore: str, shard_id: int) -> tuple[int, int]:
        """Split like SLS: the parent turns read-only (its data stays readable), two children take its range."""
        with self._lock:
            shards = self._stores[logstore]
            parent = shards[shard_id]
            if parent.readonly:
                raise ValueError(f"shard {shard_id} is already read-only")
            parent.readonly = True
            mid = (parent.begin_key + parent.end_key) // 2
            a, b = max(shards) + 1, max(shards) + 2
            now = int(time.time())
            shards[a] = _Shard(a, parent.begin_key, mid, now)
            shards[b] = _Shard(b, mid, parent.end_key, now)
            return a, b

    def merge_shards(self, logstore: str, shard_id: int) -> int:
        """Merge a shard with its right neighbour like SLS: both turn read-only, one new shard covers both."""
        with self._lock:
            shards = self._stores[logstore]
            left = shards[shard_id]
            right = next(
                (
                    s
                    for s in shards.values()
                    if not s.readonly and s.begin_key == left.end_key and s is not left
                ),
                None,
            )
            if left.readonly or right is None:
                raise ValueError(f"shard {shard_id} has no writable right neighbour to merge with")
            left.readonly = right.readonly = True
            new = max(shards) + 1
            shards[new] = _Shard(new, left.begin_key, right.end_key, int(time.time()))
            return new

    def drop_shard(self, logstore: str, shard_id: int) -> None:
        """Forget a read-only shard, as SLS does once its data has expired."""
        with self._lock:
            if not self._stores[logstore][shard_id].readonly:
                raise ValueError(f"shard {shard_id} is writable")
            del self._stores[logstore][shard_id]

    def total_logs(self, logstore: str) -> int:
        with self._lock:
            return sum(len(g.logs) for s in self._stores[logstore].values() for g in s.groups)

    # ------------------------------------------------------------------ faults
    def inject(self, api: str, kind: str, times: int = 1, seconds: float = 0.0) -> None:
        """Fail the next ``times`` requests of ``api`` (ListShards, GetCursor, PullLogs, GetLogs or "*")."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {FAULT_KINDS}")
        with self._lock:
            self._faults.append(Fault(api, kind, times, seconds))

    def _take_fault(self, api: str) -> Fault | None:
        with self._lock:
            for f in self._faults:
                if f.api in (api, "*") and f.times > 0:
                    f.times -= 1
                    self.faults_served[f.kind] = self.faults_served.get(f.kind, 0) + 1
                    if f.times == 0:
                        self._faults.remove(f)
                    return f
        return None

    def faults_pending(self) -> int:
        with self._lock:
            return sum(f.times for f in self._faults)

    # ------------------------------------------------------------------ API
    def _shard(self, logstore: str, shard_id: str) -> _Shard:
        shards = self._logstore(logstore)
        try:
            return shards[int(shard_id)]
        except (ValueError, KeyError):
            raise _ApiError(404, "ShardNotExist", f"shard {shard_id} does not exist") from None

    def _logstore(self, logstore: str) -> dict[int, _Shard]:
        shards = self._stores.get(logstore)
        if shards is None:
            raise _ApiError(404, "LogStoreNotExist", f"logstore {logstore} does not exist")
        return shards

    def list_shards(self, logstore: str) -> list[dict[str, Any]]:
        with self._lock:
            return [s.info() for s in sorted(self._logstore(logstore).values(), key=lambda s: s.shard_id)]

    def get_cursor(self, logstore: str, shard_id: str, start: str) -> str:
        with self._lock:
            shard = self._shard(logstore, shard_id)
            if start == "begin":
                return _encode_cursor(0)
            if start == "end":
                return _encode_cursor(len(shard.groups))
            try:
                ts = int(start)
            except ValueError:
                raise _ApiError(
                    400, "ParameterInvalid", f"from={start!r} is not begin/end/unix time"
                ) from None
            idx = next((i for i, g in enumerate(shard.groups) if g.time >= ts), len(shard.groups))
            return _encode_cursor(idx)

    def pull(
        self, logstore: str, shard_id: str, cursor: str, count: int, end_cursor: str | None
    ) -> tuple[bytes, int, str]:
        with self._lock:
            shard = self._shard(logstore, shard_id)
            start = _decode_cursor(cursor)
            stop = (
                len(shard.groups)
                if end_cursor is None
                else min(_decode_cursor(end_cursor), len(shard.groups))
            )
            if not 0 <= start <= len(shard.groups):
                raise _ApiError(400, "InvalidCursor", f"cursor {cursor!r} is out of range")
            chosen = shard.groups[start : max(start, min(stop, start + max(1, count)))]
            body = b"".join(g.encoded for g in chosen)
            return body, len(chosen), _encode_cursor(start + len(chosen))

    def query(self, logstore: str, params: Mapping[str, Any]) -> list[dict[str, str]]:
        """GetLogs: logs with ``from <= __time__ < to`` that match a ``key: value [and ...]`` query."""
        try:
            t_from, t_to = int(params["from"]), int(params["to"])
            offset, line = int(params.get("offset", 0)), int(params.get("line", 100))
        except (KeyError, TypeError, ValueError):
            raise _ApiError(400, "ParameterInvalid", "from, to, offset and line must be integers") from None
        match = _compile_query(str(params.get("query") or ""))
        reverse = str(params.get("reverse", "false")).lower() == "true"
        hits: list[tuple[int, int, int, int, dict[str, str]]] = []
        with self._lock:
            for shard in self._logstore(logstore).values():
                for gi, g in enumerate(shard.groups):
                    if not t_from <= g.time < t_to:
                        continue
                    for li, log in enumerate(g.logs):
                        if match(log):
                            row = {**log, "__time__": str(g.time), "__source__": g.source}
                            row.update({f"__tag__:{k}": v for k, v in g.tags.items()})
                            hits.append((g.time, shard.shard_id, gi, li, row))
        hits.sort(key=lambda h: h[:4], reverse=reverse)
        return [h[4] for h in hits[offset : offset + max(0, line)]]

    # ------------------------------------------------------------------ consumer groups
    def _group(self, logstore: str, name: str) -> _ConsumerGroup:
        self._logstore(logstore)
        group = self._groups.get(logstore, {}).get(name)
        if group is None:
            raise _ApiError(404, "ConsumerGroupNotExist", f"consumer group {name} does not exist")
        return group

    def create_consumer_group(self, logstore: str, body: Any) -> None:
        name, timeout, order = _group_fields(body, ("consumerGroup", "timeout", "order"))
        with self._lock:
            self._logstore(logstore)
            groups = self._groups.setdefault(logstore, {})
            if name in groups:
                raise _ApiError(400, "ConsumerGroupAlreadyExist", f"consumer group {name} already exists")
            groups[name] = _ConsumerGroup(name, timeout, order)

    def update_consumer_group(self, logstore: str, name: str, body: Any) -> None:
        if not isinstance(body, dict) or not ({"timeout", "order"} & set(body)):
            raise _ApiError(400, "ParameterInvalid", "the body must set timeout and/or order")
        with self._lock:
            group = self._group(logstore, name)
            if "timeout" in body:
                group.timeout = _group_fields({"timeout": body["timeout"]}, ("timeout",))[0]
            if "order" in body:
                group.in_order = _group_fields({"order": body["order"]}, ("order",))[0]

    def delete_consumer_group(self, logstore: str, name: str) -> None:
        with self._lock:
            self._group(logstore, name)
            del self._groups[logstore][name]

    def list_consumer_groups(self, logstore: str) -> list[dict[str, Any]]:
        with self._lock:
            self._logstore(logstore)
            return [g.info() for g in self._groups.get(logstore, {}).values()]

    def heartbeat(self, logstore: str, name: str, consumer: str, body: Any) -> list[int]:
        if not consumer:
            raise _ApiError(400, "ParameterInvalid", "consumer is required")
        if not isinstance(body, list) or not all(type(s) is int for s in body):
            raise _ApiError(400, "ParameterInvalid", "the body must be a JSON list of shard ids")
        with self._lock:
            group = self._group(logstore, name)
            shards = sorted(self._logstore(logstore))
            return group.heartbeat(consumer, set(body), shards, time.monotonic())

    def consumer_group_shards(self, logstore: str, name: str) -> dict[str, list[int]]:
        """consumer -> shards assigned to it now (what its next heartbeat would be answered with); empty
        while the group does not exist."""
        with self._lock:
            group = self._groups.get(logstore, {}).get(name)
            if group is None:
                return {}
            out: dict[str, list[int]] = {c: [] for c in group.consumers}
            for shard, owner in sorted(group.owners.items()):
                if shard not in group.releasing:
                    out[owner].append(shard)
            return out

    def get_checkpoints(self, logstore: str, name: str, shard: str | None) -> list[dict[str, Any]]:
        with self._lock:
            group = self._group(logstore, name)
            ids = (
                sorted(self._logstore(logstore)) if shard is None else [self._shard(logstore, shard).shard_id]
            )
            out = []
            for i in ids:
                cursor, at, consumer = group.checkpoints.get(i, ("", 0, ""))
                out.append({"shard": i, "checkpoint": cursor, "updateTime": at, "consumer": consumer})
            return out

    def update_checkpoint(self, logstore: str, name: str, params: Mapping[str, str], body: Any) -> None:
        if not isinstance(body, dict) or type(body.get("shard")) is not int:
            raise _ApiError(400, "ParameterInvalid", "the body must name an integer shard")
        cursor = body.get("checkpoint")
        if not isinstance(cursor, str) or not cursor:
            raise _ApiError(400, "ParameterInvalid", "checkpoint must be a cursor")
        consumer = params.get("consumer", "")
        force = params.get("forceSuccess", "true").lower() == "true"
        with self._lock:
            group = self._group(logstore, name)
            shard = self._shard(logstore, str(body["shard"]))
            if not 0 <= _decode_cursor(cursor) <= len(shard.groups):
                raise _ApiError(400, "InvalidCursor", f"cursor {cursor!r} is out of range")
            if not force and group.owners.get(shard.shard_id) != consumer:
                raise _ApiError(
                    400, "ConsumerNotMatch", f"consumer {consumer} does not hold shard {shard.shard_id}"
                )
            group.checkpoints[shard.shard_id] = (cursor, time.time_ns() // 1000, consumer)


def _json_body(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except ValueError:
        raise _ApiError(400, "ParameterInvalid", "body is not JSON") from None


def _group_fields(body: Any, names: tuple[str, ...]) -> list[Any]:
    """The named fields of a consumer-group body, checked as SLS does (name text, timeout int, order bool)."""
    if not isinstance(body, dict):
        raise _ApiError(400, "ParameterInvalid", "the body must be a JSON object")
    out = []
    for name in names:
        value = body.get(name)
        ok = {
            "consumerGroup": isinstance(value, str)
            and re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,62}[a-z0-9]", value),
            "timeout": type(value) is int and 0 < value <= 86400,
            "order": type(value) is bool,
        }[name]
        if not ok:
            raise _ApiError(400, "ParameterInvalid", f"{name} {value!r} is invalid")
        out.append(value)
    return out


_TERM = re.compile(r"\s*([^\s:]+)\s*:\s*(\"[^\"]*\"|[^\s]+)\s*")


def _compile_query(query: str) -> Any:
    """The SLS search syntax subset tests need: ``*`` / empty, or ``key: value`` terms joined by ``and``."""
    q = query.strip()
    if q in ("", "*"):
        return lambda log: True
    terms: list[tuple[str, str]] = []
    for part in re.split(r"\s+and\s+", q, flags=re.IGNORECASE):
        m = _TERM.fullmatch(part)
        if m is None:
            raise _ApiError(400, "ParameterInvalid", f"unsupported query {query!r}")
        terms.append((m.group(1), m.group(2).strip('"')))
    return lambda log: all(log.get(k) == v for k, v in terms)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    server_version = "sls-local/1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read counters, not logs
        pass

    @property
    def sls(self) -> SlsServer:
        return self.server.sls  # type: ignore[attr-defined,no-any-return]

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        resource = unquote(split.path)
        params = dict(parse_qsl(split.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        api = "?"
        self.surrogate = False  # a "surrogate" fault is for one request; the connection may carry more
        try:
            api, handler = self._route(method, resource, params)
            sls = self.sls
            with sls._lock:
                sls.requests[api] = sls.requests.get(api, 0) + 1
            self._check_host_and_signature(method, resource, params, body)
            fault = sls._take_fault(api)
            if fault is not None and self._serve_fault(fault):
                return
            handler(resource, params, body)
        except _ApiError as exc:
            self._json(exc.status, {"errorCode": exc.code, "errorMessage": exc.message})

    def _route(self, method: str, resource: str, params: dict[str, str]) -> tuple[str, Any]:
        m = re.fullmatch(r"/logstores/([^/]+)/shards", resource)
        if m and method == "GET":
            return "ListShards", lambda r, p, b: self._json(200, self.sls.list_shards(m.group(1)))
        m = re.fullmatch(r"/logstores/([^/]+)/shards/([^/]+)", resource)
        if m and method == "GET" and params.get("type") == "cursor":
            return "GetCursor", lambda r, p, b: self._json(
                200, {"cursor": self.sls.get_cursor(m.group(1), m.group(2), p.get("from", ""))}
            )
        if m and method == "GET" and params.get("type") == "log":
            return "PullLogs", lambda r, p, b: self._pull(m.group(1), m.group(2), p)
        m = re.fullmatch(r"/logstores/([^/]+)/logs", resource)
        if m and method == "POST":
            return "GetLogs", lambda r, p, b: self._get_logs_v2(m.group(1), b)
        m = re.fullmatch(r"/logstores/([^/]+)", resource)
        if m and method == "GET" and params.get("type") == "log":
            return "GetLogs", lambda r, p, b: self._get_logs_v1(m.group(1), p)
        m = re.fullmatch(r"/logstores/([^/]+)/consumergroups", resource)
        if m and method == "POST":
            return "CreateConsumerGroup", lambda r, p, b: self._empty(
                self.sls.create_consumer_group(m.group(1), _json_body(b))
            )
        if m and method == "GET":
            return "ListConsumerGroup", lambda r, p, b: self._json(
                200, self.sls.list_consumer_groups(m.group(1))
            )
        m = re.fullmatch(r"/logstores/([^/]+)/consumergroups/([^/]+)", resource)
        if m and method == "PUT":
            return "UpdateConsumerGroup", lambda r, p, b: self._empty(
                self.sls.update_consumer_group(m.group(1), m.group(2), _json_body(b))
            )
        if m and method == "DELETE":
            return "DeleteConsumerGroup", lambda r, p, b: self._empty(
                self.sls.delete_consumer_group(m.group(1), m.group(2))
            )
        if m and method == "POST" and params.get("type") == "heartbeat":
            return "ConsumerGroupHeartBeat", lambda r, p, b: self._json(
                200, self.sls.heartbeat(m.group(1), m.group(2), p.get("consumer", ""), _json_body(b))
            )
        if m and method == "POST" and params.get("type") == "checkpoint":
            return "ConsumerGroupUpdateCheckPoint", lambda r, p, b: self._empty(
                self.sls.update_checkpoint(m.group(1), m.group(2), p, _json_body(b))
            )
        if m and method == "GET":
            return "GetCheckPoint", lambda r, p, b: self._json(
                200, self.sls.get_checkpoints(m.group(1), m.group(2), p.get("shard"))
            )
        raise _ApiError(404, "NotImplemented", f"{method} {resource} is not served by this server")

    def _check_host_and_signature(
        self, method: str, resource: str, params: dict[str, str], body: bytes
    ) -> None:
        sls = self.sls
        host = (self.headers.get("Host") or "").split(":")[0]
        project = host.partition(".")[0] if "." in host else ""  # "<project>.<endpoint host>"
        if project != sls.project:
            raise _ApiError(404, "ProjectNotExist", f"project {project or '(none)'} does not exist")
        if sls.access_key_secret is None:
            return
        auth = self.headers.get("Authorization") or ""
        if not auth.startswith("LOG ") or ":" not in auth:
            raise _ApiError(401, "Unauthorized", "missing LOG signature")
        key_id, _, signature = auth[4:].rpartition(":")
        if key_id != sls.access_key_id:
            raise _ApiError(401, "Unauthorized", "AccessKeyId not found")
        if sls.security_token is not None and self.headers.get("x-acs-security-token") != sls.security_token:
            raise _ApiError(401, "SecurityTokenExpired", "security token missing or wrong")
        if body and self.headers.get("Content-MD5") != hashlib.md5(body).hexdigest().upper():
            raise _ApiError(400, "InvalidContentMD5", "Content-MD5 does not match the body")
        sign_headers = sorted(
            (k.lower(), v)
            for k, v in self.headers.items()
            if (
                k.lower().startswith("x-acs-")
                or (k.lower().startswith("x-log-") and not k.lower().startswith("x-log-meta-"))
            )
            and k.lower() != "x-log-date"
        )
        content = f"{method}\n{self.headers.get('Content-MD5', '') if body else ''}\n"
        content += f"{self.headers.get('Content-Type', '')}\n{self.headers.get('Date', '')}\n"
        content += "".join(f"{k}:{v}\n" for k, v in sign_headers)
        content += resource + (
            "?" + "&".join(f"{k}={v}" for k, v in sorted(params.items())) if params else ""
        )
        expected = base64.b64encode(
            hmac.new(sls.access_key_secret.encode(), content.encode("utf-8"), hashlib.sha1).digest()
        ).decode()
        if not hmac.compare_digest(expected, signature):
            raise _ApiError(401, "SignatureNotMatch", "signature does not match")

    # ------------------------------------------------------------------ answers
    def _serve_fault(self, fault: Fault) -> bool:
        """Send the fault; True when the request is finished (False: delay, then answer normally)."""
        if fault.kind == "500":
            raise _ApiError(500, "InternalServerError", "injected internal error")
        if fault.kind == "throttle":
            raise _ApiError(403, "ReadQuotaExceed", "injected read quota exceeded")
        if fault.kind == "delay":
            time.sleep(fault.seconds)
            return False
        if fault.kind == "surrogate":
            self.surrogate = True  # answered normally, with a lone surrogate escape in every GetLogs value
            return False
        if fault.kind in ("garbage", "malformed"):
            self._mangled(fault.kind, fault.api)
            return True
        if fault.kind == "drop":
            self.close_connection = True
            self.connection.shutdown(2)
            return True
        # truncate: promise a body, send half of it, hang up
        payload = json.dumps({"padding": "x" * 512}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-log-count", "1")
        self.send_header("x-log-cursor", _encode_cursor(0))
        self.send_header("x-log-bodyrawsize", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload[: len(payload) // 2])
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(2)
        return True

    def _mangled(self, kind: str, api: str) -> None:
        """A 200 answer whose body is not what ``api`` returns."""
        if api == "PullLogs":  # claims lz4, is not
            data = b"\xff" * 64
            self.send_response(200)
            self._common_headers()
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-log-bodyrawsize", "4096")
            self.send_header("x-log-compresstype", "lz4")
            self.send_header("x-log-count", "1")
            self.send_header("x-log-cursor", _encode_cursor(1))
            self.end_headers()
            self.wfile.write(data)
            return
        data = (
            b"<html>gateway says hi</html>"
            if kind == "garbage"
            else json.dumps(MALFORMED.get(api, "abc")).encode()
        )
        self.send_response(200)
        self._common_headers()
        self.send_header("Content-Type", "text/html" if kind == "garbage" else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-log-progress", "Complete")
        self.end_headers()
        self.wfile.write(data)

    def _common_headers(self) -> None:
        self.send_header("x-log-requestid", f"{time.time_ns():x}")
        self.send_header("Date", formatdate(usegmt=True))

    def _empty(self, _: None) -> None:
        """200 with no body, as SLS answers the calls that only change something."""
        self.send_response(200)
        self._common_headers()
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _json(self, status: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self._common_headers()
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _compressed(self, raw: bytes, content_type: str, extra: Mapping[str, str]) -> None:
        wants = (self.headers.get("Accept-Encoding") or "").lower()
        if raw and "lz4" in wants:
            data, ctype = lz4.block.compress(raw, store_size=False), "lz4"
        elif raw and "deflate" in wants:
            import zlib

            data, ctype = zlib.compress(raw), "deflate"
        else:
            data, ctype = raw, ""
        self.send_response(200)
        self._common_headers()
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-log-bodyrawsize", str(len(raw)))
        if ctype:
            self.send_header("x-log-compresstype", ctype)
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _pull(self, logstore: str, shard_id: str, params: dict[str, str]) -> None:
        if self.sls.pull_delay:
            time.sleep(self.sls.pull_delay)
        try:
            count = int(params.get("count", "1000"))
        except ValueError:
            raise _ApiError(400, "ParameterInvalid", "count must be an integer") from None
        if not 0 < count <= 1000:  # what SLS serves per PullLogs
            raise _ApiError(400, "ParameterInvalid", f"count {count} is not between 1 and 1000")
        body, n, next_cursor = self.sls.pull(
            logstore, shard_id, params.get("cursor", ""), count, params.get("end_cursor")
        )
        if n:
            first = _decode_cursor(params.get("cursor", ""))
            with self.sls._lock:
                agent = self.headers.get("User-Agent") or ""
                self.sls.pulled.setdefault(agent, []).append((logstore, int(shard_id), first, n))
        self._compressed(body, "application/x-protobuf", {"x-log-count": str(n), "x-log-cursor": next_cursor})

    def _get_logs_v2(self, logstore: str, body: bytes) -> None:
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            raise _ApiError(400, "ParameterInvalid", "body is not JSON") from None
        rows = self._surrogates(self.sls.query(logstore, params))
        answer = {
            "meta": {"progress": "Complete", "count": len(rows), "processedRows": len(rows)},
            "data": rows,
        }
        self._compressed(json.dumps(answer).encode(), "application/json", {})

    def _surrogates(self, rows: list[dict[str, str]]) -> list[dict[str, str]]:
        if not self.surrogate:
            return rows
        return [{k: v if k.startswith("__") else v + "\ud800" for k, v in row.items()} for row in rows]

    def _get_logs_v1(self, logstore: str, params: dict[str, str]) -> None:
        rows = self._surrogates(self.sls.query(logstore, params))
        data = json.dumps(rows).encode()
        self.send_response(200)
        self._common_headers()
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-log-progress", "Complete")
        self.send_header("x-log-count", str(len(rows)))
        self.end_headers()
        self.wfile.write(data)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(
        description="Serve a local SLS-compatible endpoint. Example: --port 9876"
    )
    parser.add_argument("--port", type=int, default=9876)
    parser.add_argument("--project", default="demo")
    args = parser.parse_args()
    server = SlsServer(args.project, port=args.port)
    server.create_logstore("app", shards=2)
    print(
        f"serving project {args.project} on {server.endpoint} (key test-key-id / test-key-secret)", flush=True
    )
    server.start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
