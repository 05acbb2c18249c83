// The view's state in the URL hash, so a link (or a reload) brings back the same view.

const DIRECTIONS = new Set(["AUTO", "DOWNSTREAM", "UPSTREAM", "BOTH"]);

/** The view a URL names: its hash (``#node=…&depth=…&direction=…``), or the query string for links
 *  written by hand (``/?node=…``); ``dir`` is accepted for ``direction``. */
export function readState(hash = location.hash, search = location.search) {
  const q = new URLSearchParams(search);
  const h = new URLSearchParams(hash.replace(/^#/, ""));
  for (const k of new Set(h.keys())) q.delete(k); // the hash wins, and keeps repeated keys (open=…&open=…)
  for (const [k, v] of h) q.append(k, v);
  const depth = Number.parseInt(q.get("depth") ?? "", 10);
  const dir = (q.get("direction") ?? q.get("dir") ?? "").toUpperCase();
  return {
    node: q.get("node") || null,
    depth: Number.isFinite(depth) && depth >= 1 && depth <= 10 ? depth : 2,
    direction: DIRECTIONS.has(dir) ? dir : "AUTO", // none named: by the root's kind (directions.js)
    selected: q.get("sel") || null,
    hidden: (q.get("hide") ?? "").split(",").filter(Boolean),
    pathFrom: q.get("from") || null,
    pathTo: q.get("to") || null,
    open: q.getAll("open").filter(Boolean), // opened aggregates, "<parent>::<kind>"
  };
}

/** Record the view in the URL; ``push`` makes a new history entry (a new root), else it replaces. */
export function writeState(state, push = false) {
  const q = new URLSearchParams();
  if (state.node) q.set("node", state.node);
  q.set("depth", String(state.depth));
  q.set("direction", state.direction.toLowerCase());
  if (state.selected && state.selected !== state.node) q.set("sel", state.selected);
  if (state.hidden.length) q.set("hide", state.hidden.join(","));
  if (state.pathFrom) q.set("from", state.pathFrom);
  if (state.pathTo) q.set("to", state.pathTo);
  for (const key of state.open ?? []) q.append("open", key);
  const url = `${location.pathname}#${q}`; // the hash alone carries the view from here on
  if (url === `${location.pathname}${location.search}${location.hash}`) return;
  if (push) history.pushState(null, "", url);
  else history.replaceState(null, "", url);
}
