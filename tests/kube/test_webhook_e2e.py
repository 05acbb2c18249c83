"""The audit webhook called by a real kube-apiserver: applies as Flux and Argo CD make them, with kubectl
and with the Python client, and what ends up on the objects, their Pods and in the store.

One ``liubai webhook`` serves the module; it is registered with a real ``MutatingWebhookConfiguration``
(the one ``--print-registration`` prints) limited to namespaces these tests label, so other tests of the
session's cluster never meet it. The Flux and Argo CD controllers are played by impersonating their
service accounts, as the API server would see them.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from liubai.lineage.model import (
    AUDIT_ID_ANNOTATION,
    AUDIT_ID_ENV,
    NodeKind,
    parse_audit_id,
    pod_node_id,
    workload_node_id,
)
from liubai.lineage.store import open_store
from tests.kube_cluster import KubeCluster
from tests.polling import wait_for
from tests.webhook_server import Webhook, running_webhook

pytestmark = pytest.mark.kube

FLUX_USER = "system:serviceaccount:flux-system:kustomize-controller"
ARGO_USER = "system:serviceaccount:argocd:argocd-application-controller"
HELM_USER = "system:serviceaccount:flux-system:helm-controller"
SELECTOR = "liubai.dev/webhook-test"


@dataclass(frozen=True, slots=True)
class Registered:
    cluster: KubeCluster
    hook: Webhook
    store_url: str
    token: str  # the namespace label value the registration selects

    def namespace(self, name: str) -> str:
        self.cluster.kubectl("label", "namespace", name, f"{SELECTOR}={self.token}")
        return name

    def admissions(self, **match: str) -> list[dict[str, Any]]:
        """Admission nodes in the webhook's store whose properties match."""
        store = open_store(self.store_url)
        try:
            nodes = [n for page in store.iter_nodes() for n in page if n.kind is NodeKind.ADMISSION]
        finally:
            store.close()
        return [n.props for n in nodes if all(n.props.get(k) == v for k, v in match.items())]

    def lineage_of_commit(self, commit: str) -> dict[str, dict[str, Any]]:
        """``liubai ingest k8s`` into the webhook's store (what the cluster runs next to what the webhook
        decided), then ``liubai lineage commit:<commit> --json``: the reached nodes by id."""
        ingest = liubai(
            "--store", self.store_url, "ingest", "k8s", "--kubeconfig", self.cluster.kubeconfig, "--json"
        )
        assert ingest.returncode == 0, ingest.stderr
        assert json.loads(ingest.stdout.strip().splitlines()[-1])["rejected"] == 0
        done = liubai("--store", self.store_url, "lineage", f"commit:{commit}", "--json")
        assert done.returncode == 0, done.stderr
        return {n["id"]: n for n in json.loads(done.stdout)["nodes"]}


