"""Detach tracepoint programs without making the caller wait for the kernel's grace periods.

Closing the last perf event of a tracepoint makes the kernel wait for RCU grace periods before it returns
(``tracepoint_synchronize_unregister``, once per tracepoint, under a global mutex), so closing the
tracer's tracepoints took longer than loading the program (figures: docs/performance.md). The
events of a run are all read by then, so nothing waits on that work: ``detach_in_background`` hands the
descriptors to a detached process that closes them, and the caller's own closes return at once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

__all__ = ["detach_in_background"]


def detach_in_background(fds: Iterable[int], close_own: Callable[[], None]) -> None:
    """Close ``fds`` through ``close_own`` (the caller's closes, quick) while a copy of them is held by a
    new session-less process, which closes its copy afterwards (the slow part) and exits.

    The process waits until ``close_own`` has returned (or the caller has exited): only then is its copy
    the last, and so the one that pays the kernel's waits. It keeps no other descriptor (no pipe of
    the caller's stays open behind it) and is not the caller's child, so no one has to wait for it.
    Where no process can be started, ``close_own`` alone does the work (slowly, as before).
    """
    keep = sorted({fd for fd in fds if fd >= 0})
    if not keep:
        close_own()
        return
    gate_r, gate_w = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        pid = -1
    if pid == 0:  # pragma: no cover - runs in the forked processes, which leave through os._exit
        try:
            if os.fork() != 0:
                os._exit(0)  # the grandchild is adopted by init (or the nearest subreaper)
            os.setsid()
            _close_all_but([*keep, gate_r])
            devnull = os.open(os.devnull, os.O_RDWR)
            for std in (0, 1, 2):
                os.dup2(devnull, std)
            while os.read(gate_r, 1):  # EOF once the caller's copies are closed
                pass
            for fd in keep:
                os.close(fd)  # one grace period wait each, here and not in the caller
        finally:
            os._exit(0)
    os.close(gate_r)
    try:
        if pid > 0:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        close_own()
    finally:
        os.close(gate_w)


def _close_all_but(keep: list[int]) -> None:
    low = 0
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))
