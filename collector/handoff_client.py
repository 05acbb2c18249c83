"""``liubai trace``'s side of the hand-off: let a running node agent trace the command.

``connect`` finds an agent (its socket, owned by root or by us, answering our protocol version) or says
why not; ``run_with_agent`` then runs the command exactly as ``liubai.ebpf.run.run_command`` does (held
before its exec until it is tracked, stdio untouched, signals forwarded) and returns the run's events
as the agent read them, checked like the lines of a recording.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from liubai.collector.handoff_protocol import Channel, ProtocolError, peer_credentials, socket_path
from liubai.ebpf import procfs
from liubai.ebpf.event_json import event_from_json
from liubai.ebpf.events import Event
from liubai.ebpf.run import RunResult, fork_held, forward_signals, release, restore_signals

__all__ = ["AgentRun", "AgentUnavailable", "connect", "run_with_agent"]

CONNECT_TIMEOUT_S = 2.0
TRACK_TIMEOUT_S = 10.0


class AgentUnavailable(RuntimeError):
    """No agent takes the run; the message says why (the caller traces on its own)."""


@dataclass(slots=True)
class AgentRun:
    result: RunResult
    events: list[Event] = field(default_factory=list)
    decode_errors: int = 0  # events the agent could not decode, or lines here that were not events
    still_running: int = 0  # processes of the run alive when the agent stopped following it
    failure: str | None = None  # the agent broke off after the command ran: the events are incomplete


def connect(path: Path | None = None) -> Channel:
    """A channel to the agent that greeted us in our protocol version; AgentUnavailable otherwise."""
    path = path if path is not None else socket_path()
    if path is None:
        raise AgentUnavailable("hand-off switched off")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(CONNECT_TIMEOUT_S)
    try:
        sock.connect(str(path))
        _pid, uid, _gid = peer_credentials(sock)
        if uid not in (0, os.geteuid()):  # only an agent as privileged as we are decides what we record
            raise AgentUnavailable(f"the agent at {path} runs as uid {uid}, neither root nor us")
        channel = Channel(sock)
        channel.send(op="hello")
        channel.reply()
    except (OSError, ProtocolError) as exc:
        sock.close()
        raise AgentUnavailable(f"no agent at {path}: {exc}") from None
    except AgentUnavailable:
        sock.close()
        raise
    return channel


def run_with_agent(
    channel: Channel,
    argv: Sequence[str],
    on_start: Callable[[int, int], None],
    *,
    linger_s: float = 0.0,
) -> AgentRun:
    """Fork ``argv`` held, have the agent track it, release it, wait for it, then collect the run.

    If the agent refuses the pid, the held process exits unrun and AgentUnavailable is raised: the
    caller can still trace the command itself. Once the command has run, a broken agent is reported in
    ``AgentRun.failure`` with what arrived, and the command's exit status.
    """
    pid, ready_w = fork_held(argv)
    previous = forward_signals(pid)
    try:
        start = procfs.start_ns(pid)
        try:
            channel.sock.settimeout(TRACK_TIMEOUT_S)  # the command waits on this answer
            channel.send(op="track", pid=pid, start_ns=start)
            channel.reply()
            channel.sock.settimeout(None)  # from here on the run takes as long as it takes
        except (OSError, ProtocolError) as exc:
            os.close(ready_w)  # the held process exits 126 without running anything
            os.waitpid(pid, 0)
            raise AgentUnavailable(f"the agent did not take the run: {exc}") from None
        on_start(pid, start)
        release(ready_w)
        _, status = os.waitpid(pid, 0)
        root_end = procfs.clock_boot_ns()
    finally:
        restore_signals(previous)
    run = AgentRun(RunResult(pid, start, root_end, os.waitstatus_to_exitcode(status), 0, root_end))
    try:
        channel.send(op="finish", linger_s=linger_s)
        for msg in channel.messages():
            if "event" in msg:
                try:
                    run.events.append(event_from_json(msg["event"]))
                except (ValueError, TypeError, KeyError):
                    run.decode_errors += 1
                continue
            if msg.get("ok") is not True:
                raise ProtocolError(f"the agent failed the run: {msg.get('error', 'no reason given')}")
            end = msg["end"]
            run.result.end_ns = int(end["end_ns"])
            run.result.lost_events = int(end["lost_events"])
            run.decode_errors += int(end["decode_errors"])
            run.still_running = int(end["still_running"])
            return run
    except (OSError, ProtocolError, KeyError, TypeError, ValueError) as exc:
        run.failure = str(exc) or type(exc).__name__
        run.result.end_ns = procfs.clock_boot_ns()
        return run
    finally:
        channel.close()
    raise AssertionError("unreachable: messages() ends only by raising")  # pragma: no cover
