"""Two source trees' benchmarks, interleaved in one run: did a change of structure cost speed?

Each round runs every chosen benchmark once per tree, the trees alternating (A B, then B A), so the drift
of a shared machine hits both alike; every figure is then shown per run, so the noise is in plain sight.
A tree is a checkout of the repository (``git archive <commit> | tar -x -C DIR``); one laid out for the
``liubai`` package (``package-dir`` in its pyproject) runs through a directory of symlinks named
``liubai``, one from before that through its top-level packages. The benchmark scripts are each tree's
own, since their imports follow its layout. Figures are read from the JSON a script prints last and, for
``log_ingest`` (which prints a table), from its ``records/s`` column. Full sizes leave out
``log_ingest --scale``.

Example: .venv/bin/python bench/compare_trees.py --before /tmp/before --after /tmp/after \\
             --only git_ingest log_ingest graphql_http --rounds 2 --quick
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run_all import SUITE

# the figures compared, per benchmark: JSON key (or log_ingest row) -> (label, higher is better)
FIGURES: dict[str, dict[str, tuple[str, bool]]] = {
    "git_ingest": {
        "ingest_commits_per_s": ("`liubai ingest git`, commits/s", True),
        "read_cpu_s": ("reading (git log + manifests), CPU s", False),
        "inprocess_ingest_cpu_s": ("whole ingest in-process, CPU s", False),
        "startup_s": ("CLI start-up, s", False),
    },
    "log_ingest": {
        "file -> map -> join (no store)": ("JSONL parse, map, join, records/s", True),
        "file -> sqlite": ("JSONL file -> SQLite, records/s", True),
        "sls -> sqlite (real SDK)": ("SLS -> SQLite, records/s", True),
    },
    "graphql_http": {
        "rps_depth2": ("depth-2 lineage query, req/s", True),
        "server_cpu_ms_per_req": ("server CPU per request, ms", False),
    },
}
_ROW = re.compile(r"^(?P<name>\S.*?)\s{2,}(?P<n>[\d,]+)\s+(?P<secs>[\d.]+)\s+(?P<rate>[\d,]+)\s")


def python_path(tree: Path, scratch: Path, label: str) -> str:
    """What makes the tree importable: itself (tests/, bench/, top-level packages), and for the
    ``liubai`` layout a directory whose ``liubai`` holds symlinks to the tree's package folders."""
    if "package-dir" not in (tree / "pyproject.toml").read_text(encoding="utf-8"):
        return str(tree)
    root = scratch / label
    pkg = root / "liubai"
    pkg.mkdir(parents=True, exist_ok=True)
    for part in ("api", "collector", "ebpf", "lineage", "web"):
        link = pkg / part
        if not link.exists() and (tree / part).is_dir():
            link.symlink_to(tree / part)
    return f"{root}{os.pathsep}{tree}"


def neutral_python(scratch: Path) -> str:
    """This environment's interpreter seen from a directory without the installed ``liubai`` script:
    the git benchmark runs that script when it sits next to the interpreter, and it would run the
    installed tree, not the one measured; without it, each tree's CLI runs from its own source."""
    env = Path(sys.prefix)
    root = scratch / "env"
    (root / "bin").mkdir(parents=True, exist_ok=True)
    (root / "pyvenv.cfg").write_text((env / "pyvenv.cfg").read_text(encoding="utf-8"), encoding="utf-8")
    (root / "lib").symlink_to(env / "lib")
    python = root / "bin" / "python"
    python.symlink_to(sys.executable)
    return str(python)


def figures(name: str, stdout: str) -> dict[str, float]:
    """The compared figures of one run's output (missing ones are left out)."""
    wanted = FIGURES.get(name, {})
    found: dict[str, float] = {}
    if name == "log_ingest":
        for line in stdout.splitlines():
            m = _ROW.match(line)
            if m and m["name"].strip() in wanted:
                found[m["name"].strip()] = float(m["rate"].replace(",", ""))
        return found
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                continue
            return {k: float(data[k]) for k in wanted if isinstance(data.get(k), int | float)}
    return found


def without_scale(args: list[str]) -> list[str]:
    """The suite's full sizes less ``log_ingest --scale`` (1M lines, four times over), which compares
    two batch policies of one tree rather than measuring another part of it."""
    if "--scale" not in args:
        return args
    at = args.index("--scale")
    return args[:at] + args[at + 2 :]


def run(
    python: str, name: str, tree: Path, pythonpath: str, quick: bool, timeout: float
) -> tuple[dict[str, float], str]:
    script, full, small = SUITE[name]
    cmd = [python, str(tree / "bench" / script), *(small if quick else without_scale(full))]
    env = {**os.environ, "PYTHONPATH": pythonpath}
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, cwd=tree, env=env, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {}, f"timed out after {timeout:.0f}s"
    return figures(name, proc.stdout), proc.stdout + proc.stderr[-2000:]


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def table(results: dict[str, dict[str, dict[str, list[float]]]]) -> str:
    """One markdown row per figure: each run's value per tree, and after/before of the medians."""
    lines = [
        "| benchmark | figure | before (runs) | after (runs) | after / before |",
        "|---|---|---|---|---|",
    ]
    for name, per_tree in results.items():
        for key, (label, _higher) in FIGURES.get(name, {}).items():
            before, after = per_tree["before"].get(key, []), per_tree["after"].get(key, [])
            if not before or not after:
                continue
            ratio = statistics.median(after) / statistics.median(before)
            runs = [", ".join(_number(v) for v in vs) for vs in (before, after)]
            lines.append(f"| {name} | {label} | {runs[0]} | {runs[1]} | {ratio:.2f} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", type=Path, required=True, help="the older source tree")
    ap.add_argument("--after", type=Path, required=True, help="the newer source tree")
    ap.add_argument("--only", nargs="+", choices=sorted(FIGURES), default=sorted(FIGURES))
    ap.add_argument("--rounds", type=int, default=2, help="runs of each benchmark per tree")
    ap.add_argument("--quick", action="store_true", help="the suite's small sizes")
    ap.add_argument("--timeout", type=float, default=1200, help="seconds per run")
    ap.add_argument("--log", type=Path, help="directory for each run's full output")
    args = ap.parse_args()
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    results: dict[str, dict[str, dict[str, list[float]]]] = {
        name: {"before": {}, "after": {}} for name in args.only
    }
    with tempfile.TemporaryDirectory(prefix="liubai-compare-") as scratch:
        python = neutral_python(Path(scratch))
        paths = {label: python_path(tree, Path(scratch), label) for label, tree in trees.items()}
        for r in range(args.rounds):
            order = ["before", "after"] if r % 2 == 0 else ["after", "before"]
            for name in args.only:
                for label in order:
                    t = time.perf_counter()
                    found, text = run(python, name, trees[label], paths[label], args.quick, args.timeout)
                    print(
                        f"round {r + 1} {name} {label}: {found} ({time.perf_counter() - t:.0f}s)", flush=True
                    )
                    for key, value in found.items():
                        results[name][label].setdefault(key, []).append(value)
                    if args.log:
                        args.log.mkdir(parents=True, exist_ok=True)
                        (args.log / f"{name}-{label}-{r + 1}.txt").write_text(text, encoding="utf-8")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
