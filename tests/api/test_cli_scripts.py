"""What a script or a newcomer relies on from the CLI: ``--json`` on every read command (one document on
stdout, its fields named in ``--help``), whole ids when piped, reads that never create a store, "not found"
naming the store, and help examples whose ids have the shapes the graph really uses."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import typer.core
import typer.main
from typer.testing import CliRunner

from liubai.api.cli.main import app
from liubai.lineage.model import (
    Edge,
    EdgeKind,
    GraphBatch,
    Node,
    NodeKind,
    commit_node_id,
    parse_audit_id,
    pod_node_id,
    workload_node_id,
)
from liubai.lineage.store import open_store
from liubai.lineage.urls import redact_url
from tests.api.conftest import World

runner = CliRunner()
ENV = {"COLUMNS": "80", "NO_COLOR": "1"}

# Every command, as the words that run it, sorted into what only reads (each must take --json) and what
# writes, serves or streams (an export's answer is its --format). A new command must be put in one.
READS = {
    ("show",),
    ("lineage",),
    ("search",),
    ("path",),
    ("rejected",),
    ("drift",),
    ("declared",),
    ("stats",),
    ("verify",),
    ("token", "list"),
}
OTHERS = {
    ("trace",),
    ("serve",),
    ("schema",),
    ("export",),
    ("keygen",),
    ("migrate",),
    ("agent",),
    ("webhook",),
    ("annotate",),
    ("demo",),
    ("ingest", "git"),
    ("ingest", "logs"),
    ("ingest", "sls"),
    ("ingest", "k8s"),
    ("ingest", "events"),
    ("ingest", "node"),
    ("token", "create"),
    ("token", "init"),
    ("token", "revoke"),
}


def _commands(group: typer.core.TyperGroup | None = None, words: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    group = group or typer.main.get_command(app)  # type: ignore[assignment]
    for name, command in group.commands.items():  # type: ignore[union-attr]
        if isinstance(command, typer.core.TyperGroup):
            yield from _commands(command, (*words, name))
        else:
            yield (*words, name), command


def _help(*words: str) -> str:
    result = runner.invoke(app, [*words, "--help"], env={"COLUMNS": "2000", "TERMINAL_WIDTH": "2000"})
    assert result.exit_code == 0, result.output
    return result.stdout


def _run(url: str, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["--store", url, *args], env=ENV)
    return result.exit_code, result.stdout, result.stderr


def test_every_command_is_sorted_and_every_read_command_takes_json() -> None:
    commands = dict(_commands())
    assert set(commands) == READS | OTHERS
    for words in READS:
        options = {o for p in commands[words].params for o in getattr(p, "opts", [])}
        assert "--json" in options, words


@pytest.mark.sqlite_only  # one JSON layout, whatever the store; the world's stores are covered elsewhere
def test_read_commands_print_one_json_document_with_the_fields_their_help_names(
    world: World, tmp_path: Path
) -> None:
    bundle = tmp_path / "audit.json"
    code, _, err = _run(world.url, "export", "--commit", world.deploy, "--format", "json", "-o", str(bundle))
    assert code == 0, err
    ask: dict[tuple[str, ...], list[str]] = {
        ("show",): [world.workloads[0]],
        ("lineage",): [world.deploy, "--depth", "1"],
        ("search",): ["settings", "--first", "3"],
        ("path",): [world.logs[2], world.deploy],
        ("rejected",): [],
        ("drift",): [],
        ("declared",): ["--at", world.deploy],
        ("stats",): [],
        ("verify",): [str(bundle), "--allow-unsigned"],
        ("token", "list"): ["--tokens", str(tmp_path / "tokens.db")],
    }
    assert set(ask) == READS
    for words, args in ask.items():
        code, out, err = _run(world.url, *words, *args, "--json")
        assert code == 0, (words, err)
        doc = json.loads(out)  # the whole of stdout is one document, on one line
        assert len(out.splitlines()) == 1, words
        documented = _help(*words)
        fields = list(doc) if isinstance(doc, dict) else [k for item in doc for k in item]
        if words == ("stats",):
            fields = []  # its keys are node kinds and counts, not fields
            assert doc["Commit"] == 5 and doc["edges"] > 0
        for field in fields:
            assert re.search(rf"\b{field}\b", documented), (words, field)
    shown = json.loads(_run(world.url, "show", world.workloads[0], "--json")[1])
    assert shown["id"] == world.workloads[0] and shown["kind"] == "Workload"
    found = json.loads(_run(world.url, "search", "settings", "--first", "3", "--json")[1])
    assert found["total"] > 3 and len(found["nodes"]) == 3 and found["end_cursor"]
    chain = json.loads(_run(world.url, "path", world.logs[2], world.deploy, "--json")[1])
    assert chain["nodes"][0]["id"] == world.logs[2] and chain["nodes"][-1]["id"] == commit_node_id(
        world.deploy
    )
    assert len(chain["edges"]) == len(chain["nodes"]) - 1
    verified = json.loads(_run(world.url, "verify", str(bundle), "--allow-unsigned", "--json")[1])
    assert verified["signed"] is False and verified["verified"] is False and not verified["failures"]
    code, out, _ = _run(
        world.url, "verify", str(bundle), "--json"
    )  # unsigned, not allowed: still JSON, exit 2
    assert code == 2 and json.loads(out)["kind"]


LONG = "payments-" + "x" * 150  # wider than any terminal: a table or tree would cut or fold it


def test_piped_output_prints_whole_ids(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'long.db'}"
    sha = "3f2a9c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39"
    workload = workload_node_id("Deployment", "payments", LONG)
    pod = pod_node_id(str(uuid.uuid4()))
    store = open_store(url)
    try:
        store.upsert(
            GraphBatch(
                nodes=[
                    Node.of(commit_node_id(sha), {"sha": sha, "subject": "deploy " + LONG}),
                    Node.of(workload, {"kind": "Deployment", "namespace": "payments", "name": LONG}),
                    Node.of(pod, {"name": LONG + "-7d4b9c-abcde", "namespace": "payments"}),
                ],
                edges=[
                    Edge(commit_node_id(sha), EdgeKind.DECLARES, workload),
                    Edge(pod, EdgeKind.INSTANCE_OF, workload),
                ],
            )
        )
    finally:
        store.close()
    for args in (["search", LONG], ["lineage", sha, "--depth", "2"], ["show", workload]):
        done = subprocess.run(
            [sys.executable, "-m", "liubai.api.cli.main", "--store", url, *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "COLUMNS": "60"},  # a narrow terminal somewhere; stdout is a pipe
        )
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert any(workload in line for line in lines), (args, done.stdout)
        if args[0] != "show":
            assert any(pod in line for line in lines), (args, done.stdout)
        assert "…" not in done.stdout, args


def _store_forms(tmp_path: Path) -> list[tuple[list[str], dict[str, str]]]:
    """The ways a user names a mistyped store: --store as a URL or a bare path, or LIUBAI_STORE."""
    url = f"sqlite:///{tmp_path / 'nope' / 'typo.db'}"
    return [
        (["--store", url], {}),
        (["--store", str(tmp_path / "nope" / "typo.db")], {}),
        ([], {"LIUBAI_STORE": url}),
    ]


def test_read_commands_never_create_a_store(tmp_path: Path) -> None:
    sha = "3f2a9c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39"
    reads = [
        ["show", f"commit:{sha}"],
        ["lineage", f"commit:{sha}"],
        ["search", "payments"],
        ["path", f"commit:{sha}", "workload:Deployment/payments/api"],
        ["rejected"],
        ["drift"],
        ["declared"],
        ["stats", "--json"],
        ["export", "--all", "-o", str(tmp_path / "out.json")],
    ]
    for root, env in _store_forms(tmp_path):
        for args in reads:
            result = runner.invoke(app, [*root, *args], env={**ENV, **env})
            assert result.exit_code == 1, (args, result.output)
            assert f"no store at {tmp_path / 'nope' / 'typo.db'}" in result.stderr, (args, result.stderr)
            assert (
                "from --store " if root else "from LIUBAI_STORE="
            ) in result.stderr  # which setting to fix
            assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""
            assert not (tmp_path / "nope").exists(), args
    assert not (tmp_path / "out.json").exists()
    code, _, err = _run(f"sqlite:///{tmp_path}", "stats")  # a directory is no store either
    assert code == 1 and f"no store at {tmp_path}" in err


def test_a_write_command_still_creates_its_store(tmp_path: Path) -> None:
    log = tmp_path / "app.jsonl"
    log.write_text(json.dumps({"time": "2026-01-31T12:00:00Z", "level": "INFO", "message": "up"}) + "\n")
    db = tmp_path / "new" / "lineage.db"
    code, _, err = _run(f"sqlite:///{db}", "ingest", "logs", str(log))
    assert code == 0, err
    code, out, _ = _run(f"sqlite:///{db}", "stats", "--json")
    assert code == 0 and json.loads(out)["LogEvent"] == 1


def test_every_not_found_names_the_store_it_looked_in(world: World) -> None:
    where = redact_url(world.url)
    missing_sha = "0123456789abcdef0123456789abcdef01234567"
    cases = [
        ["show", f"commit:{missing_sha}"],
        ["show", "workload:Deployment/payments/api"],
        ["lineage", "beefcafe"],
        ["path", world.logs[0], f"commit:{missing_sha}"],
        ["declared", "--at", f"commit:{missing_sha}"],
        ["export", "--node", "workload:Deployment/payments/api"],
        ["export", "--commit", missing_sha],
    ]
    for args in cases:
        code, _, err = _run(world.url, *args)
        assert code == 1, (args, err)
        assert where in err and len(err.strip().splitlines()) == 1, (args, err)
        assert "the lineage store" not in err and "in the store" not in err, err
    code, _, err = _run(world.url, "show", "workload:Deployment/payments/api")
    assert err.strip() == f"error: no node 'workload:Deployment/payments/api' in {where}"


def test_a_token_not_found_names_the_token_file(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.db"
    result = runner.invoke(app, ["token", "revoke", "3f9a1c0b2d4e", "--tokens", str(tokens)], env=ENV)
    assert result.exit_code == 1 and f"no live token with id '3f9a1c0b2d4e' in {tokens}" in result.stderr


# The shapes of the ids ``liubai.lineage.model`` builds, as a help example must spell them.
_HEX40_64 = r"(?:[0-9a-f]{40}|[0-9a-f]{64})"
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_SHAPES = {
    NodeKind.COMMIT: _HEX40_64,
    NodeKind.WORKLOAD: r"(?:[a-z0-9-]+:)?[A-Z][A-Za-z]+/[a-z0-9-]*/[a-z0-9][a-z0-9.-]*",
    NodeKind.POD: _UUID,
    NodeKind.ADMISSION: _UUID,
    NodeKind.TRACE: r"[0-9a-f]{32}",
    NodeKind.PROCESS: r"[A-Za-z0-9.-]+:\d+:\d+",
    NodeKind.PIPELINE_RUN: r"[A-Za-z0-9.-]+:\d+:\d+",
    NodeKind.CONTAINER: r"[0-9a-f]{64}",
    NodeKind.FILE: r"[A-Za-z0-9.-]+:(?:container/[0-9a-f]{64}:)?/\S*",
    NodeKind.LOG_EVENT: r"\S+:\S+",
    NodeKind.REPO: r"\S+",
}
_ID_TOKEN = re.compile(r"(?<![\w/.-])(" + "|".join(k.prefix for k in NodeKind) + r"):(\S+)")
# options whose value is a whole id (or an audit id / trace id / sha) in an example
_VALUE_SHAPES = {
    "--commit": _HEX40_64,
    "--trace": r"[0-9a-f]{32}",
    "--run": r"run:[A-Za-z0-9.-]+:\d+:\d+",
}


def _check_id(kind: NodeKind, key: str) -> bool:
    if kind is NodeKind.AUDIT_RECORD:
        parse_audit_id(key)  # raises on a malformed one
        return True
    return re.fullmatch(_SHAPES[kind], key) is not None


def test_help_examples_use_real_id_shapes() -> None:
    by_prefix = {k.prefix: k for k in NodeKind}
    checked = 0
    for words, _ in _commands():
        text = _help(*words)
        for prefix, key in _ID_TOKEN.findall(text):
            key = key.rstrip(").,;'\"`│")
            if key.startswith("<") or not key:
                continue  # a placeholder, e.g. commit:<40 hex>, names the shape in words
            assert _check_id(by_prefix[prefix], key), f"liubai {' '.join(words)} --help: {prefix}:{key}"
            checked += 1
        for line in re.findall(r"Example: (liubai [^│\n]*)", text):
            args = shlex.split(line.strip())
            for option, value in zip(args, args[1:], strict=False):
                if option in _VALUE_SHAPES:
                    assert re.fullmatch(_VALUE_SHAPES[option], value), f"{line}: {option} {value}"
                    checked += 1
    assert checked >= 5  # the examples of show, lineage, path, export and trace name whole ids


def test_piped_headings_stay_terminal_wide() -> None:
    """Only what holds ids is laid out unbounded when piped: a heading rule keeps the terminal's width."""
    probe = "from liubai.api.cli.common import console\nconsole.rule('1. a step')\n"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "60"},
    )
    assert done.returncode == 0, done.stderr
    assert [len(line) for line in done.stdout.splitlines()] == [60] and "1. a step" in done.stdout
