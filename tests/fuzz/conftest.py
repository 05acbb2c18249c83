"""The fuzz suite: hypothesis over every parser of untrusted input and over the GraphQL API.

``LIUBAI_FUZZ_EXAMPLES`` sets the cases per test (default 200 for the normal run; ``make fuzz`` uses
10000). Outside CI, hypothesis's example database replays a failure found once first next time.

Under CI the cases are fixed by each test's source (the "ci" profile in ``tests/conftest.py``).
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fuzz: property-based fuzzing (LIUBAI_FUZZ_EXAMPLES cases per test)")


EXAMPLES = int(os.environ.get("LIUBAI_FUZZ_EXAMPLES", "200"))

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
