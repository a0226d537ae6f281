// The netz monitor page: renders /api/live updates (server-sent events).
"use strict";

const $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const st = (id) => "S" + id;

const state = { samples: [], last: null, selected: null, log: [], intervalMs: 500 };
const MAX_SAMPLES = 600;
const MAX_LOG = 500;

function rate(b) {
  if (b >= 1e6) return (b / 1e6).toFixed(1) + " MB/s";
  if (b >= 1e3) return (b / 1e3).toFixed(1) + " kB/s";
  return b.toFixed(0) + " B/s";
}
function ago(ms) {
  if (ms === null || ms === undefined) return "-";
  if (ms < 1000) return ms + " ms ago";
  if (ms < 120000) return (ms / 1000).toFixed(1) + " s ago";
  return Math.round(ms / 60000) + " min ago";
}
function clock(ms) {
  const s = Math.floor(ms / 1000);
  return String(Math.floor(s / 60)).padStart(2, "0") + ":" + String(s % 60).padStart(2, "0") + "." + String(ms % 1000).padStart(3, "0").slice(0, 1);
}

// ---- the session: header, graph, links, stations

function renderSession(s, objectCount) {
  $("self-id").textContent = s.self_id ? st(s.self_id) : "-";
  $("self-addr").textContent = s.process_type + " " + s.self_addr;
  $("session-master").textContent = s.session_master ? st(s.session_master) : "-";
  $("station-count").textContent = s.stations.length;
  $("object-count").textContent = objectCount;
  $("topology").textContent = s.topology === "client_server" ? "client-server" : "mesh";
  renderGraph(s);
  $("links").querySelector("tbody").innerHTML = s.links.map((l) =>
    `<tr data-peer="${l.peer}"><td>${st(l.from)} → ${st(l.peer)}</td><td class="num">${l.rtt_samples ? l.rtt_ms.toFixed(1) + " ms" : "-"}</td>` +
    `<td class="num">${l.loss_pct.toFixed(1)}%</td><td class="num">${rate(l.bytes_in_per_s)}</td><td class="num">${rate(l.bytes_out_per_s)}</td>` +
    `<td class="num" title="${l.bytes_in_flight} B in flight, ${l.congestion_events} reductions">${l.cwnd ? (l.cwnd / 1024).toFixed(1) + " KiB" : "-"}</td>` +
    `<td class="num">${l.queued_bytes} B</td><td class="num">${l.silent ? "silent" : ago(l.last_heard_ms)}</td></tr>`).join("") ||
    `<tr><td colspan="8" class="muted">no links</td></tr>`;
  $("stations").querySelector("tbody").innerHTML = s.stations.map((x) =>
    `<tr data-station="${x.id}"><td>${st(x.id)}${x.is_session_master ? " ★" : ""}${x.is_self ? " (this)" : ""}</td><td>${x.process_type}</td>` +
    `<td>${esc(x.name)}</td><td>${esc(x.addr)}</td><td>${x.relay ? st(x.relay) : "-"}</td></tr>`).join("");
}

function renderGraph(s) {
  const W = 520, H = 330;
  const n = s.stations.length;
  const pos = {};
  const kinds = new Set(s.stations.map((x) => x.process_type));
  if (s.topology === "client_server" || kinds.size > 1) {
    // Layers: tools on top, servers in the middle, clients below.
    const rows = [["tool", 45], ["server", 150], ["client", 265], ["other", 265]];
    for (const [kind, y] of rows) {
      const row = s.stations.filter((x) => (x.process_type === kind) || (kind === "other" && !["tool", "server", "client"].includes(x.process_type)));
      row.forEach((x, i) => { pos[x.id] = [((i + 1) * W) / (row.length + 1), y]; });
    }
  } else {
    const cx = W / 2, cy = H / 2 - 5, r = Math.min(W, H) / 2 - 55;
    s.stations.forEach((x, i) => {
      const a = -Math.PI / 2 + (2 * Math.PI * i) / Math.max(n, 1);
      pos[x.id] = n === 1 ? [cx, cy] : [cx + r * 1.5 * Math.cos(a), cy + r * Math.sin(a)];
    });
  }
  let out = "";
  for (const x of s.stations) {
    if (x.relay && pos[x.relay] && x.relay !== x.id) {
      const [x1, y1] = pos[x.id], [x2, y2] = pos[x.relay];
      out += `<line class="relay" x1="${x1}" y1="${y1}" x2="${x2}" y2="${y2}"><title>${st(x.id)} relayed by ${st(x.relay)}</title></line>`;
    }
  }
  for (const l of s.links) {
    if (!pos[l.from] || !pos[l.peer]) continue;
    const [x1, y1] = pos[l.from], [x2, y2] = pos[l.peer];
    out += `<line class="link" x1="${x1}" y1="${y1}" x2="${x2}" y2="${y2}"></line>`;
    const mx = x1 + (x2 - x1) * 0.68, my = y1 + (y2 - y1) * 0.68;
    const label = (l.rtt_samples ? l.rtt_ms.toFixed(1) + " ms" : "- ms") + " · " + l.loss_pct.toFixed(0) + "% · " + rate(l.bytes_in_per_s + l.bytes_out_per_s);
    out += `<text class="lbl" x="${mx}" y="${my - 4}" text-anchor="middle">${label}</text>`;
  }
  for (const x of s.stations) {
    const [px, py] = pos[x.id];
    const rad = x.process_type === "server" ? 24 : 19;
    const cls = ["node", x.process_type, x.is_session_master ? "master" : "", x.is_self ? "self" : ""].join(" ");
    out += `<g class="${cls}" data-station="${x.id}"><circle cx="${px}" cy="${py}" r="${rad}"></circle>` +
      `<text x="${px}" y="${py + 4}" text-anchor="middle">${st(x.id)}</text>` +
      `<text class="lbl" x="${px}" y="${py + rad + 13}" text-anchor="middle">${esc(x.process_type)} ${esc(x.name)}</text>` +
      `<text class="lbl" x="${px}" y="${py + rad + 25}" text-anchor="middle">${esc(x.addr)}</text>` +
      (x.is_session_master ? `<text class="crown" x="${px}" y="${py - rad - 6}" text-anchor="middle">★ session master</text>` : "") +
      `</g>`;
  }
  $("graph").innerHTML = out;
}

