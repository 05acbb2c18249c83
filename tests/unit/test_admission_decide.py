"""AdmissionReview JSON in, response and record out: every decision the webhook can take."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Mapping
from typing import Any

import pytest

from liubai.collector.admission.decide import BadReview, OnMalformed, Outcome, WebhookSettings, admit
from liubai.collector.admission.jsonpatch import apply_patch
from liubai.collector.admission.revision import ObjectRef
from liubai.lineage.model import AUDIT_ID_ANNOTATION, AUDIT_ID_ENV

SHA = "5e" * 20
SHA2 = "6f" * 20
FLUX = "system:serviceaccount:flux-system:kustomize-controller"
TRACES = iter(f"{i:032x}" for i in range(1, 1000))


class Flux:
    """A cluster holding one Kustomization whose status names ``revision``."""

    def __init__(self, sha: str = SHA) -> None:
        self.sha = sha

    def get(self, ref: ObjectRef) -> Mapping[str, Any] | None:
        if (ref.kind, ref.namespace, ref.name) == ("Kustomization", "flux-system", "apps"):
            return {"status": {"lastAttemptedRevision": f"main@sha1:{self.sha}"}}
        return None


def deployment(image: str = "web:1", **annotations: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "labels": {
                "kustomize.toolkit.fluxcd.io/name": "apps",
                "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
            },
            "annotations": dict(annotations),
        },
        "spec": {
            "replicas": 1,
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image}]},
            },
        },
    }


def review(
    obj: Any,
    *,
    operation: str = "CREATE",
    old: Any = None,
    user: str = FLUX,
    group: str = "apps",
    kind: str = "Deployment",
    dry_run: bool = False,
    uid: str = "req-1",
) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": group, "version": "v1", "kind": kind},
            "resource": {"group": group, "version": "v1", "resource": kind.lower() + "s"},
            "name": "web",
            "namespace": "shop",
            "operation": operation,
            "userInfo": {"username": user, "groups": ["system:serviceaccounts", "system:authenticated"]},
            "object": obj,
            "oldObject": old,
            "dryRun": dry_run,
        },
    }


def decide(body: dict[str, Any], settings: WebhookSettings | None = None, reader: Any = None) -> Outcome:
    return admit(
        json.loads(json.dumps(body)),  # what the server parses: plain JSON
        settings or WebhookSettings(),
        reader if reader is not None else Flux(),
        body_size=len(json.dumps(body)),
        now=lambda: 1_800_000_000.0,
        new_trace=lambda: next(TRACES),
    )


def admitted(out: Outcome, obj: dict[str, Any]) -> dict[str, Any]:
    """The object as the API server stores it after applying the response's patch."""
    response = out.review["response"]
    result = copy.deepcopy(obj)
    if "patch" in response:
        assert response["patchType"] == "JSONPatch"
        apply_patch(result, json.loads(base64.b64decode(response["patch"])))
    return result


def audit_of(obj: dict[str, Any]) -> str:
    return str(obj["metadata"]["annotations"][AUDIT_ID_ANNOTATION])


def test_a_flux_apply_is_stamped_with_the_kustomizations_commit_and_recorded() -> None:
    obj = deployment()
    out = decide(review(obj))
    assert out.review["apiVersion"] == "admission.k8s.io/v1" and out.review["kind"] == "AdmissionReview"
    assert out.review["response"]["uid"] == "req-1" and out.review["response"]["allowed"] is True
    stored = admitted(out, obj)
    audit = audit_of(stored)
    assert audit.startswith(f"git-sha1:{SHA}|trace:") and len(audit.split("trace:")[1]) == 32
    assert stored["spec"]["template"]["metadata"]["annotations"][AUDIT_ID_ANNOTATION] == audit
    assert {e["name"] for e in stored["spec"]["template"]["spec"]["containers"][0]["env"]} == {
        AUDIT_ID_ENV,
        "OTEL_RESOURCE_ATTRIBUTES",
    }
    rec = out.record
    assert rec is not None and out.decision == "patched"
    assert (rec.username, rec.operation, rec.kind, rec.namespace, rec.name) == (
        FLUX,
        "CREATE",
        "Deployment",
        "shop",
        "web",
    )
    assert (rec.audit_id, rec.commit_source, rec.trace_source, rec.request_uid) == (
        audit,
        "flux-kustomization",
        "new",
        "req-1",
    )
    assert rec.time == "2027-01-15T08:00:00.000000Z" and "system:authenticated" in rec.groups


