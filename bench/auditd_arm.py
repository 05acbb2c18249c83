"""The Linux audit peer of the eBPF overhead bench: ``auditd`` writing the same syscalls liubai traces.

Scope: the workload's processes only, by login uid. Each audited run writes a bench-only value to
``/proc/self/loginuid`` before exec; the audit login uid is inherited by every descendant (as liubai follows
every descendant of the command) and nothing else on the machine carries it, so the rule

    -a always,exit -F arch=b64 -S execve,execveat,open,openat,openat2,creat -F auid=<that value>

records exactly the workload's execs and opens. (``-F ppid=`` would miss grandchildren; ``-F dir=`` would
miss opens outside one tree; a uid filter would need the workload to run as another user.)

Auditing is switched on (``auditctl -e 1``) only around the audited runs: processes forked while it is on
take the audit syscall path, which would otherwise tax the other arms. The daemon writes the records to
its log as it would in production (Debian defaults: ENRICHED format, incremental async flush). On exit,
whatever happens, the rule is deleted, the enabled flag and backlog limit are restored and the daemon
is stopped.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import subprocess
import time
from pathlib import Path

BENCH_AUID = 3_999_999_001  # an unused login uid marking the workload's processes
SYSCALLS = "execve,execveat,open,openat,openat2,creat"
KEY = "liubai-bench"


def _auditctl(*args: str) -> str:
    out = subprocess.run(["auditctl", *args], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"auditctl {' '.join(args)}: {(out.stderr or out.stdout).strip()}")
    return out.stdout


def _status() -> dict[str, str]:
    return dict(line.split(" ", 1) for line in _auditctl("-s").splitlines() if " " in line)


def unavailable() -> str | None:
    """Why the audit arm cannot run here, in one line, or None."""
    if shutil.which("auditd") is None or shutil.which("auditctl") is None:
        return "auditd is not installed (apt-get install auditd)"
    try:
        status = _status()
    except (RuntimeError, OSError) as exc:
        return f"the kernel audit interface is not usable here: {exc}"
    if status.get("pid", "0") != "0":
        return f"another audit daemon (pid {status['pid']}) owns the audit log"
    if status.get("enabled") == "2":
        return "the audit configuration is locked (enabled 2)"
    if not os.access("/proc/self/loginuid", os.W_OK):
        return "/proc/self/loginuid is not writable (no CAP_AUDIT_CONTROL)"
    return None


def _cpu() -> float:
    """CPU seconds of this process and its reaped children (as the bench's other arms count it)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _task_cpu(pid: int) -> float:
    """CPU seconds (user + system) of one task so far, from /proc/<pid>/stat; 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _kauditd() -> int | None:
    """The kernel thread that hands audit records to the daemon (its CPU is part of the audit cost)."""
    for stat in Path("/proc").glob("[0-9]*/comm"):
        try:
            if stat.read_text().strip() == "kauditd":
                return int(stat.parent.name)
        except OSError:
            continue
    return None


def _set_loginuid() -> None:
    """preexec: mark the workload's process tree with the bench login uid."""
    Path("/proc/self/loginuid").write_text(str(BENCH_AUID))


class AuditArm:
    """A running auditd with the bench rule; a context manager that undoes everything it changed."""

    rule = ["-F", "arch=b64", "-S", SYSCALLS, "-F", f"auid={BENCH_AUID}", "-k", KEY]

    def __init__(self) -> None:
        self.daemon: subprocess.Popen[bytes] | None = None
        self.saved: dict[str, str] = {}
        self.ruled = False
        self.last_lost = 0
        self.kauditd = _kauditd()

    def __enter__(self) -> AuditArm:
        self.saved = _status()
        try:
            # -n: stay in the foreground as our child, so we alone own and stop it
            self.daemon = subprocess.Popen(["auditd", "-n", "-s", "nochange"], stderr=subprocess.DEVNULL)
            for _ in range(100):
                if _status().get("pid") == str(self.daemon.pid):
                    break
                if self.daemon.poll() is not None:
                    raise RuntimeError(f"auditd exited {self.daemon.returncode} at start")
                time.sleep(0.05)
            else:
                raise RuntimeError("auditd did not register with the kernel")
            _auditctl("-e", "0")
            _auditctl("-b", "8192")  # Debian's default rules file sets this backlog
            _auditctl("-a", "always,exit", *self.rule)
            self.ruled = True
        except BaseException:
            self.close()
            raise
        return self

    def run(self, argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, int]:
        """One audited run: (wall s, CPU s, records lost by the kernel meanwhile).

        CPU counts the workload, the daemon and kauditd (as liubai's arm counts its tracer)."""
        lost0 = int(_status().get("lost", "0"))
        tasks = [p for p in (self.daemon.pid if self.daemon else None, self.kauditd) if p]
        _auditctl("-e", "1")
        try:
            c0, t0 = _cpu() + sum(map(_task_cpu, tasks)), time.perf_counter()
            subprocess.run(
                argv, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, preexec_fn=_set_loginuid
            )
            wall = time.perf_counter() - t0
            _auditctl("-e", "0")  # stop before sampling, then let the daemon drain what is queued
            time.sleep(0.2)
            cpu = _cpu() + sum(map(_task_cpu, tasks)) - c0
        finally:
            _auditctl("-e", "0")
        return wall, cpu, int(_status().get("lost", "0")) - lost0

    def close(self) -> None:
        steps = []
        if self.ruled:
            steps.append(("-d", "always,exit", *self.rule))
            self.ruled = False
        if self.saved:
            steps.append(("-b", self.saved.get("backlog_limit", "64")))
            steps.append(("-e", self.saved.get("enabled", "0")))
        for step in steps:
            try:
                _auditctl(*step)
            except RuntimeError as exc:
                print(f"auditd arm: could not undo: {exc}")
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
        self.daemon = None

    def __exit__(self, *exc: object) -> None:
        self.close()


def rules_left() -> list[str]:
    """Bench rules still loaded (should be none after a run)."""
    return [line for line in _auditctl("-l").splitlines() if re.search(rf"\bkey={KEY}\b", line)]
