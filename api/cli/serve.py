"""``liubai serve``: the GraphQL API, GraphiQL and the web UI over the selected store, via uvicorn."""

from __future__ import annotations

import ipaddress
import os
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.text import Text

from liubai.api.cli.common import check_listen, console, err_console, fail, printable, say, state
from liubai.lineage.store import StoreError, open_store
from liubai.lineage.urls import redact_url

__all__ = ["register"]


def _url_host(host: str) -> str:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if ip.is_unspecified:
        return "127.0.0.1" if ip.version == 4 else "[::1]"
    return f"[{host}]" if ip.version == 6 else host


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def serve_cmd(
    ctx: typer.Context,
    host: Annotated[
        str,
        typer.Option(
            "--host", help="Address to listen on; keep 127.0.0.1 unless a proxy with auth is in front."
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", min=1, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[
        int, typer.Option("--workers", "-w", min=1, max=64, help="Worker processes (each opens the store).")
    ] = 1,
    log_level: Annotated[
        str,
        typer.Option(
            "--log-level", help="Log level: critical, error, warning, info (a JSON line per request), debug."
        ),
    ] = "info",
    auth: Annotated[
        bool, typer.Option("--auth", help="Require API tokens from 'liubai token create' (LIUBAI_AUTH=1).")
    ] = False,
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure", help="Allow a non-loopback --host without --auth (a proxy authenticates)."
        ),
    ] = False,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allowed-host",
            help="Another Host name clients reach this server by, e.g. a proxy's public name; NAME or NAME:PORT, repeatable (also LIUBAI_ALLOWED_HOSTS).",
        ),
    ] = None,
) -> None:
    """Serve the lineage API (POST /graphql), GraphiQL (GET /graphql), the web UI (/), agent batches
    (POST /v1/ingest) and OTLP/HTTP logs and traces (POST /v1/logs, /v1/traces).

    Example: liubai --store sqlite:///lineage.db serve --port 8000
    """
    import uvicorn

    from liubai.api.auth import (  # the web stack loads only for this command
        UnsafeBind,
        is_loopback,
        prepare_serve,
    )
    from liubai.api.http_protocol import LimitedHttpToolsProtocol, http_settings
    from liubai.api.request_guard import GuardSettings, parse_host

    store_url = state(ctx).store_url
    try:  # fail now, in one line, rather than on the first request (a damaged store opens, then fails)
        store = open_store(store_url)
        try:
            store.probe()
        finally:
            store.close()
    except StoreError as exc:
        raise fail(f"cannot open store {redact_url(store_url)}: {exc}") from None
    try:
        settings = prepare_serve(host, auth, insecure)
    except UnsafeBind as exc:
        raise fail(str(exc), code=2) from None
    if not settings.auth and host not in ("127.0.0.1", "localhost", "::1"):
        err_console.print(
            Text(
                f"warning: listening on {printable(host)} without authentication (--insecure)", style="yellow"
            )
        )
    hosts = [*GuardSettings().allowed_hosts, *(allowed_host or [])]
    if settings.auth and not is_loopback(host) and not _is_address(host):
        # Clients reach an exposed, authenticating server by the name it was bound to. An address needs no
        # entry: the address a connection reached is always accepted as its Host.
        hosts.append(host)
    bad = next((h for h in hosts if parse_host(h) is None), None)
    if bad is not None:
        raise fail(
            f"allowed host {printable(bad)!r} (--allowed-host, LIUBAI_ALLOWED_HOSTS): not a host name with an "
            "optional :port",
            code=2,
        )
    os.environ["LIUBAI_ALLOWED_HOSTS"] = ",".join(hosts)  # workers build their app from the environment
    try:
        limits = http_settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "LIUBAI_HTTP_" + "_".join(str(part) for part in first["loc"]).upper()
        raise fail(f"{name}: {first['msg']}", code=2) from None
    check_listen(host, port)
    base = printable(f"http://{_url_host(host)}:{port}")
    say(f"store     {redact_url(store_url)}")
    say(f"web UI    {base}/")
    say(f"GraphiQL  {base}/graphql")
    console.print(Text(f"health    {base}/healthz"), style="dim")
    # Every worker builds its app from the environment, so one code path serves 1 or N workers.
    os.environ["LIUBAI_STORE"] = store_url
    os.environ["LIUBAI_LOG_LEVEL"] = log_level
    # httptools with request-head limits (less CPU per request than h11: bench/http_protocol.py); uvicorn
    # picks uvloop when installed. Its access log is off because the app writes its own JSON line per
    # request, with the request id. Workers read the same LIUBAI_HTTP_* limits from the environment.
    uvicorn.run(
        "liubai.api.app:create_app_from_env",
        factory=True,
        http=LimitedHttpToolsProtocol,
        timeout_keep_alive=limits.keepalive_s,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        proxy_headers=False,
        server_header=False,
        access_log=False,
    )


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_cmd)
