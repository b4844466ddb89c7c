// Warren's management UI: a single page over the management HTTP API.
// Credentials live in sessionStorage (gone when the tab closes) and go to
// the API as HTTP Basic auth on every request; routing is by location.hash.
"use strict";

const warrenUI = { samples: [], refreshMs: 3000, maxSamples: 120 };
window.warrenUI = warrenUI;

const $ = (sel, root) => (root || document).querySelector(sel);
const enc = encodeURIComponent;

// el builds an element: el("td", {class: "num"}, "text", childNode...).
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids.flat()) {
    if (k === undefined || k === null) continue;
    e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return e;
}

function creds() { return sessionStorage.getItem("warren-auth"); }

// api calls the management API and returns parsed JSON (or null for an
// empty answer); a failure throws an Error carrying RabbitMQ's reason.
async function api(method, path, body, raw) {
  const headers = { Authorization: "Basic " + creds() };
  // credentials "omit": a 401 must come back to this code, not open the
  // browser's own Basic auth prompt (the API answers WWW-Authenticate).
  const init = { method, headers, credentials: "omit" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  const r = await fetch("/api" + path, init);
  if (r.status === 401 && method === "GET" && path === "/whoami") throw new Error("Login failed");
  const text = await r.text();
  if (!r.ok) {
    let reason = r.status + " " + r.statusText;
    try { const j = JSON.parse(text); reason = j.reason || j.error || reason; } catch (e) { /* not JSON */ }
    if (r.status === 401 && reason === "Login failed") { logout("Session rejected: " + reason); }
    throw new Error(reason);
  }
  if (raw) return text;
  return text ? JSON.parse(text) : null;
}

function flash(msg, bad) {
  const f = $("#flash");
  f.textContent = msg;
  f.className = "flash" + (bad ? " bad" : "");
}

// act runs an operation from a button or form, reports it and refreshes.
async function act(what, fn) {
  try {
    await fn();
    flash(what + ": done");
    await render();
  } catch (e) {
    flash(what + ": " + e.message, true);
  }
}

function fmt(n) { return n === undefined || n === null ? "" : typeof n === "number" ? n.toLocaleString("en") : String(n); }
function rate(d) { return d && typeof d.rate === "number" ? d.rate.toFixed(1) + "/s" : ""; }

function table(cols, rows, rowAttrs) {
  return el("table", {},
    el("thead", {}, el("tr", {}, cols.map(c => el("th", { class: c.num ? "num" : null }, c.t)))),
    el("tbody", {}, rows.length ? rows.map(r => el("tr", rowAttrs ? rowAttrs(r) : {},
      cols.map(c => el("td", { class: c.num ? "num" : null }, c.f(r))))) :
      el("tr", {}, el("td", { colspan: cols.length }, "(none)"))));
}

// form builds an inline form whose fields are {n: name, t: label, v: default,
// type, opts: [...]}; submit gets the values by name.
function form(id, fields, label, submit) {
  const f = el("form", { class: "inline", id },
    fields.map(x => el("label", {}, x.t, x.opts ?
      el("select", { name: x.n }, x.opts.map(o => el("option", { selected: o === x.v }, o))) :
      x.type === "textarea" ? el("textarea", { name: x.n, rows: 3, cols: 40 }, x.v || "") :
        el("input", { name: x.n, value: x.v || "", type: x.type || "text", placeholder: x.ph || "" }))),
    el("button", { type: "submit", id: id + "-submit" }, label));
  f.addEventListener("submit", ev => {
    ev.preventDefault();
    const vals = {};
    for (const x of fields) vals[x.n] = f.elements[x.n].value;
    submit(vals, f);
  });
  return f;
}

function jsonField(s, what) {
  if (!s.trim()) return {};
  try { return JSON.parse(s); } catch (e) { throw new Error(what + " is not JSON"); }
}

// confirmButton asks a second click instead of window.confirm, which a
// headless browser test would have to dismiss.
function confirmButton(id, label, fn) {
  const b = el("button", { type: "button", id, class: "danger" }, label);
  b.addEventListener("click", () => {
    if (b.dataset.armed) { fn(); return; }
    b.dataset.armed = "1";
    b.textContent = "Really " + label.toLowerCase() + "?";
    b.id = id + "-confirm";
  });
  return b;
}

async function vhostNames() { return (await api("GET", "/vhosts")).map(v => v.name); }

// ---- pages ----------------------------------------------------------------

const pages = {};

pages.overview = async () => {
  const [o, alarms] = await Promise.all([api("GET", "/overview"), alarmStatus()]);
  const t = o.object_totals, q = o.queue_totals, ms = o.message_stats || {};
  return [
    el("h2", {}, "Overview"),
    el("p", {}, `${o.product_name} ${o.product_version} on ${o.node} (cluster ${o.cluster_name})`),
    el("div", { class: "totals", id: "overview-totals" },
      [["Connections", t.connections], ["Channels", t.channels], ["Exchanges", t.exchanges], ["Queues", t.queues],
        ["Consumers", t.consumers], ["Messages", q.messages], ["Ready", q.messages_ready],
        ["Unacked", q.messages_unacknowledged]].map(([k, v]) =>
        el("div", { id: "total-" + k.toLowerCase() }, k, el("b", {}, fmt(v))))),
    el("h3", {}, "Queued messages and publish rate"),
    el("canvas", { id: "chart", width: 720, height: 200 }),
    el("p", {}, `Publish ${rate(ms.publish_details)}, deliver/get ${rate(ms.deliver_get_details)}, ack ${rate(ms.ack_details)} (sampled every ${warrenUI.refreshMs / 1000} s by this page)`),
    el("h3", {}, "Alarms"),
    el("p", { id: "alarms", class: alarms.ok ? "ok" : "error" }, alarms.text),
    el("h3", {}, "Listeners"),
    table([{ t: "Protocol", f: l => l.protocol }, { t: "Bound to", f: l => l.ip_address }, { t: "Port", f: l => l.port }],
      o.listeners || []),
  ];
};
const overviewSeries = [["messages", "#e67e00", "queued messages"], ["publish", "#2a7ae2", "publish /s"]];
pages.overview.after = () => drawChart($("#chart"), warrenUI.samples, overviewSeries);

async function alarmStatus() {
  const r = await fetch("/api/health/checks/alarms", { headers: { Authorization: "Basic " + creds() }, credentials: "omit" });
  const j = await r.json().catch(() => ({}));
  if (r.ok) return { ok: true, text: "No alarms in effect." };
  return { ok: false, text: "Alarms: " + JSON.stringify(j.alarms || j.reason || j) };
}

// sample records one point for the overview chart; it runs on every
// refresh whatever the page, so the chart has history when opened.
async function sample() {
  try {
    const o = await api("GET", "/overview");
    const ms = o.message_stats || {};
    warrenUI.samples.push({
      t: Date.now(), messages: o.queue_totals.messages || 0,
      publish: (ms.publish_details && ms.publish_details.rate) || 0,
    });
    if (warrenUI.samples.length > warrenUI.maxSamples) warrenUI.samples.shift();
  } catch (e) { /* shown by the page itself */ }
}

// drawChart draws series [key, colour, label] of samples s as lines.
function drawChart(c, s, series) {
  if (!c) return;
  const g = c.getContext("2d"), W = c.width, H = c.height, pad = 30;
  g.clearRect(0, 0, W, H);
  g.font = "11px sans-serif";
  g.strokeStyle = "#ccc";
  g.strokeRect(pad, 5, W - pad - 5, H - pad);
  const max = Math.max(1, ...s.flatMap(p => series.map(([k]) => p[k])));
  g.fillStyle = "#555";
  g.fillText(fmt(Math.ceil(max)), 2, 14);
  g.fillText("0", 2, H - pad + 5);
  series.forEach(([k, color, label], i) => {
    g.fillStyle = color;
    g.fillText(label, pad + 10 + i * 130, H - 8);
    if (s.length < 1) return;
    g.strokeStyle = color;
    g.lineWidth = 2;
    g.beginPath();
    s.forEach((p, j) => {
      const x = pad + (W - pad - 5) * (s.length === 1 ? 1 : j / (s.length - 1));
      const y = 5 + (H - pad) * (1 - p[k] / max);
      if (j === 0) g.moveTo(x, y); else g.lineTo(x, y);
    });
    g.stroke();
  });
  c.dataset.samples = String(s.length);
}

pages.connections = async () => {
  const cs = await api("GET", "/connections");
  return [el("h2", {}, "Connections"),
    table([{ t: "Name", f: c => c.name }, { t: "Client name", f: c => c.user_provided_name || (c.client_properties || {}).connection_name || "" },
      { t: "User", f: c => c.user }, { t: "Vhost", f: c => c.vhost }, { t: "State", f: c => c.state },
      { t: "Channels", num: true, f: c => fmt(c.channels) }, { t: "Received", num: true, f: c => fmt(c.recv_oct) },
      { t: "Sent", num: true, f: c => fmt(c.send_oct) },
      { t: "", f: c => confirmButton("close-" + c.name.replace(/\W/g, "_"), "Close", () =>
        act("Close connection", () => api("DELETE", "/connections/" + enc(c.name)))) }], cs,
    c => ({ "data-name": c.name }))];
};

pages.channels = async () => {
  const cs = await api("GET", "/channels");
  return [el("h2", {}, "Channels"),
    table([{ t: "Channel", f: c => c.name }, { t: "User", f: c => c.user }, { t: "Vhost", f: c => c.vhost },
      { t: "Mode", f: c => (c.confirm ? "C" : "") + (c.transactional ? "T" : "") },
      { t: "Prefetch", num: true, f: c => fmt(c.prefetch_count) }, { t: "Consumers", num: true, f: c => fmt(c.consumer_count) },
      { t: "Unacked", num: true, f: c => fmt(c.messages_unacknowledged) },
      { t: "Unconfirmed", num: true, f: c => fmt(c.messages_unconfirmed) }], cs)];
};

pages.exchanges = async () => {
  const [xs, vhs] = await Promise.all([api("GET", "/exchanges"), vhostNames()]);
  return [el("h2", {}, "Exchanges"),
    table([{ t: "Vhost", f: x => x.vhost },
      { t: "Name", f: x => el("a", { href: `#/exchange/${enc(x.vhost)}/${enc(x.name || "amq.default")}` }, x.name || "(AMQP default)") },
      { t: "Type", f: x => x.type }, { t: "Features", f: x => (x.durable ? "D " : "") + (x.auto_delete ? "AD " : "") + (x.internal ? "I" : "") },
      { t: "In", num: true, f: x => rate((x.message_stats || {}).publish_in_details) },
      { t: "Out", num: true, f: x => rate((x.message_stats || {}).publish_out_details) }], xs,
    x => ({ "data-name": x.name })),
  el("h3", {}, "Add an exchange"),
  form("exchange-create", [{ n: "vhost", t: "Vhost", opts: vhs, v: "/" }, { n: "name", t: "Name" },
    { n: "type", t: "Type", opts: ["direct", "fanout", "topic", "headers"] }, { n: "durable", t: "Durable", opts: ["true", "false"] },
    { n: "args", t: "Arguments (JSON)", ph: "{}" }], "Add exchange",
  v => act("Add exchange", () => api("PUT", `/exchanges/${enc(v.vhost)}/${enc(v.name)}`,
    { type: v.type, durable: v.durable === "true", auto_delete: false, internal: false, arguments: jsonField(v.args, "Arguments") })))];
};

pages.exchange = async (vhost, name) => {
  const [x, src] = await Promise.all([api("GET", `/exchanges/${enc(vhost)}/${enc(name)}`),
    api("GET", `/exchanges/${enc(vhost)}/${enc(name)}/bindings/source`)]);
  const isDefault = x.name === "";
  const out = [el("h2", {}, `Exchange ${x.name || "(AMQP default)"} in ${x.vhost}`),
    el("p", {}, `Type ${x.type}, durable ${x.durable}, auto-delete ${x.auto_delete}, internal ${x.internal}`),
    el("h3", {}, "Bindings from this exchange"),
    table([{ t: "To", f: b => b.destination + " (" + b.destination_type + ")" }, { t: "Routing key", f: b => b.routing_key },
      { t: "Arguments", f: b => JSON.stringify(b.arguments || {}) },
      { t: "", f: b => isDefault ? "" : el("button", { type: "button", onclick: () => act("Unbind", () =>
        api("DELETE", `/bindings/${enc(vhost)}/e/${enc(name)}/${b.destination_type === "queue" ? "q" : "e"}/${enc(b.destination)}/${enc(b.properties_key)}`)) }, "Unbind") }],
    src)];
  if (!isDefault) {
    out.push(el("h3", {}, "Add binding from this exchange"),
      form("exchange-bind", [{ n: "kind", t: "To", opts: ["queue", "exchange"] }, { n: "dest", t: "Destination" },
        { n: "key", t: "Routing key" }, { n: "args", t: "Arguments (JSON)", ph: "{}" }], "Bind",
      v => act("Bind", () => api("POST", `/bindings/${enc(vhost)}/e/${enc(name)}/${v.kind === "queue" ? "q" : "e"}/${enc(v.dest)}`,
        { routing_key: v.key, arguments: jsonField(v.args, "Arguments") }))));
  }
  const result = el("p", { id: "publish-result" });
  out.push(el("h3", {}, "Publish message"),
    form("publish", [{ n: "key", t: "Routing key" }, { n: "delivery", t: "Delivery mode", opts: ["1 - non-persistent", "2 - persistent"] },
      { n: "headers", t: "Headers (JSON)", ph: "{}" }, { n: "payload", t: "Payload", type: "textarea" }], "Publish message",
    async v => {
      result.textContent = "";
      try {
        const r = await api("POST", `/exchanges/${enc(vhost)}/${enc(name || "amq.default")}/publish`, {
          routing_key: v.key, payload: v.payload, payload_encoding: "string",
          properties: { delivery_mode: Number(v.delivery[0]), headers: jsonField(v.headers, "Headers") },
        });
        result.textContent = r.routed ? "Message published." : "Message published, but not routed.";
        result.className = r.routed ? "ok" : "error";
      } catch (e) { result.textContent = e.message; result.className = "error"; }
    }), result);
  if (!isDefault && !x.name.startsWith("amq.")) {
    out.push(el("p", {}, confirmButton("exchange-delete", "Delete", () => act("Delete exchange", async () => {
      await api("DELETE", `/exchanges/${enc(vhost)}/${enc(name)}`);
      location.hash = "#/exchanges";
    }))));
  }
  return out;
};

// The queue list keeps its filter and page in the hash so that the
// periodic refresh asks the server for the same page again.
const queueList = { page: 1, size: 100, name: "", regex: false };

pages.queues = async () => {
  const ql = queueList;
  const qs = new URLSearchParams({ page: ql.page, page_size: ql.size, name: ql.name, use_regex: ql.regex });
  const [res, vhs] = await Promise.all([api("GET", "/queues?" + qs), vhostNames()]);
  if (res.page_count > 0 && ql.page > res.page_count) { ql.page = res.page_count; return pages.queues(); }
  const filter = el("form", { class: "inline", id: "queue-filter" },
    el("label", {}, "Filter", el("input", { name: "name", value: ql.name })),
    el("label", {}, "Regex", el("input", { name: "regex", type: "checkbox", checked: ql.regex })),
    el("label", {}, "Page size", el("select", { name: "size" }, [20, 100, 500].map(n => el("option", { selected: n === ql.size }, n)))),
    el("button", { type: "submit" }, "Apply"));
  filter.addEventListener("submit", ev => {
    ev.preventDefault();
    Object.assign(ql, { name: filter.elements.name.value, regex: filter.elements.regex.checked, size: Number(filter.elements.size.value), page: 1 });
    render();
  });
  const go = p => () => { ql.page = p; render(); };
  return [el("h2", {}, "Queues"), filter,
    el("div", { class: "pager" },
      el("button", { type: "button", disabled: ql.page <= 1, onclick: go(ql.page - 1) }, "Previous"),
      `Page ${res.page} of ${Math.max(1, res.page_count)} — ${fmt(res.filtered_count)} matching of ${fmt(res.total_count)} queues`,
      el("button", { type: "button", disabled: ql.page >= res.page_count, onclick: go(ql.page + 1) }, "Next")),
    table([{ t: "Vhost", f: q => q.vhost },
      { t: "Name", f: q => el("a", { href: `#/queue/${enc(q.vhost)}/${enc(q.name)}` }, q.name) },
      { t: "Type", f: q => q.type }, { t: "Features", f: q => (q.durable ? "D " : "") + (q.auto_delete ? "AD " : "") + (q.exclusive ? "Excl " : "") + (q.policy ? "Pol:" + q.policy : "") },
      { t: "State", f: q => q.state }, { t: "Ready", num: true, f: q => fmt(q.messages_ready) },
      { t: "Unacked", num: true, f: q => fmt(q.messages_unacknowledged) }, { t: "Total", num: true, f: q => fmt(q.messages) },
      { t: "Consumers", num: true, f: q => fmt(q.consumers) }], res.items,
    q => ({ "data-name": q.name, "data-vhost": q.vhost })),
    el("h3", {}, "Add a queue"),
    form("queue-create", [{ n: "vhost", t: "Vhost", opts: vhs, v: "/" }, { n: "name", t: "Name" },
      { n: "durable", t: "Durable", opts: ["true", "false"] }, { n: "auto_delete", t: "Auto delete", opts: ["false", "true"] },
      { n: "args", t: "Arguments (JSON)", ph: '{"x-max-length": 1000}' }], "Add queue",
    v => act("Add queue", () => api("PUT", `/queues/${enc(v.vhost)}/${enc(v.name)}`,
      { durable: v.durable === "true", auto_delete: v.auto_delete === "true", arguments: jsonField(v.args, "Arguments") })))];
};

pages.queue = async (vhost, name) => {
  const base = `/queues/${enc(vhost)}/${enc(name)}`;
  const [q, bs] = await Promise.all([api("GET", base), api("GET", base + "/bindings")]);
  const got = el("div", { id: "get-result" });
  queueSample(q);
  return [el("h2", {}, `Queue ${q.name} in ${q.vhost}`),
    el("div", { class: "totals" },
      [["Ready", "messages_ready"], ["Unacked", "messages_unacknowledged"], ["Total", "messages"], ["Consumers", "consumers"]].map(([k, f]) =>
        el("div", {}, k, el("b", { id: "q-" + f }, fmt(q[f]))))),
    el("canvas", { id: "q-chart", width: 720, height: 160 }),
    el("p", {}, `Type ${q.type}, state ${q.state}, durable ${q.durable}, auto-delete ${q.auto_delete}, exclusive ${q.exclusive}, policy ${q.policy || "none"}, arguments ${JSON.stringify(q.arguments || {})}`),
    el("h3", {}, "Consumers"),
    table([{ t: "Tag", f: c => c.consumer_tag }, { t: "Channel", f: c => (c.channel_details || {}).name || "" },
      { t: "Ack required", f: c => String(c.ack_required) }, { t: "Prefetch", num: true, f: c => fmt(c.prefetch_count) },
      { t: "Exclusive", f: c => String(c.exclusive) }], q.consumer_details || []),
    el("h3", {}, "Bindings"),
    table([{ t: "From", f: b => b.source || "(AMQP default)" }, { t: "Routing key", f: b => b.routing_key },
      { t: "Arguments", f: b => JSON.stringify(b.arguments || {}) },
      { t: "", f: b => b.source === "" ? "" : el("button", { type: "button", onclick: () => act("Unbind", () =>
        api("DELETE", `/bindings/${enc(vhost)}/e/${enc(b.source)}/q/${enc(name)}/${enc(b.properties_key)}`)) }, "Unbind") }], bs),
    el("h3", {}, "Bind to this queue"),
    form("queue-bind", [{ n: "source", t: "From exchange" }, { n: "key", t: "Routing key" }, { n: "args", t: "Arguments (JSON)", ph: "{}" }], "Bind",
      v => act("Bind", () => api("POST", `/bindings/${enc(vhost)}/e/${enc(v.source)}/q/${enc(name)}`,
        { routing_key: v.key, arguments: jsonField(v.args, "Arguments") }))),
    el("h3", {}, "Get messages"),
    form("get-messages", [{ n: "ackmode", t: "Ack mode", opts: ["ack_requeue_true", "ack_requeue_false", "reject_requeue_true", "reject_requeue_false"] },
      { n: "encoding", t: "Encoding", opts: ["auto", "base64"] }, { n: "count", t: "Messages", v: "1", type: "number" }], "Get messages",
    async v => {
      got.replaceChildren();
      try {
        const ms = await api("POST", base + "/get", { count: Number(v.count), ackmode: v.ackmode, encoding: v.encoding, truncate: 50000 });
        if (!ms.length) got.append(el("p", { id: "get-empty" }, "Queue is empty."));
        ms.forEach((m, i) => got.append(el("div", { class: "card message" },
          el("b", {}, `Message ${i + 1}`), ` — exchange "${m.exchange}", routing key "${m.routing_key}", redelivered ${m.redelivered}, ${m.message_count} left, ${m.payload_bytes} bytes, ${m.payload_encoding}`,
          el("pre", { class: "props" }, JSON.stringify(m.properties)),
          el("pre", { class: "payload" }, m.payload))));
      } catch (e) { got.append(el("p", { class: "error" }, e.message)); }
    }), got,
    el("h3", {}, "Purge and delete"),
    el("p", {},
      confirmButton("q-purge", "Purge", () => act("Purge", () => api("DELETE", base + "/contents"))), " ",
      confirmButton("q-delete", "Delete", () => act("Delete queue", async () => {
        await api("DELETE", base);
        location.hash = "#/queues";
      })))];
};
// The queue page holds a get-messages result a re-render would wipe, so
// its refresh only updates the counts; the exchange page holds the publish
// form and is left alone.
pages.queue.refresh = async (vhost, name) => {
  const q = await api("GET", `/queues/${enc(vhost)}/${enc(name)}`);
  for (const f of ["messages_ready", "messages_unacknowledged", "messages", "consumers"]) {
    const e = $("#q-" + f);
    if (e) e.textContent = fmt(q[f]);
  }
  queueSample(q);
  pages.queue.after();
};

// Per-queue samples, kept while the tab lives, for the queue page's chart.
const queueSamples = new Map();
const queueSeries = [["ready", "#e67e00", "ready"], ["unacked", "#2a7ae2", "unacked"], ["publish", "#2a2", "publish /s"]];

function queueSample(q) {
  const key = q.vhost + "\n" + q.name;
  const s = queueSamples.get(key) || [];
  const ms = q.message_stats || {};
  s.push({ t: Date.now(), ready: q.messages_ready || 0, unacked: q.messages_unacknowledged || 0,
    publish: (ms.publish_details && ms.publish_details.rate) || 0 });
  if (s.length > warrenUI.maxSamples) s.shift();
  queueSamples.set(key, s);
  warrenUI.queueKey = key;
}
pages.queue.after = () => drawChart($("#q-chart"), queueSamples.get(warrenUI.queueKey) || [], queueSeries);
pages.exchange.refresh = async () => {};

pages.users = async () => {
  const [us, ps, vhs] = await Promise.all([api("GET", "/users"), api("GET", "/permissions"), vhostNames()]);
  return [el("h2", {}, "Users"),
    table([{ t: "Name", f: u => u.name }, { t: "Tags", f: u => (Array.isArray(u.tags) ? u.tags.join(", ") : u.tags) },
      { t: "Can access", f: u => ps.filter(p => p.user === u.name).map(p => p.vhost).join(", ") },
      { t: "", f: u => confirmButton("user-delete-" + u.name.replace(/\W/g, "_"), "Delete", () =>
        act("Delete user", () => api("DELETE", "/users/" + enc(u.name)))) }], us, u => ({ "data-name": u.name })),
    el("h3", {}, "Add or update a user"),
    form("user-create", [{ n: "name", t: "Username" }, { n: "password", t: "Password", type: "password" },
      { n: "tags", t: "Tags", ph: "administrator,management" }], "Save user",
    v => act("Save user", () => api("PUT", "/users/" + enc(v.name), { password: v.password, tags: v.tags }))),
    el("h3", {}, "Permissions"),
    table([{ t: "User", f: p => p.user }, { t: "Vhost", f: p => p.vhost }, { t: "Configure", f: p => p.configure },
      { t: "Write", f: p => p.write }, { t: "Read", f: p => p.read },
      { t: "", f: p => el("button", { type: "button", onclick: () => act("Clear permissions", () =>
        api("DELETE", `/permissions/${enc(p.vhost)}/${enc(p.user)}`)) }, "Clear") }], ps),
    form("permission-set", [{ n: "user", t: "User", opts: us.map(u => u.name) }, { n: "vhost", t: "Vhost", opts: vhs, v: "/" },
      { n: "configure", t: "Configure", v: ".*" }, { n: "write", t: "Write", v: ".*" }, { n: "read", t: "Read", v: ".*" }], "Set permission",
    v => act("Set permission", () => api("PUT", `/permissions/${enc(v.vhost)}/${enc(v.user)}`,
      { configure: v.configure, write: v.write, read: v.read })))];
};

pages.vhosts = async () => {
  const vs = await api("GET", "/vhosts");
  return [el("h2", {}, "Virtual hosts"),
    table([{ t: "Name", f: v => v.name }, { t: "Description", f: v => v.description || "" },
      { t: "Messages", num: true, f: v => fmt(v.messages) },
      { t: "", f: v => confirmButton("vhost-delete-" + v.name.replace(/\W/g, "_"), "Delete", () =>
        act("Delete vhost", () => api("DELETE", "/vhosts/" + enc(v.name)))) }], vs, v => ({ "data-name": v.name })),
    el("h3", {}, "Add a virtual host"),
    form("vhost-create", [{ n: "name", t: "Name" }, { n: "description", t: "Description" }], "Add vhost",
      v => act("Add vhost", () => api("PUT", "/vhosts/" + enc(v.name), { description: v.description })))];
};

pages.policies = async () => {
  const [ps, vhs] = await Promise.all([api("GET", "/policies"), vhostNames()]);
  return [el("h2", {}, "Policies"),
    table([{ t: "Vhost", f: p => p.vhost }, { t: "Name", f: p => p.name }, { t: "Pattern", f: p => p.pattern },
      { t: "Apply to", f: p => p["apply-to"] }, { t: "Definition", f: p => JSON.stringify(p.definition) },
      { t: "Priority", num: true, f: p => fmt(p.priority) },
      { t: "", f: p => el("button", { type: "button", onclick: () => act("Clear policy", () =>
        api("DELETE", `/policies/${enc(p.vhost)}/${enc(p.name)}`)) }, "Clear") }], ps, p => ({ "data-name": p.name })),
    el("h3", {}, "Add or update a policy"),
    form("policy-set", [{ n: "vhost", t: "Vhost", opts: vhs, v: "/" }, { n: "name", t: "Name" }, { n: "pattern", t: "Pattern", v: ".*" },
      { n: "applyto", t: "Apply to", opts: ["all", "queues", "exchanges", "classic_queues", "quorum_queues", "streams"] },
      { n: "priority", t: "Priority", v: "0", type: "number" }, { n: "definition", t: "Definition (JSON)", ph: '{"max-length": 1000}' }], "Set policy",
    v => act("Set policy", () => api("PUT", `/policies/${enc(v.vhost)}/${enc(v.name)}`,
      { pattern: v.pattern, "apply-to": v.applyto, priority: Number(v.priority), definition: jsonField(v.definition, "Definition") })))];
};

pages.definitions = async () => {
  const status = el("p", { id: "import-result" });
  const file = el("input", { type: "file", id: "import-file", accept: ".json,application/json" });
  return [el("h2", {}, "Definitions"),
    el("div", { class: "card" }, el("h3", {}, "Export"),
      el("p", {}, "Users, vhosts, permissions, policies, parameters, exchanges, queues and bindings as one JSON file."),
      el("button", { type: "button", id: "export", onclick: async () => {
        try {
          const text = await api("GET", "/definitions", undefined, true);
          const a = el("a", { href: URL.createObjectURL(new Blob([text], { type: "application/json" })), download: "warren-definitions.json" });
          document.body.append(a);
          a.click();
          a.remove();
          flash("Definitions exported");
        } catch (e) { flash("Export: " + e.message, true); }
      } }, "Download broker definitions")),
    el("div", { class: "card" }, el("h3", {}, "Import"), file,
      el("button", { type: "button", id: "import", onclick: async () => {
        status.textContent = "";
        if (!file.files.length) { status.textContent = "Choose a file first."; return; }
        try {
          await api("POST", "/definitions", await file.files[0].text());
          status.textContent = "Definitions imported.";
          status.className = "ok";
        } catch (e) { status.textContent = e.message; status.className = "error"; }
      } }, "Upload definitions"), status)];
};

// ---- router -----------------------------------------------------------------

function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const name = pages[parts[0]] ? parts[0] : "overview";
  return { name, args: parts.slice(1) };
}

