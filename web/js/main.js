// Wires the page together: URL state, search, controls, graph view, details, path and audit trail.

import { fetchNeighbors, fetchNode, fetchPath, fetchStats } from "./api.js";
import { showDetails, showEdgeDetails } from "./details.js";
import { AUTO, autoLabel, fetchView, rememberKind } from "./directions.js";
import { $, el, swatch } from "./dom.js";
import { LineageView } from "./graph.js";
import { KINDS, kindInfo, pluralOf } from "./kinds.js";
import { readState, writeState } from "./permalink.js";
import { SearchBox } from "./search.js";
import { hideTimeline, showTimeline } from "./timeline.js";
import { hideTrail, showTrail } from "./trail.js";

const NODE_LIST_MAX = 300;
const graphEl = $("graph");
let state = readState();
let loadSeq = 0;

function status(message, kind = "info") {
  const s = $("status");
  s.textContent = message ?? "";
  s.dataset.kind = message ? kind : "";
}

function fail(err) {
  status(err?.message ?? String(err), "error");
}

const view = new LineageView(graphEl, {
  onSelect: (id, since) => select(id, { since }),
  onSelectEdge: (edge) => showEdgeDetails(edge),
  onExpand: (id) => expand(id).catch(fail),
  onPathPick: (id) => pickPathEnd(id),
  onViewChange: () => refreshNodeList(),
}, { webgl: new URLSearchParams(location.search).get("renderer") === "webgl" });

function save(push = false) {
  writeState(state, push);
}

// ---------------------------------------------------------------- loading and drawing

async function loadRoot({ push = false } = {}) {
  const seq = ++loadSeq;
  const started = performance.now();
  graphEl.dataset.state = "loading";
  graphEl.dataset.root = state.node ?? "";
  $("empty").hidden = !!state.node;
  status(state.node ? `Loading lineage of ${state.node}…` : "");
  save(push);
  if (!state.node) {
    view.load({ nodes: [], edges: [], depths: {} }, null);
    await view.render();
    graphEl.dataset.state = "empty";
    showDetails(null);
    return;
  }
  try {
    const { lineage, used } = await fetchView(state.node, state.direction, state.depth);
    if (seq !== loadSeq) return;
    if (!lineage.nodes.some((n) => n.id === state.node)) {
      // The server also accepts a sha prefix or a raw audit id; the node at 0 hops is what it resolved to.
      const resolved = Object.entries(lineage.depths ?? {}).find(([, hops]) => hops === 0)?.[0];
      if (!resolved) {
        graphEl.dataset.state = "error";
        view.load({ nodes: [], edges: [], depths: {} }, null);
        await view.render();
        status(`No node ${state.node} in this store.`, "error");
        return;
      }
      if (state.selected === state.node) state.selected = resolved;
      state.node = resolved;
      graphEl.dataset.root = resolved;
      save();
    }
    const fetched = performance.now();
    view.load(lineage, state.node);
    view.setOpenGroups(state.open);
    view.setPinned([state.selected]);
    let pathError = null;
    if (state.pathFrom && state.pathTo) {
      try {
        const path = await fetchPath(state.pathFrom, state.pathTo);
        if (seq !== loadSeq) return;
        view.setPath(path);
        showPathList(path);
      } catch (err) {
        pathError = err; // the lineage still shows; the path's problem is reported below
      }
    }
    await view.render();
    if (seq !== loadSeq) return;
    const drawn = performance.now();
    graphEl.dataset.fetchMs = String(Math.round(fetched - started));
    graphEl.dataset.renderMs = String(Math.round(drawn - started));
    const shown = view.visibleNodeCount();
    status(
      `${lineage.nodes.length} nodes, ${lineage.edges.length} edges` +
        (shown !== lineage.nodes.length ? ` (${shown} drawn)` : "") +
        (lineage.truncated ? " — truncated by the server's limit" : "") +
        (state.direction === AUTO ? ` · ${autoLabel(used)}` : "") +
        ` · ${Math.round(drawn - started)} ms`,
    );
    if (pathError) status(`Path not shown: ${pathError.message}`, "error");
    graphEl.dataset.state = "ready";
    await select(state.selected ?? state.node, { keepUrl: true });
  } catch (err) {
    if (seq !== loadSeq) return;
    view.load({ nodes: [], edges: [], depths: {} }, null);
    await view.render();
    showDetails(null);
    graphEl.dataset.state = "error";
    fail(err);
  }
}

