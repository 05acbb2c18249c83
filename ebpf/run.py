"""Run a command (or attach to a running tree) under the loaded tracer, handing every event on.

The child is forked first and held on a pipe until its pid is in the kernel's tracked set, so even its
first exec and opens are seen. stdin/stdout/stderr are inherited untouched; Ctrl-C reaches the command
(same process group) while the tracer keeps recording, and SIGTERM/SIGHUP are forwarded.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING

from liubai.ebpf import procfs

if TYPE_CHECKING:  # a command handed to an agent runs through here without loading a tracer
    from liubai.ebpf.loader import Tracer

__all__ = [
    "RunResult",
    "attach_tree",
    "exit_status_code",
    "fork_held",
    "forward_signals",
    "release",
    "restore_signals",
    "run_command",
]


@dataclass(slots=True)
class RunResult:
    pid: int
    start_ns: int
    end_ns: int
    exit_code: int | None  # exit status, or -signal
    lost_events: int
    root_end_ns: int | None = None  # when the root ended (descendants may have been traced longer)


def exit_status_code(exit_code: int | None) -> int:
    """The shell-style exit code for a run's status: the code itself, 128+N for signal N."""
    if exit_code is None:
        return 1
    return 128 - exit_code if exit_code < 0 else exit_code


def run_command(
    tracer: Tracer,
    argv: Sequence[str],
    on_start: Callable[[int, int], None],
    *,
    poll_ms: int = 100,
    alive: Callable[[], int] | None = None,
    linger_s: float = 0.0,
) -> RunResult:
    """Fork ``argv`` held on a pipe, track it, release it, deliver events (to the callback set on
    ``tracer``) until it exits, then while ``alive()`` (processes of the tree still running) is
    positive, for at most ``linger_s`` seconds."""
    pid, ready_w = fork_held(argv)
    previous = forward_signals(pid)
    try:
        start = procfs.start_ns(pid)
        tracer.track(pid, start, os.getpid())
        on_start(pid, start)
        release(ready_w)
        status = _wait_polling(tracer, pid, poll_ms)
        root_end = procfs.clock_boot_ns()
        _linger(tracer, alive, linger_s, poll_ms)
        end = procfs.clock_boot_ns()
        tracer.drain()
    except BaseException:
        try:
            os.close(ready_w)
        except OSError:
            pass
        raise
    finally:
        restore_signals(previous)
    return RunResult(pid, start, end, os.waitstatus_to_exitcode(status), tracer.lost_events(), root_end)


def fork_held(argv: Sequence[str]) -> tuple[int, int]:
    """Fork the process that becomes ``argv``, held before its exec until ``release`` is called on the
    returned descriptor (closing it unreleased makes the process exit 126 without running anything)."""
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the command: wait until it is tracked, then become it
        os.close(ready_w)
        for sig in (signal.SIGPIPE, signal.SIGXFSZ):  # Python ignores these; the command must not
            signal.signal(sig, signal.SIG_DFL)
        try:
            go = os.read(ready_r, 1)
            os.close(ready_r)
            if not go:
                os._exit(126)
            os.execvp(argv[0], list(argv))
        except OSError as exc:
            os.write(2, f"liubai trace: cannot run {argv[0]}: {exc.strerror}\n".encode())
            os._exit(127 if exc.errno == errno.ENOENT else 126)
        finally:
            os._exit(127)
    os.close(ready_r)
    return pid, ready_w


def release(ready_w: int) -> None:
    """Let the held process run its command."""
    os.write(ready_w, b"1")
    os.close(ready_w)


def _linger(tracer: Tracer, alive: Callable[[], int] | None, linger_s: float, poll_ms: int) -> None:
    """Keep tracing descendants that outlive the root until they exit or ``linger_s`` passes."""
    if alive is None:
        return
    deadline = procfs.clock_boot_ns() + int(linger_s * 1e9)
    tracer.drain()
    while alive() > 0 and procfs.clock_boot_ns() < deadline:
        tracer.poll(poll_ms)


def _wait_polling(tracer: Tracer, pid: int, poll_ms: int) -> int:
    while True:
        tracer.poll(poll_ms)
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return 0
        if done:
            return status


def forward_signals(pid: int) -> dict[int, object]:
    """Ignore SIGINT/SIGQUIT (the terminal sends them to the command too); pass SIGTERM/SIGHUP on."""

    def forward(signum: int, _frame: FrameType | None) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    previous: dict[int, object] = {}
    # a handler (even a no-op) makes the ring-buffer wait return at once when the command exits
    previous[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, lambda _s, _f: None)
    for sig in (signal.SIGINT, signal.SIGQUIT):
        previous[sig] = signal.signal(sig, signal.SIG_IGN)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        previous[sig] = signal.signal(sig, forward)
    return previous


def restore_signals(previous: dict[int, object]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)  # type: ignore[arg-type]


def attach_tree(
    tracer: Tracer,
    root: int,
    on_adopt: Callable[[procfs.ProcInfo], None],
    *,
    on_ready: Callable[[int], None] | None = None,
    poll_ms: int = 100,
) -> RunResult:
    """Track a running process and its live descendants; deliver events until the root is gone.

    ``on_adopt`` gets each already-running process (root first, parents before children) as /proc saw it.
    """
    info = procfs.proc_info(root)
    tracer.track(root, info.start_ns, info.ppid)
    on_adopt(info)
    seen = {root}
    for _ in range(2):  # a second scan catches children forked by untracked descendants meanwhile
        for pid in procfs.descendants(root):
            if pid in seen:
                continue
            try:
                child = procfs.proc_info(pid)
            except OSError:
                continue
            tracer.track(pid, child.start_ns, child.ppid)
            on_adopt(child)
            seen.add(pid)
    if on_ready is not None:
        on_ready(len(seen))
    while _alive(root, info.start_ns):
        tracer.poll(poll_ms)
    end = procfs.clock_boot_ns()
    tracer.drain()
    return RunResult(root, info.start_ns, end, None, tracer.lost_events())


def _alive(pid: int, start_ns: int) -> bool:
    try:
        return procfs.start_ns(pid) == start_ns and _state(pid) != "Z"
    except (OSError, ValueError, IndexError):
        return False


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as fh:
        raw = fh.read()
    return raw[raw.rindex(")") + 2 :].split()[0]


if __name__ == "__main__":  # pragma: no cover - manual smoke run: python -m liubai.ebpf.run CMD...
    from liubai.ebpf.loader import Tracer

    with Tracer() as t:
        t.on_event(lambda e: print(e, file=sys.stderr))
        res = run_command(t, sys.argv[1:], lambda p, s: None)
    print(res, file=sys.stderr)
    sys.exit(exit_status_code(res.exit_code))
