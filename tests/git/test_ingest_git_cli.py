"""``liubai ingest git`` end to end: the installed command against a real repository and SQLite file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from liubai.api.cli.main import _command_words, app
from liubai.lineage.store import open_store
from tests.gitrepo import Scenario

runner = CliRunner()


def _liubai() -> list[str]:
    script = Path(sys.executable).parent / "liubai"
    return (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "from liubai.api.cli.main import main; main()"]
    )


def test_console_script_ingests_and_prints_summary(scenario: Scenario, tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    done = subprocess.run(
        [*_liubai(), "--store", f"sqlite:///{db}", "ingest", "git", str(scenario.path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200", "LIUBAI_GIT_CACHE": str(tmp_path / "cache")},
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert _row(out, "commits") == scenario.commit_count
    assert _row(out, "workloads") == len(scenario.workloads)
    assert _row(out, "audit records") == len(scenario.audits)
    assert _row(out, "rejected") == len(scenario.rejects)
    for expected in scenario.rejects:
        assert f"{expected.commit[:12]}:{expected.path}" in out
    store = open_store(f"sqlite:///{db}")
    try:
        assert store.counts()["Commit"] == scenario.commit_count
    finally:
        store.close()


def _row(table: str, label: str) -> int:
    for line in table.splitlines():
        cells = [c.strip() for c in line.replace("┃", "│").split("│") if c.strip()]
        if len(cells) == 2 and cells[0] == label:
            return int(cells[1])
    raise AssertionError(f"no row {label!r} in:\n{table}")


def _ingest(db: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["--store", f"sqlite:///{db}", "ingest", "git", *args])
    return result.exit_code, result.stdout, result.stderr


def test_json_summary_second_run_and_force_push_warning(scenario: Scenario, tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    code, out, _ = _ingest(db, str(scenario.path), "--json")
    assert code == 0
    first = json.loads(out)
    assert (first["commits"], first["workloads"], first["rejected"]) == (
        scenario.commit_count,
        len(scenario.workloads),
        len(scenario.rejects),
    )
    code, out, _ = _ingest(db, str(scenario.path), "--json")
    assert json.loads(out) | {"rewritten": []} == {
        "commits": 0,
        "workloads": 0,
        "audit_records": 0,
        "rejected": 0,
        "skipped": 0,
        "rewritten": [],
        "nodes_created": 0,
        "edges_created": 0,
    }
    scenario.repo.reset_hard("HEAD~2")
    scenario.repo.write("docs/x.md", "x\n")
    scenario.repo.commit("docs: after force push")
    code, out, err = _ingest(db, str(scenario.path))
    assert code == 0
    warnings = [ln for ln in err.splitlines() if ln.startswith("warning: history rewritten")]
    assert len(warnings) == 1 and "refs/heads/main" in warnings[0]
    assert _row(out, "commits") == 1 and _row(out, "history rewrites") == 1


def test_all_refs_from_a_file_url(scenario: Scenario, tmp_path: Path) -> None:
    code, out, err = _ingest(
        tmp_path / "x.db",
        scenario.path.resolve().as_uri(),
        "--all",
        "--json",
        "--cache-dir",
        str(tmp_path / "c"),
    )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["commits"] == scenario.all_commit_count
    assert summary["workloads"] == len(scenario.workloads | scenario.side_workloads)


def test_errors_are_one_line_and_exit_nonzero(tmp_path: Path, scenario: Scenario) -> None:
    code, _, err = _ingest(tmp_path / "x.db", str(tmp_path / "missing"))
    assert code == 1 and err.strip().splitlines() == [f"error: {tmp_path / 'missing'}: no such directory"]
    code, _, err = _ingest(tmp_path / "x.db", str(scenario.path), "--branch", "nope")
    assert code == 1 and len(err.strip().splitlines()) == 1 and "no branch or tag named 'nope'" in err
    code, _, err = _ingest(tmp_path / "x.db", str(scenario.path), "--branch", "main", "--all")
    assert code == 1 and "either --branch or --all" in err


def test_help_shows_an_example() -> None:
    result = runner.invoke(app, ["ingest", "git", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "Example: liubai --store sqlite:///lineage.db ingest git" in result.stdout


def test_ingest_git_starts_without_the_other_commands_dependencies() -> None:
    """Start-up is part of every ingest's cost: `ingest git` loads neither the web stack nor settings."""
    probe = (
        "import sys\n"
        "sys.argv = ['liubai', '--store', 'sqlite:///unused.db', 'ingest', 'git', '--help']\n"
        "from liubai.api.cli.main import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('liubai.api.errors', 'liubai.api.cli.query', 'liubai.lineage.config', 'strawberry') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Example: liubai" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["ingest", "git", "."], ("ingest", "git")),
        (["--store", "sqlite:///x.db", "ingest", "git"], ("ingest", "git")),
        (["--store=sqlite:///x.db", "ingest", "git", "--json"], ("ingest", "git")),
        (["--help", "ingest", "git"], ()),
        (["ingest"], ("ingest",)),
        ([], ()),
    ],
)
def test_command_words_pick_the_fast_start(args: list[str], words: tuple[str, ...]) -> None:
    assert _command_words(args) == words


def test_the_full_command_set_is_still_registered() -> None:
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for command in ("ingest", "lineage", "serve", "export", "token"):
        assert command in result.stdout


def test_rejected_json_and_piped_lines_keep_whole_locations(tmp_path: Path) -> None:
    """A reject deep in a long path: --json gives it as data; piped (not a terminal) output is one
    tab-separated line per record with the location whole, however narrow the terminal."""
    from tests.gitrepo import GitRepoBuilder

    repo = GitRepoBuilder(tmp_path / "r")
    deep = "clusters/" + "/".join(f"level-{i:02d}-of-a-deep-overlay-tree" for i in range(6)) + "/bad.yaml"
    repo.write(deep, "apiVersion: v1\nkind: Service\nmetadata: {name: [x\n")
    sha = repo.commit("a broken service deep down")
    db = tmp_path / "x.db"
    code, _, _ = _ingest(db, str(repo.path))
    assert code == 0
    location = f"{sha[:12]}:{deep}#0"
    source = f"git:{repo.path.resolve()}"
    result = runner.invoke(app, ["--store", f"sqlite:///{db}", "rejected", "--json"])
    doc = json.loads(result.stdout)
    assert doc["total"] == 1 and doc["end_cursor"] is None
    (record,) = doc["records"]
    assert (record["source"], record["location"]) == (source, location)
    assert record["reason"].startswith("invalid YAML") and "name: [x" in record["raw"]
    result = runner.invoke(app, ["--store", f"sqlite:///{db}", "rejected"], env={"COLUMNS": "40"})
    lines = result.stdout.splitlines()
    assert lines[0] == "1 rejected record(s)"
    assert lines[1].split("\t")[:2] == [source, location]
