"""``liubai ingest sls``: consume an SLS logstore shard by shard (checkpointed), or backfill by query."""

from __future__ import annotations

import logging
import re
import signal
import threading
import time
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from liubai.api.cli.common import fail, fail_error, say, spinner, state, store_session
from liubai.api.cli.ingest import ingest_app
from liubai.api.cli.ingest_logs import RejectPrinter, load_fieldmap
from liubai.lineage.urls import redact_url

__all__ = ["parse_when", "register"]

_RELATIVE = re.compile(r"(\d+)\s*([smhd])(?:\s*ago)?", re.IGNORECASE | re.ASCII)
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class IdMode(StrEnum):
    CURSOR = "cursor"
    CONTENT = "content"


def parse_when(text: str, now: float | None = None) -> int:
    """Unix seconds from ``1735689600``, ``2026-01-01T00:00:00Z``, ``now`` or ``2h`` (= two hours ago)."""
    t = text.strip()
    ref = time.time() if now is None else now
    if t.lower() == "now":
        return int(ref)
    if t.isascii() and t.isdigit():  # str.isdigit() also takes "²", which int() refuses
        return int(t)
    m = _RELATIVE.fullmatch(t)
    if m:
        return int(ref - int(m.group(1)) * _UNIT[m.group(2).lower()])
    try:
        dt = datetime.fromisoformat(t)
    except ValueError:
        raise ValueError(f"not a time: {text!r} (use unix seconds, ISO 8601, 'now' or e.g. '2h')") from None
    return int((dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp())


def sls(
    ctx: typer.Context,
    endpoint: Annotated[
        str, typer.Option("--endpoint", help="SLS endpoint, e.g. cn-hangzhou.log.aliyuncs.com.")
    ],
    project: Annotated[str, typer.Option("--project", help="SLS project.")],
    logstore: Annotated[str, typer.Option("--logstore", help="SLS logstore.")],
    follow: Annotated[
        bool, typer.Option("--follow", help="Keep polling for new logs (and new shards) until stopped.")
    ] = False,
    query: Annotated[
        str | None, typer.Option("--query", help="Backfill by SLS query instead of consuming shards.")
    ] = None,
    from_: Annotated[
        str | None,
        typer.Option(
            "--from", help="Backfill window start: unix seconds, ISO 8601 or e.g. 2h (default: 1d)."
        ),
    ] = None,
    to: Annotated[str | None, typer.Option("--to", help="Backfill window end (default: now).")] = None,
    start: Annotated[
        str,
        typer.Option(
            "--start",
            help="Where shards without a checkpoint start: begin, end, or a time (unix, ISO, e.g. 2h).",
        ),
    ] = "begin",
    credentials: Annotated[
        Path | None,
        typer.Option(
            "--credentials",
            help="YAML file with access_key_id, access_key_secret and optional security_token (default: env).",
        ),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option("--source", help="Source name in log node ids (default: sls:<project>/<logstore>)."),
    ] = None,
    field_map: Annotated[
        Path | None, typer.Option("--field-map", help="YAML overrides of the field mapping.")
    ] = None,
    id_mode: Annotated[
        IdMode,
        typer.Option(
            "--id-mode", help="cursor: shard:cursor:index ids; content: content hash (matches file copies)."
        ),
    ] = IdMode.CURSOR,
    pull_count: Annotated[
        int,
        typer.Option(
            "--pull-count",
            min=1,
            max=1000,
            help="Log groups per PullLogs call (line ids depend on it in --id-mode cursor: keep it between runs).",
        ),
    ] = 100,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, help="Seconds per HTTP request.")] = 30.0,
    deadline: Annotated[
        float, typer.Option("--retry-deadline", min=0.0, help="Give up retrying a call after this long.")
    ] = 120.0,
    poll_interval: Annotated[
        float, typer.Option("--poll-interval", min=0.01, help="Seconds between polls with --follow.")
    ] = 1.0,
    consumer_group: Annotated[
        str | None,
        typer.Option(
            "--consumer-group",
            help="Share the logstore's shards with the other collectors of this SLS consumer group "
            "(created if missing).",
        ),
    ] = None,
    consumer: Annotated[
        str | None,
        typer.Option(
            "--consumer",
            help="This collector's name in the consumer group, unique in it (default: host-pid).",
        ),
    ] = None,
    heartbeat_interval: Annotated[
        float | None,
        typer.Option(
            "--heartbeat-interval",
            min=0.1,
            help="Seconds between consumer-group heartbeats (default 20); a consumer silent for twice as long "
            "loses its shards.",
        ),
    ] = None,
) -> None:
    """Pull log lines from Alibaba Cloud SLS; trace ids and x-gitops-audit-id values join the graph.

    Credentials come from ALIBABA_CLOUD_ACCESS_KEY_ID / ALIBABA_CLOUD_ACCESS_KEY_SECRET
    (/ ALIBABA_CLOUD_SECURITY_TOKEN) or --credentials; they are never printed.

    Example: liubai ingest sls --endpoint cn-hangzhou.log.aliyuncs.com --project ops --logstore app --follow

    Example (three collectors sharing the shards): liubai ingest sls --endpoint cn-hangzhou.log.aliyuncs.com
    --project ops --logstore app --follow --consumer-group liubai

    Example: liubai ingest sls --endpoint cn-hangzhou.log.aliyuncs.com --project ops --logstore app
    --query "trace_id: 4bf92f3577b34da6a3ce929d0e0e4736" --from 2h --to now
    """
    backfill = query is not None or from_ is not None or to is not None
    if backfill and follow:
        raise fail("--follow consumes shards; it cannot be combined with --query/--from/--to")
    if backfill and consumer_group is not None:
        raise fail("--consumer-group shares consumed shards; it cannot be combined with --query/--from/--to")
    if consumer is not None and consumer_group is None:
        raise fail("--consumer names this collector in a consumer group: give --consumer-group too")
    if heartbeat_interval is not None and consumer_group is None:
        raise fail("--heartbeat-interval paces consumer-group heartbeats: give --consumer-group too")

    def when(option: str, text: str) -> int:
        try:
            return parse_when(text)
        except (ValueError, OverflowError) as exc:  # a year 99999 overflows
            raise fail(f"{option}: {exc}") from None

    window = (when("--from", from_ or "1d"), when("--to", to or "now")) if backfill else None
    start = start if start in ("begin", "end") else str(when("--start", start))
    if window is not None and window[0] >= window[1]:
        raise fail(f"empty time window: --from {from_} is not before --to {to or 'now'}")
    from liubai.collector.offload import OffloadError, has_a_second_core

    try:
        from liubai.collector.sls import (
            ConsumeStats,
            GroupMember,
            GroupOptions,
            RetryPolicy,
            SlsCollector,
            SlsCredentials,
            SlsError,
            default_consumer_name,
            make_client,
        )
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.partition(".")[0] not in ("aliyun", "lz4"):
            raise
        raise fail(
            f"ingest sls needs the 'sls' extra ({exc.name} is not installed): pip install 'liubai[sls]'"
        ) from None

    fm = load_fieldmap(field_map)
    try:
        creds = SlsCredentials.load(credentials)
        client = make_client(endpoint, creds, timeout=timeout)
    except SlsError as exc:
        raise fail_error(exc) from None
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    group = None
    if consumer_group is not None:
        options = GroupOptions(
            consumer_group, consumer or default_consumer_name(), heartbeat_interval=heartbeat_interval or 20.0
        )
        group = GroupMember(client, project, logstore, options)
    stop = threading.Event()
    printer = RejectPrinter()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()  # finish the batch in flight; its checkpoint lands with it

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with (
            store_session(ctx, create=True) as store,
            spinner() as bar,
        ):
            task = bar.add_task(f"reading {project}/{logstore}", total=None)

            def show(s: ConsumeStats) -> None:
                bar.update(
                    task,
                    description=f"{s.records:,} records, {s.rejected:,} rejected, {len(s.shards)} shards",
                )

            collector = SlsCollector(
                client,
                project,
                logstore,
                store,
                source=source,
                fieldmap=fm,
                retry=RetryPolicy.from_env(deadline=deadline),
                pull_count=pull_count,
                id_mode=id_mode.value,
                progress=show,
                on_reject=printer,
                group=group,
            )
            try:
                # reading runs in a child process, storing here: two cores instead of one (if there are two)
                offload = has_a_second_core() and group is None  # a group member reads here (see consume)
                if window is not None:
                    stats = collector.backfill(query or "", window[0], window[1], offload=offload)
                else:
                    stats = collector.consume(
                        start=start, follow=follow, poll_interval=poll_interval, stop=stop, offload=offload
                    )
            except (SlsError, OffloadError) as exc:  # stored batches and their checkpoints stay
                printer.finish()
                where = f" at {endpoint}" if isinstance(exc, SlsError) else ""  # else the reader process died
                raise fail_error(exc, f"SLS {project}/{logstore}{where}: ") from None
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    printer.finish()
    what = "backfilled" if window is not None else "consumed"
    say(
        f"{what} {stats.records:,} log records from {project}/{logstore} ({len(stats.shards)} shards), "
        f"{stats.rejected:,} rejected, into {redact_url(state(ctx).store_url)}"
    )
    if group is not None:
        say(
            f"consumer {group.consumer} of group {group.name} held shards {_shard_list(group.held_ever)}"
            + (f", released {_shard_list(stats.released_shards)}" if stats.released_shards else "")
        )


def _shard_list(shards: set[int]) -> str:
    return ", ".join(map(str, sorted(shards))) if shards else "none"


def register(app: typer.Typer) -> None:
    ingest_app.command("sls")(sls)
