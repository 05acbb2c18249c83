// Tiny DOM helpers. Every piece of data reaches the page through textContent, never as markup.

export function el(tag, { text, cls, attrs } = {}, children = []) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  for (const [k, v] of Object.entries(attrs ?? {})) node.setAttribute(k, String(v));
  for (const child of children) node.append(child);
  return node;
}

export const $ = (id) => document.getElementById(id);

/** A property value as plain text: strings as they are, everything else as JSON. */
export function asText(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "string") return value;
  return JSON.stringify(value, null, 1);
}

/** A small SVG swatch in a kind's colour and (roughly) its graph shape, for the legend and lists. */
export function swatch(info) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 16 16");
  svg.setAttribute("class", "swatch");
  svg.setAttribute("aria-hidden", "true");
  const shapes = {
    ellipse: ["circle", { cx: 8, cy: 8, r: 6 }],
    diamond: ["polygon", { points: "8,1 15,8 8,15 1,8" }],
    triangle: ["polygon", { points: "8,2 15,14 1,14" }],
    "round-triangle": ["polygon", { points: "8,2 15,14 1,14", "stroke-linejoin": "round" }],
    hexagon: ["polygon", { points: "4,2 12,2 15,8 12,14 4,14 1,8" }],
    "round-hexagon": ["polygon", { points: "4,2 12,2 15,8 12,14 4,14 1,8", "stroke-linejoin": "round" }],
    rectangle: ["rect", { x: 2, y: 3, width: 12, height: 10 }],
    "round-rectangle": ["rect", { x: 2, y: 3, width: 12, height: 10, rx: 3 }],
    "round-tag": ["polygon", { points: "2,3 11,3 15,8 11,13 2,13" }],
    barrel: ["rect", { x: 2, y: 2, width: 12, height: 12, rx: 5 }],
  };
  const [tag, attrs] = shapes[info.shape] ?? shapes.ellipse;
  const shape = document.createElementNS(ns, tag);
  for (const [k, v] of Object.entries(attrs)) shape.setAttribute(k, String(v));
  shape.setAttribute("fill", info.color);
  svg.append(shape);
  return svg;
}
