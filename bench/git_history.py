"""Benchmark: a cold `ingest git` of a history shaped like a large real GitOps repository, beside
`git log` and the floor (git log + YAML parse + store, each measured alone) in the same run.

The repository: >= 15,000 commits on main, >= 3,000 of them merges of feature commits, one commit in
50 signed (SSH), >= 300 objects at HEAD (apps with a Deployment, a Service and a ConfigMap each), and
kustomize overlays (a base and three environments per overlaid app) deployed by Flux Kustomizations
with targetNamespace. Built with `git fast-import` in segments, each ended by a commit `git commit-tree
-S` signs.

Measured (wall seconds, peak RSS of the ingest process (VmHWM) and, separately, the largest of its git
children (``ru_maxrss``, which Linux carries over fork and exec: an upper bound)):
* `git log --raw --no-renames main` (what the collector streams), best of 3;
* the floor: that git log + PyYAML safe_load of every distinct manifest document the history adds or
  changes + the SQLite store writing the same facts joined beforehand, each alone;
* `ingest git` cold, in a fresh process (targets: <= 60 s, <= 200 MB RSS, and a rate >= 50% of the
  floor's);
* `ingest git --render` cold, with the render count, cache hits and render seconds shown apart;
  again into a fresh store over the same on-disk render cache (every render a cache hit); and an
  incremental `--render` run after one commit that edits a base (the render state rebuilt from the
  tree and the store, the overlays that read the base rendered again);
* `ingest git --verify-signatures`: what opting in to signature checks costs.

Run: .venv/bin/python bench/git_history.py [--commits 15000] [--apps 100] [--overlaid 10]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from git_ingest import manifest_blobs  # the same manifests ingest reads (bench/ runs as the script dir)

TARGET_S = 60.0
TARGET_RSS_MB = 200.0
TARGET_FLOOR_RATIO = 0.5
SIGN_EVERY = 50
MERGE_EVERY = 4  # every 4th main commit is a merge (of one feature commit): >= 3,000 in 15,000
ENVS = ("dev", "staging", "prod")


def _deploy(app: str, version: int, ns: str | None) -> str:
    namespace = f"\n  namespace: {ns}" if ns else ""
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {app}{namespace}
  labels: {{app: {app}}}
spec:
  replicas: {1 + version % 3}
  selector:
    matchLabels: {{app: {app}}}
  template:
    metadata:
      labels: {{app: {app}}}
    spec:
      containers:
        - name: {app}
          image: registry.local/{app}:v{version}
          resources: {{requests: {{cpu: 10m, memory: 32Mi}}}}
"""


def _service(app: str, ns: str | None) -> str:
    namespace = f"\n  namespace: {ns}" if ns else ""
    return (
        f"apiVersion: v1\nkind: Service\nmetadata:\n  name: {app}{namespace}\n"
        f"spec:\n  selector: {{app: {app}}}\n  ports: [{{port: 80}}]\n"
    )


def _config(app: str, version: int, ns: str) -> str:
    return (
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {app}-config\n  namespace: {ns}\n"
        f"data:\n  LOG_LEVEL: info\n  FEATURE_{version % 7}: 'on'\n"
    )


def _flux(app: str, env: str) -> str:
    return f"""apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: {app}-{env}
  namespace: flux-system
spec:
  interval: 10m
  path: ./overlays/{app}/{env}
  prune: true
  targetNamespace: {app}-{env}
  sourceRef: {{kind: GitRepository, name: flux-system}}
"""


def _data(text: str) -> bytes:
    raw = text.encode()
    return b"data %d\n" % len(raw) + raw + b"\n"


