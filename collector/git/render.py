"""Rendering what a deployer applies, at one commit: ``kubectl kustomize`` for a kustomization, the
manifests of a plain directory, ``helm template`` for a chart in the repository, then Flux
``postBuild.substitute``.

A render reads a commit's tree (``git archive``) into a temporary directory. What it read (the
deployer's path and every local base, component or resource directory its kustomizations name) are
its inputs, found from the tree before rendering; their tree ids key a cache in memory and on disk
(``render_cache``), so a commit that leaves them unchanged (or a revert, a merge that brings the same
tree, a later run, another store over the same repository) costs no render. A base that cannot be
fetched, a chart that needs helm where there is none, or a kustomization that does not build is a
notice, never a failure.
"""

from __future__ import annotations

import dataclasses
import io
import os
import posixpath
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import git
import yaml

from liubai.collector.git.deployers import Deployer, substitute
from liubai.collector.git.render_cache import (
    RENDER_FORMAT,
    DiskRenderCache,
    default_render_cache,
    tool_identity,
)
from liubai.collector.git.trees import GitObject, TreeReader

__all__ = ["RenderResult", "RenderStats", "Renderer"]

_KUSTOMIZATION = ("kustomization.yaml", "kustomization.yml", "Kustomization")
_LIST_KEYS = ("resources", "bases", "components", "crds")
_TIMEOUT_S = 120
_CACHE = 512


@dataclass(slots=True)
class RenderResult:
    """The rendered YAML (None when it could not be rendered, with ``problem`` saying why) and the
    repository directories it read."""

    text: str | None
    inputs: frozenset[str]
    problem: str = ""
    cached: bool = False


@dataclass(slots=True)
class RenderStats:
    renders: int = 0
    cache_hits: int = 0  # renders answered from a cache, the disk's included
    disk_hits: int = 0  # of those, answered by the on-disk cache (an earlier run or another store)
    seconds: float = 0.0
    failures: int = 0


