"""Node mode's pure parts: the rendered program's switch and the adopt event's bytes and JSON form."""

from __future__ import annotations

import os
import struct
import subprocess
import time
from pathlib import Path

import pytest

from liubai.ebpf.event_json import event_from_json, event_to_json
from liubai.ebpf.events import (
    ADOPT_SCAN,
    EV_ADOPT,
    AdoptEvent,
    EventDecoder,
)
from liubai.ebpf.node import read_environ_value
from liubai.ebpf.procfs import container_relative
from liubai.ebpf.program import ProgramOptions, render_program


def test_node_mode_is_rendered_only_when_asked() -> None:
    assert "#define NODE_MODE 1\n" in render_program(ProgramOptions(node=True))
    assert "#define NODE_MODE 0\n" in render_program(ProgramOptions())
    assert "#define NODE_LEVELS 5\n" in render_program(ProgramOptions(node=True, node_levels=5))
    with pytest.raises(ValueError, match="node_levels"):
        ProgramOptions(node=True, node_levels=0).validate()


def test_adopt_event_bytes_decode() -> None:
    raw = struct.pack("<IIIIQQ", EV_ADOPT, 41, 42, 0, 1_000, 0) + struct.pack("<QII", 2**40 + 7, 2, 0)
    event = EventDecoder().decode(raw)
    assert event == AdoptEvent(41, 42, 0, 1_000, 0, cgroup_id=2**40 + 7, reason=2)


def test_adopt_event_json_round_trip_and_checks() -> None:
    event = AdoptEvent(7, 7, 0, 10, 5, cgroup_id=99, reason=ADOPT_SCAN, ppid=1, comm="sh", argv=("sh", "-c"))
    assert event_from_json(event_to_json(event)) == event
    bad = event_to_json(event) | {"cgroup_id": -1}
    with pytest.raises(ValueError, match="cgroup_id"):
        event_from_json(bad)


def test_the_audit_id_is_read_from_a_live_process_environment() -> None:
    value = "git-sha1:" + "ab" * 20 + "|trace:" + "cd" * 16
    env = {"PATH": "/usr/bin:/bin", "X_GITOPS_AUDIT_ID_OTHER": "no", "X_GITOPS_AUDIT_ID": value}
    proc = subprocess.Popen(["sleep", "30"], env=env)
    try:
        # until its exec, the child is a copy of this process with this process's environment
        for _ in range(500):
            if Path(f"/proc/{proc.pid}/cmdline").read_bytes().startswith(b"sleep\0"):
                break
            time.sleep(0.01)
        assert read_environ_value(proc.pid, "X_GITOPS_AUDIT_ID") == (True, value)
        assert read_environ_value(proc.pid, "HOME") == (True, None)
    finally:
        proc.kill()
        proc.wait()
    assert read_environ_value(proc.pid, "X_GITOPS_AUDIT_ID") == (False, None)  # gone: unreadable


def test_paths_proc_shows_are_made_relative_to_the_process_root() -> None:
    assert container_relative(os.getpid(), "/etc/hostname") == "/etc/hostname"  # our root is "/"
