"""The node agent's user-space half: events per second through ``NodeCollector`` into the journal, for
many containers each running a shell loop (fork, exec, open a config file, write one, exit), beside a
baseline that only iterates the same events. Also the journal bytes per window: the volume the API
receives. The kernel half (BPF, /proc reads) is measured by the eBPF overhead bench.

Example: .venv/bin/python bench/node_collector.py --containers 100 --loops 200 --window-loops 20
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the synthetic events live in tests/

from liubai.collector.node import NodeCollector
from liubai.collector.node_journal import NodeJournal
from liubai.collector.node_options import NodeCollectorOptions
from tests.node.fakes import Item, Ref, Story


def _events(containers: int, loops: int) -> list[list[Item]]:
    """Per loop round, every container's events of that round (interleaved as on a busy node)."""
    stories = [Story(Ref(f"{i:064x}", f"pod-{i}")) for i in range(containers)]
    rounds: list[list[Item]] = []
    for n in range(loops):
        round_: list[Item] = []
        for i, s in enumerate(stories):
            if n == 0:
                round_.append(s.exec(1000 + i, 1, "/bin/sh"))
            child, start = 10_000 + n, 100 + n
            round_ += [
                s.fork(1000 + i, 1, child, start),
                s.exec(child, start, "/bin/cat"),
                s.open(child, start, "/data/config.txt"),
                s.open(child, start, "/proc/self/status", fd=4),
                s.open(child, start, f"/tmp/out-{n % 50}", 0o101, fd=5),
                s.exit(child, start),
            ]
        rounds.append(round_)
    return rounds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--containers", type=int, default=100)
    ap.add_argument("--loops", type=int, default=200, help="loop rounds per container")
    ap.add_argument("--window-loops", type=int, default=20, help="rounds per window")
    args = ap.parse_args()
    rounds = _events(args.containers, args.loops)
    total = sum(len(r) for r in rounds)

    began = time.perf_counter()
    seen = 0
    for round_ in rounds:
        for item in round_:
            seen += item.event.pid > 0
    baseline = time.perf_counter() - began

    with tempfile.TemporaryDirectory() as tmp:
        journal = NodeJournal(Path(tmp))
        nc = NodeCollector(NodeCollectorOptions(host="bench"), boot_offset_ns=0)
        records = windows = 0
        began = time.perf_counter()
        for n, round_ in enumerate(rounds, 1):
            for item in round_:
                nc.add(item)
            if n % args.window_loops == 0 or n == len(rounds):
                out = nc.flush(round_[-1].event.ts)
                records += journal.write_window(out, "s", "e")
                windows += 1
        took = time.perf_counter() - began
        size = journal.path.stat().st_size
        journal.close()
    print(f"{args.containers} containers, {total} events, {windows} windows (fsync each)")
    print(f"  baseline iterate      {total / baseline:12,.0f} events/s")
    print(f"  NodeCollector+journal {total / took:12,.0f} events/s ({took:.2f} s)")
    print(f"  journal               {records:,} records, {size / windows / 1024:,.1f} KiB per window")


if __name__ == "__main__":
    main()