let rendering = null;

// render draws the current page; the main element's data-page and
// data-loaded tell a test which page is on screen and that it is complete.
async function render() {
  if (!creds()) return;
  const token = {};
  rendering = token;
  const { name, args } = route();
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.dataset.page === name || a.dataset.page + "s" === name);
  }
  let content;
  try {
    content = await pages[name](...args);
  } catch (e) {
    content = [el("p", { class: "error", id: "page-error" }, e.message)];
  }
  if (rendering !== token) return; // a newer navigation won
  const main = $("#main");
  main.replaceChildren(el("section", { id: "page-" + name, "data-loaded": "1" }, content));
  main.dataset.page = name;
  if (pages[name].after) pages[name].after();
}

async function tick() {
  if (!creds()) return;
  await sample();
  const { name, args } = route();
  const focused = document.activeElement && $("#main").contains(document.activeElement) &&
    /INPUT|TEXTAREA|SELECT/.test(document.activeElement.tagName);
  if (pages[name].refresh) {
    try { await pages[name].refresh(...args); } catch (e) { /* the next render shows it */ }
  } else if (!focused) {
    // Re-render lists but never under a user typing into a form.
    await render();
  } else if (name === "overview") {
    drawChart($("#chart"), warrenUI.samples, overviewSeries);
  }
}

function logout(msg) {
  sessionStorage.removeItem("warren-auth");
  $("#app").classList.add("hidden");
  $("#login").classList.remove("hidden");
  $("#login-error").textContent = msg || "";
}

async function login(user, pass) {
  sessionStorage.setItem("warren-auth", btoa(unescape(encodeURIComponent(user + ":" + pass))));
  try {
    const me = await api("GET", "/whoami");
    $("#who").textContent = me.name;
  } catch (e) {
    logout(e.message === "Login failed" ? "Login failed: wrong username or password, or the user may not use the management UI." : e.message);
    return;
  }
  $("#login").classList.add("hidden");
  $("#app").classList.remove("hidden");
  await sample();
  await render();
}

$("#login-form").addEventListener("submit", ev => {
  ev.preventDefault();
  login($("#login-user").value, $("#login-pass").value);
});
$("#logout").addEventListener("click", () => logout());
window.addEventListener("hashchange", () => { $("#flash").className = "flash hidden"; render(); });
setInterval(tick, warrenUI.refreshMs);

if (creds()) {
  const [u, p] = decodeURIComponent(escape(atob(creds()))).split(/:(.*)/s);
  login(u, p);
} else {
  logout();
}
