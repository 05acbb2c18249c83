"""The hand-off protocol between ``liubai trace`` and a node agent whose tracer is already loaded.

Loading the tracer costs ``liubai trace`` most of its start; an agent on the node has it loaded all the
time. So ``liubai trace`` asks the agent, over a Unix socket, to track its command instead:

    client                                             agent
    {"v":1,"op":"hello"}                          ->
                                                  <-   {"v":1,"ok":true,"versions":[1]}
    (forks the command, held before its exec)
    {"v":1,"op":"track","pid":P,"start_ns":S}     ->   checks P is the caller's own held child, puts it in
                                                  <-   {"v":1,"ok":true,"run":N}   the kernel's tracked set
    (releases the command, waits for it)
    {"v":1,"op":"finish","linger_s":5.0}          ->   follows descendants for up to linger_s, reads every
                                                  <-   {"v":1,"event":{...}}    ...  event of the run up to now
                                                  <-   {"v":1,"ok":true,"end":{"end_ns":..,"lost_events":..,
                                                                                "decode_errors":..,"still_running":..}}

Messages are JSON objects, one per line (at most ``MAX_LINE`` bytes); events are ``event_to_json`` dicts,
the lines of a ``--record`` file, which the client reads back with the same checks as a recording. Any
``{"ok": false, "error": ...}`` ends the exchange. A version either side does not speak is refused
with that error, and the client then traces on its own, as without an agent. One run per connection:
a connection closed before ``finish`` drops its run.
"""

from __future__ import annotations

import json
import os
import socket
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_SOCKET",
    "MAX_LINE",
    "SOCKET_ENV",
    "VERSION",
    "Channel",
    "ProtocolError",
    "peer_credentials",
    "socket_path",
    "socket_setting",
]

VERSION = 1
DEFAULT_SOCKET = Path("/run/liubai/trace.sock")
MAX_LINE = 1 << 20  # one event is at most ~40 KiB of JSON (argv, paths); anything longer is not ours
SOCKET_ENV = "LIUBAI_AGENT_SOCKET"


class ProtocolError(RuntimeError):
    """The peer broke the protocol, refused, or went away; the message says which."""


def socket_path() -> Path | None:
    """The agent's socket: ``LIUBAI_AGENT_SOCKET`` (``off`` never hands off), else ``DEFAULT_SOCKET``."""
    return socket_setting(os.environ.get(SOCKET_ENV))


def socket_setting(configured: str | None) -> Path | None:
    """A configured socket path: None (unset) is ``DEFAULT_SOCKET``, ``off`` (or empty, 0, no) is None."""
    if configured is None:
        return DEFAULT_SOCKET
    if configured.strip().lower() in ("", "off", "0", "no"):
        return None
    return Path(configured)


class Channel:
    """JSON lines over a connected stream socket, each message stamped with the protocol version."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._file = sock.makefile("rb")

    def send(self, **fields: Any) -> None:
        line = json.dumps({"v": VERSION, **fields}, separators=(",", ":")).encode() + b"\n"
        self.sock.sendall(line)

    def receive(self) -> dict[str, Any]:
        """The next message; ProtocolError on end of stream, an over-long line, bad JSON or a foreign
        version."""
        line = self._file.readline(MAX_LINE + 1)
        if not line:
            raise ProtocolError("the peer closed the connection")
        if len(line) > MAX_LINE or not line.endswith(b"\n"):
            raise ProtocolError(f"a message longer than {MAX_LINE} bytes")
        try:
            msg = json.loads(line)
        except ValueError:
            raise ProtocolError("a message that is not JSON") from None
        if not isinstance(msg, dict):
            raise ProtocolError("a message that is not a JSON object")
        if msg.get("v") != VERSION:
            raise ProtocolError(f"protocol version {msg.get('v')!r}, this side speaks {VERSION}")
        return msg

    def reply(self) -> dict[str, Any]:
        """The next message, which must be a success (an error reply raises with the peer's reason)."""
        msg = self.receive()
        if msg.get("ok") is not True:
            raise ProtocolError(f"the agent refused: {msg.get('error', 'no reason given')}")
        return msg

    def messages(self) -> Iterator[dict[str, Any]]:
        while True:
            yield self.receive()

    def close(self) -> None:
        self._file.close()
        self.sock.close()


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end, as the kernel saw it connect."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid
