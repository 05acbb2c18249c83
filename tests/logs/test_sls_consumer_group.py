"""Collectors sharing a logstore through an SLS consumer group: real ``liubai ingest sls`` processes, the
real SDK's heartbeats against the stand-in's shard assignment, one of them killed with SIGKILL."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from liubai.collector.sls import GroupMember, GroupOptions, SlsCollector, SlsCredentials, make_client
from liubai.lineage.store import open_store
from tests.logs.conftest import KEY_ID, KEY_SECRET, PROJECT
from tests.logs.dataset import make_dataset, put_into_sls
from tests.logs.lineage_check import assert_exact_lineage, log_ids_by_message
from tests.logs.test_sls_cli import CLI, _env
from tests.sls_server import SlsServer

LOGSTORE = "shared"
GROUP = "liubai-test"
HEARTBEAT = "1.5"  # seconds; the group's timeout is twice that (a loaded machine must not miss it)


def _start(server: SlsServer, db: Path, consumer: str) -> subprocess.Popen[str]:
    args = [
        *CLI, "--store", f"sqlite:///{db}", "ingest", "sls", "--endpoint", server.endpoint,
        "--project", PROJECT, "--logstore", LOGSTORE, "--follow", "--poll-interval", "0.05",
        "--pull-count", "3", "--consumer-group", GROUP, "--consumer", consumer,
        "--heartbeat-interval", HEARTBEAT,
    ]  # fmt: skip
    return subprocess.Popen(args, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait(cond: Any, what: str, procs: list[subprocess.Popen[str]], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        for p in procs:
            assert p.poll() is None, f"a collector exited early: {p.communicate()[1]}"
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _landed(db: Path) -> int:
    store = open_store(f"sqlite:///{db}")
    try:
        return int(store.counts()["LogEvent"])
    finally:
        store.close()


def _read_by(server: SlsServer, consumer: str) -> list[tuple[int, int]]:
    """(shard, log group index) of every log group the consumer pulled."""
    agent = next((a for a in server.pulled if a.endswith(f"-consumergroup-{GROUP}-{consumer}")), None)
    pulls = server.pulled.get(agent, []) if agent else []
    return [(shard, first + i) for _, shard, first, n in pulls for i in range(n)]


def test_three_collectors_share_eight_shards_and_a_killed_ones_shards_move(commits, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ds = make_dataset(2_400, commits)
    first, second = ds.lines[:1_200], ds.lines[1_200:]
    db = tmp_path / "shared.db"
    with SlsServer(PROJECT, KEY_ID, KEY_SECRET) as server:
        server.create_logstore(LOGSTORE, shards=8)
        put_into_sls(server, LOGSTORE, first, group_size=10)  # 15 log groups per shard
        procs = {name: _start(server, db, name) for name in ("a", "b", "c")}
        running = list(procs.values())
        try:

            def balanced() -> bool:
                held = server.consumer_group_shards(LOGSTORE, GROUP)
                return sorted(map(len, held.values())) == [2, 3, 3]

            _wait(balanced, "the shards spread over three consumers", running)
            _wait(lambda: _landed(db) >= len(first), "the first lines", running)
            doomed = min(procs, key=lambda n: (-len(server.consumer_group_shards(LOGSTORE, GROUP)[n]), n))
            its_shards = set(server.consumer_group_shards(LOGSTORE, GROUP)[doomed])
            os.kill(procs[doomed].pid, signal.SIGKILL)  # its heartbeats stop for real
            procs[doomed].wait(10)
            running = [p for n, p in procs.items() if n != doomed]

            put_into_sls(server, LOGSTORE, second, group_size=10)  # on every shard, the dead one's too
            survivors = sorted(set(procs) - {doomed})

            def moved() -> bool:
                held = server.consumer_group_shards(LOGSTORE, GROUP)
                return sorted(held) == survivors and sorted(s for n in survivors for s in held[n]) == list(
                    range(8)
                )

            _wait(moved, "the killed collector's shards to move to the others", running)
            _wait(lambda: _landed(db) >= len(ds.lines), "every line", running)
        finally:
            for p in running:
                p.send_signal(signal.SIGTERM)
            outputs = {n: p.communicate(timeout=30) for n, p in procs.items()}
        for n in survivors:
            assert procs[n].returncode == 0, outputs[n][1]

        summaries = {n: outputs[n][0] for n in survivors}
        held_by = {}
        for n, out in summaries.items():
            m = re.search(rf"consumer {n} of group {GROUP} held shards (\d+(?:, \d+)*)", out)
            assert m is not None, out
            held_by[n] = {int(s) for s in m.group(1).split(", ")}
        assert its_shards <= held_by[survivors[0]] | held_by[survivors[1]]  # taken over
        assert held_by[survivors[0]] | held_by[survivors[1]] == set(range(8))

        # Both survivors read. A shard is held by one consumer at a time, except while a consumer whose
        # heartbeat ran late still pulls a shard already handed on (SLS groups are at-least-once there, as
        # a loaded machine shows): exactly once is the store's checkpoint's job, checked below.
        a, b = (set(_read_by(server, n)) for n in survivors)
        assert a and b
        # what the dead one pulled but had not stored, a survivor read again from the store's checkpoint
        everything = {(s, g) for s in range(8) for g in range(30)}
        assert a | b | set(_read_by(server, doomed)) == everything

    store = open_store(f"sqlite:///{db}")
    try:
        assert_exact_lineage(store, ds.lines)  # every line exactly once: none missing, none doubled
        by_message = log_ids_by_message(store)
        assert all(len(by_message[ln.message]) == 1 for ln in ds.lines)
        checkpoints = store.checkpoints(f"sls:{PROJECT}/{LOGSTORE}")
        assert set(checkpoints) == {(f"sls:{PROJECT}/{LOGSTORE}", f"shard:{s}") for s in range(8)}
    finally:
        store.close()


def test_a_shard_taken_over_starts_at_the_stores_checkpoint_not_the_groups(
    commits, sls_server, new_store
) -> None:  # type: ignore[no-untyped-def]
    """The group's checkpoint trails the store (copied after a batch is stored). A consumer taking a
    shard over reads on from the store's checkpoint, ahead of the group's; a store with none of its own
    starts at the group's."""
    from tests.logs.conftest import LOGSTORE as STORE

    ds = make_dataset(600, commits)
    put_into_sls(sls_server, STORE, ds.lines[:300], group_size=10)
    creds = SlsCredentials(access_key_id=KEY_ID, access_key_secret=KEY_SECRET)

    def member(name: str) -> GroupMember:
        client = make_client(sls_server.endpoint, creds)
        return GroupMember(
            client, PROJECT, STORE, GroupOptions("g1", name, heartbeat_interval=0.2, timeout=1)
        )

    store = new_store("ahead")
    first = member("one")
    stats = SlsCollector(first.client.mclient, PROJECT, STORE, store, pull_count=4, group=first).consume()
    assert stats.records == 300 and first.held_ever == {0, 1}
    answer = first.client.mclient.get_check_point(PROJECT, STORE, "g1").get_consumer_group_check_points()
    stored = {int(key.removeprefix("shard:")): cursor for (_, key), cursor in store.checkpoints().items()}
    assert {e["shard"]: e["checkpoint"] for e in answer} == stored  # copied once stored

    # Set the group's checkpoints back to the start: the store's own, further on, must win.
    for shard in (0, 1):
        first.client.mclient.update_check_point(PROJECT, STORE, "g1", shard, "MA==", "one")
    put_into_sls(sls_server, STORE, ds.lines[300:], group_size=10)
    time.sleep(1.2)  # "one" is gone from the group
    second = member("two")
    again = SlsCollector(second.client.mclient, PROJECT, STORE, store, pull_count=4, group=second).consume()
    assert again.records == 300  # only the new lines
    assert_exact_lineage(store, ds.lines)

    # A new store has no checkpoint of its own: it starts where the group's checkpoints are.
    fresh = new_store("fresh")
    time.sleep(1.2)
    third = member("three")
    resumed = SlsCollector(third.client.mclient, PROJECT, STORE, fresh, pull_count=4, group=third).consume()
    assert resumed.records == 0 and fresh.counts()["LogEvent"] == 0


