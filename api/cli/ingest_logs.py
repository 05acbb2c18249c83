"""``liubai ingest logs``: JSON-lines and OTLP/JSON log files (gzip or not, ``-`` for stdin) into the graph."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from liubai.api.cli.common import fail, fail_error, say, spinner, state, store_session
from liubai.api.cli.ingest import ingest_app
from liubai.collector.logfields import FieldMap
from liubai.collector.logfile import FileIngestStats, ingest_files
from liubai.collector.offload import OffloadError
from liubai.lineage.model import RejectedRecord
from liubai.lineage.urls import redact_url

__all__ = ["RejectPrinter", "load_fieldmap", "register"]

MAX_REJECT_LINES = 20


class FileFormat(StrEnum):
    JSONL = "jsonl"
    OTLP = "otlp"


class RejectPrinter:
    """One stderr line per rejected record (what and where), up to a cap; the store keeps all of them."""

    def __init__(self, limit: int = MAX_REJECT_LINES) -> None:
        self.limit = limit
        self.seen = 0

    def __call__(self, r: RejectedRecord) -> None:
        self.seen += 1
        if self.seen <= self.limit:
            say(f"rejected {r.location}: {r.reason}", err=True)

    def finish(self) -> None:
        if self.seen > self.limit:
            say(f"... and {self.seen - self.limit} more rejected records (all kept in the store)", err=True)


def load_fieldmap(path: Path | None) -> FieldMap:
    if path is None:
        return FieldMap()
    try:
        return FieldMap.from_file(path)
    except OSError as exc:
        raise fail(f"field map {path}: {exc.strerror or exc}") from None
    except ValueError as exc:  # names the file itself
        raise fail(f"field map {exc}") from None


def logs(
    ctx: typer.Context,
    files: Annotated[
        list[str], typer.Argument(help="JSON-lines or OTLP/JSON files (gzip ok); '-' reads stdin.")
    ],
    fmt: Annotated[
        FileFormat,
        typer.Option(
            "--format", "-f", help="jsonl: one object per line; otlp: OTLP/JSON logs and traces exports."
        ),
    ] = FileFormat.JSONL,
    source: Annotated[
        str | None,
        typer.Option(
            "--source", help="Source name in log node ids (default: file:<name>); reuse one to merge copies."
        ),
    ] = None,
    field_map: Annotated[
        Path | None,
        typer.Option(
            "--field-map", help="YAML overrides of which keys hold trace/audit/time/level/service/message."
        ),
    ] = None,
    batch_size: Annotated[
        int,
        typer.Option(
            "--batch-size",
            min=1,
            help="Records per store transaction; files read in a second process send up to 4x as many "
            "while the store falls behind.",
        ),
    ] = 10_000,
) -> None:
    """Ingest log files (and OTLP/JSON trace exports); lines carrying a trace id or an x-gitops-audit-id
    join the commit/trace graph.

    Example: liubai ingest logs app.jsonl.gz otel-export.json --format otlp --source checkout
    """
    fm = load_fieldmap(field_map)
    for f in files:
        if f != "-" and not Path(f).is_file():
            raise fail(f"no such log file: {f}")
    printer = RejectPrinter()
    with (
        store_session(ctx, create=True) as store,
        spinner() as bar,
    ):
        task = bar.add_task("reading logs", total=None)

        def show(s: FileIngestStats) -> None:
            bar.update(
                task,
                description=f"{s.records:,} records, {s.spans:,} spans, {s.rejected:,} rejected, "
                f"{s.files}/{len(files)} files",
            )

        try:
            stats = ingest_files(
                store,
                files,
                fmt.value,
                source=source,
                fieldmap=fm,
                batch_size=batch_size,
                progress=show,
                on_reject=printer,
            )
        except (
            OffloadError
        ) as exc:  # batches stored before it stay; a re-run skips nothing and doubles nothing
            raise fail_error(exc) from None
    printer.finish()
    spans = f" and {stats.spans:,} spans" if stats.spans else ""
    say(
        f"ingested {stats.records:,} log records{spans} from {stats.files} file(s), {stats.rejected:,} "
        f"rejected, into {redact_url(state(ctx).store_url)}"
    )


def register(app: typer.Typer) -> None:
    ingest_app.command("logs")(logs)
