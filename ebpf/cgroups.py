"""Which Kubernetes container a process runs in, read from its cgroup path.

A kubelet names cgroups after the pod uid and the container runtime after the container id, so the
cgroup path alone attributes a process to (pod uid, container id) without asking any runtime. The
forms accepted (nested under any prefix, e.g. kind's ``/kubelet.slice/kubelet-kubepods.slice`` or a
memory controller mounted below the caller's own cgroup):

* systemd driver: ``kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid_with_underscores>.slice/
  <runtime>-<id>.scope`` with runtime ``cri-containerd``, ``crio`` or ``docker``; guaranteed pods sit
  directly under ``kubepods.slice`` as ``kubepods-pod<uid>.slice``;
* cgroupfs driver: ``kubepods/<qos>/pod<uid>/<id>`` and, guaranteed, ``kubepods/pod<uid>/<id>`` (CRI-O
  writes ``crio-<id>`` there).

The pod's own cgroup (a pod slice with no container below it) and CRI-O's ``crio-conmon-<id>.scope``
(the runtime's monitor, outside the container) are not containers: they parse to None.

Reading: ``/proc/<pid>/cgroup``'s v2 line (``0::``) first, then the v1 lines (hybrid hosts whose
runtime left the unified hierarchy alone). Kernel-side filtering keys on v2 cgroup ids, which are the
inode numbers of the cgroup directories in the cgroup2 mount.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = [
    "ContainerRef",
    "cgroup2_mount",
    "container_of_pid",
    "is_pod_root",
    "parse_cgroup_path",
    "parse_proc_cgroup",
    "pod_cgroup_ids",
    "pod_roots",
]

_QOS = ("besteffort", "burstable", "guaranteed")
# systemd driver: "<prefix->kubepods[-<qos>]-pod<uid>.slice", prefix as kind's "kubelet-"
_SYSTEMD_POD = re.compile(
    r"^(?:[\w.-]+-)?kubepods(?:-(besteffort|burstable|guaranteed))?-pod([0-9a-fA-F_-]{8,64})\.slice$"
)
_SYSTEMD_CONTAINER = re.compile(r"^(cri-containerd|crio|docker)-([0-9a-f]{64})\.scope$")
_CGROUPFS_POD = re.compile(r"^pod([0-9a-fA-F-]{8,64})$")
_CGROUPFS_CONTAINER = re.compile(r"^(?:(crio|cri-containerd|docker)-)?([0-9a-f]{64})$")
_RUNTIME = {"cri-containerd": "containerd", "crio": "crio", "docker": "docker"}
_ROOT = re.compile(r"^(?:kubepods|kubepods\.slice|[\w.-]+-kubepods\.slice)$")


@dataclass(frozen=True, slots=True)
class ContainerRef:
    """A container as its cgroup names it."""

    container_id: str  # the runtime's id (64 hex for containerd/CRI-O/Docker)
    pod_uid: str | None  # with dashes (the systemd driver writes underscores in slice names)
    runtime: str  # "containerd" | "crio" | "docker" | "cgroupfs"
    qos: str | None  # "guaranteed" | "burstable" | "besteffort"
    cgroup: str  # the cgroup path it was read from


def _pod_at(parts: list[str], i: int) -> tuple[str, str | None, bool] | None:
    """(pod uid, qos, systemd naming) if ``parts[i]`` is a pod cgroup, else None."""
    m = _SYSTEMD_POD.match(parts[i])
    if m is not None:
        return m.group(2).replace("_", "-"), m.group(1) or "guaranteed", True
    m = _CGROUPFS_POD.match(parts[i])
    if m is None or i == 0:
        return None
    parent = parts[i - 1]
    if parent == "kubepods" or parent.endswith("-kubepods"):
        return m.group(1), "guaranteed", False
    if parent in _QOS and i >= 2 and (parts[i - 2] == "kubepods" or parts[i - 2].endswith("-kubepods")):
        return m.group(1), parent, False
    return None


def parse_cgroup_path(path: str) -> ContainerRef | None:
    """The container a cgroup path belongs to; None for anything else (host, pod-level, runtime monitor)."""
    parts = [p for p in path.split("/") if p]
    for i in range(len(parts) - 2, -1, -1):  # the innermost pod cgroup with a component below it
        pod = _pod_at(parts, i)
        if pod is None:
            continue
        uid, qos, systemd = pod
        child = parts[i + 1]
        if systemd:
            m = _SYSTEMD_CONTAINER.match(child)
            if m is None:
                return None
            runtime = _RUNTIME[m.group(1)]
        else:
            m = _CGROUPFS_CONTAINER.match(child)
            if m is None:
                return None
            runtime = _RUNTIME[m.group(1)] if m.group(1) else "cgroupfs"
        return ContainerRef(m.group(2), uid.lower(), runtime, qos, path)
    return None


def parse_proc_cgroup(text: str) -> ContainerRef | None:
    """The container of a ``/proc/<pid>/cgroup`` text: the v2 line first, then the v1 lines in order."""
    v1: list[str] = []
    for line in text.splitlines():
        hier, _, rest = line.partition(":")
        _controllers, sep, path = rest.partition(":")
        if not sep:
            continue
        if hier == "0" and _controllers == "":
            ref = parse_cgroup_path(path)
            if ref is not None:
                return ref
        else:
            v1.append(path)
    for path in v1:
        ref = parse_cgroup_path(path)
        if ref is not None:
            return ref
    return None


def container_of_pid(pid: int) -> ContainerRef | None:
    """The container ``pid`` runs in, from ``/proc/<pid>/cgroup``; None for a host process or a gone one."""
    try:
        with open(f"/proc/{pid}/cgroup", encoding="utf-8", errors="replace") as fh:
            return parse_proc_cgroup(fh.read())
    except OSError:
        return None


def cgroup2_mount(mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """Where the cgroup v2 hierarchy is mounted (``/sys/fs/cgroup``, or ``.../unified`` on hybrid hosts)."""
    try:
        with open(mountinfo, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    for line in lines:
        left, sep, right = line.partition(" - ")
        if sep and right.split(" ", 1)[0] == "cgroup2":
            fields = left.split(" ")
            if len(fields) > 4 and fields[3] == "/":
                return fields[4].replace("\\040", " ")
    return None


def is_pod_root(name: str) -> bool:
    """Whether a cgroup directory name is a kubelet's pods root (``kubepods``, ``kubepods.slice``, ...)."""
    return _ROOT.match(name) is not None


