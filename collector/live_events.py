"""The events of a live traced run, enriched with what only the live machine can know.

Sha256 of executed binaries and the cwd a relative exec name is resolved against are added to the events
*before* they are recorded or replayed, so replaying a recording never looks at the local filesystem.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterator

from liubai.collector.runs import BinaryHasher, resolve_path
from liubai.ebpf.events import (
    EV_CHDIR,
    EV_EXEC,
    EV_EXIT,
    EV_FORK,
    ChdirEvent,
    DecodeError,
    Event,
    EventDecoder,
    ExecEvent,
    ExitEvent,
    ForkEvent,
)
from liubai.ebpf.procfs import read_cwd
from liubai.lineage.text import visible

__all__ = ["LiveEvents"]


class LiveEvents:
    """The events of a live run, kept as raw bytes while the command runs and decoded afterwards.

    Appending bytes is the least work the reader can do per event, so tracing steals as little CPU as
    possible from the traced command. Fork, exec, chdir and exit events are decoded at once: an exec's
    binary is hashed while it is still the file that ran, and finding it by a relative name needs the
    process's cwd at that moment, which forks and chdirs carry from process to process in event order (a
    short-lived process is gone from /proc before its exec is read).

    Paths here are the OS's own str (``os.fsdecode``: lone surrogates for bytes that are not UTF-8), so
    that ``open`` reaches the very file the kernel named; events keep their shown ``\\xNN`` text. A hash
    is false evidence where no hash is only a gap, so every doubt (a dropped event, a cut path, a path
    the tracer would read in its own process) means no hash.
    """

    def __init__(
        self, decoder: EventDecoder, hasher: BinaryHasher | None = None, lost: Callable[[], int] | None = None
    ) -> None:
        """``lost``: how many events the kernel has dropped so far (``Tracer.lost_events``)."""
        self.decoder = decoder
        self.hasher = hasher or BinaryHasher()
        self.decode_errors = 0
        self._items: list[bytes | Event] = []
        self._lost = lost
        self._cwd: dict[int, str] = {}  # pid -> cwd, as far as the events so far tell it
        self._read_at: dict[int, tuple[int, int]] = {}  # pid -> boot-clock times around reading /proc's cwd
        self._following = True  # until the kernel drops an event, which may have been a fork or chdir

    def start_at(self, pid: int, os_cwd: str | None, read_between: tuple[int, int] | None = None) -> None:
        """The cwd of a traced process that no fork of the run introduces (the root, an adopted one).

        ``read_between``: the boot-clock times around reading it from /proc while the process was already
        traced (attaching). A chdir event from before that is in /proc's answer already, and one from
        during it may be: the first is not applied twice, the second makes the cwd unknown."""
        if os_cwd is None or not self._following or pid in self._cwd:
            return
        self._cwd[pid] = os_cwd
        if read_between is not None:
            self._read_at[pid] = read_between

    def __call__(self, raw: bytes) -> None:
        if raw[0] not in _DECODED_AT_ONCE:  # the type is a little-endian u32 below 256
            self._items.append(raw)
            return
        try:
            event = self.decoder.decode(raw)
        except DecodeError:
            self.decode_errors += 1
            return
        if isinstance(event, ForkEvent):
            self._forked(event)
        elif isinstance(event, ExecEvent):
            self._executed(event, self.decoder.os_path(raw))
        elif isinstance(event, ChdirEvent):
            self._changed_dir(event, self.decoder.os_path(raw))
        elif isinstance(event, ExitEvent):
            self._cwd.pop(event.pid, None)
            self._read_at.pop(event.pid, None)
        self._items.append(event)

    def _known_cwd(self, pid: int) -> str | None:
        """The cwd the events tell for ``pid``; None from the first dropped event on."""
        if self._following and self._lost is not None and self._lost():
            self._following = False
            self._cwd.clear()
        return self._cwd.get(pid)

    def _forked(self, event: ForkEvent) -> None:
        window = self._read_at.get(event.child)
        if window is not None and event.ts < window[0]:
            return  # a child adopted after this fork: /proc's answer for it is the later word
        cwd = self._cwd.get(event.pid)
        if cwd is None:
            self._cwd.pop(event.child, None)  # a reused pid's old cwd must not stand
        else:
            self._cwd[event.child] = cwd

    def _changed_dir(self, event: ChdirEvent, os_path: str | None) -> None:
        """Move the followed cwd. An fchdir names a descriptor, not a path: /proc's cwd, read now, shows
        where it led, but may already be past a later chdir, so the process's cwd is no longer followed."""
        if event.fd >= 0:
            event.cwd, cwd = read_cwd(event.pid), None
        else:
            cwd = _kernel_join(os_path, self._cwd.get(event.pid))
        window = self._read_at.get(event.pid)
        if window is not None:
            if event.ts < window[0]:
                return  # told by /proc already
            del self._read_at[event.pid]
            if event.ts <= window[1]:
                cwd = None  # /proc may or may not have told it
        if cwd is None or not self._following:
            self._cwd.pop(event.pid, None)
        else:
            self._cwd[event.pid] = cwd

    def _executed(self, event: ExecEvent, os_filename: str | None) -> None:
        """Hash the binary that ran (by the kernel's bytes: a name that is not UTF-8 gets its hash too);
        a relative name is resolved against the cwd the events tell. Not against /proc's: by the time the
        event is read the process may have moved on (a script's first ``cd``) or be gone."""
        if os_filename is None:
            return
        base = None
        if not os_filename.startswith("/"):
            base = self._known_cwd(event.pid)
            event.cwd = None if base is None else visible(resolve_path(base, None) or base)
        path = _kernel_join(os_filename, base)
        if path is not None and not path.startswith(_NOT_HERE):
            event.sha256 = self.hasher.sha256(path)

    def __len__(self) -> int:
        return len(self._items)

    def events(self) -> Iterator[Event]:
        for item in self._items:
            if not isinstance(item, bytes):
                yield item
                continue
            try:
                yield self.decoder.decode(item)
            except DecodeError:
                self.decode_errors += 1


_DECODED_AT_ONCE = frozenset((EV_FORK, EV_EXEC, EV_CHDIR, EV_EXIT))
# Paths that name a process's own descriptors: opened here, they would be the tracer's, not the traced one's.
_NOT_HERE = ("/dev/fd/", "/proc/")


def _kernel_join(path: str | None, base: str | None) -> str | None:
    """``path`` against ``base`` as the kernel walks it: ``..`` after a symlink leads out of its target,
    so no lexical normalising; None if relative with no base."""
    if path is None or (base is None and not path.startswith("/")):
        return None
    return path if base is None else posixpath.join(base, path)
