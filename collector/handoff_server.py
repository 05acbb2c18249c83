"""The agent's side of the hand-off: trace ``liubai trace`` commands with a program already loaded.

A node agent hosts a ``HandoffServer`` next to its tracer: it hands every raw event to ``feed`` and calls
``polled`` after each poll of the ring buffer. The server listens on a Unix socket (``handoff_protocol``),
puts each client's held command into the kernel's tracked set, routes the events of that process tree
(children join at their fork event, which the kernel emits before the child runs) to a ``LiveEvents`` of
the run, exactly as ``liubai trace`` would on its own, and streams them back when the client finishes.

Hosting it in the node agent (``liubai agent --ebpf``), next to its loaded program:

* construct ``HandoffServer(tracer, Path("/run/liubai/trace.sock"))`` and ``start()`` it;
* in the ring-buffer callback, offer each raw event to ``feed(raw)`` first: True means it belonged to a
  handed-off run (a host process, not a pod's), so the agent's own handling skips it;
* after each ``poll``/``consume`` of the ring buffer call ``polled()`` (poll every ~5 ms while ``busy``:
  the end of a run waits for two polls); ``close()`` on shutdown.
* The kernel side needs no new hook, only that the node program keeps this program's ``tracked`` map
  semantics next to its pod-cgroup filter: a pid in ``tracked`` is traced whatever its cgroup, and its
  forks join ``tracked`` (``Tracker.track`` puts the root there).
* ``vet(pid)`` lets the host refuse a pid it records itself (a pod's process), and ``owns(pid)`` tells
  the host's own /proc scans which pids are a run's: each process has one owner.

Processes of a run still alive when it is sent back (past ``--linger``) stay in the kernel's tracked set
until they exit: their events, and their children's, are still claimed by ``feed`` and dropped, so they
never reach the host's own handling.

It trusts a client only with the client's own child: the pid must be a child of the connected process
(SO_PEERCRED), not yet run (its start time as given), in our mount namespace (paths mean the same), and
the client must be root or our own user. ``liubai agent --ebpf`` hosts one (``liubai.ebpf.node``);
``python -m liubai.collector.handoff_server --socket PATH`` runs one with a tracer of its own (for hosts
without pods to trace, and the benchmark's fallback).
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from liubai.collector.handoff_protocol import Channel, ProtocolError, peer_credentials
from liubai.collector.live_events import LiveEvents, same_process
from liubai.ebpf import procfs
from liubai.ebpf.event_json import event_to_json
from liubai.ebpf.events import EV_EXIT, EV_FORK, EventDecoder, ForkEvent

__all__ = ["HandoffServer", "Tracker"]

MAX_LINGER_S = 60.0
BARRIER_TIMEOUT_S = 10.0
_TGID = struct.Struct("<I")  # the event header's second u32


class Tracker(Protocol):
    """What the server needs of the loaded program (``liubai.ebpf.loader.Tracer`` has it)."""

    decoder: EventDecoder

    def track(self, pid: int, start_ns: int, ppid: int = 0) -> None: ...

    def lost_events(self) -> int: ...


@dataclass(slots=True)
class _Run:
    number: int
    live: LiveEvents
    lost_at_start: int
    pids: dict[int, int] = field(default_factory=dict)  # pid -> start time
    active: bool = True


class HandoffServer:
    def __init__(
        self,
        tracer: Tracker,
        path: Path,
        on_done: Callable[[int, int], None] | None = None,
        vet: Callable[[int], str | None] | None = None,
    ) -> None:
        """``on_done(run, events)`` is told of each run sent back (for the host's log); ``vet(pid)``
        returns why the host will not let a run have ``pid`` (None: it may)."""
        self.tracer = tracer
        self.on_done = on_done
        self.vet = vet
        self.path = path
        self._lock = threading.Lock()
        self._passes = threading.Condition()
        self._pass_count = 0
        self._by_pid: dict[int, _Run] = {}
        self._released: dict[int, int] = {}  # pid -> start, of runs sent back, not seen to exit yet
        self._runs = 0
        self._active = 0  # runs tracked and not yet sent back
        self._listener: socket.socket | None = None
        self._closing = False

    @property
    def busy(self) -> bool:
        """A run is being traced (the host may poll the ring buffer more often meanwhile)."""
        return self._active > 0

    def start(self) -> None:
        """Listen on ``path``, private to our user. A stale socket file is replaced; one another agent
        still listens on is not (OSError: two hosts would each take runs the other thinks are its own)."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if _listening(self.path):
            raise OSError(errno.EADDRINUSE, f"another agent listens on {self.path}")
        self.path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o077)
        try:
            listener.bind(str(self.path))
        finally:
            os.umask(old)
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._accept, name="handoff-accept", daemon=True).start()

    def close(self) -> None:
        self._closing = True
        if self._listener is not None:
            self._listener.close()
            self.path.unlink(missing_ok=True)

    def owns(self, pid: int) -> bool:
        """Whether ``pid`` is a process of a handed-off run (the host must leave it alone)."""
        with self._lock:
            return pid in self._by_pid or pid in self._released

    def feed(self, raw: bytes) -> bool:
        """Route one raw event; True if it belonged to a handed-off run."""
        if len(raw) < 8:
            return False
        tgid = _TGID.unpack_from(raw, 4)[0]
        with self._lock:
            run = self._by_pid.get(tgid)
            if run is None:
                return self._released_event(tgid, raw)
            kind = raw[0]
            if kind == EV_FORK:
                try:
                    event = self.tracer.decoder.decode(raw)
                except ValueError:
                    event = None
                if isinstance(event, ForkEvent):
                    run.pids[event.child] = event.child_start_ns
                    self._by_pid[event.child] = run
            run.live(raw)
            if kind == EV_EXIT:
                run.pids.pop(tgid, None)
                self._by_pid.pop(tgid, None)
        return True

    def _released_event(self, tgid: int, raw: bytes) -> bool:
        """Claim (and drop) an event of a run already sent back; its forks stay claimed too."""
        if tgid not in self._released:
            return False
        if raw[0] == EV_FORK:
            try:
                event = self.tracer.decoder.decode(raw)
            except ValueError:
                event = None
            if isinstance(event, ForkEvent):
                self._released[event.child] = event.child_start_ns
        elif raw[0] == EV_EXIT:
            self._released.pop(tgid, None)
        return True

    def _prune_released(self) -> None:
        """Forget released pids whose process is gone (its exit event was lost): the pid may be reused
        by a process the host must see."""
        with self._lock:
            gone = [pid for pid, start in self._released.items() if not same_process(pid, start)]
            for pid in gone:
                del self._released[pid]

    def polled(self) -> None:
        """One poll of the ring buffer is done: every event submitted before it began was fed. The runs
        still being fed settle the work they deferred to the end of a batch (``LiveEvents.settle``)."""
        with self._lock:
            for run in {id(r): r for r in self._by_pid.values()}.values():
                run.live.settle()
        with self._passes:
            self._pass_count += 1
            self._passes.notify_all()

    def _barrier(self) -> None:
        """Wait until everything the kernel submitted before now has been fed (two full polls)."""
        with self._passes:
            target = self._pass_count + 2
            if not self._passes.wait_for(lambda: self._pass_count >= target, BARRIER_TIMEOUT_S):
                raise ProtocolError("the agent's tracer stopped reading events")

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._closing:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), name="handoff-run", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        channel = Channel(conn)
        run: _Run | None = None
        try:
            peer_pid, uid, _gid = peer_credentials(conn)
            if uid not in (0, os.geteuid()):
                channel.send(ok=False, error=f"uid {uid} may not hand runs to this agent")
                return
            for msg in channel.messages():
                op = msg.get("op")
                if op == "hello":
                    channel.send(ok=True, versions=[1])
                elif op == "track" and run is None:
                    run = self._track(peer_pid, msg.get("pid"), msg.get("start_ns"))
                    channel.send(ok=True, run=run.number)
                elif op == "finish" and run is not None:
                    self._finish(channel, run, msg.get("linger_s"))
                    run = None
                    return
                else:
                    channel.send(ok=False, error=f"unexpected operation {op!r}")
                    return
        except _Refused as exc:
            _try(channel.send, ok=False, error=str(exc))
        except (ProtocolError, OSError):
            pass
        finally:
            if run is not None:
                self._drop(run)
            channel.close()

    def _track(self, peer_pid: int, pid: Any, start_ns: Any) -> _Run:
        if not isinstance(pid, int) or not isinstance(start_ns, int) or isinstance(pid, bool) or pid <= 0:
            raise _Refused("track needs an integer pid and start_ns")
        try:
            if procfs.parent_pid(pid) != peer_pid:
                raise _Refused(f"process {pid} is not a child of the caller")
            if procfs.start_ns(pid) != start_ns:
                raise _Refused(f"process {pid} did not start at {start_ns}")
            if os.stat(f"/proc/{pid}/ns/mnt").st_ino != os.stat("/proc/self/ns/mnt").st_ino:
                raise _Refused("the caller is in another mount namespace: its paths are not ours")
        except (OSError, ValueError, IndexError):
            raise _Refused(f"cannot check process {pid} in /proc") from None
        reason = self.vet(pid) if self.vet is not None else None
        if reason is not None:
            raise _Refused(reason)
        self._prune_released()
        live = LiveEvents(self.tracer.decoder, lost=self.tracer.lost_events)
        live.start_at(pid, procfs.read_os_cwd(pid))
        with self._lock:
            self._runs += 1
            self._active += 1
            run = _Run(self._runs, live, self.tracer.lost_events(), {pid: start_ns})
            self._by_pid[pid] = run
        self.tracer.track(pid, start_ns, peer_pid)
        return run

    def _finish(self, channel: Channel, run: _Run, linger_s: Any) -> None:
        """As ``run_command`` after the root exits: follow the rest for up to ``linger_s``, then send."""
        linger = min(float(linger_s), MAX_LINGER_S) if isinstance(linger_s, int | float) else 0.0
        self._barrier()  # the root's exit (the caller has reaped it) is in
        deadline = time.monotonic() + max(linger, 0.0)
        lingered = False
        while run.live.alive() > 0 and time.monotonic() < deadline:
            lingered = True
            time.sleep(0.02)
        end_ns = procfs.clock_boot_ns()
        if lingered or run.live.alive():
            self._barrier()  # a process of the run was alive a moment ago: take in what it did since
        self._drop(run)
        still = run.live.alive()
        for event in run.live.events():
            channel.send(event=event_to_json(event))
        if self.on_done is not None:
            self.on_done(run.number, len(run.live))
        channel.send(
            ok=True,
            end={
                "end_ns": end_ns,
                "lost_events": self.tracer.lost_events() - run.lost_at_start,
                "decode_errors": run.live.decode_errors,
                "still_running": still,
            },
        )

    def _drop(self, run: _Run) -> None:
        with self._lock:
            if run.active:
                run.active = False
                self._active -= 1
            for pid, start in run.pids.items():
                if self._by_pid.get(pid) is run:
                    del self._by_pid[pid]
                    self._released[pid] = start  # still tracked by the kernel until it exits
            run.pids.clear()


class _Refused(Exception):
    pass


def _listening(path: Path) -> bool:
    """Whether something accepts connections on the socket at ``path``."""
    if not path.is_socket():
        return False
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(str(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def _try(send: Callable[..., None], **fields: Any) -> None:
    try:
        send(**fields)
    except OSError:
        pass


def main() -> int:  # pragma: no cover - bench/trace_start.py's stand-in where the node agent cannot start
    import argparse
    import signal
    import sys

    from liubai.ebpf.loader import Tracer

    ap = argparse.ArgumentParser(description="Trace 'liubai trace' commands handed over on a Unix socket.")
    ap.add_argument("--socket", type=Path, required=True)
    args = ap.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with Tracer() as tracer:
        server = HandoffServer(
            tracer, args.socket, lambda n, k: print(f"served run {n}: {k} events", flush=True)
        )

        def route(raw: bytes) -> None:
            server.feed(raw)  # the node agent hands on what is not a run's (here: nothing else is traced)

        tracer.on_raw(route)
        server.start()
        print(f"ready {args.socket}", flush=True)
        while not stop.is_set():
            tracer.poll(5 if server.busy else 100)
            server.polled()
        server.close()
    sys.stdout.flush()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
