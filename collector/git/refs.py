"""The refs a ``GitCollector`` reads and the commit each names: one branch, remote branch or tag asked
for by name, every branch, remote branch and tag, or else the checked-out branch (a mirror's default)."""

from __future__ import annotations

import git

from liubai.collector.git.repository import GitSourceError

__all__ = ["commit_of", "selected_refs"]


def selected_refs(repo: git.Repo, repo_id: str, branch: str | None, all_refs: bool) -> dict[str, str]:
    """Ref name -> commit sha (a tag peeled to its commit; refs naming no commit left out)."""
    g = repo.git
    if all_refs:
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
    if branch:
        candidates = [f"refs/heads/{branch}", f"refs/remotes/origin/{branch}", f"refs/tags/{branch}"]
        if branch.startswith("refs/"):
            candidates.insert(0, branch)
        for ref in candidates:
            sha = commit_of(repo, ref)
            if sha:
                return {ref: sha}
        raise GitSourceError(f"{repo_id}: no branch or tag named {branch!r}")
    try:
        head = g.symbolic_ref("-q", "HEAD")
    except git.GitCommandError:
        head = "HEAD"  # detached
    sha = commit_of(repo, head)
    return {head: sha} if sha else {}  # an empty repository has nothing to read


def commit_of(repo: git.Repo, rev: str) -> str | None:
    """The commit ``rev`` names (a tag peeled), or None."""
    try:
        return str(repo.git.rev_parse("--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"))
    except git.GitCommandError:
        return None
