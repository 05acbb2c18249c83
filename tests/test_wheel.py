"""The built wheel works installed: one ``liubai`` package, the web UI and GraphiQL served from package data.

The wheel is built from this checkout and installed into a fresh virtualenv whose only other packages are
the dependencies (made visible through a ``.pth`` line, so no network is needed); it runs from a folder
outside the checkout, so nothing can be imported from the source tree by accident.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
TOP_LEVEL = {"lineage", "collector", "ebpf", "api", "web"}
SOURCES = ["pyproject.toml", "README.md", *sorted(TOP_LEVEL)]


@dataclass
class Installed:
    wheel: Path
    python: Path
    liubai: Path
    cwd: Path

    def run(self, *args: str, code: str | None = None) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.python), "-c", code, *args] if code else [str(self.liubai), *args]
        return subprocess.run(
            cmd,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=120,
            env={"PATH": "/usr/bin:/bin", "HOME": str(self.cwd)},
        )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    tmp = tmp_path_factory.mktemp("wheel")
    # Built from a copy of what the wheel is made of: setuptools keeps a build/ folder beside the sources and
    # would ship modules removed since the last build from there.
    source = tmp / "source"
    source.mkdir()
    for name in SOURCES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, source / name)
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp / "dist"),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = next((tmp / "dist").glob("liubai-*.whl"))
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # the dependencies, from the test environment; its editable liubai is not loaded (a .pth line adds a
    # path, the .pth files inside it are not run)
    (Path(site) / "liubai-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    inst = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert inst.returncode == 0, inst.stderr[-3000:]
    cwd = tmp / "elsewhere"
    cwd.mkdir()
    return Installed(wheel, python, venv / "bin" / "liubai", cwd)


def test_the_wheel_installs_one_liubai_package_and_nothing_at_top_level(installed: Installed) -> None:
    names = zipfile.ZipFile(installed.wheel).namelist()
    tops = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith((".dist-info", ".data"))}
    assert tops == {"liubai"}
    assert not TOP_LEVEL & tops
    # every module in the wheel is one the checkout has (nothing left over from an earlier build)
    shipped = {n.removeprefix("liubai/") for n in names if n.endswith(".py")}
    assert shipped == {str(p.relative_to(ROOT)) for d in TOP_LEVEL for p in (ROOT / d).rglob("*.py")}
    for data in (
        "liubai/web/index.html",
        "liubai/web/graphiql.html",
        "liubai/ebpf/program.c",
        "liubai/api/schema.graphql",
        "liubai/web/vendor/graphiql/graphiql.min.js",
    ):
        assert data in names, data
    where = installed.run(
        code="import liubai.api.app as a, liubai.lineage.model as m; print(a.web_dir(), m.__file__)"
    )
    assert where.returncode == 0, where.stderr
    assert str(ROOT) not in where.stdout and "site-packages/liubai/web" in where.stdout


def test_liubai_version(installed: Installed) -> None:
    out = installed.run("--version")
    assert out.returncode == 0 and re.fullmatch(r"liubai \d+\.\d+\.\d+\S*\n", out.stdout), out


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(installed: Installed) -> Iterator[str]:
    port = _port()
    proc = subprocess.Popen(
        [
            str(installed.liubai),
            "--store",
            f"sqlite:///{installed.cwd / 'w.db'}",
            "serve",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=installed.cwd,
        env={"PATH": "/usr/bin:/bin", "HOME": str(installed.cwd)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(15)


def _assets(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="(/[^"]+)"', page)


def test_the_installed_serve_serves_the_ui_and_graphiql_from_package_data(served: str) -> None:
    ui = httpx.get(f"{served}/")
    assert ui.status_code == 200 and "<title>" in ui.text and "not installed" not in ui.text
    ide = httpx.get(f"{served}/graphql", headers={"Accept": "text/html"})
    assert ide.status_code == 200 and "graphiql" in ide.text.lower()
    assert "cdn" not in ide.text.lower() and "unpkg" not in ide.text.lower()  # everything is served locally
    assets = _assets(ui.text) + _assets(ide.text)
    assert any("graphiql" in a for a in assets) and len(assets) >= 4
    for asset in assets:
        got = httpx.get(f"{served}{asset}")
        assert got.status_code == 200 and got.content, asset
    answer = httpx.post(f"{served}/graphql", json={"query": "{ stats { counts } }"})
    assert answer.status_code == 200 and "errors" not in answer.json()


def test_a_store_that_needs_a_missing_extra_names_the_extra(installed: Installed) -> None:
    hide = "import sys; sys.modules['neo4j'] = None; sys.argv[0] = 'liubai'; from liubai.api.cli.main import main; main()"
    out = installed.run("--store", "neo4j://127.0.0.1:1", "stats", code=hide)
    assert out.returncode != 0
    assert "pip install 'liubai[neo4j]'" in out.stderr and "Traceback" not in out.stderr
    hide_sls = hide.replace("'neo4j'", "'aliyun'")
    out = installed.run(
        "--store",
        f"sqlite:///{installed.cwd / 's.db'}",
        "ingest",
        "sls",
        "--endpoint",
        "127.0.0.1:1",
        "--project",
        "p",
        "--logstore",
        "l",
        code=hide_sls,
    )
    assert out.returncode != 0
    assert "pip install 'liubai[sls]'" in out.stderr and "Traceback" not in out.stderr


def test_the_api_image_start_up_runs_from_the_wheel(installed: Installed) -> None:
    """The api target's ENTRYPOINT and CMD, after compose's and the cluster's 'token init', run from the
    installed wheel with the image's environment: it serves only to the token it printed."""
    from tests.deploy_spec import assert_serves_only_with, dockerfile_stages, running, with_port
    from tests.serving import free_port

    stage = dockerfile_stages()["api"]
    home = installed.cwd / "api-image"
    env = {
        "PATH": f"{installed.liubai.parent}:/usr/bin:/bin",
        "HOME": str(home),
        **stage.env(),
        "LIUBAI_STORE": f"sqlite:///{home / 'data' / 'lineage.db'}",
        "LIUBAI_TOKENS": str(home / "tokens" / "tokens.db"),
    }
    (home / "data").mkdir(parents=True)
    init = subprocess.run(
        [str(installed.liubai), "token", "init"], env=env, capture_output=True, text=True, timeout=60
    )
    assert init.returncode == 0, init.stderr
    port = free_port()
    argv = with_port([str(installed.liubai) if a == "liubai" else a for a in stage.argv], port)
    with running(argv, env, home, f"http://127.0.0.1:{port}") as url:
        assert_serves_only_with(url, init.stdout.strip())


def test_the_agent_image_bcc_link_gives_the_wheel_debian_bcc(installed: Installed) -> None:
    """The agent target links Debian's bcc into the interpreter's site-packages; done the same way in
    this venv, the installed wheel's node agent and tracer find it."""
    from tests._real import missing
    from tests.deploy_spec import dockerfile_stages

    stage = dockerfile_stages()["agent"]
    link = re.search(r"ln -s (\S+)", " ".join(stage.own("RUN")))
    assert link is not None
    debian_bcc = Path(link.group(1))
    if not debian_bcc.is_dir():
        missing("ebpf", f"{debian_bcc} is absent (apt-get install python3-bpfcc)")
    purelib = installed.run(code="import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    target = Path(purelib) / "bcc"
    if not target.exists():
        target.symlink_to(debian_bcc)
    found = installed.run(code="import bcc, liubai.ebpf; print(bcc.__file__)")
    assert found.returncode == 0 and str(debian_bcc) in str(Path(found.stdout.strip()).resolve()), (
        found.stderr
    )
    for args in (stage.argv[1:], ["trace", "--help"]):
        out = installed.run(*args)
        assert out.returncode == 0 and "Usage" in out.stdout, out.stderr
