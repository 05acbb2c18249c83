"""Canonical JSON is RFC 8785: digests equal what an independent JCS implementation computes."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from liubai.lineage.canonical import canonical_json, jcs_value
from liubai.lineage.export import BUNDLE_FORMAT, check_bundle
from liubai.lineage.signing import verify_document

# U+1F600 is a surrogate pair in UTF-16 (D83D DE00) and sorts before U+FB33; by code point it sorts after.
NON_BMP = {"\U0001f600": "grin", "\ufb33": "dalet", "a": 1}


def _old_canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def test_keys_outside_the_bmp_sort_by_utf16_code_units() -> None:
    out = canonical_json(NON_BMP)
    assert out == rfc8785.dumps(NON_BMP)
    assert out.decode() == '{"a":1,"\U0001f600":"grin","\ufb33":"dalet"}'
    assert out != _old_canonical(NON_BMP)  # code point order put U+FB33 first


def test_numbers_take_their_ecmascript_form() -> None:
    value = {"whole": 1.0, "small": 1e-7, "big": 1e21}
    assert canonical_json(value) == b'{"big":1e+21,"small":1e-7,"whole":1}'


def test_values_jcs_cannot_hold_are_written_as_exact_strings() -> None:
    start_ns = 1_700_000_000_123_456_789  # beyond 2**53: a double would round it
    assert canonical_json({"start_ns": start_ns, "pid": 42}) == b'{"pid":42,"start_ns":"1700000000123456789"}'
    assert canonical_json({"x": float("nan")}) == b'{"x":"nan"}'


def _bundle() -> dict[str, Any]:
    node = {"id": "file:h:/tmp/x", "kind": "File", "placeholder": False, "props": dict(NON_BMP)}
    return {
        "format": BUNDLE_FORMAT,
        "nodes": [node],
        "edges": [],
        "summary": {"nodes": 1, "edges": 0, "truncated": False},
    }


def test_a_bundle_digest_from_an_independent_jcs_library_checks() -> None:
    bundle = _bundle()
    doc = {"bundle": bundle, "sha256": hashlib.sha256(rfc8785.dumps(bundle)).hexdigest()}
    assert check_bundle(doc).ok, check_bundle(doc).problems
    report = verify_document(json.dumps(doc).encode())
    assert ("digest", True, f"sha256 {doc['sha256']}") in report.checks


def test_a_digest_over_neither_form_is_a_mismatch() -> None:
    bundle = _bundle()
    doc = {"bundle": bundle, "sha256": hashlib.sha256(canonical_json(bundle) + b" ").hexdigest()}
    assert [p for p in check_bundle(doc).problems if p.startswith("digest mismatch")]


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=("Cs",))),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(st.characters(exclude_categories=("Cs",)), max_size=4), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(_JSON)
def test_the_fast_path_never_departs_from_the_library(value: Any) -> None:
    assert canonical_json(value) == rfc8785.dumps(jcs_value(value))


def test_a_bundle_hashed_before_rfc_8785_still_checks_and_says_so() -> None:
    """Evidence exported by earlier versions (process start times beyond 2**53 written as numbers) stays
    checkable; the report names the older form."""
    bundle = _bundle()
    bundle["nodes"][0]["props"]["start_ns"] = 1_700_000_000_123_456_789
    old = hashlib.sha256(_old_canonical(bundle)).hexdigest()
    assert old != hashlib.sha256(canonical_json(bundle)).hexdigest()
    report = verify_document(json.dumps({"bundle": bundle, "sha256": old}).encode())
    assert (
        "digest",
        True,
        f"sha256 {old} (over the canonical form bundles had before RFC 8785)",
    ) in report.checks
