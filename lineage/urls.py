"""URLs fit to show: in messages, logs, health answers and bundles no password may appear."""

from __future__ import annotations

from contextlib import suppress
from urllib.parse import unquote, urlsplit

__all__ = ["has_user_info", "hide_password", "redact_url"]


def _split(url: str, *, at_last: bool = True) -> tuple[str, str, str] | None:
    """(``scheme://``, user info, what follows its ``@``), or None when ``url`` has no user info. Split by
    hand, at the last ``@``: the URLs error messages quote are often the ones no URL parser accepts, and
    a password may hold ``/``, ``?``, ``#`` or ``@`` unescaped. ``at_last=False``: at the first, as some
    parsers do."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    info, at, host = rest.rpartition("@") if at_last else rest.partition("@")
    if not at or "/" in info.split(":", 1)[0]:  # an ``@`` in a path, not after a user
        return None
    return scheme + sep, info, host


def has_user_info(url: str) -> bool:
    return _split(url) is not None


def redact_url(url: str) -> str:
    """``url`` with the password of its user info (if any) shown as ``***``; the user name stays."""
    parts = _split(url)
    if parts is None:
        return url
    prefix, info, host = parts
    user, colon, _ = info.partition(":")
    return f"{prefix}{user}:***@{host}" if colon else url


def hide_password(text: str, url: str) -> str:
    """``text`` (an error a driver raised about ``url``) with ``url``'s password masked wherever it appears:
    as written in the URL or percent-decoded (the form a driver sends and may quote back), and split at
    the first ``@`` as well as at the last, since drivers parse URLs with a stray ``@`` either way."""
    passwords = {parts[1].partition(":")[2] for last in (True, False) if (parts := _split(url, at_last=last))}
    with suppress(ValueError):
        passwords.add(urlsplit(url).password or "")
    spellings = {p for password in passwords if password for p in (password, unquote(password))}
    for spelling in sorted(spellings, key=len, reverse=True):
        text = text.replace(spelling, "***")
    return text
