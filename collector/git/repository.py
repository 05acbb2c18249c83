"""Which repository a location names, and opening it: a local path in place, a URL as a cached mirror.

A repository's name in the graph (``repo_identity``) is its URL without credentials, or its absolute
path. A URL is cloned once as a bare mirror into the cache dir and fetched (with prune) on later runs,
retried under the shared ``RetryPolicy`` unless git's answer says retrying cannot help.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import git
from platformdirs import user_cache_dir

from liubai.collector.retry import RetryPolicy
from liubai.lineage.errors import ErrorCode, LiubaiError
from liubai.lineage.text import visible

__all__ = ["GitSourceError", "default_cache_dir", "is_url", "open_repository", "repo_identity"]

_SCP_LIKE = re.compile(r"^[\w.-]+@[\w.-]+:")
_PERMANENT = re.compile(
    r"does not exist|not found|not a git repository|does not appear to be a git repository|authentication failed|could not read username|"
    r"repository .* not found|invalid|unsupported",
    re.IGNORECASE,
)


class GitSourceError(LiubaiError, RuntimeError):
    """The repository cannot be opened, cloned or read; the message is one line a user can act on."""

    code = ErrorCode.SOURCE_FAILED


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


def default_cache_dir() -> Path:
    return Path(os.environ.get("LIUBAI_GIT_CACHE") or Path(user_cache_dir("liubai")) / "git")


def open_repository(location: str, repo_id: str, cache_dir: Path, clone_attempts: int) -> git.Repo:
    """The repository at ``location``: a local one in place, a URL's mirror in ``cache_dir``."""
    if not is_url(location):
        path = Path(location).expanduser()
        if not path.exists():
            raise GitSourceError(f"{visible(location)}: no such directory")
        try:
            return git.Repo(path)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise GitSourceError(f"{visible(location)}: not a git repository") from None
    return _mirror(location, repo_id, cache_dir, clone_attempts)


def _mirror(location: str, repo_id: str, cache_dir: Path, clone_attempts: int) -> git.Repo:
    """A bare mirror of the URL in the cache dir, cloned once and fetched (with prune) afterwards."""
    digest = hashlib.sha256(repo_id.encode()).hexdigest()[:16]
    target = cache_dir / f"{digest}.git"
    # The shared policy's backoff, bounded by clone attempts only: a big clone may take longer than the
    # deadline a single request gets, and a transient network error then is still worth another try.
    policy = RetryPolicy.from_env(attempts=clone_attempts, deadline=math.inf)
    retrying = policy.retrying(lambda e: isinstance(e, git.GitCommandError) and not _is_permanent(e))
    env = {"GIT_TERMINAL_PROMPT": "0"}
    try:
        if (target / "HEAD").exists():
            repo = git.Repo(target)
            repo.git.update_environment(**env)
            retrying(repo.git.fetch, "--prune", "--quiet", "origin")
            return repo
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{digest}-", dir=cache_dir))
        try:
            retrying(git.Repo.clone_from, location, tmp / "m.git", mirror=True, env=env)
            try:
                (tmp / "m.git").rename(target)
            except OSError:
                if not (target / "HEAD").exists():  # not a concurrent clone that won the race
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return git.Repo(target)
    except git.GitCommandError as exc:
        raise GitSourceError(f"cannot fetch {repo_id}: {_one_line(exc)}") from None


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
