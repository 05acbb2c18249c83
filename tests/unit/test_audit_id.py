"""The audit id parser: canonical form, strictness, and round-trips (property tests)."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from liubai.lineage.model import AuditId, AuditIdError, parse_audit_id, parse_traceparent

SHA1 = "a" * 40
SHA256 = "b" * 64
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_canonical_form_parses() -> None:
    a = parse_audit_id(f"git-sha256:{SHA1}|trace:{TRACE}")
    assert a == AuditId(commit=SHA1, commit_key="git-sha256", trace=TRACE)
    assert a.canonical == f"git-sha256:{SHA1}|trace:{TRACE}"


def test_part_order_does_not_matter_and_case_is_normalised() -> None:
    a = parse_audit_id(f"trace:{TRACE.upper()}|git-sha1:{SHA1.upper()}")
    assert a.commit == SHA1 and a.trace == TRACE and a.commit_key == "git-sha1"
    assert a.canonical == f"git-sha1:{SHA1}|trace:{TRACE}"


def test_64_hex_commits_and_plain_git_key() -> None:
    assert parse_audit_id(f"git:{SHA256}").commit == SHA256


def test_unknown_keys_are_kept_in_order() -> None:
    a = parse_audit_id(f"env:prod|git-sha256:{SHA1}|trace:{TRACE}|team:pay")
    assert a.extra == (("env", "prod"), ("team", "pay"))
    assert a.canonical == f"git-sha256:{SHA1}|trace:{TRACE}|env:prod|team:pay"


def test_opaque_trace_ids_are_kept_verbatim() -> None:
    assert parse_audit_id("trace:Run-42/abc").trace == "Run-42/abc"


def test_surrounding_whitespace_is_trimmed() -> None:
    assert parse_audit_id(f"  git-sha256:{SHA1}|trace:{TRACE}\n").commit == SHA1


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty value"),
        ("   ", "empty value"),
        ("git-sha256:xyz|trace:t", "must be 40 or 64 hex"),
        (f"git-sha256:{SHA1[:39]}", "must be 40 or 64 hex"),
        (f"git-sha256:{SHA1}|git:{SHA1}", "two commit parts"),
        (f"git-sha256:{SHA1}||trace:t", "empty part"),
        (f"git-sha256:{SHA1}|trace", "not key:value"),
        (f"git-sha256:{SHA1}|trace:", "empty value for key 'trace'"),
        (f"git-sha256:{SHA1}|trace:a|trace:b", "duplicate key"),
        (f"git-sha256:{SHA1}|trace:a b", "whitespace"),
        ("env:prod", "names neither a commit"),
        (f":{SHA1}", "bad key"),
    ],
)
def test_malformed_ids_are_rejected_with_a_reason(raw: str, reason: str) -> None:
    with pytest.raises(AuditIdError) as err:
        parse_audit_id(raw)
    assert reason in err.value.reason
    assert err.value.raw == raw


def test_lenient_mode_skips_bad_parts_but_needs_an_anchor() -> None:
    a = parse_audit_id(f"git-sha256:{SHA1}|junk|trace:{TRACE}", strict=False)
    assert a.commit == SHA1 and a.trace == TRACE
    with pytest.raises(AuditIdError):
        parse_audit_id("junk|more", strict=False)


def test_traceparent() -> None:
    assert parse_traceparent(f"00-{TRACE}-00f067aa0ba902b7-01") == TRACE
    assert parse_traceparent(f"00-{'0' * 32}-00f067aa0ba902b7-01") is None
    assert parse_traceparent("garbage") is None


hexes = st.text("0123456789abcdef", min_size=40, max_size=40) | st.text(
    "0123456789abcdef", min_size=64, max_size=64
)
values = st.text(
    st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc"), blacklist_characters="|"),
    min_size=1,
    max_size=30,
)
keys = st.from_regex(r"[a-z][a-z0-9._-]{0,10}", fullmatch=True).filter(
    lambda k: k not in ("git", "git-sha1", "git-sha256", "trace")
)


@given(
    commit=st.none() | hexes,
    key=st.sampled_from(["git-sha256", "git-sha1", "git"]),
    trace=st.none() | values,
    extra=st.dictionaries(keys, values, max_size=3),
)
def test_round_trip(commit: str | None, key: str, trace: str | None, extra: dict[str, str]) -> None:
    assume(commit is not None or trace is not None)
    built = AuditId(commit=commit, commit_key=key, trace=trace, extra=tuple(extra.items()))
    parsed = parse_audit_id(built.canonical)
    if trace is not None and len(trace) == 32 and all(c in "0123456789abcdefABCDEF" for c in trace):
        assert parsed.trace == trace.lower()
    else:
        assert parsed.trace == trace
    assert parsed.commit == commit and parsed.extra == built.extra
    assert parse_audit_id(parsed.canonical) == parsed  # canonical is a fixed point


@given(st.text(max_size=120))
def test_any_text_parses_or_fails_with_a_reason(raw: str) -> None:
    try:
        parsed = parse_audit_id(raw)
    except AuditIdError as exc:
        assert exc.reason
    else:
        assert parsed.commit is not None or parsed.trace is not None
        assert parse_audit_id(parsed.canonical) == parsed
