// The search box: results grouped by kind, driven from the keyboard (arrows, Enter, Escape).

import { commitByPrefix, search } from "./api.js";
import { el, swatch } from "./dom.js";
import { KIND_BY_NAME, KINDS, kindInfo } from "./kinds.js";

const HEX_PREFIX = /^[0-9a-f]{4,64}$/i;

export class SearchBox {
  constructor(input, list, { onPick, onError }) {
    this.input = input;
    this.list = list;
    this.onPick = onPick;
    this.onError = onError;
    this.options = []; // [{id, node, element}]
    this.active = -1;
    this.seq = 0;
    input.addEventListener("input", () => {
      clearTimeout(this.timer);
      this.pending = true;
      this.timer = setTimeout(() => this.run(), 180);
    });
    input.addEventListener("keydown", (e) => this.#key(e));
    input.addEventListener("focus", () => {
      if (this.options.length) this.#open(true);
    });
    document.addEventListener("click", (e) => {
      if (!this.list.contains(e.target) && e.target !== input) this.#open(false);
    });
  }

  async run() {
    this.pending = false;
    const text = this.input.value.trim();
    const seq = ++this.seq;
    if (!text) {
      this.#show([], 0);
      return;
    }
    this.list.dataset.state = "loading";
    try {
      const found = await search(text);
      let nodes = found.nodes;
      if (HEX_PREFIX.test(text) && !nodes.some((n) => n.kind === "Commit")) {
        const commit = await commitByPrefix(text).catch(() => null);
        if (commit) nodes = [commit, ...nodes];
      }
      if (seq === this.seq) this.#show(nodes, Math.max(found.total, nodes.length));
    } catch (err) {
      if (seq === this.seq) {
        this.#show([], 0);
        this.onError?.(err);
      }
    }
  }

  #show(nodes, total) {
    this.list.replaceChildren();
    this.options = [];
    this.active = -1;
    const byKind = new Map();
    for (const n of nodes) {
      if (!byKind.has(n.kind)) byKind.set(n.kind, []);
      byKind.get(n.kind).push(n);
    }
    const order = [...KINDS.map((k) => k.kind), ...[...byKind.keys()].filter((k) => !KIND_BY_NAME.has(k))];
    for (const kind of order) {
      const group = byKind.get(kind);
      if (!group) continue;
      const info = kindInfo(kind);
      const head = el("div", { cls: "search-group", attrs: { role: "presentation", "data-kind": kind } }, [
        swatch(info),
        el("span", { text: `${kind} (${group.length})` }),
      ]);
      this.list.append(head);
      for (const node of group) {
        const optionId = `search-opt-${this.options.length}`;
        const option = el("div", {
          cls: "search-option",
          attrs: { role: "option", id: optionId, "aria-selected": "false", "data-node-id": node.id, "data-kind": kind },
        }, [
          el("span", { cls: "search-label", text: node.label || node.id }),
          el("span", { cls: "search-id", text: node.id }),
        ]);
        const index = this.options.length;
        option.addEventListener("mousedown", (e) => e.preventDefault());
        option.addEventListener("click", () => this.#pick(index));
        option.addEventListener("mousemove", () => this.#activate(index));
        this.options.push({ node, element: option });
        this.list.append(option);
      }
    }
    if (!nodes.length && this.input.value.trim()) {
      this.list.append(el("div", { cls: "search-none", text: "No matches." }));
    } else if (total > nodes.length) {
      this.list.append(el("div", { cls: "search-more", text: `${total - nodes.length} more: refine the search.` }));
    }
    this.list.dataset.state = "ready";
    this.list.dataset.count = String(nodes.length);
    this.#open(this.input.value.trim() !== "");
    if (this.options.length) this.#activate(0);
  }

  #open(open) {
    this.list.hidden = !open;
    this.input.setAttribute("aria-expanded", String(open));
  }

  #activate(index) {
    if (this.active >= 0 && this.options[this.active]) {
      this.options[this.active].element.setAttribute("aria-selected", "false");
      this.options[this.active].element.classList.remove("active");
    }
    this.active = index;
    const opt = this.options[index];
    if (!opt) return;
    opt.element.setAttribute("aria-selected", "true");
    opt.element.classList.add("active");
    opt.element.scrollIntoView({ block: "nearest" });
    this.input.setAttribute("aria-activedescendant", opt.element.id);
  }

  #pick(index) {
    const opt = this.options[index];
    if (!opt) return;
    this.#open(false);
    this.onPick?.(opt.node);
  }

  #key(e) {
    const n = this.options.length;
    if (e.key === "ArrowDown" && n) {
      e.preventDefault();
      this.#open(true);
      this.#activate((this.active + 1) % n);
    } else if (e.key === "ArrowUp" && n) {
      e.preventDefault();
      this.#activate((this.active - 1 + n) % n);
    } else if (e.key === "Enter") {
      e.preventDefault();
      clearTimeout(this.timer);
      if (this.pending || this.list.hidden) this.run().then(() => this.#pick(Math.max(this.active, 0)));
      else this.#pick(this.active);
    } else if (e.key === "Escape") {
      this.#open(false);
    }
  }
}
