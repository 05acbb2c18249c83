"""Commit signatures: whether a commit carries one (read from the commit object, no gpg), and, only when
asked, whether it verifies, for a whole chunk of commits in one ``git log --no-walk --stdin``.

Verifying runs gpg or ssh-keygen once per signed commit inside git, several times the cost of reading
the history, and its answer depends on the keys this machine holds; so it is opt-in, and a commit
whose signature could not be checked (``E``: no gpg, no key) is never called signed.
"""

from __future__ import annotations

import os
import subprocess

import git

from liubai.collector.git.blobs import BlobReader
from liubai.lineage.records import CommitRecord

__all__ = ["STATUS_NAMES", "has_signature", "is_verified", "check", "mark_signatures"]

# git's %G? letters, as the ``signature`` property names them
STATUS_NAMES = {
    "G": "good",
    "U": "good-unknown-validity",
    "X": "good-expired-signature",
    "Y": "good-expired-key",
    "R": "good-revoked-key",
    "B": "bad",
    "E": "cannot-check",
    "N": "none",
}
_VERIFIED = frozenset({"good", "good-unknown-validity"})
_TIMEOUT_S = 3600


def mark_signatures(repo: git.Repo, reader: BlobReader, commits: list[CommitRecord], *, verify: bool) -> None:
    """Each commit's ``signature`` and ``signed``: whether its object carries a signature (one
    ``cat-file`` exchange for them all) and, with ``verify``, what checking it says (one git process)."""
    raw = reader.read_many([c.sha for c in commits])
    signed = [sha for sha, data in raw.items() if data is not None and has_signature(data)]
    found = check(repo, signed) if verify else dict.fromkeys(signed, "unverified")
    for c in commits:
        c.signature = found.get(c.sha, "none")
        c.signed = None if c.signature == "unverified" else is_verified(c.signature)


def has_signature(raw_commit: bytes) -> bool:
    """A ``gpgsig`` (or ``gpgsig-sha256``) header before the message: the commit is signed, verified or not."""
    head = raw_commit.split(b"\n\n", 1)[0]
    return head.startswith(b"gpgsig") or b"\ngpgsig" in head


def is_verified(signature: str) -> bool:
    return signature in _VERIFIED


def check(repo: git.Repo, shas: list[str]) -> dict[str, str]:
    """sha -> signature status name for ``shas``, one git process for all of them. Without an
    allowed-signers file git calls an SSH signature unsigned; an empty one makes a good one
    ``good-unknown-validity``, as an unknown GPG key is."""
    if not shas:
        return {}
    cmd = ["git", f"--git-dir={repo.git_dir}"]
    if not _configured(repo, "gpg.ssh.allowedSignersFile"):
        cmd += ["-c", f"gpg.ssh.allowedSignersFile={os.devnull}"]
    cmd += ["log", "--no-walk=unsorted", "--stdin", "--no-show-signature", "--format=%H %G?"]
    done = subprocess.run(
        cmd,
        input="\n".join(shas) + "\n",
        capture_output=True,
        text=True,
        timeout=_TIMEOUT_S,
        env={**os.environ, "LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0"},
        check=False,
    )
    out: dict[str, str] = {}
    for line in done.stdout.splitlines():
        sha, _, letter = line.partition(" ")
        out[sha] = STATUS_NAMES.get(letter.strip(), "cannot-check")
    return {sha: out.get(sha, "cannot-check") for sha in shas}


def _configured(repo: git.Repo, key: str) -> bool:
    try:
        repo.git.config("--get", key)
        return True
    except git.GitCommandError:
        return False
