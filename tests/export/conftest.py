"""A real ingested scenario for export tests.

A GitOps repo made with the git CLI, a pipeline run whose processes read, executed and wrote real files
(digests taken with hashlib while "the run" happens), and log lines on the run's trace; all joined into each
store: SQLite and a real Neo4j (tests/stores.py). After the run, one output is changed and one deleted, as
happens in real life.
"""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from liubai.lineage.join import join_records
from liubai.lineage.model import parse_audit_id, run_node_id
from liubai.lineage.records import (
    CommitRecord,
    FileAccessRecord,
    LogRecord,
    ManifestObjectRecord,
    ProcessRecord,
    Record,
    RunRecord,
    iso_utc,
)
from liubai.lineage.store import LineageStore, open_store
from tests._real import missing
from tests.stores import blank_store_url, parametrize_store

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRICKY = 'he said "hi" <b>&amp;</b> -> {x}\n\\ end \u00e9\u4e2d \x07bell'


@dataclass
class Scenario:
    store_url: str
    store: LineageStore
    repo: Path
    work: Path
    commit: str
    audit_id: str
    run_id: str
    host: str
    started_at: str
    ended_at: str
    written: dict[str, str] = field(default_factory=dict)  # path -> sha256 at run time
    read: dict[str, str] = field(default_factory=dict)
    executed: dict[str, str] = field(default_factory=dict)
    changed: str = ""
    deleted: str = ""
    unrecorded: str = ""
    gone_input: str = ""


