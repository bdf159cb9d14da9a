"""The moderator page's HTML, kept in a module (not package data) so every install of the package,
editable or a wheel in the image, serves it. Plain HTML + a small script; no build step, no CDN.
"""

# ruff: noqa: E501

LOGIN_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>aidetect — moderator sign-in</title>
<style>
  body { font: 15px system-ui, sans-serif; background: #f4f5f7; display: grid; place-items: center; min-height: 100vh; margin: 0; }
  form { background: #fff; padding: 2rem; border-radius: 8px; box-shadow: 0 1px 4px #0002; display: grid; gap: .8rem; width: 18rem; }
  input, button { font: inherit; padding: .5rem; }
  button { background: #1f4fd1; color: #fff; border: 0; border-radius: 4px; cursor: pointer; }
  .error { color: #b00020; min-height: 1.2em; margin: 0; }
</style>
</head>
<body>
<form method="post" action="/moderate/login">
  <h1 style="margin:0;font-size:1.3rem">aidetect moderation</h1>
  <p class="error" id="error">{{error}}</p>
  <label>Name <input name="name" id="name" autocomplete="username" required autofocus></label>
  <label>Password <input name="password" id="password" type="password" autocomplete="current-password" required></label>
  <button type="submit" id="signin">Sign in</button>
</form>
</body>
</html>
"""

MODERATE_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>aidetect — review queue</title>
<style>
  body { font: 14px system-ui, sans-serif; margin: 0; background: #f4f5f7; color: #1c1e21; }
  header { display: flex; gap: 1.5rem; align-items: center; padding: .7rem 1.2rem; background: #1c2333; color: #fff; }
  header h1 { font-size: 1.1rem; margin: 0; }
  header .spacer { flex: 1; }
  header button { background: none; color: #cdd; border: 1px solid #567; border-radius: 4px; padding: .2rem .6rem; cursor: pointer; }
  .filters { display: flex; gap: 1rem; flex-wrap: wrap; padding: .6rem 1.2rem; background: #fff; border-bottom: 1px solid #ddd; }
  .filters label { display: flex; gap: .4rem; align-items: center; }
  .filters input { width: 5rem; }
  main { display: grid; grid-template-columns: minmax(0, 1fr) 22rem; gap: 1rem; padding: 1rem 1.2rem; }
  .current { background: #fff; border-radius: 8px; padding: 1rem; box-shadow: 0 1px 3px #0001; }
  .current img { max-width: 100%; max-height: 60vh; display: block; margin: 0 auto 1rem; background: #eee; }
  .facts { display: grid; grid-template-columns: 9rem 1fr; gap: .25rem .8rem; }
  .facts dt { color: #666; }
  .facts dd { margin: 0; font-family: ui-monospace, monospace; overflow-wrap: anywhere; }
  .actions { display: flex; gap: .8rem; margin-top: 1rem; }
  .actions button { flex: 1; font-size: 1rem; padding: .7rem; border: 0; border-radius: 6px; cursor: pointer; color: #fff; }
  #btn-real { background: #1d7a46; } #btn-ai { background: #b3261e; } #btn-skip { background: #6b7280; }
  kbd { background: #0003; border-radius: 3px; padding: 0 .3rem; }
  aside { display: grid; gap: 1rem; align-content: start; }
  .card { background: #fff; border-radius: 8px; padding: .8rem 1rem; box-shadow: 0 1px 3px #0001; }
  .card h2 { font-size: .95rem; margin: 0 0 .5rem; }
  #queue-list { list-style: none; padding: 0; margin: 0; max-height: 40vh; overflow: auto; }
  #queue-list li { padding: .3rem .2rem; border-bottom: 1px solid #eee; font-family: ui-monospace, monospace; font-size: 12px; }
  #queue-list li.active { background: #e8eefc; }
  .big { font-size: 1.6rem; font-weight: 600; }
  #status { min-height: 1.2em; color: #555; }
  .empty { text-align: center; padding: 3rem; color: #666; }
  .hint { color: #b3261e; font-weight: 600; }
</style>
</head>
<body>
<header>
  <h1>aidetect review queue</h1>
  <span>queue: <b id="queue-size">–</b></span>
  <span class="spacer"></span>
  <span>signed in as <b id="moderator">…</b></span>
  <form method="post" action="/moderate/logout"><button>Sign out</button></form>
</header>
<div class="filters">
  <label>Verdict
    <select id="f-verdict">
      <option value="uncertain" selected>uncertain</option>
      <option value="">all kept</option>
      <option value="ai_generated">ai_generated</option>
      <option value="real">real</option>
    </select>
  </label>
  <label>Score ≥ <input id="f-min" type="number" step="0.05" min="0" max="1"></label>
  <label>Score ≤ <input id="f-max" type="number" step="0.05" min="0" max="1"></label>
  <label>Model version <input id="f-version" type="text"></label>
  <label>Metadata hint
    <select id="f-hint"><option value="">any</option><option value="true">AI hint</option><option value="false">no hint</option></select>
  </label>
</div>
<main>
  <section class="current" id="current">
    <div class="empty" id="empty">Loading…</div>
    <div id="item" hidden>
      <img id="item-image" alt="image under review">
      <dl class="facts">
        <dt>Score</dt><dd id="item-score"></dd>
        <dt>Verdict</dt><dd id="item-verdict"></dd>
        <dt>Model</dt><dd id="item-model"></dd>
        <dt>Provenance</dt><dd id="item-provenance"></dd>
        <dt>Size</dt><dd id="item-size"></dd>
        <dt>Seen</dt><dd id="item-time"></dd>
        <dt>Detection</dt><dd id="item-id"></dd>
      </dl>
      <div class="actions">
        <button id="btn-real" data-label="real">Real <kbd>R</kbd></button>
        <button id="btn-ai" data-label="ai">AI <kbd>A</kbd></button>
        <button id="btn-skip" data-label="skip">Skip <kbd>S</kbd></button>
      </div>
    </div>
    <p id="status" role="status"></p>
  </section>
  <aside>
    <div class="card">
      <h2>Recent accuracy (from feedback)</h2>
      <div class="big" id="accuracy">–</div>
      <div id="accuracy-detail"></div>
      <div id="agreement"></div>
    </div>
    <div class="card">
      <h2>Queue</h2>
      <ul id="queue-list"></ul>
    </div>
  </aside>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
let items = [];
const skipped = new Set();
let busy = false;

function filters() {
  const p = new URLSearchParams();
  p.set("verdict", $("f-verdict").value);
  if ($("f-min").value) p.set("min_score", $("f-min").value);
  if ($("f-max").value) p.set("max_score", $("f-max").value);
  if ($("f-version").value) p.set("model_version", $("f-version").value.trim());
  if ($("f-hint").value) p.set("ai_hint", $("f-hint").value);
  return p;
}

async function api(path, options) {
  const r = await fetch(path, Object.assign({ credentials: "same-origin" }, options || {}));
  if (r.status === 401) { location.href = "/moderate/login"; throw new Error("signed out"); }
  const body = await r.json();
  if (!r.ok) throw new Error(body.detail || ("HTTP " + r.status));
  return body;
}

function provenanceText(p) {
  if (!p) return "none";
  const parts = [];
  if (p.c2pa) parts.push("C2PA" + (p.c2pa.claim_generator ? " (" + p.c2pa.claim_generator + ")" : ""));
  if (p.iptc_digital_source_type) parts.push("IPTC " + p.iptc_digital_source_type);
  if (p.generator) parts.push("generator " + p.generator);
  if (p.software) parts.push("software " + p.software);
  return parts.length ? parts.join("; ") : "none found";
}

function show() {
  const visible = items.filter((it) => !skipped.has(it.id));
  const list = $("queue-list");
  list.replaceChildren(...visible.map((it, i) => {
    const li = document.createElement("li");
    li.textContent = it.score.toFixed(3) + "  " + it.verdict + "  " + it.id.slice(0, 8);
    if (i === 0) li.className = "active";
    li.dataset.id = it.id;
    return li;
  }));
  const it = visible[0];
  $("item").hidden = !it;
  $("empty").hidden = !!it;
  $("empty").textContent = "Nothing to review with these filters.";
  if (!it) return;
  $("item").dataset.id = it.id;
  $("item-image").src = "/moderate/api/image/" + it.sha256;
  $("item-score").textContent = it.score.toFixed(4);
  $("item-verdict").textContent = it.verdict;
  $("item-model").textContent = it.model.name + " v" + it.model.version + " (" + it.stage + ")";
  $("item-provenance").textContent = provenanceText(it.provenance);
  $("item-provenance").className = it.provenance && it.provenance.ai_hint ? "hint" : "";
  $("item-size").textContent = it.image.width + "×" + it.image.height + ", " + it.image.size_bytes + " bytes";
  $("item-time").textContent = new Date(it.created_at).toLocaleString();
  $("item-id").textContent = it.id;
}

async function loadQueue() {
  const q = await api("/moderate/api/queue?" + filters().toString());
  items = q.items;
  $("moderator").textContent = q.moderator;
  $("queue-size").textContent = q.queue_size;
  show();
}

async function loadStats() {
  const s = await api("/moderate/api/stats");
  const a = s.accuracy;
  $("accuracy").textContent = a.accuracy === null ? "–" : (100 * a.accuracy).toFixed(1) + " %";
  $("accuracy-detail").textContent = a.correct + " of " + a.decided + " decided verdicts confirmed; " +
    a.uncertain_labelled + " uncertain ones labelled";
  const g = s.agreement;
  $("agreement").textContent = g.agreement === null ? "" :
    "Your agreement with others: " + (100 * g.agreement).toFixed(0) + " % over " + g.pairs + " images" +
    (g.held_back ? " — your labels are held back from training" : "");
}

// One Idempotency-Key per label the page tries to save, sent again if the moderator retries after an error:
// the server stores a label once per key, even when a proxy replays the POST (docs/api.md).
const labelKeys = {};
function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();  // only in secure contexts (https, localhost)
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function act(label) {
  const id = $("item").dataset.id;
  if (busy || $("item").hidden || !id) return;
  if (label === "skip") { skipped.add(id); $("status").textContent = "Skipped " + id.slice(0, 8); show(); return; }
  busy = true;
  const attempt = id + ":" + label;
  labelKeys[attempt] = labelKeys[attempt] || newKey();
  try {
    const out = await api("/moderate/api/label", {
      method: "POST",
      headers: { "Content-Type": "application/json", "Idempotency-Key": labelKeys[attempt] },
      body: JSON.stringify({ detection_id: id, label: label }),
    });
    delete labelKeys[attempt];
    $("status").textContent = "Labelled " + id.slice(0, 8) + " as " + out.label +
      (out.held_back ? " (held back from training)" : "");
    items = items.filter((it) => it.id !== id);
    show();
    await Promise.all([loadQueue(), loadStats()]);
  } catch (e) {
    $("status").textContent = "Not saved: " + e.message;
  } finally {
    busy = false;
  }
}

document.querySelectorAll(".actions button").forEach((b) => b.addEventListener("click", () => act(b.dataset.label)));
document.addEventListener("keydown", (e) => {
  if (e.target.matches("input, select, textarea") || e.ctrlKey || e.metaKey || e.altKey) return;
  const label = { r: "real", a: "ai", s: "skip" }[e.key.toLowerCase()];
  if (label) { e.preventDefault(); act(label); }
});
["f-verdict", "f-min", "f-max", "f-version", "f-hint"].forEach((id) => $(id).addEventListener("change", loadQueue));
loadQueue().catch((e) => { $("status").textContent = e.message; });
loadStats().catch(() => {});
setInterval(() => { if (!busy) loadQueue().catch(() => {}); }, 15000);
</script>
</body>
</html>
"""
