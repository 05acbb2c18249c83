// The "auto" direction: which way the lineage of a root is walked, by the root's kind.
//
// Lineage follows the flow declaration -> execution -> logs. A root in the middle of it (a workload, a
// process, a log line) is only understood with both sides: where it came from and what followed. So auto
// walks UPSTREAM and DOWNSTREAM and draws the union, as the audit trail does. Not the server's BOTH, which
// ignores direction at every hop: from a log line it goes up to the trace and back down to every other
// line of that trace (10,000 nodes, truncated, for a trace of 20,000 lines; upstream + downstream is 4).
// Only the sources walk DOWNSTREAM alone: nothing leads to a Repo, and what leads to a Commit is git
// history (its repo, its parents), which the audit trail leaves out too. File and LogEvent end the flow
// today; their downstream walk finds nothing and costs one index probe.
// Mirrors liubai.lineage.directions.AUTO_DIRECTIONS (tests/unit/test_web_directions.py).

import { fetchLineage, fetchLineages } from "./api.js";

export const AUTO = "AUTO";
const AROUND = ["UPSTREAM", "DOWNSTREAM"];

export const AUTO_DIRECTIONS = {
  Repo: ["DOWNSTREAM"],
  Commit: ["DOWNSTREAM"],
  PipelineRun: ["UPSTREAM", "DOWNSTREAM"],
  AuditRecord: ["UPSTREAM", "DOWNSTREAM"],
  Admission: ["UPSTREAM", "DOWNSTREAM"],
  Workload: ["UPSTREAM", "DOWNSTREAM"],
  Pod: ["UPSTREAM", "DOWNSTREAM"],
  Container: ["UPSTREAM", "DOWNSTREAM"],
  Process: ["UPSTREAM", "DOWNSTREAM"],
  File: ["UPSTREAM", "DOWNSTREAM"],
  Trace: ["UPSTREAM", "DOWNSTREAM"],
  Span: ["UPSTREAM", "DOWNSTREAM"],
  Resource: ["UPSTREAM", "DOWNSTREAM"],
  LogEvent: ["UPSTREAM", "DOWNSTREAM"],
};

// Kinds of roots already opened (a search pick, an earlier answer), so that auto asks only what it keeps.
const knownKinds = new Map();

export function autoDirections(kind) {
  return AUTO_DIRECTIONS[kind] ?? AROUND;
}

export function rememberKind(id, kind) {
  if (id && kind) knownKinds.set(id, kind);
}

/** The lineage of ``id`` for the chosen ``direction`` (AUTO, or a server direction asked as it is), with
 *  ``used``: the walks it is made of. A root of unknown kind (a permalink) gets both walks in the one
 *  request, and the root's kind in the answer picks which to keep: no extra round trip, and a commit so
 *  opened pays one small upstream walk (its repo and parents) that is then dropped. */
export async function fetchView(id, direction, depth) {
  if (direction !== AUTO) {
    const lineage = await fetchLineage(id, direction, depth);
    rememberRoot(id, lineage);
    return { lineage, used: [direction] };
  }
  const asked = autoDirections(knownKinds.get(id));
  const answers = await fetchLineages(id, asked, depth);
  const kind = rememberRoot(id, answers[0]);
  const used = autoDirections(kind);
  return { lineage: union(answers.filter((_, i) => used.includes(asked[i]))), used };
}

/** How the status line names the walks auto made: ``auto: upstream + downstream``. */
export function autoLabel(used) {
  return `auto: ${used.map((d) => d.toLowerCase()).join(" + ")}`;
}

function rememberRoot(id, graph) {
  const root = graph.nodes.find((n) => graph.depths?.[n.id] === 0);
  rememberKind(id, root?.kind);
  rememberKind(root?.id, root?.kind);
  return root?.kind;
}

/** Several lineage answers as one: each node at its fewest hops, each edge once. */
function union(graphs) {
  if (graphs.length === 1) return graphs[0];
  const nodes = new Map();
  const edges = new Map();
  const depths = {};
  for (const g of graphs) {
    for (const n of g.nodes) if (!nodes.has(n.id)) nodes.set(n.id, n);
    for (const e of g.edges) edges.set(`${e.source}\u0000${e.kind}\u0000${e.target}`, e);
    for (const [id, hops] of Object.entries(g.depths ?? {})) depths[id] = Math.min(hops, depths[id] ?? hops);
  }
  return { nodes: [...nodes.values()], edges: [...edges.values()], depths, truncated: graphs.some((g) => g.truncated) };
}