def test_reapply_without_a_template_change_keeps_the_id_and_a_change_mints_a_new_trace() -> None:
    first = admitted(decide(review(deployment())), deployment())
    audit = audit_of(first)

    # kubectl apply again (the stamp rides along from the stored object): same id, nothing to patch
    again = copy.deepcopy(first)
    again["spec"]["replicas"] = 5
    out = decide(review(again, operation="UPDATE", old=first))
    assert out.decision == "kept" and audit_of(admitted(out, again)) == audit
    assert "patch" not in out.review["response"]

    # a server-side apply by a manager that does not own the stamp drops it: it is put back unchanged
    out = decide(review(deployment(), operation="UPDATE", old=first))
    assert out.decision == "kept" and admitted(out, deployment()) == first

    # a new image is a rollout: new trace, commit read again from the Kustomization
    changed = copy.deepcopy(first)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "web:2"
    out = decide(review(changed, operation="UPDATE", old=first), reader=Flux(SHA2))
    rolled = admitted(out, changed)
    assert out.decision == "patched" and audit_of(rolled).startswith(f"git-sha1:{SHA2}|trace:")
    assert audit_of(rolled).split("trace:")[1] != audit.split("trace:")[1]
    env = {e["name"]: e for e in rolled["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert f"gitops.audit_id={audit_of(rolled)}" in env["OTEL_RESOURCE_ATTRIBUTES"]["value"]
    assert audit not in env["OTEL_RESOURCE_ATTRIBUTES"]["value"]
    assert len(rolled["spec"]["template"]["spec"]["containers"][0]["env"]) == 2


def test_an_id_the_request_brings_is_kept() -> None:
    given = f"git-sha1:{SHA2}|trace:{'ab' * 16}"
    out = decide(review(deployment(**{AUDIT_ID_ANNOTATION: given})))
    assert out.decision == "kept" and out.record is not None and out.record.commit_source == "existing"
    stored = admitted(out, deployment(**{AUDIT_ID_ANNOTATION: given}))
    assert audit_of(stored) == given
    assert stored["spec"]["template"]["metadata"]["annotations"][AUDIT_ID_ANNOTATION] == given
    # on an update too, when it differs from the stored one (a render pipeline stamped a new one)
    first = admitted(decide(review(deployment())), deployment())
    newer = copy.deepcopy(first)
    newer["metadata"]["annotations"][AUDIT_ID_ANNOTATION] = given
    newer["spec"]["template"]["spec"]["containers"][0]["image"] = "web:3"
    out = decide(review(newer, operation="UPDATE", old=first))
    assert out.decision == "kept" and audit_of(admitted(out, newer)) == given


def test_a_traceparent_the_pipeline_set_gives_the_trace() -> None:
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    out = decide(review(deployment(traceparent=parent)))
    assert out.record is not None and out.record.trace_source == "traceparent"
    assert (
        audit_of(admitted(out, deployment(traceparent=parent)))
        == f"git-sha1:{SHA}|trace:4bf92f3577b34da6a3ce929d0e0e4736"
    )


def test_no_commit_known_stamps_the_trace_alone_and_says_why() -> None:
    obj = deployment()
    obj["metadata"]["labels"] = {}
    out = decide(review(obj, user="alice"))
    assert audit_of(admitted(out, obj)).startswith("trace:")
    assert out.record is not None and out.record.commit_source is None
    assert "no Argo CD or Flux labels" in (out.record.reason or "")
    assert any("no commit known" in w for w in out.review["response"]["warnings"])


def test_a_malformed_id_is_refused_with_a_message_or_passed_with_a_warning() -> None:
    bad = deployment(**{AUDIT_ID_ANNOTATION: "git-sha1:nothex|trace:x"})
    out = decide(review(bad))
    response = out.review["response"]
    assert response["allowed"] is False and "patch" not in response
    message = response["status"]["message"]
    assert message.startswith(
        "x-gitops-audit-id on Deployment shop/web: malformed audit id 'git-sha1:nothex|trace:x'"
    )
    assert "git-sha1 must be 40 or 64 hex characters" in message
    assert (
        out.decision == "refused"
        and out.record is not None
        and out.record.audit_id == "git-sha1:nothex|trace:x"
    )

    out = decide(review(bad), WebhookSettings(on_malformed=OnMalformed.WARN))
    response = out.review["response"]
    assert response["allowed"] is True and "patch" not in response
    assert "passed unchanged" in response["warnings"][0] and out.decision == "passed"


def test_dry_runs_are_answered_alike_but_not_recorded() -> None:
    out = decide(review(deployment(), dry_run=True))
    assert out.record is None and out.decision == "patched" and "patch" in out.review["response"]


@pytest.mark.parametrize(
    ("obj", "group", "kind", "operation"),
    [
        ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}, "", "ConfigMap", "CREATE"),
        (
            {"apiVersion": "example.com/v1", "kind": "Widget", "spec": [1, 2]},
            "example.com",
            "Widget",
            "CREATE",
        ),
        (None, "apps", "Deployment", "DELETE"),
        ("not an object", "apps", "Deployment", "CREATE"),
    ],
)
def test_what_runs_no_pods_is_allowed_unchanged(obj: Any, group: str, kind: str, operation: str) -> None:
    out = decide(review(obj, group=group, kind=kind, operation=operation))
    response = out.review["response"]
    assert response == {"uid": "req-1", "allowed": True}
    assert out.decision == "skipped" and out.record is not None


