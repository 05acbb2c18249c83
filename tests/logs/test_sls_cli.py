"""``liubai ingest sls`` as a user runs it: a real process, killed with SIGKILL half-way and restarted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from liubai.lineage.store import open_store
from tests.logs.conftest import KEY_ID, KEY_SECRET, LOGSTORE, PROJECT
from tests.logs.dataset import EPOCH, make_dataset, put_into_sls
from tests.logs.lineage_check import assert_exact_lineage, graph_of
from tests.sls_server import SlsServer

CLI = [sys.executable, "-c", "from liubai.api.cli.main import main; main()"]


def _env(secret: str = KEY_SECRET) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALIBABA_CLOUD_")}
    env.update(ALIBABA_CLOUD_ACCESS_KEY_ID=KEY_ID, ALIBABA_CLOUD_ACCESS_KEY_SECRET=secret)
    return env


def _args(server: SlsServer, db: Path, *extra: str) -> list[str]:
    return [
        *CLI, "--store", f"sqlite:///{db}", "ingest", "sls", "--endpoint", server.endpoint,
        "--project", PROJECT, "--logstore", LOGSTORE, *extra,
    ]  # fmt: skip


def test_kill_9_half_way_then_restart_equals_an_uninterrupted_run(commits, sls_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ds = make_dataset(3_000, commits)
    put_into_sls(sls_server, LOGSTORE, ds.lines, group_size=10)  # 300 groups over 2 shards

    whole = tmp_path / "whole.db"
    done = subprocess.run(
        _args(sls_server, whole, "--pull-count", "2"), env=_env(), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert f"consumed {len(ds.lines):,} log records" in done.stdout

    crashed = tmp_path / "crashed.db"
    sls_server.pull_delay = 0.02  # slow enough to be caught mid-run
    pulls_before = sls_server.requests["PullLogs"]
    proc = subprocess.Popen(
        _args(sls_server, crashed, "--pull-count", "2"),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while sls_server.requests["PullLogs"] - pulls_before < 60:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the collector made no progress"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL

    partial = open_store(f"sqlite:///{crashed}")
    try:
        landed = partial.counts()["LogEvent"]
        assert 0 < landed < len(ds.lines), landed
        assert partial.checkpoints(f"sls:{PROJECT}/{LOGSTORE}")
    finally:
        partial.close()

    sls_server.pull_delay = 0.0
    rerun = subprocess.run(
        _args(sls_server, crashed, "--pull-count", "2"),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rerun.returncode == 0, rerun.stderr

    a, b = open_store(f"sqlite:///{whole}"), open_store(f"sqlite:///{crashed}")
    try:
        assert graph_of(b) == graph_of(a)
        assert_exact_lineage(b, ds.lines)
    finally:
        a.close()
        b.close()


def test_wrong_secret_is_one_clear_line_and_never_printed(sls_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    secret = "wrong-secret-9f8e7d"
    run = subprocess.run(
        _args(sls_server, tmp_path / "x.db"), env=_env(secret), capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 1
    assert "SignatureNotMatch" in run.stderr
    assert len([ln for ln in run.stderr.splitlines() if ln.strip()]) == 1, run.stderr
    assert secret not in run.stderr + run.stdout


def test_missing_credentials_are_reported(sls_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALIBABA_CLOUD_")}
    run = subprocess.run(
        _args(sls_server, tmp_path / "x.db"), env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 1
    assert "ALIBABA_CLOUD_ACCESS_KEY_ID" in run.stderr


def test_credentials_file_and_backfill_summary(commits, sls_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ds = make_dataset(300, commits)
    put_into_sls(sls_server, LOGSTORE, ds.lines)
    creds = tmp_path / "sls.yaml"
    creds.write_text(f"access_key_id: {KEY_ID}\naccess_key_secret: {KEY_SECRET}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALIBABA_CLOUD_")}
    base = int(EPOCH.timestamp())
    run = subprocess.run(
        _args(sls_server, tmp_path / "q.db", "--credentials", str(creds), "--query", "service: api",
              "--from", str(base), "--to", str(base + 600)),
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    wanted = [ln for ln in ds.lines if ln.fields["service"] == "api"]
    assert f"backfilled {len(wanted):,} log records" in run.stdout
    bad = sum(1 for ln in wanted if ln.kind in ("bad_audit", "bad_trace"))
    assert f"{bad:,} rejected" in run.stdout
    assert sum(1 for ln in run.stderr.splitlines() if ln.startswith("rejected ")) == min(bad, 20)
    assert KEY_SECRET not in run.stdout + run.stderr


def test_follow_picks_up_new_lines_and_stops_cleanly_on_sigterm(commits, sls_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ds = make_dataset(400, commits)
    put_into_sls(sls_server, LOGSTORE, ds.lines[:200])
    db = tmp_path / "follow.db"
    with _following(sls_server, db) as proc:
        _wait_for_logs(db, 200, proc)
        put_into_sls(sls_server, LOGSTORE, ds.lines[200:])  # written while the collector follows
        _wait_for_logs(db, 400, proc)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "consumed 400 log records" in out
    _assert_exact_lineage(db, ds.lines)


def test_a_killed_reader_process_is_one_clear_line_and_a_rerun_finishes(
    commits, sls_server, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """The reader runs in a child process (out of memory, killed by an operator): the command ends with one
    line saying so, what was stored stays, and the next run resumes from the checkpoints."""
    ds = make_dataset(400, commits)
    put_into_sls(sls_server, LOGSTORE, ds.lines[:200])
    db = tmp_path / "reader-killed.db"
    with _following(sls_server, db) as proc:
        _wait_for_logs(db, 200, proc)
        os.kill(_reader_of(proc.pid), signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, err
    assert "the reader process ended without finishing (killed by SIGKILL)" in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if "reader process" in line]) == 1
    put_into_sls(sls_server, LOGSTORE, ds.lines[200:])
    rerun = subprocess.run(_args(sls_server, db), env=_env(), capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert "consumed 200 log records" in rerun.stdout  # from the checkpoints: nothing read twice
    _assert_exact_lineage(db, ds.lines)


def test_a_protobuf_runtime_that_refuses_text_not_utf8_gives_the_same_graph(
    commits, sls_server, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """upb hands over text that is not UTF-8 as bytes; protobuf's pure-Python runtime refuses the pull, and
    the SDK parses it again as raw bytes. Either way the same lines land, with such bytes as ``\\xNN``."""
    ds = make_dataset(400, commits)
    put_into_sls(sls_server, LOGSTORE, ds.lines, group_size=20)
    for shard in sls_server.shard_ids(LOGSTORE, writable=True):
        sls_server.put_logs(
            LOGSTORE,
            shard,
            [{"message": b"disk \xff full", "level": "ERROR"}],
            log_time=int(EPOCH.timestamp()),
        )
    graphs = []
    for runtime in ("upb", "python"):
        db = tmp_path / f"{runtime}.db"
        env = {**_env(), "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": runtime}
        run = subprocess.run(
            _args(sls_server, db, "--pull-count", "100"), env=env, capture_output=True, text=True, timeout=120
        )
        assert run.returncode == 0, run.stderr
        store = open_store(f"sqlite:///{db}")
        try:
            graphs.append(graph_of(store))
        finally:
            store.close()
    assert graphs[0] == graphs[1]
    assert sum('"message": "disk \\\\xff full"' in node[2] for node in graphs[1][0]) == 2


def test_on_one_cpu_the_reader_stays_in_process(commits, sls_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Pinned to one CPU (``taskset``, a container's cpuset) a reader process would only add pickling."""
    ds = make_dataset(200, commits)
    put_into_sls(sls_server, LOGSTORE, ds.lines)
    db = tmp_path / "one-cpu.db"
    with _following(sls_server, db, pinned={min(os.sched_getaffinity(0))}) as proc:
        _wait_for_logs(db, len(ds.lines), proc)
        assert _children(proc.pid) == [], "a reader process was started on one CPU"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    _assert_exact_lineage(db, ds.lines)


