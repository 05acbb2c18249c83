"""Cluster ingest on a real API server (``scripts/kube/cluster``): a list + join of many Pods, and the
rate a watch keeps up with, each beside a baseline read of the same data in the same run.

* ``raw list``      - every Pod through the official client, paged as the collector pages, JSON parsed
  and nothing else (the ceiling for any reader); ``typed list`` - the same with the client's models;
* ``liubai list``   - ``liubai ingest k8s`` once (``ClusterCollector``): every resource type listed,
  converted, joined and written to a fresh SQLite store, closed. Target: ``--pods`` (10,000) in <= 10 s;
* ``raw watch``     - a backlog of Pod events (every Pod of the list deleted while no watcher ran: a
  MODIFIED and a DELETED event each) read from the list's resourceVersion, JSON parsed only;
* ``liubai watch``  - ``ingest k8s --watch`` resuming from the stored checkpoints over the same backlog,
  until the Pods' checkpoint is stored at its last event: events converted, joined and stored; its
  start-up (discovery, a watch per resource type) counts. Target >= 1,000/s.

* ``kill -9``      - ``--rollout-pods`` (1,000) Pods rolled to a new image while two ``ingest k8s --watch``
  processes follow; one is killed once it stored the first new Pod and started again: the time it
  takes to catch up, and whether its store ends identical to the uninterrupted one's (it must).

Pods come from Deployments (``--deployments`` of them, the controller-manager makes the Pods), each
Pod carrying an audit id, so the join does all it does in production. No kubelet runs, so the Pods stay
Pending; their status is not what is measured.

Example: .venv/bin/python bench/k8s_ingest.py --pods 10000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import orjson
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the test cluster lives in tests/

from liubai.collector.k8s import ClusterCollector, KubeApi, ingest_cluster
from liubai.collector.retry import RetryPolicy
from liubai.lineage.store import open_store
from tests.kube_cluster import KubeCluster, running
from tests.kube_watch import (
    Watcher,
    api_pods,
    deployment,
    dump,
    dump_diff,
    names,
    pods_in,
    wait_for,
    wait_synced,
)

LIST_TARGET_S = 10.0
WATCH_TARGET = 1_000.0
PAGE = "500"
AUDIT = "git-sha1:" + "c" * 40 + "|trace:" + "ab" * 16


def pod_count(cluster: KubeCluster, ns: str) -> int:
    from kubernetes import client

    doc = orjson.loads(
        client.CoreV1Api(cluster.api_client()).list_namespaced_pod(ns, _preload_content=False).data
    )
    return len(doc["items"])


def wait_count(cluster: KubeCluster, ns: str, want: int, timeout: float) -> float:
    t = time.perf_counter()
    last = -1
    while True:
        have = pod_count(cluster, ns)
        if have == want:
            return time.perf_counter() - t
        if time.perf_counter() - t > timeout:
            raise SystemExit(f"k8s_ingest: {have} of {want} pods after {timeout:.0f}s")
        if have != last:
            print(f"  {have:,} / {want:,} pods", file=sys.stderr, flush=True)
            last = have
        time.sleep(2)


def raw_list(cluster: KubeCluster) -> tuple[float, int, str]:
    """Every Pod, paged, parsed: seconds, count, the list's resourceVersion."""
    from kubernetes import client

    core = client.CoreV1Api(cluster.api_client())
    t = time.perf_counter()
    n, token, rv = 0, None, ""
    while True:
        resp = core.list_pod_for_all_namespaces(limit=int(PAGE), _continue=token, _preload_content=False)
        doc = orjson.loads(resp.data)
        n += len(doc["items"])
        rv = rv or doc["metadata"]["resourceVersion"]
        token = doc["metadata"].get("continue")
        if not token:
            return time.perf_counter() - t, n, rv


def typed_list(cluster: KubeCluster) -> tuple[float, int]:
    from kubernetes import client

    core = client.CoreV1Api(cluster.api_client())
    t = time.perf_counter()
    n, token = 0, None
    while True:
        page = core.list_pod_for_all_namespaces(limit=int(PAGE), _continue=token)
        n += len(page.items)
        token = page.metadata._continue
        if not token:
            return time.perf_counter() - t, n


def liubai_list(cluster: KubeCluster, url: str) -> tuple[float, int]:
    t = time.perf_counter()
    store = open_store(url)
    api = KubeApi(cluster.api_client())
    try:
        summary = ingest_cluster(store, ClusterCollector(api, store, retry=RetryPolicy(deadline=30)))
    finally:
        store.close()
        api.close()
    return time.perf_counter() - t, summary.count("PodRecord")


