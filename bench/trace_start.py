"""Start-up cost of ``liubai trace -- true`` beside ``strace -f true`` and plain ``true``.

Every CI step traced with ``liubai trace`` pays this once. Arms, interleaved (order reversed every other
repetition), median and minimum wall time of each:

* ``true`` and ``strace -f -o /dev/null true``: the floor and the ptrace peer;
* ``liubai trace -- true`` as shipped (bytecode cache warm, detach in the background);
* the same with ``LIUBAI_BPF_CACHE=off`` (a machine's first start: clang compiles the program);
* ``--before PYTHONPATH``: the same command from another tree (e.g. the commit before these changes);
* ``--agent``: ``liubai trace`` handing its command to a running agent started for the bench: the real
  node agent (``liubai agent --ebpf``, its node-mode program loaded once, shipping to nowhere) where it
  starts, else the stand-in ``liubai.collector.handoff_server`` (the report says which, and why);
  ``--agent-socket PATH`` uses one already running.

Then a phase breakdown in fresh processes: interpreter start, the trace command's imports, bcc import,
preflight, program render, cache read or clang compile, load, attach, the run, decoding, the store write
and the detach (in the background as ``liubai trace`` does, and synchronously, as it did).

Runs back to back like CI steps: a run's background detach may still hold the kernel's tracepoint mutex
when the next run attaches; that cost is in the liubai arms. Needs root, tracefs, bcc and strace.

Example: sudo .venv/bin/python bench/trace_start.py --reps 9 --json bench-trace-start.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

PHASE_CHILD = "--phase-child"


def _wall(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, check=False)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:6])} exited {done.returncode}: {done.stderr.decode()[-400:]}")
    return wall


def _liubai(store: Path, extra: list[str] | None = None) -> list[str]:
    return [
        sys.executable,
        "-m",
        "liubai.api.cli.main",
        "--store",
        f"sqlite:///{store}",
        "trace",
        *(extra or []),
    ]


def _arms(args: argparse.Namespace, tmp: Path) -> dict[str, tuple[list[str], dict[str, str]]]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "LIUBAI_BPF_CACHE")}
    env["LIUBAI_BPF_CACHE"] = str(tmp / "bpf-cache")
    env["LIUBAI_AGENT_SOCKET"] = "off"  # an agent on this machine would take the arms meant to load
    arms: dict[str, tuple[list[str], dict[str, str]]] = {
        "true": (["true"], env),
        "strace -f true": (["strace", "-f", "-qq", "-o", "/dev/null", "true"], env),
        "liubai trace -- true": ([*_liubai(tmp / "warm.db"), "--", "true"], env),
        "liubai trace, no bytecode cache": (
            [*_liubai(tmp / "cold.db"), "--", "true"],
            {**env, "LIUBAI_BPF_CACHE": "off"},
        ),
    }
    if args.before:
        arms["liubai trace, before"] = (
            [*_liubai(tmp / "before.db"), "--", "true"],
            {**env, "PYTHONPATH": args.before, "LIUBAI_BPF_CACHE": "off"},
        )
    if args.agent_socket:
        arms["liubai trace via the agent"] = (
            [*_liubai(tmp / "agent.db"), "--", "true"],
            {**env, "LIUBAI_AGENT_SOCKET": str(args.agent_socket)},
        )
    return arms


def _end_to_end(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    arms = _arms(args, tmp)
    for argv, env in arms.values():  # warm page cache, bytecode cache and .pyc files
        _wall(argv, env, tmp)
    times: dict[str, list[float]] = {name: [] for name in arms}
    for rep in range(args.reps):
        order = list(arms) if rep % 2 == 0 else list(reversed(arms))
        for name in order:
            argv, env = arms[name]
            times[name].append(_wall(argv, env, tmp))
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "median_s": {k: round(v, 3) for k, v in med.items()},
        "min_s": {k: round(min(v), 3) for k, v in times.items()},
        "all_s": {k: [round(x, 3) for x in v] for k, v in times.items()},
        "vs_strace": {
            k: round(v / med["strace -f true"], 1) for k, v in med.items() if k.startswith("liubai")
        },
    }


class _Laps:
    """Seconds since the last lap, added to the named phase."""

    def __init__(self) -> None:
        self.phases: dict[str, float] = {}
        self._t = time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.phases[name] = self.phases.get(name, 0.0) + now - self._t
        self._t = now


def _agent_phase_child(store: str) -> dict[str, float]:
    """``liubai trace -- true`` handed to the agent, taken apart (api/cli/trace.py's steps, each timed)."""
    lap = _Laps()
    phases = lap.phases

    from liubai.api.cli.main import _ONLY, _register

    _register(_ONLY[("trace",)])
    from liubai.collector.handoff_client import connect, run_with_agent
    from liubai.collector.runs import RunCollector, RunInfo, ingest_run
    from liubai.ebpf import procfs
    from liubai.lineage.store import open_store

    lap("imports (trace command)")
    channel = connect()
    lap("connect + hello")
    infos: list[RunInfo] = []

    def started(pid: int, start_ns: int) -> None:
        infos.append(RunInfo("bench", pid, start_ns, ("true",), procfs.boot_offset_ns(), cwd=os.getcwd()))

    run = run_with_agent(channel, ["true"], started, linger_s=5.0)
    lap("track, run, finish, events back")
    collector = RunCollector(infos[0])
    for event in run.events:
        collector.add(event)
    collector.info.end_ns = run.result.end_ns
    lap("decode")
    db = open_store(store)
    try:
        ingest_run(db, collector)
    finally:
        db.close()
    lap("store write")
    return phases


def _phase_child(mode: str, store: str) -> dict[str, float]:
    """One ``liubai trace -- true`` taken apart (the steps of api/cli/trace.py, each timed)."""
    lap = _Laps()
    phases = lap.phases

    from liubai.api.cli.main import _ONLY, _register

    _register(_ONLY[("trace",)])
    lap("imports (trace command)")
    import bcc

    attach: list[float] = []
    original = bcc.BPF.attach_tracepoint

    def timed_attach(self: Any, *a: Any, **kw: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return original(self, *a, **kw)
        finally:
            attach.append(time.perf_counter() - t0)

    bcc.BPF.attach_tracepoint = timed_attach  # type: ignore[method-assign]
    lap("import bcc")
    from liubai.collector.live_events import LiveEvents
    from liubai.collector.runs import RunCollector, RunInfo, ingest_run
    from liubai.ebpf import procfs
    from liubai.ebpf.loader import Tracer, preflight
    from liubai.ebpf.run import run_command
    from liubai.lineage.store import open_store

    lap("imports (trace command)")
    preflight()
    lap("preflight")
    tracer = Tracer()
    lap("tracer")
    timings = dict(tracer.timings)
    live = LiveEvents(tracer.decoder, lost=tracer.lost_events)
    tracer.on_raw(live, live.settle)
    infos: list[RunInfo] = []

    def started(pid: int, start_ns: int) -> None:
        live.start_at(pid, os.getcwd())
        infos.append(RunInfo("bench", pid, start_ns, ("true",), procfs.boot_offset_ns(), cwd=os.getcwd()))

    lap("tracer")
    result = run_command(tracer, ["true"], started, alive=live.alive, linger_s=5.0)
    lap("run")
    tracer.close(background=mode == "now")
    lap("detach (background)" if mode == "now" else "detach (synchronous)")
    collector = RunCollector(infos[0])
    for event in live.events():
        collector.add(event)
    collector.info.end_ns = result.end_ns
    lap("decode")
    db = open_store(store)
    try:
        ingest_run(db, collector)
    finally:
        db.close()
    lap("store write")
    tracer_s = phases.pop("tracer")
    phases["render"] = timings.get("render", 0.0)
    if tracer.origin == "cache":
        phases["bytecode cache read"] = timings["cache_read"]
        phases["load + attach (from cache)"] = timings["load_attach"]
    else:
        phases["attach (58 tracepoints)"] = sum(attach)
        phases["clang compile + load"] = timings["compile_load_attach"] - sum(attach)
        phases["bytecode cache write"] = timings.get("cache_write", 0.0)
    phases["other tracer set-up"] = tracer_s - sum(timings.values())
    return phases


def _phases(args: argparse.Namespace, tmp: Path, agent: Path | None) -> dict[str, dict[str, float]]:
    """Median per phase over ``reps`` fresh processes, for the path as shipped and the one before."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["LIUBAI_AGENT_SOCKET"] = str(agent) if agent else "off"
    out: dict[str, dict[str, float]] = {}
    modes = [("now", str(tmp / "bpf-cache")), ("before", "off")] + ([("agent", "off")] if agent else [])
    for mode, cache in modes:
        runs: list[dict[str, float]] = []
        interp: list[float] = []
        for _ in range(max(3, args.reps // 2)):
            interp.append(_wall([sys.executable, "-c", "pass"], env, tmp))
            done = subprocess.run(
                [sys.executable, __file__, PHASE_CHILD, mode, f"sqlite:///{tmp / ('ph-' + mode + '.db')}"],
                env={**env, "LIUBAI_BPF_CACHE": cache},
                cwd=tmp,
                capture_output=True,
                text=True,
                check=True,
            )
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        phases = {"python start": statistics.median(interp)}
        for name in runs[0]:
            phases[name] = statistics.median(r.get(name, 0.0) for r in runs)
        out[mode] = {k: round(v, 3) for k, v in phases.items()}
    return out


def _start_agent(tmp: Path) -> tuple[subprocess.Popen[str], str]:
    """An agent with its tracer loaded, serving ``tmp/agent.sock``, and what it is: the real node agent
    (``liubai agent --ebpf``) where it starts, else the stand-in, with the node agent's reason."""
    sock = tmp / "agent.sock"
    env = {**os.environ, "LIUBAI_BPF_CACHE": str(tmp / "bpf-cache")}
    log = tmp / "node-agent.log"
    node_argv = [
        *(sys.executable, "-m", "liubai.api.cli.main", "agent", "--server", "http://127.0.0.1:9"),
        *("--state-dir", str(tmp / "agent-state"), "--ebpf", "--trace-socket", str(sock)),
    ]
    with open(log, "w", encoding="utf-8") as out:
        node = subprocess.Popen(node_argv, stdout=out, stderr=out, text=True, env=env)
    deadline = time.monotonic() + 120
    while node.poll() is None and not sock.is_socket() and time.monotonic() < deadline:
        time.sleep(0.05)
    if sock.is_socket() and node.poll() is None:
        return node, "the node agent (liubai agent --ebpf)"
    if node.poll() is None:
        node.terminate()
        node.wait(timeout=60)
    lines = log.read_text(errors="replace").strip().splitlines() or ["no output"]
    why = lines[-1]
    agent = subprocess.Popen(
        [sys.executable, "-m", "liubai.collector.handoff_server", "--socket", str(sock)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert agent.stdout is not None
    if not agent.stdout.readline().startswith("ready"):
        raise RuntimeError("the hand-off agent did not start")
    threading.Thread(target=agent.stdout.read, daemon=True).start()  # keep its log from filling the pipe
    return agent, f"the stand-in (liubai.collector.handoff_server): the node agent did not start: {why}"


def _table(report: dict[str, Any]) -> str:
    lines = [f"end to end (median / min of {report['reps']}, alternating arms):"]
    if "agent" in report:
        lines.insert(0, f"agent: {report['agent']}")
    e2e = report["end_to_end"]
    for name, med in e2e["median_s"].items():
        ratio = f"  {e2e['vs_strace'][name]:>6.1f}x strace" if name in e2e["vs_strace"] else ""
        lines.append(f"  {name:<34} {med:7.3f} s  {e2e['min_s'][name]:7.3f} s{ratio}")
    titles = {
        "now": "without an agent (warm bytecode cache)",
        "before": "before (compile, synchronous detach)",
        "agent": "handed to the agent",
    }
    for mode, title in titles.items():
        if mode not in report["phases"]:
            continue
        lines.append(f"phases, {title}:")
        for name, sec in report["phases"][mode].items():
            lines.append(f"  {name:<34} {sec:7.3f} s")
    return "\n".join(lines)


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == PHASE_CHILD:
        mode, store = sys.argv[2], sys.argv[3]
        print(json.dumps(_agent_phase_child(store) if mode == "agent" else _phase_child(mode, store)))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=9, help="runs per arm (median and minimum reported)")
    ap.add_argument("--before", help="PYTHONPATH of another liubai tree to run as an arm (e.g. the old code)")
    ap.add_argument("--agent", action="store_true", help="start an agent and add the hand-off arm")
    ap.add_argument("--agent-socket", type=Path, help="also hand the command to the agent on this socket")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    from liubai.ebpf.loader import preflight

    problems = preflight()
    if problems or shutil.which("strace") is None:
        print("cannot benchmark: " + "; ".join(problems or ["strace is not installed"]), file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="liubai-bench-") as tmp:
        report: dict[str, Any] = {"reps": args.reps, "load_average": round(os.getloadavg()[0], 1)}
        agent = None
        if args.agent:
            agent, report["agent"] = _start_agent(Path(tmp))
        try:
            if agent is not None:
                args.agent_socket = Path(tmp, "agent.sock")
            report["end_to_end"] = _end_to_end(args, Path(tmp))
            report["phases"] = _phases(args, Path(tmp), args.agent_socket)
        finally:
            if agent is not None:
                agent.terminate()
                agent.wait(timeout=60)
    print(_table(report))
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
