"""The user-space rules the tracer applies where the kernel's answer is gone: descriptor reads withdrawn
when the number was reused before the read, and the credential rules of set*uid and exec."""

from __future__ import annotations

import struct

from liubai.collector.live_events import LiveEvents, _check_open_reads, _Read
from liubai.ebpf.credentials import Creds, compare, effective_file_caps, exec_creds
from liubai.ebpf.events import EV_FD, FD_CLOSE, EventDecoder, FdEvent, OpenEvent


def _open(ts: int, fd: int, path: str, kernel_path: str) -> OpenEvent:
    return OpenEvent(7, 7, 0, ts, 1, path=path, fd=fd, kernel_path=kernel_path)


def test_a_number_reused_by_a_later_read_open_does_not_hide_the_stale_read() -> None:
    """fd 6 opened via /proc/self/fd (read back late, when 6 was already another file), closed, then
    reused by a /dev/fd open read back too: the close withdraws the first read, not the second."""
    first = _open(100, 6, "/proc/self/fd/5/procself", "/w/dirB")
    second = _open(300, 6, "/dev/fd/4", "/w/dirA")
    pending = {7: {6: [_Read(1000, first), _Read(1001, second)]}}
    for event in (first, FdEvent(7, 7, 0, 200, 1, op=FD_CLOSE, fd=6), second):
        _check_open_reads(pending, event)
    assert first.kernel_path is None  # read after its descriptor was freed: withdrawn
    assert second.kernel_path == "/w/dirA"  # its own open, not yet freed at the read: kept
    _check_open_reads(pending, FdEvent(7, 7, 0, 2000, 1, op=FD_CLOSE, fd=6))
    assert second.kernel_path == "/w/dirA" and not pending[7]  # closed after the read: still true


def test_the_consumer_never_sees_a_read_the_later_close_withdraws() -> None:
    """The close that frees the number comes after the open in kernel order, still raw; the open must
    already carry no kernel path when it is handed out (a consumer records it at once)."""
    live = LiveEvents(EventDecoder())
    opened = _open(100, 6, "/proc/self/fd/5/procself", "/w")  # read back after 6 became "."
    close = struct.pack("<IIIIQQ", EV_FD, 7, 7, 0, 200, 1) + struct.pack("<IiiIII", FD_CLOSE, 6, -1, 0, 0, 0)
    live._items = [opened, close]
    live._open_reads = {7: {6: [_Read(1000, opened)]}}
    seen = []
    for event in live.events():
        seen.append(event)
        if event is opened:
            assert opened.kernel_path is None
    assert isinstance(seen[1], FdEvent) and seen[1].fd == 6 and live.decode_errors == 0


ROOT = Creds(0, 0, 0, 0, (1 << 41) - 1)
NOBODY = Creds(65534, 65534, 65534, 65534, 0)


def test_root_becoming_nobody_is_a_drop_and_nobody_regaining_root_an_escalation() -> None:
    assert compare(ROOT, NOBODY) == (False, True)
    assert compare(Creds(65534, 65534, 0, 65534, 0), Creds(65534, 0, 0, 0, None)) == (True, False)
    assert compare(ROOT, Creds(65534, 0, 0, 0, ROOT.cap_eff)) == (False, False)  # setresuid(65534,0,0)


def test_exec_rules_of_setuid_and_file_capability_images() -> None:
    assert exec_creds(NOBODY, 0, 0) == Creds(65534, 0, 0, 0, None)
    assert compare(NOBODY, exec_creds(NOBODY, 0, 0)) == (True, False)
    assert exec_creds(NOBODY, None, 4) == Creds(65534, 65534, 65534, 65534, 4)
    assert compare(NOBODY, exec_creds(NOBODY, None, 4)) == (True, False)
    assert exec_creds(NOBODY, None, 0) == NOBODY
    assert exec_creds(ROOT, None, 0) == ROOT


def test_security_capability_xattr_effective_set() -> None:
    v2 = struct.pack("<IIIII", 0x02000001, 1 << 2, 0, 1, 0)  # effective flag, cap 2 and cap 32
    assert effective_file_caps(v2) == (1 << 2) | (1 << 32)
    assert effective_file_caps(struct.pack("<IIIII", 0x02000000, 1 << 2, 0, 0, 0)) == 0  # not effective
    assert effective_file_caps(None) == 0 and effective_file_caps(b"\x01") == 0
