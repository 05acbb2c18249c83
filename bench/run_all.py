"""The whole benchmark suite: runs every bench/ script, prints one table, writes docs/performance.md.

Each figure stands beside the baseline measured in the same run (raw ``git log``, json.loads-only
parsing, generate+join without a store, the per-row Neo4j writer, plain strawberry object-per-node
answers, the Kubernetes client's raw list and watch reads, untraced and strace'd workloads, ``true`` and
``strace -f true`` beside ``liubai trace -- true``), and the git and log benches also show the floor
their targets sit on (PyYAML's event parse, SQLite alone with rows built beforehand). Each script can also run alone; its last output line is JSON.

Example: .venv/bin/python bench/run_all.py            (full sizes, ~20-30 min on 2 cores)
         .venv/bin/python bench/run_all.py --quick    (small sizes, a few minutes)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# name -> (script, full args, quick args)
SUITE: dict[str, tuple[str, list[str], list[str]]] = {
    "sqlite_scale": ("sqlite_scale.py", ["--facts", "1000000"], ["--facts", "100000", "--queries", "50"]),
    "store_ingest": ("store_ingest.py", ["--facts", "1000000"], ["--facts", "50000", "--queries", "50"]),
    "graphql_http": ("graphql_http.py", ["--seconds", "20"], ["--seconds", "5", "--repeat", "5"]),
    "hostile_load": (
        "hostile_load.py",
        ["--seconds", "12", "--rounds", "3"],
        ["--seconds", "11", "--rounds", "1"],
    ),
    "git_ingest": ("git_ingest.py", ["--commits", "5000"], ["--commits", "1000"]),
    "git_history": (
        "git_history.py",
        [],  # its defaults: the large-repository shape (15,000 commits, 100 apps, 10 overlaid)
        ["--commits", "2000", "--apps", "30", "--overlaid", "3", "--no-verify"],
    ),
    "log_ingest": ("log_ingest.py", ["--records", "100000", "--scale", "1000000"], ["--records", "20000"]),
    "otlp_ingest": ("otlp_ingest.py", ["--records", "100000"], ["--records", "20000"]),
    "log_layout": ("log_layout.py", ["--records", "100000"], ["--records", "20000"]),
    "span_join": ("span_join.py", ["--spans", "100000"], ["--spans", "20000"]),
    "export_memory": ("export_memory.py", [], ["--sizes", "20000", "200000"]),
    "canonical_json": ("canonical_json.py", ["--facts", "300000"], ["--facts", "30000"]),
    "ui_scale": ("ui_scale.py", ["--rounds", "3"], ["--rounds", "1"]),
    "k8s_ingest": (
        "k8s_ingest.py",
        ["--pods", "10000"],
        ["--pods", "1000", "--deployments", "4", "--rollout-pods", "200"],
    ),
    "admission": ("admission.py", ["--seconds", "20", "--rounds", "3"], ["--seconds", "5", "--rounds", "1"]),
    "ebpf_overhead": (
        "ebpf_overhead.py",
        ["--storm", "2000", "--reps", "5"],
        ["--storm", "2000", "--reps", "2"],
    ),
    "trace_start": ("trace_start.py", ["--reps", "9", "--agent"], ["--reps", "3", "--agent"]),
    "node_agent": (
        "node_agent.py",
        ["--reps", "5", "--storm", "2000", "--containers", "100"],
        [
            "--reps",
            "1",
            "--storm",
            "500",
            "--requests",
            "500",
            "--open-loop",
            "5000",
            "--containers",
            "20",
            "--window",
            "5",
        ],
    ),
}


def run(name: str, quick: bool, timeout: float) -> dict[str, Any]:
    """Run one benchmark; its report is what it printed (a trailing JSON value is parsed, not shown).

    A non-zero exit is kept as the benchmark's verdict (several exit 1 when a target is missed)."""
    script, full, small = SUITE[name]
    cmd = [sys.executable, str(HERE / script), *(small if quick else full)]
    t = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"_exit": None, "_seconds": timeout, "_text": f"timed out after {timeout:.0f}s", "_json": None}
    lines = proc.stdout.strip().splitlines()
    result: dict[str, Any] = {"_exit": proc.returncode, "_seconds": time.perf_counter() - t, "_json": None}
    cut = len(lines)
    for i in range(len(lines) - 1, -1, -1):  # the last JSON value printed, on one line or indented
        if lines[i].startswith("{"):
            try:
                result["_json"] = json.loads("\n".join(lines[i:]))
            except json.JSONDecodeError:
                continue
            cut = i
            break
    text = "\n".join(lines[:cut]).strip()
    if not text and result["_json"] is not None:
        text = json.dumps(result["_json"], indent=2)
    if proc.returncode not in (0, 1) or not text:
        text = (text + "\n" + proc.stderr.strip()[-2000:]).strip()
    result["_text"] = text
    return result


def machine() -> str:
    mem = next(
        (ln.split()[1] for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal")),
        "?",
    )
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    load = os.getloadavg()[0]
    return (
        f"{os.cpu_count()} cores ({cpu}), {int(mem) / 2**20:.0f} GiB RAM, Linux {platform.release()}, "
        f"Python {platform.python_version()}, load average at start {load:.1f}"
    )


HAND_KEPT = "## Figures behind design choices"


def _hand_kept(out: Path) -> str:
    """The hand-kept section of the previous report (from its heading to the end), so a rerun keeps it:
    code comments point there for the figures behind their choices instead of quoting them."""
    try:
        previous = out.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
    start = previous.find(HAND_KEPT)
    return previous[start:].strip() + "\n" if start >= 0 else ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run of the suite)")
    ap.add_argument("--only", nargs="*", choices=sorted(SUITE), help="run only these")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per benchmark")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "performance.md")
    args = ap.parse_args()

    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    host = machine()
    results: dict[str, dict[str, Any]] = {}
    for name in args.only or list(SUITE):
        print(f"running {name} ...", flush=True)
        results[name] = result = run(name, args.quick, args.timeout)
        verdict = {0: "ok", 1: "ran; a target was missed"}.get(
            result["_exit"], f"FAILED (exit {result['_exit']})"
        )
        print(f"  {verdict}, {result['_seconds']:.0f}s", flush=True)

    sections = [
        f"# Performance\n\nMeasured {when} by `bench/run_all.py{' --quick' if args.quick else ''}` on {host}.\n"
        "Each figure stands beside a baseline measured in the same run. Regenerate with `make bench`.\n"
    ]
    for name, result in results.items():
        text = result["_text"].strip()
        sections.append(
            f"## {name}\n\n`{' '.join(['bench/' + SUITE[name][0], *(SUITE[name][2] if args.quick else SUITE[name][1])])}`"
            f" ({result['_seconds']:.0f}s, exit {result['_exit']})\n\n```\n{text}\n```\n"
        )
    kept = _hand_kept(args.out)
    if kept:
        sections.append(kept)
    report = "\n".join(sections)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    print()
    print(report)
    print(f"written to {args.out}")
    return 0 if all(r["_exit"] in (0, 1) for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
