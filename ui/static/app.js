// edged dashboard: plain JavaScript over the /v1 API; uPlot draws charts.
"use strict";

const state = { token: localStorage.getItem("edged-token") || "", sensor: null, chart: null, chartDraws: 0, sparks: {}, watch: null };
// A hook for tests and the curious: the main chart and what it shows.
window.edged = state;

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...kids) => {
  const e = document.createElement(tag);
  const { dataset, ...rest } = props;
  Object.assign(e, rest);
  Object.assign(e.dataset, dataset || {});
  for (const k of kids) e.append(k);
  return e;
};

function headers() {
  return state.token ? { Authorization: "Bearer " + state.token } : {};
}

async function api(path) {
  const r = await fetch(path, { headers: headers() });
  if (r.status === 401) {
    $("token-box").hidden = false;
    throw new Error("token required");
  }
  if (!r.ok) throw Object.assign(new Error(path + ": " + r.status), { status: r.status });
  return r.json();
}

const fmtTime = (t) => (t ? new Date(t).toLocaleTimeString() : "—");
const since = (t) => {
  if (!t) return "never";
  const s = Math.round((Date.now() - new Date(t).getTime()) / 1000);
  return s < 60 ? s + " s ago" : Math.round(s / 60) + " min ago";
};
const fmtNum = (v) => Number(v).toLocaleString(undefined, { maximumFractionDigits: 3 });
const mib = (b) => (b / 1048576).toFixed(1) + " MiB";

function fill(dl, rows) {
  dl.replaceChildren(...rows.flatMap(([k, v, cls]) => [el("dt", { textContent: k }), el("dd", { textContent: v, className: cls || "" })]));
}

async function refreshStatus() {
  let healthy = false;
  try {
    const r = await fetch("/readyz");
    healthy = r.ok;
  } catch (e) { /* shown as down */ }
  $("health").textContent = healthy ? "ready" : "down";
  $("health").className = "badge " + (healthy ? "ok" : "bad");
  const s = await api("/v1/status");
  $("name").textContent = s.node.name + (s.node.fleet ? " · " + s.node.fleet : "");
  document.title = "edged " + s.node.name;
  const st = s.store;
  fill($("node"), [
    ["version", s.version],
    ["replica", s.node.replica],
    ["peer ID", s.node.peer_id],
    ["uptime", Math.round(s.uptime_seconds) + " s"],
    ["store", mib(st.bytes) + (st.budget_bytes ? " of " + mib(st.budget_bytes) + " (" + Math.round((100 * st.bytes) / st.budget_bytes) + "%)" : " (no budget)")],
    ["readings", mib(st.reading_bytes)],
    ["clock", s.clock.synced ? "synchronised" : "not synchronised", s.clock.synced ? "ok" : "warn"],
  ]);
  const u = s.uplink;
  fill($("uplink"), u ? [
    ["link", u.connected ? "connected" : "disconnected", u.connected ? "ok" : "bad"],
    ["backlog", u.backlog + " dots, " + u.in_flight + " batches in flight"],
    ["raw readings backlog", u.readings_backlog + " dots (they go after the state)"],
    ["sent", u.batches + " batches, " + mib(u.wire_bytes)],
    ["last ack", since(u.last_ack_at)],
    ["paused", u.paused || "no", u.paused ? "warn" : ""],
    ["shed readings", String(u.shed_readings)],
  ] : [["link", "off (cloud.url is empty)"]]);
  const sh = s.shedding;
  fill($("shedding"), sh ? [
    ["state", sh.state, sh.state === "normal" ? "ok" : "warn"],
    ["in flight", sh.in_flight + " of " + sh.limit],
    ["admission rate", sh.rate ? Math.round(sh.rate) + " requests/s (CPU queue " + sh.queue_wait_ms.toFixed(1) + " ms)" : "none", sh.rate ? "warn" : ""],
    ["memory", Math.round(100 * sh.memory_ratio) + "% of the limit"],
    ...["critical", "normal", "bulk"].map((c) => {
      const k = sh.classes[c];
      const refused = Object.values(k.refused || {}).reduce((a, b) => a + b, 0);
      return [c, (k.degraded ? "shed (" + k.reason + "), " : "") + k.admitted + " taken, " + k.downsampled + " downsampled, " + k.delayed + " delayed, " + refused + " refused", k.degraded ? "warn" : ""];
    }),
  ] : [["state", "off"]]);
  const peers = Object.entries(s.peers || {}).sort();
  $("peers").tBodies[0].replaceChildren(...(peers.length ? peers.map(([id, p]) => el("tr", { dataset: { peer: id } },
    el("td", {}, el("code", { textContent: id.slice(-12) })),
    el("td", { textContent: p.state || "?", className: { alive: "ok", suspect: "warn", dead: "bad" }[p.state] || "" }),
    el("td", { textContent: since(p.last_message) }),
    el("td", { textContent: String(p.lag_deltas ?? 0) }),
    el("td", {}, el("code", { textContent: p.addr || "" })))) : [el("tr", {}, el("td", { colSpan: 5, textContent: s.peers ? "no peers" : "replication is off" }))]));
}

