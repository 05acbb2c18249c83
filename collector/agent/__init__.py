"""The node agent: runs collectors, ships their batches to ``POST /v1/ingest``, spools while the API is away.

Guarantees, and how:
* Nothing is lost across ``kill -9``: a source's position moves only past batches the API or the spool
  accepted, and is saved atomically (``liubai.collector.agentstate``). A log file's position is its identity
  (device, inode) and the byte offset after the last line shipped, so appending, truncation
  (copytruncate) and rename rotation are told apart and followed (``liubai.collector.tail``); other sources
  count records. A restarted agent rebuilds the same batches from that position; their ids (sha256 of
  the body) are the ones already sent, so the API applies each exactly once. LogEvent ids are content
  hashes, so a line read from a rotated file's copy or its new name is the same node.
* Nothing is dropped for being large: a batch refused with 413 is halved by records (whole log lines)
  and resent, down to single records; the API's limit, stated in its 413 answer (or else taken as just
  under the refused size), is kept in the state file and later batches are built under it. A record
  that alone is over the limit is sent as a rejected record instead ("record of N bytes exceeds the
  server's ingest limit of M bytes", at its ``file:line``, with a bounded prefix of its text), so it is
  visible with ``liubai rejected`` and counted in ``oversized_records``. A spooled batch refused with
  413 is halved by facts (``liubai.collector.batchsplit``).
* A batch the API refuses for any other reason (422: it will never be valid) is kept in the spool's
  ``dead-letter/`` directory with the reason, and counted in ``refused_batches``; the position moves
  past it only once it is kept there.
* Order: while the spool holds anything, new batches queue behind it; the spool drains oldest first.
* A full spool (byte limit or full disk) drops the batch with a warning and counts it; the source's
  position does not move, so a re-readable source (a file) produces that batch again on a later pass.

The agent builds its own batches rather than feeding ``liubai.collector.ingest``: a batch here is a list
of units (a log line's records and the position after it), because a 413 halves it by units and the
position moves per delivered half; the pipeline's batches carry checkpoints, not positions to split
at. Delivery retries under the shared ``RetryPolicy``.

Parts: ``sources`` (what is shipped, cut into units), ``shipping`` (the loop: batches, delivery, spool,
positions), ``ingest_client`` (the HTTP side), ``status`` (settings and the report), ``errors``.
"""

from liubai.collector.agent.errors import AgentError
from liubai.collector.agent.shipping import Agent
from liubai.collector.agent.sources import Source, Unit, available_sources, make_source
from liubai.collector.agent.status import AgentConfig, AgentStatus

__all__ = [
    "Agent",
    "AgentConfig",
    "AgentError",
    "AgentStatus",
    "Source",
    "Unit",
    "available_sources",
    "make_source",
]
