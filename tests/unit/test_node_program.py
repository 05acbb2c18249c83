"""Node mode's pure parts: the rendered program's switch and the adopt event's bytes and JSON form."""

from __future__ import annotations

import struct

import pytest

from liubai.ebpf.events import (
    ADOPT_SCAN,
    EV_ADOPT,
    AdoptEvent,
    EventDecoder,
    event_from_json,
    event_to_json,
)
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
