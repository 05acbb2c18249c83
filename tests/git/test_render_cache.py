"""The on-disk render cache: entries read back as written, a size bound that drops the least recently
used entries, and an entry that cannot be read is a miss, never an error."""

from __future__ import annotations

import os
import random
from pathlib import Path

from liubai.collector.git.render_cache import DiskRenderCache


def _size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def _noise(seed: int) -> str:
    rnd = random.Random(seed)  # incompressible enough that each entry has a real size on disk
    return "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(20_000))


def test_entries_read_back_and_the_bound_drops_least_recently_used(tmp_path: Path) -> None:
    cache = DiskRenderCache(tmp_path / "c", max_bytes=100_000)
    keys = [DiskRenderCache.key(["tree", i]) for i in range(12)]
    cache.put(keys[0], _noise(0), frozenset({"apps/base", "apps/prod"}))
    assert cache.get(keys[0]) == (_noise(0), frozenset({"apps/base", "apps/prod"}))
    old = (tmp_path / "c" / keys[0][:2] / keys[0]).stat().st_mtime_ns
    for i in range(1, 12):
        entry = tmp_path / "c" / keys[0][:2] / keys[0]
        if entry.exists():
            os.utime(entry, ns=(old, old))  # entry 0 is never read again: the oldest
        cache.put(keys[i], _noise(i), frozenset({"x"}))
        assert _size(tmp_path / "c") <= 100_000
    assert cache.get(keys[0]) is None, "the least recently used entry went first"
    assert cache.get(keys[11]) == (_noise(11), frozenset({"x"})), "the newest entry stays"


def test_torn_entry_is_a_miss(tmp_path: Path) -> None:
    cache = DiskRenderCache(tmp_path / "c", max_bytes=1 << 20)
    key = DiskRenderCache.key("k")
    cache.put(key, "kind: ConfigMap\n", frozenset())
    path = tmp_path / "c" / key[:2] / key
    path.write_bytes(path.read_bytes()[:5])
    assert cache.get(key) is None
