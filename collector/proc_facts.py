"""What /proc and the file system tell about a live traced process, read while it runs.

An answer read from ``/proc/<pid>`` counts only while the pid is still the process the events named
(``same_process``), so one about a reused pid is never taken for the traced one. ``liubai.collector.live_events`` and
``liubai.collector.live_reads`` use these to enrich events before they are recorded.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat

from liubai.ebpf import procfs
from liubai.ebpf.credentials import effective_file_caps
from liubai.ebpf.events import ExecEvent

__all__ = [
    "NOT_HERE",
    "exe_facts",
    "is_script",
    "kernel_join",
    "open_exe",
    "read_rights",
    "read_status",
    "same_process",
    "script_head",
    "shebang",
    "stat_named",
]

# Paths that name a process's own descriptors: opened here, they would be the tracer's, not the traced one's.
NOT_HERE = ("/dev/fd/", "/proc/")

_TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def same_process(pid: int, start_ns: int) -> bool:
    """Whether ``pid`` is still the process that started at ``start_ns``: /proc gives the start in clock
    ticks (rounded down), the kernel's fork event a few microseconds after the exact start."""
    try:
        return 0 <= start_ns - procfs.start_ns(pid) < _TICK_NS + 2_000_000
    except (OSError, ValueError, IndexError):
        return False


def open_exe(pid: int) -> int | None:
    try:
        return os.open(f"/proc/{pid}/exe", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None


def exe_facts(pid: int, fd: int) -> tuple[str, os.stat_result] | None:
    try:
        return os.readlink(f"/proc/{pid}/exe"), os.fstat(fd)
    except OSError:
        return None


def stat_named(path: str | None, pid: int, root: str | None, live: bool) -> tuple[str, os.stat_result] | None:
    """The file ``path`` names for the process (inside its root) and its stat, or None."""
    if path is None or path.startswith(NOT_HERE):
        return None
    if live:
        where = f"/proc/{pid}/root{path if path.startswith('/') else '/' + path}"
    elif root is not None and root != "/":
        where = root.rstrip("/") + path
    else:
        where = path
    try:
        st = os.stat(where)
    except OSError:
        return None
    return (where, st) if stat.S_ISREG(st.st_mode) else None


def read_rights(event: ExecEvent, image: int | str, st: os.stat_result) -> None:
    """What the executed image grants at exec: set-user-ID owner and effective file capabilities, none
    on a nosuid mount. Unreadable facts leave ``image_rights`` False (credentials then unknown)."""
    try:
        nosuid = bool(os.statvfs(image).f_flag & os.ST_NOSUID)
        try:
            xattr: bytes | None = os.getxattr(image, "security.capability")
        except OSError as exc:
            if exc.errno not in (errno.ENODATA, errno.ENOTSUP):
                raise
            xattr = None
    except OSError:
        return
    event.image_rights = True
    if not nosuid:
        event.image_setuid = st.st_uid if st.st_mode & stat.S_ISUID else None
        event.image_caps = effective_file_caps(xattr)


def shebang(path: str) -> str | None:
    """The interpreter a ``#!`` script names (an absolute path), or None."""
    try:
        with open(path, "rb") as fh:
            line = fh.readline(256)
    except OSError:
        return None
    if not line.startswith(b"#!"):
        return None
    words = line[2:].split()
    return os.fsdecode(words[0]) if words and words[0].startswith(b"/") else None


def script_head(path: str) -> bool | None:
    """Whether the file starts with ``#!``; None when it cannot be read."""
    try:
        with open(path, "rb") as fh:
            return fh.read(2) == b"#!"
    except OSError:
        return None


def is_script(path: str) -> bool:
    return script_head(path) is True


def read_status(pid: int, start_ns: int) -> tuple[int, int, int, int, int] | None:
    """(ruid, euid, suid, fsuid, CapEff) from /proc/<pid>/status, if it is still that process."""
    try:
        raw = procfs.read_proc(f"/proc/{pid}/status")
    except OSError:
        return None
    uids: list[int] = []
    cap: int | None = None
    for line in raw.splitlines():
        if line.startswith(b"Uid:"):
            uids = [int(x) for x in line.split()[1:5]]
        elif line.startswith(b"CapEff:"):
            cap = int(line.split()[1], 16)
    if len(uids) != 4 or cap is None or not same_process(pid, start_ns):
        return None
    return uids[0], uids[1], uids[2], uids[3], cap


def kernel_join(path: str | None, base: str | None) -> str | None:
    """``path`` against ``base`` as the kernel walks it: ``..`` after a symlink leads out of its target,
    so no lexical normalising; None if relative with no base."""
    if path is None or (base is None and not path.startswith("/")):
        return None
    return path if base is None else posixpath.join(base, path)
