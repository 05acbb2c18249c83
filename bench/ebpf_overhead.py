"""Overhead of eBPF tracing against running untraced and against ``strace -f`` (the ptrace approach).

Two workloads, six arms each, interleaved and repeated (median and minimum wall time):

* storm: >= 2,000 short processes, each opening files (``cat in.txt > /dev/null`` in a shell loop);
* build: ``python3 -m compileall -f -j 2`` of a copy of the system's Python modules (~2,000 files).

Wall time and CPU time (tracer plus traced processes; far steadier on a shared machine) are both
reported, as overheads of medians and as paired overheads: the median, over repetitions, of each arm's time
against the untraced run of the same repetition, so a machine that drifts slower mid-run (a shared host
does, by 20% and more) moves both sides of each ratio. Arms: untraced; liubai (the same code path as ``liubai trace``: kernel program, ring-buffer decoding,
sha256 of binaries; decoding and aggregation after the run, BPF compile and store ingest timed separately);
floor (the same loaded program, the same tracepoints and in-kernel process-tree filter on the workload's root, its
ring buffer emptied and each event only counted: no decoding, no model, no store; liubai minus floor is the cost
of liubai's user space); digest floor (the floor plus reading and hashing, once, each file the run renamed
into place: the least any tracer that attests a build's outputs must add, so liubai minus the digest floor
is what its model and checks cost); ``strace -f -e trace=execve,openat -o /dev/null``; and ``auditd`` logging
execve/execveat/open/openat/openat2/creat of the workload's processes (scoped by login uid, see ``auditd_arm``).
Needs root, tracefs, bcc and strace; without a usable auditd the bench says why in one line and runs the other
arms. The figures go to stdout as JSON, and a short table to stderr.

Example: sudo .venv/bin/python bench/ebpf_overhead.py --storm 2000 --reps 5 --json bench-ebpf.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from auditd_arm import AuditArm, rules_left, unavailable

from liubai.collector.live_events import LiveEvents
from liubai.collector.runs import RunCollector, RunInfo, ingest_run
from liubai.ebpf import procfs
from liubai.ebpf.events import EV_RENAME
from liubai.ebpf.loader import Tracer, preflight
from liubai.ebpf.run import RunResult, run_command
from liubai.lineage.store import open_store

SOURCE_TREES = ("/usr/lib/python3.11", "/usr/lib/python3/dist-packages")  # ~2,000 modules
FLOORS = ["floor", "digest_floor"]
ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "HOME": "/tmp"}


def _workloads(root: Path, storm: int) -> dict[str, list[str]]:
    (root / "in.txt").write_text("x" * 4096)
    tree = root / "tree"
    for i, src in enumerate(SOURCE_TREES):
        if Path(src).is_dir():
            shutil.copytree(src, tree / str(i), ignore=shutil.ignore_patterns("__pycache__"), symlinks=True)
    storm_sh = f"i=0; while [ $i -lt {storm} ]; do i=$((i+1)); cat in.txt > /dev/null; done"
    return {
        "storm": ["sh", "-c", storm_sh],
        "build": ["/usr/bin/python3", "-m", "compileall", "-q", "-f", "-j", "2", str(tree)],
    }


def _cpu() -> float:
    """CPU seconds used so far by this process and its reaped children (tracer and traced alike)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _own_cpu() -> float:
    """CPU seconds used so far by this process alone: the in-process tracer's reader, not the workload."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    return me.ru_utime + me.ru_stime


def _untraced(argv: list[str], cwd: Path) -> tuple[float, float]:
    c0, t0 = _cpu(), time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=ENV, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0, _cpu() - c0


def _strace(argv: list[str], cwd: Path) -> tuple[float, float]:
    cmd = ["strace", "-f", "-qq", "-e", "trace=execve,openat", "-o", "/dev/null", *argv]
    c0, t0 = _cpu(), time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=ENV, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0, _cpu() - c0


@contextmanager
def _as_other_arms(cwd: Path) -> Iterator[None]:
    """Run in-process traced commands from ``cwd`` with the other arms' environment and stdout discarded."""
    old = os.getcwd()
    os.chdir(cwd)
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(ENV)
    devnull = os.open(os.devnull, os.O_WRONLY)
    stdout = os.dup(1)
    os.dup2(devnull, 1)
    try:
        yield
    finally:
        os.dup2(stdout, 1)
        os.close(stdout)
        os.close(devnull)
        os.environ.clear()
        os.environ.update(saved)
        os.chdir(old)


