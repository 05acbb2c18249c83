// The only way the UI talks to liubai: POST /graphql with variables (never string-built queries).

const NODE_FIELDS = "id kind placeholder label time properties";

export class ApiError extends Error {
  constructor(message, code, retryable) {
    super(message);
    this.code = code;
    this.retryable = retryable;
  }
}

export async function gql(query, variables = {}) {
  let response;
  try {
    response = await fetch("graphql", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ query, variables }),
    });
  } catch (err) {
    throw new ApiError(`cannot reach the liubai server (${err.message})`, "UNREACHABLE", true);
  }
  let body;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(`the server answered ${response.status} without GraphQL data`, "INTERNAL", true);
  }
  if (body.errors && body.errors.length) {
    const first = body.errors[0];
    const ext = first.extensions ?? {};
    throw new ApiError(ext.message || first.message || "request failed", ext.code || "INTERNAL", !!ext.retryable);
  }
  return body.data;
}

const GRAPH_FIELDS = `nodes { ${NODE_FIELDS} } edges { source target kind properties } depths truncated`;

export async function fetchLineage(id, direction, depth, limit = 10000) {
  const data = await gql(
    `query Lineage($id: ID!, $dir: Direction!, $depth: Int!, $limit: Int!) {
       lineage(from: $id, direction: $dir, depth: $depth, limit: $limit) { ${GRAPH_FIELDS} }
     }`,
    { id, dir: direction, depth, limit },
  );
  return data.lineage;
}

export async function fetchNeighbors(id, first = 500) {
  const data = await gql(
    `query Neighbors($id: ID!, $first: Int!) {
       neighbors(id: $id, direction: BOTH, first: $first) { ${GRAPH_FIELDS} }
     }`,
    { id, first },
  );
  return data.neighbors;
}

export async function fetchPath(from, to) {
  const data = await gql(
    `query Path($from: ID!, $to: ID!) { path(from: $from, to: $to, maxLength: 12) { ${GRAPH_FIELDS} } }`,
    { from, to },
  );
  return data.path;
}

export async function fetchNode(id) {
  const data = await gql(`query One($id: ID!) { node(id: $id) { ${NODE_FIELDS} } }`, { id });
  return data.node;
}

export async function search(text, first = 40) {
  const data = await gql(
    `query Search($text: String!, $first: Int!) {
       search(text: $text, first: $first) { totalCount edges { node { ${NODE_FIELDS} } } }
     }`,
    { text, first },
  );
  return { total: data.search.totalCount, nodes: data.search.edges.map((e) => e.node) };
}

export async function commitByPrefix(sha) {
  const data = await gql(`query Commit($sha: String!) { commit(sha: $sha) { ${NODE_FIELDS} } }`, { sha });
  return data.commit;
}

export async function fetchAuditTrail(id) {
  const data = await gql(
    `query Trail($id: ID!) { auditTrail(id: $id) { time via node { ${NODE_FIELDS} } } }`,
    { id },
  );
  return data.auditTrail;
}

export async function fetchStats() {
  const data = await gql("query Stats { stats { counts } }");
  return data.stats.counts;
}
