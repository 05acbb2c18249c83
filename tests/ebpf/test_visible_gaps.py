"""What a real trace could not get whole reaches the store and the user marked so: an argv cut by the
kernel copy's limits (and gone from /proc before it could be read back), and a run cut by ``--linger``
while a daemon of it still ran."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from liubai.api.app import create_app
from liubai.ebpf.program import ProgramOptions
from liubai.lineage.store import open_store
from tests.ebpf.conftest import LIUBAI, clean_env, liubai, read_graph

pytestmark = [pytest.mark.ebpf, pytest.mark.usefixtures("kernel")]

MAX_ARGS = ProgramOptions().max_args
ARG_LEN = ProgramOptions().arg_len
PROCESS = """query($id: ID!) { node(id: $id) { ... on Process { argv argvStatus execs } } }"""
RUN = """query($id: ID!) { node(id: $id) { ... on PipelineRun { partialArgv stillRunning cutAt } } }"""


def _graphql(db: str, query: str, node_id: str) -> dict[str, object]:
    store = open_store(db)
    try:
        with TestClient(create_app(store=store)) as client:
            body = client.post("/graphql", json={"query": query, "variables": {"id": node_id}}).json()
    finally:
        store.close()
    assert not body.get("errors"), body
    node: dict[str, object] = body["data"]["node"]
    return node


def test_a_truncated_argv_reaches_the_store_the_cli_and_graphql(tmp_path: Path) -> None:
    """``true`` with more arguments than the kernel copy holds, and ``true`` with one argument longer than
    its slot, both gone before /proc could fill them in: stored as the partial argv with "truncated".

    The reader is held back on purpose, as a loaded tracer is: it first hashes a fresh 256 MiB image
    (a padded copy of ``true``), and the two short-lived processes end meanwhile."""
    work = tmp_path.resolve()
    many = [str(i) for i in range(1, MAX_ARGS + 45)]
    long_arg = "x" * (ARG_LEN + 904)
    script = (
        "cp /usr/bin/true big && truncate -s 256M big && sleep 0.1 && ./big && "
        f"/usr/bin/true {' '.join(many)} && /usr/bin/true {long_arg} tail"
    )
    db = f"sqlite:///{work / 'argv.db'}"
    res = liubai(["--store", db, "trace", "--", "/bin/sh", "-c", script], cwd=work)
    assert res.returncode == 0, res.stderr

    g = read_graph(db)
    ((run_id, run),) = g.of_kind("run").items()
    trues = {
        i: p for i, p in g.of_kind("proc").items() if p["binary"] == "/usr/bin/true" and len(p["execs"]) == 1
    }
    by_first = {p["argv"][1][:1]: (i, p) for i, p in trues.items()}
    assert set(by_first) == {"1", "x"}, [p["argv"][:3] for p in trues.values()]
    counted_id, counted = by_first["1"]
    # the kernel's copy of the first MAX_ARGS arguments, marked; never presented as whole
    assert counted["argv_status"] == "truncated" and counted["execs"][0]["argv_status"] == "truncated"
    assert counted["argv"] == ["/usr/bin/true", *many][:MAX_ARGS]
    _, cut = by_first["x"]
    assert cut["argv_status"] == "truncated" and cut["argv"][1] != long_arg
    assert run["partial_argv"] == 2

    assert "2 execs with partial argv" in res.stderr  # the trace's own summary
    shown = subprocess.run(
        [LIUBAI, "--store", db, "show", counted_id, "--json"],
        cwd=work,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    props = json.loads(shown.stdout)["properties"]
    assert props["argv_status"] == "truncated" and props["execs"][0]["argv_status"] == "truncated"

    node = _graphql(db, PROCESS, counted_id)
    assert node["argvStatus"] == "truncated" and node["argv"] == counted["argv"]
    assert node["execs"][0]["argv_status"] == "truncated"  # type: ignore[index]
    assert _graphql(db, RUN, run_id)["partialArgv"] == 2


def test_a_daemon_outliving_the_linger_cuts_the_run_and_says_when(tmp_path: Path) -> None:
    """The root exits at once; its daemon writes a file 4 s later, past a 1 s linger: the run says how
    many processes still ran and when tracing stopped, the CLI warns, and the late write is absent."""
    work = tmp_path.resolve()
    db = f"sqlite:///{work / 'cut.db'}"
    script = "(sleep 4; echo late > late.txt) & exit 0"
    res = liubai(["--store", db, "trace", "--linger", "1", "--", "/bin/sh", "-c", script], cwd=work)
    assert res.returncode == 0, res.stderr

    g = read_graph(db)
    ((run_id, run),) = g.of_kind("run").items()
    procs = g.of_kind("proc")
    root = next(p for p in procs.values() if p["argv"] == ["/bin/sh", "-c", script])
    running = [p for p in procs.values() if p.get("ended_at") is None]
    assert run["still_running"] == len(running) >= 1, running  # the subshell (and its sleep, if forked)
    assert run["cut_at"] is not None and run["cut_at"] == run["ended_at"]
    assert root["ended_at"] is not None and run["cut_at"] > root["ended_at"]
    assert (
        f"liubai: warning: {run['still_running']} processes of the run were still running when tracing "
        "stopped (--linger 1s)"
    ) in res.stderr
    assert not any(d.endswith("/late.txt") for _, _, d, _ in g.edges)
    node = _graphql(db, RUN, run_id)
    assert (node["stillRunning"], node["cutAt"]) == (run["still_running"], run["cut_at"])
