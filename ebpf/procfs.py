"""What /proc says about a live process: its start time (the id clock), cwd, argv, binary, uid, children.

Start times are CLOCK_BOOTTIME nanoseconds, the clock the BPF program stamps forks with, so a process
seen first through /proc (the root, or a tree attached with ``--pid``) gets the same kind of id.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from liubai.lineage.text import bytes_text, visible

__all__ = [
    "ProcInfo",
    "boot_offset_ns",
    "clock_boot_ns",
    "container_relative",
    "descendants",
    "parent_pid",
    "proc_info",
    "read_cwd",
    "read_os_cwd",
    "read_proc",
    "start_ns",
]

_TICKS = os.sysconf("SC_CLK_TCK")


def boot_offset_ns() -> int:
    """Wall-clock ns minus boot-clock ns now: adds to a boot-clock stamp to give epoch nanoseconds."""
    return time_ns() - clock_boot_ns()


def time_ns() -> int:
    return time.time_ns()


def clock_boot_ns() -> int:
    """Now on the boot clock (CLOCK_BOOTTIME), the clock of every start and event time."""
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME)


def read_proc(path: str) -> bytes:
    """A small /proc file's bytes, unbuffered: half the cost of a buffered text ``open``, which counts
    where a traced storm reads /proc at every exec. OSError when it is gone."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = [os.read(fd, 8192)]
        while chunks[-1]:
            chunks.append(os.read(fd, 8192))
    finally:
        os.close(fd)
    return b"".join(chunks)


def _stat_fields(pid: int) -> list[bytes]:
    raw = read_proc(f"/proc/{pid}/stat")
    # comm (field 2) may hold spaces and parentheses: split after the last ')'
    return raw[raw.rindex(b")") + 2 :].split()


def parent_pid(pid: int) -> int:
    """The parent's pid (``/proc/<pid>/stat`` field 4); OSError when the process is gone."""
    return int(_stat_fields(pid)[1])


def start_ns(pid: int) -> int:
    """The process start time (``/proc/<pid>/stat`` field 22) in boot-clock nanoseconds."""
    ticks = int(_stat_fields(pid)[19])
    return ticks * 1_000_000_000 // _TICKS


def _readlink(path: str) -> str | None:
    """The link's target as the OS's own str (lone surrogates for bytes that are not UTF-8)."""
    try:
        return os.readlink(path)
    except OSError:
        return None


def _shown(text: str | None) -> str | None:
    return None if text is None else visible(text)


def read_cwd(pid: int) -> str | None:
    """The cwd as text to show and store (``\\xNN`` for bytes that are not UTF-8)."""
    return _shown(read_os_cwd(pid))


def read_os_cwd(pid: int) -> str | None:
    """The cwd as the OS's own str: to open files by, not to show."""
    return _readlink(f"/proc/{pid}/cwd")


def container_relative(pid: int, path: str) -> str | None:
    """``path`` as /proc showed it to us, made relative to the root of ``pid`` (its container's
    filesystem); None where it lies outside that root or the root cannot be read. A process in another
    mount namespace shows its root as ``/`` and its links in its own view already: kept as they are."""
    root = _readlink(f"/proc/{pid}/root")
    if root is None:
        return None
    root = visible(root)
    if root == "/":
        return path
    if path == root:
        return "/"
    if path.startswith(root + "/"):
        return path[len(root) :]
    return None


@dataclass(slots=True)
class ProcInfo:
    pid: int
    ppid: int
    start_ns: int
    uid: int
    comm: str
    argv: tuple[str, ...]
    binary: str | None
    cwd: str | None


def proc_info(pid: int) -> ProcInfo:
    """A snapshot of a live process; OSError when it is gone."""
    fields = _stat_fields(pid)
    with open(f"/proc/{pid}/comm", "rb") as fh:
        comm = bytes_text(fh.read().rstrip(b"\n"))
    with open(f"/proc/{pid}/cmdline", "rb") as fh:
        argv = tuple(bytes_text(a) for a in fh.read().split(b"\0")[:-1])
    binary = _shown(_readlink(f"/proc/{pid}/exe"))
    uid = os.stat(f"/proc/{pid}").st_uid
    return ProcInfo(
        pid=pid,
        ppid=int(fields[1]),
        start_ns=int(fields[19]) * 1_000_000_000 // _TICKS,
        uid=uid,
        comm=comm,
        argv=argv,
        binary=binary,
        cwd=read_cwd(pid),
    )


def descendants(root: int) -> list[int]:
    """Live descendants of ``root`` (parents before children), from every /proc/<pid>/stat's ppid."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            ppid = parent_pid(int(name))
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(name))
    out: list[int] = []
    todo = sorted(children.get(root, []))
    while todo:
        pid = todo.pop(0)
        out.append(pid)
        todo.extend(sorted(children.get(pid, [])))
    return out