def liubai(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "liubai.api.cli.main", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def registered(kube_cluster: KubeCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registered]:
    work = tmp_path_factory.mktemp("webhook")
    store_url = f"sqlite:///{work / 'lineage.db'}"
    token = secrets.token_hex(4)
    args = ("--kubeconfig", kube_cluster.kubeconfig, "--cache-ttl", "0.2", "--argocd-namespace", "argocd")
    with running_webhook(work, store_url, *args) as hook:
        port = hook.url.rsplit(":", 1)[1]
        printed = liubai(
            "webhook",
            "--cert",
            str(hook.cert),
            "--key",
            str(hook.key),
            "--print-registration",
            "--url",
            f"https://127.0.0.1:{port}/mutate",
            "--failure-policy",
            "Fail",
        )
        assert printed.returncode == 0, printed.stderr
        config = yaml.safe_load(printed.stdout)
        config["metadata"]["name"] = f"liubai-audit-{token}"
        webhook = config["webhooks"][0]
        webhook["namespaceSelector"] = {"matchLabels": {SELECTOR: token}}
        # a kind that runs no pods, to see it pass through unchanged
        webhook["rules"].append(
            {
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "operations": ["CREATE"],
                "resources": ["configmaps"],
                "scope": "Namespaced",
            }
        )
        kube_cluster.kubectl("apply", "-f", "-", stdin=json.dumps(config))
        for user in (FLUX_USER, ARGO_USER, HELM_USER):  # the controllers' service accounts may deploy
            name = f"{user.rsplit(':', 1)[1]}-{token}"
            kube_cluster.kubectl(
                "create", "clusterrolebinding", name, "--clusterrole=cluster-admin", f"--user={user}"
            )
        ready = Registered(kube_cluster, hook, store_url, token)
        probe = ready.namespace(kube_cluster.create_namespace(f"probe-{token}"))
        probe_args = (
            "create",
            "deployment",
            "probe",
            "-n",
            probe,
            "--image=x",
            "--dry-run=server",
            "-o",
            "yaml",
        )
        wait_for(
            "the API server to call the webhook",
            lambda: AUDIT_ID_ANNOTATION in kube_cluster.kubectl(*probe_args, check=False).stdout,
        )
        try:
            yield ready
        finally:
            kube_cluster.kubectl(
                "delete", "mutatingwebhookconfiguration", config["metadata"]["name"], check=False
            )
            for user in (FLUX_USER, ARGO_USER, HELM_USER):
                kube_cluster.kubectl(
                    "delete", "clusterrolebinding", f"{user.rsplit(':', 1)[1]}-{token}", check=False
                )
            kube_cluster.delete_namespace(probe)


def deployment(
    namespace: str, image: str = "registry.example/web:1.0", name: str = "web", **meta: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, **meta},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": image,
                            "env": [{"name": "OTEL_RESOURCE_ATTRIBUTES", "value": "service.name=web"}],
                        }
                    ],
                    "initContainers": [{"name": "migrate", "image": "registry.example/migrate:1"}],
                },
            },
        },
    }


def live(cluster: KubeCluster, namespace: str, kind: str, name: str) -> dict[str, Any]:
    out = cluster.kubectl("get", kind, name, "-n", namespace, "-o", "json").stdout
    result: dict[str, Any] = json.loads(out)
    return result


def pods_of(cluster: KubeCluster, namespace: str, app: str, count: int) -> list[dict[str, Any]]:
    def ready() -> list[dict[str, Any]] | None:
        out = cluster.kubectl("get", "pods", "-n", namespace, "-l", f"app={app}", "-o", "json").stdout
        items: list[dict[str, Any]] = json.loads(out)["items"]
        return items if len(items) >= count else None

    found: list[dict[str, Any]] = wait_for(f"{count} pods of {app}", ready)
    return found


def assert_stamped(obj: dict[str, Any], audit: str, template: tuple[str, ...] = ("spec", "template")) -> None:
    """``audit`` on the object and its pod template, and in every container's environment."""
    assert obj["metadata"]["annotations"][AUDIT_ID_ANNOTATION] == audit
    t = obj
    for key in template:
        t = t[key]
    assert t["metadata"]["annotations"][AUDIT_ID_ANNOTATION] == audit
    assert_pod_env(t["spec"], audit)


def assert_pod_env(spec: dict[str, Any], audit: str) -> None:
    for c in [*spec["containers"], *spec.get("initContainers", [])]:
        env = {e["name"]: e for e in c["env"]}
        assert (
            env[AUDIT_ID_ENV]["valueFrom"]["fieldRef"]["fieldPath"]
            == "metadata.annotations['x-gitops-audit-id']"
        )
        assert f"gitops.audit_id={audit}" in env["OTEL_RESOURCE_ATTRIBUTES"]["value"]


def set_status(
    cluster: KubeCluster, namespace: str, resource: str, name: str, status: dict[str, Any]
) -> None:
    cluster.kubectl(
        "patch",
        resource,
        name,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )


