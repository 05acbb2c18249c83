"""Where liubai's user-space share of tracing overhead goes: ``ebpf_overhead``'s arms plus liubai without
hashing written files, interleaved in one run (a diagnostic beside that bench, not a target).

Arms per workload (the storm and build of ``ebpf_overhead``): untraced, liubai (as in that bench), liubai
with ``hash_written=False`` (no digest of each file the run writes) and the floor (program and ring
buffer only). Prints, per arm, wall and CPU overhead vs untraced (medians), %.

Example: sudo .venv/bin/python bench/ebpf_user_split.py --storm 2000 --reps 4
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

import ebpf_overhead as bench

from liubai.collector.live_events import LiveEvents


def _liubai(
    lb: bench._Liubai, events: Callable[..., LiveEvents], argv: list[str], root: Path
) -> tuple[float, float]:
    lb.live_events = events
    return lb.run(argv, root, root / "split.db")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--storm", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=4)
    args = ap.parse_args()
    lb = bench._Liubai()
    floor = bench._Floor(lb.tracer)
    try:
        with tempfile.TemporaryDirectory(prefix="liubai-split-") as tmp:
            root = Path(tmp)
            for name, argv in bench._workloads(root, args.storm).items():
                arms: dict[str, Callable[[], tuple[float, float]]] = {
                    "untraced": partial(bench._untraced, argv, root),
                    "liubai": partial(_liubai, lb, LiveEvents, argv, root),
                    "liubai_no_written_hash": partial(
                        _liubai, lb, partial(LiveEvents, hash_written=False), argv, root
                    ),
                    "floor": partial(floor.run, argv, root),
                }
                walls: dict[str, list[float]] = {a: [] for a in arms}
                cpus: dict[str, list[float]] = {a: [] for a in arms}
                bench._untraced(argv, root)  # warm the page cache
                for rep in range(args.reps):
                    order = list(arms.items())
                    for arm, fn in order if rep % 2 == 0 else reversed(order):
                        wall, cpu = fn()
                        walls[arm].append(wall)
                        cpus[arm].append(cpu)
                base_w, base_c = statistics.median(walls["untraced"]), statistics.median(cpus["untraced"])
                for arm in arms:
                    w = 100 * (statistics.median(walls[arm]) / base_w - 1)
                    c = 100 * (statistics.median(cpus[arm]) / base_c - 1)
                    print(f"{name:6} {arm:24} wall {w:6.1f}  cpu {c:6.1f}")
    finally:
        lb.tracer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
