// The rollout timeline: a node's audit trail (its commit, deployment, Pods, containers, processes, spans and
// log lines) on one UTC time axis, one lane per kind in flow order. Marks of a lane closer than a few pixels
// merge into one counted bucket, so thousands of log lines stay readable; a bucket lists its members and
// zooms in on them. Every piece of text reaches the SVG through textContent or an attribute, never markup.

import { fetchAuditTrail } from "./api.js";
import { $, el } from "./dom.js";
import { kindInfo } from "./kinds.js";

/** The kinds whose audit trail reaches a change's deployment, or its trace's spans and logs. */
export const TIMELINE_KINDS = new Set([
  "Commit", "AuditRecord", "Trace", "Admission", "Workload", "Pod", "Container",
]);

// Flow order: declaration -> deployment -> execution -> telemetry; kinds not listed go last, by name.
const LANE_ORDER = [
  "Repo", "Commit", "AuditRecord", "Admission", "Workload", "Pod", "Container", "PipelineRun", "Process", "File",
  "Trace", "Resource", "Span", "LogEvent",
];
const SVG_NS = "http://www.w3.org/2000/svg";
const LABEL_W = 170; // the lane names' column
const AXIS_H = 30;
const LANE_H = 24;
const PAD_R = 28;
const MARK_R = 5;
const MIN_GAP = 12; // marks nearer than this (pixels) share a bucket
const LIST_MAX = 200; // members listed at once in a bucket or the no-time list
const MIN_WINDOW_MS = 10;
const STEPS = [
  1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 10e3, 15e3, 30e3, 60e3, 120e3, 300e3, 600e3, 900e3, 1800e3,
  3600e3, 7200e3, 10800e3, 21600e3, 43200e3, 864e5, 2 * 864e5, 7 * 864e5, 14 * 864e5, 30 * 864e5, 91 * 864e5,
  182 * 864e5, 365 * 864e5,
];
const ISO = /^(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d)(?::(\d\d)(?:\.(\d+))?)?\s*(Z|[+-]\d\d:?\d\d)?$/i;

let current = null; // what is drawn: { node, lanes, kinds, untimed, full, domain, onPick }
let loadSeq = 0;

/** Milliseconds since the epoch (fraction kept) of an ISO 8601 time; null when it is not one. A time
 *  without a zone is UTC, as liubai writes every time. */
export function parseTime(text) {
  const m = ISO.exec(String(text ?? "").trim());
  if (!m) return null;
  const [, y, mo, d, h, mi, s = "0", frac = "0", zone = "Z"] = m;
  let ms = Date.UTC(+y, +mo - 1, +d, +h, +mi, +s) + Number(`0.${frac}`) * 1000;
  if (zone.toUpperCase() !== "Z") {
    const sign = zone[0] === "-" ? -1 : 1;
    ms -= sign * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(-2))) * 60_000;
  }
  return Number.isFinite(ms) ? ms : null;
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function laneRank(kind) {
  const i = LANE_ORDER.indexOf(kind);
  return i < 0 ? LANE_ORDER.length : i;
}

/** Lanes of timed entries (each sorted by time) and the entries with no readable time. */
function arrange(entries) {
  const lanes = new Map();
  const untimed = [];
  for (const entry of entries) {
    const ms = entry.time ? parseTime(entry.time) : null;
    if (ms === null) {
      untimed.push(entry);
      continue;
    }
    if (!lanes.has(entry.node.kind)) lanes.set(entry.node.kind, []);
    lanes.get(entry.node.kind).push({ ms, entry });
  }
  for (const items of lanes.values()) items.sort((a, b) => a.ms - b.ms);
  const kinds = [...lanes.keys()].sort((a, b) => laneRank(a) - laneRank(b) || a.localeCompare(b));
  const firsts = kinds.map((k) => lanes.get(k)[0].ms);
  const lasts = kinds.map((k) => lanes.get(k).at(-1).ms);
  const full = kinds.length ? padded(Math.min(...firsts), Math.max(...lasts)) : null;
  return { lanes, kinds, untimed, full };
}

/** A window around [from, to] with a margin, so that marks at its ends are not cut in half. */
function padded(from, to) {
  const pad = Math.max((to - from) * 0.03, MIN_WINDOW_MS / 2, to === from ? 1000 : 0);
  return [from - pad, to + pad];
}