def test_an_apply_as_flux_makes_it_is_stamped_with_the_kustomizations_commit(
    registered: Registered, kube_namespace: str
) -> None:
    cluster, ns = registered.cluster, registered.namespace(kube_namespace)
    commit = secrets.token_hex(20)
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        stdin=json.dumps(
            {
                "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
                "kind": "Kustomization",
                "metadata": {"name": "apps", "namespace": ns},
                "spec": {"sourceRef": {"kind": "GitRepository", "name": "fleet"}, "path": "./apps"},
            }
        ),
    )
    set_status(
        cluster,
        ns,
        "kustomizations.kustomize.toolkit.fluxcd.io",
        "apps",
        {"lastAttemptedRevision": f"main@sha1:{commit}"},
    )
    labels = {"kustomize.toolkit.fluxcd.io/name": "apps", "kustomize.toolkit.fluxcd.io/namespace": ns}
    manifest = json.dumps(deployment(ns, labels=labels))
    flux_apply = (
        "apply",
        "--server-side",
        "--field-manager=kustomize-controller",
        f"--as={FLUX_USER}",
        "-f",
        "-",
    )
    cluster.kubectl(*flux_apply, stdin=manifest)

    obj = live(cluster, ns, "deployment", "web")
    audit = obj["metadata"]["annotations"][AUDIT_ID_ANNOTATION]
    parsed = parse_audit_id(audit)
    assert parsed.commit == commit and parsed.commit_key == "git-sha1" and len(parsed.trace or "") == 32
    assert_stamped(obj, audit)
    pods = pods_of(cluster, ns, "web", 2)
    for pod in pods:  # made by the controller-manager from the stamped template
        assert pod["metadata"]["annotations"][AUDIT_ID_ANNOTATION] == audit
        assert_pod_env(pod["spec"], audit)

    records = wait_for(
        "the admission record", lambda: registered.admissions(namespace=ns, name="web", decision="patched")
    )
    assert records[0]["username"] == FLUX_USER and records[0]["commit_source"] == "flux-kustomization"
    assert records[0]["audit_id"] == audit and records[0]["operation"] == "CREATE"

    # the headline: from the commit, the lineage reaches the Deployment, its Pods and who admitted it
    reached = registered.lineage_of_commit(commit)
    assert workload_node_id("Deployment", ns, "web") in reached
    assert {pod_node_id(p["metadata"]["uid"]) for p in pods} <= set(reached)
    admitted = [
        n["properties"]
        for n in reached.values()
        if n["kind"] == "Admission" and n["properties"]["kind"] == "Deployment"
    ]
    assert [(a["name"], a["username"]) for a in admitted] == [("web", FLUX_USER)]

    # Flux applies again with nothing changed (its field manager does not own the stamp): the id stays
    cluster.kubectl(*flux_apply, stdin=manifest)
    assert live(cluster, ns, "deployment", "web")["metadata"]["annotations"][AUDIT_ID_ANNOTATION] == audit
    assert live(cluster, ns, "deployment", "web")["metadata"]["generation"] == obj["metadata"]["generation"]

    # the next commit changes the image: a rollout, stamped with the new commit and a new trace
    newer = secrets.token_hex(20)
    set_status(
        cluster,
        ns,
        "kustomizations.kustomize.toolkit.fluxcd.io",
        "apps",
        {"lastAttemptedRevision": f"main@sha1:{newer}"},
    )
    time.sleep(0.3)  # past the webhook's 0.2 s revision cache, as a Flux reconcile interval is
    cluster.kubectl(
        *flux_apply, stdin=json.dumps(deployment(ns, image="registry.example/web:2.0", labels=labels))
    )
    rolled = live(cluster, ns, "deployment", "web")
    new_audit = parse_audit_id(rolled["metadata"]["annotations"][AUDIT_ID_ANNOTATION])
    assert new_audit.commit == newer and new_audit.trace != parsed.trace
    assert_stamped(rolled, new_audit.canonical)
    env = {
        e["name"]: e["value"]
        for e in rolled["spec"]["template"]["spec"]["containers"][0]["env"]
        if "value" in e
    }
    assert (
        env["OTEL_RESOURCE_ATTRIBUTES"]
        == f"service.name=web,gitops.audit_id={new_audit.canonical},vcs.ref.head.revision={newer}"
    )


