// The details panel: every property of the picked node, shown as text.

import { $, asText, el, swatch } from "./dom.js";
import { kindInfo, pluralOf } from "./kinds.js";
import { TIMELINE_KINDS } from "./timeline.js";

// Every node has an audit trail (the server walks up and down from any node) except where the walk has
// nothing to follow: a trail leaves git history out, so a repository's would be the repository alone.
const NO_TRAIL = new Map([
  ["Repo", "A repository has no audit trail of its own (a trail leaves git history out): open one of its commits."],
]);

export function showDetails(node, group = null) {
  const body = $("details-body");
  const tbody = $("details-props").querySelector("tbody");
  tbody.replaceChildren();
  if (!node && !group) {
    body.hidden = true;
    $("details-empty").hidden = false;
    $("details").dataset.nodeId = "";
    return;
  }
  body.hidden = false;
  $("details-empty").hidden = true;
  const kind = group ? group.kind : node.kind;
  $("details-kind").replaceChildren(swatch(kindInfo(kind)), el("span", { text: group ? `${kind} group` : kind }));
  if (group) {
    $("details").dataset.nodeId = group.id;
    $("details-label").textContent = `${group.members.length} ${pluralOf(kind)} under ${group.parent || "no drawn node"}`;
    tbody.append(row("members", group.members.slice(0, 200).join("\n") + (group.members.length > 200 ? "\n…" : "")));
    const count = (m) => [...(m ?? new Map())].map(([k, n]) => `${n} ${kindInfo(k).plural}`).join(", ");
    if (kind === "*") tbody.append(row("kinds", count(group.kinds)));
    if (group.hidden) tbody.append(row("below them", count(group.below)));
    setButtons({ group: true });
    return;
  }
  $("details").dataset.nodeId = node.id;
  $("details-label").textContent = node.label || node.id;
  tbody.append(row("id", node.id), row("time", node.time), row("placeholder", node.placeholder));
  const props = node.properties ?? {};
  for (const key of Object.keys(props).sort()) tbody.append(row(key, props[key]));
  setButtons({ group: false, noTrail: NO_TRAIL.get(node.kind) ?? "", timeline: TIMELINE_KINDS.has(node.kind) });
}

/** A stored edge: its real direction (source -kind-> target) and its properties. */
export function showEdgeDetails(edge) {
  if (!edge) return;
  const tbody = $("details-props").querySelector("tbody");
  tbody.replaceChildren();
  $("details-body").hidden = false;
  $("details-empty").hidden = true;
  $("details").dataset.nodeId = "";
  $("details-kind").replaceChildren(el("span", { text: `${edge.kind} edge` }));
  $("details-label").textContent = `${edge.source} → ${edge.target}`;
  tbody.append(row("source", edge.source), row("kind", edge.kind), row("target", edge.target));
  const props = edge.properties ?? {};
  for (const key of Object.keys(props).sort()) tbody.append(row(key, props[key]));
  for (const id of ["btn-focus", "btn-from", "btn-to", "btn-trail", "btn-timeline", "btn-expand", "btn-collapse"]) {
    $(id).disabled = true;
  }
  $("btn-trail").title = "";
}

function row(key, value) {
  return el("tr", { attrs: { "data-key": key } }, [el("th", { text: key }), el("td", { text: asText(value) })]);
}

function setButtons({ group, noTrail = "", timeline = false }) {
  for (const id of ["btn-focus", "btn-from", "btn-to"]) $(id).disabled = group;
  $("btn-trail").disabled = group || !!noTrail;
  $("btn-trail").title = group ? "" : noTrail;
  $("btn-timeline").disabled = group || !timeline;
  $("btn-expand").disabled = false;
  $("btn-collapse").disabled = group;
}