def _traced(
    tracer: Tracer, argv: list[str], cwd: Path, start: Callable[[int, int], None]
) -> tuple[RunResult, float, float, float]:
    """Run ``argv`` traced as the other arms run it: its result, wall and CPU seconds (tracer and traced),
    and this process's own CPU seconds (the in-process reader's)."""
    with _as_other_arms(cwd):
        c0, t0, own0 = _cpu(), time.perf_counter(), _own_cpu()
        result = run_command(tracer, argv, start)
        wall, cpu, own = time.perf_counter() - t0, _cpu() - c0, _own_cpu() - own0
    if result.exit_code != 0:
        raise RuntimeError(f"traced {argv[0]} exited {result.exit_code}")
    return result, wall, cpu, own


class _Liubai:
    """One loaded tracer reused for every traced run (as one ``liubai trace`` would use it once)."""

    def __init__(self) -> None:
        t0 = time.perf_counter()
        self.tracer = Tracer()
        self.load_s = time.perf_counter() - t0
        self.last: dict[str, Any] = {}
        self.reader_cpu = 0.0  # this process's CPU seconds during the last run: the reader's
        self.live_events: Callable[..., LiveEvents] = LiveEvents  # ebpf_user_split varies its options

    def run(self, argv: list[str], cwd: Path, db: Path) -> tuple[float, float]:
        infos: list[RunInfo] = []
        live = self.live_events(self.tracer.decoder)
        self.tracer.on_raw(live, live.settle)
        lost_before = self.tracer.lost_events()

        def start(pid: int, start_ns: int) -> None:
            infos.append(
                RunInfo(
                    socket.gethostname(), pid, start_ns, tuple(argv), procfs.boot_offset_ns(), cwd=str(cwd)
                )
            )

        result, wall, cpu, self.reader_cpu = _traced(self.tracer, argv, cwd, start)
        t_post = time.perf_counter()
        collector = RunCollector(infos[0])
        for event in live.events():
            collector.add(event)
        post_s = time.perf_counter() - t_post
        store = open_store(f"sqlite:///{db}")
        t1 = time.perf_counter()
        try:
            stats = ingest_run(store, collector)
        finally:
            store.close()
        self.last = {
            "events": collector.events,
            "events_per_s": collector.events / wall,
            "lost_events": result.lost_events - lost_before,
            "processes": stats.processes,
            "file_accesses": stats.file_accesses,
            "ingest_s": time.perf_counter() - t1,
            "decode_after_run_s": post_s,
        }
        return wall, cpu


class _Floor:
    """The floor under the liubai arm (as ``node_agent``'s is under the node arm): liubai's loaded program,
    its root tracked the same way (``run_command``) and its ring buffer read by the same loop, each event
    only counted. What is left is the kernel's tracepoints, the in-kernel filter, the ring buffer and bcc's
    per-event callback: the part of liubai's overhead no user-space work can remove."""

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer
        self.events = 0
        self.lost = 0
        self.reader_cpu = 0.0

    def _count(self, _raw: bytes) -> None:
        self.events += 1

    def _settle(self) -> None:
        """The end of a batch of events: nothing to do here."""

    def run(self, argv: list[str], cwd: Path) -> tuple[float, float]:
        self.events = 0
        self.tracer.on_raw(self._count, self._settle)
        lost_before = self.tracer.lost_events()
        result, wall, cpu, self.reader_cpu = _traced(self.tracer, argv, cwd, lambda _pid, _start_ns: None)
        self.lost = result.lost_events - lost_before
        return wall, cpu


class _DigestFloor(_Floor):
    """The floor plus the least a tracer that vouches for what a run wrote must add: read and hash each
    file the run renamed into place (how compileall, like most build tools, writes), once, at the end of
    the batch of events that named it. No descriptor model, no check, no other name: a lower bound on the
    cost of liubai's written-file digests (``hashed``: how many it read)."""

    def __init__(self, tracer: Tracer) -> None:
        super().__init__(tracer)
        self._named: list[str] = []
        self.hashed = 0

    def _count(self, raw: bytes) -> None:
        super()._count(raw)
        if raw[0] == EV_RENAME:
            new = self.tracer.decoder.os_paths(raw)[1]
            if new is not None and new.startswith("/"):
                self._named.append(new)

    def _settle(self) -> None:
        for path in self._named:
            try:
                with open(path, "rb") as fh:
                    hashlib.file_digest(fh, "sha256")
                self.hashed += 1
            except OSError:
                pass
        self._named.clear()

    def run(self, argv: list[str], cwd: Path) -> tuple[float, float]:
        self.hashed = 0
        self._named.clear()
        return super().run(argv, cwd)


