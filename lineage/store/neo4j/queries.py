"""Neo4j schema statements and every Cypher text the store runs, each a constant.

Labels and relationship types in these texts come only from the closed enums, never from user text."""

from __future__ import annotations

from liubai.lineage.model import (
    Direction,
    EdgeKind,
    NodeKind,
)
from liubai.lineage.store.neo4j.props import TIME_KEYS

__all__ = ["SCHEMA_STATEMENTS", "ROWS_PER_STATEMENT"]

ROWS_PER_STATEMENT = 5000

# ``SET n[k] = ...`` with the key as data (Neo4j 5.26+): the time names of a row become ``DATETIME``.
DYNAMIC_SET = True


def to_datetimes(var: str, names: str, props: str) -> str:
    """Clauses making ``var``'s properties named in the list ``names`` ``DATETIME``s, from their text in
    the map ``props`` (``props.time_keys`` chose them: real times in the ``iso_utc`` form)."""
    if DYNAMIC_SET:
        return f"FOREACH (k IN {names} | SET {var}[k] = datetime({props}[k]))"
    return " ".join(
        f"FOREACH (_ IN CASE WHEN '{k}' IN {names} THEN [1] ELSE [] END | "
        f"SET {var}.`{k}` = datetime({props}.`{k}`))"
        for k in TIME_KEYS
    )


def time_text(value: str) -> str:
    """A ``DATETIME`` as the exact ``iso_utc`` text (UTC, six fractional digits, ``Z``; ``toString``
    drops trailing zeros), anything else as itself."""
    return (
        f"CASE WHEN {value} IS :: ZONED DATETIME NOT NULL THEN "
        f"left(toString(datetime.fromepoch({value}.epochSeconds, 0)), 19) + '.' + "
        f"right('00000' + toString({value}.microsecond), 6) + 'Z' ELSE {value} END"
    )


def props_of(var: str, extra: str = "") -> str:
    """``var``'s properties as a map, its time properties as text, so the driver builds no temporals.
    The map is read once (``properties``) and projected: cheaper than reading each property four times."""
    times = ", ".join(f"`{k}`: {time_text(f'p.`{k}`')}" for k in TIME_KEYS)
    return f"[p IN [properties({var})] | p {{.*, {extra}{times}}}][0]"


SCHEMA_STATEMENTS: tuple[str, ...] = (
    "CREATE CONSTRAINT liubai_node_id IF NOT EXISTS FOR (n:Node) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT liubai_rejected_key IF NOT EXISTS FOR (x:Rejected) REQUIRE x.key IS UNIQUE",
    "CREATE CONSTRAINT liubai_checkpoint_key IF NOT EXISTS FOR (c:Checkpoint) REQUIRE c.key IS UNIQUE",
    "CREATE CONSTRAINT liubai_counter_name IF NOT EXISTS FOR (c:LiubaiCounter) REQUIRE c.name IS UNIQUE",
    "CREATE INDEX liubai_rejected_seq IF NOT EXISTS FOR (x:Rejected) ON (x.seq)",
    "CREATE INDEX liubai_rejected_source IF NOT EXISTS FOR (x:Rejected) ON (x.source, x.seq)",
    "CREATE INDEX liubai_checkpoint_source IF NOT EXISTS FOR (c:Checkpoint) ON (c.source)",
    "CREATE CONSTRAINT liubai_claim_key IF NOT EXISTS FOR (c:Claim) REQUIRE c.key IS UNIQUE",
    "CREATE INDEX liubai_claim_node IF NOT EXISTS FOR (c:Claim) ON (c.node)",
    # What Cypher users match on, beyond ids: each is one label's property, so a node updates at most two.
    "CREATE INDEX liubai_commit_sha IF NOT EXISTS FOR (n:Commit) ON (n.sha)",
    "CREATE INDEX liubai_trace_trace_id IF NOT EXISTS FOR (n:Trace) ON (n.trace_id)",
    "CREATE INDEX liubai_log_trace_id IF NOT EXISTS FOR (n:LogEvent) ON (n.trace_id)",
    "CREATE INDEX liubai_run_commit IF NOT EXISTS FOR (n:PipelineRun) ON (n.commit)",
    "CREATE INDEX liubai_workload_name IF NOT EXISTS FOR (n:Workload) ON (n.name)",
    "CREATE INDEX liubai_pod_name IF NOT EXISTS FOR (n:Pod) ON (n.name)",
    "CREATE INDEX liubai_pod_uid IF NOT EXISTS FOR (n:Pod) ON (n.uid)",
    "CREATE INDEX liubai_container_id IF NOT EXISTS FOR (n:Container) ON (n.container_id)",
    "CREATE INDEX liubai_process_container_id IF NOT EXISTS FOR (n:Process) ON (n.container_id)",
    "CREATE INDEX liubai_file_path IF NOT EXISTS FOR (n:File) ON (n.path)",
    # Words are split and lower-cased in Python (the same \w+ words SQLite's FTS5 sees), so the index
    # only needs to split on spaces. Eventually consistent: Lucene indexing runs in the background
    # instead of inside every write's commit (about a quarter of a batch's server time); search() waits
    # for it.
    "CREATE FULLTEXT INDEX liubai_node_search IF NOT EXISTS FOR (n:Node) ON EACH [n.search] "
    "OPTIONS {indexConfig: {`fulltext.analyzer`: 'whitespace', `fulltext.eventually_consistent`: true}}",
)

