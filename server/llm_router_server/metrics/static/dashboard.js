// The live page of llm-router: follows /feed (the WatchMetrics stream as server-sent
// events) and draws it. Everything shown comes from the network and is untrusted (model
// names, contexts, reasons): it is only ever put into the page as text (textContent,
// setAttribute on title), never as HTML.
"use strict";

const MAX_CALLS = 30;
const MAX_CIRCUIT_CHANGES = 20;
const state = { seen: new Set(), events: 0, replicas: new Set() };

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function cell(row, text, className) {
  const td = el("td", text, className);
  row.appendChild(td);
  return td;
}

// "CIRCUIT_STATE_HALF_OPEN" -> "half_open"; "ROUTE_STATUS_OK" -> "ok"
function short(name, prefix) {
  const text = String(name || "");
  return (text.startsWith(prefix) ? text.slice(prefix.length) : text).toLowerCase();
}

function badge(text, kind) {
  // kind comes from a fixed vocabulary; anything else gets no class of its own.
  const known = /^[a-z_]+$/.test(kind) ? kind : "";
  return el("span", text, known ? "badge " + known : "badge");
}

function ms(value) {
  const n = Number(value) || 0;
  return n >= 1000 ? (n / 1000).toFixed(2) + " s" : n.toFixed(0) + " ms";
}

function count(value) {
  return (Number(value) || 0).toLocaleString("en-US");
}

function percent(part, whole) {
  return whole > 0 ? ((100 * part) / whole).toFixed(1) + " %" : "–";
}

// US dollars: 6 decimals below a cent (local calls cost fractions of one), else 2.
function usd(value) {
  const n = Number(value) || 0;
  return "$" + (n !== 0 && Math.abs(n) < 0.01 ? n.toFixed(6) : n.toFixed(2));
}

// A cost that may be unknown (absent in proto3 JSON): "unknown", never $0 by accident.
function maybeUsd(value) {
  return value === undefined || value === null ? "unknown" : usd(value);
}

// The known dollars, and how many calls or attempts they leave out.
function known(dollars, unknown, what) {
  const missing = Number(unknown) || 0;
  return missing > 0 ? usd(dollars) + " + " + count(missing) + " " + what + " unknown" : usd(dollars);
}

function setText(id, text) {
  document.getElementById(id).textContent = text;
}

function drawSnapshot(snapshot) {
  const models = Array.isArray(snapshot.models) ? snapshot.models : [];
  const body = document.querySelector("#models tbody");
  const rows = [];
  let answered = 0, local = 0, fallbacks = 0, failed = 0, attempts = 0;
  for (const m of models) {
    const success = Number(m.success) || 0;
    const fallback = Number(m.fallback) || 0;
    const error = Number(m.error) || 0;
    const calls = success + fallback + error;
    answered += success;
    fallbacks += fallback;
    failed += error;
    attempts += calls;
    if (m.locality === "local") local += success;
    const row = document.createElement("tr");
    row.dataset.model = String(m.model);
    cell(row, m.model, "model");
    cell(row, "").appendChild(badge(m.locality || "?", m.locality === "local" ? "local" : "cloud"));
    cell(row, count(calls), "num");
    cell(row, count(success), "num");
    cell(row, count(fallback), "num");
    cell(row, count(error), "num");
    cell(row, percent(fallback, calls), "num");
    cell(row, ms(m.latency_p50_ms), "num");
    cell(row, ms(m.latency_p95_ms), "num");
    cell(row, count(m.total_tokens), "num");
    const circuit = short(m.circuit, "CIRCUIT_STATE_");
    const circuitCell = cell(row, "");
    circuitCell.appendChild(badge(circuit.replace("_", "-"), circuit));
    if (m.circuit_reason) circuitCell.setAttribute("title", String(m.circuit_reason));
    const repairs = Number(m.repairs) || 0;
    cell(row, repairs ? count(m.repair_successes) + " / " + count(repairs) : "0", "num");
    const costCell = cell(row, known(m.cost_usd, m.cost_unknown, "attempts"), "num");
    if ((Number(m.cost_unknown) || 0) > 0 && !(Number(m.cost_usd) > 0)) costCell.classList.add("unknown");
    rows.push(row);
  }
  body.replaceChildren(...rows);
  setText("answered", count(answered));
  setText("local-share", percent(local, answered));
  setText("local-detail", count(local) + " local, " + count(answered - local) + " cloud");
  setText("fallbacks", count(fallbacks));
  setText("fallback-rate", percent(fallbacks, attempts) + " of attempts");
  setText("failed", count(failed));
  drawMoney(Array.isArray(snapshot.chains) ? snapshot.chains : []);
  if (snapshot.replica_id) state.replicas.add(String(snapshot.replica_id));
  const scope = snapshot.cluster_wide
    ? "cluster-wide counters (Redis)"
    : "counters of replica " + String(snapshot.replica_id || "?");
  setText("scope", scope + " · replicas seen: " + [...state.replicas].sort().join(", "));
}

