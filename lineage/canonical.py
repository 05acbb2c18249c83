"""Canonical JSON (RFC 8785, the JSON Canonicalization Scheme): the one byte form every digest and signature
in liubai is taken over, so that any JCS implementation recomputes the same digest.

The ``rfc8785`` library does the work: keys in UTF-16 code unit order (which differs from Python's code
point order once a key leaves the Basic Multilingual Plane), ECMAScript number form, minimal escapes.
JCS only has IEEE doubles, so an integer beyond +-(2**53 - 1), a NaN or an infinity has no canonical form;
such a value is written as its decimal string (exactly, never rounded), and anything that is not JSON at
all as ``str(value)``, as the export always did. What is written is these bytes, so the value a verifier
parses is the one the digest covers.
"""

from __future__ import annotations

import json
import math
from typing import Any

import rfc8785

__all__ = ["MAX_SAFE_INTEGER", "canonical_json", "jcs_value"]

MAX_SAFE_INTEGER = 2**53 - 1


def jcs_value(value: Any) -> Any:
    """``value`` with what JCS cannot represent turned into strings (see the module docstring)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {k if isinstance(k, str) else str(k): jcs_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jcs_value(v) for v in value]
    return str(value)


def _same_under_json(value: Any) -> bool:
    """Whether ``json.dumps(sort_keys=True)`` writes ``value`` byte for byte as JCS does: it escapes
    strings alike and writes safe integers alike; only floats, keys outside the BMP (ordered by code
    point, not UTF-16 unit), and values JCS has no form for tell them apart."""
    stack = [value]
    while stack:
        v = stack.pop()
        t = type(v)
        if t is str or t is bool or v is None:
            continue
        if t is int:
            if not -MAX_SAFE_INTEGER <= v <= MAX_SAFE_INTEGER:
                return False
        elif t is dict:
            for k in v:
                if type(k) is not str or (not k.isascii() and max(k) > "\uffff"):
                    return False
            stack.extend(v.values())
        elif t is list or t is tuple:
            stack.extend(v)
        else:
            return False
    return True


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 bytes of ``value`` (UTF-8, no whitespace). Values where the standard library's
    sorted compact JSON is already those bytes (most facts) take that much faster path."""
    if _same_under_json(value):
        try:
            return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        except UnicodeEncodeError:  # a lone surrogate: let the library name the problem
            pass
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError:
        return rfc8785.dumps(jcs_value(value))
