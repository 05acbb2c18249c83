"""Passwords never reach a message: ``redact_url`` on the URLs error messages quote, parsable or not, and
``hide_password`` on the error texts drivers raise about them."""

from __future__ import annotations

import pytest

from liubai.lineage.urls import has_user_info, hide_password, redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("neo4j://neo4j:s3cret@127.0.0.1:7687/graph", "neo4j://neo4j:***@127.0.0.1:7687/graph"),
        (
            "http://node:s3cr/et@10.0.0.5:8000",
            "http://node:***@10.0.0.5:8000",
        ),  # no parser finds this password
        ("http://node:s3cr?et#x@10.0.0.5:8000", "http://node:***@10.0.0.5:8000"),
        ("http://u:p@ss@h:1/x", "http://u:***@h:1/x"),
        ("http://node:s3cret@[::1", "http://node:***@[::1"),  # not a URL at all
        ("user:s3cret@cn-hangzhou.log.aliyuncs.com", "user:***@cn-hangzhou.log.aliyuncs.com"),
    ],
)
def test_the_password_is_masked_and_the_rest_kept(url: str, shown: str) -> None:
    assert redact_url(url) == shown and has_user_info(url)


@pytest.mark.parametrize(
    "url", ["sqlite:///srv/a@b.db", "http://h/x@y", "neo4j://h:7687", "http://user@h", "h:80"]
)
def test_urls_without_a_password_are_unchanged(url: str) -> None:
    assert redact_url(url) == url


@pytest.mark.parametrize(
    ("url", "error", "shown"),
    [
        # a password no URL parser finds whole: the health answer used to quote its tail
        ("neo4j://neo4j:s3cr/et@db:7687", "auth failed with s3cr/et at db", "auth failed with *** at db"),
        ("neo4j://neo4j:p@ss@db:7687", "auth failed: p@ss rejected", "auth failed: *** rejected"),
        # an ``@`` after the host: a parser that splits at the first ``@`` finds ``pw``, one at the last more
        ("neo4j://u:pw@host/db@x", "auth failed for pw", "auth failed for ***"),
        # percent-encoded in the URL; the driver was given, and quotes, the decoded form
        (
            "neo4j://neo4j:s3cr%2Fet@db",
            "s3cr/et rejected (URL neo4j://neo4j:s3cr%2Fet@db)",
            "*** rejected (URL neo4j://neo4j:***@db)",
        ),
    ],
)
def test_a_driver_error_never_shows_the_password(url: str, error: str, shown: str) -> None:
    assert hide_password(error, url) == shown


@pytest.mark.parametrize(
    "url",
    ["sqlite:///srv/a@b.db", "sqlite:///srv/x:h@b.db", "neo4j://h:7687", "http://user@h", "http://user:@h"],
)
def test_an_error_about_a_url_without_a_password_is_unchanged(url: str) -> None:
    error = f"cannot open {url}: user h refused"
    assert hide_password(error, url) == error
