"""URLs fit to show: in messages, logs, health answers and bundles no password may appear; and the
RFC 3986 URI of a git source, as SLSA provenance names it."""

from __future__ import annotations

import re
from contextlib import suppress
from urllib.parse import quote, unquote, urlsplit

__all__ = ["git_source_uri", "has_user_info", "hide_password", "redact_url", "repository_uri"]


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


_SCP_LIKE = re.compile(r"(?:(?P<user>[^@/:]+)@)?(?P<host>[^@/:\[\]]+|\[[^\]/]+\]):(?P<path>(?!//).*)")
_URI_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_PATH_SAFE = "/:@!$&'()*+,;=~-._"


def git_source_uri(location: str, commit: str) -> str | None:
    """``git+<repository URI>@<commit>``, the form SLSA and SPDX give a git source; None when
    ``location`` is not a repository ``repository_uri`` can name."""
    uri = repository_uri(location)
    return None if uri is None else f"git+{uri}@{commit}"


def repository_uri(location: str) -> str | None:
    """The RFC 3986 URI of a git repository: a remote URL, an scp-like remote (``git@host:org/repo.git``
    is ``ssh://git@host/org/repo.git``) or an absolute local path (``file:///...``); None when
    ``location`` is none of these. User info is dropped from http(s) URLs (a token often sits there) and
    a password from any URL; only an ssh user name is kept."""
    location = location.strip()
    if location.startswith("git+"):
        location = location[4:]
    uri: str | None = None
    if location.startswith("/"):
        uri = "file://" + quote(location, safe=_PATH_SAFE)
    elif "://" in location:
        uri = _remote_uri(location)
    elif (m := _SCP_LIKE.fullmatch(location)) is not None and m["path"]:
        user = f"{quote(m['user'], safe='')}@" if m["user"] else ""
        path = m["path"] if m["path"].startswith("/") else "/" + m["path"]
        uri = f"ssh://{user}{m['host']}{quote(path, safe=_PATH_SAFE)}"
    return uri


def _remote_uri(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if not _URI_SCHEME.fullmatch(scheme) or parts.query or parts.fragment:
        return None
    if scheme == "file":
        return "file://" + quote(unquote(parts.path), safe=_PATH_SAFE) if parts.path.startswith("/") else None
    host = parts.hostname
    if not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    user = (
        f"{quote(unquote(parts.username), safe='')}@"
        if parts.username and scheme in ("ssh", "git+ssh")
        else ""
    )
    where = f"{user}{host}{'' if port is None else f':{port}'}"
    return f"{scheme}://{where}{quote(unquote(parts.path), safe=_PATH_SAFE)}"
