"""Load the tracer into the kernel with bcc and hand decoded events to a callback.

``preflight()`` says what is missing (root, tracefs, bcc, kernel headers) and how to fix it, so that a
caller can refuse to run a command untraced. bcc is Debian's ``python3-bpfcc`` module, imported lazily so
that everything else in this package works without it.
"""

from __future__ import annotations

import ctypes
import os
import time
from collections.abc import Callable
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from liubai.ebpf.cached_program import TRACEPOINT
from liubai.ebpf.events import Event, EventDecoder
from liubai.ebpf.program import ProgramOptions, render_program
from liubai.ebpf.program_source import load_program
from liubai.ebpf.teardown import detach_in_background
from liubai.lineage.errors import ErrorCode, LiubaiError

__all__ = ["Problem", "Tracer", "TracerError", "preflight"]

SETUP_HINT = "run scripts/setup-ebpf (as root) to install bcc, link kernel headers and mount tracefs"
TRACEFS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
_REQUIRED_TRACEPOINTS = ("sched/sched_process_fork", "sched/sched_process_exec", "syscalls/sys_enter_openat")


class TracerError(LiubaiError, RuntimeError):
    """The tracer cannot run here; the message says what is missing and how to fix it."""

    code = ErrorCode.UNSUPPORTED


class Problem(str):
    """One missing prerequisite, phrased as ``what is missing: how to fix it``."""


def _tracefs_dir() -> Path | None:
    """The mounted tracefs (unreadable to non-root users, which still counts as mounted)."""
    for cand in TRACEFS:
        try:
            if Path(cand, "events").is_dir() or os.path.ismount(cand):
                return Path(cand)
        except PermissionError:
            return Path(cand)
    return None


def preflight() -> list[Problem]:
    """Everything that stops tracing on this machine (empty when tracing can start)."""
    problems: list[Problem] = []
    if os.geteuid() != 0:
        problems.append(Problem("not running as root (loading BPF programs needs root): run with sudo"))
    tracefs = _tracefs_dir()
    if tracefs is None:
        problems.append(Problem(f"tracefs is not mounted at /sys/kernel/tracing: {SETUP_HINT}"))
    else:
        for tp in _REQUIRED_TRACEPOINTS:
            if os.geteuid() == 0 and not (tracefs / "events" / tp).is_dir():
                problems.append(Problem(f"kernel tracepoint {tp} not found under {tracefs}/events"))
    problems.extend(_bcc_problems())
    build = Path("/lib/modules", os.uname().release, "build")
    if not build.exists():
        problems.append(Problem(f"no kernel headers at {build}: {SETUP_HINT}"))
    return problems


def _bcc_problems() -> list[Problem]:
    """Is Debian's bcc there? Found, not imported: importing it loads LLVM (0.1 s), which a start from
    cached bytecode does without (``program_source``)."""
    spec = find_spec("bcc")
    if spec is None:
        return [Problem(f"the Python module 'bcc' (Debian python3-bpfcc) is not importable: {SETUP_HINT}")]
    package = next(iter(spec.submodule_search_locations or []), None)
    if package is None or not Path(package, "libbcc.py").is_file():
        return [
            Problem(
                "the Python module 'bcc' is not Debian's BPF Compiler Collection "
                f"(pip's unrelated 'bcc'?): pip uninstall bcc, then {SETUP_HINT}"
            )
        ]
    return []


class Tracer:
    """The loaded program: seed pids into the tracked tree, poll decoded events, count lost ones."""

    def __init__(self, options: ProgramOptions | None = None) -> None:
        problems = preflight()
        if problems:
            raise TracerError("; ".join(problems))
        self.options = options or ProgramOptions()
        self.decoder = EventDecoder(self.options)
        try:
            t0 = time.perf_counter()
            text = render_program(self.options)
            render_s = time.perf_counter() - t0
            loaded = load_program(text)
            self._bpf: Any = loaded.program
            self.origin = loaded.origin  # "cache" (bytecode kept from an earlier compile) or "compiled"
            self.timings = {"render": render_s, **loaded.timings}
            chunks = self._bpf["arg_chunks"]
            chunks[ctypes.c_int(0)] = ctypes.c_int(self._bpf.load_func("read_arg_chunk", TRACEPOINT).fd)
        except Exception as exc:  # bcc raises bare Exception on compile/load failure
            raise TracerError(f"the BPF program failed to load: {exc}") from None
        self._callback: Callable[[Event], None] | None = None
        self._raw_callback: Callable[[bytes], None] | None = None
        self._settle: Callable[[], None] | None = None
        self.decode_errors = 0
        self._bpf["events"].open_ring_buffer(self._on_raw)

    def _on_raw(self, _ctx: Any, data: Any, size: int) -> int:
        """Called by bcc for each event. It returns 0 (go on): bcc takes the answer with ``int()``, and
        ``int(None)`` would raise and be caught once per event."""
        raw = ctypes.string_at(data, size)
        if self._raw_callback is not None:
            self._raw_callback(raw)
            return 0
        try:
            event = self.decoder.decode(raw)
        except ValueError:
            self.decode_errors += 1
            return 0
        if self._callback is not None:
            self._callback(event)
        return 0

    def on_event(self, callback: Callable[[Event], None]) -> None:
        """Hand each event, decoded, to ``callback``."""
        self._callback, self._raw_callback = callback, None

    def on_raw(self, callback: Callable[[bytes], None], settle: Callable[[], None] | None = None) -> None:
        """Hand each event's raw bytes to ``callback`` (decode later with ``self.decoder``), and call
        ``settle`` after each batch: work deferred to it sees the events that came just after."""
        self._callback, self._raw_callback, self._settle = None, callback, settle

    def track(self, pid: int, start_ns: int, ppid: int = 0) -> None:
        """Put ``pid`` in the traced tree (its future children follow automatically)."""
        tracked = self._bpf["tracked"]
        value = tracked.Leaf()
        value.start_ns = start_ns
        value.ppid = ppid
        tracked[tracked.Key(pid)] = value

    def bpf_table(self, name: str) -> Any:
        """One of the program's maps (node mode fills ``pod_roots`` and fixes ``tracked`` entries)."""
        return self._bpf[name]

    def poll(self, timeout_ms: int = 100) -> None:
        """Wait up to ``timeout_ms`` (less when the kernel wakes us: buffer filling, or a signal), then
        deliver every pending event. The kernel wakes the reader only for a backlog, so the timeout
        is what normally paces reading."""
        self._bpf.ring_buffer_poll(timeout_ms)
        self._bpf.ring_buffer_consume()
        if self._settle is not None:
            self._settle()

    def drain(self) -> None:
        self._bpf.ring_buffer_consume()
        if self._settle is not None:
            self._settle()

    def lost_events(self) -> int:
        """Events the kernel could not hand over (ring buffer full) or processes it could not track."""
        return sum(int(v) for row in self._bpf["lost"].values() for v in row)

    def close(self, *, background: bool = False) -> None:
        """Detach and free the program. With ``background`` the kernel's slow part of detaching (a grace
        period per tracepoint, seconds in all) runs in a detached process: for a caller that has read
        every event it needs and only wants to move on (``liubai trace`` after its run)."""
        if background:
            detach_in_background(self._bpf.tracepoint_fds.values(), self._bpf.cleanup)
        else:
            self._bpf.cleanup()

    def __enter__(self) -> Tracer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
