"""Real BPF on the running kernel: the process tree, files and exit codes of traced commands."""

from __future__ import annotations

import hashlib
import os
import select
import subprocess
from pathlib import Path

import pytest

from tests.ebpf.conftest import LIUBAI, Graph, clean_env, liubai, read_graph
from tests.gitrepo import GitRepoBuilder

pytestmark = [pytest.mark.ebpf, pytest.mark.usefixtures("kernel")]

PY = "/usr/bin/python3"
THREADED = (
    "import threading\n"
    "t = threading.Thread(target=lambda: open('from_thread.txt', 'w').write('t'))\n"
    "t.start(); t.join()\n"
    "open('py.txt', 'w').write('p')\n"
    "raise SystemExit(5)\n"
)


def test_traced_script_gives_exact_tree_files_hashes_and_exit_codes(tmp_path: Path) -> None:
    repo = GitRepoBuilder(tmp_path / "repo")
    repo.write("a", "input\n")
    sha = repo.commit("add input")
    work = repo.path.resolve()
    (work / "threaded.py").write_text(THREADED)
    script = f"cat a > b\n{PY} threaded.py\n./missing-tool\nexit 3\n"
    db = f"sqlite:///{tmp_path / 'live.db'}"
    rec = tmp_path / "run.jsonl"

    res = liubai(["--store", db, "trace", "--record", str(rec), "--", "sh", "-c", script], cwd=work)

    assert res.returncode == 3, res.stderr  # CMD's exit code is liubai's
    assert "missing-tool: not found" in res.stderr  # the command's stderr passed through
    assert (work / "b").read_text() == "input\n"
    g = read_graph(db)
    runs = g.of_kind("run")
    assert len(runs) == 1
    run_id, run = next(iter(runs.items()))
    assert run["exit_code"] == 3 and run["lost_events"] == 0 and run["cwd"] == str(work)
    assert g.into(run_id, "TRIGGERED") == [f"commit:{sha}"]
    procs = {d: g.nodes[d] for d, _ in g.out(run_id, "RAN")}
    assert set(procs) == set(g.of_kind("proc")), "only the traced tree reaches the graph"
    root_id = next(i for i, p in procs.items() if p["argv"] == ["sh", "-c", script])
    children = {i: p for i, p in procs.items() if i != root_id}
    # exact tree: three children of the shell (the thread is not a process), none deeper
    assert len(children) == 3
    assert all(g.out(i, "CHILD_OF") == [(root_id, {})] for i in children)
    assert g.out(root_id, "CHILD_OF") == []
    by_argv = {tuple(p["argv"]): i for i, p in children.items()}
    cat, py, missing_tool = by_argv[("cat", "a")], by_argv[(PY, "threaded.py")], by_argv[("./missing-tool",)]

    def files(pid: str, kind: str) -> dict[str, dict[str, object]]:
        return {d.split(":", 2)[2]: p for d, p in g.out(pid, kind)}

    assert str(work / "a") in files(cat, "READ")
    # dash opens a redirection in the shell before forking, bash in the child: one of them WROTE b
    writers = [i for i in (root_id, cat) if str(work / "b") in files(i, "WROTE")]
    assert len(writers) == 1
    executed = files(cat, "EXECUTED")
    assert list(executed) == ["/usr/bin/cat"]
    assert executed["/usr/bin/cat"]["sha256"] == hashlib.sha256(Path("/usr/bin/cat").read_bytes()).hexdigest()
    assert procs[cat]["exit_code"] == 0 and procs[cat]["binary"] == "/usr/bin/cat"
    assert {str(work / "py.txt"), str(work / "from_thread.txt")} <= set(files(py, "WROTE"))
    assert str(work / "threaded.py") in files(py, "READ")
    assert procs[py]["exit_code"] == 5
    assert procs[missing_tool]["exec_failed"] is True and procs[missing_tool]["exit_code"] == 127
    assert files(missing_tool, "EXECUTED") == {}
    assert procs[root_id]["exit_code"] == 3 and procs[root_id]["binary"] == "/usr/bin/sh"
    assert all(p["uid"] == os.geteuid() and p["privilege_change"] is False for p in procs.values())

    # the recorded run replays, without BPF, into the very same graph
    assert_replays_to(g, rec, tmp_path)


def assert_replays_to(g: Graph, rec: Path, tmp_path: Path) -> None:
    """The recorded run replays, without BPF, into the very same graph as the live trace."""
    db2 = f"sqlite:///{tmp_path / 'replay.db'}"
    res2 = liubai(["--store", db2, "ingest", "events", str(rec)], cwd=tmp_path)
    assert res2.returncode == 0, res2.stderr
    g2 = read_graph(db2)
    assert g2.nodes == g.nodes
    assert sorted(map(repr, g2.edges)) == sorted(map(repr, g.edges))


