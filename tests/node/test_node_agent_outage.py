"""``liubai agent --ebpf`` while its API is down: what the pods do meanwhile is spooled and lands exactly
once after the API returns; the agent says so in one line each way.

The agent is the real one (its own process, real BPF), the pod a runc container in a kubelet-style cgroup,
the API a real server stopped and started again on the same port over the same store.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import httpx
import pytest

from liubai.lineage.model import container_file_node_id
from liubai.lineage.records import FileAccessRecord
from tests.hardening.conftest import ApiServer, status
from tests.node.test_node_agent_e2e import NODE, NodeAgent, _check_nothing_journaled_is_lost, _store, journal
from tests.polling import wait_for
from tests.runc_pod import PodContainer, new_pod_uid

pytestmark = pytest.mark.ebpf

DOWN = "spooling batches"
BACK = re.compile(r"API \S+ is back: (\d+) spooled batches delivered, spool empty")


def _in_store(url: str, container_id: str, path: str) -> bool:
    with _store(url) as store:
        return store.get(container_file_node_id(NODE, container_id, path)) is not None


def _journaled(state: Path, container_id: str, paths: set[str]) -> set[str]:
    return {
        r.path
        for r in journal(state)
        if isinstance(r, FileAccessRecord) and r.container_id == container_id and r.path in paths
    }


def _applied(api: ApiServer) -> dict[str, float]:
    """The restarted API's ingest outcomes (its counters start at zero with it)."""
    text = httpx.get(f"{api.url}/metrics", timeout=5).text
    return {
        m[1]: float(m[2])
        for m in re.finditer(r'^liubai_ingest_batches_total\{outcome="(\w+)"\} (\S+)$', text, re.M)
    }


def test_api_down_node_events_are_spooled_and_land_once_when_it_returns(
    pod_roots: list[str], tmp_path: Path
) -> None:
    api = ApiServer(f"sqlite:///{tmp_path / 'lineage.db'}", {}, tmp_path / "api.log")
    api.start()
    state = tmp_path / "agent"
    agent = NodeAgent(api.url, state, tmp_path / "agent.log")
    uid = new_pod_uid()
    boxes: list[PodContainer] = []
    try:
        # -- the API up: a container's write lands directly ------------------------------------------
        before = PodContainer(uid)
        boxes.append(before)
        before.start("echo up > /tmp/before; sleep 0.3")
        code, _, err = before.wait(60)
        assert code == 0, err
        wait_for(
            "the write made with the API up",
            lambda: _in_store(api.store_url, before.container_id, "/tmp/before"),
        )
        assert DOWN not in agent.log.read_text()

        # -- the API down: a restarted container of the same pod writes while nobody listens ---------
        api.stop()
        during = PodContainer(uid)
        boxes.append(during)
        paths = {f"/tmp/down-{i}-{secrets.token_hex(3)}" for i in range(3)}
        during.start("; ".join(f"echo down > {p}" for p in sorted(paths)) + "; sleep 0.3")
        code, _, err = during.wait(60)
        assert code == 0, err
        wait_for(
            "the outage's writes in the journal",
            lambda: _journaled(state, during.container_id, paths) == paths,
        )
        journaled = len(journal(state))
        # shipped past them: into the spool, since nothing takes them
        wait_for(
            "the agent to spool the outage's windows",
            lambda: (
                sum(status(state).get("shipped_records", {}).values()) >= journaled
                and status(state).get("spool_pending", 0) > 0
            ),
            timeout=60,
        )
        assert agent.proc.poll() is None, "the agent gave up while the API was down"
        assert not any(_in_store(api.store_url, during.container_id, p) for p in paths)
        spooled = status(state)["spooled_batches"]
        sent_before = status(state)["sent_batches"]  # nothing can be sent until the API is back

        # -- the API back: the spool drains, oldest first, each batch applied once -------------------
        api.start()
        wait_for(
            "the spool to drain into the API",
            lambda: (
                status(state).get("spool_pending") == 0
                and all(_in_store(api.store_url, during.container_id, p) for p in paths)
            ),
            timeout=90,
        )
    finally:
        agent.stop()
        for box in boxes:
            box.delete()
    try:
        final = status(state)
        applied = _applied(api)
    finally:
        api.stop()
    assert agent.proc.returncode == 0, agent.log.read_text()[-3000:]
    # every spooled batch replayed, none twice: the API applied each one it was sent after its return once
    assert final["spooled_batches"] >= spooled > 0
    assert final["replayed_batches"] == final["spooled_batches"], final
    assert final["duplicate_batches"] == 0 and final["dropped_batches"] == 0 and final["spool_pending"] == 0
    assert applied.get("applied") == final["sent_batches"] - sent_before, (applied, final, sent_before)
    assert not applied.get("duplicate"), applied
    with _store(api.store_url) as store:
        _check_nothing_journaled_is_lost(store, journal(state))
    # one line when the API went away, one when it came back (not one per batch or per window)
    log = agent.log.read_text()
    assert log.count(DOWN) == 1, log[-3000:]
    back = BACK.findall(log)
    assert [int(n) for n in back] == [final["replayed_batches"]], log[-3000:]
