"""What the deployment files say, read the way Docker and Compose read them, and checked against the CLI.

No Docker engine runs here, so the Dockerfile is parsed (``dockerfile-parse``), the argument lists its
stages and the compose services start with are worked out as Docker would, and every ``liubai`` command
and option in them is looked up in the CLI as it is now. ``start_api`` then runs the API's start-up
commands for real, with whatever ``liubai`` executable a test has.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import typer.main

from liubai.api.cli.main import app

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
SEPARATORS = {";", "&&", "||", "|", "&", "(", ")", "\n", "do", "done", "then", "fi"}


@dataclass
class Stage:
    """One ``FROM ... AS name`` stage, with what it inherits from the stage it is built on."""

    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)
    parent: Stage | None = None

    def own(self, instruction: str) -> list[str]:
        return [value for name, value in self.instructions if name == instruction]

    def last(self, instruction: str) -> str | None:
        """The value in force at the end of the stage (its own, else its parent's)."""
        mine = self.own(instruction)
        if mine:
            return mine[-1]
        return self.parent.last(instruction) if self.parent else None

    def exec_form(self, instruction: str) -> list[str]:
        value = self.last(instruction)
        if value is None:
            return []
        parsed = json.loads(value)
        assert isinstance(parsed, list), f"{self.name}: {instruction} is not in exec form: {value}"
        return [str(v) for v in parsed]

    @property
    def argv(self) -> list[str]:
        """What a container of this stage runs with no arguments: ENTRYPOINT then CMD."""
        return self.exec_form("ENTRYPOINT") + self.exec_form("CMD")

    def env(self) -> dict[str, str]:
        inherited = self.parent.env() if self.parent else {}
        for value in self.own("ENV"):
            for pair in shlex.split(value):
                key, _, val = pair.partition("=")
                inherited[key] = val
        return inherited


def dockerfile_stages(path: Path = DOCKERFILE) -> dict[str, Stage]:
    from dockerfile_parse import DockerfileParser

    parser = DockerfileParser(str(path))
    args = {}
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for item in parser.structure:
        instruction, value = item["instruction"], item["value"]
        if instruction == "ARG" and current is None:
            key, _, default = value.partition("=")
            args[key] = default
        elif instruction == "FROM":
            words = value.split()
            base = words[0]
            for key, default in args.items():
                base = base.replace("${" + key + "}", default)
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else f"stage{len(stages)}"
            current = Stage(name, base, parent=stages.get(base))
            stages[name] = current
        elif current is not None and instruction != "COMMENT":
            current.instructions.append((instruction, value))
    return stages


def service_argv(service: dict[str, Any], stages: dict[str, Stage]) -> list[str]:
    """The argument list a compose service's container starts with: its ``entrypoint`` (else its image's
    ENTRYPOINT) followed by its ``command`` (else its image's CMD)."""
    stage = stages[service_target(service, stages)] if "build" in service or _built_image(service) else None
    entrypoint = service.get("entrypoint")
    command = service.get("command")
    entry = [*entrypoint] if entrypoint is not None else (stage.exec_form("ENTRYPOINT") if stage else [])
    if command is None:
        cmd = stage.exec_form("CMD") if stage and entrypoint is None else []
    else:
        cmd = list(command) if isinstance(command, list) else shlex.split(command)
    return [_unescape(str(a)) for a in [*entry, *cmd]]


def _built_image(service: dict[str, Any]) -> bool:
    return str(service.get("image", "")).startswith("liubai-")


def service_target(service: dict[str, Any], stages: dict[str, Stage]) -> str:
    """The Dockerfile target a service's image is built from (named by ``build`` or, for a service that
    reuses another's image, by the image name ``liubai-<target>``)."""
    build = service.get("build")
    if isinstance(build, dict) and "target" in build:
        return str(build["target"])
    image = str(service.get("image", ""))
    return image.split(":", 1)[0].removeprefix("liubai-")


def _unescape(text: str) -> str:
    return text.replace("$$", "$")


def scripts(argv: Sequence[str]) -> list[str]:
    """The shell scripts in an argument list (``sh -c SCRIPT``), else the list itself as one command."""
    if list(argv[:2]) == ["sh", "-c"]:
        return [argv[2]]
    return [shlex.join(argv)]


def invocations(script: str) -> Iterator[list[str]]:
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


def is_group(cmd: Any) -> bool:
    """typer ships its own click, so duck-type rather than isinstance against the click package."""
    return isinstance(getattr(cmd, "commands", None), dict)


def _is_option(param: Any) -> bool:
    return getattr(param, "param_type_name", "") == "option"


def check_cli(args: Sequence[str]) -> None:
    """Walk the click tree: each subcommand must exist and each option must belong to its command."""
    cmd: Any = typer.main.get_command(app)
    ctx_names = ["liubai"]
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return
        if arg == "--help":  # click adds it to every command
            return
        if arg.startswith("-"):
            name = arg.split("=", 1)[0]
            opt = next((p for p in cmd.params if _is_option(p) and name in p.opts + p.secondary_opts), None)
            assert opt is not None, f"{' '.join(ctx_names)} has no option {name}"
            if not opt.is_flag and "=" not in arg:
                i += 1  # its value
        elif is_group(cmd):
            sub = cmd.commands.get(arg)
            assert sub is not None, f"{' '.join(ctx_names)} has no command {arg!r}"
            cmd = sub
            ctx_names.append(arg)
        i += 1
    assert not is_group(cmd), f"'{' '.join(ctx_names)}' names a group, not a command"


def walk_params(cmd: Any) -> Iterator[Any]:
    yield from cmd.params
    if is_group(cmd):
        for sub in cmd.commands.values():
            yield from walk_params(sub)


def pod_containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The init containers and containers of a workload's Pod template."""
    spec = doc["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def check_workload_commands(docs: Sequence[dict[str, Any]]) -> None:
    """Every container of every Deployment and DaemonSet in ``docs`` runs an image ``liubai-<target>`` of
    a Dockerfile target (tagged, not ``latest``) whose ENTRYPOINT is ``liubai``, with arguments the CLI
    has, and sets only the ``LIUBAI_*`` variables liubai reads."""
    from liubai.lineage.config import Settings

    stages = dockerfile_stages()
    params = list(walk_params(typer.main.get_command(app)))
    envvars = {e for p in params for e in ([p.envvar] if isinstance(p.envvar, str) else p.envvar or [])}
    envvars |= {f"LIUBAI_{name.upper()}" for name in Settings.model_fields} | {"LIUBAI_ALLOWED_HOSTS"}
    workloads = [d for d in docs if d["kind"] in {"Deployment", "DaemonSet"}]
    assert workloads, "no workloads"
    for doc in workloads:
        for c in pod_containers(doc):
            name, _, tag = c["image"].rpartition("/")[2].partition(":")
            target = name.removeprefix("liubai-")
            assert target in stages and tag and tag != "latest", c["image"]
            assert stages[target].exec_form("ENTRYPOINT") == ["liubai"] and "command" not in c
            check_cli(c["args"])
            for env in c.get("env", []):
                if env["name"].startswith("LIUBAI_"):
                    assert env["name"] in envvars, f"{c['name']}: liubai reads no {env['name']}"


def with_port(argv: Sequence[str], port: int) -> list[str]:
    """``argv`` listening on ``port`` instead of the one it names (tests share the machine)."""
    out = list(argv)
    i = out.index("--port")
    out[i + 1] = str(port)
    return out


@contextmanager
def running(argv: Sequence[str], env: dict[str, str], cwd: Path, url: str) -> Iterator[str]:
    """Run ``argv`` until ``url``/healthz answers 200; yield ``url``; stop it."""
    proc = subprocess.Popen(list(argv), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                out = proc.stdout.read().decode() if proc.stdout else ""
                raise AssertionError(f"{shlex.join(argv)} exited {proc.returncode}: {out[-2000:]}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"{shlex.join(argv)} did not answer on {url}"
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(15)


def assert_serves_only_with(url: str, token: str) -> None:
    """The API refuses a request without the token and answers one with it."""
    query = {"query": "{ stats { counts } }"}
    refused = httpx.post(f"{url}/graphql", json=query)
    assert refused.status_code == 401, refused.text
    answered = httpx.post(f"{url}/graphql", json=query, headers={"Authorization": f"Bearer {token}"})
    assert answered.status_code == 200 and "errors" not in answered.json(), answered.text