def test_signal_exit_privilege_change_and_commit_from_ci_variable(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'sig.db'}"
    ci_sha = "c0ffee" + "0" * 34
    drop = "setpriv --reuid=65534 --regid=65534 --clear-groups /usr/bin/cat /etc/hostname"
    # SIGPIPE is back to its default in CMD (Python ignores it): `yes` dies of it once head is done
    pipe = 'yes | head -n 1 >/dev/null; echo "${PIPESTATUS:-}" >/dev/null'
    res = liubai(
        ["--store", db, "trace", "--", "sh", "-c", f"{drop} >/dev/null; {pipe}; kill -TERM $$"],
        cwd=tmp_path,
        env=clean_env(CI_COMMIT_SHA=ci_sha),
    )
    assert res.returncode == 128 + 15, res.stderr
    g = read_graph(db)
    ((run_id, run),) = g.of_kind("run").items()
    assert run["exit_code"] == -15
    assert g.into(run_id, "TRIGGERED") == [f"commit:{ci_sha}"]
    procs = {d: g.nodes[d] for d, _ in g.out(run_id, "RAN")}
    (dropped,) = [p for p in procs.values() if p["argv"] == ["/usr/bin/cat", "/etc/hostname"]]
    assert dropped["uid"] == 65534 and dropped["privilege_change"] is True
    assert [p["privilege_change"] for p in procs.values()].count(True) == 1
    (yes,) = [p for p in procs.values() if p["argv"] == ["yes"]]
    assert yes["exit_code"] == -13  # killed by SIGPIPE, as outside liubai


def test_attach_to_running_tree_with_pid(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("x")
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    target = subprocess.Popen(
        ["sh", "-c", "read go < gate; cat a > c; exit 7"], cwd=tmp_path, env=clean_env()
    )
    db = f"sqlite:///{tmp_path / 'attach.db'}"
    tracer = subprocess.Popen(
        [LIUBAI, "--store", db, "trace", "--pid", str(target.pid)],
        cwd=tmp_path,
        env=clean_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert tracer.stderr is not None
        ready, _, _ = select.select([tracer.stderr], [], [], 60)
        assert ready, "liubai trace --pid did not report attaching within 60 s"
        line = tracer.stderr.readline()
        assert "attached to pid" in line, line
        with open(gate, "w") as fh:
            fh.write("go\n")
        assert target.wait(timeout=30) == 7
        assert tracer.wait(timeout=60) == 0, tracer.stderr.read()
    finally:
        for p in (target, tracer):
            if p.poll() is None:
                p.kill()
                p.wait()
    g = read_graph(db)
    ((run_id, run),) = g.of_kind("run").items()
    assert run["exit_code"] == 7
    procs = {d: g.nodes[d] for d, _ in g.out(run_id, "RAN")}
    cats = [i for i, p in procs.items() if p["argv"] == ["cat", "a"]]
    assert len(cats) == 1
    assert (f"file:{g.nodes[cats[0]]['host']}:{tmp_path / 'a'}", {"count": 1, "flags": 0}) in g.out(
        cats[0], "READ"
    )
    assert g.out(cats[0], "CHILD_OF")[0][0] == f"proc:{run['host']}:{target.pid}:{run['start_ns']}"


def test_names_that_are_not_utf8_are_traced_and_stored_as_escapes(tmp_path: Path) -> None:
    work = tmp_path / os.fsdecode(b"w\xff")
    work.mkdir()
    (work / os.fsdecode(b"in\xff")).write_text("x")
    tool = work / os.fsdecode(
        b"cat\xfd"
    )  # run by a relative name, and gone from /proc before its exec is read
    tool.write_bytes(Path("/usr/bin/cat").read_bytes())
    tool.chmod(0o755)
    (work / "cat\\xfd").write_bytes(b"a decoy named as the tool is shown")
    db = f"sqlite:///{tmp_path / 'live.db'}"
    rec = tmp_path / "run.jsonl"
    script = "\"./$(printf 'cat\\375')\" \"$(printf 'in\\377')\" > \"$(printf 'out\\376')\""

    res = liubai(
        ["--store", db, "trace", "--record", str(rec), "--commit", "ab" * 20, "--", "sh", "-c", script],
        cwd=work,
    )

    assert res.returncode == 0, res.stderr
    assert (work / os.fsdecode(b"out\xfe")).read_text() == "x"
    g = read_graph(db)
    ((run_id, run),) = g.of_kind("run").items()
    shown = f"{tmp_path}/w\\xff"
    assert run["cwd"] == shown
    procs = {d: g.nodes[d] for d, _ in g.out(run_id, "RAN")}
    (cat,) = [i for i, p in procs.items() if p["argv"] == ["./cat\\xfd", "in\\xff"]]
    assert procs[cat]["cwd"] == shown
    host = run["host"]
    assert f"file:{host}:{shown}/in\\xff" in [d for d, _ in g.out(cat, "READ")]
    # hashed by the bytes the kernel ran, in the cwd the fork carried, not by the shown name (the decoy's)
    assert g.out(cat, "EXECUTED") == [
        (
            f"file:{host}:{shown}/cat\\xfd",
            {"count": 1, "sha256": hashlib.sha256(tool.read_bytes()).hexdigest()},
        )
    ]
    writers = [i for i in procs if f"file:{host}:{shown}/out\\xfe" in [d for d, _ in g.out(i, "WROTE")]]
    assert len(writers) == 1

    assert_replays_to(g, rec, tmp_path)
