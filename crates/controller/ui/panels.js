// The panels beside the graph: tables kept in step with the view, row by row, so an
// update touches only the cells that changed. Text only ever goes in as textContent.

import * as fmt from "./format.js";

/** The most rows the group table draws (the rest is counted, not drawn). */
export const MAX_ROWS = 500;
/** The most rows of the hosts and groups tables (a domain's hosts, its groups). */
const MAX_LIST = 5000;

/**
 * Makes `tbody` show `items` in order: one row per key(item), cells(item) its texts;
 * rows are reused by key and a cell is written only when its text changed.
 * `decorate(tr, item)` may set attributes. Returns how many items were left out.
 */
export function syncRows(tbody, items, key, cells, decorate, limit = MAX_ROWS) {
  // Each row remembers its texts (rowTexts): an unchanged row costs no DOM access.
  const old = new Map();
  for (const tr of tbody.rows) old.set(tr.dataset.key, tr);
  const shown = items.length > limit ? items.slice(0, limit) : items;
  let at = tbody.firstElementChild;
  for (const item of shown) {
    const k = key(item);
    let tr = old.get(k);
    const texts = cells(item).map(String);
    if (!tr) {
      tr = document.createElement("tr");
      tr.dataset.key = k;
      for (let i = 0; i < texts.length; i += 1) tr.appendChild(document.createElement("td"));
      rowTexts.set(tr, []);
    }
    old.delete(k);
    const before = rowTexts.get(tr);
    for (let i = 0; i < texts.length; i += 1) {
      if (before[i] !== texts[i]) tr.cells[i].textContent = texts[i];
    }
    rowTexts.set(tr, texts);
    if (decorate) decorate(tr, item);
    if (tr !== at) tbody.insertBefore(tr, at);
    else at = at.nextElementSibling;
  }
  for (const tr of old.values()) tr.remove();
  return items.length - shown.length;
}

/** The texts each row shows, by row. */
const rowTexts = new WeakMap();

function setAttr(el, name, value) {
  if (el.getAttribute(name) !== value) el.setAttribute(name, value);
}

function setClass(el, name, on) {
  if (el.classList.contains(name) !== on) el.classList.toggle(name, on);
}

/** The hosts table. */
export function hosts(tbody, view, selectedHost) {
  const list = [...view.hosts].sort((a, b) => a.host.localeCompare(b.host));
  syncRows(
    tbody,
    list,
    (h) => h.host,
    (h) => [h.host, h.zone ?? "", h.subnet ?? "", h.state, h.dataplane ?? "", fmt.rate(h.sent), fmt.rate(h.delivered)],
    (tr, h) => {
      setAttr(tr, "data-host", h.host);
      setAttr(tr, "data-state", h.state);
      setClass(tr, "dead", h.state !== "up");
      setClass(tr, "selected", h.host === selectedHost);
    },
    MAX_LIST,
  );
  return list.length;
}

/** The groups list. */
export function groups(tbody, view, selectedGroup) {
  const list = fmt.sortByIp(view.groups, (g) => g.group);
  syncRows(
    tbody,
    list,
    (g) => g.group,
    (g) => [
      g.group,
      g.senders.map((s) => s.host).join(" "),
      g.receivers.map((r) => r.host).join(" "),
      g.flows.length,
      fmt.bits(fmt.sumBits(g.senders)),
      fmt.dropTotal(g.drops) ? fmt.dropTotal(g.drops).toFixed(1) : "",
    ],
    (tr, g) => {
      setAttr(tr, "data-group", g.group);
      setClass(tr, "selected", g.group === selectedGroup);
    },
    MAX_LIST,
  );
  return list.length;
}

/** The drops table: per host and reason, then per group. */
export function drops(tbody, view) {
  const rows = [];
  for (const h of view.hosts) {
    for (const [reason, v] of Object.entries(h.drops ?? {})) {
      if (v > 0) rows.push({ who: h.host, reason, v });
    }
  }
  for (const g of view.groups) {
    for (const [reason, v] of Object.entries(g.drops ?? {})) {
      if (v > 0) rows.push({ who: `group ${g.group}`, reason, v });
    }
  }
  rows.sort((a, b) => b.v - a.v);
  syncRows(
    tbody,
    rows,
    (r) => `${r.who}|${r.reason}`,
    (r) => [r.who, r.reason, r.v.toFixed(1)],
  );
  return rows.length;
}

