"""The Kubernetes manifests (deploy/kubernetes): they render, a real API server accepts them, and each
service account may do exactly what its program does there, proven by running that program's own
cluster reads under the account's token."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from liubai.collector.admission.registration import webhook_configuration
from liubai.collector.k8s.resources import BUILTIN, GITOPS
from tests.deploy_spec import ROOT, check_workload_commands, pod_containers
from tests.kube_cluster import KubeCluster
from tests.kube_watch import run_liubai

KUBE = ROOT / "deploy" / "kubernetes"
BASE = KUBE / "base"
EXAMPLE = KUBE / "overlays" / "example"
NS = "liubai"
CERT_MANAGER_KINDS = {"Certificate", "Issuer"}


def _render(directory: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        ["kubectl", "kustomize", str(directory)], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def _find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


@pytest.fixture(scope="module")
def base() -> list[dict[str, Any]]:
    return _render(BASE)


def test_the_base_renders_the_four_programs(base: list[dict[str, Any]]) -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for d in base}
    assert {
        ("Deployment", "liubai-api"),
        ("Service", "liubai-api"),
        ("Deployment", "liubai-collector"),
        ("Deployment", "liubai-webhook"),
        ("Service", "liubai-webhook"),
        ("MutatingWebhookConfiguration", "liubai-audit"),
        ("DaemonSet", "liubai-agent"),
    } <= kinds
    assert not {k for k, _ in kinds} & CERT_MANAGER_KINDS  # the base needs no cert-manager
    for doc in base:
        if doc["kind"] not in {
            "Namespace",
            "ClusterRole",
            "ClusterRoleBinding",
            "MutatingWebhookConfiguration",
        }:
            assert doc["metadata"]["namespace"] == NS, doc["metadata"]["name"]


def test_every_container_runs_a_real_command_of_a_dockerfile_target(base: list[dict[str, Any]]) -> None:
    check_workload_commands(base)
    api = _find(base, "Deployment", "liubai-api")
    serve = next(c for c in pod_containers(api) if c["args"][0] == "serve")
    assert "--auth" in serve["args"]
    assert [c["args"][:2] for c in api["spec"]["template"]["spec"]["initContainers"]] == [["token", "init"]]
    collector = _find(base, "Deployment", "liubai-collector")["spec"]["template"]["spec"]["containers"][0]
    assert collector["args"][:2] == ["ingest", "k8s"] and "--watch" in collector["args"]
    agent = _find(base, "DaemonSet", "liubai-agent")["spec"]["template"]["spec"]
    assert agent["hostPID"] is True and agent["containers"][0]["securityContext"]["privileged"] is True
    assert "--ebpf" in agent["containers"][0]["args"]
    mounts = {m["mountPath"] for m in agent["containers"][0]["volumeMounts"]}
    assert {"/sys/kernel/tracing", "/sys/fs/cgroup", "/lib/modules"} <= mounts


def test_the_registration_is_the_one_the_webhook_prints(base: list[dict[str, Any]]) -> None:
    """Rules, policies and the Service it calls as ``liubai webhook --print-registration`` has them."""
    shipped = _find(base, "MutatingWebhookConfiguration", "liubai-audit")["webhooks"][0]
    printed = webhook_configuration(b"", service=(NS, "liubai-webhook", 443))["webhooks"][0]
    assert "caBundle" not in shipped["clientConfig"]  # injected, never committed
    printed["clientConfig"].pop("caBundle")
    skip = {"namespaceSelector"}
    assert {k: v for k, v in shipped.items() if k not in skip} == {
        k: v for k, v in printed.items() if k not in skip
    }
    excluded = shipped["namespaceSelector"]["matchExpressions"][0]["values"]
    assert set(excluded) == {"kube-system", NS}
    service = _find(base, "Service", "liubai-webhook")
    assert service["spec"]["ports"][0]["port"] == shipped["clientConfig"]["service"]["port"]


def test_the_cert_manager_component_certifies_the_webhook_service() -> None:
    docs = _render(EXAMPLE)
    cert = _find(docs, "Certificate", "liubai-webhook")
    webhook = _find(docs, "Deployment", "liubai-webhook")
    mwc = _find(docs, "MutatingWebhookConfiguration", "liubai-audit")
    svc = mwc["webhooks"][0]["clientConfig"]["service"]
    assert f"{svc['name']}.{svc['namespace']}.svc" in cert["spec"]["dnsNames"]
    volumes = webhook["spec"]["template"]["spec"]["volumes"]
    assert cert["spec"]["secretName"] in {v.get("secret", {}).get("secretName") for v in volumes}
    namespace = cert["metadata"]["namespace"]
    assert mwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == f"{namespace}/liubai-webhook"
    issuer = _find(docs, "Issuer", cert["spec"]["issuerRef"]["name"])
    assert issuer["metadata"]["namespace"] == namespace == NS
    assert _find(docs, "Secret", "liubai-neo4j")["metadata"]["namespace"] == NS


# --------------------------------------------------------------------------- against the API server


def _rbac(docs: list[dict[str, Any]]) -> str:
    keep = {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
    return yaml.safe_dump_all([d for d in docs if d["kind"] in keep])


@pytest.fixture(scope="module")
def installed_rbac(kube_cluster: KubeCluster, base: list[dict[str, Any]]) -> Iterator[KubeCluster]:
    """The namespace and RBAC objects applied for real (what ``can-i`` asks about); the rest only by
    server dry run, so no webhook registration is left to call into other tests' namespaces."""
    kube_cluster.kubectl("apply", "-f", "-", stdin=_rbac(base))
    try:
        yield kube_cluster
    finally:
        kube_cluster.kubectl("delete", "--ignore-not-found", "--wait=false", "-f", "-", stdin=_rbac(base))


