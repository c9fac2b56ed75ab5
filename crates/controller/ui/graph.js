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
    selector: "edge.many",
    style: { "curve-style": "haystack", "haystack-radius": 0, width: 1, label: "", opacity: 0.5 },
  },
  {
    selector: "edge.many.hot",
    style: { label: "data(label)", opacity: 1 },
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

/** Past this many edges they are drawn straight, labelled only when their group is selected. */
const MANY_EDGES = 300;

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
    const pos = relayout ? layout(view.hosts) : null;
    // New elements are added in one call, with their positions: adding one at a time
    // costs a style pass each.
    const added = [];
    const want = new Set();
    // Many edges: straight lines, and labels only on the selected group's.
    const many = view.groups.reduce((n, g) => n + g.flows.length, 0) > MANY_EDGES;
    cy.batch(() => {
      if (many !== this.many) {
        this.many = many;
        cy.edges().toggleClass("many", many);
      }
      for (const h of view.hosts) {
        const z = h.zone ?? null;
        const zid = zoneId(z);
        const sid = subnetId(z, h.subnet);
        if (!want.has(zid)) {
          want.add(zid);
          if (cy.getElementById(zid).empty()) {
            added.push({ group: "nodes", data: { id: zid, label: z ? `zone ${z}` : "no zone" }, classes: "zone" });
          }
        }
        if (!want.has(sid)) {
          want.add(sid);
          if (cy.getElementById(sid).empty()) {
            added.push({ group: "nodes", data: { id: sid, parent: zid, label: h.subnet ?? "no subnet" }, classes: "subnet" });
          }
        }
        const id = hostId(h.host);
        want.add(id);
        const dead = h.state !== "up";
        const n = cy.getElementById(id);
        if (n.empty()) {
          added.push({
            group: "nodes",
            data: { id, parent: sid, host: h.host, label: h.host, state: h.state },
            classes: dead ? "host dead" : "host",
            position: pos?.get(h.host) ?? { x: 0, y: 0 },
          });
          continue;
        }
        if (n.data("parent") !== sid) n.move({ parent: sid });
        if (n.data("state") !== h.state) {
          n.data("state", h.state);
          n.toggleClass("dead", dead);
        }
      }
      for (const g of view.groups) {
        for (const f of g.flows) {
          const id = edgeId(g.group, f);
          want.add(id);
          const r = flowRate(f);
          const label = `${g.group} ${shortRate(r)}`.trim();
          const e = cy.getElementById(id);
          if (e.empty()) {
            added.push({
              group: "edges",
              data: { id, source: hostId(f.from), target: hostId(f.to), group: g.group, label, bps: r?.bits_per_s ?? null },
              classes: many ? "many" : "",
            });
          } else if (e.data("label") !== label) {
            e.data({ label, bps: r?.bits_per_s ?? null });
          }
        }
      }

      const gone = cy.elements().filter((el) => !want.has(el.id()));
      if (gone.nonempty()) cy.remove(gone);
      // Edges whose hosts the view does not list are left out.
      const ok = added.filter((el) => el.group === "nodes" || (want.has(el.data.source) && want.has(el.data.target)));
      if (ok.length) cy.add(ok);
      // Hosts added just now already have their positions.
      if (relayout && this.hostKey !== "") {
        cy.nodes(".host").forEach((n) => {
          const p = pos.get(n.data("host"));
          if (p) n.position(p);
        });
      }
      
      this.view = view;
      this.paintSelection(false);
    });
    if (relayout) {
      this.hostKey = hostKey;
      this.fit(pos);
    }
  }

  /**
   * Shows every host: the viewport from the computed positions (Cytoscape's fit()
   * measures every element, thousands of labelled edges included, which costs more
   * than the rest of a first render).
   */
  fit(pos) {
    let [x1, y1, x2, y2] = [Infinity, Infinity, -Infinity, -Infinity];
    for (const p of pos.values()) {
      x1 = Math.min(x1, p.x);
      y1 = Math.min(y1, p.y);
      x2 = Math.max(x2, p.x);
      y2 = Math.max(y2, p.y);
    }
    if (x1 === Infinity) return;
    // Room for the subnet and zone boxes and their labels around the hosts.
    x1 -= 90;
    x2 += 90;
    y1 -= 110;
    y2 += 80;
    const w = this.cy.width();
    const h = this.cy.height();
    const zoom = Math.min(w / (x2 - x1), h / (y2 - y1), 1.5);
    this.cy.viewport({ zoom, pan: { x: (w - zoom * (x1 + x2)) / 2, y: (h - zoom * (y1 + y2)) / 2 } });
  }

  /** Highlights `group`'s tree (its senders, receivers and flows), or none for null. */
  selectGroup(group) {
    const changed = group !== this.selectedGroup;
    this.selectedGroup = group;
    this.cy.batch(() => this.paintSelection(changed));
  }

  /** Paints the selected group's tree; `changed`: the selection itself changed. */
  paintSelection(changed) {
    const cy = this.cy;
    if (!this.selectedGroup && !changed) return;
    const g = this.selectedGroup && this.view?.groups.find((x) => x.group === this.selectedGroup);
    cy.elements(".hot, .faded, .sender, .receiver").removeClass("hot faded sender receiver");
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
