"""The hand-off protocol between ``liubai trace`` and an agent: framing, refusals, one run's exchange.

No kernel here: the agent's tracker is a stand-in that records what it was asked to track, and the
test plays the agent's poll loop. tests/ebpf/test_handoff.py runs the same with a real tracer.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from liubai.collector import handoff_client
from liubai.collector.handoff_client import AgentUnavailable, connect, run_with_agent
from liubai.collector.handoff_protocol import MAX_LINE, Channel, ProtocolError, socket_path, socket_setting
from liubai.collector.handoff_server import HandoffServer
from liubai.ebpf import procfs
from liubai.ebpf.events import EV_EXIT, EV_FORK, EventDecoder
from liubai.ebpf.program import ProgramOptions


class StandInTracker:
    def __init__(self) -> None:
        self.decoder = EventDecoder(ProgramOptions())
        self.tracked: list[tuple[int, int, int]] = []

    def track(self, pid: int, start_ns: int, ppid: int = 0) -> None:
        self.tracked.append((pid, start_ns, ppid))

    def lost_events(self) -> int:
        return 0


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[tuple[HandoffServer, StandInTracker]]:
    tracker = StandInTracker()
    server = HandoffServer(tracker, tmp_path / "run" / "trace.sock")
    server.start()
    stop = threading.Event()

    def poll_loop() -> None:  # what the agent's ring-buffer loop does between polls
        while not stop.wait(0.005):
            server.polled()

    threading.Thread(target=poll_loop, daemon=True).start()
    yield server, tracker
    stop.set()
    server.close()


def _pair() -> tuple[Channel, Channel]:
    a, b = socket.socketpair()
    return Channel(a), Channel(b)


def test_messages_cross_as_versioned_json_lines() -> None:
    left, right = _pair()
    left.send(op="hello")
    assert right.receive() == {"v": 1, "op": "hello"}


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (b'{"v":2,"ok":true}\n', "protocol version 2"),
        (b"not json\n", "not JSON"),
        (b"[1]\n", "not a JSON object"),
        (b'{"v":1,"ok":false,"error":"busy"}\n', "refused: busy"),
        (b"x" * (MAX_LINE + 10) + b"\n", "longer than"),
    ],
)
def test_a_bad_or_refusing_message_is_one_clear_error(line: bytes, why: str) -> None:
    left, right = _pair()
    sender = threading.Thread(target=left.sock.sendall, args=(line,), daemon=True)  # may exceed the buffer
    sender.start()
    with pytest.raises(ProtocolError, match=why):
        right.reply()
    left.close()


def test_the_socket_comes_from_the_environment_or_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LIUBAI_AGENT_SOCKET", raising=False)
    assert socket_path() == Path("/run/liubai/trace.sock")
    monkeypatch.setenv("LIUBAI_AGENT_SOCKET", "off")
    assert socket_path() is None
    monkeypatch.setenv("LIUBAI_AGENT_SOCKET", "/x/agent.sock")
    assert socket_path() == Path("/x/agent.sock")
    # the node agent's --trace-socket reads the same way
    assert socket_setting(None) == Path("/run/liubai/trace.sock")
    assert socket_setting("off") is None and socket_setting(" OFF ") is None
    assert socket_setting("/x/a.sock") == Path("/x/a.sock")


def test_no_agent_listening_means_tracing_here(tmp_path: Path) -> None:
    with pytest.raises(AgentUnavailable, match="no agent at"):
        connect(tmp_path / "nobody.sock")


def test_the_socket_is_private_to_the_agents_user(agent: tuple[HandoffServer, StandInTracker]) -> None:
    server, _ = agent
    assert server.path.stat().st_mode & 0o077 == 0


def test_a_run_handed_over_is_tracked_before_it_runs_and_comes_back(
    agent: tuple[HandoffServer, StandInTracker], tmp_path: Path
) -> None:
    server, tracker = agent
    marker = tmp_path / "ran"
    seen_before_release: list[bool] = []

    def started(pid: int, start_ns: int) -> None:
        seen_before_release.append(tracker.tracked == [(pid, start_ns, os.getpid())] and not marker.exists())

    run = run_with_agent(connect(server.path), ["sh", "-c", f"touch {marker}; exit 7"], started)

    assert seen_before_release == [True]  # tracked (with us as parent) while still held
    assert marker.exists() and run.result.exit_code == 7
    assert run.failure is None and run.result.lost_events == 0
    assert run.result.end_ns >= run.result.root_end_ns > run.result.start_ns  # type: ignore[operator]
    assert run.events == []  # the stand-in tracer saw nothing; the root never showed its exit
    assert run.still_running == 1


def test_the_agent_tracks_only_a_child_of_the_caller(agent: tuple[HandoffServer, StandInTracker]) -> None:
    server, tracker = agent
    channel = connect(server.path)
    me = os.getpid()  # a process, but not one of the caller's children
    channel.send(op="track", pid=me, start_ns=procfs.start_ns(me))
    with pytest.raises(ProtocolError, match="not a child of the caller"):
        channel.reply()
    assert tracker.tracked == []


def test_a_refused_track_leaves_the_command_unrun(
    agent: tuple[HandoffServer, StandInTracker], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, tracker = agent
    marker = tmp_path / "ran"
    wrong = SimpleNamespace(start_ns=lambda pid: 12345, clock_boot_ns=procfs.clock_boot_ns)
    monkeypatch.setattr(handoff_client, "procfs", wrong)  # the client claims a start the child did not have
    with pytest.raises(AgentUnavailable, match="did not start at 12345"):
        run_with_agent(connect(server.path), ["touch", str(marker)], lambda p, s: None)
    assert not marker.exists() and tracker.tracked == []


def test_a_second_agent_does_not_take_a_socket_another_listens_on(
    agent: tuple[HandoffServer, StandInTracker],
) -> None:
    server, _ = agent
    with pytest.raises(OSError, match="another agent listens on"):
        HandoffServer(StandInTracker(), server.path).start()
    connect(server.path).close()  # the first still answers


def test_a_stale_socket_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "trace.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens
    server = HandoffServer(StandInTracker(), path)
    server.start()
    try:
        connect(path).close()
    finally:
        server.close()


def test_the_host_may_refuse_a_pid_it_records_itself(tmp_path: Path) -> None:
    tracker = StandInTracker()
    server = HandoffServer(tracker, tmp_path / "trace.sock", vet=lambda pid: f"process {pid} is a pod's")
    server.start()
    marker = tmp_path / "ran"
    try:
        with pytest.raises(AgentUnavailable, match="is a pod's"):
            run_with_agent(connect(server.path), ["touch", str(marker)], lambda p, s: None)
    finally:
        server.close()
    assert not marker.exists() and tracker.tracked == []


def _raw(kind: int, pid: int, body: bytes) -> bytes:
    return struct.pack("<IIIIQQ", kind, pid, pid, 0, 1, 1) + body


def test_a_run_sent_back_keeps_its_live_processes_from_the_host(
    agent: tuple[HandoffServer, StandInTracker],
) -> None:
    """Past --linger the kernel still traces them: their events, and their children's, stay claimed."""
    server, _ = agent
    roots: list[int] = []
    run = run_with_agent(connect(server.path), ["true"], lambda p, s: roots.append(p))
    (root,) = roots
    assert run.still_running == 1  # the stand-in never reported the root's exit
    assert server.owns(root) and not server.busy
    child = 4_000_000  # a pid no process of this test has
    assert server.feed(_raw(EV_FORK, root, struct.pack("<IIQ", child, 0, 2)))
    assert server.owns(child)
    assert server.feed(_raw(EV_EXIT, child, struct.pack("<iI16s", 0, 1, b"x")))
    assert not server.owns(child)
    assert not server.feed(_raw(EV_EXIT, child, struct.pack("<iI16s", 0, 1, b"x")))  # the host's now


def test_a_released_pid_whose_exit_was_lost_goes_back_to_the_host(
    agent: tuple[HandoffServer, StandInTracker],
) -> None:
    """The root of a run sent back ended without its exit event: at the next run its pid is freed."""
    server, _ = agent
    roots: list[int] = []
    run_with_agent(connect(server.path), ["true"], lambda p, s: roots.append(p))
    (root,) = roots
    assert server.owns(root)  # the stand-in never reported its exit; the process is gone
    run_with_agent(connect(server.path), ["true"], lambda p, s: None)
    assert not server.owns(root)