async function refreshFleet() {
  let doc;
  try {
    doc = await api("/v1/nodes");
  } catch (e) {
    if (e.status === 404) return; // a node, not an aggregator
    throw e;
  }
  $("fleet").hidden = false;
  state.nodes = doc.nodes;
  $("nodes").tBodies[0].replaceChildren(...doc.nodes.map((n) => el("tr", {},
    el("td", { textContent: n.name || n.replica }),
    el("td", { textContent: n.fleet }),
    el("td", { textContent: n.online ? "online" : "offline", className: n.online ? "ok" : "bad" }),
    el("td", { textContent: since(n.last_seen) }),
    el("td", { textContent: String(n.lag) }),
    el("td", { textContent: String(n.batches) }),
    el("td", { textContent: String(n.refused), className: n.refused ? "warn" : "" }),
    el("td", { textContent: String(n.shed_readings) }))));
}

function seriesPath(id, from, step, agg) {
  const q = new URLSearchParams({ from });
  if (step) { q.set("step", step); q.set("agg", agg); }
  return "/v1/series/" + encodeURIComponent(id) + "?" + q;
}

function toColumns(points) {
  return [points.map((p) => new Date(p.ts).getTime() / 1000), points.map((p) => p.value)];
}

async function refreshSensors() {
  const doc = await api("/v1/sensors");
  const list = $("sensors");
  for (const s of doc.sensors) {
    let li = list.querySelector(`[data-sensor="${CSS.escape(s.sensor)}"]`);
    if (!li) {
      const btn = el("button", { type: "button" });
      btn.setAttribute("aria-pressed", "false");
      btn.addEventListener("click", () => selectSensor(s.sensor));
      li = el("li", { dataset: { sensor: s.sensor } }, btn);
      list.append(li);
      btn.append(el("strong", { textContent: s.sensor }), el("div", { className: "latest" }), el("div", { className: "spark" }));
    }
    li.querySelector(".latest").textContent = fmtNum(s.latest.value) + (s.unit ? " " + s.unit : "") + " · " + fmtTime(s.latest.ts);
    const pts = await api(seriesPath(s.sensor, "-1h", "1m", "avg"));
    const data = toColumns(pts.points);
    const spark = state.sparks[s.sensor];
    if (spark) spark.setData(data);
    else state.sparks[s.sensor] = new uPlot({ width: 150, height: 36, legend: { show: false }, cursor: { show: false }, axes: [{ show: false }, { show: false }],
      scales: { x: { time: true } }, series: [{}, { stroke: "#0969da", width: 1 }] }, data, li.querySelector(".spark"));
  }
}

async function selectSensor(id) {
  state.sensor = id;
  for (const b of document.querySelectorAll("#sensors button")) b.setAttribute("aria-pressed", String(b.parentElement.dataset.sensor === id));
  $("chart-box").hidden = false;
  $("chart-title").textContent = id;
  await drawChart();
}

