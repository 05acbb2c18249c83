"""Manifest parsing: every object with kind + name is found, every bad document is named and kept."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from liubai.collector.git import pr_number
from liubai.collector.manifests import ManifestCache, ObjectKey, parse_manifest
from liubai.collector.manifests import parse as manifest_parse
from liubai.lineage.model import RejectedRecord
from liubai.lineage.records import ManifestObjectRecord
from tests.gitrepo import cronjob, deployment

SHA = "ab" * 20
AUDIT = f"git-sha256:{'cd' * 20}|trace:{'0f' * 16}"


def parse(
    text: str | bytes, path: str = "apps/x.yaml"
) -> tuple[list[ManifestObjectRecord], list[RejectedRecord]]:
    items, keys = parse_manifest(text, repo="/r", commit=SHA, path=path)
    objs = [i for i in items if isinstance(i, ManifestObjectRecord)]
    assert [ObjectKey(o.api_version, o.kind, o.namespace, o.name) for o in objs] == keys
    return objs, [i for i in items if isinstance(i, RejectedRecord)]


def test_multi_document_file_declares_each_object_with_default_namespace() -> None:
    text = deployment("api", "img:1", namespace="shop") + "---\n---\n" + deployment("web", "img:2")
    objs, rejects = parse(text)
    assert rejects == []
    assert [(o.kind, o.namespace, o.name, o.document_index) for o in objs] == [
        ("Deployment", "shop", "api", 0),
        ("Deployment", "default", "web", 2),
    ]
    assert objs[0].api_version == "apps/v1" and objs[0].commit == SHA and objs[0].path == "apps/x.yaml"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (deployment("api", "i", audit=AUDIT), "metadata"),
        (deployment("api", "i", pod_audit=AUDIT), "pod template"),
        (cronjob("nightly", "i", AUDIT), "cronjob job template"),
    ],
)
def test_audit_id_found_on_object_pod_template_and_job_template(text: str, where: str) -> None:
    (obj,), _ = parse(text)
    assert obj.audit_ids == (AUDIT,), where


def test_same_audit_id_on_object_and_template_counts_once() -> None:
    (obj,), _ = parse(deployment("api", "i", audit=AUDIT, pod_audit=AUDIT))
    assert obj.audit_ids == (AUDIT,)


def test_broken_document_rejected_but_earlier_documents_kept() -> None:
    text = deployment("api", "i") + "---\nkind: Service\nmetadata: {name: [x\n"
    objs, (reject,) = parse(text)
    assert [o.name for o in objs] == ["api"]
    assert reject.location == f"{SHA[:12]}:apps/x.yaml#1"
    assert reject.reason.startswith("invalid YAML at line") and reject.source == "git:/r"
    assert "name: [x" in reject.raw


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ("apiVersion: v1\nmetadata:\n  name: x\n", "no kind"),
        ("apiVersion: v1\nkind: Service\nmetadata:\n  labels: {a: b}\n", "Service has no metadata.name"),
        (
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\n  namespace: [a]\n",
            "non-string metadata.namespace",
        ),
    ],
)
def test_bad_objects_are_rejected_with_reason(doc: str, reason: str) -> None:
    text = deployment("ok", "i") + "---\n" + doc
    objs, (reject,) = parse(text)
    assert [o.name for o in objs] == ["ok"]
    assert reason in reject.reason and reject.location.endswith("#1")


def test_list_kind_expands_items() -> None:
    text = "apiVersion: v1\nkind: List\nitems:\n" + "".join(
        f"  - apiVersion: v1\n    kind: ConfigMap\n    metadata:\n      name: c{i}\n" for i in range(3)
    )
    objs, rejects = parse(text)
    assert [o.name for o in objs] == ["c0", "c1", "c2"] and rejects == []


@pytest.mark.parametrize(
    ("path", "text"),
    [
        (".github/workflows/ci.yml", "on: push\njobs:\n  build:\n    runs-on: ubuntu-latest\n"),
        (
            "kustomization.yaml",
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [a.yaml]\n",
        ),
        (
            "chart/templates/deploy.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n",
        ),
    ],
)
def test_non_kubernetes_yaml_is_skipped_quietly(path: str, text: str) -> None:
    assert parse(text, path) == ([], [])


@pytest.mark.parametrize(
    ("path", "text", "reason"),
    [
        ("chart/Chart.yaml", "apiVersion: v2\nname: web\nversion: 1.0.0\n", "Helm Chart.yaml"),
        ("charts/index.yaml", "apiVersion: v1\nentries: {}\ngenerated: x\n", "not a Kubernetes object"),
        ("patch.yaml", "- op: replace\n  path: /spec/replicas\n  value: 3\n", "JSON 6902 patch"),
        ("skaffold.yaml", "apiVersion: skaffold/v4beta6\nkind: Config\nmetadata: {name: app}\n", "tool"),
        ("kind.yaml", "apiVersion: kind.x-k8s.io/v1alpha4\nkind: Cluster\n", "tool"),
        ("kubeconfig.yaml", "apiVersion: v1\nkind: Config\nclusters: []\n", "tool"),
        ("values.yaml", "replicas: 3\nimage: {tag: v1}\n", "not a Kubernetes object"),
        (
            "chart/templates/x.yaml",
            "kind: Deployment\nmetadata:\n  name: {{ .Values.n }}\n",
            "Helm chart template",
        ),
    ],
)
def test_non_kubernetes_yaml_is_counted_never_rejected_nor_declared(
    path: str, text: str, reason: str
) -> None:
    """Was: a JSON patch (a list) and a Chart.yaml (apiVersion, no kind) were rejected on every commit
    that touched them, and a skaffold Config became a Workload."""
    items, keys = parse_manifest(text, repo="/r", commit=SHA, path=path)
    assert keys == [] and [type(i).__name__ for i in items] == ["SkippedRecord"]
    assert reason in items[0].reason  # type: ignore[union-attr]


def test_generate_name_objects_are_objects() -> None:
    text = "apiVersion: batch/v1\nkind: Job\nmetadata:\n  generateName: migrate-\n  namespace: db\n"
    (obj,), rejects = parse(text)
    assert rejects == [] and (obj.kind, obj.namespace, obj.name, obj.generate_name) == (
        "Job",
        "db",
        "migrate-*",
        True,
    )


def test_unfilled_placeholders_are_flagged() -> None:
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: conf-${cluster}\n  namespace: ${tenant}\n"
    (obj,), rejects = parse(text)
    assert rejects == [] and obj.placeholders == ("${tenant}", "${cluster}")
    (plain,), _ = parse(deployment("api", "i"))
    assert plain.placeholders == () and plain.generate_name is False


def test_git_lfs_pointer_is_recognised() -> None:
    pointer = "version https://git-lfs.github.com/spec/v1\noid sha256:" + "ab" * 32 + "\nsize 1234\n"
    objs, (reject,) = parse(pointer)
    assert objs == [] and reject.reason.startswith("a Git LFS pointer") and "sha256:" in reject.raw


def test_duplicate_anchors_are_valid_yaml_12() -> None:
    """Was: 'found duplicate anchor' rejected the file (139 false rejects in one repository)."""
    text = (
        "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: podinfo\n"
        "  namespace: apps\n  labels: &l {app: a}\n  annotations:\n"
        f"    x-gitops-audit-id: &l '{AUDIT}'\n"
        "spec:\n  values: {a: *l}\n---\n" + deployment("api", "i")
    )
    objs, rejects = parse(text)
    assert rejects == []
    assert [(o.kind, o.name, o.audit_ids) for o in objs] == [
        ("HelmRelease", "podinfo", (AUDIT,)),
        ("Deployment", "api", ()),
    ]


def test_non_utf8_manifest_is_rejected() -> None:
    objs, (reject,) = parse(b"kind: \xff\xfe\n")
    assert objs == [] and "not UTF-8" in reject.reason and reject.location == f"{SHA[:12]}:apps/x.yaml"


def test_deleted_version_declares_deleted_objects_without_audit_links() -> None:
    items, _ = parse_manifest(
        deployment("api", "i", audit=AUDIT), repo="/r", commit=SHA, path="a.yaml", deleted=True
    )
    (obj,) = items
    assert isinstance(obj, ManifestObjectRecord) and obj.deleted and obj.audit_ids == ()


@pytest.mark.parametrize(
    ("subject", "body", "pr"),
    [
        ("Merge pull request #7 from bob/feature", "", 7),
        ("api: v2 handler (#12)", "", 12),
        (
            "Merge branch 'x' into 'main'",
            "Merge branch 'x' into 'main'\n\nSee merge request group/proj!21",
            21,
        ),
        ("fix #3 in parser", "", None),
        ("Revert (#4) mention (#5) later", "", None),
    ],
)
def test_pr_number_from_forge_messages(subject: str, body: str, pr: int | None) -> None:
    assert pr_number(subject, body or subject) == pr


def test_yaml_merge_keys_and_aliases_resolve_like_full_parsing() -> None:
    text = (
        "<<: &cm {apiVersion: v1, kind: ConfigMap}\n"
        "metadata:\n  name: merged\n  annotations: &ann\n    x-gitops-audit-id: " + AUDIT + "\n"
        "---\n"
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  <<: {name: from-merge, namespace: ops}\n"
        "spec:\n  template:\n    metadata:\n      annotations: {x-gitops-audit-id: 'git-sha1:"
        + "e" * 40
        + "'}\n"
    )
    objs, rejects = parse(text)
    assert rejects == []
    assert [(o.kind, o.namespace, o.name, o.audit_ids) for o in objs] == [
        ("ConfigMap", "default", "merged", (AUDIT,)),
        ("Deployment", "ops", "from-merge", (f"git-sha1:{'e' * 40}",)),
    ]


# --------------------------------------------------------------------------- the cached, split parse
# ``parse_manifest`` cuts a file at its "---" lines and caches what each piece declares; the whole-file
# parse (one stream, the stock constructor) defines the right answer, so the two must always agree.


def _whole_file(text: str | bytes, path: str, deleted: bool) -> object:
    def unsplittable(_: str) -> list[str]:
        raise manifest_parse.Unsplittable

    with pytest.MonkeyPatch.context() as m:
        m.setattr(manifest_parse, "split", unsplittable)
        return parse_manifest(text, repo="/r", commit=SHA, path=path, deleted=deleted)


_KEYS = {
    "apiVersion": ["v1", "apps/v1", "kustomize.config.k8s.io/v1beta1", "!!int 1", ""],
    "kind": ["Service", "List", "ConfigMap", "!!str 3", "3", "''", "[a]", "&k Job", "*k"],
    "name": ["api", "&n web", "*n", "!!int 3", "!custom x", "=", "yes", "2001-01-01", "' '", "[x]"],
    "namespace": ["shop", "*n", "[a]", "''", "~", "7"],
    "audit": [AUDIT, "5", "", "'a|b'", "*n", "&a trace:abc"],
}
_SEPARATORS = [
    "---\n",
    "--- \n",
    "---\t# c\n",
    "--- |\n  text\n",
    "...\n---\n",
    "---x\n",
    "\n",
    "%YAML 1.1\n---\n",
]
_JUNK = ["a: [", "- a", "  - *n", "<<: {kind: K}", "? [a]\n: b", "&r [*r]", "\t", "#---", "'open", "---"]


@st.composite
def _documents(draw: st.DrawFn) -> str:
    def pick(key: str) -> str:
        return draw(st.sampled_from(_KEYS[key]))

    lines = [f"apiVersion: {pick('apiVersion')}"] if draw(st.booleans()) else []
    if draw(st.booleans()):
        lines.append(f"kind: {pick('kind')}")
    shape = draw(st.sampled_from(["meta", "merged", "items", "none"]))
    if shape in ("meta", "merged"):
        lines.append("metadata:")
        if shape == "merged":
            lines.append(f"  <<: {{name: {pick('name')}}}")
        lines.append(f"  name: {pick('name')}")
        if draw(st.booleans()):
            lines.append(f"  namespace: {pick('namespace')}")
        if draw(st.booleans()):
            lines += ["  labels: &l {app: a}", f"  annotations: {{x-gitops-audit-id: {pick('audit')}}}"]
        if draw(st.booleans()):
            lines += ["spec:", "  template:", "    metadata:", "      annotations:"]
            lines.append(f"        x-gitops-audit-id: {pick('audit')}")
            lines.append(
                "  jobTemplate: {spec: {template: {metadata: {annotations: {x-gitops-audit-id: j}}}}}"
            )
    elif shape == "items":
        lines += ["items:", f"  - {{kind: {pick('kind')}, metadata: {{name: {pick('name')}}}}}", "  - *l"]
    if draw(st.booleans()):
        lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(_JUNK)))
    return "\n".join(lines) + "\n"


@st.composite
def _files(draw: st.DrawFn) -> str:
    docs = draw(st.lists(_documents(), max_size=4))
    text = "".join(doc + draw(st.sampled_from(_SEPARATORS)) for doc in docs)
    return text.replace("\n", "\r\n") if draw(st.booleans()) else text


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=_files(), deleted=st.booleans())
def test_split_and_cached_parse_equals_whole_file_parse(text: str, deleted: bool) -> None:
    expected = _whole_file(text, "apps/x.yaml", deleted)
    cache = ManifestCache(max_chars=4096)
    for _ in range(2):  # the second time every piece comes from the cache
        got = parse_manifest(text, repo="/r", commit=SHA, path="apps/x.yaml", deleted=deleted, cache=cache)
        assert got == expected, text


def test_unchanged_documents_are_parsed_once_and_placed_per_file(monkeypatch: pytest.MonkeyPatch) -> None:
    service = "apiVersion: v1\nkind: Service\nmetadata:\n  name: api\n"
    cache = ManifestCache()
    first = deployment("api", "img:1", audit=AUDIT) + "---\n" + service
    second = deployment("api", "img:2") + "---\n" + service
    parse_manifest(first, repo="/r", commit=SHA, path="a.yaml", cache=cache)
    calls: list[str] = []
    real = manifest_parse.piece_outcomes

    def counted(piece: str, resolve: Any) -> Any:
        calls.append(piece)
        return real(piece, resolve)

    monkeypatch.setattr(manifest_parse, "piece_outcomes", counted)
    items, _ = parse_manifest(second, repo="/r", commit="ef" * 20, path="b.yaml", cache=cache)
    assert calls == [deployment("api", "img:2")], "only the changed document is parsed again"
    assert [(i.kind, i.path, i.commit, i.document_index, i.audit_ids) for i in items] == [  # type: ignore[union-attr]
        ("Deployment", "b.yaml", "ef" * 20, 0, ()),
        ("Service", "b.yaml", "ef" * 20, 1, ()),
    ]


def test_reject_after_a_cached_document_points_into_the_whole_file() -> None:
    cache = ManifestCache()
    good = deployment("api", "i")
    parse_manifest(good, repo="/r", commit=SHA, path="a.yaml", cache=cache)
    text = good + "---\nkind: Service\nmetadata: {name: [x\n"
    assert parse_manifest(text, repo="/r", commit=SHA, path="a.yaml", cache=cache) == parse_manifest(
        text, repo="/r", commit=SHA, path="a.yaml"
    )
    _, (reject,) = parse(text)
    line = good.count("\n") + 4  # "---", kind, metadata, then the end of the text where the list is unclosed
    assert reject.reason.startswith(f"invalid YAML at line {line},"), reject.reason


def test_aliases_in_a_rejected_object_show_as_the_constructor_builds_them() -> None:
    text = "kind: Service\nmetadata:\n  labels: &l {a: b}\n  annotations: *l\n"
    _, (reject,) = parse(text)
    assert "&id001" in reject.raw and "*id001" in reject.raw


@pytest.mark.parametrize("value", ["!!int x", "!!float x", "!!bool maybe", "!!timestamp x"])
def test_value_that_does_not_fit_its_tag_is_rejected_not_raised(value: str) -> None:
    text = deployment("ok", "i") + f"---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {value}\n"
    objs, (reject,) = parse(text)
    assert [o.name for o in objs] == ["ok"]
    assert reject.location.endswith("#1") and reject.reason.startswith("invalid YAML: cannot construct")
