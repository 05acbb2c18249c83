"""``liubai trace`` handed to a running ``liubai agent --ebpf``: the node agent's loaded program traces it.

The agent is the real one (its own process, real BPF in node mode), a runc pod container runs beside the
handed-off command, and the run must give the graph a run traced on its own gives, while the pod's
processes stay the pod's. The test knows the run was handed over by the agent's log line
``trace hand-off: served run N (K events)``; with the socket off, or for a command inside a pod's
cgroup (the pod path owns it), ``liubai trace`` traces on its own.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from liubai.ebpf import cgroups
from liubai.lineage.model import RejectedRecord
from liubai.lineage.records import ProcessRecord
from tests.ebpf.conftest import LIUBAI, clean_env, liubai, read_graph
from tests.ebpf.test_handoff import SCRIPT, _facts
from tests.ebpf.test_kernel import assert_replays_to
from tests.node.test_node_agent_e2e import NodeAgent, journal
from tests.polling import wait_for
from tests.runc_pod import PodContainer, cgroups_path, new_container_id, new_pod_uid

pytestmark = pytest.mark.ebpf

DEAD_API = "http://127.0.0.1:9"  # the agent spools; these tests read its journal
SERVED = re.compile(r"trace hand-off: served run (\d+) \((\d+) events\)")


@dataclass
class Hosting:
    agent: NodeAgent
    sock: Path

    def served(self) -> list[tuple[int, int]]:
        return [(int(a), int(b)) for a, b in SERVED.findall(self.agent.log.read_text(errors="replace"))]

    def pod_processes(self, container_id: str) -> list[ProcessRecord]:
        return [
            r
            for r in journal(self.agent.state)
            if isinstance(r, ProcessRecord) and r.container_id == container_id
        ]


@pytest.fixture(scope="module")
def hosting(pod_roots: list[str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosting]:
    base = tmp_path_factory.mktemp("handoff")
    sock = base / "run" / "trace.sock"
    agent = NodeAgent(DEAD_API, base / "state", base / "agent.log", trace_socket=str(sock))
    try:
        wait_for("the agent's hand-off socket", sock.is_socket, timeout=30)
        yield Hosting(agent, sock)
    finally:
        agent.stop()


def test_a_run_handed_to_the_node_agent_is_traced_as_here_and_a_pod_beside_it_stays_the_pods(
    hosting: Hosting, tmp_path: Path
) -> None:
    (tmp_path / "in.txt").write_text("input\n")
    here, there = f"sqlite:///{tmp_path / 'here.db'}", f"sqlite:///{tmp_path / 'there.db'}"
    box = PodContainer(new_pod_uid())
    # busy in its pod until the test says "go": it runs all through the handed-off command
    box.start("i=0; until [ -e /tmp/go ]; do cat /data/config.txt > /tmp/c$i; i=$((i+1)); sleep 0.05; done")
    try:
        init = wait_for("the pod container's first process", box.init_pid, timeout=30)
        wait_for(
            "the pod's cat in the agent's journal",
            lambda: any(
                r.argv == ("cat", "/data/config.txt") for r in hosting.pod_processes(box.container_id)
            ),
        )
        served_before = len(hosting.served())
        handed = liubai(
            ["--store", there, "trace", "--", "sh", "-c", SCRIPT],
            tmp_path,
            clean_env(LIUBAI_AGENT_SOCKET=str(hosting.sock)),
        )
        assert box.proc is not None and box.proc.poll() is None, "the pod ended before the run"
        Path(f"/proc/{init}/root/tmp/go").write_text("go\n")
        code, _, err = box.wait(60)
        assert code == 0, err
        after = hosting.agent.windows()
        wait_for("two more windows in the journal", lambda: hosting.agent.windows() >= after + 2)
    finally:
        box.delete()
    local = liubai(
        ["--store", here, "trace", "--", "sh", "-c", SCRIPT], tmp_path, clean_env(LIUBAI_AGENT_SOCKET="off")
    )

    assert local.returncode == handed.returncode == 3, handed.stderr
    served = hosting.served()
    assert len(served) == served_before + 1 and served[-1][1] > 0, "the node agent did not serve the run"
    g_here, g_there = read_graph(here), read_graph(there)
    (run,) = g_there.of_kind("run").values()
    assert run["exit_code"] == 3 and run["lost_events"] == 0
    assert _facts(g_there) == _facts(g_here)
    run_argvs = {tuple(p["argv"] or ()) for p in g_there.of_kind("proc").values()}
    assert ("cat", "in.txt") in run_argvs
    assert ("cat", "/data/config.txt") not in run_argvs, "a pod's process was taken into the run"
    # the pod path kept the pod's processes, and none of the run's host processes
    pod_procs = hosting.pod_processes(box.container_id)
    assert any(r.argv == ("cat", "/data/config.txt") for r in pod_procs)
    journaled = journal(hosting.agent.state)
    everything = [r for r in journaled if isinstance(r, ProcessRecord)]
    assert all(r.container_id for r in everything), "a host process was recorded as a pod's"
    # the run's events never reached the pod path (there they would be counted as of no container)
    unattributed = [
        r for r in journaled if isinstance(r, RejectedRecord) and "container could not" in r.reason
    ]
    assert not unattributed, unattributed
    assert not run_argvs & {r.argv for r in everything}, (
        "a process of the handed-off run reached the pod path"
    )


def test_a_handed_off_run_gives_the_graph_a_run_traced_here_gives(hosting: Hosting, tmp_path: Path) -> None:
    """Exit code, stderr, processes, files, hashes and the recording's replay, as a local trace gives them."""
    served_before = len(hosting.served())
    (tmp_path / "in.txt").write_text("input\n")
    here, there = f"sqlite:///{tmp_path / 'here.db'}", f"sqlite:///{tmp_path / 'there.db'}"
    rec = tmp_path / "there.jsonl"

    local = liubai(
        ["--store", here, "trace", "--", "sh", "-c", SCRIPT], tmp_path, clean_env(LIUBAI_AGENT_SOCKET="off")
    )
    handed = liubai(
        ["--store", there, "trace", "--record", str(rec), "--", "sh", "-c", SCRIPT],
        tmp_path,
        clean_env(LIUBAI_AGENT_SOCKET=str(hosting.sock)),
    )

    assert local.returncode == handed.returncode == 3, handed.stderr
    assert "missing-tool: not found" in handed.stderr  # the command's stderr passed through
    wait_for("the agent's served line", lambda: len(hosting.served()) > served_before, timeout=30)
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
        hashlib.sha256(b"p").hexdigest(),  # hashed by the agent at the writer's last close
    ) in facts
    assert_replays_to(g_there, rec, tmp_path)


