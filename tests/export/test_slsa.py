"""SLSA provenance of the scenario's run: the fields of in-toto Statement v1 / SLSA Provenance v1, digests
equal to hashlib's, and a DSSE envelope that securesystemslib verifies on its own."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import SSlibKey
from typer.testing import CliRunner

from tests.export.conftest import Scenario, run_cli


def provenance(cli: CliRunner, sc: Scenario, tmp_path: Path, *extra: str) -> Path:
    out = tmp_path / "prov.json"
    code, _, err = run_cli(
        cli, sc.store_url, "export", "--run", sc.run_id, "-f", "slsa", "-o", str(out), *extra
    )
    assert code == 0, err
    return out


def by_name(descriptors: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in descriptors}


def test_statement_fields_and_digests(scenario: Scenario, cli: CliRunner, tmp_path: Path) -> None:
    st = json.loads(provenance(cli, scenario, tmp_path).read_bytes())
    assert st["_type"] == "https://in-toto.io/Statement/v1"
    assert st["predicateType"] == "https://slsa.dev/provenance/v1"
    pred = st["predicate"]
    assert set(pred) == {"buildDefinition", "runDetails"}
    assert pred["buildDefinition"]["buildType"].startswith("https://")
    assert pred["buildDefinition"]["externalParameters"]["command"] == ["sh", "build.sh"]
    assert pred["runDetails"]["builder"]["id"].startswith("https://")
    meta = pred["runDetails"]["metadata"]
    assert meta == {
        "invocationId": scenario.audit_id,
        "startedOn": scenario.started_at,
        "finishedOn": scenario.ended_at,
    }

    subjects = by_name(st["subject"])
    # subject = the files the run wrote with the digest taken at run time (at their last close)
    assert set(subjects) == set(scenario.written)
    for path, digest in scenario.written.items():
        assert subjects[path]["digest"] == {"sha256": digest}
        assert subjects[path]["annotations"]["liubai.digest_source"] == "recorded-during-run"
    # the artifact was written twice: the digest is the one of the later close, never the first draft
    unchanged = next(p for p in scenario.written if p not in (scenario.changed, scenario.deleted))
    assert subjects[unchanged]["digest"]["sha256"] == hashlib.sha256(Path(unchanged).read_bytes()).hexdigest()
    assert subjects[unchanged]["annotations"]["liubai.status"] == "unchanged"
    # changed since the run: keeps the run's digest, reports today's separately
    changed = subjects[scenario.changed]["annotations"]
    assert changed["liubai.status"] == "changed-since-run"
    assert (
        changed["liubai.digest_at_export"] == hashlib.sha256(Path(scenario.changed).read_bytes()).hexdigest()
    )
    assert changed["liubai.digest_at_export"] != subjects[scenario.changed]["digest"]["sha256"]
    # deleted since the run: listed as missing, never re-hashed
    assert subjects[scenario.deleted]["annotations"]["liubai.status"] == "missing"
    # no digest taken at run time: not a subject, listed with the reason and never given today's digest
    unrec = by_name(pred["runDetails"]["byproducts"])[scenario.unrecorded]
    assert "digest" not in unrec
    assert unrec["annotations"]["liubai.status"] == "no-run-time-digest"
    assert unrec["annotations"]["liubai.hash_note"].startswith("the file changed after its writer closed it")
    assert (
        unrec["annotations"]["liubai.digest_at_export"]
        == hashlib.sha256(Path(scenario.unrecorded).read_bytes()).hexdigest()
    )

    deps = pred["buildDefinition"]["resolvedDependencies"]
    git = [d for d in deps if d["uri"].startswith("git+")]
    assert git == [
        {
            "name": "source",
            "uri": f"git+file://{quote(str(scenario.repo))}@{scenario.commit}",
            "digest": {"gitCommit": scenario.commit},
        }
    ]
    files = by_name([d for d in deps if not d["uri"].startswith("git+")])
    for path, digest in {**scenario.read, **scenario.executed}.items():
        assert files[path]["digest"] == {"sha256": digest}
        assert digest == hashlib.sha256(Path(path).read_bytes()).hexdigest()
    assert "digest" not in files[scenario.gone_input]
    assert files[scenario.gone_input]["annotations"]["liubai.status"] == "missing"

    report = by_name(pred["runDetails"]["byproducts"])["liubai.run-report"]["annotations"]
    assert report["liubai.files_by_status"]["missing"] == sorted([scenario.deleted, scenario.gone_input])
    assert report["liubai.files_by_status"]["changed-since-run"] == [scenario.changed]
    assert report["liubai.exit_code"] == 0 and report["liubai.processes"] == 2


@pytest.mark.parametrize("key_type", ["ed25519", "ecdsa-p256"])
def test_signed_statement_verifies_with_securesystemslib_directly(
    scenario: Scenario, cli: CliRunner, tmp_path: Path, key_type: str
) -> None:
    code, _, err = run_cli(cli, scenario.store_url, "keygen", "-t", key_type, "-o", str(tmp_path / "k"))
    assert code == 0, err
    env_doc = json.loads(provenance(cli, scenario, tmp_path, "--sign", str(tmp_path / "k.key")).read_bytes())
    assert env_doc["payloadType"] == "application/vnd.in-toto+json"

    pub = json.loads((tmp_path / "k.pub").read_text())
    key = SSlibKey.from_dict(pub.pop("keyid"), pub)
    envelope = Envelope.from_dict(json.loads(json.dumps(env_doc)))
    accepted = envelope.verify([key], 1)
    assert list(accepted) == [key.keyid]
    statement = json.loads(base64.b64decode(env_doc["payload"]))
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert {s["name"] for s in statement["subject"]} == set(scenario.written)

    # and the same envelope does not verify under a stranger's key
    code, _, _ = run_cli(cli, scenario.store_url, "keygen", "-t", key_type, "-o", str(tmp_path / "other"))
    other = json.loads((tmp_path / "other.pub").read_text())
    stranger = SSlibKey.from_dict(other.pop("keyid"), other)
    with pytest.raises(VerificationError):
        Envelope.from_dict(json.loads(json.dumps(env_doc))).verify([stranger], 1)


def test_provenance_is_only_for_runs(scenario: Scenario, cli: CliRunner) -> None:
    code, out, err = run_cli(
        cli, scenario.store_url, "export", "--node", f"commit:{scenario.commit}", "-f", "slsa"
    )
    assert code == 1 and "is a Commit, not a PipelineRun" in err and out == ""
    code, _, err = run_cli(cli, scenario.store_url, "export", "--run", "run:nohost:1:2", "-f", "slsa")
    assert code == 1 and "no pipeline run 'run:nohost:1:2'" in err


def test_liubai_verify_checks_a_signed_statement(scenario: Scenario, cli: CliRunner, tmp_path: Path) -> None:
    run_cli(cli, scenario.store_url, "keygen", "-t", "ecdsa-p256", "-o", str(tmp_path / "k"))
    signed = provenance(cli, scenario, tmp_path, "--sign", str(tmp_path / "k.key"))
    code, out, err = run_cli(cli, scenario.store_url, "verify", str(signed), "--key", str(tmp_path / "k.pub"))
    assert code == 0, out + err
    assert "in-toto statement" in out and "ecdsa/ecdsa-sha2-nistp256" in out and "3 subjects" in out
    unsigned = tmp_path / "plain.json"
    unsigned.write_bytes(base64.b64decode(json.loads(signed.read_bytes())["payload"]))
    code, out, _ = run_cli(cli, scenario.store_url, "verify", str(unsigned))
    assert code == 2 and "UNSIGNED" in out