def test_the_api_server_accepts_the_base_and_the_example(installed_rbac: KubeCluster) -> None:
    applied = installed_rbac.kubectl("apply", "--dry-run=server", "-k", str(BASE), "-o", "name")
    assert "mutatingwebhookconfiguration.admissionregistration.k8s.io/liubai-audit" in applied.stdout
    assert "daemonset.apps/liubai-agent" in applied.stdout
    # the example without cert-manager's own kinds (their CRDs come with cert-manager)
    docs = [d for d in _render(EXAMPLE) if d["kind"] not in CERT_MANAGER_KINDS]
    example = installed_rbac.kubectl(
        "apply", "--dry-run=server", "-f", "-", "-o", "name", stdin=yaml.safe_dump_all(docs)
    )
    assert "secret/liubai-neo4j" in example.stdout


def _can(cluster: KubeCluster, sa: str, verb: str, resource: str, namespace: str | None = None) -> bool:
    args = ["auth", "can-i", verb, resource, f"--as=system:serviceaccount:{NS}:{sa}"]
    args += ["-n", namespace] if namespace else ["--all-namespaces"]
    out = cluster.kubectl(*args, check=False)
    assert out.stdout.strip() in {"yes", "no"}, out.stderr
    return out.stdout.strip() == "yes"


def _label(group: str, plural: str) -> str:
    return f"{plural}.{group}" if group else plural


def test_the_collector_may_list_and_watch_what_it_reads_and_nothing_else(installed_rbac: KubeCluster) -> None:
    for r in (*BUILTIN, *GITOPS):
        for verb in ("list", "watch"):
            assert _can(installed_rbac, "liubai-collector", verb, r.label), f"{verb} {r.label}"
        assert not _can(installed_rbac, "liubai-collector", "get", r.label)
    for verb, resource in (
        ("get", "secrets"),
        ("list", "secrets"),
        ("list", "configmaps"),
        ("create", "pods"),
        ("delete", "deployments.apps"),
        ("patch", "applications.argoproj.io"),
        ("create", "pods/exec"),
    ):
        assert not _can(installed_rbac, "liubai-collector", verb, resource), f"{verb} {resource}"


