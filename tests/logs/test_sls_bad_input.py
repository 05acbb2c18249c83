"""Bad answers and bad settings around SLS, with the real aliyun SDK against the local SLS server: each is
one ``SlsError`` naming the call and what was wrong, retried only where fetching again can help."""

from __future__ import annotations

import socket
import threading

import pytest

from liubai.collector.sls import RetryPolicy, SlsCollector, SlsCredentials, SlsError, make_client
from tests.logs.conftest import KEY_ID, KEY_SECRET, LOGSTORE, PROJECT
from tests.logs.dataset import EPOCH, make_dataset, put_into_sls
from tests.logs.lineage_check import graph_of, log_ids_by_message
from tests.sls_server import SlsServer

CREDS = SlsCredentials(access_key_id=KEY_ID, access_key_secret=KEY_SECRET)


def _collector(endpoint: str, store, deadline: float = 0.0, **kw) -> SlsCollector:  # type: ignore[no-untyped-def]
    client = make_client(endpoint, CREDS, timeout=2)
    retry = RetryPolicy(deadline=deadline, initial=0.05, max_wait=0.2)
    return SlsCollector(client, PROJECT, LOGSTORE, store, retry=retry, **kw)


def test_the_sdk_sends_each_request_once_and_the_retry_policy_alone_repeats_it(sls_server, new_store) -> None:  # type: ignore[no-untyped-def]
    sls_server.inject("ListShards", "500", times=100)
    with pytest.raises(SlsError) as failed:
        _collector(sls_server.endpoint, new_store("a")).consume()
    assert sls_server.requests["ListShards"] == 1  # deadline 0: one try (the SDK alone made 10)
    assert "ListShards" in str(failed.value) and "InternalServerError (HTTP 500)" in str(failed.value)

    with pytest.raises(SlsError):
        _collector(sls_server.endpoint, new_store("b"), deadline=0.3).consume()
    # backoff 0.05 s doubling, capped at 0.2 s, for 0.3 s: a handful of tries (one, on a slow machine), never
    # the SDK's 10 per try
    assert 1 <= sls_server.requests["ListShards"] - 1 <= 8


def test_a_closed_port_is_tried_once_and_reported_as_no_answer(new_store) -> None:  # type: ignore[no-untyped-def]
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    port = listener.getsockname()[1]
    connections = 0
    try:
        listener.settimeout(0.01)
        col = _collector(f"127.0.0.1:{port}", new_store("a"))
        # every connection is accepted and closed at once: a "httpconnectionpool" error the SDK retried
        done = threading.Event()

        def hang_up() -> None:
            nonlocal connections
            while not done.is_set():
                try:
                    conn, _ = listener.accept()
                except OSError:
                    continue
                connections += 1
                conn.close()

        closer = threading.Thread(target=hang_up)
        closer.start()
        try:
            with pytest.raises(SlsError) as failed:
                col.consume()
        finally:
            done.set()
            closer.join(5)
    finally:
        listener.close()
    assert connections == 1
    message = str(failed.value)
    assert "no answer" in message and "HTTP 200" not in message and "\n" not in message


@pytest.mark.parametrize(
    ("api", "kind", "says"),
    [
        ("ListShards", "malformed", "shard entry #0 has no integer shardID"),
        ("ListShards", "garbage", "not the JSON SLS answers with"),
        ("GetCursor", "malformed", "malformed reply"),
        ("GetCursor", "garbage", "not the JSON SLS answers with"),
        ("PullLogs", "garbage", "malformed reply: body does not decode"),
    ],
)
@pytest.mark.parametrize("offload", [False, True], ids=["in-process", "reader-process"])
def test_a_malformed_reply_is_one_error_naming_the_call(
    commits, sls_server, new_store, api, kind, says, offload
) -> None:  # type: ignore[no-untyped-def]
    put_into_sls(sls_server, LOGSTORE, make_dataset(20, commits).lines)
    sls_server.inject(api, kind, times=100)
    with pytest.raises(SlsError) as failed:
        _collector(sls_server.endpoint, new_store("a")).consume(offload=offload)
    message = str(failed.value)
    assert message.startswith(api) and says in message and "\n" not in message, message


def test_a_garbled_pull_is_fetched_again_and_the_data_lands(commits, sls_server, new_store) -> None:  # type: ignore[no-untyped-def]
    ds = make_dataset(200, commits)
    put_into_sls(sls_server, LOGSTORE, ds.lines)
    clean = new_store("clean")
    _collector(sls_server.endpoint, clean).consume()
    sls_server.inject("PullLogs", "garbage", times=2)
    garbled = new_store("garbled")
    stats = _collector(sls_server.endpoint, garbled, deadline=30).consume()
    assert sls_server.faults_served == {"garbage": 2} and stats.records == len(ds.lines)
    assert graph_of(garbled) == graph_of(clean)


def test_a_lone_surrogate_in_a_query_answer_lands_escaped_with_the_page_around_it(
    commits, sls_server, new_store
) -> None:  # type: ignore[no-untyped-def]
    ds = make_dataset(30, commits)
    put_into_sls(sls_server, LOGSTORE, ds.lines)
    sls_server.inject("GetLogs", "surrogate")
    store = new_store("q")
    base = int(EPOCH.timestamp())
    stats = _collector(sls_server.endpoint, store, deadline=5).backfill("", base - 86400, base + 86400)
    assert stats.records == len(ds.lines) and sls_server.faults_served == {"surrogate": 1}
    messages = log_ids_by_message(store)
    assert sum(map(len, messages.values())) == len(ds.lines)
    assert {ln.message + "\\ud800" for ln in ds.lines} == set(messages)


@pytest.mark.parametrize(
    "endpoint",
    ["127.0.0.1:abc", "http://[::1", "::::", "http://user:pw-7f3e@127.0.0.1:1", "127.0.0.1:99999", "ftp://x"],
)
def test_a_malformed_endpoint_is_one_error_without_its_password(endpoint: str) -> None:
    with pytest.raises(SlsError) as failed:
        make_client(endpoint, CREDS)
    message = str(failed.value)
    assert "endpoint" in message and "pw-7f3e" not in message and "\n" not in message


@pytest.mark.parametrize("key_id", ["a\nb", "k\x00", " padded"])
def test_an_access_key_that_cannot_sign_is_refused_without_printing_it(tmp_path, key_id: str) -> None:  # type: ignore[no-untyped-def]
    creds = tmp_path / "c.yaml"
    creds.write_text(f"access_key_id: {key_id!r}\naccess_key_secret: s\n".replace("'", '"'))
    with pytest.raises(SlsError) as failed:
        SlsCredentials.load(creds)
    message = str(failed.value)
    assert (
        "access_key_id" in message and str(creds) in message and key_id not in message and "\n" not in message
    )


def test_a_credentials_file_that_is_not_utf8_is_one_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    creds = tmp_path / "c.yaml"
    creds.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(SlsError, match="not UTF-8"):
        SlsCredentials.load(creds)


def test_the_server_answers_normally_after_a_fault(sls_server: SlsServer, new_store) -> None:  # type: ignore[no-untyped-def]
    sls_server.inject("ListShards", "malformed")
    store = new_store("a")
    with pytest.raises(SlsError):
        _collector(sls_server.endpoint, store).consume()
    assert _collector(sls_server.endpoint, store).consume().shards == {0, 1}
