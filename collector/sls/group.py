"""Membership of an SLS consumer group: which shards of a logstore this collector reads.

Collectors that share a consumer group share a logstore's shards: SLS assigns each shard to one live
consumer, and moves the shards of a consumer that stops heartbeating to the others. This runs the SDK's
own mechanism, ``ConsumerClient`` and its ``ConsumerHeatBeat`` thread (heartbeats, the held-shard
bookkeeping, dropping every shard when heartbeats keep failing), over liubai's ``LogClient``; reading the
shards stays ``SlsCollector``'s loop, so a batch and its checkpoint still land in the store together.

The group's server-side checkpoint trails the store: it is written only after a batch is stored. The
store's own checkpoint of a shard stays the exactly-once guard: when a shard is taken over, reading
starts there; the server's checkpoint is used only for a shard this store has none of.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from aliyun.log import LogClient, LogException
from aliyun.log.consumer.consumer_client import ConsumerClient, ConsumerClientLoggerAdapter
from aliyun.log.consumer.exceptions import CheckPointException
from aliyun.log.consumer.heart_beat import ConsumerHeatBeat
from aliyun.log.version import USER_AGENT

from liubai.collector.retry import RetryPolicy
from liubai.collector.sls.client import SlsError, _describe, sls_call

__all__ = ["GroupMember", "GroupOptions", "default_consumer_name"]

log = logging.getLogger(__name__)


def default_consumer_name() -> str:
    """``<host>-<pid>``: unique among the collectors of a group, as SLS requires of consumer names."""
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True, slots=True)
class GroupOptions:
    """``heartbeat_interval`` seconds between heartbeats; ``timeout``: seconds SLS waits for a silent
    consumer before its shards move (default: twice the interval, the SDK's rule, at least 1)."""

    name: str
    consumer: str = field(default_factory=default_consumer_name)
    heartbeat_interval: float = 20.0
    timeout: int | None = None
    checkpoint_interval: float = 3.0  # how often stored checkpoints are copied to the group

    @property
    def group_timeout(self) -> int:
        return self.timeout if self.timeout is not None else max(1, math.ceil(2 * self.heartbeat_interval))


class _GroupClient(ConsumerClient):
    """The SDK's consumer-group client on an existing ``LogClient`` (its own constructor builds one from
    an endpoint and keys; liubai's sends each request once and addresses IP endpoints)."""

    def __init__(self, client: LogClient, project: str, logstore: str, group: str, consumer: str) -> None:
        self.mclient = client
        client.set_user_agent(
            f"{USER_AGENT}-consumergroup-{group}-{consumer}"
        )  # the SDK's own, as SLS logs it
        self.mproject, self.mlogstore = project, logstore
        self.mconsumer_group, self.mconsumer = group, consumer
        self.accept_compress_type = None
        self.logger = ConsumerClientLoggerAdapter(
            logging.getLogger(ConsumerClient.__module__), {"consumer_client": self}
        )


class GroupMember:
    """One consumer of a group: joins it (creating the group if needed), heartbeats in the background,
    answers which shards it holds, releases the ones taken away and copies stored checkpoints to SLS."""

    def __init__(self, client: LogClient, project: str, logstore: str, options: GroupOptions) -> None:
        self.options = options
        self.client = _GroupClient(client, project, logstore, options.name, options.consumer)
        self.where = f"consumer group {options.name} of {project}/{logstore}"
        self._beat: Any = None  # the SDK's ConsumerHeatBeat thread, once joined
        self._lock = threading.Lock()
        self._stored: dict[int, str] = {}  # shard -> cursor stored but not yet copied to the group
        self._last_flush = 0.0
        self.held_ever: set[int] = set()

    @property
    def name(self) -> str:
        return str(self.options.name)

    @property
    def consumer(self) -> str:
        return str(self.options.consumer)

    def join(self, retry: RetryPolicy) -> None:
        """Create or update the group (its timeout), start heartbeating and wait for the first answer."""
        timeout = self.options.group_timeout
        mclient, project, logstore = self.client.mclient, self.client.mproject, self.client.mlogstore
        groups = sls_call(
            retry, f"ListConsumerGroup {project}/{logstore}", partial(self.client.get_consumer_group)
        )
        if groups is None:
            try:
                sls_call(
                    retry,
                    f"CreateConsumerGroup {self.options.name}",
                    partial(mclient.create_consumer_group, project, logstore, self.options.name, timeout),
                )
                return self._start_beating(retry)
            except SlsError as exc:
                if exc.sls_code != "ConsumerGroupAlreadyExist":  # another collector created it meanwhile
                    raise
        sls_call(
            retry,
            f"UpdateConsumerGroup {self.options.name}",
            partial(mclient.update_consumer_group, project, logstore, self.options.name, timeout),
        )
        self._start_beating(retry)

    def _start_beating(self, retry: RetryPolicy) -> None:
        beat: Any = ConsumerHeatBeat(  # type: ignore[no-untyped-call]  # the SDK's consumer package is untyped
            self.client, self.options.heartbeat_interval, self.options.group_timeout
        )
        beat.daemon = True  # a collector that stops must not wait for the thread's sleep
        before = beat.last_hearbeat_successed_unixtime
        beat.start()
        self._beat = beat
        deadline = time.monotonic() + max(retry.deadline, self.options.heartbeat_interval)
        while beat.last_hearbeat_successed_unixtime == before:
            if time.monotonic() > deadline:
                self.leave()
                raise SlsError(f"{self.where}: no heartbeat was answered (see the warnings above)")
            time.sleep(0.01)

    def held(self) -> set[int]:
        """The shards SLS assigned to this consumer at the last heartbeat."""
        shards = set() if self._beat is None else set(self._beat.get_held_shards())
        self.held_ever |= shards
        return shards

    def stored(self, shard: int, cursor: str) -> None:
        """A batch of ``shard`` ending at ``cursor`` is in the store (called from the writer thread)."""
        with self._lock:
            self._stored[shard] = cursor

    def flush(self, shards: set[int] | None = None, *, force: bool = False) -> None:
        """Copy stored checkpoints to the group, at most every ``checkpoint_interval`` unless ``force``.
        A failure is a warning: the store's checkpoint, not this copy, decides where reading resumes."""
        if not force and time.monotonic() - self._last_flush < self.options.checkpoint_interval:
            return
        self._last_flush = time.monotonic()
        with self._lock:
            todo = {s: c for s, c in self._stored.items() if shards is None or s in shards}
        for shard, cursor in todo.items():
            try:
                self.client.update_check_point(shard, self.consumer, cursor)  # type: ignore[no-untyped-call]
            except LogException as exc:
                log.warning("%s: checkpoint of shard %d not saved: %s", self.where, shard, _describe(exc))
                continue
            with self._lock:
                if self._stored.get(shard) == cursor:
                    del self._stored[shard]

    def checkpoint(self, shard: int, retry: RetryPolicy) -> str | None:
        """The group's checkpoint of ``shard`` (None: it has none)."""
        try:
            entry: Any = sls_call(
                retry, f"GetCheckPoint shard {shard}", partial(self.client.get_check_point, shard)
            )
        except CheckPointException:  # the SDK's word for an empty answer
            return None
        cursor = entry.get("checkpoint") if isinstance(entry, dict) else None
        return cursor if isinstance(cursor, str) and cursor else None

    def release(self, shard: int) -> None:
        """Stop naming ``shard`` in heartbeats, so SLS can give it to another consumer (its stored
        checkpoint is copied first)."""
        self.flush({shard}, force=True)
        if self._beat is not None:
            self._beat.remove_heart_shard(shard)

    def leave(self) -> None:
        """Stop heartbeating (SLS moves the shards once the group's timeout has passed)."""
        self.flush(force=True)
        if self._beat is not None:
            self._beat.shutdown()
