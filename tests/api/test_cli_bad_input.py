"""Input the CLI did not write (arguments, store errors, stored log lines) gives inert text or one clear line."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from liubai.api.cli.main import app
from liubai.lineage.model import Edge, EdgeKind, GraphBatch, Node, RejectedRecord, log_node_id, trace_node_id
from liubai.lineage.store import LineageStore, open_store

runner = CliRunner()

CONTROL = "ctl \x00 \x01 \x1b[31m red \x9b2J \x7f"
TRACE = trace_node_id("4bf92f3577b34da6a3ce929d0e0e4736")
LOG = log_node_id("file:app.jsonl", "0001")


def _run(store_url: str, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["--store", store_url, *args], env={"COLUMNS": "400", "NO_COLOR": "1"})
    return result.exit_code, result.stdout, result.stderr


def _hostile_store(store: LineageStore, url: str) -> str:
    store.upsert(
        GraphBatch(
            nodes=[Node.of(LOG, {"message": CONTROL}), Node.of(TRACE, {"trace_id": TRACE.partition(":")[2]})],
            edges=[Edge(LOG, EdgeKind.IN_TRACE, TRACE)],
            rejected=[
                RejectedRecord("file:app.jsonl", "line 2\x1b[2J", "bad json \x07", "{\x1b]0;owned\x07")
            ],
        )
    )
    return url


def _has_control(text: str) -> bool:
    return any(ord(c) < 0x20 and c not in "\n\t" or 0x7F <= ord(c) <= 0x9F for c in text)


def test_arguments_in_error_lines_are_not_markup(store: LineageStore, store_url: str) -> None:
    for ref in ("[/x]", "[bold red]x[/]", "run:x:1:2"):
        code, _, err = _run(store_url, "lineage", ref)
        assert code == 1
        assert ref in err and len(err.strip().splitlines()) == 1  # printed as typed, not parsed or replaced


def test_a_lineage_limit_beyond_any_store_is_refused(store: LineageStore, store_url: str) -> None:
    code, out, err = _run(
        _hostile_store(store, store_url), "lineage", TRACE, "--limit", "9223372036854775808"
    )
    assert code == 2 and out == "" and "Invalid value for '--limit'" in err


def test_control_characters_in_stored_text_never_reach_the_terminal(
    store: LineageStore, store_url: str
) -> None:
    url = _hostile_store(store, store_url)
    for args in (("lineage", TRACE), ("search", "ctl"), ("rejected",), ("path", LOG, TRACE)):
        code, out, err = _run(url, *args)
        assert code == 0, err
        assert not _has_control(out + err), args
    _, tree, _ = _run(url, "lineage", TRACE)
    assert "ctl \\x00 \\x01 \\x1b[31m red \\x9b2J \\x7f" in tree  # shown as visible escapes
    _, rejected, _ = _run(url, "rejected")
    assert "line 2\\x1b[2J" in rejected and "{\\x1b]0;owned\\x07" in rejected


def test_lineage_json_stays_exact_json_without_raw_control_characters(
    store: LineageStore, store_url: str
) -> None:
    code, out, _ = _run(_hostile_store(store, store_url), "lineage", TRACE, "--json")
    assert code == 0 and not _has_control(out)
    message = {n["id"]: n["properties"] for n in json.loads(out)["nodes"]}[LOG]["message"]
    assert message == CONTROL


@pytest.mark.sqlite_only  # about the port, not the store
def test_serve_on_a_port_in_use_says_so_and_announces_nothing(store_url: str, tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                "from liubai.api.cli.main import main; main()",
                "--store",
                store_url,
                "serve",
                "--port",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
        )
    assert done.returncode == 3
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "http://" not in done.stdout


def test_migrate_from_a_missing_store_names_it_and_creates_nothing(tmp_path: Path) -> None:
    """A mistyped --from is an error naming the path, instead of an empty store made and "copied 0"."""
    out = runner.invoke(
        app,
        ["migrate", "--from", f"sqlite:///{tmp_path / 'typo.db'}", "--to", f"sqlite:///{tmp_path / 'b.db'}"],
    )
    assert out.exit_code == 1 and f"no store at {tmp_path / 'typo.db'}" in out.stderr
    assert not (tmp_path / "typo.db").exists() and not (tmp_path / "b.db").exists()


def test_migrate_from_an_empty_store_says_so_and_writes_nothing(tmp_path: Path) -> None:
    open_store(f"sqlite:///{tmp_path / 'empty.db'}").close()
    out = runner.invoke(
        app,
        ["migrate", "--from", f"sqlite:///{tmp_path / 'empty.db'}", "--to", f"sqlite:///{tmp_path / 'b.db'}"],
    )
    assert out.exit_code == 1 and "is empty: nothing to migrate" in out.stderr
    assert not (tmp_path / "b.db").exists()


def test_migrate_needs_a_copy_or_an_upgrade_and_never_both(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'a.db'}"
    out = runner.invoke(app, ["migrate", "--to", db])
    assert out.exit_code == 1 and "give --from and --to (a copy), or --upgrade" in out.stderr
    out = runner.invoke(app, ["migrate", "--upgrade", db, "--from", db])
    assert out.exit_code == 1 and "give it alone" in out.stderr
    assert not (tmp_path / "a.db").exists()


def test_upgrade_of_a_sqlite_store_says_it_upgrades_itself_and_of_a_missing_one_names_it(
    tmp_path: Path,
) -> None:
    open_store(f"sqlite:///{tmp_path / 'a.db'}").close()
    out = runner.invoke(app, ["migrate", "--upgrade", f"sqlite:///{tmp_path / 'a.db'}"])
    assert out.exit_code == 0 and "is up to date (it upgrades itself when opened)" in out.stdout
    out = runner.invoke(app, ["migrate", "--upgrade", f"sqlite:///{tmp_path / 'typo.db'}"])
    assert out.exit_code == 1 and f"no store at {tmp_path / 'typo.db'}" in out.stderr
    assert not (tmp_path / "typo.db").exists()


def test_printable_escapes_what_drives_a_terminal_and_keeps_text() -> None:
    from liubai.api.cli.common import printable

    assert printable("a\x1b[2Jb\x00\u202e\u2028\ud800\x85") == "a\\x1b[2Jb\\x00\\u202e\\u2028\\ud800\\x85"
    kept = "設定\u3000値 no\u00a0break 👩\u200d💻 tab-free café"
    assert printable(kept) == kept  # ideographic and no-break spaces, joiners: text, copied back as typed