def test_a_group_run_names_its_shards_and_a_bad_group_name_is_one_line(commits, sls_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.logs.conftest import LOGSTORE as STORE

    put_into_sls(sls_server, STORE, make_dataset(200, commits).lines)

    def run(db: str, *extra: str) -> subprocess.CompletedProcess[str]:
        args = [
            *CLI, "--store", f"sqlite:///{tmp_path / db}", "ingest", "sls", "--endpoint", sls_server.endpoint,
            "--project", PROJECT, "--logstore", STORE, *extra,
        ]  # fmt: skip
        return subprocess.run(args, env=_env(), capture_output=True, text=True, timeout=60)

    alone = run("alone.db", "--consumer-group", "solo")
    assert alone.returncode == 0, alone.stderr
    assert "consumed 200 log records" in alone.stdout
    assert re.search(r"consumer \S+-\d+ of group solo held shards 0, 1\n", alone.stdout), (
        alone.stdout
    )  # host-pid

    lone = run("lone.db", "--heartbeat-interval", "5")  # a pace for heartbeats that no group sends
    assert lone.returncode == 1 and "give --consumer-group too" in lone.stderr

    bad = run("bad.db", "--consumer-group", "Not A Name")
    assert bad.returncode == 1
    assert [ln for ln in bad.stderr.splitlines() if ln.strip()] == [
        f"error: SLS {PROJECT}/{STORE} at {sls_server.endpoint}: CreateConsumerGroup Not A Name: "
        "ParameterInvalid (HTTP 400): consumerGroup 'Not A Name' is invalid"
    ]


def test_group_options_are_refused_with_a_query(sls_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    args = [
        *CLI, "--store", f"sqlite:///{tmp_path / 'x.db'}", "ingest", "sls", "--endpoint", sls_server.endpoint,
        "--project", PROJECT, "--logstore", "app", "--query", "*", "--consumer-group", GROUP,
    ]  # fmt: skip
    run = subprocess.run(args, env=_env(), capture_output=True, text=True, timeout=60)
    assert run.returncode != 0 and "--consumer-group" in run.stderr
    assert sls_server.requests.get("CreateConsumerGroup", 0) == 0


def test_the_stand_in_assigns_shards_as_sls_does(sls_server) -> None:  # type: ignore[no-untyped-def]
    """The consumer-group calls through the real SDK: a shard moves only once its holder lets go of it
    (or falls silent), create/update/list/delete and checkpoints answer as SLS does."""
    from aliyun.log import LogException

    from tests.logs.conftest import LOGSTORE as STORE

    sls_server.create_logstore("eight", shards=8)
    c = make_client(sls_server.endpoint, SlsCredentials(access_key_id=KEY_ID, access_key_secret=KEY_SECRET))

    def beat(consumer: str, holding: list[int]) -> list[int]:
        return sorted(c.heart_beat(PROJECT, "eight", "cg", consumer, holding).get_shards())

    c.create_consumer_group(PROJECT, "eight", "cg", 1)
    with pytest.raises(LogException) as exists:
        c.create_consumer_group(PROJECT, "eight", "cg", 1)
    assert exists.value.get_error_code() == "ConsumerGroupAlreadyExist"
    assert beat("a", []) == list(range(8))
    assert beat("b", []) == []  # all eight are a's until it lets four go
    assert beat("a", list(range(8))) == [0, 1, 2, 3]
    assert beat("b", []) == []  # a still names 4..7
    assert beat("a", [0, 1, 2, 3]) == [0, 1, 2, 3]
    assert beat("b", []) == [4, 5, 6, 7]
    time.sleep(1.1)  # a falls silent for longer than the group's timeout
    assert beat("b", [4, 5, 6, 7]) == list(range(8))

    c.update_check_point(PROJECT, "eight", "cg", 5, "MA==", "b", force_success=False)
    with pytest.raises(LogException) as foreign:
        c.update_check_point(PROJECT, "eight", "cg", 5, "MA==", "a", force_success=False)
    assert foreign.value.get_error_code() == "ConsumerNotMatch"
    points = c.get_check_point(PROJECT, "eight", "cg").get_consumer_group_check_points()
    assert [(p["shard"], p["checkpoint"], p["consumer"]) for p in points if p["checkpoint"]] == [
        (5, "MA==", "b")
    ]
    assert len(points) == 8  # a shard without a checkpoint is listed with an empty one

    c.update_consumer_group(PROJECT, "eight", "cg", timeout=30)
    c.create_consumer_group(PROJECT, STORE, "other", 5)
    listed = c.list_consumer_group(PROJECT, "eight").get_consumer_groups()
    assert [(g.get_consumer_group_name(), g.get_timeout()) for g in listed] == [("cg", 30)]
    c.delete_consumer_group(PROJECT, "eight", "cg")
    assert c.list_consumer_group(PROJECT, "eight").get_consumer_groups() == []
    with pytest.raises(LogException) as gone:
        beat("a", [])
    assert gone.value.get_error_code() == "ConsumerGroupNotExist"