def raw_watch(cluster: KubeCluster, since: str, deletions: int) -> tuple[float, int, int]:
    """Pod events from ``since`` until ``deletions`` Pods were deleted, parsed only: seconds, events,
    the resourceVersion of the last one."""
    from kubernetes import client

    core = client.CoreV1Api(cluster.api_client())
    t = time.perf_counter()
    resp = core.list_pod_for_all_namespaces(
        watch=True,
        resource_version=since,
        allow_watch_bookmarks=True,
        timeout_seconds=120,
        _preload_content=False,
    )
    n, deleted, buf = 0, 0, b""
    try:
        for chunk in resp.stream(None, decode_content=True):
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                event = orjson.loads(line)
                if event["type"] == "ERROR":
                    raise SystemExit(f"k8s_ingest: raw watch failed: {event['object']}")
                n += event["type"] != "BOOKMARK"
                deleted += event["type"] == "DELETED"
                if deleted >= deletions:
                    return time.perf_counter() - t, n, int(event["object"]["metadata"]["resourceVersion"])
    finally:
        resp.close()
        resp.release_conn()
    raise SystemExit("k8s_ingest: the raw watch ended before the backlog did")


def liubai_watch(cluster: KubeCluster, url: str, until: int, timeout: float = 300) -> tuple[float, int, int]:
    """Resume ``--watch`` from the stored checkpoints until the Pods' one reaches ``until``: seconds, Pod
    events handled, relists."""
    store = open_store(url)
    api = KubeApi(cluster.api_client())
    collector = ClusterCollector(api, store, retry=RetryPolicy(deadline=30))
    failed: list[BaseException] = []

    def run() -> None:
        try:
            ingest_cluster(store, collector, watch=True)
        except BaseException as exc:  # reported below
            failed.append(exc)

    reader = open_store(url)
    t = time.perf_counter()
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    try:
        while True:
            rv = reader.checkpoints("k8s").get(("k8s", "v1/pods"), "0")
            if int(rv) >= until:
                took = time.perf_counter() - t
                break
            if failed or not worker.is_alive():
                raise SystemExit(f"k8s_ingest: the watch stopped: {failed}")
            if time.perf_counter() - t > timeout:
                raise SystemExit(f"k8s_ingest: the watch reached {rv} of {until} in {timeout:.0f}s")
            time.sleep(0.02)
    finally:
        collector.stop.set()
        worker.join(60)
        reader.close()
        store.close()
        api.close()
    pods = collector.stats.resources["v1/pods"]
    return took, pods.events, collector.stats.relists