class _History:
    """The generated history's state and its fast-import stream, one segment at a time."""

    def __init__(self, path: Path, apps: int, overlaid: int, seed: int) -> None:
        self.path, self.apps, self.overlaid = path, apps, overlaid
        self.rng = random.Random(seed)
        self.versions = [0] * apps
        self.when = 1_700_000_000
        self.mark = 0
        self.out: list[bytes] = []

    def _commit(self, ref: str, msg: str, files: dict[str, str], parent: str, merge: str = "") -> str:
        self.mark += 1
        self.when += 41
        a = self.mark % 17
        self.out.append(f"commit {ref}\nmark :{self.mark}\n".encode())
        self.out.append(f"author Dev {a} <dev{a}@example.com> {self.when} +0000\n".encode())
        self.out.append(f"committer GitOps Bot <bot@example.com> {self.when} +0000\n".encode())
        self.out.append(_data(msg))
        if parent:
            self.out.append(f"from {parent}\n".encode())
        if merge:
            self.out.append(f"merge {merge}\n".encode())
        for p, text in files.items():
            self.out.append(f"M 100644 inline {p}\n".encode() + _data(text))
        return f":{self.mark}"

    def initial(self) -> dict[str, str]:
        files: dict[str, str] = {}
        for i in range(self.apps):
            app, ns = f"app-{i:03d}", f"team-{i % 8}"
            if i < self.overlaid:
                files[f"overlays/{app}/base/kustomization.yaml"] = "resources: [deploy.yaml, svc.yaml]\n"
                files[f"overlays/{app}/base/deploy.yaml"] = _deploy(app, 0, None)
                files[f"overlays/{app}/base/svc.yaml"] = _service(app, None)
                for env in ENVS:
                    files[f"overlays/{app}/{env}/kustomization.yaml"] = (
                        f"resources: [../base]\nnamePrefix: {env}-\nlabels: [{{pairs: {{env: {env}}}}}]\n"
                    )
                    files[f"clusters/main/{app}-{env}.yaml"] = _flux(app, env)
            else:
                files[f"apps/{app}/deploy.yaml"] = _deploy(app, 0, ns)
                files[f"apps/{app}/svc.yaml"] = _service(app, ns)
            files[f"apps/{app}/config.yaml"] = _config(app, 0, ns)
        files["README.md"] = "# platform\n"
        files[".github/workflows/ci.yml"] = "on: push\njobs: {lint: {runs-on: ubuntu-latest}}\n"
        files["charts/tools/Chart.yaml"] = "apiVersion: v2\nname: tools\nversion: 0.1.0\n"
        return files

    def change(self) -> dict[str, str]:
        roll = self.rng.random()
        if roll < 0.15:
            return {f"docs/notes-{self.rng.randrange(40)}.md": f"note {self.mark}\n"}
        i = self.rng.randrange(self.apps)
        app, ns = f"app-{i:03d}", f"team-{i % 8}"
        self.versions[i] += 1
        v = self.versions[i]
        if i < self.overlaid:
            if roll < 0.9:  # most overlaid-app changes are config; a few touch the rendered base
                return {f"apps/{app}/config.yaml": _config(app, v, ns)}
            return {f"overlays/{app}/base/deploy.yaml": _deploy(app, v, None)}
        if roll < 0.6:
            return {f"apps/{app}/deploy.yaml": _deploy(app, v, ns)}
        return {f"apps/{app}/config.yaml": _config(app, v, ns)}

    def flush(self) -> str:
        """Run the pending stream through fast-import; main's new tip."""
        self.out.append(b"done\n")
        subprocess.run(
            ["git", "fast-import", "--quiet", "--done", "--force"],
            cwd=self.path,
            input=b"".join(self.out),
            check=True,
        )
        self.out = []
        return _git(self.path, "rev-parse", "refs/heads/main")


