"""Real git repositories for tests, built with the git CLI.

Author, committer and dates are fixed (each commit one minute after the previous one), so the same
script gives the same shas on every machine. ``build_gitops_scenario`` makes the GitOps history the
git collector's tests (and any test that needs a realistic repository) assert against; ``Scenario``
records what a correct ingest must produce, derived while the history is built, not hard-coded.
"""

from __future__ import annotations

import copy
import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass, field, fields
from pathlib import Path

__all__ = [
    "GitRepoBuilder",
    "Scenario",
    "ExpectedAudit",
    "ExpectedReject",
    "build_gitops_scenario",
    "trace_for",
]

BASE_EPOCH = 1_767_225_600  # 2026-01-01T00:00:00Z
DEFAULT_AUTHOR = ("Ada Lovelace", "ada@example.com")
COMMITTER = ("GitOps Bot", "bot@example.com")


class GitRepoBuilder:
    """A small imperative builder over ``git``; every mutating call stages its change."""

    def __init__(self, path: Path | str, branch: str = "main") -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._tick = 0
        self.git("init", "-q", "-b", branch)
        self.git("config", "commit.gpgsign", "false")
        self.git("config", "user.name", COMMITTER[0])
        self.git("config", "user.email", COMMITTER[1])

    def copy_to(self, path: Path | str) -> GitRepoBuilder:
        """An independent copy (working tree and history) at ``path``; the commit clock carries on."""
        shutil.copytree(self.path, path, symlinks=True)
        other = object.__new__(GitRepoBuilder)
        other.path, other._tick = Path(path), self._tick
        return other

    # ------------------------------------------------------------------ plumbing
    def _env(self, author: tuple[str, str], date: int | None) -> dict[str, str]:
        self._tick += 1
        when = f"{date if date is not None else BASE_EPOCH + 60 * self._tick} +0000"
        env = dict(os.environ)
        env.update(
            GIT_AUTHOR_NAME=author[0],
            GIT_AUTHOR_EMAIL=author[1],
            GIT_AUTHOR_DATE=when,
            GIT_COMMITTER_NAME=COMMITTER[0],
            GIT_COMMITTER_EMAIL=COMMITTER[1],
            GIT_COMMITTER_DATE=when,
            GIT_CONFIG_NOSYSTEM="1",
        )
        return env

    def git(self, *args: str, env: dict[str, str] | None = None) -> str:
        """Run git in the repository and return its stdout (stripped); raises on failure."""
        done = subprocess.run(
            ["git", *args], cwd=self.path, env=env, check=True, capture_output=True, text=True
        )
        return done.stdout.strip()

    # ------------------------------------------------------------------ working tree
    def write(self, path: str, text: str) -> None:
        target = self.path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        self.git("add", "--", path)

    def remove(self, path: str) -> None:
        self.git("rm", "-q", "--", path)

    def rename(self, old: str, new: str) -> None:
        (self.path / new).parent.mkdir(parents=True, exist_ok=True)
        self.git("mv", "--", old, new)

    # ------------------------------------------------------------------ history
    def enable_ssh_signing(self) -> None:
        """Sign later ``commit(..., sign=True)`` calls with a fresh SSH key (git's ``gpg.format=ssh``)."""
        key = self.path / ".git" / "signing_key"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", str(key)], check=True
        )
        self.git("config", "gpg.format", "ssh")
        self.git("config", "user.signingkey", str(key))

    def commit(
        self,
        message: str,
        author: tuple[str, str] = DEFAULT_AUTHOR,
        date: int | None = None,
        allow_empty: bool = False,
        sign: bool = False,
    ) -> str:
        args = ["commit", "-q", "--no-verify", "-m", message]
        if allow_empty:
            args.append("--allow-empty")
        if sign:
            args.append("-S")
        self.git(*args, env=self._env(author, date))
        return self.head()

    def branch(self, name: str, start: str | None = None) -> None:
        self.git("branch", name, *([start] if start else []))

    def checkout(self, name: str) -> None:
        self.git("checkout", "-q", name)

    def merge(self, name: str, message: str | None = None, no_ff: bool = True) -> str:
        args = ["merge", "-q", "--no-edit"]
        if no_ff:
            args.append("--no-ff")
        if message:
            args += ["-m", message]
        self.git(*args, name, env=self._env(DEFAULT_AUTHOR, None))
        return self.head()

    def squash_merge(self, name: str, message: str, author: tuple[str, str] = DEFAULT_AUTHOR) -> str:
        """Squash a branch into the current one as a single commit, as a forge's squash-merge does."""
        self.git("merge", "-q", "--squash", name)
        return self.commit(message, author=author)

    def reset_hard(self, ref: str) -> None:
        self.git("reset", "-q", "--hard", ref)

    def head(self) -> str:
        return self.rev_parse("HEAD")

    def rev_parse(self, ref: str) -> str:
        return self.git("rev-parse", ref)

    def rev_list_count(self, ref: str = "HEAD") -> int:
        return int(self.git("rev-list", "--count", ref))

    def rev_list_count_all(self) -> int:
        return int(self.git("rev-list", "--count", "--all"))