// ---- classes

function renderClasses(classes, stations) {
  const table = $("classes");
  table.querySelector("thead").innerHTML = "<tr><th>class</th><th>objects</th>" + stations.map((x) => `<th>${st(x.id)}</th>`).join("") + "</tr>";
  table.querySelector("tbody").innerHTML = classes.map((c) =>
    `<tr data-class="${esc(c.class)}"><td>${esc(c.class)}</td><td class="num">${c.objects}</td>` +
    c.per_station.map((p) => `<td class="num" title="masters / duplicas">${p.masters} / ${p.duplicas}</td>`).join("") + "</tr>").join("") ||
    `<tr><td class="muted">no objects</td></tr>`;
}

// ---- objects

function matches(o, q) {
  q = q.trim().toLowerCase();
  return !q || o.name.toLowerCase().includes(q) || o.class.toLowerCase().includes(q) || o.handle.includes(q) || ("s" + o.master) === q;
}

function renderObjects(objects) {
  const q = $("search").value;
  const rows = objects.filter((o) => matches(o, q)).map((o) =>
    `<tr data-handle="${o.handle}" data-master="${o.master}"${state.selected === o.handle ? ' class="sel"' : ""}>` +
    `<td>${esc(o.name)}</td><td>${esc(o.class)}</td><td>${st(o.master)}${o.is_master ? " (this)" : ""}</td>` +
    `<td>${o.dup_set ? (o.dup_set.map(st).join(", ") || "none") : '<span class="muted">known on the master</span>'}</td>` +
    `<td>${ago(o.last_update_ms_ago)}</td></tr>`);
  $("objects").querySelector("tbody").innerHTML = rows.join("") || `<tr><td colspan="5" class="muted">no objects</td></tr>`;
}

async function showDetail(handle) {
  const box = $("detail");
  try {
    const r = await fetch("/api/objects/" + handle);
    const d = await r.json();
    if (!r.ok) { box.innerHTML = `<p class="muted">${esc(d.error)}</p>`; return; }
    const o = d.object;
    let html = `<h3>${esc(o.name)} <small class="muted">${esc(o.class)}, master ${st(o.master)}</small></h3>`;
    if (!d.datasets.length) html += `<p class="muted">no datasets</p>`;
    for (const ds of d.datasets) {
      html += `<table class="dataset"><thead><tr><th colspan="3">${esc(ds.name)} <span class="muted">revision ${ds.revision}</span></th></tr></thead><tbody>` +
        ds.fields.map((f) => `<tr><td>${esc(f.name)}</td><td class="hex">${f.hex || "(empty)"}</td><td>${f.guess ? "≈ " + esc(f.guess) : ""}</td></tr>`).join("") +
        "</tbody></table>";
    }
    box.innerHTML = html;
  } catch (e) {
    box.innerHTML = `<p class="muted">cannot load: ${esc(e)}</p>`;
  }
}

$("objects").addEventListener("click", (ev) => {
  const tr = ev.target.closest("tr[data-handle]");
  if (!tr) return;
  state.selected = tr.dataset.handle;
  for (const row of document.querySelectorAll("#objects tr.sel")) row.classList.remove("sel");
  tr.classList.add("sel");
  showDetail(tr.dataset.handle);
});
$("search").addEventListener("input", () => { if (state.last) renderObjects(state.last.objects); });

