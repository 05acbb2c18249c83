"""The SLS client: credentials, the one-try ``LogClient``, and SDK calls retried under ``RetryPolicy``.

Everything that talks to the SLS endpoint or reads its answers lives here; what is done with the logs
(shard consumption, record mapping) does not. Errors leave as one ``SlsError`` line a user can act on,
never with a secret in it.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from aliyun.log import LogClient, LogException
from lz4.block import LZ4BlockError
from pydantic import BaseModel, SecretStr, ValidationError, field_validator

from liubai.collector.retry import RetryPolicy
from liubai.lineage.errors import ErrorCode, LiubaiError
from liubai.lineage.store.base import StoreError
from liubai.lineage.urls import has_user_info, redact_url

__all__ = [
    "MalformedReply",
    "OneTryLogClient",
    "SlsCredentials",
    "SlsError",
    "is_retryable",
    "make_client",
    "sls_call",
    "sls_source",
]

ENV_KEY_ID = "ALIBABA_CLOUD_ACCESS_KEY_ID"
ENV_KEY_SECRET = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"
ENV_TOKEN = "ALIBABA_CLOUD_SECURITY_TOKEN"
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
            fields = "; ".join(
                f"{e['loc'][0]} {e['msg'].removeprefix('Value error, ')}" for e in exc.errors()
            )
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
        raise SlsError(
            f"bad SLS endpoint {shown!r}: no user or password in it; credentials come from "
            "--credentials or the environment"
        )
    try:
        parts = urlsplit(text if "://" in text else f"http://{text}")
        port = parts.port
    except ValueError as exc:
        raise SlsError(f"bad SLS endpoint {shown!r}: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise SlsError(f"bad SLS endpoint {shown!r}: the scheme must be http or https")
    if parts.username is not None or parts.password is not None:
        raise SlsError(
            f"bad SLS endpoint {shown!r}: no user or password in it; credentials come from "
            "--credentials or the environment"
        )
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


def sls_call(policy: RetryPolicy, what: str, fn: Callable[[], Any]) -> Any:
    """``fn()``, an SLS call, retried under ``policy`` while its error is transient; what still fails
    leaves as one ``SlsError`` line naming ``what`` (a store error passes unchanged)."""
    try:
        return policy.call(fn, retry_if=is_retryable, what=what, describe=_describe)
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
