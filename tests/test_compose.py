"""docker-compose.yml cannot run here (no Docker engine), so check what can be checked without one:
it parses, its services are wired as documented, and every liubai command, option and LIUBAI_*
variable it uses exists in the CLI as it is now."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from liubai.api.cli.main import app
from liubai.lineage.config import Settings
from liubai.lineage.store.registry import known_schemes

COMPOSE = Path(__file__).resolve().parent.parent / "docker-compose.yml"
SEPARATORS = {";", "&&", "||", "|", "&", "(", ")", "\n", "do", "done", "then", "fi"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def _unescape(text: str) -> str:
    return text.replace("$$", "$")


def _script(service: dict[str, Any]) -> str:
    cmd = service.get("command")
    if isinstance(cmd, list):
        if cmd[:2] == ["sh", "-c"]:
            return _unescape(str(cmd[2]))
        return shlex.join(_unescape(str(c)) for c in cmd)
    return _unescape(str(cmd or ""))


def _invocations(script: str) -> Iterator[list[str]]:
    """The argument lists of every ``liubai`` call in a shell script."""
    lexer = shlex.shlex(script, posix=True, punctuation_chars=";&|()")
    lexer.whitespace_split = True
    tokens = list(lexer)
    for i, tok in enumerate(tokens):
        if tok == "liubai":
            args = []
            for t in tokens[i + 1 :]:
                if t in SEPARATORS:
                    break
                args.append(t)
            yield args


def _is_group(cmd: Any) -> bool:
    """typer ships its own click, so duck-type rather than isinstance against the click package."""
    return isinstance(getattr(cmd, "commands", None), dict)


def _is_option(param: Any) -> bool:
    return getattr(param, "param_type_name", "") == "option"


def _check_cli(args: list[str]) -> None:
    """Walk the click tree: each subcommand must exist and each option must belong to its command."""
    cmd: Any = typer.main.get_command(app)
    ctx_names = ["liubai"]
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return
        if arg.startswith("-"):
            name = arg.split("=", 1)[0]
            opt = next((p for p in cmd.params if _is_option(p) and name in p.opts + p.secondary_opts), None)
            assert opt is not None, f"{' '.join(ctx_names)} has no option {name}"
            if not opt.is_flag and "=" not in arg:
                i += 1  # its value
        elif _is_group(cmd):
            sub = cmd.commands.get(arg)
            assert sub is not None, f"{' '.join(ctx_names)} has no command {arg!r}"
            cmd = sub
            ctx_names.append(arg)
        i += 1
    assert not _is_group(cmd), f"'{' '.join(ctx_names)}' names a group, not a command"


def test_compose_parses_with_the_documented_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) >= {"neo4j", "api", "git", "ebpf-agent"}
    neo = services["neo4j"]
    assert neo["image"] == "neo4j:5-community"
    assert any(str(v).endswith(":/data") for v in neo["volumes"]) and "neo4j-data" in compose["volumes"]
    assert neo["healthcheck"]["test"]
    for name in ("api", "git", "ebpf-agent"):
        assert services[name]["depends_on"]["neo4j"]["condition"] == "service_healthy"
    agent = services["ebpf-agent"]
    assert agent["privileged"] is True and agent["pid"] == "host"
    assert any(str(v).startswith("/sys/kernel/tracing:") for v in agent["volumes"])


def test_published_ports_stay_on_loopback(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_every_liubai_command_and_option_exists(compose: dict[str, Any]) -> None:
    calls = [args for s in compose["services"].values() for args in _invocations(_script(s))]
    assert {a[0] for a in calls} >= {"serve", "ingest", "trace"}
    for args in calls:
        _check_cli(args)


def test_store_url_and_variables_are_ones_liubai_reads(compose: dict[str, Any]) -> None:
    params = [p for p in _walk(typer.main.get_command(app))]
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


def _walk(cmd: Any) -> Iterator[Any]:
    yield from cmd.params
    if _is_group(cmd):
        for sub in cmd.commands.values():
            yield from _walk(sub)


def test_checker_rejects_what_does_not_exist() -> None:
    """The CLI walk above would catch a renamed option or command."""
    with pytest.raises(AssertionError, match="no option"):
        _check_cli(["serve", "--no-such-option"])
    with pytest.raises(AssertionError, match="no command"):
        _check_cli(["ingest", "nothing"])
    assert list(_invocations('a && liubai ingest git "$R" --all; sleep 1')) == [
        ["ingest", "git", "$R", "--all"]
    ]
