"""GitOps history as lineage records: commits, the Kubernetes objects their manifests declare, audit ids.

History is read with ONE streaming ``git log --raw -z`` (GitPython's ``repo.git``), and manifest blobs
through GitPython's long-lived ``git cat-file --batch`` process: the object API (one ``Commit`` plus a
diff per commit) manages tens of commits per second, a single log thousands.

Incremental reads: every ingested ref keeps a checkpoint ``ref:<refname>`` -> tip sha under the source
``git:<repo>``, plus ``resume`` -> the last commit stored. Everything reachable from a checkpoint is
already in the store, so a run reads ``<tips> --not <all known checkpoints>``. A checkpoint that is no
longer an ancestor of its ref means history was rewritten (force push): that is reported as a
``Notice`` and the new commits are read from where the histories meet.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit, urlunsplit

import git
from platformdirs import user_cache_dir

from liubai.collector.ingest import Checkpoint, IngestSummary, Item, Notice, ingest_records
from liubai.collector.manifests import (
    ManifestCache,
    ObjectKey,
    deleted_records,
    is_manifest_path,
    parse_manifest,
)
from liubai.collector.retry import RetryPolicy
from liubai.lineage.errors import ErrorCode, LiubaiError
from liubai.lineage.model import RejectedRecord
from liubai.lineage.provenance import GIT_WRITER
from liubai.lineage.records import CommitRecord, iso_utc
from liubai.lineage.store.base import LineageStore
from liubai.lineage.text import bytes_text, visible

__all__ = ["GitCollector", "GitPlan", "GitSourceError", "ingest_git", "pr_number", "repo_identity"]

# One header field per placeholder, NUL-separated; the record starts with \x1e so a commit boundary is
# never confused with a raw diff entry (those start with ':'). Messages and paths cannot contain NUL.
_FIELDS = ("%H", "%P", "%an", "%ae", "%aI", "%cn", "%ce", "%cI", "%G?", "%s", "%b")
LOG_FORMAT = "%x1e" + "%x00".join(_FIELDS)
_LOG_OPTIONS = (
    "--reverse",
    "--topo-order",
    "-z",
    "--raw",
    "--no-abbrev",
    "-M",
    "--root",
    "--diff-merges=first-parent",
    "--no-show-signature",
    "--no-color",
    "--no-relative",
    "--no-notes",
    "--encoding=UTF-8",
    f"--format={LOG_FORMAT}",
)
_SKIP_MODES = ("160000", "120000")  # submodules and symlinks carry no manifest text
_BLOB_KEYS_CACHE = 8192
_CHUNK_COMMITS = 500
_CHUNK_BLOBS = 800  # 800 requests of 41 bytes stay well inside one pipe buffer: writing never blocks
_NULL_BLOB = "0" * 40
_READ_CHUNK = 1 << 16

_PR_MERGE = re.compile(r"^Merge pull request #(\d+)\b")
_PR_SQUASH = re.compile(r"\(#(\d+)\)\s*$")
_MR = re.compile(r"See merge request \S*?!(\d+)\b")
_SCP_LIKE = re.compile(r"^[\w.-]+@[\w.-]+:")
_PERMANENT = re.compile(
    r"does not exist|not found|not a git repository|does not appear to be a git repository|authentication failed|could not read username|"
    r"repository .* not found|invalid|unsupported",
    re.IGNORECASE,
)


class GitSourceError(LiubaiError, RuntimeError):
    """The repository cannot be opened, cloned or read; the message is one line a user can act on."""

    code = ErrorCode.SOURCE_FAILED


def pr_number(subject: str, message: str) -> int | None:
    """The PR/MR number forges write into merge and squash commits, or None."""
    for pattern, text in ((_PR_MERGE, subject), (_PR_SQUASH, subject), (_MR, message)):
        m = pattern.search(text)
        if m:
            return int(m.group(1))
    return None


def is_url(path_or_url: str) -> bool:
    return "://" in path_or_url or (bool(_SCP_LIKE.match(path_or_url)) and not Path(path_or_url).exists())


def repo_identity(path_or_url: str) -> str:
    """The stable name of a repository in the graph: a URL without credentials, or an absolute path."""
    if not is_url(path_or_url):
        return visible(str(Path(path_or_url).expanduser().resolve()))
    parts = urlsplit(path_or_url)
    if parts.scheme and "@" in parts.netloc:
        parts = parts._replace(netloc=parts.netloc.rsplit("@", 1)[1])
    return visible(urlunsplit(parts).rstrip("/") if parts.scheme else path_or_url)


def _is_permanent(exc: BaseException) -> bool:
    return isinstance(exc, git.GitCommandError) and bool(_PERMANENT.search(str(exc.stderr)))


def _one_line(exc: BaseException) -> str:
    """git's own "fatal:" line (the actionable one) from a failed command."""
    text = visible(str(exc.stderr) if isinstance(exc, git.GitCommandError) else str(exc))
    lines = [ln.strip().strip("'\"").strip() for ln in text.splitlines()]
    lines = [ln.removeprefix("stderr:").strip() for ln in lines if ln]
    fatal = [ln.removeprefix("fatal:").strip() for ln in lines if ln.startswith("fatal:")]
    if fatal:
        return fatal[0]
    return lines[0] if lines else type(exc).__name__


