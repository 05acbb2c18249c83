"""Skipping a test of a real part (kernel, Neo4j, browser) — or failing, where CI demands the part.

CI exports ``LIUBAI_REQUIRE_<PART>=1`` (EBPF, NEO4J, BROWSER, ...); there a missing part is a failure,
not a skip, so a green CI run means the real part really ran.
"""

from __future__ import annotations

import os

import pytest


def required(part: str) -> bool:
    return os.environ.get(f"LIUBAI_REQUIRE_{part.upper()}", "") not in ("", "0", "false", "no")


def missing(part: str, reason: str) -> None:
    """Skip (or fail, where ``LIUBAI_REQUIRE_<PART>`` is set) because ``part`` is unavailable."""
    msg = f"{part} unavailable: {reason}"
    if required(part):
        pytest.fail(f"{msg} (LIUBAI_REQUIRE_{part.upper()}=1 is set, so this is a failure)", pytrace=False)
    pytest.skip(msg)
