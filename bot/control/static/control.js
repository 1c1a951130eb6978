// The livebot control page. Everything a viewer wrote is shown with textContent, never as HTML.
"use strict";
const $ = (id) => document.getElementById(id);
const MAX_ROWS = 200;
let state = null;

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}
function hms(ts) { const d = new Date(ts); return d.toLocaleTimeString([], {hour12: false}); }

function eventSummary(item) {
  const ev = item.event;
  if (!ev) return item.kind + (item.rule ? " " + item.rule : "");
  const who = ev.user ? (ev.user.nickname || ev.user.unique_id) : "";
  const d = ev.data || {};
  let what = "";
  if (ev.type === "gift") what = `${d.count || 1}× ${d.name || "gift"} (${(d.diamonds || 0) * (d.count || 1)} diamonds)`;
  else if (ev.type === "chat") what = d.text || "";
  else if (ev.type === "like") what = `${d.count || 0} likes`;
  else if (ev.type === "viewers") what = `${d.count || 0} viewers`;
  else if (ev.type === "subscribe") what = `${d.months || 1} months`;
  return (who ? who + ": " : "") + what;
}

function addEvent(item) {
  const li = el("li");
  li.dataset.kind = "event"; li.dataset.id = item.id;
  li.append(el("span", "t", hms(item.ts)), el("span", "k", item.event ? item.event.type : item.kind),
            el("span", null, eventSummary(item)));
  if (item.event && item.event.data && item.event.data.test) li.append(el("span", "test", "test"));
  for (const r of item.fired || []) li.append(el("span", "r", "→ " + r));
  prepend($("events"), li);
}

function addAction(item) {
  const li = el("li");
  li.dataset.kind = "action"; li.dataset.id = item.id;
  li.append(el("span", "t", hms(item.ts)), el("span", "k", item.kind), el("span", null, item.text),
            el("span", "r", item.rule));
  if (item.test) li.append(el("span", "test", "test"));
  if (item.muted && item.muted.length) li.append(el("span", "muted", "muted: " + item.muted.join(", ")));
  prepend($("actions"), li);
}

function prepend(list, li) {
  list.prepend(li);
  while (list.children.length > MAX_ROWS) list.lastChild.remove();
}

