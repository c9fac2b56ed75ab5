// The web view: signs in, follows one domain's traffic view (server-sent events over
// fetch) and draws it; the group table is fetched again whenever the membership's
// revision or a filter changes.

import * as api from "./api.js";
import * as fmt from "./format.js";
import { Graph } from "./graph.js";
import * as panels from "./panels.js";
import { watch } from "./sse.js";

const $ = (id) => document.getElementById(id);

/** Seconds without an event before the view is marked stale (events come every second). */
const STALE_MS = 3000;

const state = {
  domain: null,
  view: null,
  selectedHost: null,
  selectedGroup: null,
  stream: null,
  lastEvent: 0,
  revision: null,
  tableQuery: null,
  tableBusy: false,
  tableAgain: false,
  rendered: 0,
  /** The last updates' durations (ms), with the revision and group count they drew. */
  updates: [],
};

let graph = null;

function setStatus(kind, text) {
  const s = $("status");
  s.dataset.state = kind;
  s.textContent = text;
}

function showLogin(message) {
  $("login").hidden = false;
  $("app").hidden = true;
  $("logout").hidden = true;
  $("login-error").textContent = message ?? "";
  $("token").focus();
}

function signOut(message) {
  api.clearToken();
  state.stream?.close();
  state.stream = null;
  setStatus("idle", "not connected");
  showLogin(message);
}

async function start() {
  performance.mark("mcgate:data-start");
  $("login").hidden = true;
  $("app").hidden = false;
  $("logout").hidden = false;
  if (!graph) {
    graph = new Graph($("graph"), {
      onHost: (h) => select({ host: h }),
      onGroup: (g) => select({ group: g }),
      onBackground: () => select({}),
    });
    window.mcgate = { graph, state };
  }
  let domains;
  try {
    domains = await api.get("/v1/domains");
  } catch (e) {
    if (e.status === 401) return signOut("The controller does not know this token (expired or revoked?).");
    setStatus("error", `cannot list the domains: ${e.message}`);
    return;
  }
  const select_ = $("domain");
  select_.replaceChildren(...domains.map((d) => new Option(d.name, d.name)));
  select_.disabled = domains.length === 0;
  if (!domains.length) {
    setStatus("idle", "no domain yet");
    return;
  }
  const wanted = new URLSearchParams(location.hash.slice(1)).get("domain");
  const name = domains.some((d) => d.name === wanted) ? wanted : domains[0].name;
  select_.value = name;
  openDomain(domains.find((d) => d.name === name));
}

function openDomain(domain) {
  state.stream?.close();
  state.domain = domain.name;
  state.view = null;
  state.revision = null;
  state.selectedHost = null;
  state.selectedGroup = null;
  graph.selectGroup(null);
  $("subnets").textContent = domain.subnets?.length ? `subnets ${domain.subnets.join(", ")}` : "";
  const filters = $("filters");
  if (!filters.elements.domain.value || filters.elements.domain.dataset.auto === "1") {
    filters.elements.domain.value = domain.name;
    filters.elements.domain.dataset.auto = "1";
  }
  history.replaceState(null, "", `#domain=${encodeURIComponent(domain.name)}`);
  const path = `/v1/domains/${encodeURIComponent(domain.name)}/traffic?watch=true`;
  state.stream = watch(path, {
    onEvent: (name, data) => onEvent(domain.name, name, data),
    onState: (s, e) => {
      if (s === "refused" && e?.status === 401) signOut("The controller no longer accepts this token.");
      else if (s === "refused") setStatus("error", e?.message ?? "refused");
      else if (s === "live") setStatus("live", "live");
      else if (s === "retrying") setStatus("retrying", "reconnecting…");
      else setStatus("connecting", "connecting…");
    },
  });
}

function onEvent(domain, name, data) {
  if (domain !== state.domain) return;
  const first = state.rendered === 0;
  performance.mark("mcgate:update-start");
  if (first) performance.mark("mcgate:first-event");
  if (name === "error") {
    let text = "the domain is gone";
    try {
      text = JSON.parse(data).error ?? text;
    } catch {
      // Keep the default.
    }
    setStatus("error", text);
    return;
  }
  if (name !== "traffic") return;
  let view;
  try {
    view = JSON.parse(data);
  } catch {
    setStatus("error", "the controller sent a view that is not JSON");
    return;
  }
  state.lastEvent = performance.now();
  if ($("status").dataset.state === "stale") setStatus("live", "live");
  render(view);
  performance.mark("mcgate:update-end");
  if (first) {
    // The page's own work: from the first view received to drawn. From the start, the
    // wait for the controller's answers is included too.
    performance.measure("mcgate:first-render", "mcgate:first-event", "mcgate:update-end");
    performance.measure("mcgate:first-render-from-start", "mcgate:data-start", "mcgate:update-end");
    // Drawn on screen: the frame after the one that took the update.
    requestAnimationFrame(() => requestAnimationFrame(() => performance.mark("mcgate:first-paint")));
  } else {
    const m = performance.measure("mcgate:update", "mcgate:update-start", "mcgate:update-end");
    state.updates.push({ ms: m.duration, revision: view.revision, groups: view.groups.length });
    if (state.updates.length > 200) state.updates.shift();
  }
  state.rendered += 1;
  document.body.dataset.rendered = String(state.rendered);
  if (view.revision !== state.revision) {
    state.revision = view.revision;
    refreshTable();
  }
}