def test_an_install_by_flux_helm_controller_takes_the_commit_its_chart_was_built_from(
    registered: Registered, kube_namespace: str
) -> None:
    cluster, ns = registered.cluster, registered.namespace(kube_namespace)
    commit = secrets.token_hex(20)
    chart = f"{ns}-web"  # helm-controller names the HelmChart it makes <namespace>-<release>
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        stdin="\n---\n".join(
            yaml.safe_dump(o)
            for o in (
                {
                    "apiVersion": "source.toolkit.fluxcd.io/v1",
                    "kind": "HelmChart",
                    "metadata": {"name": chart, "namespace": ns},
                    "spec": {
                        "chart": "./charts/web",
                        "reconcileStrategy": "Revision",
                        "sourceRef": {"kind": "GitRepository", "name": "fleet"},
                    },
                },
                {
                    "apiVersion": "helm.toolkit.fluxcd.io/v2",
                    "kind": "HelmRelease",
                    "metadata": {"name": "web", "namespace": ns},
                    "spec": {"chart": {"spec": {"chart": "./charts/web", "reconcileStrategy": "Revision"}}},
                },
            )
        ),
    )
    # what source-controller and helm-controller report: the full revision the chart was built from,
    # and the chart version being installed, which carries only its first 12 hex
    set_status(
        cluster,
        ns,
        "helmcharts.source.toolkit.fluxcd.io",
        chart,
        {"observedSourceArtifactRevision": f"main@sha1:{commit}"},
    )
    set_status(
        cluster,
        ns,
        "helmreleases.helm.toolkit.fluxcd.io",
        "web",
        {"lastAttemptedRevision": f"0.1.0+{commit[:12]}", "helmChart": f"{ns}/{chart}"},
    )
    labels = {"helm.toolkit.fluxcd.io/name": "web", "helm.toolkit.fluxcd.io/namespace": ns}
    cluster.kubectl("create", f"--as={HELM_USER}", "-f", "-", stdin=json.dumps(deployment(ns, labels=labels)))

    audit = parse_audit_id(
        live(cluster, ns, "deployment", "web")["metadata"]["annotations"][AUDIT_ID_ANNOTATION]
    )
    assert audit.commit == commit
    records = wait_for("the admission record", lambda: registered.admissions(namespace=ns, name="web"))
    assert (records[0]["username"], records[0]["commit_source"]) == (HELM_USER, "flux-helmrelease")


def test_an_apply_as_argocd_makes_it_through_the_python_client(
    registered: Registered, kube_namespace: str
) -> None:
    from kubernetes import client

    cluster, ns = registered.cluster, registered.namespace(kube_namespace)
    commit = secrets.token_hex(20)
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        stdin=json.dumps(
            {
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "Application",
                "metadata": {"name": "shop", "namespace": ns},
                "spec": {"source": {"repoURL": "https://git.example/fleet.git", "path": "shop"}},
            }
        ),
    )
    set_status(
        cluster, ns, "applications.argoproj.io", "shop", {"sync": {"status": "OutOfSync", "revision": commit}}
    )
    api = cluster.api_client()
    api.set_default_header("Impersonate-User", ARGO_USER)  # the application controller's own identity
    tracking = {"argocd.argoproj.io/tracking-id": f"{ns}_shop:apps/Deployment:{ns}/api"}
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(ns, deployment(ns, name="api", annotations=tracking))

    obj = live(cluster, ns, "deployment", "api")
    audit = obj["metadata"]["annotations"][AUDIT_ID_ANNOTATION]
    assert parse_audit_id(audit).commit == commit
    assert_stamped(obj, audit)
    pods = pods_of(cluster, ns, "api", 2)
    for pod in pods:
        assert pod["metadata"]["annotations"][AUDIT_ID_ANNOTATION] == audit
    records = wait_for("the admission record", lambda: registered.admissions(namespace=ns, name="api"))
    assert records[0]["username"] == ARGO_USER and records[0]["commit_source"] == "argocd"
    reached = registered.lineage_of_commit(commit)
    assert workload_node_id("Deployment", ns, "api") in reached
    assert {pod_node_id(p["metadata"]["uid"]) for p in pods} <= set(reached)
    admitted = [
        n["properties"]
        for n in reached.values()
        if n["kind"] == "Admission" and n["properties"]["kind"] == "Deployment"
    ]
    assert [(a["name"], a["username"]) for a in admitted] == [("api", ARGO_USER)]

    # a person scaling by hand: no rollout, the id stays; a person changing the image by hand is not
    # credited with Argo CD's commit
    admin = client.AppsV1Api(cluster.api_client())
    admin.patch_namespaced_deployment_scale("api", ns, {"spec": {"replicas": 3}})
    admin.patch_namespaced_deployment("api", ns, {"spec": {"replicas": 1}})
    assert live(cluster, ns, "deployment", "api")["metadata"]["annotations"][AUDIT_ID_ANNOTATION] == audit
    cluster.kubectl("set", "image", "deployment/api", "web=registry.example/web:hotfix", "-n", ns)
    by_hand = parse_audit_id(
        live(cluster, ns, "deployment", "api")["metadata"]["annotations"][AUDIT_ID_ANNOTATION]
    )
    assert by_hand.commit is None and by_hand.trace != parse_audit_id(audit).trace
    record = wait_for(
        "the hand edit's record",
        lambda: registered.admissions(namespace=ns, name="api", audit_id=by_hand.canonical),
    )
    assert "is not a GitOps controller" in record[0]["reason"]