def _iso(text: str) -> str:
    return iso_utc(datetime.fromisoformat(text))


@dataclass(slots=True)
class GitPlan:
    """What one run will read: ref tips, the commits already stored, the count, and any rewrite notices."""

    refs: dict[str, str]
    exclude: list[str]
    total: int
    notices: list[Notice] = field(default_factory=list)


@dataclass(slots=True)
class _Change:
    status: str
    old_mode: str
    new_mode: str
    old_blob: str
    new_blob: str
    path: str
    old_path: str


class GitCollector:
    """Commits and manifest objects of one repository, a local path (read in place) or a clone URL.

    ``branch`` selects one ref (a branch, remote branch or tag); the default is the checked-out branch
    (a mirror's default branch). ``all_refs`` reads every branch, remote branch and tag.
    """

    def __init__(
        self,
        path_or_url: str,
        branch: str | None = None,
        all_refs: bool = False,
        cache_dir: str | Path | None = None,
        clone_attempts: int = 3,
    ) -> None:
        self.location = path_or_url
        self.branch = branch
        self.all_refs = all_refs
        self.repo_id = repo_identity(path_or_url)
        self.source = f"git:{self.repo_id}"
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.clone_attempts = clone_attempts
        self._repo: git.Repo | None = None
        self._blob_keys: OrderedDict[str, list[ObjectKey]] = OrderedDict()
        self._blobs: dict[str, bytes | None] = {}
        self._cat_file: _BlobReader | None = None
        self._manifests = ManifestCache()  # documents repeat across commits: each distinct text parsed once

    # ------------------------------------------------------------------ opening
    @property
    def repo(self) -> git.Repo:
        if self._repo is None:
            self._repo = self._open()
            self._repo.git.update_environment(GIT_TERMINAL_PROMPT="0", LC_ALL="C")
        return self._repo

    def _open(self) -> git.Repo:
        if not is_url(self.location):
            path = Path(self.location).expanduser()
            if not path.exists():
                raise GitSourceError(f"{visible(self.location)}: no such directory")
            try:
                return git.Repo(path)
            except (git.InvalidGitRepositoryError, git.NoSuchPathError):
                raise GitSourceError(f"{visible(self.location)}: not a git repository") from None
        return self._mirror()

    def _mirror(self) -> git.Repo:
        """A bare mirror of the URL in the cache dir, cloned once and fetched (with prune) afterwards."""
        digest = hashlib.sha256(self.repo_id.encode()).hexdigest()[:16]
        target = self.cache_dir / f"{digest}.git"
        # The shared policy's backoff, bounded by clone attempts only: a big clone may take longer than the
        # deadline a single request gets, and a transient network error then is still worth another try.
        policy = RetryPolicy.from_env(attempts=self.clone_attempts, deadline=math.inf)
        retrying = policy.retrying(lambda e: isinstance(e, git.GitCommandError) and not _is_permanent(e))
        env = {"GIT_TERMINAL_PROMPT": "0"}
        try:
            if (target / "HEAD").exists():
                repo = git.Repo(target)
                repo.git.update_environment(**env)
                retrying(repo.git.fetch, "--prune", "--quiet", "origin")
                return repo
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{digest}-", dir=self.cache_dir))
            try:
                retrying(git.Repo.clone_from, self.location, tmp / "m.git", mirror=True, env=env)
                try:
                    (tmp / "m.git").rename(target)
                except OSError:
                    if not (target / "HEAD").exists():  # not a concurrent clone that won the race
                        raise
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            return git.Repo(target)
        except git.GitCommandError as exc:
            raise GitSourceError(f"cannot fetch {self.repo_id}: {_one_line(exc)}") from None

    def close(self) -> None:
        if self._cat_file is not None:
            self._cat_file.close()
            self._cat_file = None
        if self._repo is not None:
            self._repo.close()
            self._repo = None

    def __enter__(self) -> GitCollector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ refs and plan
    def refs(self) -> dict[str, str]:
        """Ref name -> commit sha for the refs this collector reads; names are only stored and shown
        from here on, so bytes in them that are not UTF-8 are escaped (``visible``)."""
        return {visible(name): sha for name, sha in self._refs().items()}

    def _refs(self) -> dict[str, str]:
        g = self.repo.git
        if self.all_refs:
            out = g.for_each_ref(
                "--format=%(refname)%00%(objecttype)%00%(objectname)%00%(*objecttype)%00%(*objectname)",
                "refs/heads",
                "refs/remotes",
                "refs/tags",
            )
            refs: dict[str, str] = {}
            for line in out.splitlines():
                name, otype, oid, ptype, poid = line.split("\0")
                if name.endswith("/HEAD"):
                    continue
                if otype == "commit":
                    refs[name] = oid
                elif ptype == "commit":
                    refs[name] = poid
            return refs
        if self.branch:
            candidates = [
                f"refs/heads/{self.branch}",
                f"refs/remotes/origin/{self.branch}",
                f"refs/tags/{self.branch}",
            ]
            if self.branch.startswith("refs/"):
                candidates.insert(0, self.branch)
            for ref in candidates:
                sha = self._commit_of(ref)
                if sha:
                    return {ref: sha}
            raise GitSourceError(f"{self.repo_id}: no branch or tag named {self.branch!r}")
        try:
            head = g.symbolic_ref("-q", "HEAD")
        except git.GitCommandError:
            head = "HEAD"  # detached
        sha = self._commit_of(head)
        return {head: sha} if sha else {}  # an empty repository has nothing to read

    def _commit_of(self, rev: str) -> str | None:
        try:
            return str(
                self.repo.git.rev_parse("--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}")
            )
        except git.GitCommandError:
            return None

    def _exists(self, sha: str) -> bool:
        try:
            kind: object = self.repo.git.get_object_header(sha)[1]  # bytes, despite the annotation
        except ValueError:
            return False
        return kind in (b"commit", "commit")

    def _is_ancestor(self, old: str, tip: str) -> bool:
        try:
            self.repo.git.merge_base("--is-ancestor", old, tip)
            return True
        except git.GitCommandError:
            return False

    def plan(self, checkpoints: Mapping[str, str]) -> GitPlan:
        """Decide what to read given the stored checkpoints (key -> sha) of this source."""
        refs = self.refs()
        exclude = sorted(
            {
                sha
                for sha in checkpoints.values()
                if re.fullmatch(r"[0-9a-f]{40,64}", sha) and self._exists(sha)
            }
        )
        notices: list[Notice] = []
        for ref, tip in refs.items():
            old = checkpoints.get(f"ref:{ref}")
            if old is None or old == tip:
                continue
            if old in exclude and self._is_ancestor(old, tip):
                continue
            notices.append(self._rewrite_notice(ref, old, tip, old in exclude))
        total = 0
        if refs:
            total = int(
                self.repo.git.rev_list("--count", *sorted(set(refs.values())), "--not", *exclude, "--")
            )
        return GitPlan(refs=refs, exclude=exclude, total=total, notices=notices)

    def _rewrite_notice(self, ref: str, old: str, tip: str, old_exists: bool) -> Notice:
        base = ""
        if old_exists:
            try:
                base = str(self.repo.git.merge_base(old, tip))
            except git.GitCommandError:
                base = ""
        since = (
            f"re-reading from merge-base {base[:12]}"
            if base
            else "no common history: re-reading the whole ref"
        )
        message = (
            f"history rewritten: {ref} moved from {old[:12]} to {tip[:12]}, which does not contain it "
            f"(force push?); {since}"
        )
        return Notice(self.source, f"ref:{ref}", message, old)

    # ------------------------------------------------------------------ reading
    def items(self, plan: GitPlan) -> Iterator[Item]:
        """Notices, then per commit: its record, its manifest objects/rejects, a resume checkpoint;
        finally each ref's checkpoint at its tip."""
        yield from plan.notices
        if plan.refs:
            branch = None
            if len(plan.refs) == 1:
                name = next(iter(plan.refs))
                branch = re.sub(r"^refs/(heads|remotes|tags)/", "", name)
            if plan.total:
                revs = [*sorted(set(plan.refs.values())), "--not", *plan.exclude]
                for chunk in self._chunks(self._log(revs)):
                    self._fetch_blobs(chunk)
                    for commit, changes in chunk:
                        yield from self._commit_items(commit, changes, branch)
                        yield Checkpoint(self.source, "resume", commit.sha)
                    self._blobs.clear()
            for ref, tip in plan.refs.items():
                yield Checkpoint(self.source, f"ref:{ref}", tip)

    @staticmethod
    def _chunks(
        commits: Iterator[tuple[CommitRecord, list[_Change]]],
    ) -> Iterator[list[tuple[CommitRecord, list[_Change]]]]:
        """Groups of commits whose manifest blobs are fetched in one bulk request."""
        chunk: list[tuple[CommitRecord, list[_Change]]] = []
        blobs = 0
        for commit, changes in commits:
            chunk.append((commit, changes))
            blobs += sum(2 for c in changes if is_manifest_path(c.path) or is_manifest_path(c.old_path))
            if len(chunk) >= _CHUNK_COMMITS or blobs >= _CHUNK_BLOBS:
                yield chunk
                chunk, blobs = [], 0
        if chunk:
            yield chunk

    def _fetch_blobs(self, chunk: list[tuple[CommitRecord, list[_Change]]]) -> None:
        """Read every manifest blob a group of commits needs (new versions, and old versions whose
        objects are not cached) in one pipelined ``cat-file --batch`` exchange."""
        wanted: dict[str, None] = {}
        for _, changes in chunk:
            for c in changes:
                if c.status != "D" and is_manifest_path(c.path) and c.new_mode not in _SKIP_MODES:
                    wanted[c.new_blob] = None
                if is_manifest_path(c.old_path) and c.old_mode not in _SKIP_MODES and c.status in "DMRT":
                    if c.old_blob not in self._blob_keys:
                        wanted[c.old_blob] = None
        wanted.pop(_NULL_BLOB, None)
        if wanted:
            self._blobs.update(self._reader().read_many(list(wanted)))

    def _reader(self) -> _BlobReader:
        if self._cat_file is None:
            self._cat_file = _BlobReader(self.repo)
        return self._cat_file

    def _git_for_log(self) -> git.Git:
        """``repo.git`` with options that keep ``%G?`` meaningful: without an allowed-signers file git
        reports SSH-signed commits as unsigned ('N'); an empty one makes them 'U' (signed, unknown key)."""
        try:
            self.repo.git.config("--get", "gpg.ssh.allowedSignersFile")
            return self.repo.git
        except git.GitCommandError:
            return self.repo.git(c=f"gpg.ssh.allowedSignersFile={os.devnull}")

    def _log(self, revs: list[str]) -> Iterator[tuple[CommitRecord, list[_Change]]]:
        proc = self._git_for_log().log(*_LOG_OPTIONS, *revs, "--", as_process=True)
        stdout: IO[bytes] = proc.proc.stdout
        stderr = _Drain(proc.proc.stderr)  # a full stderr pipe would stall git while we read stdout
        finished = False
        try:
            header: list[str] = []
            changes: list[_Change] = []
            pending: list[str] | None = None  # a raw entry still waiting for its path(s)
            for token in _tokens(stdout):
                if pending is not None:
                    pending.append(token)
                    status = pending[0].rsplit(" ", 1)[-1]
                    if len(pending) == (3 if status[:1] in "RC" else 2):
                        changes.append(_change(pending))
                        pending = None
                    continue
                if token.startswith("\x1e"):
                    if header:
                        yield self._commit(header), changes
                    header, changes = [token[1:]], []
                elif len(header) < len(_FIELDS):
                    header.append(token)
                elif token.lstrip("\n").startswith(":"):
                    pending = [token.lstrip("\n")]
            if header:
                yield self._commit(header), changes
            finished = True
        finally:
            if not finished and proc.proc.poll() is None:
                proc.proc.kill()
            status = proc.proc.wait()
            stderr.join()
        if status != 0:
            raise git.GitCommandError(["git", "log", *revs], status, stderr.tail())

    def _commit(self, h: list[str]) -> CommitRecord:
        sha, parents, an, ae, at, cn, ce, ct, sig, subject, body = h
        body = body.rstrip("\n")
        message = f"{subject}\n\n{body}" if body else subject
        return CommitRecord(
            repo=self.repo_id,
            sha=sha,
            parents=tuple(parents.split()),
            author_name=an,
            author_email=ae,
            authored_at=_iso(at),
            committer_name=cn,
            committer_email=ce,
            committed_at=_iso(ct),
            subject=subject,
            message=message,
            pr=pr_number(subject, message),
            signed=sig not in ("N", ""),
        )

    def _commit_items(
        self, commit: CommitRecord, changes: list[_Change], branch: str | None
    ) -> Iterator[Item]:
        commit.changed_paths = tuple(c.path for c in changes)
        commit.branch = branch
        yield commit
        for change in changes:
            yield from self._manifest_items(commit.sha, change)

    def _manifest_items(self, sha: str, c: _Change) -> Iterator[Item]:
        if not (is_manifest_path(c.path) or is_manifest_path(c.old_path)):
            return
        if c.status == "D":
            if c.old_mode in _SKIP_MODES:
                return
            _, old_keys = self._parse_blob(c.old_blob, sha, c.old_path, want_items=False)
            yield from deleted_records(old_keys, repo=self.repo_id, commit=sha, path=c.old_path)
            return
        if c.new_mode in _SKIP_MODES or not is_manifest_path(c.path):
            new_keys: list[ObjectKey] = []
        else:
            items, new_keys = self._parse_blob(c.new_blob, sha, c.path, want_items=True)
            yield from items
        if c.status in ("M", "R", "T") and is_manifest_path(c.old_path) and c.old_mode not in _SKIP_MODES:
            cached = self._blob_keys.get(c.old_blob)
            if cached is None:
                _, cached = self._parse_blob(c.old_blob, sha, c.old_path, want_items=False)
            kept = set(new_keys)
            gone = [k for k in cached if k not in kept]
            yield from deleted_records(gone, repo=self.repo_id, commit=sha, path=c.old_path)

    def _parse_blob(
        self, blob: str, sha: str, path: str, *, want_items: bool
    ) -> tuple[list[Item], list[ObjectKey]]:
        data = self._blobs.get(blob)
        if data is None and blob not in self._blobs:
            data = self._reader().read_many([blob])[blob]
        if data is None:
            reject = RejectedRecord(
                self.source, f"{sha[:12]}:{path}", f"blob {blob[:12]} is missing from the repository"
            )
            return ([reject] if want_items else []), []
        items, keys = parse_manifest(data, repo=self.repo_id, commit=sha, path=path, cache=self._manifests)
        self._blob_keys[blob] = keys
        if len(self._blob_keys) > _BLOB_KEYS_CACHE:
            self._blob_keys.popitem(last=False)
        return (list(items) if want_items else []), keys