def _paired(times: dict[str, list[float]]) -> dict[str, float]:
    """Per arm, the median over repetitions of its time / the untraced time of the same repetition, as a
    time (x the untraced median) so that ``_overheads`` reads it like a median."""
    base = statistics.median(times["untraced"])
    return {
        arm: base * statistics.median(t / u for t, u in zip(v, times["untraced"], strict=True))
        for arm, v in times.items()
    }


def _overheads(t: dict[str, float], peers: list[str]) -> dict[str, Any]:
    """Overhead of each traced arm vs untraced (%), and liubai's overhead as a fraction of each peer's."""
    over = {arm: t[arm] / t["untraced"] - 1 for arm in ["liubai", *FLOORS, *peers]}
    out: dict[str, Any] = {f"{arm}_overhead_pct": round(100 * v, 1) for arm, v in over.items()}
    for peer in peers:  # a floor is not a peer: it is a part of liubai
        out[f"liubai_over_{peer}_overhead"] = (
            round(over["liubai"] / over[peer], 3) if over[peer] > 0 else None
        )
    return out


def _bench(
    lb: _Liubai,
    floor: _Floor,
    digest_floor: _DigestFloor,
    audit: AuditArm | None,
    root: Path,
    args: argparse.Namespace,
    report: dict[str, Any],
) -> None:
    """All arms of each workload, interleaved (order reversed every other repetition)."""
    peers = ["strace"] + (["auditd"] if audit else [])
    for name, argv in _workloads(root, args.storm).items():
        if name not in args.workloads:
            continue
        arm_names = ["untraced", "liubai", *FLOORS, *peers]
        times: dict[str, list[float]] = {arm: [] for arm in arm_names}
        cpus: dict[str, list[float]] = {arm: [] for arm in arm_names}
        readers: dict[str, _Liubai | _Floor] = {"liubai": lb, "floor": floor, "digest_floor": digest_floor}
        own: dict[str, list[float]] = {arm: [] for arm in readers}
        details: list[dict[str, Any]] = []
        floor_events: list[int] = []
        floor_lost = 0
        digest_floor_hashed: list[int] = []
        audit_lost = 0
        _untraced(argv, root)  # warm the page cache
        for rep in range(args.reps):
            arms: list[tuple[str, Callable[[], tuple[float, float]]]] = [
                ("untraced", partial(_untraced, argv, root)),
                ("liubai", partial(lb.run, argv, root, root / f"{name}-{rep}.db")),
                ("floor", partial(floor.run, argv, root)),
                ("digest_floor", partial(digest_floor.run, argv, root)),
                ("strace", partial(_strace, argv, root)),
            ]
            if audit:
                arms.append(("auditd", partial(_audited, audit, argv, root)))
            for arm, fn in arms if rep % 2 == 0 else list(reversed(arms)):
                wall, cpu = fn()
                times[arm].append(wall)
                cpus[arm].append(cpu)
                if arm in readers:
                    own[arm].append(readers[arm].reader_cpu)
                if arm == "liubai":
                    details.append(lb.last)
                if arm == "floor":
                    floor_events.append(floor.events)
                    floor_lost = max(floor_lost, floor.lost)
                if arm == "digest_floor":
                    digest_floor_hashed.append(digest_floor.hashed)
                    floor_lost = max(floor_lost, digest_floor.lost)
                if arm == "auditd" and audit:
                    audit_lost += audit.last_lost
        med = {arm: statistics.median(v) for arm, v in times.items()}
        best = {arm: min(v) for arm, v in times.items()}
        cpu_med = {arm: statistics.median(v) for arm, v in cpus.items()}
        entry: dict[str, Any] = {
            "command": " ".join(argv[:6]),
            "median_s": {k: round(v, 3) for k, v in med.items()},
            "min_s": {k: round(v, 3) for k, v in best.items()},
            "all_s": {k: [round(x, 3) for x in v] for k, v in times.items()},
            # on a shared machine the fastest run of each arm is the least disturbed one: report both
            "wall_median": _overheads(med, peers),
            "wall_min": _overheads(best, peers),
            # CPU time (tracer + traced) is far less disturbed by other load than wall time
            "cpu_median_s": {k: round(v, 3) for k, v in cpu_med.items()},
            "cpu_median": _overheads(cpu_med, peers),
            # the reader's own CPU (steady where wall time is not): on cores the workload fills, each
            # second of it is a second taken from the workload
            "reader_cpu_median_s": {k: round(statistics.median(v), 3) for k, v in own.items()},
            "wall_paired": _overheads(_paired(times), peers),
            "cpu_paired": _overheads(_paired(cpus), peers),
        }
        wall_over, cpu_over = entry["wall_median"], entry["cpu_median"]
        if audit:
            entry["auditd_records_lost"] = audit_lost
        report["workloads"][name] = {
            **entry,
            "events": statistics.median(d["events"] for d in details),
            "events_per_s": round(statistics.median(d["events_per_s"] for d in details)),
            "lost_events": max(d["lost_events"] for d in details),
            "processes": details[-1]["processes"],
            "ingest_s": round(statistics.median(d["ingest_s"] for d in details), 3),
            "decode_after_run_s": round(statistics.median(d["decode_after_run_s"] for d in details), 3),
            "floor_overhead_pct": wall_over["floor_overhead_pct"],
            "floor_cpu_overhead_pct": cpu_over["floor_overhead_pct"],
            "floor_events": statistics.median(floor_events),
            "floor_lost_events": floor_lost,
            "digest_floor_overhead_pct": wall_over["digest_floor_overhead_pct"],
            "digest_floor_files_hashed": statistics.median(digest_floor_hashed),
        }


