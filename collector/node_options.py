"""What the node agent records and what it leaves out: windows, namespace and path filters, caps.

Everything left out is counted where a reader finds it (the Container node), never dropped silently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = [
    "DEFAULT_EXCLUDED_PATHS",
    "NamespaceOf",
    "NodeCollectorOptions",
    "excluded_path",
    "static_namespaces",
]

DEFAULT_EXCLUDED_PATHS = ("/proc", "/sys", "/dev")

NamespaceOf = Callable[[str], str | None]
"""A Pod's namespace by its uid, None while it is not known (the node only knows the uid from a cgroup)."""


@dataclass(frozen=True, slots=True)
class NodeCollectorOptions:
    """``include_namespaces`` empty: every namespace. A container whose namespace cannot be told is kept
    when only exclusions are given and left out (counted) when inclusions are: an inclusion list is a
    promise about what is recorded, so an unknown namespace does not pass it."""

    host: str
    window_s: float = 10.0
    include_namespaces: frozenset[str] = frozenset()
    exclude_namespaces: frozenset[str] = frozenset()
    exclude_paths: tuple[str, ...] = DEFAULT_EXCLUDED_PATHS
    max_processes: int = 1000  # new processes recorded one by one per container per window
    max_paths: int = 2000  # distinct (path, mode) recorded per container per window
    namespace_of: NamespaceOf | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.window_s <= 0:
            raise ValueError(f"window must be a positive number of seconds, not {self.window_s}")
        if self.max_processes < 1 or self.max_paths < 1:
            raise ValueError("caps must be at least 1")
        for prefix in self.exclude_paths:
            if not prefix.startswith("/"):
                raise ValueError(f"excluded path prefix {prefix!r} is not absolute")

    def namespace_verdict(self, namespace: str | None) -> str | None:
        """Why a container of this namespace is left out, or None when it is recorded."""
        if namespace is not None and namespace in self.exclude_namespaces:
            return f"namespace {namespace} excluded"
        if self.include_namespaces:
            if namespace is None:
                return "namespace unknown (only named namespaces are recorded)"
            if namespace not in self.include_namespaces:
                return f"namespace {namespace} not included"
        return None


def excluded_path(path: str, prefixes: tuple[str, ...]) -> bool:
    """Whether ``path`` is one of ``prefixes`` or under one (``/proc`` covers ``/proc/1/stat``, not
    ``/process``)."""
    for prefix in prefixes:
        base = prefix.rstrip("/") or "/"
        if path == base or path.startswith(base + "/") or base == "/":
            return True
    return False


def static_namespaces(mapping: dict[str, str]) -> NamespaceOf:
    """A lookup from a fixed ``pod uid -> namespace`` table (``--namespace-of UID=NS``)."""
    table = dict(mapping)
    return table.get
