"""``liubai lineage / search / path / rejected`` against a real store, through the real typer app."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from liubai.api.cli.main import app
from liubai.lineage.model import Direction, commit_node_id
from tests.api.conftest import CONFIG_MAPS, HOSTILE_SUBJECT, World

runner = CliRunner()


def _run(world: World, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["--store", world.url, *args], env={"COLUMNS": "400", "NO_COLOR": "1"})
    return result.exit_code, result.stdout, result.stderr


def test_lineage_prints_the_tree_of_a_commit(world: World) -> None:
    code, out, _ = _run(world, "lineage", world.deploy[:10], "--depth", "3")
    assert code == 0, out
    lines = out.splitlines()
    root = lines[0]
    assert commit_node_id(world.deploy) in root and "deploy web 1.2" in root
    for workload in world.workloads:
        line = next(line for line in lines if workload in line)
        assert "-DECLARES->" in line or "-ANNOTATES->" in line
    trace_line = next(line for line in lines if line.rstrip().endswith("  " + world.trace_node))
    audit_line = next(line for line in lines if line.rstrip().endswith("  " + world.audit_node))
    # the trace hangs under the audit record: deeper indentation, reached by CORRELATES
    assert "-CORRELATES->" in trace_line
    assert _indent(trace_line) > _indent(audit_line) > _indent(root)
    assert "<-FOR_COMMIT-" in audit_line


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" │├└─"))


def test_lineage_prints_untrusted_text_literally(world: World) -> None:
    code, out, _ = _run(world, "lineage", commit_node_id(world.hostile), "--depth", "0")
    assert code == 0
    assert HOSTILE_SUBJECT in out  # rich markup like [bold red] is shown, not interpreted


def test_lineage_json_and_edge_filter(world: World) -> None:
    code, out, _ = _run(world, "lineage", world.deploy, "--edge-kinds", "DECLARES", "--json")
    assert code == 0
    graph = json.loads(out)
    assert {n["id"] for n in graph["nodes"]} == {commit_node_id(world.deploy), *world.workloads}
    assert {e["kind"] for e in graph["edges"]} == {"DECLARES"}


def _walk(world: World, node: str, *directions: Direction, depth: int = 4) -> set[str]:
    return {n.id for d in directions for n in world.store.lineage(node, d, depth).nodes}


def _lineage_ids(world: World, *args: str) -> tuple[set[str], bool]:
    code, out, err = _run(world, "lineage", *args, "--json")
    assert code == 0, err
    graph = json.loads(out)
    return {n["id"] for n in graph["nodes"]}, graph["truncated"]


def test_lineage_without_a_direction_shows_where_a_log_line_came_from_not_its_whole_trace(
    world: World,
) -> None:
    log = world.logs[0]
    shown, _ = _lineage_ids(world, log)
    assert shown == _walk(world, log, Direction.UPSTREAM, Direction.DOWNSTREAM)
    assert commit_node_id(world.deploy) in shown
    # BOTH would turn at the trace and list the trace's other lines; auto stays on this line's lineage.
    cousins = _walk(world, log, Direction.BOTH) - shown
    assert set(world.logs[1:]) & cousins
    assert shown.isdisjoint(cousins)
    assert _lineage_ids(world, log, "--direction", "downstream")[0] == _walk(world, log, Direction.DOWNSTREAM)


def test_lineage_without_a_direction_walks_down_from_a_commit(world: World) -> None:
    shown, _ = _lineage_ids(world, world.deploy)
    assert shown == _walk(world, commit_node_id(world.deploy), Direction.DOWNSTREAM)
    code, out, _ = _run(world, "lineage", world.deploy, "--depth", "1")
    assert code == 0 and out.rstrip().endswith("depth 1 auto: downstream")


def test_lineage_both_ways_keeps_to_the_node_limit(world: World) -> None:
    log = world.logs[0]
    assert len(_walk(world, log, Direction.UPSTREAM, Direction.DOWNSTREAM)) > 3
    shown, truncated = _lineage_ids(world, log, "--limit", "3")
    assert len(shown) == 3 and truncated


def test_lineage_errors_are_one_line(world: World) -> None:
    code, _, err = _run(world, "lineage", "commit:" + "0" * 40)
    assert code == 1 and "no node" in err and len(err.strip().splitlines()) == 1
    code, _, err = _run(world, "lineage", world.twin_a[:6])
    assert code == 1 and "several commits" in err
    code, _, err = _run(world, "lineage", world.deploy, "--edge-kinds", "NOPE")
    assert code == 1 and "unknown edge kind" in err


def test_search_pages_with_kind_filter(world: World) -> None:
    code, out, _ = _run(world, "search", "settings", "--kind", "workload", "--first", "20")
    assert code == 0
    assert f"{CONFIG_MAPS} match(es)" in out
    shown = [w for w in world.config_maps if w in out]
    assert len(shown) == 20
    more = next(line for line in out.splitlines() if line.startswith("more: "))
    code, out2, _ = _run(world, *shlex.split(more)[2:])  # the printed command, filters and all
    assert code == 0 and f"{CONFIG_MAPS} match(es)" in out2
    assert sorted(shown + [w for w in world.config_maps if w in out2]) == sorted(world.config_maps)


def test_empty_store_option_is_refused_not_the_default_store() -> None:
    result = runner.invoke(app, ["--store", "", "stats"])
    assert result.exit_code == 1 and result.stderr.strip() == (
        "error: --store is empty: give a store URL, or leave --store out for the default store"
    )


def test_path_prints_the_chain(world: World) -> None:
    code, out, _ = _run(world, "path", world.logs[2], world.deploy[:8])
    assert code == 0
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    assert lines[0].endswith(world.logs[2]) and lines[-2].endswith(commit_node_id(world.deploy))
    assert any("IN_TRACE" in line for line in lines)


def test_rejected_lists_the_malformed_annotation(world: World) -> None:
    code, out, _ = _run(world, "rejected", "--source", f"git:{world.repo}")
    assert code == 0
    assert "1 rejected record(s)" in out
    assert "malformed audit id" in out and world.bad_annotation in out and "deploy/bad.yaml" in out
    code, out, _ = _run(world, "rejected", "--source", "git:elsewhere")
    assert code == 0 and "0 rejected record(s)" in out


def test_every_query_command_help_has_an_example() -> None:
    for command in ("show", "lineage", "search", "path", "rejected", "serve"):
        result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0
        assert "Example: liubai" in result.stdout, command


def test_query_commands_start_without_the_web_stack() -> None:
    """The CLI's query commands raise the API's user errors but need neither strawberry nor FastAPI: every
    command of the CLI registered, none of the web stack is loaded."""
    probe = (
        "import sys\n"
        "from liubai.api.cli.main import app\n"
        "print(sorted(m for m in ('strawberry', 'graphql', 'fastapi', 'liubai.api.errors') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_bad_after_cursor_is_one_line_naming_the_option(world: World) -> None:
    """The CLI tells a bad cursor from other store errors by its type (``InvalidCursor``)."""
    for command in (["search", "settings"], ["rejected"]):
        code, _, err = _run(world, *command, "--after", "not-a-cursor")
        assert code == 1, err
        assert err.strip().splitlines() == [err.strip()] and "--after: invalid cursor" in err


@pytest.mark.sqlite_only  # patches the SQLite store's search to fail
def test_a_store_failure_with_after_is_not_blamed_on_the_option(world: World, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Any other store error on a later page is reported as the store's, not as a bad ``--after``."""
    from liubai.lineage.store.base import StoreUnavailable
    from liubai.lineage.store.sqlite import SqliteStore

    def fail(*args: object, **kwargs: object) -> None:
        raise StoreUnavailable("database is locked")

    after = world.store.search("settings", first=1).end_cursor
    assert after is not None
    monkeypatch.setattr(SqliteStore, "search", fail)
    code, _, err = _run(world, "search", "settings", "--after", after)
    assert code == 1 and "database is locked" in err and "--after" not in err