/** Marks of one lane, left to right, chained into buckets while each is nearer than MIN_GAP to the last. */
function cluster(items, x) {
  const out = [];
  let cur = null;
  for (const item of items) {
    const px = x(item.ms);
    if (cur && px - cur.x2 < MIN_GAP) {
      cur.items.push(item);
      cur.x2 = px;
    } else {
      cur = { x1: px, x2: px, items: [item] };
      out.push(cur);
    }
  }
  return out;
}

/** Tick times at a round step, at most one per ~110 pixels. */
function ticks([t0, t1], width) {
  const most = Math.max(2, Math.floor(width / 110));
  const step = STEPS.find((s) => (t1 - t0) / s <= most) ?? Math.ceil((t1 - t0) / most);
  const first = Math.ceil(t0 / step) * step;
  const out = [];
  for (let i = 0; first + i * step <= t1; i++) out.push(first + i * step);
  return { step, times: out };
}

function utc(ms) {
  return new Date(ms).toISOString(); // 2026-03-01T10:00:10.000Z
}

function tickLabel(ms, step, manyDays) {
  const iso = utc(ms);
  if (step >= 864e5) return iso.slice(0, 10);
  const clock = step >= 60e3 ? iso.slice(11, 16) : step >= 1e3 ? iso.slice(11, 19) : iso.slice(11, 23);
  return manyDays ? `${iso.slice(5, 10)} ${clock}` : clock;
}

