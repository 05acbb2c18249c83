"""GitOps history as lineage records: commits, the Kubernetes objects their manifests declare, audit ids.

History is read with ONE streaming ``git log --raw -z`` (``history``), and manifest blobs through one
long-lived ``git cat-file --batch`` process (``blobs``); ``repository`` names and opens a repository (a
URL as a cached mirror), and ``collector`` turns what a run must read into pipeline items with the
checkpoints that make the next run incremental.
"""

from liubai.collector.git.collector import GitCollector, GitPlan, checkpoints_of, ingest_git
from liubai.collector.git.history import LOG_FORMAT, pr_number
from liubai.collector.git.repository import GitSourceError, default_cache_dir, is_url, repo_identity

__all__ = [
    "LOG_FORMAT",
    "GitCollector",
    "GitPlan",
    "GitSourceError",
    "checkpoints_of",
    "default_cache_dir",
    "ingest_git",
    "is_url",
    "pr_number",
    "repo_identity",
]