@contextmanager
def _following(
    server: SlsServer, db: Path, pinned: set[int] | None = None
) -> Iterator[subprocess.Popen[str]]:
    """``liubai ingest sls --follow`` into ``db`` (``pinned``: on these CPUs only, as ``taskset`` pins),
    killed on the way out if the test left it running."""
    proc = subprocess.Popen(
        _args(server, db, "--follow", "--poll-interval", "0.05"),
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=None if pinned is None else lambda: os.sched_setaffinity(0, pinned),
    )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _assert_exact_lineage(db: Path, lines: list[Any]) -> None:
    store = open_store(f"sqlite:///{db}")
    try:
        assert_exact_lineage(store, lines)
    finally:
        store.close()


def _reader_of(pid: int) -> int:
    """The spawned reader process among ``pid``'s children."""
    readers = _children(pid)
    assert len(readers) == 1, f"expected one reader process, found {readers}"
    return readers[0]


def _children(pid: int) -> list[int]:
    """The spawned (multiprocessing) children of ``pid``."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


def _wait_for_logs(db: Path, count: int, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, "the follower exited early"
        if db.exists():
            store = open_store(f"sqlite:///{db}")
            try:
                if store.counts()["LogEvent"] >= count:
                    return
            finally:
                store.close()
        assert time.monotonic() < deadline, f"fewer than {count} lines landed"
        time.sleep(0.1)


def test_help_of_both_commands_renders_with_an_example() -> None:
    for command in ("sls", "logs"):
        run = subprocess.run(
            [*CLI, "ingest", command, "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "COLUMNS": "200"},
        )
        assert run.returncode == 0, run.stderr
        assert f"Example: liubai ingest {command} " in run.stdout


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (("--endpoint", "http://user:pw-5e1a@127.0.0.1:1"), "bad SLS endpoint 'http://user:***@127.0.0.1:1'"),
        (
            ("--endpoint", "http://user:pw-5e1a/x@127.0.0.1:1"),
            "bad SLS endpoint 'http://user:***@127.0.0.1:1'",
        ),
        (("--endpoint", "127.0.0.1:abc"), "bad SLS endpoint '127.0.0.1:abc'"),
        (("--endpoint", "http://[::1"), "bad SLS endpoint 'http://[::1'"),
        (("--from", "²"), "--from: not a time: '²'"),
        (("--credentials", "<not-utf8>"), "not UTF-8 text"),
        (("--credentials", "<newline-key>"), "access_key_id contains a line break"),
    ],
)
def test_bad_settings_are_one_line_naming_them_without_secrets(sls_server, tmp_path, extra, says) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "bad.yaml").write_bytes(b"\xff\xfe\x00")
    (tmp_path / "nl.yaml").write_text('access_key_id: "id-\\n-9c2d"\naccess_key_secret: s\n')
    extra = tuple(
        {"<not-utf8>": str(tmp_path / "bad.yaml"), "<newline-key>": str(tmp_path / "nl.yaml")}.get(a, a)
        for a in extra
    )
    args = _args(sls_server, tmp_path / "x.db", "--retry-deadline", "0", "--timeout", "1", *extra)
    if "--endpoint" in extra:  # the later --endpoint wins
        args = [a for i, a in enumerate(args) if not (a == "--endpoint" and i < args.index("--project"))]
        args.remove(sls_server.endpoint)
    run = subprocess.run(args, env=_env(), capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and says in lines[0], run.stderr
    assert "pw-5e1a" not in run.stderr and "9c2d" not in run.stderr and KEY_SECRET not in run.stderr
