"""Commit history as ``CommitRecord``s and their raw changes, from ONE streaming ``git log --raw -z``.

A single log manages thousands of commits per second where the object API (one ``Commit`` plus a diff per
commit) manages tens. Each record starts with ``\x1e`` and holds one header field per placeholder,
NUL-separated, so a commit boundary is never confused with a raw diff entry (those start with ``:``);
messages and paths cannot contain NUL.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO

import git

from liubai.lineage.records import CommitRecord, iso_utc
from liubai.lineage.text import bytes_text

__all__ = ["LOG_FORMAT", "Change", "pr_number", "read_log"]

_FIELDS = ("%H", "%P", "%an", "%ae", "%aI", "%cn", "%ce", "%cI", "%s", "%b")  # no %G?: see signatures
LOG_FORMAT = "%x1e" + "%x00".join(_FIELDS)
_LOG_OPTIONS = (
    "--reverse",
    "--topo-order",
    "-z",
    "--raw",
    "--no-abbrev",
    "--no-renames",  # objects are matched by identity across the commit; finding renames reads blobs
    "--root",
    "--diff-merges=first-parent",
    "--no-show-signature",
    "--no-color",
    "--no-relative",
    "--no-notes",
    "--encoding=UTF-8",
    f"--format={LOG_FORMAT}",
)
_READ_CHUNK = 1 << 16

_PR_MERGE = re.compile(r"^Merge pull request #(\d+)\b")
_PR_SQUASH = re.compile(r"\(#(\d+)\)\s*$")
_MR = re.compile(r"See merge request \S*?!(\d+)\b")


@dataclass(slots=True)
class Change:
    """One raw diff entry of a commit: a path added, modified, deleted, renamed or retyped."""

    status: str
    old_mode: str
    new_mode: str
    old_blob: str
    new_blob: str
    path: str
    old_path: str


def pr_number(subject: str, message: str) -> int | None:
    """The PR/MR number forges write into merge and squash commits, or None."""
    for pattern, text in ((_PR_MERGE, subject), (_PR_SQUASH, subject), (_MR, message)):
        m = pattern.search(text)
        if m:
            return int(m.group(1))
    return None


def _iso(text: str) -> str:
    return iso_utc(datetime.fromisoformat(text))


def read_log(cmd: git.Git, revs: list[str], repo_id: str) -> Iterator[tuple[CommitRecord, list[Change]]]:
    """Each commit of ``git log <revs>`` (oldest first, topological) with its raw changes against its first
    parent; a failed log raises ``GitCommandError`` with the end of git's stderr."""
    proc = cmd.log(*_LOG_OPTIONS, *revs, "--", as_process=True)
    stdout: IO[bytes] = proc.proc.stdout
    stderr = _Drain(proc.proc.stderr)  # a full stderr pipe would stall git while we read stdout
    finished = False
    try:
        header: list[str] = []
        changes: list[Change] = []
        pending: list[str] | None = None  # a raw entry still waiting for its path(s)
        for token in _tokens(stdout):
            if pending is not None:
                pending.append(token)
                status = pending[0].rsplit(" ", 1)[-1]
                if len(pending) == (3 if status[:1] in "RC" else 2):
                    changes.append(_change(pending))
                    pending = None
                continue
            if token.startswith("\x1e"):
                if header:
                    yield _commit(header, repo_id), changes
                header, changes = [token[1:]], []
            elif len(header) < len(_FIELDS):
                header.append(token)
            elif token.lstrip("\n").startswith(":"):
                pending = [token.lstrip("\n")]
        if header:
            yield _commit(header, repo_id), changes
        finished = True
    finally:
        if not finished and proc.proc.poll() is None:
            proc.proc.kill()
        status = proc.proc.wait()
        stderr.join()
    if status != 0:
        raise git.GitCommandError(["git", "log", *revs], status, stderr.tail())


def _commit(h: list[str], repo_id: str) -> CommitRecord:
    sha, parents, an, ae, at, cn, ce, ct, subject, body = h
    body = body.rstrip("\n")
    message = f"{subject}\n\n{body}" if body else subject
    return CommitRecord(
        repo=repo_id,
        sha=sha,
        parents=tuple(parents.split()),
        author_name=an,
        author_email=ae,
        authored_at=_iso(at),
        committer_name=cn,
        committer_email=ce,
        committed_at=_iso(ct),
        subject=subject,
        message=message,
        pr=pr_number(subject, message),
    )


class _Drain(threading.Thread):
    """Reads a pipe to its end in the background, keeping only the last few KiB for error messages."""

    def __init__(self, stream: IO[bytes] | None, keep: int = 4096) -> None:
        super().__init__(daemon=True)
        self._stream, self._keep, self._buf = stream, keep, b""
        self.start()

    def run(self) -> None:
        if self._stream is None:
            return
        for chunk in iter(lambda: self._stream.read(4096), b""):  # type: ignore[union-attr]
            self._buf = (self._buf + chunk)[-self._keep :]

    def tail(self) -> str:
        return self._buf.decode("utf-8", "replace")


def _tokens(stream: IO[bytes]) -> Iterator[str]:
    """NUL-separated tokens of a byte stream, decoded; bytes that are not UTF-8 (in a file name, or a
    message or author written in another encoding) become ``\\xNN`` text (``liubai.lineage.text``)."""
    rest = b""
    while True:
        chunk = stream.read(_READ_CHUNK)
        if not chunk:
            break
        parts = (rest + chunk).split(b"\0")
        rest = parts.pop()
        for part in parts:
            yield bytes_text(part)
    if rest:
        yield bytes_text(rest)


def _change(entry: list[str]) -> Change:
    meta, *paths = entry
    old_mode, new_mode, old_blob, new_blob, status = meta.lstrip(":").split(" ")
    code = status[:1]
    old_path = paths[0]
    return Change(code, old_mode, new_mode, old_blob, new_blob, paths[-1], old_path)
