// The domain as a graph (Cytoscape.js): zones holding subnets holding hosts, and for
// each group the flows between hosts, each edge labelled with its rate.

import { ipOrder, shortRate } from "./format.js";

const STYLE = [
  {
    selector: "node",
    style: {
      label: "data(label)",
      "font-size": 11,
      "text-valign": "bottom",
      "text-margin-y": 4,
      color: "#1d3557",
      "min-zoomed-font-size": 6,
    },
  },
  {
    selector: "node.zone",
    style: {
      shape: "round-rectangle",
      "background-color": "#eef3f8",
      "border-color": "#9fb3c8",
      "border-width": 1,
      "text-valign": "top",
      "text-halign": "center",
      "font-weight": "bold",
      padding: 18,
    },
  },
  {
    selector: "node.subnet",
    style: {
      shape: "round-rectangle",
      "background-color": "#ffffff",
      "border-color": "#c5d3e0",
      "border-style": "dashed",
      "border-width": 1,
      "text-valign": "top",
      padding: 12,
    },
  },
  {
    selector: "node.host",
    style: {
      shape: "round-rectangle",
      width: 34,
      height: 24,
      "background-color": "#2a9d8f",
      "border-width": 2,
      "border-color": "#1d3557",
    },
  },
  {
    selector: "node.host.dead",
    style: {
      "background-color": "#e63946",
      "border-color": "#6b0f16",
      "border-style": "dashed",
      opacity: 0.8,
    },
  },
  { selector: "node.host.sender", style: { "border-color": "#f4a261", "border-width": 5 } },
  { selector: "node.host.receiver", style: { "background-color": "#457b9d" } },
  { selector: "node.host.dead.receiver", style: { "background-color": "#e63946" } },
  { selector: "node.host:selected", style: { "overlay-opacity": 0.15, "overlay-color": "#1d3557" } },
  {
    selector: "edge",
    style: {
      width: 2,
      "line-color": "#8aa1b4",
      "target-arrow-color": "#8aa1b4",
      "target-arrow-shape": "triangle",
      "curve-style": "bezier",
      label: "data(label)",
      "font-size": 10,
      "text-background-color": "#ffffff",
      "text-background-opacity": 0.85,
      "text-background-padding": 2,
      "text-rotation": "autorotate",
      "min-zoomed-font-size": 7,
    },
  },
  {
    selector: "edge.hot",
    style: { width: 4, "line-color": "#e76f51", "target-arrow-color": "#e76f51", "z-index": 10 },
  },
  { selector: ".faded", style: { opacity: 0.15 } },
];

/** Positions: zones side by side, their subnets stacked, hosts in a grid in each. */
function layout(hosts) {
  const zones = new Map();
  for (const h of hosts) {
    const z = h.zone ?? "";
    const s = h.subnet ?? "";
    if (!zones.has(z)) zones.set(z, new Map());
    const subnets = zones.get(z);
    if (!subnets.has(s)) subnets.set(s, []);
    subnets.get(s).push(h.host);
  }
  const pos = new Map();
  let x0 = 0;
  for (const z of [...zones.keys()].sort()) {
    const subnets = zones.get(z);
    let y = 0;
    let widest = 0;
    for (const s of [...subnets.keys()].sort((a, b) => ipOrder(a, b) || a.localeCompare(b))) {
      const names = subnets.get(s).sort();
      const cols = Math.max(1, Math.ceil(Math.sqrt(names.length * 1.5)));
      names.forEach((n, i) => {
        // Odd columns a little lower: an edge between two hosts of a row does not run
        // through the hosts between them.
        const col = i % cols;
        pos.set(n, { x: x0 + col * 110, y: y + Math.floor(i / cols) * 80 + (col % 2) * 26 });
      });
      widest = Math.max(widest, cols);
      y += Math.ceil(names.length / cols) * 80 + 116;
    }
    x0 += widest * 110 + 140;
  }
  return pos;
}

const zoneId = (z) => `zone:${z ?? ""}`;
const subnetId = (z, s) => `subnet:${z ?? ""}:${s ?? ""}`;
const hostId = (h) => `host:${h}`;
const edgeId = (g, f) => `flow:${g}:${f.from}:${f.to}`;

/** The rate an edge shows: what the sender tunnelled, else what the receiver got. */
const flowRate = (f) => f.sent ?? f.received;