def _git(repo: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "Ada Auditor",
        "GIT_AUTHOR_EMAIL": "ada@example.org",
        "GIT_COMMITTER_NAME": "Ada Auditor",
        "GIT_COMMITTER_EMAIL": "ada@example.org",
        "HOME": str(repo),
        "PATH": "/usr/bin:/bin",
    }
    return subprocess.run(
        ["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True
    ).stdout


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _commit_record(repo: Path) -> CommitRecord:
    fmt = "%H%x00%P%x00%an%x00%ae%x00%at%x00%cn%x00%ce%x00%ct%x00%s%x00%B"
    parts = _git(repo, "log", "-1", f"--format={fmt}").split("\x00")
    changed = tuple(p for p in _git(repo, "show", "--name-only", "--format=", "HEAD").splitlines() if p)
    return CommitRecord(
        repo=str(repo),
        sha=parts[0],
        parents=tuple(parts[1].split()),
        author_name=parts[2],
        author_email=parts[3],
        authored_at=iso_utc(int(parts[4])),
        committer_name=parts[5],
        committer_email=parts[6],
        committed_at=iso_utc(int(parts[7])),
        subject=parts[8],
        message=parts[9].strip(),
        changed_paths=changed,
        branch="main",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_store(metafunc, "scenario", "module")


@pytest.fixture(scope="module")
def scenario(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    """The scenario, ingested once per test module into each store (see tests/stores.py)."""
    root = tmp_path_factory.mktemp("scenario")
    sc = build_scenario(root, blank_store_url(request, request.param, root, "lineage.db"))
    yield sc
    sc.store.close()


def build_scenario(root: Path, store_url: str) -> Scenario:
    """Make the repo, the run's files and the records under ``root``, and ingest them into ``store_url``."""
    if shutil.which("git") is None:
        missing("git", "the git CLI is not on PATH")
    repo, work = root / "gitops", root / "work"
    repo.mkdir()
    (work / "src").mkdir(parents=True)
    (work / "out").mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("gitops\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "initial")
    first = _commit_record(repo)
    (repo / "deploy.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\n"
    )
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", 'deploy web "v2" <canary> & friends')
    second = _commit_record(repo)
    audit_raw = f"git-sha1:{second.sha}|trace:{TRACE}"
    audit = parse_audit_id(audit_raw)

    host = socket.gethostname()
    t0 = time.time() - 60
    start_ns = time.monotonic_ns() - 60_000_000_000
    run = RunRecord(
        host=host,
        root_pid=4242,
        start_ns=start_ns,
        command=("sh", "build.sh"),
        started_at=iso_utc(t0),
        ended_at=iso_utc(t0 + 5),
        end_ns=start_ns + 5_000_000_000,
        exit_code=0,
        commit=second.sha,
        audit_id=audit_raw,
        trace_id=TRACE,
        repo=str(repo),
        cwd=str(work),
    )
    # the run: its tool and inputs exist, it writes outputs; digests are taken as the tracer would
    tool = work / "build.sh"
    tool.write_text("#!/bin/sh\ncat src/input.txt > out/artifact.bin\n")
    inp = work / "src" / "input.txt"
    inp.write_text("source data\n")
    gone_in = work / "src" / "gone.cfg"
    gone_in.write_text("setting=1\n")
    outs = {
        name: work / "out" / name for name in ("artifact.bin", "report.txt", "scratch.log", "unrecorded.txt")
    }
    for name, p in outs.items():
        p.write_bytes(f"{name} produced by the run\n".encode() * 3)
    sc = Scenario(
        store_url=store_url,
        store=open_store(store_url),
        repo=repo,
        work=work,
        commit=second.sha,
        audit_id=audit.canonical,
        run_id=run_node_id(host, 4242, start_ns),
        host=host,
        started_at=run.started_at,
        ended_at=run.ended_at or "",
    )
    sc.executed[str(tool)] = _sha(tool)
    sc.read[str(inp)] = _sha(inp)
    for name, p in outs.items():
        if name != "unrecorded.txt":
            sc.written[str(p)] = _sha(p)
    sc.unrecorded = str(outs["unrecorded.txt"])
    sc.changed = str(outs["report.txt"])
    sc.deleted = str(outs["scratch.log"])
    sc.gone_input = str(gone_in)

    root_proc = ProcessRecord(
        host=host,
        pid=4242,
        start_ns=start_ns,
        run_pid=4242,
        run_start_ns=start_ns,
        uid=1000,
        comm="sh",
        binary=str(tool),
        binary_sha256=sc.executed[str(tool)],
        argv=("sh", "build.sh"),
        cwd=str(work),
        started_at=run.started_at,
        ended_at=run.ended_at,
        exit_code=0,
    )
    child = ProcessRecord(
        host=host,
        pid=4243,
        start_ns=start_ns + 1000,
        run_pid=4242,
        run_start_ns=start_ns,
        ppid=4242,
        parent_start_ns=start_ns,
        uid=1000,
        parent_uid=1000,
        comm="cat",
        binary="/usr/bin/cat",
        argv=("cat", "src/input.txt"),
        cwd=str(work),
        started_at=iso_utc(t0 + 1),
        ended_at=iso_utc(t0 + 2),
        exit_code=0,
    )
    records: list[Record] = [
        first,
        second,
        ManifestObjectRecord(
            str(repo),
            second.sha,
            "deploy.yaml",
            "apps/v1",
            "Deployment",
            "shop",
            "web",
            audit_ids=(audit_raw,),
        ),
        run,
        root_proc,
        child,
        FileAccessRecord(host, 4242, start_ns, str(tool), "exec"),  # digest on the Process node
        FileAccessRecord(host, 4243, start_ns + 1000, str(inp), "read", count=2, sha256=sc.read[str(inp)]),
        FileAccessRecord(host, 4243, start_ns + 1000, str(gone_in), "read"),
        FileAccessRecord(
            host,
            4243,
            start_ns + 1000,
            sc.unrecorded,
            "write",
            hash_note="the file changed after its writer closed it, before it could be hashed",
            hashed_at=iso_utc(t0 + 2),
        ),
        # the root wrote the artifact first; the child's rewrite, closed later, is what the run left
        FileAccessRecord(
            host,
            4242,
            start_ns,
            str(outs["artifact.bin"]),
            "write",
            flags=577,
            sha256=hashlib.sha256(b"first draft").hexdigest(),
            hashed_at=iso_utc(t0 + 1.5),
        ),
    ]
    records += [
        FileAccessRecord(
            host, 4243, start_ns + 1000, path, "write", flags=577, sha256=digest, hashed_at=iso_utc(t0 + 2)
        )
        for path, digest in sc.written.items()
    ]
    records += [
        LogRecord("app", "l1", iso_utc(t0 + 3), "info", "web", "deploy started", TRACE, audit_raw),
        LogRecord("app", "l2", iso_utc(t0 + 4), "warn", "web", TRICKY, TRACE),
        LogRecord("app", "old", "2020-01-01T00:00:00.000000Z", "info", "web", "an old line", TRACE),
        LogRecord(
            "app",
            "bad",
            iso_utc(t0 + 4),
            "error",
            "web",
            "bad id",
            None,
            "git-sha1:nothex",
            location="app.log:7",
        ),
    ]
    batch = join_records(records)
    assert batch.rejected, "the malformed audit id must be kept as a rejected record"
    sc.store.upsert(batch)
    # after the run: one output edited, one deleted, one input deleted
    Path(sc.changed).write_text("edited after the run\n")
    Path(sc.deleted).unlink()
    gone_in.unlink()
    return sc


@pytest.fixture
def cli() -> CliRunner:
    return CliRunner()


def run_cli(runner: CliRunner, store_url: str, *args: str) -> tuple[int, str, str]:
    """Invoke ``liubai`` in-process; returns (exit code, stdout, stderr)."""
    from liubai.api.cli.main import app

    result = runner.invoke(app, ["--store", store_url, *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr
