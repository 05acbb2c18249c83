"""Manifest blobs read in bulk through one long-lived ``git cat-file --batch`` process."""

from __future__ import annotations

import subprocess
from typing import IO

import git

__all__ = ["CHUNK_BLOBS", "BlobReader", "CatFileBatch"]

CHUNK_BLOBS = 800  # 800 requests of 41 bytes stay well inside one pipe buffer: writing never blocks


class CatFileBatch:
    """One long-lived ``git cat-file --batch`` process, and its end."""

    def __init__(self, repo: git.Repo) -> None:
        self._proc = repo.git.cat_file("--batch", as_process=True, istream=subprocess.PIPE)
        self._stdin: IO[bytes] = self._proc.proc.stdin
        self._stdout: IO[bytes] = self._proc.proc.stdout

    def _exited(self) -> git.GitCommandError:
        """git stopped answering: its stderr (only written on failure) says why."""
        status = self._proc.proc.wait()
        return git.GitCommandError(["git", "cat-file", "--batch"], status, self._proc.proc.stderr.read())

    def close(self) -> None:
        try:
            self._stdin.close()
        except OSError:
            pass
        try:
            self._proc.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.proc.kill()
            self._proc.proc.wait()


class BlobReader(CatFileBatch):
    """Requests go out in bulk and answers are read back in order, so a group of blobs costs one exchange
    instead of a process round-trip per blob."""

    def read_many(self, blob_ids: list[str]) -> dict[str, bytes | None]:
        """Contents by id; None for an id the repository does not have."""
        out: dict[str, bytes | None] = {}
        for start in range(0, len(blob_ids), CHUNK_BLOBS):
            part = blob_ids[start : start + CHUNK_BLOBS]
            self._stdin.write("".join(f"{b}\n" for b in part).encode())
            self._stdin.flush()
            for blob in part:
                header = self._stdout.readline().split()
                if len(header) != 3:
                    if not header:
                        raise self._exited()
                    out[blob] = None  # "<id> missing"
                    continue
                out[blob] = self._stdout.read(int(header[2]))
                self._stdout.read(1)  # the newline after the content
        return out