export class Graph {
  constructor(container, { onHost, onGroup, onBackground }) {
    this.cy = cytoscape({
      container,
      style: STYLE,
      layout: { name: "preset" },
      boxSelectionEnabled: false,
      autoungrabify: true,
      textureOnViewport: true,
      hideEdgesOnViewport: true,
    });
    this.hostKey = "";
    this.selectedGroup = null;
    this.cy.on("tap", "node.host", (e) => onHost(e.target.data("host")));
    this.cy.on("tap", "edge", (e) => onGroup(e.target.data("group")));
    this.cy.on("tap", (e) => {
      if (e.target === this.cy) onBackground();
    });
  }

  /** Brings the graph to `view` (a TrafficView), changing only what changed. */
  update(view) {
    const cy = this.cy;
    const hostKey = view.hosts.map((h) => `${h.host}|${h.zone}|${h.subnet}`).sort().join(",");
    const relayout = hostKey !== this.hostKey;
    cy.batch(() => {
      const want = new Set();
      for (const h of view.hosts) {
        const z = h.zone ?? null;
        const zid = zoneId(z);
        const sid = subnetId(z, h.subnet);
        want.add(zid).add(sid);
        if (cy.getElementById(zid).empty()) {
          cy.add({ group: "nodes", data: { id: zid, label: z ? `zone ${z}` : "no zone" }, classes: "zone" });
        }
        if (cy.getElementById(sid).empty()) {
          cy.add({
            group: "nodes",
            data: { id: sid, parent: zid, label: h.subnet ?? "no subnet" },
            classes: "subnet",
          });
        }
        const id = hostId(h.host);
        want.add(id);
        let n = cy.getElementById(id);
        if (n.empty()) {
          n = cy.add({ group: "nodes", data: { id, parent: sid, host: h.host, label: h.host }, classes: "host" });
        } else if (n.data("parent") !== sid) {
          n.move({ parent: sid });
        }
        n.toggleClass("dead", h.state !== "up");
        n.data("state", h.state);
      }
      for (const g of view.groups) {
        for (const f of g.flows) {
          const id = edgeId(g.group, f);
          want.add(id);
          const label = `${g.group} ${shortRate(flowRate(f))}`.trim();
          const e = cy.getElementById(id);
          if (e.empty()) {
            if (cy.getElementById(hostId(f.from)).empty() || cy.getElementById(hostId(f.to)).empty()) continue;
            cy.add({
              group: "edges",
              data: { id, source: hostId(f.from), target: hostId(f.to), group: g.group, label, bps: flowRate(f)?.bits_per_s ?? null },
            });
          } else if (e.data("label") !== label) {
            e.data({ label, bps: flowRate(f)?.bits_per_s ?? null });
          }
        }
      }
      cy.elements().forEach((el) => {
        if (!want.has(el.id())) el.remove();
      });
      if (relayout) {
        const pos = layout(view.hosts);
        cy.nodes(".host").forEach((n) => {
          const p = pos.get(n.data("host"));
          if (p) n.position(p);
        });
      }
      this.view = view;
      this.paintSelection();
    });
    if (relayout) {
      this.hostKey = hostKey;
      cy.fit(undefined, 30);
    }
  }

  /** Highlights `group`'s tree (its senders, receivers and flows), or none for null. */
  selectGroup(group) {
    this.selectedGroup = group;
    this.cy.batch(() => this.paintSelection());
  }

  paintSelection() {
    const cy = this.cy;
    const g = this.selectedGroup && this.view?.groups.find((x) => x.group === this.selectedGroup);
    cy.elements().removeClass("hot faded sender receiver");
    if (!this.selectedGroup) return;
    const senders = new Set((g?.senders ?? []).map((s) => s.host));
    const receivers = new Set((g?.receivers ?? []).map((r) => r.host));
    cy.nodes(".host").forEach((n) => {
      const h = n.data("host");
      if (senders.has(h)) n.addClass("sender");
      if (receivers.has(h)) n.addClass("receiver");
      if (!senders.has(h) && !receivers.has(h)) n.addClass("faded");
    });
    cy.edges().forEach((e) => e.addClass(e.data("group") === this.selectedGroup ? "hot" : "faded"));
  }

  /** The label of the edge of `group` from `from` to `to` (tests read it), or null. */
  edgeLabel(group, from, to) {
    const e = this.cy.getElementById(edgeId(group, { from, to }));
    return e.empty() ? null : e.data("label");
  }
}