def trace_for(label: str) -> str:
    """A deterministic W3C trace id (32 lower-case hex) for a label."""
    return hashlib.md5(label.encode(), usedforsecurity=False).hexdigest()


# ---------------------------------------------------------------------------- the GitOps scenario


@dataclass(frozen=True)
class ExpectedAudit:
    raw: str
    canonical: str
    commit: str
    trace: str
    workloads: frozenset[str]
    extra: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ExpectedReject:
    commit: str
    path: str
    reason_fragment: str  # a word the reason must contain
    raw_fragment: str = ""


@dataclass
class Scenario:
    """What a correct ingest of ``build_gitops_scenario`` yields (ids as lineage.model builds them)."""

    repo: GitRepoBuilder
    branch: str = "main"
    workloads: set[str] = field(default_factory=set)
    deleted_workloads: set[str] = field(default_factory=set)
    declares: dict[str, set[str]] = field(default_factory=dict)  # commit sha -> workload ids
    audits: list[ExpectedAudit] = field(default_factory=list)
    rejects: list[ExpectedReject] = field(default_factory=list)
    squash_sha: str = ""
    squash_pr: int = 12
    merge_sha: str = ""
    merge_pr: int = 7
    mr_sha: str = ""
    mr_pr: int = 21
    renamed: tuple[str, str, str] = ("", "", "")  # sha, old path, new path
    deleted: tuple[str, str] = ("", "")  # sha, path
    side_branch: str = "experiment/canary"  # never merged: only --all reaches it
    side_workloads: set[str] = field(default_factory=set)

    @property
    def path(self) -> Path:
        return self.repo.path

    def copy_to(self, path: Path | str) -> Scenario:
        """The same scenario in a fresh directory: cheaper than building it again for every test."""
        state = copy.deepcopy({f.name: getattr(self, f.name) for f in fields(self) if f.name != "repo"})
        return Scenario(repo=self.repo.copy_to(path), **state)

    @property
    def commit_count(self) -> int:
        return self.repo.rev_list_count(self.branch)

    @property
    def all_commit_count(self) -> int:
        return self.repo.rev_list_count_all()


def _wid(kind: str, name: str, namespace: str = "default") -> str:
    return f"workload:{kind}/{namespace}/{name}"


def deployment(
    name: str,
    image: str,
    *,
    namespace: str | None = None,
    audit: str | None = None,
    pod_audit: str | None = None,
    replicas: int = 2,
) -> str:
    """A Deployment manifest; ``audit`` goes to metadata.annotations, ``pod_audit`` to the pod template."""
    ns = f"\n  namespace: {namespace}" if namespace else ""
    meta_ann = f'\n  annotations:\n    x-gitops-audit-id: "{audit}"' if audit else ""
    pod_ann = f'\n      annotations:\n        x-gitops-audit-id: "{pod_audit}"' if pod_audit else ""
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}{ns}{meta_ann}
  labels:
    app: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}{pod_ann}
    spec:
      containers:
        - name: {name}
          image: {image}
"""


def service(name: str, namespace: str | None = None) -> str:
    ns = f"\n  namespace: {namespace}" if namespace else ""
    return f"""apiVersion: v1
kind: Service
metadata:
  name: {name}{ns}
spec:
  selector:
    app: {name}
  ports:
    - port: 80
"""


def cronjob(name: str, image: str, job_audit: str) -> str:
    return f"""apiVersion: batch/v1
kind: CronJob
metadata:
  name: {name}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        metadata:
          annotations:
            x-gitops-audit-id: "{job_audit}"
        spec:
          restartPolicy: OnFailure
          containers:
            - name: {name}
              image: {image}
