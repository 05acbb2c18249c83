// The audit trail table: everything linked to the picked node (where it came from, what followed), in time order.

import { download, fetchAuditTrail } from "./api.js";
import { authHeaders } from "./auth.js";
import { $, el, swatch } from "./dom.js";
import { kindInfo } from "./kinds.js";

/** Why a row deserves attention: a process that ran with another uid than its parent, a container the
 *  node agent did not watch the whole time or recorded only in part. */
function note(node) {
  const p = node.properties ?? {};
  if (node.kind === "Process" && p.privilege_change) return `privilege change (uid ${p.uid ?? "?"})`;
  if (node.kind === "Process" && p.exec_failed) return "exec failed";
  if ((node.kind === "Process" || node.kind === "PipelineRun") && p.exit_code !== null && p.exit_code !== undefined && p.exit_code !== 0) {
    return `exit ${p.exit_code}`;
  }
  if (node.kind === "LogEvent" && /^(error|fatal|critical)$/i.test(p.level ?? "")) return String(p.level);
  if (node.kind === "Span" && p.status === "ERROR") return p.status_message ? `error: ${p.status_message}` : "error";
  if (node.kind === "Container") {
    const parts = [];
    if (Array.isArray(p.gaps) && p.gaps.length) parts.push(`unwatched ${p.gaps.length}×`);
    if (p.excluded) parts.push(String(p.excluded));
    if (p.folded_processes) parts.push(`${p.folded_processes} processes folded`);
    if (p.folded_opens) parts.push(`${p.folded_opens} opens folded`);
    if (p.runtime_setup_events) parts.push(`${p.runtime_setup_events} runtime setup events left out`);
    if (parts.length) return parts.join(", ");
  }
  if (node.placeholder) return "placeholder (not ingested yet)";
  return "";
}

export async function showTrail(node, onPick) {
  const section = $("trail");
  const tbody = $("trail-table").querySelector("tbody");
  section.hidden = false;
  section.dataset.state = "loading";
  section.dataset.nodeId = node.id;
  $("trail-title").textContent = node.label || node.id;
  const exportLink = $("trail-export");
  const filename = `liubai-audit-${node.id.replace(/[^A-Za-z0-9._-]+/g, "_").slice(0, 80)}.json`;
  exportLink.href = `export?${new URLSearchParams({ node: node.id, format: "json" })}`;
  exportLink.setAttribute("download", filename);
  exportLink.removeAttribute("title"); // no failure of an earlier node's export left behind
  exportLink.onclick = (event) => {
    if (!authHeaders().Authorization) return; // a plain link works when the server needs no token
    event.preventDefault();
    download(exportLink.href, filename).catch((err) => { exportLink.title = err.message; });
  };
  tbody.replaceChildren();
  const entries = await fetchAuditTrail(node.id);
  for (const entry of entries) {
    const n = entry.node;
    const why = note(n);
    const tr = el("tr", { attrs: { "data-node-id": n.id, "data-kind": n.kind } }, [
      el("td", { cls: "mono", text: entry.time ?? "" }),
      el("td", {}, [swatch(kindInfo(n.kind)), el("span", { text: n.kind })]),
      el("td", {}, [el("button", { cls: "linklike", text: n.label || n.id, attrs: { type: "button" } })]),
      el("td", { cls: "mono", text: entry.via ?? "" }),
      el("td", { text: why }),
    ]);
    if (n.kind === "Process" && n.properties?.privilege_change) tr.classList.add("privilege");
    tr.querySelector("button").addEventListener("click", () => onPick(n));
    tbody.append(tr);
  }
  section.dataset.rows = String(entries.length);
  section.dataset.state = "ready";
}

export function hideTrail() {
  $("trail").hidden = true;
}
