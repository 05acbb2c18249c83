// Level of detail: which nodes of a lineage answer are drawn one by one and which are folded into
// aggregates ("+40 processes · 1,960 below"), so that the first view of any node, of 15 nodes or of
// 10,000, has a number of elements whose labels can all be read.
//
// The answer is laid out as a breadth-first tree from the root (each node under its first neighbour one
// hop nearer the root). Level by level, the children of each drawn node are taken per kind: drawn one by
// one while the level's budget allows, else folded into one aggregate per (parent, kind) that also hides
// their whole subtree, else, when even those do not fit, one aggregate per parent. A level is about one
// column of the left-to-right layout, so its budget is what one column shows legibly.

/** Elements one column shows with legible labels on a laptop screen. */
export const LEVEL_BUDGET = 14;
/** Elements of a whole first view. */
export const TOTAL_BUDGET = 80;
/** An aggregate of every kind of child of one parent. */
export const ALL_KINDS = "*";

/** Commits fold per day (of their time): a repository's history reads as days, not as one lump. */
const DAILY = new Set(["Commit"]);

/** What an aggregate of this node is keyed by: its kind, or for daily kinds its kind and day. */
function bucketOf(node) {
  const day = DAILY.has(node.kind) && typeof node.time === "string" ? node.time.slice(0, 10) : "";
  return day ? `${node.kind}@${day}` : node.kind;
}

/** The key of an aggregate (and of the user having opened it): its parent and its members' bucket. */
export const groupKey = (parent, kind) => `${parent}::${kind}`;
export const groupId = (parent, kind) => `group:${groupKey(parent, kind)}`;

/**
 * @param {object} p
 * @param {Map<string, {kind: string}>} p.nodes    the shown nodes
 * @param {Map<string, Set<string>>} p.adjacency  undirected neighbours among the shown nodes
 * @param {string|null} p.rootId
 * @param {Set<string>} p.pinned     drawn whatever the budget (path ends and steps, the selection)
 * @param {Set<string>} p.openGroups keys the user opened: their members are drawn one by one
 * @param {Map<string, number>} p.kindOrder  flow order of kinds, for a stable order of children
 * @returns {{drawn: Set<string>, groups: Map<string, object>, rep: Map<string, string>}}
 *   rep maps every shown node to the drawn node or aggregate that stands for it.
 */
