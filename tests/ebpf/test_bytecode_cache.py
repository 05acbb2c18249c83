"""A tracer loaded from the bytecode cache sees what a freshly compiled one sees."""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path

import pytest

from liubai.collector.live_events import LiveEvents
from liubai.ebpf.events import Event, ExecArgsEvent, ExecEvent, ExitEvent, ForkEvent, OpenEvent
from liubai.ebpf.loader import Tracer
from liubai.ebpf.run import run_command

pytestmark = [pytest.mark.ebpf, pytest.mark.usefixtures("kernel")]

SCRIPT = "cat in.txt > out.txt; ls -d / > /dev/null; exit 3"


def _trace(work: Path) -> tuple[str, int | None, int, list[Event]]:
    tracer = Tracer()
    try:
        live = LiveEvents(tracer.decoder, lost=tracer.lost_events)
        tracer.on_raw(live, live.settle)
        old = os.getcwd()
        os.chdir(work)
        try:
            result = run_command(tracer, ["sh", "-c", SCRIPT], lambda pid, _s: live.start_at(pid, str(work)))
        finally:
            os.chdir(old)
        return tracer.origin, result.exit_code, result.lost_events, list(live.events())
    finally:
        tracer.close()


def _what_happened(events: list[Event]) -> Counter[tuple[str, ...]]:
    """The run as pid-free facts: images executed, argv, files opened, forks, exit codes."""
    facts: Counter[tuple[str, ...]] = Counter()
    for e in events:
        if isinstance(e, ExecEvent):
            facts["exec", e.filename] += 1
        elif isinstance(e, ExecArgsEvent):
            facts["argv", *e.argv] += 1
        elif isinstance(e, OpenEvent) and e.fd >= 0:
            facts["open", e.path] += 1
        elif isinstance(e, ForkEvent):
            facts["fork",] += 1
        elif isinstance(e, ExitEvent):
            facts["exit", str(e.exit_code)] += 1
    return facts


def test_the_second_start_loads_from_the_cache_and_traces_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIUBAI_BPF_CACHE", str(tmp_path / "cache"))
    (tmp_path / "in.txt").write_text("x\n")

    origin1, code1, lost1, compiled = _trace(tmp_path)
    origin2, code2, lost2, cached = _trace(tmp_path)

    assert (origin1, origin2) == ("compiled", "cache")
    assert code1 == code2 == 3 and lost1 == lost2 == 0
    facts = _what_happened(cached)
    assert facts == _what_happened(compiled)
    assert facts["open", "in.txt"] == 1 and facts["open", "out.txt"] == 1
    assert facts["argv", "ls", "-d", "/"] == 1 and facts["exit", "3"] == 1


def test_a_cached_program_the_kernel_refuses_is_compiled_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("LIUBAI_BPF_CACHE", str(cache))
    (tmp_path / "in.txt").write_text("x\n")
    Tracer().close()
    (path,) = cache.glob("*.json")
    outer = json.loads(path.read_text())
    doc = json.loads(outer["program"])
    for fn in doc["functions"]:  # well-formed, valid to the cache, but no program the verifier accepts
        fn["insns"], fn["relocs"] = "AAAAAAAAAAA=", []
    body = json.dumps(doc, sort_keys=True)
    path.write_text(json.dumps({"sha256": hashlib.sha256(body.encode()).hexdigest(), "program": body}))

    origin, code, lost, events = _trace(tmp_path)

    assert origin == "compiled" and code == 3 and lost == 0
    assert _what_happened(events)["open", "out.txt"] == 1
    assert _trace(tmp_path)[0] == "cache"  # the fresh compile replaced the refused program
