"""SLS shard consumption and query backfill with the real aliyun SDK against the local SLS server."""

from __future__ import annotations

import threading
import time

import pytest

from liubai.collector.ingest import BatchPace
from liubai.collector.sls import RetryPolicy, SlsCollector, SlsCredentials, SlsError, make_client, sls_source
from liubai.lineage.model import EdgeKind, NodeKind, trace_node_id
from tests.logs.conftest import KEY_ID, KEY_SECRET, LOGSTORE, PROJECT
from tests.logs.dataset import EPOCH, REJECTING_KINDS, make_dataset, put_into_sls
from tests.logs.lineage_check import assert_exact_lineage, graph_of, log_ids_by_message, out_edges
from tests.sls_server import SlsServer

SOURCE = sls_source(PROJECT, LOGSTORE)


def collector(server: SlsServer, store, timeout: float = 5, **kw) -> SlsCollector:  # type: ignore[no-untyped-def]
    creds = SlsCredentials(access_key_id=KEY_ID, access_key_secret=KEY_SECRET)
    client = make_client(server.endpoint, creds, timeout=timeout)
    kw.setdefault("retry", RetryPolicy(deadline=30, initial=0.05, max_wait=0.5))
    return SlsCollector(client, PROJECT, LOGSTORE, store, **kw)


def test_ten_thousand_lines_over_two_shards_link_exactly(commits, sls_server, new_store) -> None:  # type: ignore[no-untyped-def]
    ds = make_dataset(10_400, commits)
    put_into_sls(sls_server, LOGSTORE, ds.lines)
    store = new_store("sls")
    stats = collector(sls_server, store, pull_count=20).consume()

    assert stats.records == len(ds.lines)
    assert stats.shards == {0, 1}
    assert_exact_lineage(store, ds.lines)
    counts = store.counts()
    assert counts["LogEvent"] == len(ds.lines)
    assert counts["rejected"] == stats.rejected == ds.expected_rejects > 0
    assert set(store.checkpoints(SOURCE)) == {(SOURCE, "shard:0"), (SOURCE, "shard:1")}
    assert sls_server.requests["PullLogs"] >= 208 // 20  # 208 log groups, 20 per pull

    # A second run resumes at the checkpoints: nothing is read again, nothing changes.
    before = graph_of(store)
    again = collector(sls_server, store, pull_count=20).consume()
    assert again.records == 0
    assert graph_of(store) == before


def test_faults_are_retried_and_the_graph_is_unchanged(commits, sls_server, new_store) -> None:  # type: ignore[no-untyped-def]
    ds = make_dataset(1_200, commits)
    put_into_sls(sls_server, LOGSTORE, ds.lines, group_size=20)
    clean = new_store("clean")
    collector(sls_server, clean, pull_count=5).consume()

    sls_server.inject("ListShards", "500")
    sls_server.inject("GetCursor", "throttle", times=2)
    sls_server.inject("PullLogs", "throttle", times=3)
    sls_server.inject("PullLogs", "drop")
    sls_server.inject("PullLogs", "truncate")
    sls_server.inject("PullLogs", "500")
    sls_server.inject("PullLogs", "delay", seconds=1.0)  # longer than the client's timeout
    faulty = new_store("faulty")
    stats = collector(sls_server, faulty, timeout=0.5, pull_count=5).consume()

    assert sls_server.faults_pending() == 0
    assert sls_server.faults_served == {"500": 2, "throttle": 5, "drop": 1, "truncate": 1, "delay": 1}
    assert stats.records == len(ds.lines)
    assert graph_of(faulty) == graph_of(clean)
    assert_exact_lineage(faulty, ds.lines)


def test_persistent_throttling_fails_at_the_deadline_without_moving_checkpoints(
    commits, sls_server, new_store
) -> None:  # type: ignore[no-untyped-def]
    put_into_sls(sls_server, LOGSTORE, make_dataset(100, commits).lines)
    sls_server.inject("PullLogs", "throttle", times=10_000)
    store = new_store("throttled")
    started = time.monotonic()
    with pytest.raises(SlsError, match="ReadQuotaExceed"):
        collector(sls_server, store, retry=RetryPolicy(deadline=1.0, initial=0.05, max_wait=0.2)).consume()
    assert time.monotonic() - started < 10
    assert store.checkpoints(SOURCE) == {}
    assert store.counts()["LogEvent"] == 0