function render(view) {
  state.view = view;
  const t0 = performance.now();
  graph.update(view);
  performance.measure("mcgate:graph", { start: t0 });
  $("host-count").textContent = `(${panels.hosts($("hosts").tBodies[0], view, state.selectedHost)})`;
  $("group-count").textContent = `(${panels.groups($("groups").tBodies[0], view, state.selectedGroup)})`;
  $("no-drops").hidden = panels.drops($("drops").tBodies[0], view) > 0;
  renderDetails();
}

function renderDetails() {
  const box = $("details");
  const v = state.view;
  if (state.selectedHost && v) {
    const h = v.hosts.find((x) => x.host === state.selectedHost);
    if (h) return panels.hostDetails(box, h);
  }
  if (state.selectedGroup && v) {
    return panels.groupDetails(box, v.groups.find((x) => x.group === state.selectedGroup), state.selectedGroup);
  }
  const p = document.createElement("p");
  p.className = "muted";
  p.textContent = "Click a host or a group.";
  const h2 = document.createElement("h2");
  h2.textContent = "Details";
  box.replaceChildren(h2, p);
}

function select({ host = null, group = null }) {
  state.selectedHost = host;
  state.selectedGroup = group;
  graph.selectGroup(group);
  if (state.view) render(state.view);
}

function tableQuery() {
  const f = $("filters").elements;
  return api.withQuery("/v1/groups", {
    domain: f.domain.value,
    group: f.group.value,
    source: f.source.value,
    host: f.host.value,
  });
}

/** Fetches the group table once more (one request at a time; the latest query wins). */
async function refreshTable() {
  if (state.tableBusy) {
    state.tableAgain = true;
    return;
  }
  state.tableBusy = true;
  try {
    do {
      state.tableAgain = false;
      const q = tableQuery();
      try {
        const rows = await api.get(q);
        if (q !== tableQuery()) continue;
        rows.sort((a, b) => a.domain.localeCompare(b.domain) || fmt.ipOrder(a.group, b.group) || a.host.localeCompare(b.host));
        const more = panels.groupTable($("group-table").tBodies[0], rows);
        $("table-count").textContent = more ? `(${rows.length} rows, first ${panels.MAX_ROWS} shown: narrow the filters)` : `(${rows.length})`;
        $("filter-error").textContent = "";
      } catch (e) {
        if (e.status === 401) return signOut("The controller no longer accepts this token.");
        $("filter-error").textContent = e.message;
      }
    } while (state.tableAgain);
  } finally {
    state.tableBusy = false;
  }
}

function wire() {
  $("login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      api.setToken($("token").value);
    } catch (err) {
      $("login-error").textContent = err.message;
      return;
    }
    $("token").value = "";
    start();
  });
  $("logout").addEventListener("click", () => signOut());
  $("domain").addEventListener("change", async (e) => {
    try {
      openDomain(await api.get(`/v1/domains/${encodeURIComponent(e.target.value)}`));
    } catch (err) {
      setStatus("error", err.message);
    }
  });
  $("groups").tBodies[0].addEventListener("click", (e) => {
    const tr = e.target.closest("tr[data-group]");
    if (tr) select({ group: state.selectedGroup === tr.dataset.group ? null : tr.dataset.group });
  });
  $("hosts").tBodies[0].addEventListener("click", (e) => {
    const tr = e.target.closest("tr[data-host]");
    if (tr) select({ host: tr.dataset.host });
  });
  let timer = null;
  $("filters").addEventListener("input", (e) => {
    if (e.target.name === "domain") e.target.dataset.auto = "0";
    clearTimeout(timer);
    timer = setTimeout(refreshTable, 250);
  });
  $("filters").addEventListener("submit", (e) => {
    e.preventDefault();
    refreshTable();
  });
  setInterval(() => {
    if (state.stream && state.lastEvent && performance.now() - state.lastEvent > STALE_MS && $("status").dataset.state === "live") {
      setStatus("stale", "no news for over 3 s");
    }
  }, 1000);
}

wire();
if (api.token()) start();
else showLogin();