def _git(path: Path, *args: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(
        ["git", *args], cwd=path, capture_output=True, text=True, check=True, env=env
    ).stdout.strip()


def generate(path: Path, commits: int, apps: int, overlaid: int, seed: int = 11) -> dict[str, int]:
    """Exactly ``commits`` commits on main; returns counts of merges and signed commits."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    key = path.parent / "signing-key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bench", "-f", str(key)], check=True)
    who = {"NAME": "Release Bot", "EMAIL": "release@example.com"}
    sign_env = {**os.environ, **{f"GIT_{r}_{k}": v for r in ("AUTHOR", "COMMITTER") for k, v in who.items()}}
    h = _History(path, apps, overlaid, seed)
    main = h._commit("refs/heads/main", "initial platform", h.initial(), "")
    made, merges, signed = 1, 0, 0
    while made < commits:
        segment = 0
        while made < commits and segment < SIGN_EVERY - 1:
            if made % MERGE_EVERY == 0 and commits - made >= 2:
                side = h._commit("refs/heads/feature", "feature work", h.change(), main)
                main = h._commit(
                    "refs/heads/main", f"Merge pull request #{made} from dev/feature", {}, main, side
                )
                made, merges, segment = made + 2, merges + 1, segment + 2
                continue
            main = h._commit("refs/heads/main", f"deploy change {made} (#{made + 10000})", h.change(), main)
            made, segment = made + 1, segment + 1
        main = h.flush()
        if made < commits:
            tree = _git(path, "rev-parse", f"{main}^{{tree}}")
            main = _git(
                path,
                *("-c", "gpg.format=ssh", "-c", f"user.signingkey={key}"),
                *("commit-tree", tree, "-p", main, "-S", "-m", f"release {made}"),
                env=sign_env,
            )
            _git(path, "update-ref", "refs/heads/main", main)
            made, signed = made + 1, signed + 1
    _git(path, "checkout", "-q", "main")
    return {"merges": merges, "signed": signed}


def _declared_walk(db: Path, sha: str) -> float:
    """What rebuilding the render state from the store costs: the declared view at ``sha``."""
    from liubai.lineage.declared import declared_at
    from liubai.lineage.store import open_store

    store = open_store(f"sqlite:///{db}")
    try:
        start = time.perf_counter()
        declared_at(store, sha)
        return time.perf_counter() - start
    finally:
        store.close()


def _edit_a_base(repo: Path) -> None:
    """One commit that edits only the base of the first overlaid app: a ConfigMap joins it."""
    base = repo / "overlays" / "app-000" / "base"
    (base / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-000-extra\ndata: {a: b}\n"
    )
    (base / "kustomization.yaml").write_text("resources: [deploy.yaml, svc.yaml, cm.yaml]\n")
    _git(repo, "add", "-A")
    _git(
        repo, "-c", "user.name=Dev", "-c", "user.email=dev@example.com", "commit", "-qm", "base: extra config"
    )


def _git_log(path: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        [
            "git",
            "log",
            "--raw",
            "--no-renames",
            "-z",
            "--topo-order",
            "--reverse",
            "--root",
            "--diff-merges=first-parent",
            "main",
        ],
        cwd=path,
        capture_output=True,
        check=True,
    )
    return time.perf_counter() - start


def _parse_floor(path: Path) -> tuple[float, int]:
    """PyYAML (libyaml) safe_load of every distinct manifest document the history adds or changes."""
    import yaml

    from liubai.collector.manifests.parse import split

    texts = manifest_blobs(path)
    pieces = list(dict.fromkeys(p for t in texts for p in split(t)))
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    start = time.perf_counter()
    for piece in pieces:
        list(yaml.load_all(piece, Loader=loader))
    return time.perf_counter() - start, len(pieces)


def _store_floor(path: Path, db: Path) -> float:
    """The SQLite store writing this history's facts, joined beforehand in batches of 2,000 records."""
    from liubai.collector.git import GitCollector
    from liubai.collector.ingest import join_batches
    from liubai.lineage.store import open_store

    with GitCollector(str(path)) as collector:
        batches = [part.batch for part in join_batches(collector.items(collector.plan({})), 2000)]
    store = open_store(f"sqlite:///{db}")
    try:
        start = time.perf_counter()
        for b in batches:
            store.upsert(b)
        return time.perf_counter() - start
    finally:
        store.close()


def _measure(path: Path, db: Path, *flags: str) -> dict[str, object]:
    """A cold in-process ingest in a fresh interpreter (this file's --child mode)."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(path), str(db), *flags],
        capture_output=True,
        text=True,
        check=True,
        env={
            **os.environ,
            "LIUBAI_GIT_CACHE": str(db.parent / "cache"),
            "LIUBAI_RENDER_CACHE": str(db.parent / "renders"),  # empty at the first --render arm
        },
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _peak_rss_mb() -> float:
    """This process's own peak RSS. Linux keeps ``ru_maxrss`` across fork and exec, so in a child it is
    at least the parent's peak (here: the floors measured in the bench process); VmHWM is the peak of
    this process's own memory map."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(path: str, db: str, flags: list[str]) -> None:
    from liubai.collector.git import GitCollector, ingest_git
    from liubai.lineage.store import open_store

    store = open_store(f"sqlite:///{db}")
    start = time.perf_counter()
    with GitCollector(
        path, render="--render" in flags, verify_signatures="--verify-signatures" in flags
    ) as collector:
        summary = ingest_git(store, collector)
        stats = collector.render_stats
        state_from = collector.render_state_from
    wall = time.perf_counter() - start
    store.close()
    own = _peak_rss_mb()
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "wall_s": round(wall, 3),
                "rss_mb": round(own, 1),
                "children_rss_mb": round(kids, 1),
                "commits": summary.commits,
                "workloads": summary.workloads,
                "rejected": summary.rejected,
                "skipped": summary.count("SkippedRecord"),
                "notices": len(summary.notices),
                "renders": stats.renders if stats else 0,
                "render_cache_hits": stats.cache_hits if stats else 0,
                "render_disk_hits": stats.disk_hits if stats else 0,
                "render_s": round(stats.seconds, 3) if stats else 0.0,
                "render_state_from": state_from,
            }
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--commits", type=int, default=15_000)
    parser.add_argument("--apps", type=int, default=100)
    parser.add_argument("--overlaid", type=int, default=10)
    parser.add_argument("--no-render", action="store_true", help="skip the --render arm")
    parser.add_argument("--no-verify", action="store_true", help="skip the --verify-signatures arm")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="liubai-bench-") as tmp:
        root = Path(tmp)
        repo = root / "gitops"
        t0 = time.perf_counter()
        shape = generate(repo, args.commits, args.apps, args.overlaid)
        gen_s = time.perf_counter() - t0
        count = int(_git(repo, "rev-list", "--count", "main"))
        at_head = sum(
            1
            for line in _git(repo, "ls-tree", "-r", "--name-only", "main").splitlines()
            if line.endswith(".yaml")
        )
        log_s = min(_git_log(repo) for _ in range(3))
        parse_s, pieces = _parse_floor(repo)
        store_s = _store_floor(repo, root / "floor.db")
        floor_s = log_s + parse_s + store_s
        print(f"# floor: git log {log_s:.2f} s, parse {parse_s:.2f} s, store {store_s:.2f} s", flush=True)
        cold = _measure(repo, root / "cold.db")
        print(f"# cold: {json.dumps(cold)}", flush=True)
        rendered = None if args.no_render else _measure(repo, root / "render.db", "--render")
        print(f"# render: {json.dumps(rendered)}", flush=True)
        warm = None if args.no_render else _measure(repo, root / "render-warm.db", "--render")
        print(f"# render, warm cache: {json.dumps(warm)}", flush=True)
        verified = None if args.no_verify else _measure(repo, root / "verify.db", "--verify-signatures")
        base_edit, walk_s = None, 0.0
        if not args.no_render:
            _edit_a_base(repo)
            base_edit = _measure(repo, root / "render.db", "--render")
            print(f"# render, one base edit: {json.dumps(base_edit)}", flush=True)
            walk_s = _declared_walk(root / "render.db", _git(repo, "rev-parse", "HEAD~1"))
    assert cold["commits"] == count, (cold, count)
    wall = float(cold["wall_s"])  # type: ignore[arg-type]
    ratio = floor_s / wall
    rows = [
        (
            "repository",
            f"{count} commits, {shape['merges']} merges, {shape['signed']} signed, "
            f"{at_head} manifest files at HEAD ({gen_s:.0f} s to generate)",
        ),
        ("git log --raw (best of 3)", f"{log_s:7.2f} s"),
        ("floor: YAML parse alone", f"{parse_s:7.2f} s  ({pieces} distinct documents, libyaml safe_load)"),
        ("floor: store alone", f"{store_s:7.2f} s  (SQLite, the same facts joined beforehand)"),
        ("floor: sum", f"{floor_s:7.2f} s"),
        (
            "ingest git, cold",
            f"{wall:7.2f} s  peak RSS {cold['rss_mb']} MB (git children <= {cold['children_rss_mb']} MB); "
            f"{cold['workloads']} workloads, {cold['rejected']} rejected, {cold['skipped']} skipped",
        ),
        (
            "  rate vs floor",
            f"{ratio:.0%} (target >= {TARGET_FLOOR_RATIO:.0%}); "
            f"time target <= {TARGET_S:.0f} s: {'met' if wall <= TARGET_S else 'MISSED'}; "
            f"RSS target <= {TARGET_RSS_MB:.0f} MB: {'met' if float(str(cold['rss_mb'])) <= TARGET_RSS_MB else 'MISSED'}",
        ),
    ]
    if rendered is not None:
        rows.append(
            (
                "ingest git --render, cold",
                f"{rendered['wall_s']:7.2f} s  peak RSS {rendered['rss_mb']} MB; "
                f"{rendered['renders']} renders ({rendered['render_cache_hits']} cache hits) took "
                f"{rendered['render_s']} s; {rendered['workloads']} workloads, {rendered['notices']} notices",
            )
        )
    if warm is not None:
        rows.append(
            (
                "  again, fresh store, warm cache",
                f"{warm['wall_s']:7.2f} s  {warm['renders']} renders, {warm['render_cache_hits']} cache hits "
                f"({warm['render_disk_hits']} on disk) took {warm['render_s']} s; {warm['workloads']} workloads",
            )
        )
    if base_edit is not None:
        rows.append(
            (
                "  then a base edit, incremental",
                f"{base_edit['wall_s']:7.2f} s  {base_edit['commits']} commit, {base_edit['renders']} renders "
                f"took {base_edit['render_s']} s; {base_edit['workloads']} workloads; render state from "
                f"the {base_edit['render_state_from']}",
            )
        )
        rows.append(("  (the store walk it spares)", f"{walk_s:7.2f} s  declared view at the parent"))
    if verified is not None:
        rows.append(("ingest git --verify-signatures", f"{verified['wall_s']:7.2f} s"))
    width = max(len(r[0]) for r in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    print(
        json.dumps(
            {
                "bench": "git_history",
                "commits": count,
                **shape,
                "manifest_files_at_head": at_head,
                "git_log_s": round(log_s, 3),
                "parse_floor_s": round(parse_s, 3),
                "store_floor_s": round(store_s, 3),
                "floor_s": round(floor_s, 3),
                "cold": cold,
                "floor_ratio": round(ratio, 3),
                "render": rendered,
                "render_warm": warm,
                "render_base_edit": base_edit,
                "declared_walk_s": round(walk_s, 3),
                "verify": verified,
            }
        )
    )
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4:])
        raise SystemExit(0)
    raise SystemExit(main())
