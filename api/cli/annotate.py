"""``liubai annotate``: stamp rendered manifests (a pipeline, an Argo CD plugin, a KRM function)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from liubai.api.cli.common import fail, say
from liubai.collector.admission.annotate import AnnotateError, AnnotateOptions, annotate_text
from liubai.collector.admission.decide import OnMalformed

__all__ = ["register"]


def annotate_cmd(
    commit: Annotated[
        str | None,
        typer.Option(
            "--commit",
            help="Commit being rendered (default: ARGOCD_APP_REVISION, GITHUB_SHA, CI_COMMIT_SHA, then "
            "git rev-parse HEAD).",
        ),
    ] = None,
    traceparent: Annotated[
        str | None,
        typer.Option(
            "--traceparent",
            envvar="TRACEPARENT",
            help="W3C traceparent of the pipeline run; its trace id goes into every stamp.",
        ),
    ] = None,
    commit_only: Annotated[
        bool,
        typer.Option(
            "--commit-only",
            help="Only leave liubai.dev/commit on each workload for the webhook to stamp (no restart per commit).",
        ),
    ] = False,
    on_malformed: Annotated[
        OnMalformed,
        typer.Option(
            "--on-malformed", help="An existing malformed x-gitops-audit-id: fail, or warn and leave it."
        ),
    ] = OnMalformed.REFUSE,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Read this file instead of stdin.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No summary line on stderr.")] = False,
) -> None:
    """Stamp x-gitops-audit-id, X_GITOPS_AUDIT_ID and OTel attributes into workloads of multi-document
    YAML or a KRM ResourceList on stdin; write the result to stdout. The same input gives the same output.

    Example: kustomize build . | liubai annotate > stamped.yaml
    """
    try:
        text = file.read_text(encoding="utf-8") if file is not None else sys.stdin.read()
    except OSError as exc:
        raise fail(f"{file}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise fail(f"{file or 'stdin'}: not UTF-8 text (byte {exc.start})") from None
    try:
        result = annotate_text(
            text, AnnotateOptions(commit, traceparent, commit_only, on_malformed, cwd=None)
        )
    except AnnotateError as exc:
        raise fail(str(exc)) from None
    sys.stdout.write(result.text)
    for warning in result.warnings:
        say(f"warning: {warning}", err=True)
    if not quiet:
        what = "commit annotations" if commit_only else "stamps"
        say(
            f"annotate: {result.stamped} {what}, {result.kept} ids kept; commit {result.commit.sha[:12]} "
            f"from {result.commit_from}",
            err=True,
        )


def register(app: typer.Typer) -> None:
    app.command("annotate")(annotate_cmd)
