"""The node agent's journal: windows written whole and synced, read back as the same records, a crash's
torn line cut off, and a restart that continues the totals and records the time it was away as a gap."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from liubai.collector.node_journal import (
    JOURNAL_NAME,
    NodeJournal,
    NodeJournalSource,
    decode_line,
    encode_record,
    read_journal_state,
)
from liubai.collector.node_options import NodeCollectorOptions
from liubai.collector.node_recorder import NodeRecorder
from liubai.ebpf.procfs import ProcInfo
from liubai.lineage.model import RejectedRecord
from liubai.lineage.records import ContainerRecord, ProcessRecord, Record
from tests.node.fakes import CID_A, HOST, REF_A, Item, Ref, Story


@dataclass
class Adopted:
    info: ProcInfo
    container: Ref
    audit_id: str | None = None


@dataclass
class FakeTracer:
    """Hands out prepared events one poll at a time, as the kernel half would."""

    polls: list[list[Item]] = field(default_factory=list)
    adopted: list[Adopted] = field(default_factory=list)
    lost: int = 0
    closed: bool = False

    def start(self) -> Sequence[Adopted]:
        return self.adopted

    def poll(self, timeout_ms: int = 100) -> Sequence[Item]:
        return self.polls.pop(0) if self.polls else []

    def lost_events(self) -> int:
        return self.lost

    def close(self) -> None:
        self.closed = True


class Clock:
    def __init__(self, t: int) -> None:
        self.t = t

    def __call__(self) -> int:
        return self.t


def _records(state_dir: Path) -> list[Record]:
    source = NodeJournalSource(str(state_dir / JOURNAL_NAME))
    try:
        return [r for unit in source.units(None) for r in unit.records]
    finally:
        source.close()


def test_records_round_trip_through_a_journal_line() -> None:
    story = Story(REF_A)
    rec = ProcessRecord(HOST, 10, 500, 0, 0, argv=("sh", "-c", "x"), execs=({"id": 1, "binary": "/bin/sh"},))
    rec.container_id, rec.container_top = CID_A, True
    (back,) = decode_line(encode_record(rec), "j:1", "node")
    assert back == rec and isinstance(back.argv, tuple)
    cont = ContainerRecord(
        HOST, CID_A, "containerd", "/x", None, "t0", "t1", gaps=({"from": "a", "to": "b"},)
    )
    assert decode_line(encode_record(cont), "j:2", "node") == [cont]
    assert story.t > 0


def test_a_line_that_is_not_a_record_is_a_reject_naming_where() -> None:
    (reject,) = decode_line(b'{"type": "Nope", "record": {}}\n', "node-journal.jsonl:7", "node")
    assert isinstance(reject, RejectedRecord) and reject.location == "node-journal.jsonl:7"
    assert decode_line(b'{"window": {"end": "x"}}\n', "j:8", "node") == []


def test_a_torn_last_line_is_cut_before_the_next_window(tmp_path: Path) -> None:
    journal = NodeJournal(tmp_path)
    journal.write_window([ContainerRecord(HOST, CID_A, "containerd", "/x", None, "t0", "t1")], "t0", "t1")
    journal.close()
    with (tmp_path / JOURNAL_NAME).open("ab") as fh:
        fh.write(b'{"type":"ProcessRecord","rec')  # the crash came mid-write
    journal = NodeJournal(tmp_path)
    journal.write_window([], "t1", "t2")
    journal.close()
    assert [type(r).__name__ for r in _records(tmp_path)] == ["ContainerRecord"]
    assert read_journal_state(tmp_path / JOURNAL_NAME).last_window_end == "t2"


def test_a_restart_records_the_gap_and_continues_the_totals(tmp_path: Path) -> None:
    opts = NodeCollectorOptions(host=HOST, window_s=1.0)
    s = Story(REF_A)
    clock = Clock(5_000_000_000)
    first = FakeTracer(
        polls=[[s.exec(10, 500, "/bin/app"), s.open(10, 500, "/data/x"), s.open(10, 500, "/data/x")]]
    )
    rec = NodeRecorder(first, opts, tmp_path, clock=clock)
    rec.start()
    rec.step()
    clock.t += 2_000_000_000
    rec.step()  # the window is due: written and synced
    # kill -9 here: nothing more is written. The journal holds what was recorded.
    rec.journal.close()
    before = _records(tmp_path)
    assert read_journal_state(tmp_path / JOURNAL_NAME).seeds[CID_A].running == {10: 500}
    assert any(isinstance(r, ProcessRecord) and r.pid == 10 for r in before)

    clock.t += 30_000_000_000  # away for 30 s
    # /proc tells the start time to the clock tick only: the same process, not a new one
    ticked = 500 + 7_000_000
    info = ProcInfo(
        pid=10, ppid=1, start_ns=ticked, uid=0, comm="app", argv=("app",), binary="/bin/app", cwd="/"
    )
    polls = [[s.open(10, ticked, "/data/x"), s.exit(10, ticked)]]
    second = FakeTracer(adopted=[Adopted(info, REF_A)], polls=polls)
    rec = NodeRecorder(second, opts, tmp_path, clock=clock)
    assert rec.start() == 1
    rec.step()
    clock.t += 2_000_000_000
    rec.step()
    rec.close()
    assert second.closed
    after = _records(tmp_path)[len(before) :]
    containers = [r for r in after if isinstance(r, ContainerRecord)]
    (gap,) = containers[-1].gaps
    last_end = read_journal_state(tmp_path / JOURNAL_NAME)
    assert gap["from"] < gap["to"] and last_end.last_window_end is not None
    adopted = [r for r in after if isinstance(r, ProcessRecord) and r.pid == 10]
    assert adopted and all(r.adopted and r.start_ns == 500 for r in adopted)
    assert adopted[-1].ended_at is not None
    opens = [r for r in after if type(r).__name__ == "ContainerOpensRecord"]
    assert opens[-1].totals == {"/bin/app": 3}  # type: ignore[attr-defined]  # 2 before the restart, 1 after


def test_lost_kernel_events_are_a_visible_count(tmp_path: Path) -> None:
    clock = Clock(1_000_000_000)
    tracer = FakeTracer(lost=0)
    rec = NodeRecorder(tracer, NodeCollectorOptions(host=HOST), tmp_path, clock=clock)
    rec.start()
    tracer.lost = 7
    rec.close()
    (reject,) = [r for r in _records(tmp_path) if isinstance(r, RejectedRecord)]
    assert "dropped 7 events" in reject.reason


def test_a_container_the_journal_knew_only_by_a_process_gets_its_cgroup_facts_back(tmp_path: Path) -> None:
    """A crash between a window's process lines and its Container line: the container is known, its
    runtime, cgroup and pod come back from its next event, never blanked."""
    from liubai.collector.node import NodeCollector

    rec = ProcessRecord(HOST, 10, 500, 0, 0, comm="app")
    rec.container_id = CID_A
    (tmp_path / JOURNAL_NAME).write_bytes(encode_record(rec))
    seeds = read_journal_state(tmp_path / JOURNAL_NAME).seeds
    nc = NodeCollector(NodeCollectorOptions(host=HOST), seeds=seeds, boot_offset_ns=0)
    nc.add(Story(REF_A).open(10, 500, "/data/x"))
    (container,) = [r for r in nc.flush(2_000_000_000) if isinstance(r, ContainerRecord)]
    assert (container.runtime, container.cgroup, container.pod_uid) == (
        REF_A.runtime,
        REF_A.cgroup,
        REF_A.pod_uid,
    )