class _BlobReader:
    """One long-lived ``git cat-file --batch``. Requests go out in bulk and answers are read back in
    order, so a group of blobs costs one exchange instead of a process round-trip per blob."""

    def __init__(self, repo: git.Repo) -> None:
        self._proc = repo.git.cat_file("--batch", as_process=True, istream=subprocess.PIPE)
        self._stdin: IO[bytes] = self._proc.proc.stdin
        self._stdout: IO[bytes] = self._proc.proc.stdout

    def read_many(self, blob_ids: list[str]) -> dict[str, bytes | None]:
        """Contents by id; None for an id the repository does not have."""
        out: dict[str, bytes | None] = {}
        for start in range(0, len(blob_ids), _CHUNK_BLOBS):
            part = blob_ids[start : start + _CHUNK_BLOBS]
            self._stdin.write("".join(f"{b}\n" for b in part).encode())
            self._stdin.flush()
            for blob in part:
                header = self._stdout.readline().split()
                if len(header) != 3:
                    if not header:  # git exited: its stderr (only written on failure) says why
                        status = self._proc.proc.wait()
                        raise git.GitCommandError(
                            ["git", "cat-file", "--batch"], status, self._proc.proc.stderr.read()
                        )
                    out[blob] = None  # "<id> missing"
                    continue
                out[blob] = self._stdout.read(int(header[2]))
                self._stdout.read(1)  # the newline after the content
        return out

    def close(self) -> None:
        try:
            self._stdin.close()
        except OSError:
            pass
        try:
            self._proc.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.proc.kill()
            self._proc.proc.wait()