def kill_mid_rollout(cluster: KubeCluster, pods: int, tmp: Path) -> dict[str, Any]:
    """``tests/kube/test_watch_kill.py`` at scale: two ``ingest k8s --watch`` processes follow a rollout
    of ``pods`` Pods, one is killed with SIGKILL once it stored the first new Pod and started again;
    whether both stores end identical, and how long the restarted one took to catch up."""
    ns = cluster.create_namespace("rollout")
    steady, killed = f"sqlite:///{tmp / 'steady.db'}", f"sqlite:///{tmp / 'killed.db'}"

    def stored(url: str, want: set[str], deleted: set[str] | None = None) -> None:
        wait_for(
            f"{len(want)} pods in {url}",
            lambda: (
                set(pods_in(url, ns)) == want
                and (deleted is None or set(pods_in(url, ns, live=False)) == deleted)
            ),
            timeout=600,
            every=1,
        )

    with Watcher(steady, cluster.kubeconfig) as a, Watcher(killed, cluster.kubeconfig) as b:
        wait_synced(steady)
        wait_synced(killed)
        cluster.kubectl(
            "apply", "-f", "-", stdin=yaml.safe_dump(deployment(ns, "fleet", pods, "registry.example/f:1"))
        )
        wait_count(cluster, ns, pods, timeout=900)
        first = names(api_pods(cluster.api_client(), ns))
        stored(steady, first)
        stored(killed, first)
        cluster.kubectl("set", "image", "deployment/fleet", "-n", ns, "app=registry.example/f:2")
        wait_for(
            "the rollout to reach the watcher",
            lambda: any(n not in first for n in pods_in(killed, ns)),
            timeout=600,
            every=0.05,
        )
        b.kill()
        had = sum(1 for n in pods_in(killed, ns) if n not in first)
        t = time.perf_counter()
        with Watcher(killed, cluster.kubeconfig) as again:
            second = wait_for(
                "the rollout",
                lambda: (
                    now
                    if len(now := names(api_pods(cluster.api_client(), ns))) == pods and not now & first
                    else None
                ),
                timeout=900,
                every=1,
            )
            stored(killed, second, first)
            caught_up = time.perf_counter() - t
            stored(steady, second, first)
            with suppress(AssertionError):
                wait_for(
                    "both graphs alike", lambda: dump(steady, ns) == dump(killed, ns), timeout=60, every=1
                )
            summary = again.stop()
        a.stop()
    one, other = dump(steady, ns), dump(killed, ns)
    return {
        "rollout_pods": pods,
        "new_pods_stored_at_kill": had,
        "catch_up_s": round(caught_up, 2),
        "relists_after_restart": summary["relists"],
        "identical": one == other,
        "difference": dump_diff(one, other),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pods", type=int, default=10_000)
    ap.add_argument("--deployments", type=int, default=10)
    ap.add_argument(
        "--rollout-pods", type=int, default=1000, help="Pods of the kill -9 mid-rollout run (0: skip it)"
    )
    args = ap.parse_args()
    per = args.pods // args.deployments
    pods = per * args.deployments
    try:
        context = running()
        cluster = context.__enter__()
    except BaseException as exc:  # pytest's skip/fail outcomes, when the binaries are missing
        print(json.dumps({"skipped": str(exc) or type(exc).__name__}))
        return 0
    try:
        ns = cluster.create_namespace("bench")
        docs = [
            deployment(ns, f"d{i}", per, "registry.example/app:1", audit_id=AUDIT)
            for i in range(args.deployments)
        ]
        cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(docs))
        made = wait_count(cluster, ns, pods, timeout=900)
        print(f"{pods:,} pods made by the controller-manager in {made:.0f}s", file=sys.stderr)

        raw_s, raw_n, _ = raw_list(cluster)
        typed_s, _ = typed_list(cluster)
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{Path(tmp) / 'k8s.db'}"
            list_s, list_n = liubai_list(cluster, url)
            stored = open_store(url)
            since = stored.checkpoints("k8s")[("k8s", "v1/pods")]
            stored.close()

            for i in range(args.deployments):  # the backlog: every Pod deleted while nobody watches
                cluster.kubectl("scale", f"deployment/d{i}", "-n", ns, "--replicas=0")
            wait_count(cluster, ns, 0, timeout=900)
            rw_s, rw_n, until = raw_watch(cluster, since, pods)
            w_s, w_n, relists = liubai_watch(cluster, url, until)
            killed = kill_mid_rollout(cluster, args.rollout_pods, Path(tmp)) if args.rollout_pods else None
    finally:
        context.__exit__(None, None, None)

    list_ok = list_s <= LIST_TARGET_S and list_n >= pods
    w_rate, rw_rate = w_n / w_s, rw_n / rw_s
    watch_ok = w_rate >= WATCH_TARGET and relists == 0
    lines = [
        f"list of {raw_n:,} Pods (one namespace, {args.deployments} Deployments, each Pod with an audit id)",
        f"  raw list (client, JSON only)     {raw_s:7.2f} s   {raw_n / raw_s:9,.0f} pods/s",
        f"  typed list (client models)       {typed_s:7.2f} s   {raw_n / typed_s:9,.0f} pods/s",
        f"  liubai list + join + SQLite      {list_s:7.2f} s   {list_n / list_s:9,.0f} pods/s   "
        f"{list_s / raw_s:.1f}x raw   target <= {LIST_TARGET_S:.0f} s: {'met' if list_ok else 'MISSED'}",
        f"watch backlog of {rw_n:,} Pod events (each Pod deleted: MODIFIED + DELETED), from the list's RV",
        f"  raw watch (client, JSON only)    {rw_s:7.2f} s   {rw_rate:9,.0f} events/s",
        f"  liubai watch + join + SQLite     {w_s:7.2f} s   {w_rate:9,.0f} events/s   "
        f"{w_rate / rw_rate:.0%} of raw   relists {relists}   target >= {WATCH_TARGET:,.0f}/s: "
        f"{'met' if watch_ok else 'MISSED'}",
    ]
    kill_ok = killed is None or (killed["identical"] and killed["relists_after_restart"] == 0)
    if killed is not None:
        lines += [
            f"kill -9 of a watcher mid-rollout of {killed['rollout_pods']:,} Pods "
            f"({killed['new_pods_stored_at_kill']:,} new ones stored at the kill)",
            f"  restarted watcher caught up in   {killed['catch_up_s']:7.2f} s   relists "
            f"{killed['relists_after_restart']}   graph identical to the uninterrupted one: "
            f"{'yes' if killed['identical'] else 'NO'}",
        ]
        if not killed["identical"]:
            lines.append(killed["difference"])
    print("\n".join(lines))
    report: dict[str, Any] = {
        "pods": raw_n,
        "raw_list_s": round(raw_s, 3),
        "typed_list_s": round(typed_s, 3),
        "liubai_list_s": round(list_s, 3),
        "list_vs_raw": round(list_s / raw_s, 2),
        "watch_events": w_n,
        "raw_watch_events_per_s": round(rw_rate),
        "liubai_watch_events_per_s": round(w_rate),
        "watch_vs_raw": round(w_rate / rw_rate, 3),
        "relists": relists,
        "kill_mid_rollout": {k: v for k, v in (killed or {}).items() if k != "difference"} or None,
        "targets_met": list_ok and watch_ok and kill_ok,
    }
    print(json.dumps(report))
    return 0 if list_ok and watch_ok and kill_ok else 1


if __name__ == "__main__":
    sys.exit(main())