@dataclass(slots=True)
class Renderer:
    """Renders deployers of one repository; keeps the caches (this run's, and ``disk`` across runs)
    and the cost (``stats``)."""

    repo: git.Repo
    kubectl: str | None = field(default_factory=lambda: shutil.which("kubectl"))
    helm: str | None = field(default_factory=lambda: os.environ.get("LIUBAI_HELM") or shutil.which("helm"))
    disk: DiskRenderCache | None = field(default_factory=default_render_cache)
    stats: RenderStats = field(default_factory=RenderStats)
    _cache: OrderedDict[str, RenderResult] = field(default_factory=OrderedDict)
    _tools: str = ""
    _trees: TreeReader | None = None

    def close(self) -> None:
        if self._trees is not None:
            self._trees.close()
            self._trees = None

    def _object(self, sha: str, path: str) -> GitObject | None:
        if self._trees is None:
            self._trees = TreeReader(self.repo)
        return self._trees.get(f"{sha}:{path}" if path else f"{sha}^{{tree}}")

    def render(self, sha: str, d: Deployer) -> RenderResult:
        """``d`` rendered at ``sha``: from a cache when the tree ids of every directory the render reads
        (found from the tree first, through one long-lived cat-file) are those of an earlier render."""
        started = time.perf_counter()
        try:
            if self._type(sha, d.path) != "tree":
                self.stats.failures += 1
                return RenderResult(None, frozenset(), f"{d.label}: path {d.path or '.'} is not in the tree")
            try:
                inputs = frozenset(self._inputs(sha, d.path))
            except git.GitCommandError as exc:  # a partial mirror: this render only, never the ingest
                self.stats.failures += 1
                return RenderResult(None, frozenset(), f"{d.label}: cannot read {d.path or '.'}: {_why(exc)}")
            key = self._key(sha, d, inputs | {d.path})
            hit = self._cached(key) if key is not None else None
            if hit is not None:
                return RenderResult(hit.text, hit.inputs, hit.problem, cached=True)
            result = self._render(sha, d, inputs)
            self.stats.renders += 1
            self.stats.failures += result.text is None
            if key is not None:
                self._remember(key, result)
            return result
        finally:
            self.stats.seconds += time.perf_counter() - started

    def _cached(self, key: str) -> RenderResult | None:
        hit = self._cache.get(key)
        if hit is None and self.disk is not None:
            found = self.disk.get(key)
            if found is not None:
                hit = RenderResult(found[0], found[1])
                self._cache[key] = hit
                self.stats.disk_hits += 1
        if hit is not None:
            self.stats.cache_hits += 1
        return hit

    def _remember(self, key: str, result: RenderResult) -> None:
        self._cache[key] = result
        if len(self._cache) > _CACHE:
            self._cache.popitem(last=False)
        if self.disk is not None and result.text is not None:  # a failure may pass: never kept on disk
            self.disk.put(key, result.text, result.inputs)

    def _key(self, sha: str, d: Deployer, dirs: frozenset[str] | set[str]) -> str | None:
        """The renderer, the deployer's settings and the tree ids of its input directories at ``sha``,
        hashed. The file that declares the deployer does not change what it renders."""
        ordered = sorted(dirs)
        trees: list[str] = []
        for p in ordered:
            obj = self._object(sha, p)
            if obj is None:
                return None  # an input that is gone: render, and let the render say what is missing
            trees.append(obj.oid)
        if not self._tools:
            self._tools = f"{RENDER_FORMAT} {tool_identity(self.kubectl)} {tool_identity(self.helm)}"
        settings = dataclasses.replace(d, manifest="")
        return DiskRenderCache.key([self._tools, repr(settings), list(zip(ordered, trees, strict=True))])

    def _render(self, sha: str, d: Deployer, inputs: frozenset[str]) -> RenderResult:
        with tempfile.TemporaryDirectory(prefix="liubai-render-") as tmp:
            root = Path(tmp)
            try:
                # only what the render reads: a tree's other folders cost more to write than to render
                spec = [] if "" in inputs else ["--", *sorted(inputs)]
                data = self.repo.git.archive("--format=tar", sha, *spec, stdout_as_string=False)
                with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                    tar.extractall(root, filter="data")
            except (git.GitCommandError, tarfile.TarError) as exc:
                # a blob or tree missing from a partial mirror: this render only, never the ingest
                return RenderResult(None, frozenset(), f"{d.label}: cannot read {d.path or '.'}: {_why(exc)}")
            target = root / d.path
            if d.helm or (target / "Chart.yaml").is_file():
                text, problem = self._helm(target, d)
            elif any((target / k).is_file() for k in _KUSTOMIZATION):
                text, problem = self._kustomize(target, d)
            else:
                text, problem = self._directory(target, d)
            if text is not None and d.substitute:
                text = substitute(text, dict(d.substitute))
            return RenderResult(text, inputs, problem)

    def _type(self, sha: str, path: str) -> str:
        obj = self._object(sha, path)
        return obj.type if obj is not None else ""

    def inputs(self, sha: str, path: str) -> frozenset[str]:
        """The repository directories a render of ``path`` at ``sha`` reads (``path`` among them)."""
        return frozenset(self._inputs(sha, path)) | {path}

    def _inputs(self, sha: str, path: str) -> set[str]:
        """Every repository directory a kustomization at ``path`` reads, read from the commit's tree:
        local resources, bases and components, followed (remote ones are kustomize's to fetch, and its
        failure the notice)."""
        seen: set[str] = set()
        todo = [path]
        while todo:
            rel = todo.pop()
            if rel in seen or rel.startswith(".."):
                continue
            seen.add(rel)
            tree = self._object(sha, rel)
            names = set(tree.names()) if tree is not None else set()
            spec = next((k for k in _KUSTOMIZATION if k in names), None)
            if spec is None:
                continue
            text = self._object(sha, posixpath.join(rel, spec))
            if text is None:
                continue
            try:
                doc = yaml.safe_load(text.data.decode("utf-8", "replace"))
            except yaml.YAMLError:
                continue
            if not isinstance(doc, dict):
                continue
            for key in _LIST_KEYS:
                for entry in doc.get(key) or []:
                    if (
                        not isinstance(entry, str)
                        or "://" in entry
                        or entry.startswith(("github.com/", "git@"))
                    ):
                        continue
                    target = posixpath.normpath(posixpath.join(rel, entry))
                    target = "" if target == "." else target
                    kind = self._type(sha, target)
                    if kind == "tree":
                        todo.append(target)
                    elif kind == "blob":
                        seen.add(posixpath.dirname(target))
        return seen

    def _kustomize(self, target: Path, d: Deployer) -> tuple[str | None, str]:
        if self.kubectl is None:
            return None, f"{d.label}: kubectl is not installed, the overlay at {d.path} is not rendered"
        return _run([self.kubectl, "kustomize", str(target)], d, "kubectl kustomize")

    def _helm(self, target: Path, d: Deployer) -> tuple[str | None, str]:
        if self.helm is None:
            return None, f"{d.label}: helm is not installed, the chart at {d.path} is not rendered"
        cmd = [self.helm, "template", d.helm_release or d.name, str(target)]
        if d.default_namespace:
            cmd += ["--namespace", d.default_namespace]
        for f in d.value_files:
            cmd += ["--values", str(target / f)]
        return _run(cmd, d, "helm template")

    def _directory(self, target: Path, d: Deployer) -> tuple[str | None, str]:
        """A directory without a kustomization: its manifests (Argo CD reads the directory itself,
        Flux every subdirectory too, where a subdirectory with a kustomization is built, not read)."""
        parts: list[str] = []
        for entry in sorted(target.iterdir()):
            if entry.is_file() and entry.suffix in (".yaml", ".yml"):
                parts.append(entry.read_text(encoding="utf-8", errors="replace"))
            elif entry.is_dir() and d.kind == "Kustomization" and not entry.name.startswith("."):
                if any((entry / k).is_file() for k in _KUSTOMIZATION):
                    text, problem = self._kustomize(entry, d)
                else:
                    text, problem = self._directory(entry, d)
                if text is None:
                    return None, problem
                parts.append(text)
        return "\n---\n".join(parts), ""


def _why(exc: Exception) -> str:
    """git's own "fatal:"/"error:" line for a failed git command, else the error's text, on one line."""
    text = str(exc.stderr) if isinstance(exc, git.GitCommandError) else str(exc)
    lines = [ln.strip().strip("'\"").removeprefix("stderr:").strip() for ln in text.splitlines()]
    said = [ln for ln in lines if ln.startswith(("fatal:", "error:"))] or [ln for ln in lines if ln]
    return " ".join((said[0] if said else type(exc).__name__).split())[:300]


def _run(cmd: list[str], d: Deployer, what: str) -> tuple[str | None, str]:
    env = {**os.environ, "HOME": os.environ.get("HOME", "/tmp"), "GIT_TERMINAL_PROMPT": "0"}
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=_TIMEOUT_S, env=env, check=False)
    except subprocess.TimeoutExpired:
        return None, f"{d.label}: {what} took more than {_TIMEOUT_S} s"
    except OSError as exc:  # e.g. LIUBAI_HELM naming a file that is not there, or not executable
        return None, f"{d.label}: cannot run {what} ({cmd[0]}): {exc.strerror or exc}"
    if done.returncode != 0:
        detail = " ".join(done.stderr.split())[:300] or f"exit status {done.returncode}"
        return None, f"{d.label}: {what} failed at {d.path or '.'}: {detail}"
    return done.stdout, ""
