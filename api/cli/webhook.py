"""``liubai webhook``: the mutating admission webhook that stamps audit ids at deploy time."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Annotated

import typer
import yaml

from liubai.api.cli.common import check_listen, fail, say, state
from liubai.api.cli.serve import _url_host
from liubai.collector.admission.cluster_reader import CachedReader, kube_reader
from liubai.collector.admission.decide import OnMalformed, WebhookSettings
from liubai.collector.admission.registration import webhook_configuration
from liubai.collector.admission.revision import DEFAULT_CONTROLLER_USERS, GitOpsSettings, ReadFailed
from liubai.lineage.store import StoreError, open_store
from liubai.lineage.urls import redact_url

__all__ = ["register"]


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise fail(f"{what} {path}: {exc.strerror or exc}") from None


def _check_tls(cert: Path, key: Path, client_ca: Path | None) -> None:
    """Fail in one line now rather than in a traceback from the server's start."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as exc:
        raise fail(f"--cert {cert} / --key {key}: {getattr(exc, 'strerror', None) or exc}") from None
    if client_ca is not None:
        try:
            context.load_verify_locations(str(client_ca))
        except (OSError, ssl.SSLError) as exc:
            raise fail(f"--client-ca {client_ca}: {getattr(exc, 'strerror', None) or exc}") from None


def _parse_service(value: str) -> tuple[str, str, int]:
    """``namespace/name[:port]``."""
    ref, _, port = value.partition(":")
    namespace, sep, name = ref.partition("/")
    if not sep or not namespace or not name or (port and not port.isdigit()):
        raise fail(f"--service {value!r}: want NAMESPACE/NAME[:PORT]", code=2)
    return namespace, name, int(port or 443)


def _print_registration(
    cert: Path, ca_file: Path | None, url: str | None, service: str | None, failure_policy: str
) -> None:
    if (url is None) == (service is None):
        raise fail(
            "--print-registration needs --url https://HOST:PORT/mutate or --service NS/NAME[:PORT]", code=2
        )
    if url is not None and not url.startswith("https://"):
        raise fail(f"--url {url!r}: the API server calls webhooks over https:// only", code=2)
    bundle = _read(ca_file or cert, "--ca-file" if ca_file else "--cert")
    config = webhook_configuration(
        bundle,
        url=url,
        service=_parse_service(service) if service else None,
        failure_policy=failure_policy,
    )
    typer.echo(yaml.safe_dump(config, sort_keys=False), nl=False)


