"""``liubai trace`` front-end rules that need no kernel: refusing to run untraced, commit/audit precedence."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from liubai.api.cli.trace import CANNOT_TRACE_EXIT, resolve_context
from liubai.lineage.store import open_store
from tests.ebpf.conftest import LIUBAI, clean_env, liubai, read_graph
from tests.ebpf.recordings import PROCESS, RUN_HEADER
from tests.gitrepo import GitRepoBuilder

NOBODY = 65534


def test_without_root_trace_refuses_and_never_runs_the_command(tmp_path: Path) -> None:
    tmp_path.chmod(0o777)
    marker = tmp_path / "ran-untraced"
    cmd = [LIUBAI, "--store", f"sqlite:///{tmp_path / 'x.db'}", "trace", "--", "touch", str(marker)]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root and setpriv (util-linux) is missing to drop privileges")
        cmd = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *cmd]
    res = subprocess.run(
        cmd, cwd=tmp_path, env=clean_env(HOME=str(tmp_path)), capture_output=True, text=True, timeout=60
    )
    assert res.returncode == CANNOT_TRACE_EXIT
    assert "not running as root" in res.stderr and "the command was NOT run" in res.stderr
    assert not marker.exists()


def test_trace_without_a_command_is_a_usage_error(tmp_path: Path) -> None:
    res = subprocess.run(
        [LIUBAI, "trace"], cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 2 and "give a command after '--'" in res.stderr


def test_help_shows_an_example() -> None:
    for args in (["trace", "--help"], ["ingest", "events", "--help"]):
        res = subprocess.run([LIUBAI, *args], env=clean_env(), capture_output=True, text=True, timeout=60)
        assert res.returncode == 0 and "Example: " in res.stdout


def test_commit_precedence_flag_then_ci_variables_then_git_head(tmp_path: Path) -> None:
    repo = GitRepoBuilder(tmp_path / "r")
    repo.write("f", "1")
    head = repo.commit("one")
    cwd = str(repo.path)
    flag, ci, gh = "1" * 40, "2" * 40, "3" * 64
    assert resolve_context(flag.upper(), None, {"CI_COMMIT_SHA": ci}, cwd).commit == flag
    assert resolve_context(None, None, {"CI_COMMIT_SHA": ci, "GITHUB_SHA": gh}, cwd).commit == ci
    assert resolve_context(None, None, {"GITHUB_SHA": gh}, cwd).commit_source == "GITHUB_SHA"
    from_git = resolve_context(None, None, {}, cwd)
    assert (from_git.commit, from_git.commit_source, from_git.repo) == (
        head,
        "git rev-parse HEAD",
        str(repo.path),
    )
    outside = tmp_path / "plain"
    outside.mkdir()
    assert resolve_context(None, None, {}, str(outside)).commit is None


def test_audit_id_precedence_and_traceparent() -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    aid = f"git-sha256:{'a' * 64}|trace:{trace}"
    env = {"X_GITOPS_AUDIT_ID": f"git-sha256:{'b' * 64}", "TRACEPARENT": f"00-{'c' * 32}-00f067aa0ba902b7-01"}
    rc = resolve_context("a" * 64, aid, env, "/")
    assert (rc.audit_id, rc.trace_id) == (aid, trace)
    assert resolve_context(None, None, env, "/").audit_id == env["X_GITOPS_AUDIT_ID"]
    only_tp = resolve_context(None, None, {"TRACEPARENT": env["TRACEPARENT"]}, "/")
    assert (only_tp.audit_id, only_tp.trace_id) == (None, "c" * 32)
    bad = resolve_context(None, "not|an|audit id", {}, "/")
    assert (
        bad.audit_id == "not|an|audit id" and bad.trace_id is None
    )  # kept: the join rejects it with a reason


def test_ingest_events_reports_a_file_that_is_not_a_recording(tmp_path: Path) -> None:
    bogus = tmp_path / "x.jsonl"
    bogus.write_text('{"type": "open"}\n')
    res = subprocess.run(
        [LIUBAI, "--store", f"sqlite:///{tmp_path / 'db.db'}", "ingest", "events", str(bogus)],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 1 and "not a liubai recording" in res.stderr


def _ingest_events(tmp_path: Path, recording: Path) -> subprocess.CompletedProcess[str]:
    return liubai(
        ["--store", f"sqlite:///{tmp_path / 'db.db'}", "ingest", "events", str(recording)],
        tmp_path,
        timeout=60,
    )


def test_ingest_events_warns_of_a_cut_recording_with_its_name_escaped(tmp_path: Path) -> None:
    """A recording without its ``end`` line still lands, with a warning that shows the file name as typed
    text: an escape sequence in it must not reach the terminal."""
    rec = tmp_path / "run\x1b[2J.jsonl"
    rec.write_text(json.dumps(RUN_HEADER) + "\n")
    res = _ingest_events(tmp_path, rec)
    assert res.returncode == 0, res.stderr
    assert "\x1b" not in res.stderr
    assert f"warning: {tmp_path}/run\\x1b[2J.jsonl has no 'end' line" in res.stderr.replace("\n", "")


@pytest.mark.parametrize("field, value", [("root_pid", "x"), ("boot_offset_ns", 10**30), ("commit", 5)])
def test_ingest_events_refuses_a_bad_header_in_one_line_naming_it(
    tmp_path: Path, field: str, value: object
) -> None:
    rec = tmp_path / "run.jsonl"
    rec.write_text(json.dumps({**RUN_HEADER, field: value}) + "\n")
    res = _ingest_events(tmp_path, rec)
    assert res.returncode == 1
    (line,) = res.stderr.strip().splitlines()
    assert f"{rec}:1: bad run header: {field} must" in line


def test_ingest_events_lands_bytes_that_are_not_utf8_as_escapes(tmp_path: Path) -> None:
    """A path and argv with raw bytes 0xff 0xfe, a host with 0xff: all stored as \\xNN text, and a line
    of the wrong type next to them is rejected without losing the run."""
    lines = [
        json.dumps({**RUN_HEADER, "host": "h@"}),
        json.dumps(
            {**PROCESS, "type": "exec_args", "ts": 1_005, "filename": "/bin/cat", "argv": ["cat", "in@@"]}
        ),
        json.dumps({**PROCESS, "type": "exec", "ts": 1_006, "filename": "/bin/cat", "comm": "cat"}),
        json.dumps({**PROCESS, "type": "open", "ts": 1_007, "path": "/w/in@@", "fd": 3, "flags": 0}),
        json.dumps({**PROCESS, "type": "fork", "ts": 1_008, "child": "z", "child_start_ns": None}),
        json.dumps({"type": "end", "end_ns": 1_090, "exit_code": 0, "lost_events": 0}),
    ]
    rec = tmp_path / "run.jsonl"
    raw = "\n".join(lines).encode() + b"\n"
    rec.write_bytes(raw.replace(b"@@", b"\xff\xfe").replace(b"@", b"\xff"))
    res = _ingest_events(tmp_path, rec)
    assert res.returncode == 0, res.stderr
    assert f"rejected {rec}:5: unusable event line: bad fork event: child must" in res.stderr
    g = read_graph(f"sqlite:///{tmp_path / 'db.db'}")
    host = "h\\xff"
    assert set(g.of_kind("run")) == {f"run:{host}:100:1000"}
    assert g.nodes[f"proc:{host}:100:1000"]["argv"] == ["cat", "in\\xff\\xfe"]
    assert g.nodes[f"file:{host}:/w/in\\xff\\xfe"]["path"] == "/w/in\\xff\\xfe"
    assert g.out(f"proc:{host}:100:1000", "READ") == [
        (f"file:{host}:/w/in\\xff\\xfe", {"count": 1, "flags": 0})
    ]
    assert [d for d, _ in g.out(f"proc:{host}:100:1000", "EXECUTED")] == [f"file:{host}:/bin/cat"]
    store = open_store(f"sqlite:///{tmp_path / 'db.db'}")
    try:
        assert store.counts()["rejected"] == 1
    finally:
        store.close()