def test_a_huge_object_is_allowed_unchanged_with_a_warning() -> None:
    obj = deployment()
    obj["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "BLOB", "value": "x" * 3_000_000}]
    out = decide(review(obj))
    response = out.review["response"]
    assert response["allowed"] is True and "patch" not in response
    assert "over the 1048576-byte limit" in response["warnings"][0]


def test_malformed_parts_of_a_workload_never_crash_the_webhook() -> None:
    weird: list[Any] = [
        {"metadata": "nope", "spec": {"template": {"spec": {"containers": [{"name": "c", "env": "x"}]}}}},
        {"metadata": {"annotations": None}, "spec": {"template": None}},
        {"spec": {"template": {"metadata": [], "spec": {"containers": ["str", None, {"env": [None, 3]}]}}}},
        {"metadata": {"labels": {"kustomize.toolkit.fluxcd.io/name": 5}}, "spec": 7},
    ]
    for obj in weird:
        out = decide(review(obj))
        assert out.review["response"]["allowed"] is True
        admitted(out, obj)  # the patch applies to what was sent


def test_a_failure_of_the_webhooks_own_lets_the_object_through_unstamped() -> None:
    class Broken:
        def get(self, ref: ObjectRef) -> Mapping[str, Any] | None:
            raise RuntimeError("bug")

    out = decide(review(deployment()), reader=Broken())
    response = out.review["response"]
    assert response["allowed"] is True and "patch" not in response
    assert out.decision == "skipped" and "internal error RuntimeError: bug" in response["warnings"][0]


def test_pods_a_controller_owns_pass_unrecorded_and_bare_pods_are_stamped() -> None:
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "p",
            "ownerReferences": [{"kind": "ReplicaSet", "name": "web-1", "controller": True}],
        },
        "spec": {"containers": [{"name": "c", "image": "i"}]},
    }
    out = decide(review(pod, group="", kind="Pod"))
    assert out.record is None and out.review["response"] == {"uid": "req-1", "allowed": True}
    del pod["metadata"]["ownerReferences"]
    out = decide(review(pod, group="", kind="Pod", user="alice"))
    stored = admitted(out, pod)
    assert audit_of(stored).startswith("trace:") and AUDIT_ID_ENV in str(stored["spec"])


def test_updates_of_immutable_templates_are_never_given_a_new_stamp() -> None:
    job: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "once"},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}},
    }
    labelled = copy.deepcopy(job)
    labelled["metadata"]["labels"] = {"team": "a"}
    out = decide(review(labelled, group="batch", kind="Job", operation="UPDATE", old=job))
    assert out.decision == "skipped" and "patch" not in out.review["response"]
    assert "cannot change after creation" in (out.record.reason if out.record else "")


@pytest.mark.parametrize("body", [{}, {"request": None}, {"request": {"uid": ""}}, [], "x"])
def test_a_body_that_is_no_review_is_a_bad_review(body: Any) -> None:
    with pytest.raises(BadReview):
        admit(body, WebhookSettings())
