// The lineage graph view: what the server returned, what is shown of it (kind filters, level-of-detail
// aggregates, expansions), and the Cytoscape canvas that draws it left to right along the flow.

import cytoscape from "../vendor/cytoscape/cytoscape.esm.min.js";
import cytoscapeDagre from "../vendor/cytoscape-dagre/cytoscape-dagre.esm.min.js";
import { FLOW_REVERSED, KINDS, kindInfo, pluralOf } from "./kinds.js";
import { graphStyle } from "./graph-style.js";
import { treePositions } from "./layout.js";
import { ALL_KINDS, groupKey, levelOfDetail } from "./lod.js";

cytoscape.use(cytoscapeDagre);

/** Above this many visible nodes dagre gets slow; the linear-time tree layout of layout.js takes over. */
const DAGRE_LIMIT = 500;
/** Fit must show the whole graph at any size: 10,000 opened nodes need a zoom far below 0.05. */
const MIN_ZOOM = 1e-4;
const KIND_ORDER = new Map(KINDS.map((k, i) => [k.kind, i]));
const NUMBER = new Intl.NumberFormat("en");

export const edgeKey = (e) => `${e.source}|${e.kind}|${e.target}`;

/** What an aggregate says on the canvas: how many it holds, and how many more it hides below them. */
export function groupLabel(g) {
  const what = g.kind === ALL_KINDS ? "more" : pluralOf(g.kind);
  const head = `+${NUMBER.format(g.members.length)} ${what}${g.day ? ` on ${g.day}` : ""}`;
  return g.hidden ? `${head}\n${NUMBER.format(g.hidden)} below` : head;
}

