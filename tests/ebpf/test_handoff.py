"""``liubai trace`` handing its command to a running agent: the same graph as tracing on its own.

The agent here is ``python -m liubai.collector.handoff_server`` (a real tracer, loaded once, serving the
socket), the host the node agent will be for it.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ebpf.conftest import Graph, clean_env, liubai, read_graph
from tests.ebpf.test_kernel import assert_replays_to

pytestmark = [pytest.mark.ebpf, pytest.mark.usefixtures("kernel")]

SCRIPT = (
    'cat in.txt > out.txt\n/usr/bin/python3 -c \'open("py.txt", "w").write("p")\'\n./missing-tool\nexit 3\n'
)


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    sock = tmp_path / "run" / "trace.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "liubai.collector.handoff_server", "--socket", str(sock)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("ready"), "the agent did not start"
        yield sock, proc
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def _facts(g: Graph) -> set[tuple[object, ...]]:
    """The run's processes and files, without pids or times: what must not depend on who traced."""
    facts: set[tuple[object, ...]] = set()
    procs = g.of_kind("proc")
    argv = {i: tuple(p["argv"] or ()) for i, p in procs.items()}
    for i, p in procs.items():
        facts.add(("proc", argv[i], p["binary"], p["exit_code"], p["exec_failed"], p["uid"]))
        facts.update(("child_of", argv[i], argv[d]) for d, _ in g.out(i, "CHILD_OF"))
        for kind in ("READ", "WROTE", "EXECUTED"):
            for d, props in g.out(i, kind):
                path = d.split(":", 2)[2]
                if not path.startswith(("/usr/lib", "/lib", "/etc/ld.so")):  # the loader's own reads vary
                    facts.add((kind, argv[i], path, props.get("sha256")))
    return facts


def test_a_handed_off_run_gives_the_graph_a_run_traced_here_gives(
    agent: tuple[Path, subprocess.Popen[str]], tmp_path: Path
) -> None:
    sock, proc = agent
    (tmp_path / "in.txt").write_text("input\n")
    here, there = f"sqlite:///{tmp_path / 'here.db'}", f"sqlite:///{tmp_path / 'there.db'}"
    rec = tmp_path / "there.jsonl"

    local = liubai(
        ["--store", here, "trace", "--", "sh", "-c", SCRIPT], tmp_path, clean_env(LIUBAI_AGENT_SOCKET="off")
    )
    handed = liubai(
        ["--store", there, "trace", "--record", str(rec), "--", "sh", "-c", SCRIPT],
        tmp_path,
        clean_env(LIUBAI_AGENT_SOCKET=str(sock)),
    )

    assert local.returncode == handed.returncode == 3, handed.stderr
    assert "missing-tool: not found" in handed.stderr  # the command's stderr passed through
    assert proc.stdout is not None and proc.stdout.readline().startswith("served run 1:")
    g_here, g_there = read_graph(here), read_graph(there)
    (run,) = g_there.of_kind("run").values()
    assert run["exit_code"] == 3 and run["lost_events"] == 0 and run["cwd"] == str(tmp_path)
    facts = _facts(g_there)
    assert facts == _facts(g_here)
    cat = ("cat", "in.txt")
    assert ("READ", cat, str(tmp_path / "in.txt"), None) in facts
    sha = hashlib.sha256(Path("/usr/bin/cat").read_bytes()).hexdigest()
    assert ("EXECUTED", cat, "/usr/bin/cat", sha) in facts
    assert (
        "WROTE",
        ("/usr/bin/python3", "-c", 'open("py.txt", "w").write("p")'),
        str(tmp_path / "py.txt"),
        None,
    ) in facts
    assert_replays_to(g_there, rec, tmp_path)


def test_without_an_agent_liubai_traces_the_command_itself(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'x.db'}"
    res = liubai(
        ["--store", db, "trace", "--", "sh", "-c", "exit 5"],
        tmp_path,
        clean_env(LIUBAI_AGENT_SOCKET=str(tmp_path / "no-agent.sock")),
    )
    assert res.returncode == 5, res.stderr
    assert len(read_graph(db).of_kind("proc")) == 1
