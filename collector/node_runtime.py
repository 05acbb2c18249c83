"""Where a container runtime's setup ends and the container's workload begins.

An OCI runtime sets a container up from inside the container's cgroup: runc's ``runc:[0:PARENT]``,
``runc:[1:CHILD]`` and ``runc:[2:INIT]``, crun's ``crun`` child, youki's ``youki:[…]`` stages, gVisor's
``runsc-*`` processes. Until the init execs the entrypoint they open host paths (the rootfs under its
host path, ``/proc/self/…`` of the host mount namespace) before ``pivot_root``: recorded as the
container's, they would be false facts. Falco draws the same line (its ``container_entrypoint`` macro:
an exec whose parent is a runtime process such as ``runc:[0:PARENT]`` or ``runc:[1:CHILD]``).

The rule, per container:

* A process is the runtime's (*setup*) when its name is a runtime's (``RUNTIME_COMMS``), or when it
  shows up before the container has any workload process (the runtime is always first in a new
  container's cgroup, whatever it is called); a setup process's children are setup too.
* A setup process's exec of a non-runtime image is the workload's start: from that exec on it is the
  container's process, a top one (its parent is the runtime, outside the container's view). An exec of
  the runtime itself (a runtime name, or ``/proc/self/exe`` run by a setup process) stays setup, so
  gVisor's sandbox, whose workload never appears as a host process, stays setup all its life.
* Events of setup processes are dropped and counted (``events``; ``processes``: how many processes
  had events dropped), never recorded: no path a setup process opened is labelled as the container's.
"""

from __future__ import annotations

from liubai.ebpf.events import Event, ExecArgsEvent, ExecEvent, ExitEvent, ForkEvent

__all__ = ["RUNTIME_COMMS", "RuntimeSetup", "is_runtime_comm"]

Key = tuple[int, int]

# exact comm names, and prefixes of the staged names (comm is cut at 15 bytes)
RUNTIME_COMMS = ("runc", "crun", "youki", "runsc")
_RUNTIME_PREFIXES = ("runc:[", "youki:[", "runsc-", "crun:")
_SELF_EXE = "/proc/self/exe"


def is_runtime_comm(comm: str | None) -> bool:
    """Whether ``comm`` is a container runtime's process name (runc, crun, youki, runsc)."""
    return comm is not None and (comm in RUNTIME_COMMS or comm.startswith(_RUNTIME_PREFIXES))


class RuntimeSetup:
    """One container's runtime-setup processes: which events reach the container's process model."""

    def __init__(self, *, started: bool = False) -> None:
        """``started``: the container already has workload processes (known from the journal)."""
        self.started = started
        self.procs: set[Key] = set()
        self._pending: dict[Key, ExecArgsEvent] = {}
        self._counted: set[Key] = set()
        self.events = 0  # events of setup processes, dropped
        self.processes = 0  # setup processes with events dropped

    def _drop(self, key: Key, n: int = 1) -> None:
        self.events += n
        if key not in self._counted:
            self._counted.add(key)
            self.processes += 1

    def _end(self, key: Key) -> None:
        self.procs.discard(key)
        self._counted.discard(key)

    def adopted(self, key: Key, comm: str | None) -> bool:
        """A process found mid-life (in /proc or by the kernel): True when it is the runtime's (it is
        then held as setup and its adoption counted); False: a workload process."""
        if is_runtime_comm(comm) or (comm is None and not self.started):
            self.procs.add(key)
            self._drop(key)
            return True
        self.started = True
        return False

    def take(self, event: Event, known: bool) -> list[Event]:
        """The events to give the container's model for ``event`` (none: a setup process's, counted).
        ``known``: the model already has the event's process."""
        key = (event.pid, event.start_ns)
        if key not in self.procs:
            if known or self.started:
                return [event]
            self.procs.add(key)  # before any workload process: the runtime's
        if isinstance(event, ExecArgsEvent):
            if key in self._pending:
                self._drop(key)  # an earlier attempt that did not exec
            self._pending[key] = event
            return []
        if isinstance(event, ExecEvent):
            args = self._pending.pop(key, None)
            if is_runtime_comm(event.comm) or (args is not None and args.filename == _SELF_EXE):
                self._drop(key, 1 + (args is not None))
                return []
            self._end(key)  # the entrypoint (or an exec'd command): the workload from here on
            self.started = True
            return [event] if args is None else [args, event]
        self._drop(key)
        if isinstance(event, ForkEvent):
            self.procs.add((event.child, event.child_start_ns))
        elif isinstance(event, ExitEvent):
            self._end(key)
            if self._pending.pop(key, None) is not None:
                self.events += 1
        return []
