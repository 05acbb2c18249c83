// Node and edge kinds as the UI draws them: one colour and shape per kind, and the flow order
// declaration -> execution -> logs that the left-to-right layout follows.

export const KINDS = [
  { kind: "Repo", color: "#6b6b6b", shape: "round-rectangle", plural: "repos" },
  { kind: "Commit", color: "#3b5b7a", shape: "ellipse", plural: "commits" },
  { kind: "AuditRecord", color: "#8a5fb0", shape: "diamond", plural: "audit records" },
  { kind: "Workload", color: "#2f8f8a", shape: "hexagon", plural: "workloads" },
  { kind: "PipelineRun", color: "#c0703a", shape: "round-rectangle", plural: "runs" },
  { kind: "Process", color: "#b8485a", shape: "rectangle", plural: "processes" },
  { kind: "File", color: "#7f8c3a", shape: "round-tag", plural: "files" },
  { kind: "Trace", color: "#3a7fc0", shape: "triangle", plural: "traces" },
  { kind: "LogEvent", color: "#4f8a5b", shape: "barrel", plural: "log events" },
  { kind: "Admission", color: "#b0487f", shape: "vee", plural: "admissions" },
  { kind: "Pod", color: "#1f9e8f", shape: "octagon", plural: "pods" },
  { kind: "Container", color: "#4aa39a", shape: "round-octagon", plural: "containers" },
  { kind: "Resource", color: "#6f9a4f", shape: "round-hexagon", plural: "resources" },
  { kind: "Span", color: "#5a6fc0", shape: "round-triangle", plural: "spans" },
];

export const KIND_BY_NAME = new Map(KINDS.map((k) => [k.kind, k]));

/** Stored edges that point against the flow (log -> trace, audit -> commit, child -> parent ...).
 *  They are drawn flow-first so that the layered layout reads left to right, with the arrow kept on
 *  the end the stored edge really points to. Mirrors EdgeKind.flow_reversed on the server. */
export const FLOW_REVERSED = new Set([
  "PARENT",
  "FOR_COMMIT",
  "IN_TRACE",
  "CARRIES",
  "CHILD_OF",
  "INSTANCE_OF",
  "APPLIES",
  "STAMPED",
  "IN_SPAN",
]);

export function kindInfo(kind) {
  return KIND_BY_NAME.get(kind) ?? { kind, color: "#999999", shape: "ellipse", plural: `${kind} nodes` };
}

/** What the members of an aggregate are called: its kind's plural, or "nodes" for one of every kind
 *  (lod.js ALL_KINDS, "*"). */
export function pluralOf(kind) {
  return kind === "*" ? "nodes" : kindInfo(kind).plural;
}