def test_a_command_inside_a_pod_cgroup_is_not_handed_off_the_pod_path_keeps_it(
    hosting: Hosting, pod_roots: list[str], tmp_path: Path
) -> None:
    mount = cgroups.cgroup2_mount()
    assert mount is not None
    pod_uid, cid = new_pod_uid(), new_container_id()
    scope = Path(mount + cgroups_path(pod_uid, cid))
    made = [p for p in (*reversed(scope.parents), scope) if str(p).startswith(mount) and not p.exists()]
    scope.mkdir(parents=True, exist_ok=True)
    db = f"sqlite:///{tmp_path / 'pod.db'}"
    (tmp_path / "in.txt").write_text("input\n")
    served_before = len(hosting.served())
    try:
        # the shell joins the pod's container cgroup, then becomes liubai trace
        enter = f'echo $$ > {scope}/cgroup.procs && exec "$0" "$@"'
        res = liubai(
            ["--store", db, "trace", "--", "cat", "in.txt"],
            tmp_path,
            clean_env(LIUBAI_AGENT_SOCKET=str(hosting.sock)),
        )
        assert res.returncode == 0, res.stderr  # the control: the same command outside the pod
        res = subprocess.run(
            ["sh", "-c", enter, LIUBAI, "--store", db, "trace", "--", "cat", "in.txt"],
            cwd=tmp_path,
            env=clean_env(LIUBAI_AGENT_SOCKET=str(hosting.sock)),
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert res.returncode == 0, res.stderr
        wait_for(
            "the command as the pod's process in the journal",
            lambda: any(r.argv == ("cat", "in.txt") for r in hosting.pod_processes(cid)),
            timeout=30,
        )
    finally:
        for path in reversed(made):
            try:
                os.rmdir(path)
            except OSError:
                pass
    # served only the control: the agent refused the pod's command, which liubai traced itself
    assert len(hosting.served()) == served_before + 1
    runs = read_graph(db).of_kind("run")
    assert len(runs) == 2 and all(r["exit_code"] == 0 for r in runs.values())
    cats = [p for p in read_graph(db).of_kind("proc").values() if tuple(p["argv"] or ()) == ("cat", "in.txt")]
    assert len(cats) == 2


def test_with_the_socket_off_liubai_trace_loads_its_own_tracer(pod_roots: list[str], tmp_path: Path) -> None:
    sock = tmp_path / "run" / "trace.sock"
    agent = NodeAgent(DEAD_API, tmp_path / "state", tmp_path / "agent.log", trace_socket="off")
    try:
        db = f"sqlite:///{tmp_path / 'x.db'}"
        res = liubai(
            ["--store", db, "trace", "--", "sh", "-c", "cat /etc/hostname > /dev/null; exit 5"],
            tmp_path,
            clean_env(LIUBAI_AGENT_SOCKET=str(sock)),
        )
    finally:
        agent.stop()
    log = agent.log.read_text(errors="replace")
    assert "trace hand-off: off" in log and not SERVED.search(log)
    assert not sock.exists()
    assert res.returncode == 5, res.stderr
    argvs = {tuple(p["argv"] or ()) for p in read_graph(db).of_kind("proc").values()}
    assert ("cat", "/etc/hostname") in argvs
