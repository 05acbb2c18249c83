"""``liubai export`` and ``liubai verify`` given input they cannot use: one clear line, never a traceback."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from liubai.lineage.export import (
    MAX_DEPTH,
    MAX_LIMIT,
    ExportError,
    Selection,
    Selector,
    canonical_json,
    select,
)
from liubai.lineage.signing import BUNDLE_PAYLOAD_TYPE, load_signer, sign
from tests.export.conftest import Scenario, run_cli


def _one_line(err: str) -> bool:
    return len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_limit_beyond_any_store_is_refused(scenario: Scenario, cli: CliRunner) -> None:
    for option in ("--limit", "--depth"):
        code, out, err = run_cli(
            cli, scenario.store_url, "export", "--commit", scenario.commit, option, "9223372036854775808"
        )
        assert code == 2 and out == ""
        assert f"Invalid value for '{option}'" in err


@pytest.mark.parametrize(
    ("bounds", "message"),
    [
        ({"depth": MAX_DEPTH + 1}, f"--depth must be 0 to {MAX_DEPTH}"),
        ({"limit": 0}, f"--limit must be 1 to {MAX_LIMIT}"),
    ],
)
def test_select_refuses_a_walk_past_its_bounds_for_any_caller(
    scenario: Scenario, bounds: dict[str, int], message: str
) -> None:
    """The library bound itself, below the CLI's and the HTTP export's own option checks."""
    with pytest.raises(ExportError, match=message):
        select(scenario.store, Selection(Selector.COMMIT, scenario.commit, **bounds))


def test_an_unknown_run_is_named_as_typed(scenario: Scenario, cli: CliRunner) -> None:
    code, _, err = run_cli(cli, scenario.store_url, "export", "--run", "run:x:1:2", "--format", "slsa")
    assert code == 1 and "'run:x:1:2'" in err and _one_line(err)


def test_unwritable_output_paths_are_one_line_and_touch_nothing(
    scenario: Scenario, cli: CliRunner, tmp_path: Path
) -> None:
    directory = tmp_path / "dir"
    directory.mkdir()
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    for fmt, out, message in (
        ("json", directory, "is a directory"),
        ("json", afile / "x.json", f"{afile} is a file, not a directory"),
        ("csv", afile, "exists and is not a directory"),
        ("csv", afile / "x.zip", f"{afile} is a file, not a directory"),
    ):
        code, _, err = run_cli(
            cli,
            scenario.store_url,
            "export",
            "--commit",
            scenario.commit,
            "-f",
            fmt,
            "-o",
            str(out),
            "--no-progress",
        )
        assert code == 1 and message in err and _one_line(err), (fmt, out, err)
    assert afile.read_text() == "keep me" and list(directory.iterdir()) == []
    # a missing parent of an output file is made, as for any export
    out = tmp_path / "new" / "deeper" / "bundle.json"
    code, _, err = run_cli(cli, scenario.store_url, "export", "--commit", scenario.commit, "-o", str(out))
    assert code == 0 and json.loads(out.read_bytes())["sha256"], err


@pytest.fixture(scope="module")
def envelope(scenario: Scenario, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("bad-input")
    runner = CliRunner()
    code, _, err = run_cli(runner, "sqlite:///:memory:", "keygen", "-o", str(d / "k"))
    assert code == 0, err
    out = d / "signed.json"
    code, _, err = run_cli(
        runner,
        scenario.store_url,
        "export",
        "--commit",
        scenario.commit,
        "--sign",
        str(d / "k.key"),
        "-o",
        str(out),
    )
    assert code == 0, err
    doc: dict[str, Any] = json.loads(out.read_bytes())
    doc["_key"] = str(d / "k")
    return doc


def _verify(cli: CliRunner, doc: dict[str, Any], key: str, path: Path) -> tuple[int, str, str]:
    path.write_text(json.dumps({k: v for k, v in doc.items() if k != "_key"}))
    return run_cli(cli, "sqlite:///:memory:", "verify", "--key", key + ".pub", str(path))


@pytest.mark.parametrize("field", ["payload", "payloadType"])
@pytest.mark.parametrize("value", [None, 1, [], {}])
def test_an_envelope_field_of_the_wrong_type_fails_verification(
    envelope: dict[str, Any], cli: CliRunner, tmp_path: Path, field: str, value: Any
) -> None:
    code, out, err = _verify(cli, {**envelope, field: value}, envelope["_key"], tmp_path / "bad.json")
    assert code == 1 and _one_line(err)
    assert f"FAIL envelope: malformed DSSE envelope: {field} is" in out


@pytest.mark.parametrize(
    "edge",
    [
        {"src": {}, "dst": "x", "kind": "IN_TRACE"},
        {"src": "x", "dst": [1], "kind": "IN_TRACE"},
        {"src": "x", "dst": "y", "kind": []},
    ],
)
def test_a_signed_bundle_with_malformed_edges_fails_consistency(
    envelope: dict[str, Any], cli: CliRunner, tmp_path: Path, edge: dict[str, Any]
) -> None:
    """Signed and digested as it is: only the consistency check can catch it, and it must not crash."""
    doc = json.loads(base64.b64decode(envelope["payload"]))
    bundle = doc["bundle"]
    bundle["edges"].append(edge)
    bundle["summary"]["edges"] += 1
    payload = canonical_json({"bundle": bundle, "sha256": hashlib.sha256(canonical_json(bundle)).hexdigest()})
    resigned = sign(payload, BUNDLE_PAYLOAD_TYPE, load_signer(Path(envelope["_key"] + ".key")))
    code, out, err = _verify(cli, resigned, envelope["_key"], tmp_path / "edges.json")
    assert code == 1 and _one_line(err)
    assert "ok   signature" in out and "ok   digest" in out and "FAIL consistency" in out