// ---- charts, drawn on canvas by hand

function chart(id, series, opts) {
  const c = $(id);
  const dpr = window.devicePixelRatio || 1;
  const w = c.clientWidth || 300, h = c.clientHeight || 90;
  if (c.width !== Math.round(w * dpr)) { c.width = Math.round(w * dpr); c.height = Math.round(h * dpr); }
  const g = c.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const pts = state.samples;
  let max = opts.min || 1;
  for (const s of series) for (const p of pts) max = Math.max(max, s.get(p));
  const pad = 4, top = 14;
  g.strokeStyle = "#2a333d"; g.lineWidth = 1;
  for (let i = 0; i <= 2; i++) { const y = top + ((h - top - pad) * i) / 2; g.beginPath(); g.moveTo(0, y); g.lineTo(w, y); g.stroke(); }
  g.fillStyle = "#7d8894"; g.font = "10px system-ui, sans-serif";
  g.fillText("max " + opts.fmt(max), 4, 10);
  if (pts.length) {
    const span = Math.max(pts[pts.length - 1].t_ms - pts[0].t_ms, 1);
    const t0 = pts[0].t_ms;
    series.forEach((s, k) => {
      g.strokeStyle = s.color; g.lineWidth = 1.5; g.beginPath();
      pts.forEach((p, i) => {
        const x = ((p.t_ms - t0) / span) * (w - 2) + 1;
        const y = h - pad - (s.get(p) / max) * (h - top - pad);
        if (i) g.lineTo(x, y); else g.moveTo(x, y);
      });
      g.stroke();
      const lastVal = s.get(pts[pts.length - 1]);
      g.fillStyle = s.color;
      g.fillText(opts.fmt(lastVal), w - 70 - 70 * k, 10);
    });
    const mins = span / 60000;
    g.fillStyle = "#7d8894";
    g.fillText(mins >= 1 ? mins.toFixed(1) + " min" : (span / 1000).toFixed(0) + " s", w / 2 - 30, 10);
  }
}

function renderCharts() {
  const blue = "#4fb3ff", warm = "#ffb454";
  chart("chart-bytes", [{ get: (p) => p.bytes_in_per_s, color: blue }, { get: (p) => p.bytes_out_per_s, color: warm }], { fmt: rate, min: 10 });
  chart("chart-ops", [{ get: (p) => p.ops_per_s, color: blue }], { fmt: (v) => v.toFixed(1), min: 1 });
  chart("chart-rtt", [{ get: (p) => p.rmc_ms, color: blue }, { get: (p) => p.rtt_ms, color: warm }], { fmt: (v) => v.toFixed(1) + " ms", min: 1 });
  chart("chart-loss", [{ get: (p) => p.loss_pct, color: "#ff6b6b" }], { fmt: (v) => v.toFixed(1) + "%", min: 1 });
}

function addSample(s) {
  if (!s) return;
  const last = state.samples[state.samples.length - 1];
  if (last && last.t_ms >= s.t_ms) return;
  state.samples.push(s);
  if (state.samples.length > MAX_SAMPLES) state.samples.shift();
}

// ---- the event log

function addEvents(events) {
  const seen = new Set(state.log.map((e) => e.seq));
  for (const e of events) if (!seen.has(e.seq)) state.log.push(e);
  state.log.sort((a, b) => a.seq - b.seq);
  while (state.log.length > MAX_LOG) state.log.shift();
  $("log").innerHTML = state.log.slice().reverse().map((e) =>
    `<li class="${e.kind}" data-kind="${e.kind}"><span class="t">${clock(e.t_ms)}</span><span class="kind">${e.kind}</span>${esc(e.text)}</li>`).join("");
}

// ---- live updates

function onUpdate(msg) {
  state.last = msg;
  renderSession(msg.session, msg.object_count);
  renderClasses(msg.classes, msg.session.stations);
  renderObjects(msg.objects);
  addSample(msg.sample);
  renderCharts();
  addEvents(msg.events);
  if (state.selected !== null) showDetail(state.selected);
  document.body.dataset.updates = String(Number(document.body.dataset.updates) + 1);
}

async function start() {
  try {
    const h = await (await fetch("/api/history")).json();
    state.intervalMs = h.interval_ms;
    h.samples.forEach(addSample);
  } catch (e) { /* the live stream brings samples too */ }
  const src = new EventSource("/api/live");
  src.addEventListener("update", (ev) => {
    $("live").textContent = "live"; $("live").className = "pill on";
    try { onUpdate(JSON.parse(ev.data)); } catch (e) { console.error(e); }
  });
  src.onerror = () => { $("live").textContent = "reconnecting"; $("live").className = "pill off"; };
}
start();
