"""Logtail's Kubernetes tags -> ``LogRecord.resource``, through the real SDK against the local SLS server:
PullLogs carries them as the log group's tags, GetLogs as ``__tag__:`` fields. The content id of a line
does not depend on them."""

from __future__ import annotations

import pytest

from liubai.collector.logfields import FieldMap, log_mapper
from liubai.collector.sls import SlsCollector, SlsCredentials, make_client
from liubai.collector.sls.mapping import image_attributes, pulled_records, queried_logs, queried_records
from liubai.lineage.model import pod_node_id
from liubai.lineage.records import LogRecord
from tests.logs.conftest import KEY_ID, KEY_SECRET, LOGSTORE, PROJECT
from tests.logs.lineage_check import graph_of
from tests.sls_server import SlsServer

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
POD_TAGS = {
    "_pod_name_": "checkout-7d9f8b6c5-x2k4q",
    "_namespace_": "shop",
    "_pod_uid_": "0b6a3c1e-5f2d-4e8a-9c7b-1d2e3f4a5b6c",
    "_container_name_": "checkout",
    "_image_name_": "registry.cn-hangzhou.aliyuncs.com/shop/checkout:v1.4.2",
    "_container_ip_": "172.20.1.17",
    "_node_name_": "cn-hangzhou.10.0.3.41",
    "_node_ip_": "10.0.3.41",
    "__hostname__": "logtail-ds-8xk2p",  # Logtail's own tags are not the writer's resource
    "__path__": "/var/log/checkout/app.log",
}
POD_RESOURCE = {
    "k8s.pod.name": "checkout-7d9f8b6c5-x2k4q",
    "k8s.namespace.name": "shop",
    "k8s.pod.uid": "0b6a3c1e-5f2d-4e8a-9c7b-1d2e3f4a5b6c",
    "k8s.container.name": "checkout",
    "container.image.name": "registry.cn-hangzhou.aliyuncs.com/shop/checkout",
    "container.image.tags": "v1.4.2",
    "k8s.pod.ip": "172.20.1.17",
    "k8s.node.name": "cn-hangzhou.10.0.3.41",
    "host.ip": "10.0.3.41",
}
LINES = [
    {"message": "order 1 paid", "level": "info", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"},
    {"message": "order 2 failed", "level": "error", "service": "checkout"},
]


@pytest.fixture
def tagged() -> SlsServer:  # type: ignore[misc]
    """Shard 0: the lines with a pod's tags; shard 1: the same lines with no tags."""
    with SlsServer(PROJECT, KEY_ID, KEY_SECRET) as server:
        server.create_logstore(LOGSTORE, shards=2)
        server.put_logs(LOGSTORE, 0, LINES, log_time=T0, tags=POD_TAGS)
        server.put_logs(LOGSTORE, 1, LINES, log_time=T0)
        yield server


def _client(server: SlsServer):  # type: ignore[no-untyped-def]
    return make_client(server.endpoint, SlsCredentials(access_key_id=KEY_ID, access_key_secret=KEY_SECRET))


def _pulled(server: SlsServer, shard: int) -> list[LogRecord]:
    client = _client(server)
    cursor = client.get_cursor(PROJECT, LOGSTORE, shard, "begin").get_cursor()
    resp = client.pull_logs(PROJECT, LOGSTORE, shard, cursor, count=10)
    return [r for r, _ in pulled_records(resp, log_mapper(FieldMap()), "sls:x", "at #", None)]


def test_pulled_lines_carry_their_pods_resource_and_keep_their_content_id(tagged) -> None:  # type: ignore[no-untyped-def]
    with_tags, without = _pulled(tagged, 0), _pulled(tagged, 1)
    assert [r.resource for r in with_tags] == [POD_RESOURCE, POD_RESOURCE]
    assert [r.resource for r in without] == [{}, {}]
    assert [r.record_id for r in with_tags] == [r.record_id for r in without]  # content ids
    assert all(not any(k.startswith("__") for k in r.attributes) for r in with_tags)


def test_queried_lines_carry_the_same_resource(tagged) -> None:  # type: ignore[no-untyped-def]
    resp = _client(tagged).get_log(PROJECT, LOGSTORE, T0, T0 + 60, query="level: error")
    page = queried_logs(resp)
    assert {k for fields, _ in page for k in fields if k.startswith("__tag__:")} >= {"__tag__:_pod_uid_"}
    records = [r for r, _ in queried_records(page, log_mapper(FieldMap()), "sls:x", "q #", 0)]
    assert sorted((r.message, tuple(sorted(r.resource.items()))) for r in records) == [
        ("order 2 failed", ()),
        ("order 2 failed", tuple(sorted(POD_RESOURCE.items()))),
    ]
    assert records[0].record_id == records[1].record_id


def test_consuming_tagged_and_untagged_copies_gives_one_graph(tagged, new_store) -> None:  # type: ignore[no-untyped-def]
    """In content-id mode the tagged and the untagged copy of a line are one node; the tags add only the
    pod's Resource, which the pod ran and which emitted both lines."""
    store = new_store("tags")
    stats = SlsCollector(_client(tagged), PROJECT, LOGSTORE, store, id_mode="content").consume()
    assert stats.records == 4 and store.counts()["LogEvent"] == 2
    plain = new_store("plain")
    with SlsServer(PROJECT, KEY_ID, KEY_SECRET) as server:
        server.create_logstore(LOGSTORE, shards=1)
        server.put_logs(LOGSTORE, 0, LINES, log_time=T0)
        SlsCollector(_client(server), PROJECT, LOGSTORE, plain, id_mode="content").consume()
    (nodes, edges), (plain_nodes, plain_edges) = graph_of(store), graph_of(plain)
    added = {n[0] for n in nodes - plain_nodes}
    pod = pod_node_id(POD_RESOURCE["k8s.pod.uid"])
    (resource,) = [n for n in added if n.startswith("resource:")]
    assert added == {resource, pod}  # the pod only as the end of its edge, until the cluster is read
    assert nodes >= plain_nodes and edges >= plain_edges
    logs = [n[0] for n in plain_nodes if n[1] == "LogEvent"]
    assert {(e[0], e[1], e[2]) for e in edges - plain_edges} == {(pod, "RAN", resource)} | {
        (resource, "EMITTED", log) for log in logs
    }


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("nginx", {"container.image.name": "nginx"}),
        ("nginx:1.27", {"container.image.name": "nginx", "container.image.tags": "1.27"}),
        (
            "registry.local:5000/team/app",  # a registry port is not a tag
            {"container.image.name": "registry.local:5000/team/app"},
        ),
        (
            "registry.local:5000/team/app:2.0",
            {"container.image.name": "registry.local:5000/team/app", "container.image.tags": "2.0"},
        ),
        (
            "docker.io/library/redis:7@sha256:" + "a" * 64,
            {
                "container.image.name": "docker.io/library/redis",
                "container.image.tags": "7",
                "container.image.repo_digests": "docker.io/library/redis@sha256:" + "a" * 64,
            },
        ),
    ],
)
def test_image_references_split_into_name_tag_and_digest(reference: str, expected: dict[str, str]) -> None:
    assert image_attributes(reference) == expected