function renderState(s) {
  state = s;
  const m = s.settings.mute;
  $("mute-chat").classList.toggle("on", m.chat);
  $("mute-chat").textContent = m.chat ? "Unmute chat" : "Mute chat";
  $("mute-tts").classList.toggle("on", m.tts);
  $("mute-tts").textContent = m.tts ? "Unmute TTS" : "Mute TTS";
  const all = m.chat && m.tts;
  $("mute-all").classList.toggle("on", all);
  $("mute-all").textContent = all ? "Unmute all" : "Mute all";
  const src = Object.entries(s.sources);
  $("sources").textContent = src.length ? src.map(([k, v]) => `${k}: ${v}`).join(" · ") : "sources: none yet";
  $("sources").className = "pill " + (src.length && src.every(([, v]) => v === "connected") ? "ok" : src.length ? "bad" : "");
  const tbody = $("rules"); tbody.replaceChildren();
  for (const [id, r] of Object.entries(s.rules)) {
    const tr = el("tr");
    const reasons = Object.entries(r.suppressed).map(([k, v]) => `${k} ${v}`).join(", ");
    const btn = el("button", r.paused ? "on" : "", r.paused ? "Resume" : "Pause");
    btn.dataset.rule = id; btn.dataset.paused = r.paused ? "1" : "";
    btn.addEventListener("click", () => post("/api/pause", {rule: id, paused: !r.paused}));
    const idCell = el("td", null, id);
    if (r.paused) idCell.append(el("span", "muted", "paused"));
    tr.append(idCell, el("td", "t", r.on.join(", ")), el("td", null, r.fired), el("td", "t", reasons || "–"));
    const last = el("td"); last.append(btn); tr.append(last);
    tbody.append(tr);
  }
  const pg = s.policy || {masked: {}, suppressed: {}, moderation: {}, recent: []};
  const part = (name, o) => `${name} ` + (Object.entries(o).map(([k, v]) => `${k} ${v}`).join(", ") || "0");
  $("policy-counts").textContent = [part("masked", pg.masked), part("suppressed", pg.suppressed),
                                    part("moderation", pg.moderation)].join(" · ");
  const pl = $("policy"); pl.replaceChildren();
  for (const p of pg.recent) {
    const li = el("li"); li.append(el("span", "t", hms(p.ts)), el("span", "k", p.kind), el("span", null, p.found.join("; ")),
                                   el("span", "r", p.rule));
    pl.append(li);
  }
  if (!pg.recent.length) pl.append(el("li", "t", "nothing suppressed"));
  const b = s.budget;
  $("budget-counts").textContent = (b.per_minute ? `${b.per_minute}/min · ` : "no limit · ") +
    (Object.entries(b.counters).map(([k, v]) => `${k} ${v}`).join(" · ") || "nothing queued or dropped yet") +
    (s.muted && Object.keys(s.muted).length ? " · muted " + Object.entries(s.muted).map(([k, v]) => `${k} ${v}`).join(", ") : "");
  const q = $("budget"); q.replaceChildren();
  for (const w of b.waiting) {
    const li = el("li"); li.append(el("span", "t", hms(w.since)), el("span", null, w.text), el("span", "r", w.rule));
    q.append(li);
  }
  if (!b.waiting.length) q.append(el("li", "t", "queue empty"));
  const log = $("log"); log.replaceChildren();
  for (const e of s.log.slice().reverse()) {
    const li = el("li");
    const rest = Object.entries(e).filter(([k]) => k !== "ts" && k !== "what").map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(",") : v}`).join(" ");
    li.append(el("span", "t", hms(e.ts)), el("span", "k", e.what), el("span", null, rest));
    log.append(li);
  }
  const sel = $("test-type");
  if (!sel.options.length) for (const t of s.test_types) sel.append(new Option(t, t));
  $("poll-state").textContent = s.poll ? `open: ${s.poll.question} (${s.poll.options.join(" / ")})` : "no poll open";
}

function onMessage(msg) {
  if (msg.type === "snapshot") { $("events").replaceChildren(); $("actions").replaceChildren(); }
  for (const e of msg.events) addEvent(e);
  for (const a of msg.actions) addAction(a);
  renderState(msg.state);
}

async function showTrace(kind, id) {
  const box = $("trace");
  const res = await fetch(`/api/trace?kind=${kind}&id=${encodeURIComponent(id)}`, {credentials: "same-origin"});
  const t = await res.json();
  box.replaceChildren();
  if (!res.ok) { box.append(el("p", "err", t.error)); return; }
  $("trace-title").textContent = `${kind} ${id}` + (t.rule ? ` · rule ${t.rule}` : "");
  if (t.action) box.append(el("p", null, `${t.action.kind}: ${t.action.text}`));
  if (t.budget && t.budget.length) box.append(el("p", "t", "chat budget: " + t.budget.join("; ")));
  if (t.event) box.append(el("p", "t", `${t.kind} ${t.event.type} ` + (t.event.user ? (t.event.user.nickname || t.event.user.unique_id) : "") + (t.event.data && t.event.data.test ? " (test)" : "")));
  else if (t.kind) box.append(el("p", "t", t.kind));
  for (const r of t.rules || []) {
    const row = el("div", "row " + (r.outcome === "fired" ? "fired" : "no"));
    row.dataset.rule = r.rule;
    row.append(el("b", null, r.rule + ": "), el("span", null, r.text));
    for (const a of r.actions || []) {
      const sub = el("div", "t", `  ${a.kind}: ${a.text}` + (a.budget.length ? "  [" + a.budget.join("; ") + "]" : ""));
      row.append(sub);
    }
    if (t.rule && r.rule === t.rule) row.style.outline = "1px solid var(--acc)";
    box.append(row);
  }
  if (!(t.rules || []).length) box.append(el("p", "t", "no rule listens to this event"));
}

for (const list of ["events", "actions"]) {
  $(list).addEventListener("click", (e) => {
    const li = e.target.closest("li");
    if (!li || !li.dataset.id) return;
    document.querySelectorAll("li.sel").forEach((x) => x.classList.remove("sel"));
    li.classList.add("sel");
    showTrace(li.dataset.kind, li.dataset.id);
  });
}

async function post(path, body, errBox) {
  const res = await fetch(path, {method: "POST", credentials: "same-origin",
                                 headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
  const out = await res.json().catch(() => ({error: res.statusText}));
  if (errBox) errBox.textContent = res.ok ? "" : out.error;
  return out;
}

for (const id of ["mute-all", "mute-chat", "mute-tts"]) {
  $(id).addEventListener("click", () => {
    const what = $(id).dataset.what;
    const m = state ? state.settings.mute : {chat: false, tts: false};
    const on = what === "all" ? !(m.chat && m.tts) : !m[what];
    post("/api/mute", {what, on});
  });
}

$("test-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const f = new FormData(e.target);
  const type = f.get("type");
  const body = {type, user: f.get("user")};
  if (type === "gift") Object.assign(body, {gift: f.get("gift"), diamonds: Number(f.get("diamonds")),
                                            count: Number(f.get("count")), streak: f.get("streak") === "on"});
  if (type === "chat") body.text = f.get("text");
  if (type === "subscribe") body.months = Number(f.get("months"));
  post("/api/test", body, $("test-err"));
});

$("poll-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const f = new FormData(e.target);
  post("/api/poll", {action: "open", question: f.get("question"), options: String(f.get("options")).split(",").map((x) => x.trim()).filter(Boolean), duration: f.get("duration")}, $("poll-err"));
});
$("poll-close").addEventListener("click", () => post("/api/poll", {action: "close"}, $("poll-err")));

function connect() {
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
  ws.onopen = () => { $("conn").textContent = "live"; $("conn").className = "pill ok"; };
  ws.onmessage = (m) => onMessage(JSON.parse(m.data));
  ws.onclose = () => { $("conn").textContent = "disconnected, retrying"; $("conn").className = "pill bad"; setTimeout(connect, 1000); };
}
connect();
