"""One error base: every error meant for a user is a ``LiubaiError`` with a fixed code, and each code is
mapped once to GraphQL ``extensions`` and once to a CLI exit status."""

from __future__ import annotations

import pytest
from graphql.error import GraphQLError

from liubai.api.api_error import ApiError
from liubai.api.auth import AuthError
from liubai.api.cli.common import EXIT_CODES, exit_code
from liubai.api.errors import PUBLIC, error_extensions, is_expected
from liubai.collector.agent import AgentError
from liubai.collector.agentstate import StateError
from liubai.collector.git import GitSourceError
from liubai.collector.sls import SlsError
from liubai.lineage.errors import Ambiguous, BadInput, ErrorCode, LiubaiError, NotFound
from liubai.lineage.export import ExportError
from liubai.lineage.model import AuditIdError
from liubai.lineage.signing import KeyFileError
from liubai.lineage.slsa import SlsaError
from liubai.lineage.store.base import (
    AnswerTooLarge,
    StoreDamaged,
    StoreError,
    StoreReadOnly,
    StoreTimeout,
    StoreUnavailable,
)
from liubai.lineage.wire import WireError


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_code_is_mapped_once_for_graphql_and_the_cli(code: ErrorCode) -> None:
    assert code in PUBLIC and code in EXIT_CODES


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (AuditIdError("x", "why"), ErrorCode.BAD_AUDIT_ID),
        (ExportError("e"), ErrorCode.BAD_INPUT),
        (WireError("w"), ErrorCode.BAD_INPUT),
        (SlsaError("s"), ErrorCode.BAD_INPUT),
        (KeyFileError("k"), ErrorCode.BAD_INPUT),
        (StateError("st"), ErrorCode.BAD_INPUT),
        (AgentError("a"), ErrorCode.BAD_INPUT),
        (GitSourceError("g"), ErrorCode.SOURCE_FAILED),
        (SlsError("sls", "SignatureNotMatch"), ErrorCode.SOURCE_FAILED),
        (StoreDamaged("d"), ErrorCode.STORE_DAMAGED),
        (StoreReadOnly("r"), ErrorCode.READ_ONLY),
        (StoreTimeout("t"), ErrorCode.TIMEOUT),
        (AnswerTooLarge("l"), ErrorCode.TOO_LARGE),
        (ApiError(ErrorCode.AMBIGUOUS, "two"), ErrorCode.AMBIGUOUS),
        (AuthError(400, "two Authorization headers"), ErrorCode.BAD_INPUT),
        (AuthError(401, "invalid token"), ErrorCode.UNAUTHENTICATED),
        (AuthError(403, "lacks scope"), ErrorCode.FORBIDDEN),
    ],
)
def test_user_errors_are_liubai_errors_with_a_fixed_code(error: LiubaiError, code: ErrorCode) -> None:
    assert isinstance(error, LiubaiError) and error.code is code
    assert exit_code(error) == 1  # scripts rely on 1 for every error a user must act on


def _ext(exc: Exception) -> dict[str, object]:
    return error_extensions(GraphQLError("raw text", original_error=exc))


def test_user_errors_keep_their_words_and_detail() -> None:
    assert _ext(NotFound("no node 'x'", id="x")) == {
        "code": "NOT_FOUND",
        "message": "no node 'x'",
        "retryable": False,
        "detail": {"id": "x"},
    }
    assert _ext(Ambiguous("two", candidates=["a", "b"]))["code"] == "AMBIGUOUS"
    assert _ext(BadInput("bad"))["message"] == "bad"
    assert _ext(AuditIdError("x", "why"))["detail"] == {"reason": "why"}
    assert _ext(AnswerTooLarge("path needs too much"))["code"] == "BAD_INPUT"
    assert _ext(AuthError(403, "token t1 lacks scope 'write'")) == {
        "code": "FORBIDDEN",
        "message": "token t1 lacks scope 'write'",
        "retryable": False,
    }


def test_store_internals_never_reach_a_client() -> None:
    for exc in (
        StoreError("/srv/secret.db: disk I/O"),
        StoreDamaged("/srv/x"),
        StoreTimeout("t"),
        StoreReadOnly("r"),
    ):
        ext = _ext(exc)
        assert ext["code"] == "INTERNAL" and "/srv" not in str(ext)
    down = _ext(StoreUnavailable("bolt://user:pw@host"))
    assert down["code"] == "STORE_UNAVAILABLE" and down["retryable"] is True and "pw" not in str(down)
    assert _ext(RuntimeError("boom")) == {
        "code": "INTERNAL",
        "message": "Internal error.",
        "retryable": False,
    }


def test_only_user_errors_are_expected() -> None:
    assert is_expected(GraphQLError("x", original_error=ExportError("e")))
    assert not is_expected(GraphQLError("x", original_error=StoreDamaged("d")))
    assert not is_expected(GraphQLError("x", original_error=RuntimeError("r")))