// palette colours the nodes' series on an aggregator's chart.
const palette = ["#0969da", "#cf222e", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#0550ae", "#57606a"];

async function drawChart() {
  if (!state.sensor) return;
  // Draws overlap when the sensor or the form changes before an answer
  // comes; only the newest may draw, or a slow answer to an older one
  // would replace the chart asked for last.
  const draw = ++state.chartDraws;
  const path = seriesPath(state.sensor, $("range").value, $("step").value, $("agg").value);
  let data, series;
  if (state.nodes && state.nodes.length) {
    // An aggregator: the sensor of each node, on one chart.
    const per = await Promise.all(state.nodes.map(async (n) => [n, (await api(path + "&node=" + n.replica)).points]));
    const found = per.filter(([, pts]) => pts.length > 0);
    data = found.length ? uPlot.join(found.map(([, pts]) => toColumns(pts))) : [[], []];
    series = [{}, ...found.map(([n], i) => ({ label: n.name || n.replica, stroke: palette[i % palette.length], width: 1.5, spanGaps: true }))];
    if (!found.length) series.push({ label: state.sensor });
    if (draw !== state.chartDraws) return;
    state.chartNodes = found.map(([n]) => n.replica);
  } else {
    const doc = await api(path);
    if (draw !== state.chartDraws) return;
    data = toColumns(doc.points);
    series = [{}, { label: state.sensor, stroke: palette[0], width: 1.5, points: { show: doc.points.length < 200 } }];
  }
  state.chartPath = path;
  state.chartData = data;
  const width = Math.max(280, $("chart").clientWidth || 600);
  if (state.chart) state.chart.destroy();
  state.chart = new uPlot({ width, height: 260, scales: { x: { time: true } }, series }, data, $("chart"));
}

async function showKeys() {
  const ns = $("ns").value.trim() || "app";
  const doc = await api("/v1/kv/" + encodeURIComponent(ns) + "?limit=200");
  const body = $("keys").tBodies[0];
  body.replaceChildren(...doc.keys.map(keyRow));
  watchKeys(ns);
}

function keyRow(d) {
  return el("tr", { dataset: { key: d.key } }, el("td", { textContent: d.key }), el("td", { textContent: d.type }),
    el("td", {}, el("code", { textContent: JSON.stringify(d.value) })));
}

// watchKeys follows /v1/watch (server-sent events) with fetch, which, unlike
// EventSource, can send the token.
async function watchKeys(ns) {
  if (state.watch) state.watch.abort();
  const ctl = new AbortController();
  state.watch = ctl;
  try {
    const r = await fetch("/v1/watch?prefix=" + encodeURIComponent(ns + "/"), { headers: headers(), signal: ctl.signal });
    const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const frame = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const ev = /^event: (.*)$/m.exec(frame)?.[1];
        const data = /^data: (.*)$/m.exec(frame)?.[1];
        if (!data) continue;
        const d = JSON.parse(data);
        const old = $("keys").querySelector(`tr[data-key="${CSS.escape(d.key)}"]`);
        if (ev === "delete") old?.remove();
        else if (ev === "put") old ? old.replaceWith(keyRow(d)) : $("keys").tBodies[0].append(keyRow(d));
      }
    }
  } catch (e) {
    if (e.name !== "AbortError") setTimeout(() => watchKeys(ns), 2000);
  }
}

function every(ms, fn) {
  const run = () => fn().catch((e) => console.warn("edged:", e.message));
  run();
  setInterval(run, ms);
}

$("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  state.token = $("token").value;
  localStorage.setItem("edged-token", state.token);
  location.reload();
});
$("keys-form").addEventListener("submit", (e) => { e.preventDefault(); showKeys().catch((err) => console.warn("edged:", err.message)); });
$("chart-form").addEventListener("change", () => drawChart().catch((err) => console.warn("edged:", err.message)));

every(2000, refreshStatus);
every(5000, refreshFleet);
every(10000, refreshSensors);
showKeys().catch((e) => console.warn("edged:", e.message));
