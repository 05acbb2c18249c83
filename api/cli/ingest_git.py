"""``liubai ingest git``: a GitOps repository's commits, declared workloads and audit ids into the store."""

from __future__ import annotations

import git
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from liubai.api.cli.common import console, emit_json, err_console, fail, fail_error, printable, store_session
from liubai.api.cli.ingest import ingest_app
from liubai.collector.git import GitCollector, GitSourceError, checkpoints_of, ingest_git
from liubai.collector.ingest import IngestSummary

__all__ = ["register"]

_SAMPLE_WIDTH = 160


def ingest_git_command(
    ctx: typer.Context,
    path_or_url: str = typer.Argument(..., help="Local repository path (read in place) or clone URL."),
    branch: str = typer.Option(
        None, "--branch", "-b", help="Branch or tag to read (default: the checked-out one)."
    ),
    all_refs: bool = typer.Option(False, "--all", help="Read every branch, remote branch and tag."),
    batch_size: int = typer.Option(2000, "--batch-size", min=1, help="Records per store transaction."),
    as_json: bool = typer.Option(
        False, "--json", help="Print the summary as one JSON line instead of a table."
    ),
    cache_dir: str = typer.Option(
        None,
        "--cache-dir",
        envvar="LIUBAI_GIT_CACHE",
        help="Where clones of URLs are kept (default: user cache dir).",
    ),
    cluster: str = typer.Option(
        None,
        "--cluster",
        help="The cluster this repository deploys to, as `ingest k8s --cluster` names it: its objects "
        "meet that cluster's live ones and never another cluster's.",
    ),
    verify_signatures: bool = typer.Option(
        False,
        "--verify-signatures",
        help="Check each signed commit's signature with gpg / ssh-keygen (slow on long histories); "
        "otherwise signed commits are recorded as 'unverified'.",
    ),
    render: bool | None = typer.Option(
        None,
        "--render/--no-render",
        help="Render what the repository's Flux Kustomizations and Argo CD Applications deploy "
        "(kubectl kustomize, helm template) and declare those objects with their real namespaces. "
        "Remembered per repository: omitted, a run reads as the last one did; switching re-reads the "
        "whole history.",
    ),
) -> None:
    """Ingest commits, the Kubernetes objects their manifests declare and x-gitops-audit-id annotations.

    Runs are incremental: only commits added since the last run of each ref are read; a force-pushed
    ref is reported and re-read from where the histories meet.

    Example: liubai --store sqlite:///lineage.db ingest git https://github.com/org/gitops.git --branch main
    """
    if branch and all_refs:
        raise fail("use either --branch or --all, not both")
    with (
        store_session(ctx, create=True) as store,
        GitCollector(
            path_or_url,
            branch=branch,
            all_refs=all_refs,
            cache_dir=cache_dir,
            cluster=cluster,
            verify_signatures=verify_signatures,
            render=render,
        ) as collector,
    ):
        try:
            plan = collector.plan(checkpoints_of(store, collector.source))
            for notice in plan.notices:
                err_console.print(Text.assemble(("warning: ", "bold yellow"), printable(notice.message)))
            with Progress(
                TextColumn("[bold]ingest git[/]"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("commits"),
                TimeElapsedColumn(),
                console=err_console,
                transient=True,
                disable=as_json,
            ) as bar:
                task = bar.add_task("commits", total=plan.total)

                def progress(summary: IngestSummary) -> None:
                    bar.update(task, completed=summary.commits)

                summary = ingest_git(store, collector, batch_size=batch_size, progress=progress, plan=plan)
        except GitSourceError as exc:
            raise fail_error(exc) from None
        except git.GitCommandError as exc:
            detail = " ".join(str(exc.stderr).split()) or str(exc)
            raise fail(f"git failed reading {collector.repo_id}: {detail}") from None
    stats = collector.render_stats
    if as_json:
        doc = summary_dict(summary)
        if stats is not None:
            doc["render"] = {
                "renders": stats.renders,
                "cache_hits": stats.cache_hits,
                "disk_cache_hits": stats.disk_hits,
                "failures": stats.failures,
                "seconds": stats.seconds,
            }
        emit_json(doc)
        return
    for notice in summary.notices:
        if notice not in plan.notices:  # said before the run started
            err_console.print(Text.assemble(("warning: ", "bold yellow"), printable(notice.message)))
    _print_summary(summary)
    if stats is not None:
        console.print(
            f"rendered {stats.renders} time(s), {stats.cache_hits} from cache "
            f"({stats.disk_hits} from the on-disk cache), {stats.failures} failed, in {stats.seconds:.1f} s"
        )


def summary_dict(summary: IngestSummary) -> dict[str, object]:
    return {
        "commits": summary.commits,
        "workloads": summary.workloads,
        "audit_records": summary.audit_records,
        "rejected": summary.rejected,
        "skipped": summary.count("SkippedRecord"),
        "rewritten": [n.message for n in summary.rewritten],
        "nodes_created": summary.nodes_created,
        "edges_created": summary.edges_created,
    }


def _print_summary(summary: IngestSummary) -> None:
    table = Table(title="git ingest", show_header=True, header_style="bold")
    table.add_column("what")
    table.add_column("count", justify="right")
    for label, value in (
        ("commits", summary.commits),
        ("workloads", summary.workloads),
        ("audit records", summary.audit_records),
        ("rejected", summary.rejected),
        ("skipped (not Kubernetes)", summary.count("SkippedRecord")),
        ("history rewrites", len(summary.rewritten)),
        ("new nodes", summary.nodes_created),
        ("new edges", summary.edges_created),
    ):
        table.add_row(label, str(value))
    console.print(table)
    for record in summary.rejected_samples:
        reason = " ".join(record.reason.split())[:_SAMPLE_WIDTH]  # the reason may be cut, the location never
        line = f"{record.location}: {reason}"
        console.print(Text.assemble(("rejected ", "red"), printable(line)), soft_wrap=True)
    more = summary.rejected - len(summary.rejected_samples)
    if more > 0:
        console.print(f"... and {more} more rejected records (see the store's rejected table)")


def register(app: typer.Typer) -> None:
    ingest_app.command("git")(ingest_git_command)