async function redraw() {
  graphEl.dataset.state = "loading";
  await view.render();
  view.select(state.selected);
  graphEl.dataset.state = "ready";
}

function refreshNodeList() {
  graphEl.dataset.zoom = view.zoom().toFixed(3);
  graphEl.dataset.extent = (view.renderedExtent() ?? []).join(",");
  const list = $("node-list");
  const nodes = view.drawnNodes(NODE_LIST_MAX);
  const items = nodes.slice(0, NODE_LIST_MAX).map((n) => {
    const attrs = { type: "button", "data-node-id": n.id, "data-kind": n.kind, "data-x": n.x, "data-y": n.y };
    if (n.labelBox) attrs["data-label-box"] = n.labelBox.join(",");
    if (n.members !== null) attrs["data-members"] = n.members;
    if (n.hidden !== null) attrs["data-hidden"] = n.hidden;
    const button = el("button", { cls: "node-item", attrs }, [swatch(kindInfo(n.kind)), el("span", { text: n.label })]);
    button.addEventListener("click", () => select(n.id));
    button.addEventListener("dblclick", () => expand(n.id).catch(fail));
    return el("li", {}, [button]);
  });
  if (nodes.length > NODE_LIST_MAX) items.push(el("li", { cls: "hint", text: `…and ${nodes.length - NODE_LIST_MAX} more` }));
  list.replaceChildren(...items);
}

// ---------------------------------------------------------------- selection, expansion, path

/** ``since``: when the click that asked for it happened; the time until the details are painted is kept
 *  on the graph (data-select-ms) for the UI benchmark. */
async function select(id, { keepUrl = false, since = null } = {}) {
  state.selected = id;
  view.select(id);
  graphEl.dataset.selected = id ?? "";
  if (!keepUrl) save();
  if (!id) {
    showDetails(null);
    return;
  }
  if (view.isGroup(id)) {
    showDetails(null, { id, ...view.group(id) });
    return;
  }
  const node = view.nodes.get(id) ?? (await fetchNode(id).catch(() => null));
  if (node && state.selected === id) {
    showDetails(node);
    if (since !== null) requestAnimationFrame(() => { graphEl.dataset.selectMs = String(Math.round(performance.now() - since)); });
  }
}

async function expand(id) {
  if (view.isGroup(id)) {
    const g = view.group(id);
    view.openGroup(id);
    state.open = view.openedGroups();
    save();
    await redraw();
    status(`Showing all ${g.members.length} ${pluralOf(g.kind)} under ${g.parent}.`);
    return;
  }
  status(`Expanding ${id}…`);
  const graph = await fetchNeighbors(id);
  const added = view.merge(graph, id);
  await redraw();
  status(added.length ? `Expanded ${id}: ${added.length} new nodes.` : `${id} has no neighbours beyond those shown.`);
}

async function collapse(id) {
  const removed = view.collapse(id);
  state.open = view.openedGroups();
  save();
  await redraw();
  status(removed > 0 ? `Collapsed ${id}: ${removed} nodes hidden.` : `Nothing to collapse around ${id}.`);
}

function pickPathEnd(id) {
  if (view.isGroup(id)) return;
  if (!state.pathFrom || (state.pathFrom && state.pathTo)) {
    state.pathFrom = id;
    state.pathTo = null;
  } else {
    state.pathTo = id;
  }
  showPathEnds();
  save();
}

function showPathEnds() {
  $("path-from").textContent = state.pathFrom ?? "—";
  $("path-to").textContent = state.pathTo ?? "—";
  $("btn-path").disabled = !(state.pathFrom && state.pathTo);
}

function showPathList(path) {
  const list = $("path-list");
  list.replaceChildren(...(path?.nodes ?? []).map((n) => el("li", { attrs: { "data-node-id": n.id }, text: `${n.kind}: ${n.label || n.id}` })));
}

async function showPath() {
  if (!(state.pathFrom && state.pathTo)) return;
  const path = await fetchPath(state.pathFrom, state.pathTo);
  if (!path) {
    view.setPath(null);
    showPathList(null);
    await redraw();
    status(`No path between ${state.pathFrom} and ${state.pathTo} within 12 hops.`, "error");
    return;
  }
  view.setPath(path);
  showPathList(path);
  save();
  await redraw();
  status(`Path of ${path.nodes.length - 1} hops highlighted.`);
}

async function clearPath() {
  state.pathFrom = state.pathTo = null;
  showPathEnds();
  showPathList(null);
  view.setPath(null);
  save();
  await redraw();
}

