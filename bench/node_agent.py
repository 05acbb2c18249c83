"""The node tracer on container workloads: overhead beside auditd, exec rate with 0 lost, 100 containers.

Every workload runs in a real runc container (busybox-static rootfs) in a kubelet-style pod cgroup.
Arms, in one run, interleaved (order reversed every other repetition):

* untraced: no program loaded;
* agent: the real ``liubai agent --ebpf --follow`` process shipping to a real API (``node_agent_arm``):
  its CPU (from /proc) is added to the workload's; its start (BPF load) is not timed, and its CPU runs
  until the window holding the workload is journaled and shipped;
* node: ``NodeTracer`` loaded in this process and read by a thread (decode and model, no collector, no
  journal, no shipping);
* floor: the same program loaded and its events only counted (the kernel side and bcc's callback);
* auditd: exec and open syscalls of the containers' processes, scoped by the login uid set on
  ``runc run`` and inherited by everything in the container (``auditd_arm``).

Workloads:

* service: a request loop doing about ``--service-rate`` opens a second (default 1,000) when run flat out
  untraced: per request it reads a config file, writes a state file and does a fixed amount of shell
  arithmetic, calibrated at the start of the run (the ≤ 5% target is about this kind of workload);
* open-loop: the same reads and writes with no work between them (about 100,000 opens/s: far above any
  service, the tracer's worst case for opens);
* storm: short ``cat`` processes, each opening a file (execs and opens).

Then: the exec rate the tracer keeps up with, 1, 2 and 4 storm containers at once (execs/s and lost
events; the highest rate with none lost), and the real agent's RSS and CPU while 100 containers each
exec once a second. Needs root, tracefs, bcc, runc and busybox-static.

Example: sudo .venv/bin/python bench/node_agent.py --reps 3 --json bench-node.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the runc harness lives in tests/
sys.path.insert(0, str(Path(__file__).resolve().parent))

from auditd_arm import AuditArm, rules_left, unavailable
from node_agent_arm import AgentProcess, BenchApi

from liubai.ebpf import cgroups
from liubai.ebpf.events import ExecEvent
from liubai.ebpf.loader import preflight
from liubai.ebpf.node import NodeEvent, NodeTracer
from tests.runc_pod import PodContainer, new_pod_uid, runc_missing

ENV = {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "LC_ALL": "C", "HOME": "/tmp"}


def _request_loop(requests: int, spin: int) -> str:
    """``requests`` requests, each reading the config, writing a state file and ``spin`` shell steps."""
    work = f"j=0; while [ $j -lt {spin} ]; do j=$((j+1)); done; " if spin else ""
    return (
        f"i=0; while [ $i -lt {requests} ]; do read x < /data/config.txt; "
        f'echo "$i $x" > /tmp/state; {work}i=$((i+1)); done'
    )


def _scripts(args: argparse.Namespace, spin: int) -> dict[str, str]:
    return {
        "service": _request_loop(args.requests, spin),
        "open-loop": _request_loop(args.open_loop, 0),
        "storm": f"i=0; while [ $i -lt {args.storm} ]; do cat /data/config.txt > /dev/null; i=$((i+1)); done",
    }


def _calibrate(rate: float) -> tuple[int, float]:
    """The shell steps per request that make the untraced request loop open about ``rate`` files a second
    (two opens per request), and the rate reached; median of three short runs per try."""
    spin, reached = 100, 0.0
    for _ in range(4):
        walls = sorted(_untraced(_request_loop(300, spin))[0] for _ in range(3))
        reached = 600 / walls[1]
        spin = max(1, round(spin * reached / rate))
    walls = sorted(_untraced(_request_loop(300, spin))[0] for _ in range(3))
    return spin, 600 / walls[1]


def _cpu() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class _Reader:
    """A loaded NodeTracer read by a thread; counts events and execs."""

    def __init__(self) -> None:
        t0 = time.perf_counter()
        self.tracer = NodeTracer()
        self.tracer.start()
        self.load_s = time.perf_counter() - t0
        self.events = 0
        self.execs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _count(self, got: list[NodeEvent]) -> None:
        self.events += len(got)
        self.execs += sum(isinstance(e.event, ExecEvent) for e in got)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._count(self.tracer.poll(100))
        self._count(self.tracer.flush())

    def close(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join()
        out = {"events": self.events, "execs": self.execs, "lost": self.tracer.lost_events()}
        self.tracer.close()
        return out


class _FloorReader:
    """The floor of the node arm: the same program loaded and its ring buffer emptied by a thread, each
    event only counted (no decode, no /proc reads, no model): what the kernel side and bcc's per-event
    callback cost before any of liubai's user-space work."""

    def __init__(self) -> None:
        t0 = time.perf_counter()
        self.tracer = NodeTracer()
        self.tracer.start()
        self.load_s = time.perf_counter() - t0
        loaded = self.tracer._tracer
        assert loaded is not None
        self.loaded = loaded
        self.events = 0
        loaded.on_raw(self._count)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _count(self, _raw: bytes) -> None:
        self.events += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self.loaded.poll(100)
        self.loaded.drain()

    def close(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join()
        out = {"events": self.events, "lost": self.tracer.lost_events()}
        self.tracer.close()
        return out


def _container(script: str) -> tuple[PodContainer, list[str]]:
    box = PodContainer(new_pod_uid())
    return box, box.command(script)


def _untraced(script: str) -> tuple[float, float, dict[str, Any]]:
    box, cmd = _container(script)
    try:
        c0, t0 = _cpu(), time.perf_counter()
        subprocess.run(cmd, env=ENV, check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        return time.perf_counter() - t0, _cpu() - c0, {}
    finally:
        box.delete()


def _traced(
    reader_of: Callable[[], _Reader | _FloorReader], script: str
) -> tuple[float, float, dict[str, Any]]:
    """The container run under a loaded reader (its load apart); the events still queued at the end are
    read and counted in the CPU time."""
    reader = reader_of()
    box, cmd = _container(script)
    try:
        c0, t0 = _cpu(), time.perf_counter()
        subprocess.run(cmd, env=ENV, check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        counts = reader.close()
        return wall, _cpu() - c0, {**counts, "load_s": reader.load_s}
    finally:
        box.delete()


def _agent(api: BenchApi, window_s: float, script: str) -> tuple[float, float, dict[str, Any]]:
    """The container run beside the real agent; CPU: the workload's plus the agent's from the run's start
    until the window holding it is journaled and shipped (its idle rate, taken before, reported apart)."""
    with tempfile.TemporaryDirectory(prefix="bench-agent-") as tmp:
        agent = AgentProcess(api, Path(tmp) / "state", window_s)
        try:
            time.sleep(1.0)  # past its start's last work
            i0, ti = agent.cpu_s(), time.perf_counter()
            time.sleep(2.0)
            idle_pct = 100 * (agent.cpu_s() - i0) / (time.perf_counter() - ti)
            box, cmd = _container(script)
            try:
                a0, api0, c0, t0 = agent.cpu_s(), api.cpu_s(), _cpu(), time.perf_counter()
                subprocess.run(cmd, env=ENV, check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
                wall = time.perf_counter() - t0
                work_cpu = _cpu() - c0
                agent.settle()
                agent_cpu = agent.cpu_s() - a0
                more = {
                    "agent_cpu_s": round(agent_cpu, 3),
                    "agent_idle_cpu_pct": round(idle_pct, 2),
                    "settled_after_s": round(time.perf_counter() - t0 - wall, 2),
                    "api_cpu_s": round(api.cpu_s() - api0, 3),
                    "agent_rss_mb": round(agent.rss_mb(), 1),
                }
            finally:
                box.delete()
        finally:
            counts = agent.close()
    if counts["exit"] != 0:
        raise RuntimeError(f"node agent exited {counts['exit']}")
    return wall, work_cpu + agent_cpu, {**more, **counts}


def _audited(audit: AuditArm, script: str) -> tuple[float, float, dict[str, Any]]:
    box, cmd = _container(script)
    try:
        wall, cpu, lost = audit.run(cmd, Path("/tmp"), ENV)
        return wall, cpu, {"lost": lost}
    finally:
        box.delete()


def _pct(t: dict[str, float], arm: str) -> float:
    return round(100 * (t[arm] / t["untraced"] - 1), 1)


def _overhead(audit: AuditArm | None, api: BenchApi, spin: int, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, script in _scripts(args, spin).items():
        if name not in args.workloads:
            continue
        every: list[tuple[str, Callable[[], tuple[float, float, dict[str, Any]]]]] = [
            ("untraced", partial(_untraced, script)),
            ("agent", partial(_agent, api, args.agent_window, script)),
            ("node", partial(_traced, _Reader, script)),
            ("floor", partial(_traced, _FloorReader, script)),
        ]
        if audit is not None:
            every.append(("auditd", partial(_audited, audit, script)))
        arms = [(a, fn) for a, fn in every if a == "untraced" or a in args.arms]
        walls: dict[str, list[float]] = {a: [] for a, _ in arms}
        cpus: dict[str, list[float]] = {a: [] for a, _ in arms}
        extra: dict[str, list[dict[str, Any]]] = {a: [] for a, _ in arms}
        _untraced(script)  # warm up
        for rep in range(args.reps):
            for arm, fn in arms if rep % 2 == 0 else list(reversed(arms)):
                wall, cpu, more = fn()
                walls[arm].append(wall)
                cpus[arm].append(cpu)
                extra[arm].append(more)
        med = {a: statistics.median(v) for a, v in walls.items()}
        cpu = {a: statistics.median(v) for a, v in cpus.items()}
        entry: dict[str, Any] = {
            "wall_median_s": {a: round(v, 3) for a, v in med.items()},
            "cpu_median_s": {a: round(v, 3) for a, v in cpu.items()},
            "all_wall_s": {a: [round(x, 3) for x in v] for a, v in walls.items()},
        }
        for arm in med:  # floor: kernel + ring buffer only, no decode, no model
            if arm != "untraced":
                entry[f"{arm}_wall_overhead_pct"] = _pct(med, arm)
                entry[f"{arm}_cpu_overhead_pct"] = _pct(cpu, arm)
        if extra.get("agent"):
            got = extra["agent"]
            for key in ("agent_cpu_s", "agent_idle_cpu_pct", "settled_after_s", "records", "batches"):
                entry[key if key.startswith("agent_") else f"agent_{key}"] = statistics.median(
                    e[key] for e in got
                )
            entry["agent_lost_events"] = max(e["lost"] for e in got)
            entry["agent_rss_mb"] = max(e["agent_rss_mb"] for e in got)
            entry["agent_start_s"] = statistics.median(e["load_s"] for e in got)
            entry["api_cpu_s"] = statistics.median(e["api_cpu_s"] for e in got)
        if extra.get("node"):
            entry["node_events"] = statistics.median(e["events"] for e in extra["node"])
            entry["node_lost_events"] = max(e["lost"] for e in extra["node"])
            entry["bpf_load_s"] = round(statistics.median(e["load_s"] for e in extra["node"]), 2)
        if "auditd" in med:
            entry["auditd_records_lost"] = sum(e["lost"] for e in extra["auditd"])
            a_over = med["auditd"] / med["untraced"] - 1
            for arm in ("node", "agent"):
                if arm in med:
                    entry[f"{arm}_over_auditd_wall_overhead"] = (
                        round((med[arm] / med["untraced"] - 1) / a_over, 3) if a_over > 0 else None
                    )
        out[name] = entry
    return out


def _exec_rate(args: argparse.Namespace) -> dict[str, Any]:
    """Storm containers at once under the tracer: execs/s the kernel reported and lost events."""
    script = _scripts(args, 0)["storm"]
    levels: dict[str, Any] = {}
    best = 0.0
    for parallel in (1, 2, 4):
        reader = _Reader()
        boxes = [_container(script) for _ in range(parallel)]
        try:
            t0 = time.perf_counter()
            procs = [
                subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
                for _, cmd in boxes
            ]
            for p in procs:
                p.wait()
            wall = time.perf_counter() - t0
            counts = reader.close()
        finally:
            for box, _ in boxes:
                box.delete()
        rate = counts["execs"] / wall
        levels[str(parallel)] = {"execs": counts["execs"], "execs_per_s": round(rate), "lost": counts["lost"]}
        if counts["lost"] == 0:
            best = max(best, rate)
    return {"levels": levels, "highest_execs_per_s_with_0_lost": round(best)}


def _hundred(api: BenchApi, args: argparse.Namespace) -> dict[str, Any]:
    """The real agent's RSS and CPU while ``args.containers`` containers each exec once a second."""
    boxes: list[PodContainer] = []
    with tempfile.TemporaryDirectory(prefix="bench-agent-") as tmp:
        agent = AgentProcess(api, Path(tmp) / "state", args.hundred_agent_window)
        try:
            rss_loaded = agent.rss_mb()
            for _ in range(args.containers):
                box = PodContainer(new_pod_uid())
                box.start("while true; do cat /data/config.txt > /dev/null; sleep 1; done", detach=True)
                boxes.append(box)
            time.sleep(2)
            a0, api0, t0 = agent.cpu_s(), api.cpu_s(), time.perf_counter()
            time.sleep(args.window)
            span = time.perf_counter() - t0
            cpu, api_cpu = agent.cpu_s() - a0, api.cpu_s() - api0
            rss, peak = agent.rss_mb(), agent.rss_mb("VmHWM")
        finally:
            for box in boxes:
                box.delete()
            counts = agent.close()
    return {
        "containers": args.containers,
        "agent_window_s": args.hundred_agent_window,
        "window_s": round(span, 1),
        "agent_cpu_pct_of_one_core": round(100 * cpu / span, 2),
        "agent_rss_mb_loaded": round(rss_loaded, 1),
        "agent_rss_mb_with_containers": round(rss, 1),
        "agent_rss_mb_peak": round(peak, 1),
        "api_cpu_pct_of_one_core": round(100 * api_cpu / span, 2),
        "records_shipped": counts["records"],
        "batches_shipped": counts["batches"],
        "lost_events": counts["lost"],
        "agent_exit": counts["exit"],
    }


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--service-rate", type=float, default=1000, help="opens/s of the service, untraced")
    ap.add_argument("--requests", type=int, default=2500, help="requests of the service workload")
    ap.add_argument("--open-loop", type=int, default=20000, help="iterations of the open loop")
    ap.add_argument("--storm", type=int, default=1000, help="processes per storm container")
    ap.add_argument("--containers", type=int, default=100)
    ap.add_argument("--window", type=float, default=20.0, help="seconds the 100 containers are measured")
    ap.add_argument("--agent-window", type=float, default=1.0, help="the agent's window in overhead runs")
    ap.add_argument(
        "--hundred-agent-window", type=float, default=10.0, help="the agent's window beside 100 containers"
    )
    ap.add_argument(
        "--workloads",
        type=_names,
        default=("service", "open-loop", "storm"),
        help="comma list (default: all)",
    )
    ap.add_argument(
        "--parts",
        type=_names,
        default=("exec-rate", "hundred"),
        help="after the overhead runs (default: all)",
    )
    ap.add_argument(
        "--arms",
        type=_names,
        default=("agent", "node", "floor", "auditd"),
        help="beside untraced (default: all)",
    )
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    problems = preflight()
    reason = runc_missing()
    if problems or reason:
        print("cannot benchmark: " + "; ".join([*problems, *([reason] if reason else [])]), file=sys.stderr)
        return 2
    mount = cgroups.cgroup2_mount()
    made = mount is not None and not os.path.isdir(os.path.join(mount, "kubepods.slice"))
    if mount is not None and made:
        os.mkdir(os.path.join(mount, "kubepods.slice"))  # what a kubelet creates when it starts
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    no_audit = unavailable() if "auditd" in args.arms else "not asked for (--arms)"
    if no_audit:
        print(f"auditd arm skipped: {no_audit}", file=sys.stderr)
    report: dict[str, Any] = {"reps": args.reps, "auditd": no_audit or "ran"}
    workdir = tempfile.TemporaryDirectory(prefix="bench-node-")
    api = BenchApi(Path(workdir.name))
    try:
        spin, rate = _calibrate(args.service_rate)
        report["service_calibration"] = {"spin_per_request": spin, "untraced_opens_per_s": round(rate)}
        if no_audit:
            report["overhead"] = _overhead(None, api, spin, args)
        else:
            with AuditArm() as audit:
                report["overhead"] = _overhead(audit, api, spin, args)
        if "exec-rate" in args.parts:
            report["exec_rate"] = _exec_rate(args)
        if "hundred" in args.parts:
            report["hundred_containers"] = _hundred(api, args)
    finally:
        api.close()
        workdir.cleanup()
        if not no_audit and rules_left():
            print("auditd arm: bench rules are still loaded: " + "; ".join(rules_left()), file=sys.stderr)
        if mount is not None and made:
            for h in [mount, *(e.path for e in os.scandir("/sys/fs/cgroup") if e.is_dir())]:
                for dirpath, _d, _f in os.walk(os.path.join(h, "kubepods.slice"), topdown=False):
                    try:
                        os.rmdir(dirpath)
                    except OSError:
                        pass
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