"""


def build_gitops_scenario(path: Path | str) -> Scenario:
    """A GitOps repository of 30+ commits on ``main`` with every case the git collector must handle.

    Feature branches merged with --no-ff ("Merge pull request #7 from ..."), a squash-merged PR "(#12)",
    a GitLab-style "See merge request !21", a renamed and a deleted manifest, multi-document YAML, an
    invalid YAML file, an object without a name, an audit id with an unknown key, a malformed audit id
    and an unmerged side branch. Deployments carry the sha of an earlier commit (the one that built the
    image), as GitOps image updaters write it.
    """
    g = GitRepoBuilder(path)
    s = Scenario(repo=g)
    alice = ("Alice Chen", "alice@example.com")
    bob = ("Bob Li", "bob@example.com")

    def declare(sha: str, *wids: str) -> None:
        s.declares.setdefault(sha, set()).update(wids)
        s.workloads.update(wids)

    def audit(sha_built: str, label: str, wids: set[str], extra: str = "") -> str:
        trace = trace_for(label)
        raw = f"git-sha256:{sha_built}|trace:{trace}{extra}"
        extras = tuple(tuple(p.split(":", 1)) for p in extra.split("|") if p)
        s.audits.append(ExpectedAudit(raw, raw, sha_built, trace, frozenset(wids), extras))  # type: ignore[arg-type]
        return raw

    # 1-6: bootstrap, README and app sources (the commits that "build images")
    g.write("README.md", "# gitops\n")
    base = g.commit("Initial commit", author=alice)
    g.write("src/api/main.go", "package main\n")
    build_api = g.commit("api: first handler", author=bob)
    g.write("src/web/index.html", "<h1>hi</h1>\n")
    build_web = g.commit("web: landing page", author=bob)
    g.write("src/worker/run.py", "print('work')\n")
    build_worker = g.commit("worker: first job", author=bob)

    # multi-document manifest: Deployment + Service (+ an empty doc that must be ignored)
    api = _wid("Deployment", "api", "shop")
    api_svc = _wid("Service", "api", "shop")
    api_audit = audit(build_api, "api-v1", {api})
    g.write(
        "apps/api/deploy.yaml",
        deployment("api", "registry.local/api:v1", namespace="shop", audit=api_audit)
        + "---\n"
        + service("api", namespace="shop")
        + "---\n",
    )
    sha = g.commit("deploy api v1", author=alice)
    declare(sha, api, api_svc)

    web = _wid("Deployment", "web")
    web_audit = audit(build_web, "web-v1", {web})
    g.write("apps/web/deploy.yml", deployment("web", "registry.local/web:v1", pod_audit=web_audit))
    sha = g.commit("deploy web v1", author=alice)
    declare(sha, web)

    # a few ordinary commits
    for i in range(4):
        g.write("docs/changelog.md", f"# changes\n\n{i}\n")
        g.commit(f"docs: changelog {i}", author=bob)

    # feature branch merged with a GitHub merge commit: worker CronJob with a jobTemplate audit id
    g.branch("feature/worker")
    g.checkout("feature/worker")
    worker = _wid("CronJob", "nightly-report")
    worker_audit = audit(build_worker, "worker-v1", {worker})
    g.write("apps/worker/cron.yaml", cronjob("nightly-report", "registry.local/worker:v1", worker_audit))
    sha = g.commit("worker: nightly report cronjob", author=bob)
    declare(sha, worker)
    g.write("src/worker/run.py", "print('work v2')\n")
    g.commit("worker: tweak", author=bob)
    g.checkout("main")
    g.write("docs/changelog.md", "# changes\n\nworker coming\n")
    g.commit("docs: note worker", author=alice)
    s.merge_sha = g.merge("feature/worker", "Merge pull request #7 from bob/feature/worker\n\nNightly report")
    declare(s.merge_sha, worker)

    # squash-merged PR (#12): api v2 with a new trace
    g.branch("feature/api-v2")
    g.checkout("feature/api-v2")
    g.write("src/api/main.go", "package main // v2\n")
    g.commit("api: v2 handler", author=bob)
    g.write("src/api/util.go", "package main\n")
    g.commit("api: util", author=bob)
    g.checkout("main")
    build_api_v2 = g.squash_merge("feature/api-v2", "api: v2 handler (#12)", author=bob)
    s.squash_sha = build_api_v2
    g.branch("-D", "feature/api-v2")

    api_audit2 = audit(build_api_v2, "api-v2", {api})
    g.write(
        "apps/api/deploy.yaml",
        deployment("api", "registry.local/api:v2", namespace="shop", audit=api_audit2)
        + "---\n"
        + service("api", namespace="shop"),
    )
    sha = g.commit("deploy api v2", author=alice)
    declare(sha, api, api_svc)

    # an audit id with an unknown key (kept) on a new workload
    cache = _wid("StatefulSet", "cache")
    cache_audit = audit(build_api_v2, "cache-v1", {cache}, extra="|env:prod")
    g.write(
        "apps/cache/statefulset.yaml",
        f"""apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: cache
  annotations:
    x-gitops-audit-id: "{cache_audit}"
