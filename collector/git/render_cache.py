"""Renders kept on disk, keyed by what decides them: the tree ids of the render's input directories, the
deployer's settings and the renderer (liubai's render format and the kubectl / helm binaries).

A render is a pure function of those, so a later run, another store over the same repository, or a
commit whose inputs come back (a revert, a merge of the same content) reads the answer instead of
running kustomize or helm again. Only renders that succeeded are kept: a failure may be passing (a
remote base that could not be fetched). Entries are single files written atomically; the directory
is held under a size bound by dropping the least recently used entries.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zlib
from pathlib import Path

from platformdirs import user_cache_dir

__all__ = ["RENDER_FORMAT", "DiskRenderCache", "default_render_cache", "tool_identity"]

RENDER_FORMAT = "1"  # bump when the render of the same inputs would change (liubai's own steps)
_DEFAULT_MB = 256
_KEEP = 0.8  # after an eviction the cache holds at most this share of its bound


def tool_identity(path: str | None) -> str:
    """A binary named by path, size and modification time: a new kubectl or helm is a new renderer."""
    if path is None:
        return "-"
    try:
        st = os.stat(path)
    except OSError:
        return path
    return f"{path}:{st.st_size}:{st.st_mtime_ns}"


def default_render_cache() -> DiskRenderCache | None:
    """The cache ``LIUBAI_RENDER_CACHE`` names (``off`` for none), else ``<user cache>/liubai/renders``;
    bounded by ``LIUBAI_RENDER_CACHE_MB`` (default 256)."""
    where = os.environ.get("LIUBAI_RENDER_CACHE", "")
    if where.strip().lower() in ("off", "none", "0"):
        return None
    root = Path(where) if where else Path(user_cache_dir("liubai")) / "renders"
    try:
        bound_mb = float(os.environ.get("LIUBAI_RENDER_CACHE_MB") or _DEFAULT_MB)
    except ValueError:
        bound_mb = _DEFAULT_MB
    return DiskRenderCache(root, int(bound_mb * 1024 * 1024))


class DiskRenderCache:
    """Rendered text and input directories by key, one zlib-compressed JSON file per entry."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max(max_bytes, 0)
        self._size: int | None = None  # bytes on disk, counted at the first write

    @staticmethod
    def key(parts: object) -> str:
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=repr).encode()).hexdigest()

    def _file(self, key: str) -> Path:
        return self.root / key[:2] / key

    def get(self, key: str) -> tuple[str, frozenset[str]] | None:
        path = self._file(key)
        try:
            doc = json.loads(zlib.decompress(path.read_bytes()))
            os.utime(path)  # recently used: evicted last
        except (OSError, ValueError, zlib.error):
            return None  # absent, unreadable or torn: render again
        if not isinstance(doc, dict) or not isinstance(doc.get("text"), str):
            return None
        return doc["text"], frozenset(str(p) for p in doc.get("inputs") or ())

    def put(self, key: str, text: str, inputs: frozenset[str]) -> None:
        data = zlib.compress(json.dumps({"text": text, "inputs": sorted(inputs)}).encode(), 6)
        if len(data) > self.max_bytes:
            return
        path = self._file(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, path)  # atomic: a reader sees the whole entry or none
        except OSError:
            return  # a cache that cannot be written only costs renders
        if self._size is None:
            self._size = sum(size for _, size, _ in self._entries())
        else:
            self._size += len(data)
        if self._size > self.max_bytes:
            self._evict()

    def _entries(self) -> list[tuple[Path, int, int]]:
        found: list[tuple[Path, int, int]] = []
        if not self.root.is_dir():
            return found
        for sub in self.root.iterdir():
            if not sub.is_dir():
                continue
            for entry in os.scandir(sub):
                try:
                    st = entry.stat()
                except OSError:
                    continue
                found.append((Path(entry.path), st.st_size, st.st_mtime_ns))
        return found

    def _evict(self) -> None:
        entries = sorted(self._entries(), key=lambda e: e[2])  # least recently used first
        size = sum(s for _, s, _ in entries)
        for path, s, _ in entries:
            if size <= self.max_bytes * _KEEP:
                break
            try:
                path.unlink()
            except OSError:
                continue
            size -= s
        self._size = size