def webhook_cmd(
    ctx: typer.Context,
    cert: Annotated[
        Path, typer.Option("--cert", help="Serving certificate (PEM), its SAN the name the API server calls.")
    ],
    key: Annotated[Path, typer.Option("--key", help="Private key of --cert (PEM).")],
    port: Annotated[int, typer.Option("--port", "-p", min=1, max=65535, help="HTTPS port.")] = 8443,
    bind: Annotated[
        str, typer.Option("--bind", help="Address to listen on; 0.0.0.0 in a Pod behind a Service.")
    ] = "127.0.0.1",
    client_ca: Annotated[
        Path | None,
        typer.Option(
            "--client-ca",
            help="Require a client certificate signed by this CA (the API server's admission kubeconfig): "
            "without it, whoever reaches the port can add admission records.",
        ),
    ] = None,
    on_malformed: Annotated[
        OnMalformed,
        typer.Option(
            "--on-malformed",
            help="An object carrying a malformed x-gitops-audit-id: refuse it (kubectl shows why) or let it "
            "through unchanged with a warning.",
        ),
    ] = OnMalformed.REFUSE,
    max_object_bytes: Annotated[
        int, typer.Option("--max-object-bytes", min=1024, help="Larger objects are admitted unstamped.")
    ] = 1024 * 1024,
    cluster: Annotated[
        str | None, typer.Option("--cluster", help="Cluster name in workload ids (as for 'ingest k8s').")
    ] = None,
    kubeconfig: Annotated[
        str | None,
        typer.Option(
            "--kubeconfig", help="Read Argo CD and Flux objects with this kubeconfig (default: in-cluster)."
        ),
    ] = None,
    context: Annotated[str | None, typer.Option("--context", help="Context of --kubeconfig.")] = None,
    argocd_namespace: Annotated[
        str, typer.Option("--argocd-namespace", help="Namespace of Argo CD Applications.")
    ] = "argocd",
    controller_user: Annotated[
        list[str] | None,
        typer.Option(
            "--controller-user",
            help="Glob of a user whose requests are a GitOps controller's (repeatable; replaces the "
            f"defaults {', '.join(DEFAULT_CONTROLLER_USERS)}); '*' trusts every user.",
        ),
    ] = None,
    cache_ttl: Annotated[
        float,
        typer.Option("--cache-ttl", min=0.0, help="Seconds an Argo CD or Flux object read is reused."),
    ] = 2.0,
    queue_size: Annotated[
        int, typer.Option("--queue-size", min=1, help="Admission records waiting for the store at most.")
    ] = 10_000,
    log_level: Annotated[
        str, typer.Option("--log-level", help="critical, error, warning, info (a line per decision), debug.")
    ] = "info",
    print_registration: Annotated[
        bool,
        typer.Option(
            "--print-registration",
            help="Print the MutatingWebhookConfiguration for --url or --service (caBundle: --ca-file or "
            "--cert) and exit.",
        ),
    ] = False,
    url: Annotated[
        str | None, typer.Option("--url", help="With --print-registration: https://HOST:PORT/mutate.")
    ] = None,
    service: Annotated[
        str | None, typer.Option("--service", help="With --print-registration: NAMESPACE/NAME[:PORT].")
    ] = None,
    ca_file: Annotated[
        Path | None, typer.Option("--ca-file", help="With --print-registration: the CA that signed --cert.")
    ] = None,
    failure_policy: Annotated[
        str,
        typer.Option(
            "--failure-policy",
            help="With --print-registration: Ignore (a down webhook never blocks) or Fail.",
        ),
    ] = "Ignore",
) -> None:
    """Serve the audit webhook: stamps x-gitops-audit-id (commit from Argo CD or Flux, a new trace per
    rollout) on Deployments, StatefulSets, DaemonSets, Jobs, CronJobs and Pods, and records who deployed what.

    Example: liubai --store sqlite:///lineage.db webhook --cert tls.crt --key tls.key --bind 0.0.0.0

    Register it: liubai webhook --cert tls.crt --key tls.key --print-registration --service liubai/webhook | kubectl apply -f -
    """
    if failure_policy not in ("Ignore", "Fail"):
        raise fail(f"--failure-policy {failure_policy!r}: Ignore or Fail", code=2)
    if print_registration:
        _print_registration(cert, ca_file, url, service, failure_policy)
        return
    from liubai.collector.admission.recorder import AdmissionRecorder
    from liubai.collector.admission.server import AdmissionService, TlsFiles, create_app, run_server

    _check_tls(cert, key, client_ca)
    check_listen(bind, port)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    store_url = state(ctx).store_url
    shown = redact_url(store_url)
    try:
        probe = open_store(store_url)
        probe.close()
    except StoreError as exc:
        say(
            f"warning: store {shown} unavailable ({exc}): admissions go on, their records are dropped until it is back",
            err=True,
        )
    gitops = GitOpsSettings(
        argocd_namespace, tuple(controller_user) if controller_user else DEFAULT_CONTROLLER_USERS
    )
    settings = WebhookSettings(on_malformed, max_object_bytes, cluster, gitops)
    reader = _reader(kubeconfig, context, cache_ttl)
    recorder = AdmissionRecorder(lambda: open_store(store_url), queue_size=queue_size, label=f"store {shown}")
    service_ = AdmissionService(settings, reader, recorder)
    base = f"https://{_url_host(bind)}:{port}"
    say(f"webhook   {base}/mutate")
    say(f"health    {base}/healthz   metrics {base}/metrics")
    say(f"store     {shown}")
    run_server(
        create_app(service_),
        bind,
        port,
        TlsFiles(str(cert), str(key), str(client_ca) if client_ca else None),
        log_level,
    )


def _reader(kubeconfig: str | None, context: str | None, ttl: float) -> CachedReader | None:
    try:
        reader = kube_reader(kubeconfig, context)
    except ImportError:
        say(
            "revisions not read: Argo CD and Flux lookups need the 'k8s' extra: pip install 'liubai[k8s]'",
            err=True,
        )
        return None
    except ReadFailed as exc:
        say(f"revisions not read: {exc}", err=True)
        return None
    say(f"revisions Argo CD and Flux objects from the cluster (reused for {ttl:g} s)")
    return CachedReader(reader, ttl=ttl)


def register(app: typer.Typer) -> None:
    app.command("webhook")(webhook_cmd)