spec:
  serviceName: cache
  template:
    metadata:
      labels:
        app: cache
""",
    )
    sha = g.commit("cache: statefulset", author=alice)
    declare(sha, cache)

    # invalid YAML: rejected, the valid manifest in the same commit still lands
    metrics = _wid("DaemonSet", "node-metrics", "monitoring")
    g.write(
        "apps/broken/bad.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [unclosed\n   data: x: y\n",
    )
    g.write(
        "apps/metrics/ds.yaml",
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: node-metrics\n  namespace: monitoring\n",
    )
    sha = g.commit("metrics: daemonset (and a broken file)", author=bob)
    declare(sha, metrics)
    s.rejects.append(ExpectedReject(sha, "apps/broken/bad.yaml", "yaml"))

    # malformed annotation: the workload lands, the audit id is rejected
    jobs = _wid("Job", "migrate")
    bad_raw = "git-sha256:nothex|trace:"
    g.write(
        "apps/jobs/migrate.yaml",
        f"""apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  annotations:
    x-gitops-audit-id: "{bad_raw}"
""",
    )
    sha = g.commit("jobs: migrate", author=bob)
    declare(sha, jobs)
    s.rejects.append(ExpectedReject(sha, "apps/jobs/migrate.yaml", "audit id", bad_raw))

    # an object without metadata.name, next to a good ConfigMap in the same file
    cfg = _wid("ConfigMap", "settings")
    g.write(
        "apps/config/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  namespace: default\ndata:\n  a: b\n"
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: b\n",
    )
    sha = g.commit("config: settings", author=alice)
    declare(sha, cfg)
    s.rejects.append(ExpectedReject(sha, "apps/config/cm.yaml", "name"))

    # rename a manifest (R status): web moves under its own folder
    g.rename("apps/web/deploy.yml", "apps/frontend/web.yaml")
    sha = g.commit("move web manifest", author=alice)
    s.renamed = (sha, "apps/web/deploy.yml", "apps/frontend/web.yaml")
    declare(sha, web)

    # GitLab-style merge request
    g.branch("feature/web-v2")
    g.checkout("feature/web-v2")
    web_audit2 = audit(build_web, "web-v2", {web})
    g.write("apps/frontend/web.yaml", deployment("web", "registry.local/web:v2", pod_audit=web_audit2))
    sha = g.commit("web: v2", author=bob)
    declare(sha, web)
    g.checkout("main")
    s.mr_sha = g.merge(
        "feature/web-v2", "Merge branch 'feature/web-v2' into 'main'\n\nweb v2\n\nSee merge request !21"
    )
    declare(s.mr_sha, web)

    # delete a manifest: the Job's last version is declared deleted
    g.remove("apps/jobs/migrate.yaml")
    sha = g.commit("jobs: migration done", author=alice)
    s.deleted = (sha, "apps/jobs/migrate.yaml")
    declare(sha, jobs)
    s.deleted_workloads.add(jobs)

    # pad with more ordinary commits so main has >= 30
    i = 0
    while g.rev_list_count("main") < 32:
        g.write("docs/runbook.md", f"# runbook\n\nstep {i}\n")
        g.commit(f"docs: runbook step {i}", author=bob)
        i += 1

    # a side branch never merged: only an --all ingest sees it
    g.branch(s.side_branch)
    g.checkout(s.side_branch)
    canary = _wid("Deployment", "web-canary")
    g.write("apps/frontend/canary.yaml", deployment("web-canary", "registry.local/web:v3"))
    sha = g.commit("canary: web v3", author=bob)
    s.side_workloads.add(canary)
    s.declares.setdefault(sha, set()).add(canary)
    g.checkout("main")
    _ = base
    return s
