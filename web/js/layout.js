// Linear-time layout for big views, where dagre would take seconds: a layered tidy tree that still
// reads left to right along the flow (declaration -> execution -> logs).

/** Positions for every node of `cy`: x by layer (longest flow path from a source; a node on a cycle
 *  goes by its kind's place in `kindOrder`), y from a tidy tree over each node's first parent. */
export function treePositions(cy, kindOrder) {
  const nodes = cy.nodes();
  const indeg = new Map(nodes.map((n) => [n.id(), 0]));
  const out = new Map(nodes.map((n) => [n.id(), []]));
  cy.edges().forEach((e) => {
    const s = e.source().id();
    const t = e.target().id();
    if (s === t) return;
    out.get(s).push(t);
    indeg.set(t, indeg.get(t) + 1);
  });
  const rank = new Map();
  const queue = [];
  for (const [id, d] of indeg) {
    if (d === 0) {
      queue.push(id);
      rank.set(id, 0);
    }
  }
  for (let i = 0; i < queue.length; i++) {
    const id = queue[i];
    for (const t of out.get(id)) {
      rank.set(t, Math.max(rank.get(t) ?? 0, rank.get(id) + 1));
      indeg.set(t, indeg.get(t) - 1);
      if (indeg.get(t) === 0) queue.push(t);
    }
  }
  nodes.forEach((n) => {
    if (!rank.has(n.id())) rank.set(n.id(), kindOrder.get(n.data("kind")) ?? 0); // on a cycle
  });
  const preds = new Map(nodes.map((n) => [n.id(), []]));
  for (const [s, targets] of out) targets.forEach((t) => preds.get(t).push(s));
  const kindRank = new Map(nodes.map((n) => [n.id(), kindOrder.get(n.data("kind")) ?? 0]));
  const byName = (a, b) => kindRank.get(a) - kindRank.get(b) || (a < b ? -1 : a > b ? 1 : 0);
  // A tidy tree over each node's first parent from an earlier layer: every subtree gets a vertical
  // band of its own, and many leaf children of one node form a small grid beside it.
  const children = new Map(nodes.map((n) => [n.id(), []]));
  const roots = [];
  for (const id of [...rank.keys()].sort(byName)) {
    const parent = preds.get(id).filter((p) => rank.get(p) < rank.get(id)).sort(byName)[0];
    if (parent) children.get(parent).push(id);
    else roots.push(id);
  }
  const rowGap = 42; // a node (24 px) and its label below it (about 14 px)
  const colWidth = 180;
  const gridCols = (n) => Math.min(8, Math.max(1, Math.ceil(Math.sqrt(n / 3))));
  const isLeafGrid = (kids) => kids.length > 8 && kids.every((k) => children.get(k).length === 0);
  const height = new Map();
  const measure = (id) => {
    const kids = children.get(id);
    let h = rowGap;
    if (isLeafGrid(kids)) h = Math.ceil(kids.length / gridCols(kids.length)) * rowGap;
    else if (kids.length) h = kids.reduce((sum, k) => sum + measure(k), 0);
    height.set(id, Math.max(rowGap, h));
    return height.get(id);
  };
  roots.forEach(measure);
  const layerWidth = new Map(); // widest grid per layer, so later layers start after it
  for (const [id, kids] of children) {
    const r = rank.get(id) + 1;
    const cols = isLeafGrid(kids) ? gridCols(kids.length) : 1;
    layerWidth.set(r, Math.max(layerWidth.get(r) ?? 1, cols));
  }
  const layerX = new Map();
  let x = 0;
  for (const r of [...new Set(rank.values())].sort((a, b) => a - b)) {
    layerX.set(r, x);
    x += (layerWidth.get(r) ?? 1) * colWidth + 90;
  }
  const positions = {};
  const place = (id, top) => {
    const h = height.get(id);
    positions[id] = { x: layerX.get(rank.get(id)), y: top + h / 2 };
    const kids = children.get(id);
    if (isLeafGrid(kids)) {
      const rows = Math.ceil(kids.length / gridCols(kids.length));
      kids.forEach((k, i) => {
        positions[k] = { x: layerX.get(rank.get(k)) + Math.floor(i / rows) * colWidth, y: top + (i % rows) * rowGap + rowGap / 2 };
      });
      return;
    }
    let cursor = top;
    for (const k of kids) {
      place(k, cursor);
      cursor += height.get(k);
    }
  };
  let top = 0;
  for (const id of roots) {
    place(id, top);
    top += height.get(id) + rowGap;
  }
  return positions;
}
