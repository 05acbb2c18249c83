"""Build the BPF C text that bcc compiles: the C source in ``program.c`` plus sizes chosen at run time.

Kept pure (no bcc import) so the rendered program can be checked on machines without BPF.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources

__all__ = ["ARGS_PER_CALL", "ProgramOptions", "load_source", "render_program", "wakeup_bytes_for"]

ARGS_PER_CALL = 16  # arguments one BPF program reads before tail-calling the next (the verifier's limit)
CGROUP_PATH_LEN = 512  # a cgroup path in node mode's cgroup events (a kubelet's run to about 200 bytes)


@dataclass(frozen=True, slots=True)
class ProgramOptions:
    """Sizes of the kernel side. Strings longer than their slot are cut (argv also counts how many)."""

    max_args: int = 256
    arg_len: int = 4096
    args_buf: int = 16384  # bytes of argv per exec event (argv beyond is marked truncated)
    path_len: int = 4096  # PATH_MAX: a path the kernel accepted always fits
    ringbuf_pages: int = 1024
    max_procs: int = 32768
    # each CPU wakes the reader at each exec and once it has sent this many bytes (else the poll timeout
    # paces reading); 0: a share of half the buffer (an eighth at most)
    wakeup_bytes: int = 0
    wakeup_events: int = 64  # node mode instead: every this many events per CPU (as the agent was measured)
    node: bool = False  # node mode: processes of pod cgroups join the tree on their own (no root pid)
    node_levels: int = 8  # cgroup depths searched for a pod root above a task's cgroup

    def validate(self) -> None:
        if not 1 <= self.max_args <= 30 * ARGS_PER_CALL:  # the kernel allows 33 tail calls in a row
            raise ValueError(f"max_args must be within 1..{30 * ARGS_PER_CALL}, got {self.max_args}")
        if self.args_buf < 64 or self.args_buf & (self.args_buf - 1):
            raise ValueError(f"args_buf must be a power of two of at least 64, got {self.args_buf}")
        for name in ("arg_len", "path_len"):
            value = getattr(self, name)
            if not 16 <= value <= 4096:
                raise ValueError(f"{name} must be within 16..4096, got {value}")
        pages = self.ringbuf_pages
        if pages < 1 or pages & (pages - 1):
            raise ValueError(f"ringbuf_pages must be a power of two, got {pages}")
        if not 1 <= self.wakeup_events <= 4096:
            raise ValueError(f"wakeup_events must be within 1..4096, got {self.wakeup_events}")
        if not 0 <= self.wakeup_bytes <= pages * 4096 // 2:
            raise ValueError(f"wakeup_bytes must be within 0..half the ring buffer, got {self.wakeup_bytes}")
        if not 1 <= self.node_levels <= 16:
            raise ValueError(f"node_levels must be within 1..16, got {self.node_levels}")
        if self.max_procs < 16:
            raise ValueError(f"max_procs must be at least 16, got {self.max_procs}")
        # the largest event is built in one per-CPU slot (at most 32 KiB) and must fit the ring buffer
        largest = 48 + max(
            self.path_len + self.args_buf + self.arg_len, 2 * self.path_len
        )  # exec args, rename
        if largest > 32 * 1024:
            raise ValueError("path_len + args_buf + arg_len exceed the 32 KiB of one per-CPU slot")
        if largest > pages * 4096 // 4:
            raise ValueError("ring buffer too small for one exec event: raise ringbuf_pages")


def wakeup_bytes_for(ringbuf_pages: int, cpus: int | None = None) -> int:
    """Bytes each CPU sends before waking the reader: together, at most half the buffer (the other half
    takes what comes while the reader wakes), and never above an eighth of it (~500 KB on two CPUs)."""
    n = cpus or os.cpu_count() or 1
    return max(4096, ringbuf_pages * 4096 // (2 * max(n, 4)))


def load_source() -> str:
    """The C source shipped next to this module."""
    return resources.files("liubai.ebpf").joinpath("program.c").read_text(encoding="utf-8")


def render_program(options: ProgramOptions | None = None) -> str:
    """The complete program text: ``#define`` lines for ``options`` followed by the C source."""
    opts = options or ProgramOptions()
    opts.validate()
    defines = {
        "MAX_ARGS": opts.max_args,
        "ARG_LEN": opts.arg_len,
        "ARGS_BUF": opts.args_buf,
        "ARGS_PER_CALL": ARGS_PER_CALL,
        "PATH_LEN": opts.path_len,
        "RINGBUF_PAGES": opts.ringbuf_pages,
        "MAX_PROCS": opts.max_procs,
        "WAKEUP_AFTER": (
            opts.wakeup_events if opts.node else opts.wakeup_bytes or wakeup_bytes_for(opts.ringbuf_pages)
        ),
        "NODE_MODE": int(opts.node),
        "NODE_LEVELS": opts.node_levels,
        "CGROUP_PATH_LEN": CGROUP_PATH_LEN,
    }
    head = "".join(f"#define {name} {value}\n" for name, value in defines.items())
    return head + load_source()
