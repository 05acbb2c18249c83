"""sha256 of executed images and written files, each inode read once while it is unchanged."""

from __future__ import annotations

import hashlib
import os

from liubai.collector.proc_facts import script_head

__all__ = ["BinaryHasher"]


class BinaryHasher:
    """sha256 of files, cached by (device, inode, change time, size) so a binary run 1,000 times is read
    once; the change time moves with every write, rename or chmod of the inode."""

    def __init__(self) -> None:
        self._cache: dict[tuple[int, int, int, int], str] = {}
        self._scripts: dict[tuple[int, int, int, int], bool] = {}

    def is_script(self, path: str, st: os.stat_result) -> bool:
        """Whether the file at ``path``, whose stat is ``st``, starts with ``#!``: read once per unchanged
        inode, as its hash is (a storm execs the same binary thousands of times)."""
        key = (st.st_dev, st.st_ino, st.st_ctime_ns, st.st_size)
        known = self._scripts.get(key)
        if known is None:
            known = script_head(path)
            if known is None:
                return False  # as unread, and not kept: the next exec of it reads again
            self._scripts[key] = known
        return known

    def sha256(self, path: str) -> str | None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            return self.sha256_fd(fd)
        finally:
            os.close(fd)

    def sha256_fd(self, fd: int) -> str | None:
        """The hash of the open file ``fd`` (the very inode, whatever its name is now)."""
        try:
            st = os.fstat(fd)
        except OSError:
            return None
        key = (st.st_dev, st.st_ino, st.st_ctime_ns, st.st_size)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        digest = hashlib.sha256()
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            for chunk in iter(lambda: os.read(fd, 1 << 20), b""):
                digest.update(chunk)
        except OSError:
            return None
        value = digest.hexdigest()
        self._cache[key] = value
        return value
