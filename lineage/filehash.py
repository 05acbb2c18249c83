"""sha256 of a file named by path, for files checked after a run (export, verify): only a regular file is
opened and read. A device such as ``/dev/zero`` never ends and opening one can have effects, and a FIFO
blocks; a run reads such things often, and their "content" is no fact about the run."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

__all__ = ["NotRegularFile", "sha256_of_regular_file"]


class NotRegularFile(OSError):
    """The path names a device, FIFO, socket or directory: nothing to hash."""


def sha256_of_regular_file(path: str | Path) -> str:
    """The file's sha256; FileNotFoundError, NotRegularFile or another OSError when it cannot be had."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise NotRegularFile(f"{path}: not a regular file")
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    with open(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # replaced between the stat and the open
            raise NotRegularFile(f"{path}: not a regular file")
        return hashlib.file_digest(fh, "sha256").hexdigest()
