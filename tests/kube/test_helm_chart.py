"""The Helm chart (deploy/helm/liubai): it lints, renders with each part switched on or off, refuses bad
values with what to fix, renders the kustomize example's very objects when given the example's settings
(so the two cannot drift, RBAC rules included), and a real API server accepts what it renders."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests._real import missing
from tests.deploy_spec import ROOT, check_workload_commands, pod_containers
from tests.kube_cluster import KubeCluster

CHART = ROOT / "deploy" / "helm" / "liubai"
KUBE = ROOT / "deploy" / "kubernetes"
PARTS = ("api", "collector", "webhook", "agent")
CERT_MANAGER_KINDS = {"Certificate", "Issuer"}
CLUSTER_KINDS = {"ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration"}
RBAC_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding"}
Docs = list[dict[str, Any]]


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Helm]:
    binary = os.environ.get("LIUBAI_HELM") or shutil.which("helm")
    if binary is None:
        missing("helm", "helm is not installed: build it with scripts/helm and set LIUBAI_HELM")
    yield Helm(str(binary), tmp_path_factory.mktemp("helm-home"))


class Helm:
    """The helm binary, with its caches and config in a folder of the test's own."""

    def __init__(self, binary: str, home: Path) -> None:
        self.binary = binary
        self.env = {
            **os.environ,
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
        }

    def run(self, *args: str, values: dict[str, Any] | None = None) -> subprocess.CompletedProcess[str]:
        if values is not None:
            args = (*args, "--values", "-")
        return subprocess.run(
            [self.binary, *args],
            input=yaml.safe_dump(values) if values is not None else None,
            capture_output=True,
            text=True,
            timeout=120,
            env=self.env,
            check=False,
        )

    def template(
        self, release: str = "liubai", namespace: str = "liubai", values: dict[str, Any] | None = None
    ) -> Docs:
        out = self.run("template", release, str(CHART), "--namespace", namespace, values=values)
        assert out.returncode == 0, out.stderr
        return [d for d in yaml.safe_load_all(out.stdout) if d]