def test_kubectl_apply_again_keeps_the_id_and_a_template_change_mints_a_new_trace(
    registered: Registered, kube_namespace: str
) -> None:
    cluster, ns = registered.cluster, registered.namespace(kube_namespace)
    commit = secrets.token_hex(20)
    rendered = liubai(
        "annotate", "--commit-only", "--commit", commit, "-q", stdin=yaml.safe_dump(deployment(ns))
    )
    assert rendered.returncode == 0, rendered.stderr
    cluster.kubectl("apply", "-f", "-", stdin=rendered.stdout)
    first = live(cluster, ns, "deployment", "web")["metadata"]["annotations"][AUDIT_ID_ANNOTATION]
    assert parse_audit_id(first).commit == commit
    cluster.kubectl("apply", "-f", "-", stdin=rendered.stdout)  # client-side apply of the same render
    again = live(cluster, ns, "deployment", "web")
    assert again["metadata"]["annotations"][AUDIT_ID_ANNOTATION] == first
    assert again["metadata"]["generation"] == 1  # nothing changed, so no rollout either

    changed = rendered.stdout.replace("registry.example/web:1.0", "registry.example/web:1.1")
    cluster.kubectl("apply", "-f", "-", stdin=changed)
    second = parse_audit_id(
        live(cluster, ns, "deployment", "web")["metadata"]["annotations"][AUDIT_ID_ANNOTATION]
    )
    assert second.trace != parse_audit_id(first).trace
    assert second.commit is None  # the stored liubai.dev/commit rode along: this request did not set it

    def by_template() -> dict[str, str] | None:
        out = cluster.kubectl("get", "replicasets", "-n", ns, "-o", "json").stdout
        found = {
            rs["spec"]["template"]["spec"]["containers"][0]["image"]: rs["spec"]["template"]["metadata"][
                "annotations"
            ][AUDIT_ID_ANNOTATION]
            for rs in json.loads(out)["items"]
        }
        return found if len(found) == 2 else None

    assert wait_for("two ReplicaSets", by_template) == {
        "registry.example/web:1.0": first,
        "registry.example/web:1.1": second.canonical,
    }


def test_a_malformed_id_is_refused_as_kubectl_shows_it(registered: Registered, kube_namespace: str) -> None:
    cluster, ns = registered.cluster, registered.namespace(kube_namespace)
    bad = deployment(ns, annotations={AUDIT_ID_ANNOTATION: "git-sha1:not-a-sha|trace:x"})
    done = cluster.kubectl("apply", "-f", "-", stdin=json.dumps(bad), check=False)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        'Error from server (BadRequest): error when creating "STDIN": admission webhook "audit.liubai.dev" '
        f"denied the request: x-gitops-audit-id on Deployment {ns}/web: malformed audit id "
        "'git-sha1:not-a-sha|trace:x': git-sha1 must be 40 or 64 hex characters, got 'not-a-sha'; "
        "correct it or remove it from the manifest"
    )
    assert cluster.kubectl("get", "deployment", "web", "-n", ns, check=False).returncode == 1
    records = wait_for(
        "the refusal's record", lambda: registered.admissions(namespace=ns, decision="refused")
    )
    assert records[0]["reason"] == "git-sha1 must be 40 or 64 hex characters, got 'not-a-sha'"