def test_shard_split_is_picked_up_while_following(commits, sls_server, new_store) -> None:  # type: ignore[no-untyped-def]
    ds = make_dataset(900, commits)
    first, second = ds.lines[:600], ds.lines[600:]
    put_into_sls(sls_server, LOGSTORE, first, group_size=30)
    store = new_store("split")
    col = collector(sls_server, store, pull_count=4)
    stop = threading.Event()
    runner = threading.Thread(
        target=lambda: col.consume(follow=True, poll_interval=0.05, shard_refresh=0.1, stop=stop)
    )
    runner.start()
    try:
        _wait(lambda: store.counts()["LogEvent"] >= len(first), "the first lines")
        a, b = sls_server.split_shard(LOGSTORE, 0)
        put_into_sls(sls_server, LOGSTORE, second, group_size=30)  # lands on shards 1, a and b
        assert {a, b} <= set(sls_server.shard_ids(LOGSTORE, writable=True))
        _wait(lambda: store.counts()["LogEvent"] >= len(ds.lines), "the lines written after the split")
    finally:
        stop.set()
        runner.join(10)
    assert not runner.is_alive()
    assert col.stats.shards == {0, 1, a, b}
    assert 0 in col.stats.finished_shards  # the read-only parent was drained and retired
    assert {(SOURCE, f"shard:{a}"), (SOURCE, f"shard:{b}")} <= set(store.checkpoints(SOURCE))
    assert_exact_lineage(store, ds.lines)


def test_backfill_by_query_pages_until_complete(commits, sls_server, new_store) -> None:  # type: ignore[no-untyped-def]
    ds = make_dataset(700, commits)
    put_into_sls(sls_server, LOGSTORE, ds.lines, group_size=10)
    base = int(EPOCH.timestamp())
    wanted = [ln for ln in ds.lines if ln.fields["service"] == "checkout"]
    assert len(wanted) > 100  # more than one GetLogs page
    store = new_store("backfill")
    sls_server.inject("GetLogs", "truncate")
    sls_server.inject("GetLogs", "throttle")
    stats = collector(sls_server, store).backfill("service: checkout", base, base + 3600)
    assert sls_server.faults_pending() == 0

    assert stats.records == len(wanted)
    assert_exact_lineage(store, wanted)
    assert sls_server.requests["GetLogs"] >= 3
    assert store.counts()["rejected"] == sum(1 for ln in wanted if ln.kind in ("bad_audit", "bad_trace"))

    # Content-hash ids: backfilling the same window again adds nothing.
    before = graph_of(store)
    collector(sls_server, store).backfill("service: checkout", base, base + 3600)
    assert graph_of(store) == before

    # The window bounds what is read: only the first 10 groups (one per second) fall in [base, base+10).
    narrow = new_store("narrow")
    assert collector(sls_server, narrow).backfill("*", base, base + 10).records == 100


def test_consume_with_content_ids_equals_backfill(commits, sls_server, new_store) -> None:  # type: ignore[no-untyped-def]
    ds = make_dataset(400, commits)
    put_into_sls(sls_server, LOGSTORE, ds.lines)
    consumed, queried = new_store("consumed"), new_store("queried")
    collector(sls_server, consumed, id_mode="content").consume()
    base = int(EPOCH.timestamp())
    collector(sls_server, queried).backfill("", base, base + 3600)
    assert graph_of(consumed) == graph_of(queried)
    assert consumed.counts()[NodeKind.LOG_EVENT.value] == len(ds.lines)