// ---------------------------------------------------------------- controls

function buildLegendAndFilters() {
  const legend = $("legend");
  const filters = $("kind-filters");
  for (const info of KINDS) {
    legend.append(el("li", { attrs: { "data-kind": info.kind } }, [swatch(info), el("span", { text: info.kind })]));
    const box = el("input", { attrs: { type: "checkbox", value: info.kind, "data-kind": info.kind } });
    box.checked = !state.hidden.includes(info.kind);
    box.addEventListener("change", () => {
      state.hidden = [...filters.querySelectorAll("input:not(:checked)")].map((b) => b.value);
      view.setHiddenKinds(state.hidden);
      save();
      redraw().catch(fail);
    });
    filters.append(el("label", { cls: "kind-filter" }, [box, swatch(info), el("span", { text: info.kind })]));
  }
  legend.append(
    el("li", { cls: "legend-note", text: "dashed outline: placeholder (named, not yet ingested)" }),
    el("li", { cls: "legend-note", text: "dashed edge: stored against the flow (arrow shows the stored direction)" }),
    el("li", { cls: "legend-note", text: "+N node: N folded nodes of a kind (and what lies below them); double-click to open" }),
  );
}

function syncControls() {
  $("depth").value = String(state.depth);
  $("direction").value = state.direction;
  for (const box of $("kind-filters").querySelectorAll("input")) box.checked = !state.hidden.includes(box.value);
  view.setHiddenKinds(state.hidden);
  showPathEnds();
}

function openRoot(id, kind = null) {
  rememberKind(id, kind); // auto picks its walks by the root's kind
  state = { ...state, node: id, selected: id, pathFrom: null, pathTo: null, open: [] };
  showPathEnds();
  showPathList(null);
  hideTrail();
  hideTimeline();
  loadRoot({ push: true });
}

function wire() {
  new SearchBox($("search-input"), $("search-results"), { onPick: (node) => openRoot(node.id, node.kind), onError: fail });
  $("depth").addEventListener("change", () => {
    const d = Number.parseInt($("depth").value, 10);
    if (!Number.isFinite(d) || d < 1 || d > 10) {
      status("Depth must be a whole number from 1 to 10.", "error");
      return;
    }
    state.depth = d;
    loadRoot();
  });
  $("direction").addEventListener("change", () => {
    state.direction = $("direction").value;
    loadRoot();
  });
  $("btn-fit").addEventListener("click", () => view.fit());
  $("btn-relayout").addEventListener("click", () => view.layout());
  $("btn-focus").addEventListener("click", () => state.selected && openRoot(state.selected, view.nodes.get(state.selected)?.kind));
  $("btn-expand").addEventListener("click", () => state.selected && expand(state.selected).catch(fail));
  $("btn-collapse").addEventListener("click", () => state.selected && collapse(state.selected).catch(fail));
  $("btn-from").addEventListener("click", () => {
    state.pathFrom = state.selected;
    showPathEnds();
    save();
  });
  $("btn-to").addEventListener("click", () => {
    state.pathTo = state.selected;
    showPathEnds();
    save();
  });
  $("btn-path").addEventListener("click", () => showPath().catch(fail));
  $("btn-path-clear").addEventListener("click", () => clearPath().catch(fail));
  $("btn-trail").addEventListener("click", async () => {
    const node = view.nodes.get(state.selected) ?? (await fetchNode(state.selected).catch(() => null));
    if (node) showTrail(node, (n) => openRoot(n.id, n.kind)).catch(fail);
  });
  $("btn-trail-close").addEventListener("click", hideTrail);
  $("btn-timeline").addEventListener("click", async () => {
    const node = view.nodes.get(state.selected) ?? (await fetchNode(state.selected).catch(() => null));
    if (node) showTimeline(node, (n) => select(n.id)).catch(fail);
  });
  window.addEventListener("popstate", () => {
    state = readState();
    syncControls();
    loadRoot();
  });
}

async function showStats() {
  try {
    const counts = await fetchStats();
    const parts = KINDS.filter((k) => counts[k.kind]).map((k) => `${counts[k.kind]} ${k.plural}`);
    $("stats").textContent = parts.length ? parts.join(" · ") : "empty store";
  } catch (err) {
    $("stats").textContent = "";
    fail(err);
  }
}

buildLegendAndFilters();
syncControls();
wire();
showStats();
loadRoot();
