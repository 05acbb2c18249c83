"""The webhook's HTTP app: reviews whose controller object is cached are decided at once, the others
after a read on a worker thread; both paths give the same answer."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from starlette.testclient import TestClient

from liubai.collector.admission.cluster_reader import CachedReader
from liubai.collector.admission.decide import WebhookSettings
from liubai.collector.admission.revision import ObjectRef
from liubai.collector.admission.server import INLINE_MAX_BYTES, AdmissionService, create_app
from liubai.lineage.model import AUDIT_ID_ANNOTATION, parse_audit_id

SHA = "7c" * 20
FLUX = "system:serviceaccount:flux-system:kustomize-controller"


class Flux:
    """One Kustomization ``flux-system/apps`` at ``SHA``; counts reads."""

    def __init__(self) -> None:
        self.reads = 0

    def get(self, ref: ObjectRef) -> Mapping[str, Any] | None:
        self.reads += 1
        if (ref.kind, ref.namespace, ref.name) == ("Kustomization", "flux-system", "apps"):
            return {"status": {"lastAttemptedRevision": f"main@sha1:{SHA}"}}
        return None


class Clock:
    def __init__(self) -> None:
        self.now = 10.0

    def __call__(self) -> float:
        return self.now


def review(uid: str, *, labelled: bool = True, note: str = "") -> dict[str, Any]:
    labels = (
        {"kustomize.toolkit.fluxcd.io/name": "apps", "kustomize.toolkit.fluxcd.io/namespace": "flux-system"}
        if labelled
        else {}
    )
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "name": "web",
            "namespace": "shop",
            "operation": "CREATE",
            "userInfo": {"username": FLUX},
            "object": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {
                    "name": "web",
                    "namespace": "shop",
                    "labels": labels,
                    "annotations": {"n": note},
                },
                "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:1"}]}}},
            },
        },
    }


def stamped_commit(answer: dict[str, Any]) -> str | None:
    ops = json.loads(base64.b64decode(answer["response"]["patch"]))
    for op in ops:
        value = op.get("value")
        if op["path"] == "/metadata/annotations/" + AUDIT_ID_ANNOTATION.replace("/", "~1"):
            return parse_audit_id(value).commit
        if isinstance(value, Mapping) and AUDIT_ID_ANNOTATION in value:
            return parse_audit_id(value[AUDIT_ID_ANNOTATION]).commit
    raise AssertionError(f"no audit id in {ops}")


def setup() -> tuple[AdmissionService, TestClient, Flux, Clock]:
    flux, clock = Flux(), Clock()
    service = AdmissionService(WebhookSettings(), CachedReader(flux, ttl=2.0, clock=clock), None)
    return service, TestClient(create_app(service)), flux, clock


def test_a_review_waits_for_a_read_only_when_its_controller_object_is_not_cached() -> None:
    service, client, flux, clock = setup()
    assert service.may_wait(review("a"))
    assert not service.may_wait(review("b", labelled=False))  # names no controller object

    first = client.post("/mutate", json=review("a")).json()  # read on a worker thread
    assert first["response"]["uid"] == "a" and stamped_commit(first) == SHA
    assert not service.may_wait(review("c"))
    second = client.post("/mutate", json=review("c")).json()  # from the cache, decided at once
    assert second["response"]["uid"] == "c" and stamped_commit(second) == SHA
    assert flux.reads == 1

    clock.now += 2.5  # the cached answer is too old: the next review reads again
    assert service.may_wait(review("d"))
    assert stamped_commit(client.post("/mutate", json=review("d")).json()) == SHA
    assert flux.reads == 2


def test_without_cluster_access_nothing_waits() -> None:
    service = AdmissionService(WebhookSettings(), None, None)
    assert not service.may_wait(review("a"))
    assert not service.may_wait({"request": {"object": "not an object"}})


def test_bodies_that_are_no_review_are_refused_on_either_path() -> None:
    _, client, _, _ = setup()
    answer = client.post("/mutate", content=b"{not json")
    assert answer.status_code == 400 and answer.json()["error"].startswith("not an AdmissionReview")
    answer = client.post("/mutate", json={"kind": "AdmissionReview"})
    assert answer.status_code == 400 and answer.json()["error"] == "not an AdmissionReview: no request"
    big = b"{not json" + b" " * INLINE_MAX_BYTES
    answer = client.post("/mutate", content=big)
    assert answer.status_code == 400 and answer.json()["error"].startswith("not an AdmissionReview")


def test_a_large_review_is_decided_on_a_worker_thread_alike() -> None:
    _, client, _, _ = setup()
    body = review("big", note="x" * (INLINE_MAX_BYTES + 1))
    answer = client.post("/mutate", json=body)
    assert answer.status_code == 200
    assert answer.json()["response"]["uid"] == "big" and stamped_commit(answer.json()) == SHA