def _table(report: dict[str, Any]) -> str:
    """Overhead vs untraced, % (wall median / wall min, CPU median, paired wall / CPU) of each arm, floor
    beside liubai."""
    cols = ["wall_median", "wall_min", "cpu_median", "wall_paired", "cpu_paired"]
    rows = ["workload  arm           wall med  wall min   cpu med wall pair  cpu pair"]
    for name, w in report["workloads"].items():
        for arm in [a for a in w["median_s"] if a != "untraced"]:
            key = f"{arm}_overhead_pct"
            rows.append(f"{name:9} {arm:12}" + "".join(f" {w[c][key]:9}" for c in cols))
    return "\n".join(rows)


def _audited(audit: AuditArm, argv: list[str], cwd: Path) -> tuple[float, float]:
    wall, cpu, audit.last_lost = audit.run(argv, cwd, ENV)
    return wall, cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--storm", type=int, default=2000, help="processes in the storm workload (>= 2000)")
    ap.add_argument("--reps", type=int, default=5, help="runs per arm (median and minimum reported)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument(
        "--workloads",
        nargs="+",
        choices=["storm", "build"],
        default=["storm", "build"],
        help="run only these",
    )
    args = ap.parse_args()
    problems = preflight()
    if problems or shutil.which("strace") is None:
        print("cannot benchmark: " + "; ".join(problems or ["strace is not installed"]), file=sys.stderr)
        return 2
    # SIGTERM/SIGINT unwind through the finally blocks: the audit rule and daemon never outlive the bench
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    no_audit = unavailable()
    if no_audit:
        print(f"auditd arm skipped: {no_audit}", file=sys.stderr)
    lb = _Liubai()
    floor, digest_floor = _Floor(lb.tracer), _DigestFloor(lb.tracer)
    report: dict[str, Any] = {"bpf_load_s": round(lb.load_s, 3), "reps": args.reps, "workloads": {}}
    report["auditd"] = no_audit or "ran"
    try:
        with tempfile.TemporaryDirectory(prefix="liubai-bench-") as tmp:
            if no_audit:
                _bench(lb, floor, digest_floor, None, Path(tmp), args, report)
            else:
                with AuditArm() as audit:
                    _bench(lb, floor, digest_floor, audit, Path(tmp), args, report)
    finally:
        if not no_audit and rules_left():
            print("auditd arm: bench rules are still loaded: " + "; ".join(rules_left()), file=sys.stderr)
    lb.tracer.close()
    print(json.dumps(report, indent=2))
    print(_table(report), file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
