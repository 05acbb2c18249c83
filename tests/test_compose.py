"""docker-compose.yml cannot run here (no Docker engine), so check what can be checked without one:
it parses, its services are wired as documented, its images are targets of the Dockerfile, every liubai
command, option and LIUBAI_* variable it uses exists in the CLI as it is now, and the API's start-up (the
token initialiser, then the server) really starts and serves only to the token it printed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from liubai.api.cli.main import app
from liubai.lineage.config import Settings
from liubai.lineage.store.registry import known_schemes
from tests.deploy_spec import (
    ROOT,
    Stage,
    assert_serves_only_with,
    check_cli,
    dockerfile_stages,
    invocations,
    running,
    scripts,
    service_argv,
    service_target,
    walk_params,
    with_port,
)
from tests.serving import free_port

COMPOSE = ROOT / "docker-compose.yml"
LIUBAI_SERVICES = ("api-init", "api", "git", "ebpf-agent")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def stages() -> dict[str, Stage]:
    return dockerfile_stages()


def _argv(compose: dict[str, Any], stages: dict[str, Stage], name: str) -> list[str]:
    return service_argv(compose["services"][name], stages)


def test_compose_parses_with_the_documented_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) >= {"neo4j", *LIUBAI_SERVICES}
    neo = services["neo4j"]
    assert neo["image"] == "neo4j:5-community"
    assert any(str(v).endswith(":/data") for v in neo["volumes"]) and "neo4j-data" in compose["volumes"]
    assert neo["healthcheck"]["test"]
    for name in ("api", "git", "ebpf-agent"):
        assert services[name]["depends_on"]["neo4j"]["condition"] == "service_healthy"
    agent = services["ebpf-agent"]
    assert agent["privileged"] is True and agent["pid"] == "host"
    assert any(str(v).startswith("/sys/kernel/tracing:") for v in agent["volumes"])


def test_liubai_services_run_images_built_from_dockerfile_targets(
    compose: dict[str, Any], stages: dict[str, Stage]
) -> None:
    images: dict[str, str] = {}
    for name in LIUBAI_SERVICES:
        service = compose["services"][name]
        target = service_target(service, stages)
        assert target in stages, f"{name}: the Dockerfile has no target {target!r}"
        assert service.get("build", {}).get("context", ".") == ".", name
        # one image name, one target: a service reusing an image gets what the other built
        assert images.setdefault(service["image"], target) == target, f"{name}: {service['image']}"
        assert not str(service["image"]).endswith(":latest") and ":" in service["image"], name
    assert {"api", "git", "agent"} <= set(images.values())


def test_nothing_is_installed_when_a_container_starts(
    compose: dict[str, Any], stages: dict[str, Stage]
) -> None:
    for name in LIUBAI_SERVICES:
        service = compose["services"][name]
        script = " ".join(_argv(compose, stages, name))
        assert not re.search(r"\b(apt-get|apt|pip|pip3)\b", script), f"{name} installs at start: {script}"
        assert not any(str(v).split(":")[0] == "." for v in service.get("volumes", [])), (
            f"{name} mounts the checkout: the image carries what it runs"
        )


def test_the_api_authenticates_and_keeps_its_tokens_on_a_volume(
    compose: dict[str, Any], stages: dict[str, Stage]
) -> None:
    services = compose["services"]
    api = _argv(compose, stages, "api")
    init = _argv(compose, stages, "api-init")
    assert api[:2] == ["liubai", "serve"] and "--auth" in api
    assert api[api.index("--host") + 1] == "0.0.0.0"  # reachable through the published port
    assert init[:3] == ["liubai", "token", "init"]
    assert services["api"]["depends_on"]["api-init"]["condition"] == "service_completed_successfully"
    tokens_dir = str(Path(stages["api"].env()["LIUBAI_TOKENS"]).parent)
    for name in ("api", "api-init"):
        volumes = {str(v).split(":")[1]: str(v).split(":")[0] for v in services[name]["volumes"]}
        assert volumes.get(tokens_dir) == "liubai-tokens", f"{name} keeps no tokens in the volume"
    assert "liubai-tokens" in compose["volumes"]


def test_published_ports_stay_on_loopback(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_every_liubai_command_and_option_exists(compose: dict[str, Any], stages: dict[str, Stage]) -> None:
    calls = [
        args
        for name in compose["services"]
        if name != "neo4j"
        for script in scripts(_argv(compose, stages, name))
        for args in invocations(script)
    ]
    assert {a[0] for a in calls} >= {"serve", "token", "ingest", "trace"}
    for args in calls:
        check_cli(args)


def test_store_url_and_variables_are_ones_liubai_reads(compose: dict[str, Any]) -> None:
    params = list(walk_params(typer.main.get_command(app)))
    envvars = {e for p in params for e in ([p.envvar] if isinstance(p.envvar, str) else p.envvar or [])}
    settings = {f"LIUBAI_{name.upper()}" for name in Settings.model_fields}
    for name, service in compose["services"].items():
        env = service.get("environment") or {}
        for key in env:
            if key.startswith("LIUBAI_"):
                assert key in envvars | settings, f"{name}: liubai reads no {key}"
        if "LIUBAI_STORE" in env:
            scheme = str(env["LIUBAI_STORE"]).split("://", 1)[0]
            assert scheme in known_schemes()


def test_the_api_start_up_prints_one_admin_token_and_serves_only_with_it(
    compose: dict[str, Any], stages: dict[str, Stage], tmp_path: Path
) -> None:
    """api-init then api, as compose starts them (twice, as after a restart), with this checkout's CLI
    and an SQLite store in place of Neo4j."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "liubai"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m liubai.api.cli.main "$@"\n')
    shim.chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        **stages["api"].env(),
        "LIUBAI_TOKENS": str(tmp_path / "tokens" / "tokens.db"),
        "LIUBAI_STORE": f"sqlite:///{tmp_path / 'lineage.db'}",
    }
    init = _argv(compose, stages, "api-init")
    first = subprocess.run(init, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    token = first.stdout.strip()
    assert re.fullmatch(r"lb_[0-9a-f]{12}_\S+", token) and "admin token" in first.stderr
    again = subprocess.run(init, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and again.stdout == "" and "already exists" in again.stderr
    port = free_port()
    api = with_port(_argv(compose, stages, "api"), port)
    with running(api, env, tmp_path, f"http://127.0.0.1:{port}") as url:
        assert_serves_only_with(url, token)


def test_checker_rejects_what_does_not_exist() -> None:
    """The CLI walk above would catch a renamed option or command."""
    with pytest.raises(AssertionError, match="no option"):
        check_cli(["serve", "--no-such-option"])
    with pytest.raises(AssertionError, match="no command"):
        check_cli(["ingest", "nothing"])
    assert list(invocations('a && liubai ingest git "$R" --all; sleep 1')) == [
        ["ingest", "git", "$R", "--all"]
    ]