def test_dry_runs_are_stamped_but_not_recorded(registered: Registered, kube_namespace: str) -> None:
    cluster, ns = registered.cluster, registered.namespace(kube_namespace)
    out = cluster.kubectl(
        "apply", "--dry-run=server", "-o", "json", "-f", "-", stdin=json.dumps(deployment(ns))
    ).stdout
    assert AUDIT_ID_ANNOTATION in json.loads(out)["metadata"]["annotations"]
    cluster.kubectl("create", "configmap", "marker", "-n", ns)  # recorded after the dry run, as a fence
    wait_for("the fence's record", lambda: registered.admissions(namespace=ns, kind="ConfigMap"))
    assert registered.admissions(namespace=ns, kind="Deployment") == []


def test_other_kinds_huge_objects_and_bare_pods(registered: Registered, kube_namespace: str) -> None:
    cluster, ns = registered.cluster, registered.namespace(kube_namespace)
    cluster.kubectl("create", "configmap", "settings", "-n", ns, "--from-literal=a=b")
    assert "annotations" not in live(cluster, ns, "configmap", "settings")["metadata"]

    huge = deployment(ns, name="huge")
    huge["spec"]["template"]["spec"]["containers"][0]["env"].append(
        {"name": "BLOB", "value": "x" * 1_200_000}
    )
    done = cluster.kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(huge))
    assert "Warning: liubai: not stamped: object of" in done.stderr
    assert AUDIT_ID_ANNOTATION not in live(cluster, ns, "deployment", "huge")["metadata"].get(
        "annotations", {}
    )

    done = cluster.kubectl("run", "one-off", "-n", ns, "--image=registry.example/tool:1", "--restart=Never")
    assert "Warning: liubai: no commit known" in done.stderr
    pod = live(cluster, ns, "pod", "one-off")
    audit = parse_audit_id(pod["metadata"]["annotations"][AUDIT_ID_ANNOTATION])
    assert audit.commit is None and audit.trace
    assert_pod_env(pod["spec"], audit.canonical)


def test_every_kind_that_runs_pods_is_stamped(registered: Registered, kube_namespace: str) -> None:
    cluster, ns = registered.cluster, registered.namespace(kube_namespace)
    commit = secrets.token_hex(20)
    pod_spec = {"containers": [{"name": "c", "image": "registry.example/c:1"}], "restartPolicy": "Never"}
    template = {"metadata": {"labels": {"app": "x"}}, "spec": pod_spec}
    objects = [
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "db"},
            "spec": {
                "serviceName": "db",
                "selector": {"matchLabels": {"app": "x"}},
                "template": {**template, "spec": {**pod_spec, "restartPolicy": "Always"}},
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "agent"},
            "spec": {
                "selector": {"matchLabels": {"app": "x"}},
                "template": {**template, "spec": {**pod_spec, "restartPolicy": "Always"}},
            },
        },
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "once"},
            "spec": {"template": template},
        },
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": "nightly"},
            "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": template}}},
        },
    ]
    stream = "\n---\n".join(yaml.safe_dump(o) for o in objects)
    rendered = liubai("annotate", "--commit-only", "--commit", commit, "-q", stdin=stream)
    cluster.kubectl("apply", "-n", ns, "-f", "-", stdin=rendered.stdout)
    for kind, name, path in (
        ("statefulset", "db", ("spec", "template")),
        ("daemonset", "agent", ("spec", "template")),
        ("job", "once", ("spec", "template")),
        ("cronjob", "nightly", ("spec", "jobTemplate", "spec", "template")),
    ):
        obj = live(cluster, ns, kind, name)
        audit = obj["metadata"]["annotations"][AUDIT_ID_ANNOTATION]
        assert parse_audit_id(audit).commit == commit, kind
        assert_stamped(obj, audit, path)
    # a Job's template cannot change: labelling it later is no rollout and must not fail
    cluster.kubectl("label", "job", "once", "-n", ns, "team=data")