function shortLabel(text, max = 42) {
  const flat = String(text ?? "").replace(/\s+/g, " ");
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

export class LineageView {
  /** ``webgl``: Cytoscape's WebGL node renderer instead of the 2D canvas (see docs/performance.md, ui_scale,
   *  for why canvas stays the default). */
  constructor(container, handlers, { webgl = false } = {}) {
    this.container = container;
    this.handlers = handlers; // onSelect, onSelectEdge, onExpand, onPathPick, onViewChange
    this.nodes = new Map(); // id -> API node
    this.edges = new Map(); // key -> API edge
    this.depths = {};
    this.rootId = null;
    this.truncated = false;
    this.hiddenKinds = new Set();
    this.openGroups = new Set(); // "<parent>::<kind>" aggregates the user opened
    this.addedBy = new Map(); // expander id -> Set of node ids its expansion brought in
    this.path = { nodes: [], edges: new Set() };
    this.groups = new Map(); // group id -> { parent, kind, members, kinds, below, hidden }
    this.pinned = new Set(); // drawn one by one whatever the level of detail (e.g. a permalink's selection)
    this.laidOut = null; // the drawn elements' box in model coordinates, as the last layout left them
    this.cy = cytoscape({
      container,
      style: graphStyle(),
      minZoom: MIN_ZOOM,
      maxZoom: 4,
      boxSelectionEnabled: false,
      hideEdgesOnViewport: false,
      textureOnViewport: true,
      ...(webgl ? { renderer: { name: "canvas", webgl: true } } : {}),
    });
    container.dataset.renderer = webgl ? "webgl" : "canvas";
    this.cy.on("tap", "node", (evt) => {
      const id = evt.target.id();
      if (evt.originalEvent && evt.originalEvent.shiftKey) this.handlers.onPathPick?.(id);
      else this.handlers.onSelect?.(id, evt.originalEvent?.timeStamp);
    });
    this.cy.on("tap", "edge", (evt) => this.handlers.onSelectEdge?.(this.edges.get(evt.target.id()) ?? null));
    this.cy.on("tap", (evt) => {
      if (evt.target === this.cy) this.handlers.onSelect?.(null);
    });
    this.cy.on("dbltap", "node", (evt) => this.handlers.onExpand?.(evt.target.id()));
    this.cy.on("viewport", () => this.#scheduleViewChange());
    // Panels opening and closing (the audit trail) change the canvas size without a window resize.
    new ResizeObserver(() => {
      this.cy.resize();
      this.#scheduleViewChange();
    }).observe(container);
  }

  /** Replace everything with one lineage answer. */
  load(graph, rootId) {
    this.nodes.clear();
    this.edges.clear();
    this.openGroups.clear();
    this.addedBy.clear();
    this.path = { nodes: [], edges: new Set() };
    this.rootId = rootId;
    this.depths = { ...(graph.depths ?? {}) };
    this.truncated = !!graph.truncated;
    this.#absorb(graph);
  }

  /** Add a neighbour or path answer to what is shown; returns the ids that were new. */
  merge(graph, expanderId = null) {
    const added = this.#absorb(graph);
    if (expanderId && added.length) {
      const set = this.addedBy.get(expanderId) ?? new Set();
      added.forEach((id) => set.add(id));
      this.addedBy.set(expanderId, set);
    }
    return added;
  }

  #absorb(graph) {
    const added = [];
    for (const n of graph.nodes ?? []) {
      if (!this.nodes.has(n.id)) added.push(n.id);
      this.nodes.set(n.id, n);
    }
    for (const e of graph.edges ?? []) this.edges.set(edgeKey(e), e);
    return added;
  }

  isGroup(id) {
    return this.groups.has(id);
  }

  group(id) {
    return this.groups.get(id);
  }

  /** Show every member of an aggregate one by one (their own children may fold again). */
  openGroup(id) {
    const g = this.groups.get(id);
    if (!g) return false;
    this.openGroups.add(groupKey(g.parent, g.bucket));
    return true;
  }

  /** The opened aggregates, as a permalink keeps them. */
  openedGroups() {
    return [...this.openGroups].sort();
  }

  setOpenGroups(keys) {
    this.openGroups = new Set(keys);
  }

  /** Nodes drawn one by one whatever the level of detail; their way from the root is drawn too. */
  setPinned(ids) {
    this.pinned = new Set(ids.filter(Boolean));
  }

  /** Undo expansions around a node: re-group its fan-outs, drop what expanding it brought in, or
   *  (when neither applies) hide its leaf neighbours. Returns how many nodes left the view. */
  collapse(id) {
    const before = this.visibleNodeCount();
    let changed = false;
    for (const key of [...this.openGroups]) {
      if (key.startsWith(`${id}::`)) {
        this.openGroups.delete(key);
        changed = true;
      }
    }
    const brought = this.addedBy.get(id);
    if (brought) {
      const keep = new Set([this.rootId, ...this.path.nodes]);
      for (const nid of brought) {
        if (!keep.has(nid)) this.#dropNode(nid);
      }
      this.addedBy.delete(id);
      changed = true;
    }
    if (!changed) {
      const adj = this.#adjacency(new Set(this.nodes.keys()));
      for (const nb of adj.get(id) ?? []) {
        if (nb !== this.rootId && (adj.get(nb)?.size ?? 0) === 1 && !this.path.nodes.includes(nb)) {
          this.#dropNode(nb);
        }
      }
    }
    return before - this.#visibleModelCount();
  }

  #dropNode(id) {
    this.nodes.delete(id);
    for (const [key, e] of this.edges) {
      if (e.source === id || e.target === id) this.edges.delete(key);
    }
  }

  setHiddenKinds(kinds) {
    this.hiddenKinds = new Set(kinds);
  }

  /** Highlight a path answer (nodes in path order); an empty list clears it. */
  setPath(pathGraph) {
    if (!pathGraph) {
      this.path = { nodes: [], edges: new Set() };
      return;
    }
    this.merge(pathGraph);
    this.path = { nodes: pathGraph.nodes.map((n) => n.id), edges: new Set(pathGraph.edges.map(edgeKey)) };
  }

  #adjacency(ids) {
    const adj = new Map();
    for (const e of this.edges.values()) {
      if (!ids.has(e.source) || !ids.has(e.target) || e.source === e.target) continue;
      if (!adj.has(e.source)) adj.set(e.source, new Set());
      if (!adj.has(e.target)) adj.set(e.target, new Set());
      adj.get(e.source).add(e.target);
      adj.get(e.target).add(e.source);
    }
    return adj;
  }

  #visibleModelCount() {
    return [...this.nodes.values()].filter((n) => !this.hiddenKinds.has(n.kind)).length;
  }

  /** Work out what to draw: filtered kinds out, the rest by level of detail (lod.js). */
  #computeView() {
    const pathSet = new Set(this.path.nodes);
    const shown = new Map();
    for (const n of this.nodes.values()) {
      if (!this.hiddenKinds.has(n.kind) || pathSet.has(n.id) || n.id === this.rootId) shown.set(n.id, n);
    }
    const pinned = new Set([...pathSet, ...[...this.pinned].filter((id) => shown.has(id))]);
    const lod = levelOfDetail({
      nodes: shown,
      adjacency: this.#adjacency(new Set(shown.keys())),
      rootId: this.rootId,
      pinned,
      openGroups: this.openGroups,
      kindOrder: KIND_ORDER,
    });
    this.groups = lod.groups;
    return { shown, ...lod };
  }

  /** Redraw from the model and lay it out; resolves once the first frame of the new layout is drawn. */
  render() {
    const { drawn, groups, rep } = this.#computeView();
    const pathSet = new Set(this.path.nodes);
    const elements = [];
    for (const id of drawn) {
      const n = this.nodes.get(id);
      const info = kindInfo(n.kind);
      const classes = [];
      if (n.placeholder) classes.push("placeholder");
      if (id === this.rootId) classes.push("root");
      if (pathSet.has(id)) classes.push("on-path");
      elements.push({
        group: "nodes",
        data: { id, kind: n.kind, label: shortLabel(n.label || n.id), color: info.color, shape: info.shape },
        classes,
      });
    }
    for (const [gid, g] of groups) {
      const info = kindInfo(g.kind);
      elements.push({
        group: "nodes",
        data: { id: gid, kind: g.kind, label: groupLabel(g), color: info.color, shape: "round-rectangle", members: g.members.length, hidden: g.hidden },
        classes: ["fanout"],
      });
    }
    const seenGroupEdges = new Set();
    for (const [key, e] of this.edges) {
      const reversed = FLOW_REVERSED.has(e.kind);
      const src = rep.get(reversed ? e.target : e.source);
      const dst = rep.get(reversed ? e.source : e.target);
      if (src === undefined || dst === undefined || src === dst) continue;
      let id = key;
      if (src.startsWith("group:") || dst.startsWith("group:")) {
        id = `${src}|${e.kind}|${dst}`;
        if (seenGroupEdges.has(id)) continue;
        seenGroupEdges.add(id);
      }
      const classes = [reversed ? "against-flow" : "with-flow"];
      if (this.path.edges.has(key)) classes.push("on-path");
      // a commit that took the object out of its tree: drawn and labelled as a removal, not a declaration
      const removed = e.kind === "DECLARES" && e.properties?.deleted === true;
      if (removed) classes.push("removed");
      const kind = removed ? "DECLARES (removed)" : e.kind;
      elements.push({ group: "edges", data: { id, source: src, target: dst, kind, removed }, classes });
    }
    if (pathSet.size) {
      for (const el of elements) {
        if (!(el.classes.includes("on-path"))) el.classes.push("faded");
      }
    }
    this.cy.batch(() => {
      this.cy.elements().remove();
      this.cy.add(elements);
    });
    this.#updateCounts();
    return this.layout();
  }

  layout() {
    const count = this.cy.nodes().length;
    return new Promise((resolve) => {
      if (count === 0) {
        this.laidOut = null;
        resolve();
        return;
      }
      const finish = () => {
        this.laidOut = this.cy.elements().boundingBox();
        this.cy.fit(undefined, 30);
        requestAnimationFrame(() => requestAnimationFrame(() => {
          this.#scheduleViewChange(true);
          resolve();
        }));
      };
      if (count <= DAGRE_LIMIT) {
        const layout = this.cy.layout({
          name: "dagre",
          rankDir: "LR",
          nodeSep: 14,
          edgeSep: 8,
          rankSep: 90,
          nodeDimensionsIncludeLabels: true,
          animate: false,
          fit: false,
        });
        layout.one("layoutstop", finish);
        layout.run();
      } else {
        this.cy.layout({ name: "preset", positions: treePositions(this.cy, KIND_ORDER), animate: false, fit: false }).run();
        finish();
      }
    });
  }

  visibleNodeCount() {
    return this.cy.nodes().length;
  }

  #updateCounts() {
    const c = this.container;
    c.dataset.nodeCount = String(this.nodes.size);
    c.dataset.edgeCount = String(this.edges.size);
    c.dataset.visibleNodeCount = String(this.cy.nodes().length);
    c.dataset.visibleEdgeCount = String(this.cy.edges().length);
    c.dataset.removedEdgeCount = String(this.cy.edges(".removed").length);
    c.dataset.groupCount = String(this.groups.size);
    c.dataset.pathLength = String(this.path.nodes.length);
    c.dataset.truncated = String(this.truncated);
  }

  select(id) {
    this.cy.$(":selected").unselect();
    if (id) this.cy.getElementById(id).select();
  }

  fit() {
    this.cy.fit(undefined, 30);
  }

  zoom() {
    return this.cy.zoom();
  }

  /** The drawn nodes for the keyboard-accessible list beside the canvas: those in sight first, each with
   *  its spot and, for the first ``withBoxes``, its label's box when the label is drawn at this zoom
   *  (Cytoscape leaves out labels smaller than ``min-zoomed-font-size``). */
  drawnNodes(withBoxes = Infinity) {
    const w = this.cy.width();
    const h = this.cy.height();
    const zoom = this.cy.zoom();
    const listed = this.cy.nodes().map((n) => {
      const p = n.renderedPosition();
      const inView = p.x >= 0 && p.y >= 0 && p.x <= w && p.y <= h;
      return { n, id: n.id(), kind: n.data("kind"), label: n.data("label"), x: Math.round(p.x), y: Math.round(p.y), inView };
    });
    listed.sort((a, b) => Number(b.inView) - Number(a.inView));
    return listed.map((item, i) => {
      const { n, ...rest } = item;
      let labelBox = null;
      if (i < withBoxes && rest.label && n.pstyle("font-size").pfValue * zoom >= n.pstyle("min-zoomed-font-size").pfValue) {
        const b = n.renderedBoundingBox({ includeNodes: false, includeEdges: false, includeLabels: true });
        labelBox = [b.x1, b.y1, b.x2, b.y2].map(Math.round);
      }
      return { ...rest, labelBox, members: n.data("members") ?? null, hidden: n.data("hidden") ?? null };
    });
  }

  /** The box all drawn elements take as laid out, in pixels of the canvas (what Fit must bring into
   *  sight): the box is measured once per layout, and each viewport change only scales and shifts it. */
  renderedExtent() {
    const b = this.laidOut;
    if (!b) return null;
    const z = this.cy.zoom();
    const p = this.cy.pan();
    return [b.x1 * z + p.x, b.y1 * z + p.y, b.x2 * z + p.x, b.y2 * z + p.y].map(Math.round);
  }

  #scheduleViewChange(now = false) {
    clearTimeout(this.viewTimer);
    if (now) this.handlers.onViewChange?.();
    else this.viewTimer = setTimeout(() => this.handlers.onViewChange?.(), 120);
  }
}
