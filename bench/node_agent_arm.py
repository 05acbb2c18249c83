"""The real node agent as a bench arm: ``liubai agent --ebpf --follow`` as its own process, shipping to a
real API, so its CPU and RSS are the whole agent's (BPF reading, the collector's windows, the fsynced
journal, batch encoding and HTTP shipping), read from ``/proc/<pid>``.

The API is a real ``uvicorn`` server over a SQLite store in its own process, niced to 19: in a cluster it
runs on another machine, here it shares the two cores, so it should take what the workload leaves. Its
CPU is reported apart, never counted as the agent's.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from auditd_arm import _task_cpu

from liubai.collector.node_journal import JOURNAL_NAME
from tests.hardening.conftest import ROOT, ApiServer, agent_argv, status

__all__ = ["AgentProcess", "BenchApi", "rss_mb"]

_LOST = re.compile(rb"the kernel dropped (\d+) events")


def rss_mb(pid: int | str, field: str = "VmRSS") -> float:
    """``field`` (VmRSS now, VmHWM the peak) of ``/proc/<pid>/status`` in MB; 0 if it is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0.0
    for line in lines:
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


class BenchApi:
    """The API the agent arm ships to, for the whole bench run."""

    def __init__(self, workdir: Path) -> None:
        self.server = ApiServer(f"sqlite:///{workdir / 'bench-node.db'}", {}, workdir / "api.log")
        self.server.start()
        assert self.server.proc is not None
        self.pid = self.server.proc.pid
        subprocess.run(["renice", "-n", "19", "-p", str(self.pid)], check=True, stdout=subprocess.DEVNULL)

    @property
    def url(self) -> str:
        return self.server.url

    def cpu_s(self) -> float:
        return _task_cpu(self.pid)

    def close(self) -> None:
        self.server.stop()


class AgentProcess:
    """One ``liubai agent --ebpf --follow`` (root), started and waited on until its first window is in its
    journal (the BPF program loaded and recording): its start is not part of what an arm times."""

    def __init__(self, api: BenchApi, state: Path, window_s: float) -> None:
        self.state = state
        self.journal = state / JOURNAL_NAME
        extra = ("--window", str(window_s), "--poll", "0.2", "--node-name", "bench-node")
        extra += ("--trace-socket", "off", "--name", "bench-node-agent")
        self.log = state.parent / f"{state.name}.log"
        t0 = time.perf_counter()
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                agent_argv(api.url, state, "--ebpf", extra=extra), cwd=ROOT, stdout=out, stderr=out
            )
        self._wait("its first window", lambda: self.windows() > 0, 180)
        self.load_s = time.perf_counter() - t0

    def _wait(self, what: str, done: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"node agent exited {self.proc.returncode}: {self.log.read_text()[-2000:]}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"node agent: timed out waiting for {what}")
            time.sleep(0.05)

    def windows(self) -> int:
        try:
            return self.journal.read_bytes().count(b'{"window":')
        except FileNotFoundError:
            return 0

    def cpu_s(self) -> float:
        return _task_cpu(self.proc.pid)

    def rss_mb(self, field: str = "VmRSS") -> float:
        return rss_mb(self.proc.pid, field)

    def settle(self, timeout: float = 120) -> None:
        """Wait until the window holding everything so far is journaled and shipped (the journal's end
        is the agent's shipped position and nothing waits in its spool)."""
        seen = self.windows()
        self._wait("the next window to close", lambda: self.windows() >= seen + 2, timeout)

        def shipped() -> bool:
            st = status(self.state)
            offsets = [p.get("offset", 0) for p in st.get("positions", {}).values()]
            size = self.journal.stat().st_size
            return bool(offsets) and max(offsets) >= size and st.get("spool_pending", 1) == 0

        self._wait("the journal to be shipped", shipped, timeout)

    def close(self) -> dict[str, Any]:
        """Stop it (SIGTERM: its last window shipped); what it recorded and lost."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        data = self.journal.read_bytes() if self.journal.exists() else b""
        st = status(self.state)
        return {
            "exit": self.proc.returncode,
            "lost": sum(int(n) for n in _LOST.findall(data)),
            "records": sum(st.get("shipped_records", {}).values()),
            "batches": st.get("sent_batches", 0) + st.get("duplicate_batches", 0),
            "load_s": round(self.load_s, 2),
        }