function duration(ms) {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.round((s % 86400) / 3600)} h`;
}

function plural(kind, n) {
  return n === 1 ? kind : kindInfo(kind).plural;
}

function describe(entry) {
  return `${entry.node.kind}: ${entry.node.label || entry.node.id}`;
}

function activate(node, action) {
  node.addEventListener("click", action);
  node.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      action();
    }
  });
}

function drawMark(layer, kind, item, px, y) {
  const { entry } = item;
  const g = svg("g", {
    class: "tl-mark",
    tabindex: 0,
    role: "button",
    "data-node-id": entry.node.id,
    "data-kind": kind,
    "data-time": entry.time,
    "data-ms": item.ms,
    "data-x": px.toFixed(2),
    "aria-label": `${describe(entry)}, ${entry.time}`,
  });
  g.append(
    svg("title", {}, `${describe(entry)}\n${entry.time}`),
    svg("circle", { cx: px.toFixed(2), cy: y, r: MARK_R, fill: kindInfo(kind).color }),
  );
  activate(g, () => current?.onPick(entry.node));
  layer.append(g);
}

function drawBucket(layer, kind, group, y) {
  const { items, x1, x2 } = group;
  const n = items.length;
  const first = items[0].entry.time;
  const last = items[n - 1].entry.time;
  const words = `${n} ${plural(kind, n)}`;
  const wide = x2 - x1 + 2 * MARK_R;
  const text = wide >= words.length * 6.2 + 10 ? words : String(n);
  const width = Math.max(wide, text.length * 6.2 + 10);
  const mid = (x1 + x2) / 2;
  const g = svg("g", {
    class: "tl-bucket",
    tabindex: 0,
    role: "button",
    "data-kind": kind,
    "data-count": n,
    "data-from": first,
    "data-to": last,
    "data-from-ms": items[0].ms,
    "data-to-ms": items[n - 1].ms,
    "data-x": x1.toFixed(2),
    "data-x2": x2.toFixed(2),
    "aria-label": `${words} from ${first} to ${last}`,
  });
  g.append(
    svg("title", {}, `${words}\n${first} – ${last}\nclick to list them`),
    svg("rect", {
      class: "tl-bucket-bar",
      x: (mid - width / 2).toFixed(2),
      y: y - 8,
      width: width.toFixed(2),
      height: 16,
      rx: 8,
      fill: kindInfo(kind).color,
      stroke: kindInfo(kind).color,
    }),
    svg("text", { class: "tl-bucket-count", x: mid.toFixed(2), y: y + 4, "text-anchor": "middle" }, text),
  );
  activate(g, () => showBucket(kind, items));
  layer.append(g);
}

function render() {
  const chart = $("timeline-chart");
  const section = $("timeline");
  if (!current || !current.domain) {
    chart.replaceChildren();
    section.dataset.marks = "0";
    return;
  }
  const { lanes, kinds, domain } = current;
  const [t0, t1] = domain;
  const width = Math.max(640, Math.floor(chart.clientWidth || 0));
  const plotW = width - LABEL_W - PAD_R;
  const height = AXIS_H + kinds.length * LANE_H + 6;
  const x = (ms) => LABEL_W + ((ms - t0) / (t1 - t0)) * plotW;
  const root = svg("svg", {
    class: "timeline-svg",
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    role: "group",
    "aria-label": `Timeline from ${utc(t0)} to ${utc(t1)}`,
    "data-from-ms": t0,
    "data-to-ms": t1,
  });

  const manyDays = utc(t0).slice(0, 10) !== utc(t1).slice(0, 10);
  const { step, times } = ticks(domain, plotW);
  const axis = svg("g", { class: "tl-axis" });
  const title = manyDays || step >= 864e5 ? "UTC" : `UTC ${utc(t0).slice(0, 10)}`;
  axis.append(svg("text", { class: "tl-axis-title", x: 8, y: 18 }, title));
  for (const t of times) {
    const px = x(t).toFixed(2);
    const label = tickLabel(t, step, manyDays);
    axis.append(
      svg("line", { class: "tl-tick", x1: px, x2: px, y1: AXIS_H - 6, y2: height }),
      svg("text", { class: "tl-tick-label", x: px, y: 18, "text-anchor": "middle", "data-ms": t }, label),
    );
  }
  root.append(axis);

  let marks = 0;
  kinds.forEach((kind, i) => {
    const top = AXIS_H + i * LANE_H;
    const y = top + LANE_H / 2;
    const items = lanes.get(kind);
    const lane = svg("g", { class: "tl-lane", "data-kind": kind, "data-count": items.length, "data-index": i });
    lane.append(
      svg("rect", { class: i % 2 ? "tl-lane-bg odd" : "tl-lane-bg", x: 0, y: top, width, height: LANE_H }),
      svg("text", { class: "tl-lane-label", x: 8, y: y + 4 }, kind),
      svg("text", { class: "tl-lane-count", x: LABEL_W - 10, y: y + 4, "text-anchor": "end" }, items.length),
    );
    // single marks drawn over the buckets, so a wide bucket never hides one from the mouse
    const buckets = svg("g");
    const singles = svg("g");
    const shown = items.filter((item) => item.ms >= t0 && item.ms <= t1);
    for (const group of cluster(shown, x)) {
      if (group.items.length === 1) drawMark(singles, kind, group.items[0], group.x1, y);
      else drawBucket(buckets, kind, group, y);
      marks++;
    }
    lane.append(buckets, singles);
    root.append(lane);
  });
  chart.replaceChildren(root);
  section.dataset.marks = String(marks);
  const zoomed = current.domain !== current.full;
  section.dataset.zoomed = String(zoomed);
  $("btn-timeline-reset").hidden = !zoomed;
  $("timeline-window").textContent = zoomed ? `showing ${utc(t0)} – ${utc(t1)}` : "";
}

function showBucket(kind, items) {
  const box = $("timeline-bucket");
  const n = items.length;
  const from = items[0];
  const to = items[n - 1];
  const zoom = el("button", { text: "Zoom in", attrs: { type: "button", id: "btn-timeline-zoom" } });
  zoom.disabled = to.ms === from.ms;
  zoom.addEventListener("click", () => {
    current.domain = padded(from.ms, to.ms);
    box.hidden = true;
    render();
  });
  const close = el("button", { text: "Close", attrs: { type: "button" } });
  close.addEventListener("click", () => {
    box.hidden = true;
  });
  const list = el("ol", { cls: "tl-members" });
  for (const item of items.slice(0, LIST_MAX)) {
    const pick = el("button", {
      cls: "linklike",
      text: item.entry.node.label || item.entry.node.id,
      attrs: { type: "button", "data-node-id": item.entry.node.id },
    });
    pick.addEventListener("click", () => current?.onPick(item.entry.node));
    list.append(el("li", {}, [el("span", { cls: "mono", text: item.entry.time }), pick]));
  }
  if (n > LIST_MAX) {
    list.append(el("li", { cls: "hint", text: `…and ${n - LIST_MAX} more: zoom in to reach them` }));
  }
  box.replaceChildren(
    el("div", { cls: "tl-bucket-head" }, [
      el("span", { text: `${n} ${plural(kind, n)}, ${from.entry.time} – ${to.entry.time}` }),
      zoom,
      close,
    ]),
    list,
  );
  box.dataset.kind = kind;
  box.dataset.count = String(n);
  box.hidden = false;
}

function showUntimed(untimed) {
  const box = $("timeline-untimed");
  box.hidden = untimed.length === 0;
  box.dataset.count = String(untimed.length);
  const byKind = new Map();
  for (const e of untimed) byKind.set(e.node.kind, (byKind.get(e.node.kind) ?? 0) + 1);
  const parts = [...byKind]
    .sort(([a], [b]) => laneRank(a) - laneRank(b))
    .map(([k, n]) => `${n} ${plural(k, n)}`);
  const list = el("ol", { cls: "tl-members" });
  for (const e of untimed.slice(0, LIST_MAX)) {
    const pick = el("button", {
      cls: "linklike",
      text: describe(e),
      attrs: { type: "button", "data-node-id": e.node.id, "data-kind": e.node.kind },
    });
    pick.addEventListener("click", () => current?.onPick(e.node));
    list.append(el("li", {}, [pick]));
  }
  if (untimed.length > LIST_MAX) {
    list.append(el("li", { cls: "hint", text: `…and ${untimed.length - LIST_MAX} more` }));
  }
  box.replaceChildren(el("summary", { text: `no time: ${untimed.length} (${parts.join(", ")})` }), list);
}

/** The span, and how many entries each lane holds (also written beside each lane). */
function summarize({ lanes, kinds, untimed }) {
  const timed = kinds.reduce((sum, k) => sum + lanes.get(k).length, 0);
  const summary = $("timeline-summary");
  if (timed) {
    const first = kinds.map((k) => lanes.get(k)[0]).reduce((a, b) => (b.ms < a.ms ? b : a));
    const last = kinds.map((k) => lanes.get(k).at(-1)).reduce((a, b) => (b.ms > a.ms ? b : a));
    summary.textContent =
      `${first.entry.time} – ${last.entry.time} (${duration(last.ms - first.ms)}) · ` +
      kinds.map((k) => `${lanes.get(k).length} ${plural(k, lanes.get(k).length)}`).join(", ") +
      ` · ${untimed.length} with no time`;
  } else {
    summary.textContent = `nothing in this trail has a time · ${untimed.length} with no time`;
  }
}

/** Draw the timeline of ``node``'s audit trail; ``onPick(node)`` is called with the node of a clicked mark. */
export async function showTimeline(node, onPick) {
  const seq = ++loadSeq;
  const section = $("timeline");
  section.hidden = false;
  section.dataset.state = "loading";
  section.dataset.nodeId = node.id;
  $("timeline-title").textContent = node.label || node.id;
  $("timeline-summary").textContent = "Loading…";
  $("timeline-bucket").hidden = true;
  $("timeline-untimed").hidden = true;
  $("timeline-window").textContent = "";
  $("timeline-chart").replaceChildren();
  current = null;
  Object.assign(section.dataset, { marks: "0", entries: "0", untimed: "0", lanes: "", zoomed: "false" });
  let entries;
  try {
    entries = await fetchAuditTrail(node.id);
  } catch (err) {
    if (seq !== loadSeq) return;
    section.dataset.state = "error";
    $("timeline-summary").textContent = `Timeline not shown: ${err.message}`;
    throw err;
  }
  if (seq !== loadSeq) return;
  const arranged = arrange(entries);
  current = { node, onPick, ...arranged, domain: arranged.full };
  summarize(arranged);
  showUntimed(arranged.untimed);
  render();
  section.dataset.entries = String(entries.length);
  section.dataset.untimed = String(arranged.untimed.length);
  section.dataset.lanes = arranged.kinds.join(",");
  section.dataset.state = "ready";
}

export function hideTimeline() {
  loadSeq++;
  $("timeline").hidden = true;
}

function wire() {
  $("btn-timeline-close").addEventListener("click", hideTimeline);
  $("btn-timeline-reset").addEventListener("click", () => {
    if (!current) return;
    current.domain = current.full;
    render();
  });
  let pending = false;
  window.addEventListener("resize", () => {
    if (pending || !current || $("timeline").hidden) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      render();
    });
  });
}

wire();