class _Drain(threading.Thread):
    """Reads a pipe to its end in the background, keeping only the last few KiB for error messages."""

    def __init__(self, stream: IO[bytes] | None, keep: int = 4096) -> None:
        super().__init__(daemon=True)
        self._stream, self._keep, self._buf = stream, keep, b""
        self.start()

    def run(self) -> None:
        if self._stream is None:
            return
        for chunk in iter(lambda: self._stream.read(4096), b""):  # type: ignore[union-attr]
            self._buf = (self._buf + chunk)[-self._keep :]

    def tail(self) -> str:
        return self._buf.decode("utf-8", "replace")


def _tokens(stream: IO[bytes]) -> Iterator[str]:
    """NUL-separated tokens of a byte stream, decoded; bytes that are not UTF-8 (in a file name, or a
    message or author written in another encoding) become ``\\xNN`` text (``liubai.lineage.text``)."""
    rest = b""
    while True:
        chunk = stream.read(_READ_CHUNK)
        if not chunk:
            break
        parts = (rest + chunk).split(b"\0")
        rest = parts.pop()
        for part in parts:
            yield bytes_text(part)
    if rest:
        yield bytes_text(rest)


def _change(entry: list[str]) -> _Change:
    meta, *paths = entry
    old_mode, new_mode, old_blob, new_blob, status = meta.lstrip(":").split(" ")
    code = status[:1]
    old_path = paths[0]
    return _Change(code, old_mode, new_mode, old_blob, new_blob, paths[-1], old_path)


def ingest_git(
    store: LineageStore,
    collector: GitCollector,
    *,
    batch_size: int = 2000,
    progress: Callable[[IngestSummary], None] | None = None,
    plan: GitPlan | None = None,
) -> IngestSummary:
    """Read what is new in the collector's refs and store it in batches; checkpoints move with the data."""
    if plan is None:
        plan = collector.plan(checkpoints_of(store, collector.source))
    return ingest_records(
        store, collector.items(plan), batch_size=batch_size, progress=progress, writer=GIT_WRITER
    )


def checkpoints_of(store: LineageStore, source: str) -> dict[str, str]:
    return {key: value for (src, key), value in store.checkpoints(source).items() if src == source}


def default_cache_dir() -> Path:
    return Path(os.environ.get("LIUBAI_GIT_CACHE") or Path(user_cache_dir("liubai")) / "git")