# Every statement text is a constant. Where a label or relationship type must be literal (relationship
# MERGE, counts), each kind gets its own statement, built once here from the closed enums; elsewhere the
# label or type comes from the row as data (``$(row.kind)``, Neo4j 5.26+), never from user text.

# Writes look nodes up once, by id, and then touch them only through their element ids: a seek by
# element id costs far less than a unique-index seek against a large transaction state. Existing nodes
# are locked by that lookup (``_lock`` set and removed), so the merge done in Python cannot lose a
# concurrent writer's update. Nodes the lookup did not find are CREATEd, skipping MERGE's per-row lock
# and property merge; a concurrent writer creating the same id makes the constraint fail and the whole
# batch is retried (then it finds the node). Bulk statements take column lists (``$ids[i]``) rather than
# a list of maps: far cheaper to encode and decode on both ends.
_NODE_LOOKUP = (
    "UNWIND $ids AS i MATCH (n:Node {id: i}) SET n._lock = true REMOVE n._lock "
    f"RETURN i AS id, elementId(n) AS ref, {props_of('n', 'search: null, ')} AS props, "
    "n:Placeholder AS placeholder, "
    "n._writer AS writer, n._owners AS owners"
)
# ``at`` and ``refs`` are collected from the same rows, so they pair up whatever order collect uses.
_NODE_CREATE = (
    "UNWIND range(0, size($ids) - 1) AS i "
    "CREATE (n:Node:$($labels[i]) {id: $ids[i], search: $search[i], _writer: $writer}) SET n += $props[i] "
    f"{to_datetimes('n', '$times[i]', '$props[i]')} "
    "RETURN collect(i) AS at, collect(elementId(n)) AS refs"
)
_NODE_UPDATE = (
    "UNWIND $rows AS row "
    "MATCH (n) WHERE elementId(n) = row.ref "
    "SET n = row.props "
    f"{to_datetimes('n', 'row.times', 'row.props')} "
    "FOREACH (_ IN CASE WHEN row.placeholder THEN [] ELSE [1] END | REMOVE n:Placeholder)"
)
# An edge touching a node this transaction created cannot exist yet: plain CREATE, no existence check,
# one statement for every kind (the type comes from the row). Empty properties are not stored.
_EDGE_CREATE = (
    "UNWIND range(0, size($src) - 1) AS i "
    "MATCH (a) WHERE elementId(a) = $src[i] MATCH (b) WHERE elementId(b) = $dst[i] "
    "CREATE (a)-[r:$($kinds[i])]->(b) SET r += $props[i] "
    f"{to_datetimes('r', '$times[i]', '$props[i]')}"
)
# Between two existing nodes MERGE stays per kind: a dynamic type there would scan all relationships
# instead of expanding between the two nodes. The ends are locked by the node lookup.
_EDGE_MERGE: dict[EdgeKind, str] = {
    kind: (
        "UNWIND $rows AS row "
        "MATCH (a) WHERE elementId(a) = row.src MATCH (b) WHERE elementId(b) = row.dst "
        f"MERGE (a)-[r:{kind.value}]->(b) "
        "ON CREATE SET r += row.props, r._new = true "
        "ON MATCH SET r._lock = true "
        "WITH r, row, r._new IS NOT NULL AS created "
        "REMOVE r._new, r._lock "
        f"{to_datetimes('r', 'CASE WHEN created THEN row.times ELSE [] END', 'row.props')} "
        "WITH r, row, created WHERE NOT created "
        f"RETURN row.at AS at, elementId(r) AS ref, {props_of('r')} AS props"
    )
    for kind in EdgeKind
}
_EDGE_UPDATE = (
    "UNWIND $rows AS row MATCH ()-[r]->() WHERE elementId(r) = row.ref SET r = row.props "
    f"{to_datetimes('r', 'row.times', 'row.props')}"
)
_REJECTED_EXISTING = "UNWIND $keys AS k MATCH (x:Rejected {key: k}) RETURN x.key AS key"
_COUNTER_BUMP = (
    "MERGE (c:LiubaiCounter {name: $name}) ON CREATE SET c.value = 0 "
    "SET c.value = c.value + $n RETURN c.value AS value"
)
_REJECTED_CREATE = (
    "UNWIND $rows AS row CREATE (x:Rejected) "
    "SET x.key = row.key, x.seq = row.seq, x.source = row.source, x.location = row.location, "
    "x.reason = row.reason, x.raw = row.raw"
)
_ONCE = (
    "MERGE (c:Checkpoint {key: $key}) ON CREATE SET c._new = true "
    "WITH c, c._new IS NOT NULL AS created REMOVE c._new RETURN created"
)
_CLAIMS_DROP = "UNWIND $rows AS row MATCH (c:Claim {key: row.key}) DELETE c"
_CLAIMS_PUT = (
    "UNWIND $rows AS row MERGE (c:Claim {key: row.key}) "
    "SET c.node = row.node, c.name = row.name, c.writer = row.writer, c.value = row.value"
)
_PROVENANCE = (
    "UNWIND $ids AS i MATCH (n:Node {id: i}) "
    "RETURN i AS id, n._writer AS writer, n._owners AS owners, "
    "COLLECT { MATCH (c:Claim) WHERE c.node = i RETURN [c.name, c.writer, c.value] } AS claims"
)
_RESTORE = (
    "UNWIND $rows AS row MATCH (n:Node {id: row.id}) SET n._writer = row.writer, n._owners = row.owners "
    "WITH n, row UNWIND row.claims AS c "
    "MERGE (x:Claim {key: c.key}) SET x.node = row.id, x.name = c.name, x.writer = c.writer, x.value = c.value"
)
_CHECKPOINT_SET = (
    "UNWIND $rows AS row MERGE (c:Checkpoint {key: row.key}) "
    "SET c.source = row.source, c.name = row.name, c.value = row.value"
)