def pod_roots(mount: str, max_depth: int = 4) -> list[str]:
    """The kubelet pod roots under the cgroup2 ``mount``, found by a shallow walk (a root may be nested,
    e.g. ``kubelet.slice/kubelet-kubepods.slice`` or under ``system.slice/containerd.service``)."""
    found: list[str] = []
    level = [mount]
    for _ in range(max_depth):
        below: list[str] = []
        for parent in level:
            try:
                entries = list(os.scandir(parent))
            except OSError:
                continue
            for entry in entries:
                if not entry.is_dir(follow_symlinks=False):
                    continue
                if is_pod_root(entry.name):
                    found.append(entry.path)
                else:
                    below.append(entry.path)
        level = below
    return sorted(found)


def pod_cgroup_ids(root: str) -> Iterator[tuple[int, str]]:
    """(v2 cgroup id, path below the mount's root) for every cgroup under a pod root, the root included.

    The path is what ``/proc/<pid>/cgroup`` would show, so ``parse_cgroup_path`` reads it."""
    mount = os.path.dirname(root)
    while mount and not os.path.ismount(mount):
        mount = os.path.dirname(mount)
    for dirpath, _dirs, _files in os.walk(root):
        try:
            ino = os.stat(dirpath).st_ino
        except OSError:
            continue
        rel = "/" + os.path.relpath(dirpath, mount) if mount else dirpath
        yield ino, rel
