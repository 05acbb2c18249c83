"""The stamp as JSONPatch: what it writes into each kind, what it leaves alone, and that it settles."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from liubai.collector.admission.jsonpatch import PatchError, apply_patch, pointer
from liubai.collector.admission.kinds import template_path
from liubai.collector.admission.otel import merge_resource_attributes
from liubai.collector.admission.stamp import (
    AUDIT_FIELD_PATH,
    COMMIT_ANNOTATION,
    known_ids,
    stamp_ops,
    template_fingerprint,
)
from liubai.lineage.model import AUDIT_ID_ANNOTATION, AUDIT_ID_ENV, AuditId, parse_audit_id

SHA = "ab" * 20
AUDIT = AuditId(commit=SHA, commit_key="git-sha1", trace="0af7651916cd43dd8448eb211c80319c")
OTHER = AuditId(commit="cd" * 20, commit_key="git-sha1", trace="1" * 32)


def deployment(**template_spec: Any) -> dict[str, Any]:
    spec = {"containers": [{"name": "web", "image": "web:1"}], **template_spec}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": "web"}}, "spec": spec}},
    }


def stamped(obj: dict[str, Any], audit: AuditId = AUDIT, **kw: Any) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    path = template_path(obj["apiVersion"], obj["kind"])
    assert path is not None
    apply_patch(out, stamp_ops(obj, path, audit, **kw))
    return out


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def test_pointer_escapes_slash_and_tilde_in_keys() -> None:
    assert (
        pointer(["metadata", "annotations", "liubai.dev/commit"])
        == "/metadata/annotations/liubai.dev~1commit"
    )
    assert pointer(["a~/b", 0, "-"]) == "/a~0~1b/0/-"
    doc: dict[str, Any] = {"metadata": {"annotations": {}}}
    apply_patch(doc, [{"op": "add", "path": "/metadata/annotations/a~1b~0c", "value": "v"}])
    assert doc == {"metadata": {"annotations": {"a/b~c": "v"}}}


def test_apply_patch_follows_rfc6902_for_add_and_replace() -> None:
    doc: dict[str, Any] = {"foo": ["bar", "baz"], "x": {"y": 1}}
    apply_patch(
        doc,
        [
            {"op": "add", "path": "/foo/1", "value": "qux"},  # inserts, shifting the rest
            {"op": "add", "path": "/foo/-", "value": "end"},
            {"op": "replace", "path": "/x/y", "value": 2},
            {"op": "add", "path": "/x/y", "value": 3},  # add on an existing member replaces it
        ],
    )
    assert doc == {"foo": ["bar", "qux", "baz", "end"], "x": {"y": 3}}
    for bad in (
        {"op": "replace", "path": "/x/z", "value": 1},
        {"op": "add", "path": "/nope/a", "value": 1},
        {"op": "add", "path": "/foo/9", "value": 1},
        {"op": "add", "path": "/foo/01", "value": 1},
        {"op": "remove", "path": "/foo"},
    ):
        with pytest.raises(PatchError):
            apply_patch(copy.deepcopy(doc), [bad])


def test_deployment_gets_the_id_on_object_and_template_and_env_in_every_container() -> None:
    obj = deployment(initContainers=[{"name": "init", "image": "busybox"}])
    obj["spec"]["template"]["spec"]["containers"].append({"name": "side", "image": "side:1"})
    out = stamped(obj)
    assert out["metadata"]["annotations"][AUDIT_ID_ANNOTATION] == AUDIT.canonical
    template = out["spec"]["template"]
    assert template["metadata"]["annotations"][AUDIT_ID_ANNOTATION] == AUDIT.canonical
    assert template["metadata"]["labels"] == {"app": "web"}
    tspec = template["spec"]
    for c in [*tspec["containers"], *tspec["initContainers"]]:
        env = env_of(c)
        assert env[AUDIT_ID_ENV]["valueFrom"]["fieldRef"]["fieldPath"] == AUDIT_FIELD_PATH
        attrs = dict(kv.split("=", 1) for kv in env["OTEL_RESOURCE_ATTRIBUTES"]["value"].split(","))
        assert attrs == {"gitops.audit_id": AUDIT.canonical, "vcs.ref.head.revision": SHA}


def test_cronjob_is_stamped_in_its_job_template_and_a_pod_on_itself() -> None:
    cron = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "nightly", "annotations": {"team": "ops"}},
        "spec": {
            "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}}
        },
    }
    out = stamped(cron)
    assert out["metadata"]["annotations"] == {"team": "ops", AUDIT_ID_ANNOTATION: AUDIT.canonical}
    pod_template = out["spec"]["jobTemplate"]["spec"]["template"]
    assert pod_template["metadata"]["annotations"][AUDIT_ID_ANNOTATION] == AUDIT.canonical
    assert AUDIT_ID_ENV in env_of(pod_template["spec"]["containers"][0])

    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c"}]},
    }
    out = stamped(pod)
    assert out["metadata"]["annotations"] == {AUDIT_ID_ANNOTATION: AUDIT.canonical}
    assert AUDIT_ID_ENV in env_of(out["spec"]["containers"][0])


def test_user_env_is_respected_and_otel_keys_the_user_set_are_never_replaced() -> None:
    obj = deployment()
    obj["spec"]["template"]["spec"]["containers"] = [
        {
            "name": "a",
            "env": [
                {"name": "OTEL_RESOURCE_ATTRIBUTES", "value": "service.name=web,vcs.ref.head.revision=mine"},
                {"name": AUDIT_ID_ENV, "value": "pinned-by-user"},
            ],
        },
        {
            "name": "b",
            "env": [
                {
                    "name": "OTEL_RESOURCE_ATTRIBUTES",
                    "valueFrom": {"configMapKeyRef": {"name": "m", "key": "k"}},
                }
            ],
        },
    ]
    a, b = stamped(obj)["spec"]["template"]["spec"]["containers"]
    env_a = env_of(a)
    assert env_a[AUDIT_ID_ENV] == {"name": AUDIT_ID_ENV, "value": "pinned-by-user"}
    assert env_a["OTEL_RESOURCE_ATTRIBUTES"]["value"] == (
        f"service.name=web,vcs.ref.head.revision=mine,gitops.audit_id={AUDIT.canonical}"
    )
    env_b = env_of(b)
    assert env_b["OTEL_RESOURCE_ATTRIBUTES"] == obj["spec"]["template"]["spec"]["containers"][1]["env"][0]
    assert AUDIT_ID_ENV in env_b


def test_annotation_keys_with_a_slash_are_patched_as_one_key() -> None:
    obj = deployment()
    obj["metadata"]["annotations"] = {"a": "1"}
    ops = stamp_ops(obj, ("spec", "template"), AUDIT, annotations={COMMIT_ANNOTATION: SHA})
    assert {"op": "add", "path": "/metadata/annotations/liubai.dev~1commit", "value": SHA} in ops
    out = copy.deepcopy(obj)
    apply_patch(out, ops)
    assert out["metadata"]["annotations"][COMMIT_ANNOTATION] == SHA


def test_stamping_a_stamped_object_again_changes_nothing() -> None:
    once = stamped(deployment())
    assert stamp_ops(once, ("spec", "template"), AUDIT, known=known_ids([once], ("spec", "template"))) == []


def test_a_new_stamp_replaces_the_otel_entries_of_the_old_one() -> None:
    obj = deployment()
    obj["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "OTEL_RESOURCE_ATTRIBUTES", "value": "service.name=web"}
    ]
    first = stamped(obj, OTHER)
    second = stamped(first, AUDIT, known=known_ids([first], ("spec", "template")))
    value = env_of(second["spec"]["template"]["spec"]["containers"][0])["OTEL_RESOURCE_ATTRIBUTES"]["value"]
    assert value == f"service.name=web,gitops.audit_id={AUDIT.canonical},vcs.ref.head.revision={SHA}"
    assert second["metadata"]["annotations"][AUDIT_ID_ANNOTATION] == AUDIT.canonical


def test_otel_values_are_percent_encoded_outside_baggage_octets() -> None:
    odd = parse_audit_id(f"git-sha1:{SHA}|note:a,b;c%d")
    merged = merge_resource_attributes("", odd)
    assert merged.startswith("gitops.audit_id=git-sha1:" + SHA + "|note:a%2Cb%3Bc%25d,")
    assert merge_resource_attributes(merged, odd) == merged


def test_fingerprint_ignores_the_stamp_and_sees_every_real_template_change() -> None:
    path = ("spec", "template")
    plain = deployment()
    plain["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "OTEL_RESOURCE_ATTRIBUTES", "value": "service.name=web"}
    ]
    done = stamped(plain)
    known = known_ids([done], path)
    assert template_fingerprint(done, path, known) == template_fingerprint(plain, path, known)
    scaled = copy.deepcopy(done)
    scaled["spec"]["replicas"] = 9
    assert template_fingerprint(scaled, path, known) == template_fingerprint(plain, path, known)
    for change in (
        lambda t: t["spec"]["containers"][0].update(image="web:2"),
        lambda t: (
            t["metadata"].setdefault("annotations", {}).update({"kubectl.kubernetes.io/restartedAt": "now"})
        ),
        lambda t: t["spec"]["containers"][0]["env"][0].update(value="service.name=other"),
    ):
        changed = copy.deepcopy(done)
        change(changed["spec"]["template"])
        assert template_fingerprint(changed, path, known) != template_fingerprint(plain, path, known)


_names = st.sampled_from(["A", "B", AUDIT_ID_ENV, "OTEL_RESOURCE_ATTRIBUTES"])
_values = st.text(alphabet="abc=,.: ", max_size=20)
_entry = st.one_of(
    st.builds(lambda n, v: {"name": n, "value": v}, _names, _values),
    st.builds(lambda n: {"name": n, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}, _names),
)
_container = st.builds(
    lambda env, has: {"name": "c", **({"env": env} if has else {})},
    st.lists(_entry, max_size=4),
    st.booleans(),
)


@given(st.lists(_container, min_size=1, max_size=3), st.lists(_container, max_size=2))
def test_any_env_stamps_cleanly_keeps_user_entries_and_settles(
    containers: list[dict[str, Any]], inits: list[dict[str, Any]]
) -> None:
    obj = deployment(initContainers=inits)
    obj["spec"]["template"]["spec"]["containers"] = containers
    out = stamped(obj)
    path = ("spec", "template")
    assert stamp_ops(out, path, AUDIT, known=known_ids([out], path)) == []
    before = obj["spec"]["template"]["spec"]
    after = out["spec"]["template"]["spec"]
    for field in ("containers", "initContainers"):
        for old, new in zip(before[field], after[field], strict=True):
            names = [e["name"] for e in new["env"]]
            assert AUDIT_ID_ENV in names and "OTEL_RESOURCE_ATTRIBUTES" in names
            kept = new["env"][: len(old.get("env", []))]
            for was, now in zip(old.get("env", []), kept, strict=True):
                assert was["name"] == now["name"]
                if was["name"] != "OTEL_RESOURCE_ATTRIBUTES" or "valueFrom" in was:
                    assert was == now
    assert template_fingerprint(out, path, known_ids([out], path)) == template_fingerprint(
        obj, path, known_ids([out], path)
    )
