"""Alibaba Cloud SLS as a record source, on the real ``aliyun-log-python-sdk``.

``client``: credentials, the one-try ``LogClient`` and retried SDK calls; ``consume``: shard
consumption and backfill (cursors, checkpoints, the consumer loop); ``group``: sharing a logstore's
shards with the other consumers of an SLS consumer group; ``mapping``: SLS logs ->
``LogRecord``; ``handoff``: reading in a child process.
"""

from liubai.collector.retry import RetryPolicy
from liubai.collector.sls.client import SlsCredentials, SlsError, is_retryable, make_client, sls_source
from liubai.collector.sls.consume import ConsumeStats, SlsCollector
from liubai.collector.sls.group import GroupMember, GroupOptions, default_consumer_name

__all__ = [
    "ConsumeStats",
    "GroupMember",
    "GroupOptions",
    "RetryPolicy",
    "SlsCollector",
    "SlsCredentials",
    "SlsError",
    "default_consumer_name",
    "is_retryable",
    "make_client",
    "sls_source",
]