/** The group table (GET /v1/groups rows). */
export function groupTable(tbody, rows) {
  return syncRows(
    tbody,
    rows,
    (r) => `${r.domain}|${r.group}|${r.host}|${r.interface ?? ""}|${r.address ?? ""}`,
    (r) => [
      r.domain,
      r.group,
      r.host,
      r.subnet ?? "",
      r.interface ?? "",
      r.address ?? "",
      r.member ? r.member_type ?? "yes" : "",
      r.source ? r.source_type ?? "yes" : "",
      fmt.filter(r.source_filter),
    ],
  );
}

function el(tag, text, attrs = {}) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = String(text);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

function table(head, rows, attrs) {
  const t = el("table", undefined, attrs);
  const tr = el("tr");
  for (const h of head) tr.appendChild(el("th", h));
  t.appendChild(el("thead")).appendChild(tr);
  const body = t.appendChild(el("tbody"));
  for (const r of rows) {
    const row = body.appendChild(el("tr", undefined, r.attrs ?? {}));
    for (const c of r.cells) row.appendChild(el("td", c));
  }
  return t;
}

/** The details of a host: its agent, links, querier state and IGMP version. */
export function hostDetails(box, h) {
  box.replaceChildren(el("h2", `Host ${h.host}`));
  if (!h.host) return;
  const dl = box.appendChild(el("dl"));
  const add = (k, v) => {
    dl.appendChild(el("dt", k));
    dl.appendChild(el("dd", v));
  };
  add("agent", h.state === "up" ? "up" : "lease expired");
  add("zone", h.zone ?? "–");
  add("subnet", h.subnet ?? "–");
  add("data plane", h.dataplane ?? "–");
  add("last report", h.report_age_ms === null || h.report_age_ms === undefined ? "none" : `${(h.report_age_ms / 1000).toFixed(1)} s ago`);
  add("tunnel out / in", `${fmt.rate(h.tunnel_tx)} / ${fmt.rate(h.tunnel_rx)}`);
  if (h.missing?.length) add("not counted", h.missing.join(", "));
  box.appendChild(el("h3", "Links"));
  if (!h.links?.length) {
    box.appendChild(el("p", "No links reported.", { class: "muted" }));
    return;
  }
  box.appendChild(
    table(
      ["link", "address", "querier", "IGMP", "groups"],
      h.links.map((l) => ({
        attrs: { "data-link": l.name },
        cells: [l.name, l.address ?? "", l.querier ? "this agent" : "another", l.igmp_version ? `v${l.igmp_version}` : "off", l.groups],
      })),
      { class: "links" },
    ),
  );
}

/** The details of a group: its senders, receivers and flows with their rates. */
export function groupDetails(box, g, group) {
  box.replaceChildren(el("h2", `Group ${group}`));
  if (!g) {
    box.appendChild(el("p", "No members or senders any more.", { class: "muted" }));
    return;
  }
  box.appendChild(el("h3", "Senders"));
  box.appendChild(table(["host", "rate"], g.senders.map((s) => ({ cells: [s.host, fmt.rate(s.rate)] }))));
  box.appendChild(el("h3", "Receivers"));
  box.appendChild(table(["host", "delivered"], g.receivers.map((r) => ({ cells: [r.host, fmt.rate(r.rate)] }))));
  box.appendChild(el("h3", "Flows"));
  box.appendChild(
    table(
      ["from", "to", "sent", "received", "lost pps"],
      g.flows.map((f) => ({
        attrs: { "data-flow": `${f.from}>${f.to}` },
        cells: [f.from, f.to, fmt.rate(f.sent), fmt.rate(f.received), f.lost_pps === null ? "–" : f.lost_pps.toFixed(1)],
      })),
    ),
  );
}
