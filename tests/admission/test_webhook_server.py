"""``liubai webhook`` as a process: HTTPS, health, metrics, records in the store, a store that is down,
client certificates, and the registration it prints."""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from liubai.lineage.model import admission_node_id
from liubai.lineage.store import open_store
from tests.polling import wait_for
from tests.webhook_server import Webhook, running_webhook, self_signed

NO_CLUSTER = {"KUBECONFIG": "/nonexistent/kubeconfig", "KUBERNETES_SERVICE_HOST": ""}


def review(uid: str, *, dry_run: bool = False, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "name": "web",
            "namespace": "shop",
            "operation": "CREATE",
            "userInfo": {"username": "ci-bot", "groups": ["system:authenticated"]},
            "dryRun": dry_run,
            "object": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {
                    "name": "web",
                    "namespace": "shop",
                    "annotations": {"liubai.dev/commit": "ab" * 20, **(annotations or {})},
                },
                "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:1"}]}}},
            },
        },
    }


def health(hook: Webhook) -> dict[str, Any]:
    with hook.client() as client:
        result: dict[str, Any] = client.get("/healthz").json()
        return result


def test_reviews_over_https_are_answered_and_recorded(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'lineage.db'}"
    with running_webhook(tmp_path, url, env=NO_CLUSTER) as hook, hook.client() as client:
        answer = client.post("/mutate", json=review("uid-1"))
        assert answer.status_code == 200
        response = answer.json()["response"]
        assert response["uid"] == "uid-1" and response["allowed"] is True
        ops = json.loads(base64.b64decode(response["patch"]))
        added = {op["path"]: op["value"] for op in ops}
        assert added["/metadata/annotations/x-gitops-audit-id"].startswith(f"git-sha1:{'ab' * 20}|trace:")
        assert client.post("/mutate", json=review("uid-dry", dry_run=True)).json()["response"]["patch"]
        wait_for("the record to be stored", lambda: health(hook)["records"]["stored"] == 1)
        metrics = client.get("/metrics").text
        assert 'liubai_webhook_admissions_total{decision="patched",dry_run="false"} 1.0' in metrics
        assert 'liubai_webhook_admissions_total{decision="patched",dry_run="true"} 1.0' in metrics
        assert "liubai_webhook_records_stored_total 1.0" in metrics
    assert "revisions not read: no cluster configuration" in hook.output()
    store = open_store(url)
    try:
        node = store.get(admission_node_id("uid-1"))
        assert node is not None and node.props["username"] == "ci-bot"
        assert node.props["commit_source"] == "annotation"
        assert store.get(admission_node_id("uid-dry")) is None
    finally:
        store.close()


def test_a_body_that_is_no_review_gets_400_with_the_reason(tmp_path: Path) -> None:
    with (
        running_webhook(tmp_path, f"sqlite:///{tmp_path / 'l.db'}", env=NO_CLUSTER) as hook,
        hook.client() as client,
    ):
        answer = client.post("/mutate", content=b"{not json")
        assert answer.status_code == 400 and answer.json()["error"].startswith("not an AdmissionReview")
        answer = client.post("/mutate", json={"request": {"operation": "CREATE"}})
        assert answer.status_code == 400 and "no uid" in answer.json()["error"]
        assert client.get("/mutate").status_code == 405


def test_a_store_that_is_down_costs_records_never_admissions(tmp_path: Path) -> None:
    unwritable = "sqlite:////proc/liubai-cannot-write-here/lineage.db"
    with running_webhook(tmp_path, unwritable, env=NO_CLUSTER) as hook, hook.client() as client:
        for i in range(3):
            response = client.post("/mutate", json=review(f"uid-{i}")).json()["response"]
            assert response["allowed"] is True and "patch" in response
        records = wait_for("the drops", lambda: (h := health(hook)["records"])["dropped"] == 3 and h)
        assert records["stored"] == 0 and records["last_error"]
        assert 'liubai_webhook_records_dropped_total{why="store_failed"} 3.0' in client.get("/metrics").text
    out = hook.output()
    assert "warning: store sqlite:////proc/liubai-cannot-write-here/lineage.db unavailable" in out
    assert "admission records dropped" in out


def test_with_client_ca_only_callers_with_a_certificate_are_served(tmp_path: Path) -> None:
    (tmp_path / "client").mkdir()
    client_cert, client_key = self_signed(tmp_path / "client", "apiserver-client")
    args = ("--client-ca", str(client_cert))
    store = f"sqlite:///{tmp_path / 'l.db'}"
    with running_webhook(
        tmp_path, store, *args, env=NO_CLUSTER, client_cert=(client_cert, client_key)
    ) as hook:
        with hook.client() as trusted:
            assert trusted.post("/mutate", json=review("uid-y")).json()["response"]["allowed"] is True
        context = ssl.create_default_context(cafile=str(hook.cert))
        with httpx.Client(base_url=hook.url, verify=context) as anonymous:
            with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
                anonymous.post("/mutate", json=review("uid-x"))


def liubai(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "liubai.api.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_print_registration_names_the_kinds_and_trusts_the_certificate(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    done = liubai(
        "webhook",
        "--cert",
        str(cert),
        "--key",
        str(key),
        "--print-registration",
        "--service",
        "liubai/webhook:8443",
    )
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(done.stdout)
    assert config["kind"] == "MutatingWebhookConfiguration"
    hook = config["webhooks"][0]
    assert base64.b64decode(hook["clientConfig"]["caBundle"]) == cert.read_bytes()
    assert hook["clientConfig"]["service"] == {
        "namespace": "liubai",
        "name": "webhook",
        "port": 8443,
        "path": "/mutate",
    }
    assert hook["sideEffects"] == "NoneOnDryRun" and hook["failurePolicy"] == "Ignore"
    resources = {r for rule in hook["rules"] for r in rule["resources"]}
    assert resources == {"deployments", "statefulsets", "daemonsets", "jobs", "cronjobs", "pods"}
    done = liubai(
        "webhook", "--cert", str(cert), "--key", str(key), "--print-registration", "--url", "http://x/"
    )
    assert done.returncode == 2 and "https:// only" in done.stderr


def test_an_unusable_certificate_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    cert, _ = self_signed(tmp_path)
    done = liubai("webhook", "--cert", str(cert), "--key", str(cert))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: --cert") and len(done.stderr.strip().splitlines()) == 1
