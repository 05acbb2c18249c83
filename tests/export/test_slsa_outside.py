"""The provenance as an outside verifier sees it: the in-toto attestation library's own Statement and
SLSA Provenance v1 messages, the SLSA v1 JSON schema, RFC 3986 source URIs, and ``verify --check-files``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
from in_toto_attestation.v1.statement import Statement
from typer.testing import CliRunner

from liubai.lineage.urls import git_source_uri
from tests.export.conftest import Scenario, run_cli
from tests.export.test_slsa import provenance

SCHEMA = json.loads((Path(__file__).parent / "schema" / "slsa-provenance-v1.schema.json").read_text())
SHA = "0123456789abcdef0123456789abcdef01234567"


def assert_outside_verifier_accepts(st: dict[str, Any]) -> None:
    """Parse strictly (an unknown field or a wrong type fails) into in-toto's messages and validate."""
    jsonschema.validate(st, SCHEMA, cls=jsonschema.Draft202012Validator)
    pb = json_format.Parse(json.dumps(st), statement_pb2.Statement())
    Statement.copy_from_pb(pb).validate()
    prov = json_format.ParseDict(st["predicate"], provenance_pb2.Provenance())
    for rd in [
        *prov.build_definition.resolved_dependencies,
        *prov.run_details.byproducts,
        *pb.subject,
    ]:
        ResourceDescriptor.copy_from_pb(rd).validate()


def test_statement_passes_in_toto_and_the_slsa_schema(
    scenario: Scenario, cli: CliRunner, tmp_path: Path
) -> None:
    st = json.loads(provenance(cli, scenario, tmp_path).read_bytes())
    assert_outside_verifier_accepts(st)
    source = st["predicate"]["buildDefinition"]["resolvedDependencies"][0]
    assert source["uri"].startswith("git+file:///") and source["uri"].endswith(f"@{scenario.commit}")


def test_the_schema_rejects_what_the_old_export_wrote(
    scenario: Scenario, cli: CliRunner, tmp_path: Path
) -> None:
    """The checks can fail: the old source URIs and a subject without digest are refused."""
    st = json.loads(provenance(cli, scenario, tmp_path).read_bytes())
    for bad_uri in (f"git+/tmp/repo@{SHA}", f"git+unknown-repository@{SHA}"):
        st["predicate"]["buildDefinition"]["resolvedDependencies"][0]["uri"] = bad_uri
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(st, SCHEMA, cls=jsonschema.Draft202012Validator)
    st = json.loads(provenance(cli, scenario, tmp_path).read_bytes())
    del st["subject"][0]["digest"]
    with pytest.raises(ValueError, match="digest"):
        Statement.copy_from_pb(json_format.Parse(json.dumps(st), statement_pb2.Statement())).validate()


@pytest.mark.parametrize(
    "remote, uri",
    [
        ("git@github.com:org/repo.git", f"git+ssh://git@github.com/org/repo.git@{SHA}"),
        ("https://x-access-token:s3cret@github.com/org/repo", f"git+https://github.com/org/repo@{SHA}"),
        ("https://TOKEN@gitlab.example/g/r.git", f"git+https://gitlab.example/g/r.git@{SHA}"),
        ("ssh://git@host:2222/x/y.git", f"git+ssh://git@host:2222/x/y.git@{SHA}"),
        ("/srv/git/my repo", f"git+file:///srv/git/my%20repo@{SHA}"),
        ("file:///srv/git/r.git", f"git+file:///srv/git/r.git@{SHA}"),
        ("relative/dir", None),
        ("unknown-repository", None),
    ],
)
def test_source_uris_are_rfc3986(remote: str, uri: str | None) -> None:
    assert git_source_uri(remote, SHA) == uri
    if uri is not None:
        jsonschema.validate(uri, SCHEMA["$defs"]["ResourceURI"])


def _verify(cli: CliRunner, sc: Scenario, *args: str) -> tuple[int, str]:
    code, out, err = run_cli(cli, sc.store_url, "verify", *args)
    return code, out + err


def test_check_files_reports_matches_mismatches_and_missing(
    scenario: Scenario, cli: CliRunner, tmp_path: Path
) -> None:
    run_cli(cli, scenario.store_url, "keygen", "-o", str(tmp_path / "k"))
    signed = provenance(cli, scenario, tmp_path, "--sign", str(tmp_path / "k.key"))
    key = str(tmp_path / "k.pub")
    # in place: one output was edited after the run, one deleted
    code, out = _verify(cli, scenario, str(signed), "--key", key, "--check-files", str(scenario.work))
    assert code == 1
    assert f"MISMATCH {scenario.changed}" in out
    assert "1 match, 1 mismatch, 1 missing" in out and f"missing {scenario.deleted}" in out

    # a copy of the run's outputs as the run left them: every subject matches
    copy = tmp_path / "delivered"
    shutil.copytree(scenario.work, copy)
    for path in (scenario.changed, scenario.deleted):
        restored = copy / Path(path).relative_to(scenario.work)
        restored.write_bytes(f"{Path(path).name} produced by the run\n".encode() * 3)
    code, out = _verify(cli, scenario, str(signed), "--key", key, "--check-files", str(copy))
    assert code == 0, out
    assert "3 match, 0 mismatch, 0 missing" in out


def test_check_files_needs_a_statement(scenario: Scenario, cli: CliRunner, tmp_path: Path) -> None:
    bundle = tmp_path / "b.json"
    code, _, err = run_cli(
        cli, scenario.store_url, "export", "--commit", scenario.commit, "-f", "json", "-o", str(bundle)
    )
    assert code == 0, err
    code, out = _verify(cli, scenario, str(bundle), "--check-files", str(tmp_path))
    assert code == 1 and "--check-files needs a well-formed provenance statement" in out


def test_liubai_verify_refuses_a_source_uri_that_is_no_uri(
    scenario: Scenario, cli: CliRunner, tmp_path: Path
) -> None:
    st = json.loads(provenance(cli, scenario, tmp_path).read_bytes())
    st["predicate"]["buildDefinition"]["resolvedDependencies"][0]["uri"] = f"git+/tmp/repo@{SHA}"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(st))
    code, out = _verify(cli, scenario, str(bad), "--allow-unsigned")
    assert code == 1 and f"has uri 'git+/tmp/repo@{SHA}', not an RFC 3986 URI" in out