// The cards: what the calls cost, and what answering without a price avoided.
function drawMoney(chains) {
  let cost = 0, unknown = 0, avoided = 0, answered = 0, local = 0;
  for (const c of chains) {
    cost += Number(c.cost_usd) || 0;
    unknown += Number(c.cost_unknown) || 0;
    avoided += Number(c.cost_avoided_usd) || 0;
    answered += Number(c.answered) || 0;
    local += Number(c.local) || 0;
  }
  setText("cost", usd(cost));
  setText("cost-detail", unknown > 0 ? "+ " + count(unknown) + " calls of unknown cost" : "every call priced");
  setText("cost-avoided", usd(avoided));
  setText("cost-avoided-detail", count(local) + " of " + count(answered) + " answers from unpriced (local) models");
}

function drawAttempts(attempts) {
  const list = el("ol", null, "attempts");
  for (const a of Array.isArray(attempts) ? attempts : []) {
    const item = el("li");
    item.appendChild(el("span", a.model, "model"));
    item.appendChild(document.createTextNode(" "));
    const outcome = short(a.outcome, "ATTEMPT_OUTCOME_");
    item.appendChild(badge(outcome, outcome));
    const category = short(a.reason_category, "REASON_CATEGORY_");
    if (category && category !== "unspecified") {
      item.appendChild(document.createTextNode(" " + category));
    }
    const repair = Number(a.repair) || 0;
    if (repair) item.appendChild(document.createTextNode(" · repair " + repair));
    item.appendChild(document.createTextNode(" · " + ms(a.latency_ms) + " · " + maybeUsd(a.cost_usd)));
    if (a.reason) item.appendChild(el("span", a.reason, "reason"));
    list.appendChild(item);
  }
  return list;
}

function drawEvent(event) {
  const id = String(event.event_id || "");
  if (id && state.seen.has(id)) return;
  if (id) state.seen.add(id);
  if (state.seen.size > 1000) state.seen = new Set([...state.seen].slice(-500));
  state.events += 1;
  if (event.replica_id) state.replicas.add(String(event.replica_id));
  const row = el("tr", null, "fresh");
  row.dataset.eventId = id;
  const when = new Date(String(event.time || ""));
  cell(row, isNaN(when) ? "" : when.toLocaleTimeString("en-GB"), "nowrap");
  cell(row, event.replica_id, "nowrap");
  cell(row, event.chain);
  cell(row, event.context, "context");
  const status = short(event.status, "ROUTE_STATUS_");
  cell(row, "").appendChild(badge(status.replace("_", " "), status));
  cell(row, event.model_used, "model");
  cell(row, ms(event.latency_ms), "num");
  cell(row, "").appendChild(drawAttempts(event.attempts));
  cell(row, maybeUsd(event.cost_usd), "num");
  const body = document.querySelector("#calls tbody");
  body.insertBefore(row, body.firstChild);
  while (body.children.length > MAX_CALLS) body.removeChild(body.lastChild);
  setText("event-count", "(" + count(state.events) + " seen since the page opened)");
}

function drawCircuit(change) {
  const list = document.getElementById("circuits");
  const empty = list.querySelector(".empty");
  if (empty) empty.remove();
  const item = el("li");
  const when = new Date(String(change.time || ""));
  const to = short(change.to_state, "CIRCUIT_STATE_");
  item.appendChild(document.createTextNode((isNaN(when) ? "" : when.toLocaleTimeString("en-GB")) + " "));
  item.appendChild(el("span", change.model, "model"));
  item.appendChild(document.createTextNode(" " + short(change.from_state, "CIRCUIT_STATE_") + " → "));
  item.appendChild(badge(to.replace("_", "-"), to));
  item.appendChild(el("span", String(change.reason || "") + " (replica " + String(change.replica_id || "?") + ")", "reason"));
  list.insertBefore(item, list.firstChild);
  while (list.children.length > MAX_CIRCUIT_CHANGES) list.removeChild(list.lastChild);
}

function connect() {
  const status = document.getElementById("status");
  const source = new EventSource("feed");
  source.onopen = () => { status.dataset.state = "live"; status.textContent = "live"; };
  source.onerror = () => { status.dataset.state = "reconnecting"; status.textContent = "reconnecting"; };
  source.onmessage = (message) => {
    let data;
    try { data = JSON.parse(message.data); } catch (e) { return; }
    if (data.snapshot) drawSnapshot(data.snapshot);
    if (data.event) drawEvent(data.event);
    if (Array.isArray(data.events)) data.events.forEach(drawEvent);
    if (data.circuit) drawCircuit(data.circuit);
  };
}

connect();