def test_the_webhook_may_get_the_gitops_objects_and_nothing_else(installed_rbac: KubeCluster) -> None:
    readable = (
        "applications.argoproj.io",
        "kustomizations.kustomize.toolkit.fluxcd.io",
        "helmreleases.helm.toolkit.fluxcd.io",
    )
    for resource in readable:
        assert _can(installed_rbac, "liubai-webhook", "get", resource, "argocd")
        assert not _can(installed_rbac, "liubai-webhook", "list", resource)
        assert not _can(installed_rbac, "liubai-webhook", "update", resource, "argocd")
    for verb, resource in (
        ("get", "secrets"),
        ("get", "pods"),
        ("get", "gitrepositories.source.toolkit.fluxcd.io"),
    ):
        assert not _can(installed_rbac, "liubai-webhook", verb, resource, "argocd"), f"{verb} {resource}"


def test_the_agent_may_list_pods_and_the_api_nothing(installed_rbac: KubeCluster) -> None:
    assert _can(installed_rbac, "liubai-agent", "list", "pods")
    for verb, resource in (("watch", "pods"), ("get", "secrets"), ("list", "nodes"), ("create", "pods")):
        assert not _can(installed_rbac, "liubai-agent", verb, resource), f"{verb} {resource}"
    for verb, resource in (("list", "pods"), ("get", "secrets"), ("list", "namespaces")):
        assert not _can(installed_rbac, "liubai-api", verb, resource), f"{verb} {resource}"


def _token(cluster: KubeCluster, sa: str) -> str:
    from kubernetes import client

    core = client.CoreV1Api(cluster.api_client())
    req = core.create_namespaced_service_account_token(sa, NS, {"spec": {"expirationSeconds": 600}})
    return str(req.status.token)


def test_the_collector_reads_everything_under_its_own_account(
    installed_rbac: KubeCluster, tmp_path: Path
) -> None:
    kubeconfig = installed_rbac.kubeconfig_for(_token(installed_rbac, "liubai-collector"), tmp_path)
    done = run_liubai(f"sqlite:///{tmp_path / 'k.db'}", "ingest", "k8s", "--kubeconfig", kubeconfig, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["forbidden"] == [] and report["objects"] >= 1, report


def test_the_webhook_reads_gitops_objects_under_its_own_account(
    installed_rbac: KubeCluster, tmp_path: Path
) -> None:
    from liubai.collector.admission.cluster_reader import kube_reader
    from liubai.collector.admission.revision import ObjectRef

    kubeconfig = installed_rbac.kubeconfig_for(_token(installed_rbac, "liubai-webhook"), tmp_path)
    reader = kube_reader(kubeconfig)
    for group, version, plural, kind in (
        ("argoproj.io", "v1alpha1", "applications", "Application"),
        ("kustomize.toolkit.fluxcd.io", "v1", "kustomizations", "Kustomization"),
        ("helm.toolkit.fluxcd.io", "v2", "helmreleases", "HelmRelease"),
    ):
        # absent, not forbidden: ReadFailed would name the refusal
        assert reader.get(ObjectRef(group, version, plural, kind, "argocd", "nothing-here")) is None


def test_the_agent_kubeconfig_lists_its_node_pods_with_the_pod_token(
    installed_rbac: KubeCluster, base: list[dict[str, Any]], tmp_path: Path
) -> None:
    """The ConfigMap's kubeconfig as a Pod would use it (tokenFile, CA file), pointed at this cluster."""
    from liubai.collector.k8s.api import connect

    config = yaml.safe_load(_find(base, "ConfigMap", "liubai-agent-kubeconfig")["data"]["kubeconfig"])
    token_file = tmp_path / "token"
    token_file.write_text(_token(installed_rbac, "liubai-agent"))
    cluster = config["clusters"][0]["cluster"]
    assert cluster["server"] == "https://kubernetes.default.svc"
    cluster.update(server=installed_rbac.server, **{"certificate-authority": installed_rbac.ca_file})
    user = config["users"][0]["user"]
    assert user["tokenFile"] == "/var/run/secrets/kubernetes.io/serviceaccount/token"
    user["tokenFile"] = str(token_file)
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    api = connect(str(path))
    try:
        doc = api.get("/api/v1/pods", {"fieldSelector": "spec.nodeName=node-a"}, verb="list", resource="pods")
    finally:
        api.close()
    assert doc is not None and doc["kind"] == "PodList"
