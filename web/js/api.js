// The only way the UI talks to liubai: POST /graphql with variables (never string-built queries).

import { askForToken, authHeaders, forgetToken } from "./auth.js";

const NODE_FIELDS = "id kind placeholder label time properties";

export class ApiError extends Error {
  constructor(message, code, retryable) {
    super(message);
    this.code = code;
    this.retryable = retryable;
  }
}

export async function gql(query, variables = {}) {
  for (let attempt = 0; ; attempt++) {
    const response = await post(query, variables);
    if (response.status === 401 && attempt < 3) {
      forgetToken();
      const denied = await errorOf(response);
      try {
        await askForToken(attempt ? `That token was not accepted: ${denied}` : denied);
      } catch (err) {
        throw new ApiError(err.message, "UNAUTHENTICATED", false);
      }
      continue;
    }
    return answer(response);
  }
}

async function post(query, variables) {
  try {
    return await fetch("graphql", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json", ...authHeaders() },
      body: JSON.stringify({ query, variables }),
    });
  } catch (err) {
    throw new ApiError(`cannot reach the liubai server (${err.message})`, "UNREACHABLE", true);
  }
}

async function errorOf(response) {
  try {
    const body = await response.json();
    return body?.error?.message || `the server answered ${response.status}`;
  } catch {
    return `the server answered ${response.status}`;
  }
}

async function answer(response) {
  let body;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(`the server answered ${response.status} without GraphQL data`, "INTERNAL", true);
  }
  if (body.error && !body.data) {
    // Refused before GraphQL ran (e.g. 403: the token lacks the read scope).
    throw new ApiError(body.error.message || `the server answered ${response.status}`, body.error.code || "INTERNAL", false);
  }
  if (body.errors && body.errors.length) {
    const first = body.errors[0];
    const ext = first.extensions ?? {};
    throw new ApiError(ext.message || first.message || "request failed", ext.code || "INTERNAL", !!ext.retryable);
  }
  return body.data;
}

// A download (audit export) that carries the token too: fetched, then saved from a blob.
export async function download(url, filename) {
  const response = await fetch(url, { headers: authHeaders() });
  if (!response.ok) throw new ApiError(await errorOf(response), response.status === 401 ? "UNAUTHENTICATED" : "INTERNAL", false);
  const href = URL.createObjectURL(await response.blob());
  const a = document.createElement("a");
  a.href = href;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(href), 10_000);
}

// A graph comes as one JSON value ({nodes, edges, depths, truncated}, the fields of Node and Edge): the
// server skips per-field resolution, which for a 10,000-node lineage is most of its time.
const GRAPH_FIELDS = "compact";

export async function fetchLineage(id, direction, depth, limit = 10000) {
  const data = await gql(
    `query Lineage($id: ID!, $dir: Direction!, $depth: Int!, $limit: Int!) {
       lineage(from: $id, direction: $dir, depth: $depth, limit: $limit) { ${GRAPH_FIELDS} }
     }`,
    { id, dir: direction, depth, limit },
  );
  return data.lineage.compact;
}

/** Several walks from one node in one request (an aliased lineage field per direction), in order. */
export async function fetchLineages(id, directions, depth, limit = 10000) {
  const params = directions.map((_, i) => `$dir${i}: Direction!`).join(", ");
  const walks = directions.map(
    (_, i) => `walk${i}: lineage(from: $id, direction: $dir${i}, depth: $depth, limit: $limit) { ${GRAPH_FIELDS} }`,
  );
  const variables = { id, depth, limit };
  directions.forEach((d, i) => { variables[`dir${i}`] = d; });
  const data = await gql(`query Lineages($id: ID!, ${params}, $depth: Int!, $limit: Int!) { ${walks.join(" ")} }`, variables);
  return directions.map((_, i) => data[`walk${i}`].compact);
}

export async function fetchNeighbors(id, first = 500) {
  const data = await gql(
    `query Neighbors($id: ID!, $first: Int!) {
       neighbors(id: $id, direction: BOTH, first: $first) { ${GRAPH_FIELDS} }
     }`,
    { id, first },
  );
  return data.neighbors.compact;
}

export async function fetchPath(from, to) {
  const data = await gql(
    `query Path($from: ID!, $to: ID!) { path(from: $from, to: $to, maxLength: 12) { ${GRAPH_FIELDS} } }`,
    { from, to },
  );
  return data.path?.compact ?? null;
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
