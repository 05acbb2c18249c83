"""Absolute paths of what a traced process named, and how surely they are known.

Lexical joining is exact unless a ``..`` follows a component that may be a symlink (the kernel then
leaves the link's target, not its directory): such a path is ``lexical`` unless the kernel's own
resolution was read back (``kernel``). ``/dev/fd/N``, ``/proc/self/fd/N`` and ``/proc/<own pid>/fd/N``
name the process's own descriptor N and are resolved through its descriptor table. From sure to
unsure: ``exact`` and ``kernel``; ``walked``; ``lexical`` and ``after_loss``; ``unresolved``.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable

from liubai.ebpf.descriptors import FdEntry, FdTable, FsContext

__all__ = [
    "AFTER_LOSS",
    "EXACT",
    "KERNEL",
    "LEXICAL",
    "UNRESOLVED",
    "WALKED",
    "Resolved",
    "fd_link",
    "follow_rename",
    "join_path",
    "renamed_path",
    "resolve_path",
    "through_state",
    "weakest",
]

EXACT, KERNEL, LEXICAL, UNRESOLVED = "exact", "kernel", "lexical", "unresolved"
WALKED = "walked"  # symlinks resolved by walking the filesystem just after the open (process gone)
# resolved through a descriptor table or cwd that events lost from the run may have changed
AFTER_LOSS = "after_loss"
# walked is a guess too: a symlink changed since the open would have led elsewhere
_RANK = {EXACT: 0, KERNEL: 0, WALKED: 1, LEXICAL: 2, AFTER_LOSS: 2, UNRESOLVED: 3}
_FD_LINK = re.compile(r"^/(?:dev/fd|proc/(self|thread-self|\d+)/fd)/(\d+)(/.*)?$")

Resolved = tuple[str, str]  # (path, certainty)


def weakest(a: str, b: str) -> str:
    """The less certain of two certainties (``a`` when they are as sure)."""
    return a if _RANK[a] >= _RANK[b] else b


def resolve_path(path: str, base: str | None) -> str | None:
    """``path`` made absolute against ``base`` and normalised lexically; None if relative with no base."""
    if not path:
        return None
    if path.startswith("/"):
        joined = path
    elif base is None:
        return None
    else:
        joined = posixpath.join(base, path)
    out = posixpath.normpath(joined)
    return "/" + out.lstrip("/") if out.startswith("//") else out


def _has_dotdot(path: str) -> bool:
    return ".." in path.split("/")


def join_path(path: str, base: str | None, base_certainty: str = EXACT, root: str = "/") -> Resolved | None:
    """``path`` against ``base`` (a directory) and the process's ``root``; None when it needs an unknown base."""
    if path.startswith("/"):
        out = resolve_path(path, None)
        if out is not None and root != "/":
            out = resolve_path(root.rstrip("/") + out, None)
        certainty = EXACT
    else:
        out = resolve_path(path, base)
        certainty = base_certainty
    if out is None:
        return None
    return out, weakest(certainty, LEXICAL if _has_dotdot(path) else EXACT)


def through_state(path: str) -> bool:
    """Whether resolving ``path`` consults the process's cwd or descriptor table (not only its root)."""
    return not path.startswith("/") or _FD_LINK.match(path) is not None


def fd_link(path: str, pid: int, table: FdTable) -> tuple[bool, Resolved | None]:
    """Whether ``path`` names one of the process's own descriptors, and then what it leads to (None:
    a descriptor the events never showed opened)."""
    m = _FD_LINK.match(path)
    if m is None or (m.group(1) not in (None, "self", "thread-self") and int(m.group(1)) != pid):
        return False, None
    entry: FdEntry | None = table.get(int(m.group(2)))
    if entry is None:
        return True, None
    rest = (m.group(3) or "").lstrip("/")
    if not rest:
        return True, (entry.path, entry.certainty)
    joined = join_path(rest, entry.path, entry.certainty)
    return True, joined


def renamed_path(path: str, old: str | None, new: str | None, exchange: bool = False) -> str | None:
    """``path`` after a rename of ``old`` to ``new`` (with ``exchange``, a swap of the two), a directory's
    moving what lies below it; None when not moved, or moved to or from a name not known."""
    if old is None or new is None:
        return None
    for src, dst in ((old, new), (new, old)) if exchange else ((old, new),):
        if path == src:
            return dst
        if path.startswith(src) and path[len(src) : len(src) + 1] == "/":
            return dst + path[len(src) :]
    return None


def follow_rename(
    tables: Iterable[FdTable], contexts: Iterable[FsContext], old: Resolved, new: Resolved, exchange: bool
) -> None:
    """Descriptors and working directories that name what a rename moved (or anything below it) name it
    under its new path from then on, as the kernel's own do; a swap moves both ways. Each table and
    context once, however many processes share it."""
    certainty = weakest(old[1], new[1])

    def moved(path: str) -> str | None:
        return renamed_path(path, old[0], new[0], exchange)

    for table in {id(t): t for t in tables}.values():
        for fd, entry in list(table.entries.items()):
            if (path := moved(entry.path)) is not None:
                table.entries[fd] = FdEntry(path, weakest(entry.certainty, certainty), entry.cloexec)
    for fs in {id(c): c for c in contexts}.values():
        if fs.cwd is not None and (path := moved(fs.cwd)) is not None:
            fs.cwd, fs.cwd_certainty = path, weakest(fs.cwd_certainty, certainty)
        if (root := moved(fs.root)) is not None:
            fs.root = root