_NODE_FIELDS = f"n.id AS id, {props_of('n', 'search: null, ')} AS props, n:Placeholder AS placeholder"
_GET = f"MATCH (n:Node {{id: $id}}) RETURN {_NODE_FIELDS}"
_GET_MANY = f"UNWIND $ids AS i MATCH (n:Node {{id: i}}) RETURN {_NODE_FIELDS}"
_FIND_BY_PREFIX = (
    f"MATCH (n:Node) WHERE n.id STARTS WITH $prefix AND $label IN labels(n) "
    f"RETURN {_NODE_FIELDS} ORDER BY n.id LIMIT $limit"
)
_OUT = (
    "MATCH (s:Node {id: $id})-[r]->(n) WHERE type(r) IN $kinds "
    f"RETURN 0 AS d, type(r) AS kind, s.id AS src, n.id AS dst, {props_of('r')} AS rprops, "
    f"{_NODE_FIELDS}"
)
_IN = (
    "MATCH (s:Node {id: $id})<-[r]-(n) WHERE type(r) IN $kinds "
    f"RETURN 1 AS d, type(r) AS kind, n.id AS src, s.id AS dst, {props_of('r')} AS rprops, "
    f"{_NODE_FIELDS}"
)
_PAGE = " ORDER BY d, kind, id SKIP $skip LIMIT $limit"
_NEIGHBORS: dict[Direction, str] = {
    Direction.DOWNSTREAM: f"CALL () {{ {_OUT} }} RETURN *" + _PAGE,
    Direction.UPSTREAM: f"CALL () {{ {_IN} }} RETURN *" + _PAGE,
    Direction.BOTH: f"CALL () {{ {_OUT} UNION ALL {_IN} }} RETURN *" + _PAGE,
}
_EXISTS = "MATCH (n:Node {id: $id}) RETURN count(n) AS c"
# One breadth-first level: out-edges of the ``along`` kinds and in-edges of the ``against`` kinds.
_STEP = (
    "UNWIND $ids AS i MATCH (s:Node {id: i}) "
    "CALL (s) { MATCH (s)-[r]->(n) WHERE type(r) IN $along RETURN n "
    "UNION MATCH (s)<-[r]-(n) WHERE type(r) IN $against RETURN n } "
    "RETURN DISTINCT n.id AS id LIMIT $room"
)
_EDGES_AMONG = (
    "WITH $ids AS ids UNWIND ids AS i MATCH (a:Node {id: i})-[r]->(b) "
    "WHERE type(r) IN $kinds AND b.id IN ids "
    f"RETURN a.id AS src, type(r) AS kind, b.id AS dst, {props_of('r')} AS props "
    "ORDER BY src, kind, dst LIMIT $limit"
)
_PROBE = "MATCH (n:Node) RETURN n.id AS id LIMIT 1"
# The old layout kept each node's properties as JSON text in ``props``. An upgrade goes in id order, node
# and its out-edges in one transaction, so the last node by id tells whether it has finished.
_OLD_LAYOUT = "MATCH (n:Node) WHERE n.id IS NOT NULL WITH n ORDER BY n.id DESC LIMIT 1 RETURN n.props IS NOT NULL AS old"
# A typed node or edge written before times were ``DATETIME`` holds them as text: ``texts`` lists them.
_UPGRADE_READ = (
    "MATCH (n:Node) WHERE n.id > $after WITH n ORDER BY n.id LIMIT $limit "
    "RETURN n.id AS id, elementId(n) AS ref, n.props AS props, "
    "[k IN $keys WHERE n[k] IS :: STRING NOT NULL | [k, n[k]]] AS texts, "
    "[(n)-[r]->() WHERE r.props IS NOT NULL | [elementId(r), r.props]] AS rels, "
    "[(n)-[r]->() WHERE r.props IS NULL AND any(k IN $keys WHERE r[k] IS :: STRING NOT NULL) "
    "| [elementId(r), [k IN $keys WHERE r[k] IS :: STRING NOT NULL | [k, r[k]]]]] AS rel_texts"
)
_UPGRADE_NODES = (
    "UNWIND $rows AS row MATCH (n) WHERE elementId(n) = row.ref SET n += row.props REMOVE n.props "
    f"{to_datetimes('n', 'row.times', 'row.props')}"
)
_UPGRADE_EDGES = (
    "UNWIND $rows AS row MATCH ()-[r]->() WHERE elementId(r) = row.ref SET r += row.props REMOVE r.props "
    f"{to_datetimes('r', 'row.times', 'row.props')}"
)
_SEARCH_IN = (
    "CALL db.index.fulltext.queryNodes('liubai_node_search', $lucene) YIELD node AS n, score "
    "WHERE $labels IS NULL OR any(l IN labels(n) WHERE l IN $labels) "
)
_SEARCH_PAGE = (
    _SEARCH_IN + f"RETURN {_NODE_FIELDS} ORDER BY placeholder, score DESC, id SKIP $skip LIMIT $limit"
)
_SEARCH_TOTAL = _SEARCH_IN + "RETURN count(n) AS total"
# The index is updated after commit, off the writers' path; a search waits for pending updates so it
# still sees every write that committed before it.
_SEARCH_REFRESH = "CALL db.index.fulltext.awaitEventuallyConsistentIndexRefresh()"
_SEARCH_EXACT = (
    "MATCH (n:Node {id: $id}) WHERE $labels IS NULL OR any(l IN labels(n) WHERE l IN $labels) "
    f"RETURN {_NODE_FIELDS}"
)
_REJECTED_PAGE = (
    "MATCH (x:Rejected) WHERE $source IS NULL OR x.source = $source "
    "RETURN x.source AS source, x.location AS location, x.reason AS reason, x.raw AS raw "
    "ORDER BY x.seq SKIP $skip LIMIT $limit"
)
_REJECTED_TOTAL = "MATCH (x:Rejected) WHERE $source IS NULL OR x.source = $source RETURN count(x) AS total"
_CHECKPOINT_GET = "MATCH (c:Checkpoint {key: $key}) RETURN c.value AS value"
_CHECKPOINTS = (
    "MATCH (c:Checkpoint) WHERE $source IS NULL OR c.source = $source "
    "RETURN c.source AS source, c.name AS name, c.value AS value"
)
_COUNT_LABEL: dict[str, str] = {
    label: f"MATCH (n:{label}) RETURN count(n) AS c"
    for label in [*(k.value for k in NodeKind), "Placeholder", "Rejected"]
}
_COUNT_EDGES = "MATCH ()-[r]->() RETURN count(r) AS c"
_ITER_NODES = f"MATCH (n:Node) WHERE n.id > $after RETURN {_NODE_FIELDS} ORDER BY n.id LIMIT $limit"
_ITER_EDGES = (
    "MATCH (a:Node) WHERE a.id > $after WITH a ORDER BY a.id LIMIT $limit "
    f"RETURN a.id AS src, [(a)-[r]->(b) | [type(r), b.id, {props_of('r')}]] AS out"
)


def _path_query(max_length: int, filtered: bool) -> str:
    """``shortestPath`` needs its length bound as a literal; it is an int clamped here, never user text."""
    where = " WHERE all(r IN relationships(p) WHERE type(r) IN $kinds)" if filtered else ""
    return (
        "MATCH (a:Node {id: $src}), (b:Node {id: $dst}) "
        f"MATCH p = shortestPath((a)-[*..{max_length}]-(b)){where} "
        f"RETURN [n IN nodes(p) | [n.id, {props_of('n', 'search: null, ')}, n:Placeholder]] AS nodes, "
        f"[r IN relationships(p) | [startNode(r).id, type(r), endNode(r).id, {props_of('r')}]] AS rels"
    )