def _wait(cond, what: str, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_merged_and_expired_shards(commits, sls_server, new_store) -> None:  # type: ignore[no-untyped-def]
    ds = make_dataset(600, commits)
    put_into_sls(sls_server, LOGSTORE, ds.lines[:200], group_size=20)
    store = new_store("merge")
    collector(sls_server, store, pull_count=3).consume()
    merged = sls_server.merge_shards(LOGSTORE, 0)
    put_into_sls(sls_server, LOGSTORE, ds.lines[200:400], group_size=20)  # all on the merged shard
    assert sls_server.shard_ids(LOGSTORE, writable=True) == [merged]
    second = collector(sls_server, store, pull_count=3)
    second.consume()
    assert second.stats.finished_shards == {0, 1}
    # Read-only shards expire and vanish from the listing; the collector stops asking for them.
    sls_server.drop_shard(LOGSTORE, 0)
    sls_server.drop_shard(LOGSTORE, 1)
    put_into_sls(sls_server, LOGSTORE, ds.lines[400:], group_size=20)
    third = collector(sls_server, store, pull_count=3)
    third.consume()
    assert third.stats.shards == {merged} and third.stats.records == 200
    assert_exact_lineage(store, ds.lines)


def test_security_token_is_sent_and_checked(commits, new_store) -> None:  # type: ignore[no-untyped-def]
    with SlsServer(PROJECT, KEY_ID, KEY_SECRET, security_token="sts-token-1") as server:
        server.create_logstore(LOGSTORE, shards=1)
        put_into_sls(server, LOGSTORE, make_dataset(50, commits).lines)
        without = SlsCredentials(access_key_id=KEY_ID, access_key_secret=KEY_SECRET)
        with pytest.raises(SlsError, match="SecurityTokenExpired"):
            SlsCollector(
                make_client(server.endpoint, without), PROJECT, LOGSTORE, new_store("no-token")
            ).consume()
        creds = SlsCredentials(
            access_key_id=KEY_ID, access_key_secret=KEY_SECRET, security_token="sts-token-1"
        )
        stats = SlsCollector(
            make_client(server.endpoint, creds), PROJECT, LOGSTORE, new_store("token")
        ).consume()
        assert stats.records == 50


# ---------------------------------------------------------------- in a reader process (as the CLI runs)


def test_offloaded_reading_stores_what_in_process_reading_stores(commits, sls_server, new_store) -> None:  # type: ignore[no-untyped-def]
    """Pulling, mapping and joining in a child process changes nothing a user sees: the same graph,
    checkpoints, counts and rejects, for shard consumption and for query backfill; a rerun resumes."""
    ds = make_dataset(3_000, commits)
    put_into_sls(sls_server, LOGSTORE, ds.lines, group_size=25)
    here, there = new_store("here"), new_store("there")
    a = collector(sls_server, here, pull_count=7).consume()
    rejected: list[object] = []
    b = collector(sls_server, there, pull_count=7, on_reject=rejected.append).consume(offload=True)
    assert (b.records, b.rejected, b.pulls) == (a.records, a.rejected, a.pulls)  # batches may hold more pulls
    assert (b.shards, b.finished_shards) == (a.shards, a.finished_shards)
    assert len(rejected) == b.rejected == ds.expected_rejects > 0
    assert graph_of(there) == graph_of(here)
    assert there.checkpoints(SOURCE) == here.checkpoints(SOURCE)
    assert_exact_lineage(there, ds.lines)
    assert collector(sls_server, there, pull_count=7).consume(offload=True).records == 0

    base = int(EPOCH.timestamp())
    q_here, q_there = new_store("q-here"), new_store("q-there")
    collector(sls_server, q_here).backfill("service: checkout", base, base + 3600)
    stats = collector(sls_server, q_there).backfill("service: checkout", base, base + 3600, offload=True)
    assert stats.records == sum(1 for ln in ds.lines if ln.fields["service"] == "checkout") > 0
    assert graph_of(q_there) == graph_of(q_here)

    # A page with nothing rejected and no checkpoint (a backfill page of clean lines) is stored too.
    clean = [ln for ln in ds.lines if ln.kind not in REJECTING_KINDS][:500]
    sls_server.create_logstore("clean", shards=1)
    put_into_sls(sls_server, "clean", clean, group_size=25)
    client = make_client(
        sls_server.endpoint, SlsCredentials(access_key_id=KEY_ID, access_key_secret=KEY_SECRET)
    )
    c_store = new_store("clean")
    c_stats = SlsCollector(client, PROJECT, "clean", c_store).backfill("", base, base + 3600, offload=True)
    assert c_stats.records == c_store.counts()["LogEvent"] == len(clean) and c_stats.rejected == 0


def test_behind_a_slow_store_a_batch_holds_several_pulls_and_ids_stay_the_same(
    commits, sls_server, new_store
) -> None:  # type: ignore[no-untyped-def]
    """A reader process paces by putting more pulls into a batch, never by pulling more at once: in cursor
    mode a line's id names the cursor its pull started at, so re-reading with other batches must give
    the very same nodes."""
    ds = make_dataset(2_000, commits)
    put_into_sls(sls_server, LOGSTORE, ds.lines, group_size=10)  # 200 groups over 2 shards
    plain_store, paced_store = new_store("plain"), new_store("paced")
    plain = collector(sls_server, plain_store, pull_count=5).consume()
    pace = BatchPace(max_factor=4)
    pace.factor = 4
    paced = collector(sls_server, paced_store, pull_count=5, pace=pace).consume()
    assert paced.records == plain.records == len(ds.lines) and paced.pulls == plain.pulls
    assert paced.batches < plain.batches / 3
    assert graph_of(paced_store) == graph_of(plain_store)
    assert paced_store.checkpoints(SOURCE) == plain_store.checkpoints(SOURCE)
    assert_exact_lineage(paced_store, ds.lines)
    # a batch never holds more log groups than one pull may return (1000): two pulls of 600 would
    sls_server.create_logstore("singles", shards=1)
    put_into_sls(sls_server, "singles", ds.lines, group_size=1)
    creds = SlsCredentials(access_key_id=KEY_ID, access_key_secret=KEY_SECRET)
    widest = SlsCollector(
        make_client(sls_server.endpoint, creds),
        PROJECT,
        "singles",
        new_store("widest"),
        pull_count=600,
        pace=pace,
    ).consume()
    assert (widest.records, widest.batches) == (
        len(ds.lines),
        4,
    )  # pulls of 600, 600, 600, 200: one batch each


@pytest.mark.parametrize("offload", [False, True], ids=["in-process", "reader-process"])
def test_keys_and_values_that_are_not_utf8_land_escaped_with_the_pull_around_them(
    commits, sls_server, new_store, offload
) -> None:  # type: ignore[no-untyped-def]
    """SLS keeps the bytes a producer wrote, and the SDK hands over text that is not UTF-8 as bytes.
    That line lands with those bytes escaped; the lines pulled with it land as they are."""
    ds = make_dataset(400, commits)
    put_into_sls(sls_server, LOGSTORE, ds.lines[:200], group_size=20)
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    for shard in sls_server.shard_ids(LOGSTORE, writable=True):
        bad = {
            "message": b"disk \xff\xfe full on shard " + str(shard).encode(),
            "trace_id": trace,
            b"key-\xc3-not-utf8": b"\xc3",
            "ok": "fine",
        }
        sls_server.put_logs(LOGSTORE, shard, [bad], log_time=int(EPOCH.timestamp()))
    put_into_sls(sls_server, LOGSTORE, ds.lines[200:], group_size=20)
    store = new_store("raw")
    stats = collector(sls_server, store, pull_count=100).consume(offload=offload)  # one pull per shard

    assert stats.records == len(ds.lines) + 2 and stats.rejected == ds.expected_rejects
    by_message = log_ids_by_message(store)
    out = out_edges(store)
    for shard in (0, 1):
        ids = by_message.pop(f"disk \\xff\\xfe full on shard {shard}")
        assert len(ids) == 1 and out[ids[0]] == {(EdgeKind.IN_TRACE, trace_node_id(trace))}
        node = store.get(ids[0])
        assert node is not None and node.props["attributes"] == {"key-\\xc3-not-utf8": "\\xc3", "ok": "fine"}
    assert sum(map(len, by_message.values())) == len(ds.lines)
    assert all(len(by_message[ln.message]) == 1 for ln in ds.lines)


def test_offloaded_reading_keeps_sls_errors_and_stops_when_told(commits, sls_server, new_store) -> None:  # type: ignore[no-untyped-def]
    put_into_sls(sls_server, LOGSTORE, make_dataset(200, commits).lines)
    creds = SlsCredentials(access_key_id=KEY_ID, access_key_secret="wrong-secret-4c1d")
    wrong = SlsCollector(make_client(sls_server.endpoint, creds), PROJECT, LOGSTORE, new_store("wrong"))
    with pytest.raises(SlsError) as failed:
        wrong.consume(offload=True)
    assert failed.value.sls_code == "SignatureNotMatch" and "wrong-secret-4c1d" not in str(failed.value)

    store = new_store("follow")
    col = collector(sls_server, store)
    stop = threading.Event()
    runner = threading.Thread(
        target=lambda: col.consume(follow=True, poll_interval=0.05, stop=stop, offload=True)
    )
    runner.start()
    try:
        _wait(lambda: store.counts()["LogEvent"] >= 200, "the lines")
    finally:
        stop.set()
        runner.join(10)
    assert not runner.is_alive()
    assert col.stats.records == 200
