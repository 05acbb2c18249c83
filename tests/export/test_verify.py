"""``liubai verify`` on signed and unsigned bundles, and on every kind of tampering an auditor must catch."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from typer.testing import CliRunner

from liubai.lineage.signing import load_public_key, load_signer, sign, verify_document
from tests.export.conftest import Scenario, run_cli


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("keys")
    runner = CliRunner()
    for name in ("signer", "other"):
        code, _, err = run_cli(runner, "sqlite:///:memory:", "keygen", "-o", str(d / name))
        assert code == 0, err
    return d


@pytest.fixture(scope="module")
def signed(scenario: Scenario, keys: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("signed") / "bundle.dsse.json"
    code, _, err = run_cli(
        CliRunner(),
        scenario.store_url,
        "export",
        "--commit",
        scenario.commit,
        "--depth",
        "4",
        "--sign",
        str(keys / "signer.key"),
        "-o",
        str(out),
    )
    assert code == 0, err
    return out


@pytest.fixture(scope="module")
def unsigned(scenario: Scenario, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("unsigned") / "bundle.json"
    code, _, err = run_cli(
        CliRunner(), scenario.store_url, "export", "--commit", scenario.commit, "--depth", "4", "-o", str(out)
    )
    assert code == 0, err
    return out


def with_payload(envelope: dict[str, Any], payload: bytes) -> bytes:
    return json.dumps({**envelope, "payload": base64.b64encode(payload).decode()}).encode()


def test_signed_bundle_verifies(signed: Path, keys: Path, cli: CliRunner) -> None:
    code, out, err = run_cli(
        cli, "sqlite:///:memory:", "verify", str(signed), "--key", str(keys / "signer.pub")
    )
    assert code == 0, out + err
    assert "ok   signature: valid DSSE signature by ed25519" in out
    assert "ok   digest: sha256" in out and "every edge's ends present" in out
    assert out.rstrip().endswith("verified")


def test_flipping_any_payload_byte_fails(signed: Path, keys: Path, cli: CliRunner, tmp_path: Path) -> None:
    envelope = json.loads(signed.read_bytes())
    payload = base64.b64decode(envelope["payload"])
    key = load_public_key(keys / "signer.pub")
    positions = sorted({0, len(payload) - 1, *range(0, len(payload), 37)})
    for i in positions:
        tampered = bytearray(payload)
        tampered[i] ^= 0xFF
        report = verify_document(with_payload(envelope, bytes(tampered)), [key])
        assert not report.ok
        assert report.failures[0].startswith("signature: INVALID"), (i, report.failures)
    # through the CLI: non-zero exit with the reason
    bad = tmp_path / "flipped.json"
    tampered = bytearray(payload)
    tampered[len(payload) // 2] ^= 0x01
    bad.write_bytes(with_payload(envelope, bytes(tampered)))
    code, out, err = run_cli(cli, "sqlite:///:memory:", "verify", str(bad), "--key", str(keys / "signer.pub"))
    assert code == 1
    assert "does not match the payload" in err and "FAIL signature" in out


def test_removing_a_node_fails(
    signed: Path, unsigned: Path, keys: Path, cli: CliRunner, tmp_path: Path
) -> None:
    key = load_public_key(keys / "signer.pub")
    envelope = json.loads(signed.read_bytes())
    doc = json.loads(base64.b64decode(envelope["payload"]))
    victim = next(n for n in doc["bundle"]["nodes"] if n["kind"] == "Commit" and not n["placeholder"])
    doc["bundle"]["nodes"].remove(victim)
    # inside a signed envelope: the signature no longer matches
    report = verify_document(with_payload(envelope, json.dumps(doc).encode()), [key])
    assert report.failures[0].startswith("signature: INVALID")
    # an unsigned bundle whose digest the tamperer recomputed: the structure gives it away
    plain = json.loads(unsigned.read_bytes())
    plain["bundle"]["nodes"] = [n for n in plain["bundle"]["nodes"] if n["id"] != victim["id"]]
    canonical = rfc8785.dumps(plain["bundle"])
    plain["sha256"] = hashlib.sha256(canonical).hexdigest()
    path = tmp_path / "dropped.json"
    path.write_text(json.dumps(plain))
    code, out, err = run_cli(cli, "sqlite:///:memory:", "verify", str(path))
    assert code == 1
    assert "node is not in the bundle" in err and victim["id"] in err
    assert "ok   digest" in out and "FAIL consistency" in out and "summary states" in out


def test_swapped_key_fails(signed: Path, keys: Path, cli: CliRunner, tmp_path: Path) -> None:
    code, out, err = run_cli(
        cli, "sqlite:///:memory:", "verify", str(signed), "--key", str(keys / "other.pub")
    )
    assert code == 1
    other_id = json.loads((keys / "other.pub").read_text())["keyid"]
    signer_id = json.loads((keys / "signer.pub").read_text())["keyid"]
    assert f"signed by key {signer_id}, not by the given key {other_id}" in err
    # a tamperer who re-signs altered content with their own key is caught by the auditor's key
    envelope = json.loads(signed.read_bytes())
    original = base64.b64decode(envelope["payload"])
    payload = original.replace(b'"exit_code":0', b'"exit_code":1')
    assert payload != original
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(sign(payload, envelope["payloadType"], load_signer(keys / "other.key"))))
    code, _, err = run_cli(
        cli, "sqlite:///:memory:", "verify", str(forged), "--key", str(keys / "signer.pub")
    )
    assert code == 1 and "not by the given key" in err


def test_unsigned_bundle_is_reported_unsigned(unsigned: Path, keys: Path, cli: CliRunner) -> None:
    code, out, err = run_cli(cli, "sqlite:///:memory:", "verify", str(unsigned))
    assert code == 2
    assert "UNSIGNED" in out and "is unsigned" in err and "verified" not in out.replace("not verified", "")
    code, out, _ = run_cli(cli, "sqlite:///:memory:", "verify", "--allow-unsigned", str(unsigned))
    assert code == 0 and "UNSIGNED" in out
    code, _, err = run_cli(
        cli, "sqlite:///:memory:", "verify", str(unsigned), "--key", str(keys / "signer.pub")
    )
    assert code == 1 and "not a DSSE envelope" in err


def test_signed_bundle_without_key_is_not_passed(signed: Path, cli: CliRunner) -> None:
    code, _, err = run_cli(cli, "sqlite:///:memory:", "verify", str(signed))
    assert code == 1 and "give --key PUB" in err


def test_edited_unsigned_bundle_fails_on_digest(unsigned: Path, cli: CliRunner, tmp_path: Path) -> None:
    doc = json.loads(unsigned.read_bytes())
    doc["bundle"]["nodes"][0]["props"]["edited"] = True
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(doc, indent=2))
    code, _, err = run_cli(cli, "sqlite:///:memory:", "verify", str(path))
    assert code == 1 and "digest mismatch" in err


def test_pretty_printed_bundle_still_verifies(unsigned: Path, cli: CliRunner, tmp_path: Path) -> None:
    """The digest is over canonical JSON, not file bytes: re-indenting changes nothing an auditor cares about."""
    path = tmp_path / "pretty.json"
    path.write_text(json.dumps(json.loads(unsigned.read_bytes()), indent=4))
    code, out, _ = run_cli(cli, "sqlite:///:memory:", "verify", "--allow-unsigned", str(path))
    assert code == 0 and "ok   digest" in out


def test_a_document_nested_too_deeply_is_not_json_not_a_crash(cli: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_bytes(b"[" * 100_000 + b"]" * 100_000)
    code, out, err = run_cli(cli, "sqlite:///:memory:", "verify", "--allow-unsigned", str(path))
    assert code == 1 and "not JSON" in out + err and "Traceback" not in out + err


def test_an_envelope_with_a_deeply_nested_extra_field_fails_its_format_check(
    cli: CliRunner, tmp_path: Path
) -> None:
    """Parsable, but deep enough to exhaust the recursion of the checks after it (copy, canonical JSON)."""
    path = tmp_path / "deep-envelope.json"
    path.write_text(
        '{"payload": "e30=", "payloadType": "application/json", "signatures": [{"keyid": "k", "sig": '
        '"AA=="}], "x": ' + "[" * 600 + "]" * 600 + "}"
    )
    code, out, err = run_cli(cli, "sqlite:///:memory:", "verify", "--allow-unsigned", str(path))
    assert code == 1 and "nested deeper than 100 levels" in out + err


def test_keygen_protects_the_private_key(keys: Path, cli: CliRunner) -> None:
    assert stat.S_IMODE((keys / "signer.key").stat().st_mode) == 0o600
    code, _, err = run_cli(cli, "sqlite:///:memory:", "keygen", "-o", str(keys / "signer"))
    assert code == 1 and "already exists" in err
    # the public key file names the key id securesystemslib computes for the private key
    assert (
        load_signer(keys / "signer.key").public_key.keyid
        == json.loads((keys / "signer.pub").read_text())["keyid"]
    )


def test_hostile_text_in_a_bundle_is_shown_as_text(unsigned: Path, cli: CliRunner, tmp_path: Path) -> None:
    """Ids inside a bundle under verification come from an untrusted file: no markup, no terminal escapes."""
    doc = json.loads(unsigned.read_bytes())
    hostile = "log:x:[green]ok[/] \x1b[2J"
    doc["bundle"]["edges"].append({"src": hostile, "kind": "IN_TRACE", "dst": hostile, "props": {}})
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(doc))
    code, out, err = run_cli(cli, "sqlite:///:memory:", "verify", str(path))
    assert code == 1
    assert "[green]ok[/]" in out and "\x1b" not in out + err and "\\x1b[2J" in out
