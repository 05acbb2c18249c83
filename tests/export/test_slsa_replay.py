"""Provenance of a replayed recording: the digests the tracer took at run time travel in the recording, so
the statement vouches for what the run wrote even where its files are not (another host, deleted)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from liubai.collector.recording import replay_recording
from tests.ebpf.recordings import PROCESS, RUN_HEADER
from tests.export.conftest import run_cli
from tests.export.test_slsa_outside import assert_outside_verifier_accepts

FIRST, SECOND, OTHER = (hashlib.sha256(t).hexdigest() for t in (b"draft", b"final", b"other"))
CHILD = {**PROCESS, "pid": 101, "tid": 101, "start_ns": 3_000}
CHANGED = "the file changed after its writer closed it, before it could be hashed"
GONE = "the file was gone before it could be hashed"


def _open(proc: dict[str, Any], ts: int, path: str, fd: int) -> dict[str, Any]:
    return {"type": "open", **proc, "ts": ts, "path": path, "fd": fd, "dfd": -100, "flags": 577}


def _digest(
    proc: dict[str, Any], ts: int, path: str, opened_ts: int, sha: str | None, note: str | None = None
) -> dict[str, Any]:
    return {
        "type": "digest",
        **proc,
        "ts": ts,
        "path": path,
        "opener_pid": proc["pid"],
        "opener_start_ns": proc["start_ns"],
        "opened_ts": opened_ts,
        "sha256": sha,
        "hash_note": note,
    }


def _close(proc: dict[str, Any], ts: int, fd: int) -> dict[str, Any]:
    return {"type": "fd", **proc, "ts": ts, "op": 1, "fd": fd}


RECORDING = [
    {**RUN_HEADER, "commit": "0123456789abcdef0123456789abcdef01234567", "repo_url": "https://git.example/r"},
    _open(PROCESS, 2_000, "/out/a.bin", 3),
    _close(PROCESS, 2_100, 3),
    _digest(PROCESS, 2_100, "/out/a.bin", 2_000, FIRST),
    {"type": "fork", **PROCESS, "ts": 2_900, "child": 101, "child_start_ns": 3_000, "clone_flags": 17},
    _open(CHILD, 3_100, "/out/a.bin", 3),  # the child rewrites it: its close is the last one
    {"type": "exit", **CHILD, "ts": 3_200, "exit_code": 0},
    _digest(CHILD, 3_200, "/out/a.bin", 3_100, SECOND),
    _open(PROCESS, 3_300, "/out/b.txt", 4),
    _close(PROCESS, 3_350, 4),
    _digest(PROCESS, 3_400, "/out/b.txt", 3_300, None, CHANGED),
    _open(PROCESS, 3_500, "/out/c.txt", 5),
    _close(PROCESS, 3_550, 5),
    _digest(PROCESS, 3_600, "/out/c.txt", 3_500, OTHER),
    _open(PROCESS, 3_700, "/out/c.txt", 5),  # written again, and gone before the second digest
    _close(PROCESS, 3_750, 5),
    _digest(PROCESS, 3_800, "/out/c.txt", 3_700, None, GONE),
    {"type": "exit", **PROCESS, "ts": 9_000, "exit_code": 0},
    {"type": "end", "end_ns": 9_000, "exit_code": 0, "lost_events": 0, "still_running": 0},
]


def _write(tmp_path: Path, lines: list[dict[str, Any]]) -> Path:
    rec = tmp_path / "run.jsonl"
    rec.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return rec


def test_a_replayed_recording_with_digests_exports_provenance(tmp_path: Path) -> None:
    cli, store = CliRunner(), f"sqlite:///{tmp_path / 'db.db'}"
    code, _, err = run_cli(cli, store, "ingest", "events", str(_write(tmp_path, RECORDING)))
    assert code == 0, err
    out = tmp_path / "prov.json"
    code, _, err = run_cli(cli, store, "export", "--run", "run:h:100:1000", "-f", "slsa", "-o", str(out))
    assert code == 0, err
    assert "2 written file(s) had no digest taken while the run went on" in err
    st = json.loads(out.read_bytes())
    assert_outside_verifier_accepts(st)
    # rewritten by a later process: the digest at its last close, never the first draft's
    assert [(s["name"], s["digest"]) for s in st["subject"]] == [("/out/a.bin", {"sha256": SECOND})]
    assert st["subject"][0]["annotations"]["liubai.hashed_at"] == "2023-11-14T22:13:20.000003Z"  # its close
    byproducts = {b["name"]: b for b in st["predicate"]["runDetails"]["byproducts"]}
    assert "digest" not in byproducts["/out/b.txt"]
    assert byproducts["/out/b.txt"]["annotations"]["liubai.hash_note"] == CHANGED
    # a digest from an earlier close does not stand for a later write that has none
    assert "digest" not in byproducts["/out/c.txt"]
    assert byproducts["/out/c.txt"]["annotations"]["liubai.hash_note"] == GONE
    source = st["predicate"]["buildDefinition"]["resolvedDependencies"][0]
    assert source["uri"] == "git+https://git.example/r@0123456789abcdef0123456789abcdef01234567"


def test_each_write_keeps_the_digest_of_its_own_last_close() -> None:
    replay = replay_recording((json.dumps(line) for line in RECORDING), "run.jsonl")
    wrote = {
        (r.pid, r.path): (r.sha256, r.hash_note)
        for r in replay.collector.records()
        if getattr(r, "mode", None) == "write"
    }
    assert wrote == {
        (100, "/out/a.bin"): (FIRST, None),
        (101, "/out/a.bin"): (SECOND, None),
        (100, "/out/b.txt"): (None, CHANGED),
        (100, "/out/c.txt"): (None, GONE),
    }


def test_a_digest_line_with_a_malformed_sha256_is_rejected_and_the_rest_lands() -> None:
    bad = _digest(PROCESS, 2_100, "/out/a.bin", 2_000, "ABC")
    replay = replay_recording((json.dumps(line) for line in [*RECORDING[:3], bad]), "run.jsonl")
    (rejected,) = replay.rejected
    assert rejected.location == "run.jsonl:4" and "sha256 must be 64 lowercase hex digits" in rejected.reason


def test_without_a_repository_the_source_names_none(tmp_path: Path) -> None:
    cli, store = CliRunner(), f"sqlite:///{tmp_path / 'db.db'}"
    header = {k: v for k, v in RECORDING[0].items() if k != "repo_url"}
    code, _, err = run_cli(cli, store, "ingest", "events", str(_write(tmp_path, [header, *RECORDING[1:]])))
    assert code == 0, err
    code, out, err = run_cli(cli, store, "export", "--run", "run:h:100:1000", "-f", "slsa")
    assert code == 0, err
    assert "no repository URI is known for the run's commit" in err
    st = json.loads(out)
    assert_outside_verifier_accepts(st)
    source = st["predicate"]["buildDefinition"]["resolvedDependencies"][0]
    assert source["name"] == "source" and "uri" not in source
    assert source["digest"] == {"gitCommit": "0123456789abcdef0123456789abcdef01234567"}
    assert source["annotations"]["liubai.status"] == "repository-unknown"