def _find(docs: Docs, kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def _part(doc: dict[str, Any]) -> str | None:
    return (doc["metadata"].get("labels") or {}).get("app.kubernetes.io/component")


def _kustomize(directory: Path) -> Docs:
    out = subprocess.run(
        ["kubectl", "kustomize", str(directory)], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def _example_values() -> dict[str, Any]:
    """The settings of overlays/example (its images and its Neo4j literals) as the chart's values."""
    example = yaml.safe_load((KUBE / "overlays" / "example" / "kustomization.yaml").read_text())
    images = {
        i["name"].removeprefix("liubai-"): {"repository": i["newName"], "tag": i["newTag"]}
        for i in example["images"]
    }
    literals = dict(line.split("=", 1) for line in example["secretGenerator"][0]["literals"])
    return {"image": images, "neo4j": {"url": literals["url"], "password": literals["password"]}}


def _comparable(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` without what only says who made it (labels, and the selectors built from them), with a
    Secret's values as text and a Service's type only where it is not the default."""
    doc = yaml.safe_load(yaml.safe_dump(doc))
    doc["metadata"].pop("labels", None)
    spec = doc.get("spec", {})
    spec.pop("selector", None)
    if doc["kind"] == "Service" and spec.get("type") == "ClusterIP":
        spec.pop("type")
    if "template" in spec:
        spec["template"]["metadata"].pop("labels", None)
        if not spec["template"]["metadata"]:
            spec["template"].pop("metadata")
        for c in pod_containers(doc):
            c.pop("imagePullPolicy", None)
    if doc["kind"] == "Secret":
        text = doc.pop("stringData", {})
        text |= {k: base64.b64decode(v).decode() for k, v in doc.pop("data", {}).items()}
        doc["stringData"] = text
    return doc


def _by_name(docs: Docs) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): _comparable(d) for d in docs}


# --------------------------------------------------------------------------- rendering


def test_the_chart_lints(helm: Helm) -> None:
    out = helm.run("lint", "--strict", str(CHART))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 chart(s) failed" in out.stdout


def test_with_the_example_settings_the_chart_renders_the_kustomize_example(helm: Helm) -> None:
    """Every object of overlays/example (but the Namespace, which the release's namespace is), field for
    field: containers, RBAC rules, webhook registration, certificate, Secret."""
    example = _by_name([d for d in _kustomize(KUBE / "overlays" / "example") if d["kind"] != "Namespace"])
    chart = _by_name(helm.template(values=_example_values()))
    assert sorted(chart) == sorted(example)
    for key, doc in example.items():
        assert chart[key] == doc, key


def test_selectors_pick_their_own_part_s_pods(helm: Helm) -> None:
    """What the comparison with kustomize leaves out: each selector matches its own Pods and no other."""
    docs = helm.template()
    workloads = [d for d in docs if "template" in d.get("spec", {})]
    templates = {_part(d): d["spec"]["template"]["metadata"]["labels"] for d in workloads}
    assert set(templates) == set(PARTS)
    selectors = [(_part(d), d["spec"]["selector"]["matchLabels"]) for d in workloads]
    selectors += [(_part(d), d["spec"]["selector"]) for d in docs if d["kind"] == "Service"]
    for part, selector in selectors:
        matched = [p for p, labels in templates.items() if selector.items() <= labels.items()]
        assert matched == [part], (part, selector)


def test_the_release_names_the_objects_and_their_namespace(helm: Helm) -> None:
    docs = helm.template("audit", "lineage")
    for doc in docs:
        assert doc["metadata"]["name"].startswith("audit-liubai-"), doc["metadata"]["name"]
        if doc["kind"] not in CLUSTER_KINDS:
            assert doc["metadata"]["namespace"] == "lineage", doc["metadata"]["name"]
    registration = _find(docs, "MutatingWebhookConfiguration", "audit-liubai-audit")
    webhook = registration["webhooks"][0]
    service = webhook["clientConfig"]["service"]
    assert (service["namespace"], service["name"]) == ("lineage", "audit-liubai-webhook")
    assert _find(docs, "Service", "audit-liubai-webhook")["spec"]["ports"][0]["port"] == service["port"]
    assert set(webhook["namespaceSelector"]["matchExpressions"][0]["values"]) == {"kube-system", "lineage"}
    cert = _find(docs, "Certificate", "audit-liubai-webhook")
    assert "audit-liubai-webhook.lineage.svc" in cert["spec"]["dnsNames"]
    assert (
        registration["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
        == "lineage/audit-liubai-webhook"
    )
    volumes = _find(docs, "Deployment", "audit-liubai-webhook")["spec"]["template"]["spec"]["volumes"]
    assert cert["spec"]["secretName"] in {v.get("secret", {}).get("secretName") for v in volumes}
    _find(docs, "Issuer", cert["spec"]["issuerRef"]["name"])
    agent = _find(docs, "DaemonSet", "audit-liubai-agent")["spec"]["template"]["spec"]["containers"][0]
    assert "--server=http://audit-liubai-api.lineage.svc:8000" in agent["args"]
    api = _find(docs, "Deployment", "audit-liubai-api")["spec"]["template"]["spec"]["containers"][0]
    hosts = next(e["value"] for e in api["env"] if e["name"] == "LIUBAI_ALLOWED_HOSTS").split(",")
    assert "audit-liubai-api.lineage.svc" in hosts


def test_an_issuer_of_one_s_own_and_more_namespaces_left_out(helm: Helm) -> None:
    issuer = {"kind": "ClusterIssuer", "name": "corp-ca", "group": "cert-manager.io"}
    values = {
        "fullnameOverride": "lineage",
        "webhook": {"tls": {"certManager": {"issuerRef": issuer}}, "excludeNamespaces": ["batch", "liubai"]},
    }
    docs = helm.template(values=values)
    assert not [d for d in docs if d["kind"] == "Issuer"]
    assert _find(docs, "Certificate", "lineage-webhook")["spec"]["issuerRef"] == issuer
    webhook = _find(docs, "MutatingWebhookConfiguration", "lineage-audit")["webhooks"][0]
    assert webhook["namespaceSelector"]["matchExpressions"][0]["values"] == ["kube-system", "liubai", "batch"]


def test_the_rbac_rules_are_the_kustomize_base_s_under_any_release(helm: Helm) -> None:
    base = {d["metadata"]["name"]: d for d in _kustomize(KUBE / "base") if d["kind"] == "ClusterRole"}
    docs = helm.template("audit", "lineage")
    roles = {d["metadata"]["name"] for d in docs if d["kind"] == "ClusterRole"}
    assert roles == {f"audit-{name}" for name in base}
    for part in ("collector", "webhook", "agent"):
        name = f"audit-liubai-{part}"
        assert _find(docs, "ClusterRole", name)["rules"] == base[f"liubai-{part}"]["rules"], part
        binding = _find(docs, "ClusterRoleBinding", name)
        assert binding["roleRef"]["name"] == name
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": "lineage"}]
        _find(docs, "ServiceAccount", name)
    assert _find(docs, "ServiceAccount", "audit-liubai-api")["automountServiceAccountToken"] is False


@pytest.mark.parametrize("off", PARTS)
def test_each_part_switches_off_alone(helm: Helm, off: str) -> None:
    docs = helm.template(values={off: {"enabled": False}})
    parts = {_part(d) for d in docs} - {None}
    assert parts == set(PARTS) - {off}
    check_workload_commands(docs)


def test_all_parts_off_render_nothing_to_run(helm: Helm) -> None:
    docs = helm.template(values={p: {"enabled": False} for p in PARTS})
    assert docs == []


def test_every_container_runs_a_real_command_of_a_dockerfile_target(helm: Helm) -> None:
    check_workload_commands(helm.template())
    check_workload_commands(helm.template(values=_example_values()))


def test_scheduling_resources_and_images_come_from_the_values(helm: Helm) -> None:
    tolerations = [{"key": "dedicated", "operator": "Equal", "value": "system"}]
    values: dict[str, Any] = {
        "image": {"agent": {"repository": "reg.example/agent", "tag": "9.9.9", "pullPolicy": "Always"}},
        "imagePullSecrets": [{"name": "pull"}],
        "collector": {
            "nodeSelector": {"pool": "system"},
            "tolerations": tolerations,
            "resources": {"requests": {"cpu": "50m"}},
        },
        "agent": {"excludeNamespaces": ["kube-system", "batch"], "server": "https://lineage.example"},
    }
    docs = helm.template(values=values)
    collector = _find(docs, "Deployment", "liubai-collector")["spec"]["template"]["spec"]
    assert collector["nodeSelector"] == {"pool": "system"}
    assert collector["tolerations"] == tolerations
    # merged into the defaults, as Helm merges values
    assert collector["containers"][0]["resources"] == {
        "requests": {"cpu": "50m", "memory": "256Mi"},
        "limits": {"memory": "1Gi"},
    }
    assert collector["imagePullSecrets"] == [{"name": "pull"}]
    agent = _find(docs, "DaemonSet", "liubai-agent")["spec"]["template"]["spec"]["containers"][0]
    assert (agent["image"], agent["imagePullPolicy"]) == ("reg.example/agent:9.9.9", "Always")
    assert [a for a in agent["args"] if a.startswith(("--exclude", "--server"))] == [
        "--server=https://lineage.example",
        "--exclude-namespace=kube-system",
        "--exclude-namespace=batch",
    ]


def test_an_existing_neo4j_secret_is_used_not_made(helm: Helm) -> None:
    docs = helm.template(values={"neo4j": {"existingSecret": "graph", "urlKey": "uri"}})
    assert not [d for d in docs if d["kind"] == "Secret"]
    for doc in docs:
        if doc["kind"] == "Deployment":
            env = {
                e["name"]: e["valueFrom"]["secretKeyRef"]
                for e in doc["spec"]["template"]["spec"]["containers"][0]["env"]
                if "valueFrom" in e
            }
            assert env["LIUBAI_STORE"] == {"name": "graph", "key": "uri"}, doc["metadata"]["name"]
            assert env["LIUBAI_NEO4J_PASSWORD"] == {"name": "graph", "key": "password"}


def test_the_guide_s_values_file_renders(helm: Helm) -> None:
    from tests.test_guides import blocks

    (block,) = [b for b in blocks("deploy.md") if b.lang == "yaml" and b.text.startswith("# my-values.yaml")]
    docs = helm.template(values=yaml.safe_load(block.text))
    images = {c["image"] for d in docs if "template" in d.get("spec", {}) for c in pod_containers(d)}
    assert images == {"registry.example.com/liubai/api:0.1.0", "registry.example.com/liubai/agent:0.1.0"}
    check_workload_commands(docs)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"image": {"api": {"pullPolicy": "Sometimes"}}},
            "image.api.pullPolicy must be one of the following",
        ),
        ({"api": {"enable": False}}, "api: Additional property enable is not allowed"),
        ({"webhook": {"replicas": 0}}, "webhook.replicas: Must be greater than or equal to 1"),
        ({"agent": {"server": "lineage.example:8000"}}, "agent.server: Does not match pattern"),
        ({"image": {"agent": {"tag": "latest"}}}, "image.agent.tag: latest names no release"),
        ({"neo4j": {"url": "neo4j://graph:7687"}}, "neo4j: give both neo4j.url and neo4j.password"),
        (
            {"webhook": {"tls": {"certManager": {"enabled": False}, "secretName": "tls"}}},
            "webhook.tls.caBundle: give the base64 PEM of the CA",
        ),
    ],
    ids=["enum", "unknown-key", "minimum", "pattern", "latest", "half-neo4j", "no-ca"],
)
def test_bad_values_are_refused_saying_what_to_fix(helm: Helm, values: dict[str, Any], message: str) -> None:
    out = helm.run("template", "liubai", str(CHART), values=values)
    assert out.returncode != 0 and out.stdout == ""
    assert message in out.stderr, out.stderr


# --------------------------------------------------------------------------- against the API server

RELEASE = "audit"


@pytest.fixture(scope="module")
def release_namespace(kube_cluster: KubeCluster) -> Iterator[str]:
    import secrets

    name = kube_cluster.create_namespace(f"t-helm-{secrets.token_hex(3)}")
    yield name
    kube_cluster.delete_namespace(name)


def _own_ca(cluster: KubeCluster) -> dict[str, Any]:
    """Values for a webhook certificate of one's own: the cluster's CA stands in for it."""
    bundle = base64.b64encode(Path(cluster.ca_file).read_bytes()).decode()
    return {
        "webhook": {
            "tls": {"certManager": {"enabled": False}, "secretName": "webhook-tls", "caBundle": bundle}
        },
        "neo4j": {"url": "neo4j://neo4j.graph.svc:7687", "password": "a-long-password"},
    }


@pytest.mark.parametrize("certificate", ["cert-manager", "own-ca"])
def test_the_api_server_accepts_the_chart(
    helm: Helm, kube_cluster: KubeCluster, release_namespace: str, certificate: str
) -> None:
    values = _own_ca(kube_cluster) if certificate == "own-ca" else None
    docs = helm.template(RELEASE, release_namespace, values)
    # cert-manager's own kinds need its CRDs, which come with cert-manager
    sent = [d for d in docs if d["kind"] not in CERT_MANAGER_KINDS]
    out = kube_cluster.kubectl(
        "apply", "--dry-run=server", "-f", "-", "-o", "name", stdin=yaml.safe_dump_all(sent)
    )
    applied = set(out.stdout.split())
    assert len(applied) == len(sent), out.stdout
    assert f"mutatingwebhookconfiguration.admissionregistration.k8s.io/{RELEASE}-liubai-audit" in applied
    assert f"daemonset.apps/{RELEASE}-liubai-agent" in applied
    assert (f"secret/{RELEASE}-liubai-neo4j" in applied) == (certificate == "own-ca")


@pytest.fixture(scope="module")
def chart_rbac(helm: Helm, kube_cluster: KubeCluster, release_namespace: str) -> Iterator[KubeCluster]:
    """The chart's accounts, roles and bindings applied for real, for ``auth can-i`` to judge."""
    rbac = yaml.safe_dump_all(
        [d for d in helm.template(RELEASE, release_namespace) if d["kind"] in RBAC_KINDS]
    )
    kube_cluster.kubectl("apply", "-f", "-", stdin=rbac)
    try:
        yield kube_cluster
    finally:
        kube_cluster.kubectl("delete", "--ignore-not-found", "--wait=false", "-f", "-", stdin=rbac)


@pytest.mark.parametrize(
    ("part", "verb", "resource", "namespace", "allowed"),
    [
        ("collector", "watch", "pods", None, True),
        ("collector", "list", "applications.argoproj.io", None, True),
        ("collector", "get", "secrets", None, False),
        ("webhook", "get", "kustomizations.kustomize.toolkit.fluxcd.io", "argocd", True),
        ("webhook", "list", "applications.argoproj.io", None, False),
        ("agent", "list", "pods", None, True),
        ("agent", "watch", "pods", None, False),
        ("api", "list", "pods", None, False),
    ],
)
def test_the_release_s_accounts_may_what_their_program_does(
    chart_rbac: KubeCluster,
    release_namespace: str,
    part: str,
    verb: str,
    resource: str,
    namespace: str | None,
    allowed: bool,
) -> None:
    """The bindings name the accounts in the release's namespace (rules alone would not show that)."""
    account = f"system:serviceaccount:{release_namespace}:{RELEASE}-liubai-{part}"
    where = ["-n", namespace] if namespace else ["--all-namespaces"]
    out = chart_rbac.kubectl("auth", "can-i", verb, resource, f"--as={account}", *where, check=False)
    assert out.stdout.strip() == ("yes" if allowed else "no"), out.stderr


def test_the_notes_say_how_to_read_the_first_admin_token(
    helm: Helm, kube_cluster: KubeCluster, release_namespace: str
) -> None:
    """``helm install`` as it runs against the cluster (server dry run), and the command its notes give
    names the Deployment and init container the release has."""
    values = _own_ca(kube_cluster)
    out = helm.run(
        "install", "notes", str(CHART), "--dry-run=server", "--namespace", release_namespace,
        "--kubeconfig", kube_cluster.kubeconfig, values=values,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    notes = out.stdout.split("NOTES:", 1)[1]
    command = f"kubectl -n {release_namespace} logs deploy/notes-liubai-api -c token-init"
    assert command in notes, notes
    api = _find(helm.template("notes", release_namespace, values), "Deployment", "notes-liubai-api")
    assert [c["name"] for c in api["spec"]["template"]["spec"]["initContainers"]] == ["token-init"]
    assert "create secret generic notes-liubai-agent-token" in notes