export function levelOfDetail({
  nodes,
  adjacency,
  rootId,
  pinned = new Set(),
  openGroups = new Set(),
  kindOrder = new Map(),
  levelBudget = LEVEL_BUDGET,
  totalBudget = TOTAL_BUDGET,
}) {
  const { parent, children, seeds } = spanningTree(nodes, adjacency, rootId, kindOrder);
  const forced = new Set();
  for (const id of pinned) {
    for (let at = id; at !== undefined && !forced.has(at); at = parent.get(at)) forced.add(at);
  }
  if (rootId && nodes.has(rootId)) forced.add(rootId);

  const drawn = new Set();
  const groups = new Map();
  let total = 0;
  // The virtual top ("") has the root and the seeds of parts the root does not reach as children.
  let frontier = [""];
  const kidsOf = (id) => (id === "" ? seeds : children.get(id) ?? []);
  while (frontier.length) {
    const next = [];
    const plans = []; // per parent: { parent, byKind: [[kind, members]], folded: [kind, rest][] }
    let cost = 0;
    for (const p of frontier) {
      let byKind = new Map();
      for (const c of kidsOf(p)) {
        const k = bucketOf(nodes.get(c));
        if (!byKind.has(k)) byKind.set(k, []);
        byKind.get(k).push(c);
      }
      if ([...byKind.keys()].filter((k) => k.includes("@")).length > levelBudget / 2) {
        // more days than a column holds: one aggregate per kind instead
        const merged = new Map();
        for (const [k, members] of byKind) {
          const kind = k.split("@")[0];
          merged.set(kind, [...(merged.get(kind) ?? []), ...members]);
        }
        byKind = merged;
      }
      const plan = { parent: p, singles: [], folds: [] };
      for (const [kind, members] of byKind) {
        const open =
          openGroups.has(groupKey(p, kind)) ||
          openGroups.has(groupKey(p, kind.split("@")[0])) ||
          openGroups.has(groupKey(p, ALL_KINDS));
        const rest = [];
        for (const m of members) (open || forced.has(m) ? plan.singles : rest).push(m);
        if (rest.length === 1 && (children.get(rest[0]) ?? []).length === 0) plan.singles.push(rest[0]);
        else if (rest.length) plan.folds.push({ kind, members: rest });
      }
      cost += plan.singles.length + plan.folds.length;
      plans.push(plan);
    }
    const room = Math.max(0, Math.min(levelBudget, totalBudget - total));
    if (cost > room) {
      // Too many per-kind aggregates for one column: one aggregate per parent instead, largest first.
      const byWeight = plans.filter((pl) => pl.folds.length > 1).sort((a, b) => b.folds.length - a.folds.length);
      for (const pl of byWeight) {
        if (cost <= room) break;
        cost -= pl.folds.length - 1;
        pl.folds = [{ kind: ALL_KINDS, members: pl.folds.flatMap((f) => f.members) }];
      }
    } else {
      // Room left: open the smallest aggregates first, while the column still fits.
      const folds = plans.flatMap((pl) => pl.folds.map((f) => ({ pl, f }))).sort((a, b) => a.f.members.length - b.f.members.length);
      for (const { pl, f } of folds) {
        if (cost + f.members.length - 1 > room) break;
        cost += f.members.length - 1;
        pl.singles.push(...f.members);
        pl.folds = pl.folds.filter((x) => x !== f);
      }
    }
    for (const pl of plans) {
      for (const id of pl.singles) {
        drawn.add(id);
        next.push(id);
      }
      for (const f of pl.folds) {
        const gid = groupId(pl.parent, f.kind);
        const below = new Map();
        let hidden = 0;
        const stack = f.members.flatMap((m) => children.get(m) ?? []);
        while (stack.length) {
          const id = stack.pop();
          hidden++;
          const k = nodes.get(id).kind;
          below.set(k, (below.get(k) ?? 0) + 1);
          stack.push(...(children.get(id) ?? []));
        }
        const kinds = new Map();
        for (const m of f.members) kinds.set(nodes.get(m).kind, (kinds.get(nodes.get(m).kind) ?? 0) + 1);
        const [kind, day = null] = f.kind.split("@");
        groups.set(gid, { parent: pl.parent, kind, bucket: f.kind, day, members: [...f.members].sort(), kinds, below, hidden });
      }
    }
    total += cost;
    frontier = next;
  }

  const rep = new Map();
  for (const [gid, g] of groups) {
    const stack = [...g.members];
    while (stack.length) {
      const id = stack.pop();
      rep.set(id, gid);
      stack.push(...(children.get(id) ?? []));
    }
  }
  for (const id of drawn) rep.set(id, id);
  return { drawn, groups, rep };
}

/** A breadth-first spanning tree over the shown nodes: from the root first, then from each node the
 *  root does not reach (a hidden kind can cut the answer in parts), nearest the root's kind first. */
function spanningTree(nodes, adjacency, rootId, kindOrder) {
  const rank = (id) => kindOrder.get(nodes.get(id).kind) ?? 99;
  const order = (a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0);
  const parent = new Map();
  const children = new Map();
  const seeds = [];
  const seen = new Set();
  const grow = (seed) => {
    seen.add(seed);
    seeds.push(seed);
    const queue = [seed];
    for (let i = 0; i < queue.length; i++) {
      const id = queue[i];
      const kids = [...(adjacency.get(id) ?? [])].filter((n) => !seen.has(n)).sort(order);
      for (const k of kids) {
        seen.add(k);
        parent.set(k, id);
        queue.push(k);
      }
      if (kids.length) children.set(id, kids);
    }
  };
  if (rootId && nodes.has(rootId)) grow(rootId);
  for (const id of [...nodes.keys()].sort(order)) if (!seen.has(id)) grow(id);
  return { parent, children, seeds };
}
