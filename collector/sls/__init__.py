"""Alibaba Cloud SLS as a record source, on the real ``aliyun-log-python-sdk``.

``client``: credentials, the one-try ``LogClient`` and retried SDK calls; ``consume``: shard
consumption and backfill (cursors, checkpoints, the consumer loop); ``mapping``: SLS logs ->
``LogRecord``; ``handoff``: reading in a child process.
"""

from liubai.collector.retry import RetryPolicy
from liubai.collector.sls.client import SlsCredentials, SlsError, is_retryable, make_client, sls_source
from liubai.collector.sls.consume import ConsumeStats, SlsCollector

__all__ = [
    "ConsumeStats",
    "RetryPolicy",
    "SlsCollector",
    "SlsCredentials",
    "SlsError",
    "is_retryable",
    "make_client",
    "sls_source",
]
