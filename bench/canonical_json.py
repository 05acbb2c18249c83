"""Canonical JSON (RFC 8785) against the sorted compact ``json.dumps`` the export used before it.

Every fact of a JSON bundle export goes through ``canonical_json``. The target: at most 2.5x the time of
the plain ``json.dumps(sort_keys=True)`` baseline, measured in the same run, over facts shaped like an
export's (processes, files, WROTE edges with digests). The pure-Python ``rfc8785`` library alone is
also timed, to show what the fast path for facts that need no JCS-specific handling saves.

Run:  .venv/bin/python bench/canonical_json.py [--facts 100000] [--reps 3]
Exit status 0 when the target holds, 1 when it does not.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import rfc8785

from liubai.lineage.canonical import canonical_json

TARGET = 2.5


def facts(n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(n // 3):
        path = f"/work/out/dir{i % 97}/file-{i}.o"
        out.append(
            {
                "id": f"proc:bench:{i}:1700000000000000000",
                "kind": "Process",
                "placeholder": False,
                "props": {"host": "bench", "pid": i, "argv": ["cc", "-c", f"src/f{i}.c"], "comm": "cc"},
                "provenance": {"writer": "ebpf"},
            }
        )
        out.append(
            {"id": f"file:bench:{path}", "kind": "File", "placeholder": False, "props": {"path": path}}
        )
        out.append(
            {
                "src": f"proc:bench:{i}:1",
                "kind": "WROTE",
                "dst": f"file:bench:{path}",
                "props": {"count": 1, "sha256": f"{i:064x}", "hashed_at": "2026-01-01T00:00:01.000000Z"},
            }
        )
    return out


def best_of(reps: int, fn: Callable[[dict[str, Any]], bytes], items: list[dict[str, Any]]) -> float:
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        for item in items:
            fn(item)
        best = min(best, time.perf_counter() - t)
    return best


def plain(value: dict[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--facts", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    items = facts(args.facts)
    base = best_of(args.reps, plain, items)
    ours = best_of(args.reps, canonical_json, items)
    library = best_of(max(1, args.reps - 2), rfc8785.dumps, items)
    n = len(items)
    print(f"{n:,} facts, best of {args.reps}")
    print(f"{'writer':34} {'seconds':>8} {'facts/s':>10} {'vs json.dumps':>14}")
    for name, secs in (
        ("json.dumps sort_keys (baseline)", base),
        ("canonical_json (RFC 8785)", ours),
        ("rfc8785.dumps alone", library),
    ):
        print(f"{name:34} {secs:8.2f} {n / secs:10,.0f} {secs / base:13.2f}x")
    ratio = ours / base
    print(f"target: canonical_json within {TARGET}x of json.dumps: {'met' if ratio <= TARGET else 'MISSED'}")
    print(
        json.dumps(
            {
                "bench": "canonical_json",
                "facts": n,
                "baseline_per_s": round(n / base),
                "canonical_per_s": round(n / ours),
                "library_per_s": round(n / library),
                "ratio": round(ratio, 2),
                "target": TARGET,
            }
        )
    )
    raise SystemExit(0 if ratio <= TARGET else 1)


if __name__ == "__main__":
    main()
