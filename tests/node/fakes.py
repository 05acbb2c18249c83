"""Synthetic node-agent input built from the real event classes: a container's process story as the
kernel half hands it over (a decoded event and the container its cgroup names)."""

from __future__ import annotations

from dataclasses import dataclass

from liubai.ebpf.events import Event, ExecEvent, ExitEvent, ForkEvent, OpenEvent

HOST = "node-1"
CID_A = "a" * 64
CID_B = "b" * 64
POD_A = "11111111-2222-3333-4444-555555555555"
POD_B = "66666666-7777-8888-9999-000000000000"
O_RDONLY, O_WRONLY_CREAT = 0, 0o101


@dataclass(frozen=True, slots=True)
class Ref:
    container_id: str
    pod_uid: str | None
    runtime: str = "containerd"
    qos: str | None = "besteffort"
    cgroup: str = "/kubepods.slice/fake.scope"


@dataclass(slots=True)
class Item:
    event: Event
    container: Ref | None
    audit_id: str | None = None


REF_A = Ref(CID_A, POD_A)
REF_B = Ref(CID_B, POD_B)


class Story:
    """Builds one container's events with rising times (boot-clock ns)."""

    def __init__(self, ref: Ref | None, t0: int = 1_000_000_000) -> None:
        self.ref = ref
        self.t = t0

    def _ts(self) -> int:
        self.t += 1000
        return self.t

    def exec(self, pid: int, start: int, binary: str, audit: str | None = None) -> Item:
        ev = ExecEvent(pid, pid, 0, self._ts(), start, filename=binary, comm=binary.rsplit("/", 1)[-1])
        ev.sha256 = "0" * 64
        ev.cwd = "/"
        return Item(ev, self.ref, audit)

    def fork(self, pid: int, start: int, child: int, child_start: int) -> Item:
        return Item(
            ForkEvent(pid, pid, 0, self._ts(), start, child=child, child_start_ns=child_start), self.ref
        )

    def open(self, pid: int, start: int, path: str, flags: int = O_RDONLY, fd: int = 3) -> Item:
        return Item(OpenEvent(pid, pid, 0, self._ts(), start, path=path, fd=fd, flags=flags), self.ref)

    def exit(self, pid: int, start: int, code: int = 0) -> Item:
        return Item(ExitEvent(pid, pid, 0, self._ts(), start, exit_code=code), self.ref)
