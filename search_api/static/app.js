// Tender search page: plain JS, no build step. Talks to GET /search, GET /stats, GET /sectors and POST /feedback;
// result titles open the tender's own page (/t/{id}), "Download CSV" is GET /search.csv with the same filters.
"use strict";

const PAGE = 20;
const FILTERS = ["country", "region", "sector", "procurement_type", "buyer", "closing_after", "closing_before",
  "min_value", "max_value", "currency"];
const $ = (id) => document.getElementById(id);
const state = { params: null, offset: 0, shown: 0, seq: 0 };
const sessionId = (() => {
  try {
    let id = sessionStorage.getItem("tender-session");
    if (!id) {
      id = Math.random().toString(36).slice(2, 12);
      sessionStorage.setItem("tender-session", id);
    }
    return id;
  } catch (_) {
    return "anonymous";
  }
})();

function formParams() {
  const p = new URLSearchParams();
  p.set("q", $("q").value.trim());
  for (const name of FILTERS) {
    const v = $(name).value.trim();
    if (v) p.set(name, v);
  }
  // Open notices by default (a hunter bids on what is still open); the API's own default is every notice,
  // so the page always says which it wants and a shared link keeps the choice.
  p.set("open_only", $("include_closed").checked ? "false" : "true");
  if (!$("include_corrigendum").checked) p.set("include_corrigendum", "false");
  return p;
}

function fillForm(p) {
  $("q").value = p.get("q") || "";
  for (const name of FILTERS) $(name).value = p.get(name) || "";
  $("include_closed").checked = p.get("open_only") === "false";
  updateScope();
  $("include_corrigendum").checked = p.get("include_corrigendum") !== "false";
  updateFilterCount();
}

function updateFilterCount() {
  const n = FILTERS.filter((f) => $(f).value.trim()).length + ($("include_corrigendum").checked ? 0 : 1);
  const badge = $("filter-count");
  badge.textContent = String(n);
  badge.hidden = n === 0;
  if (n > 0) $("filters").open = true;
}

function updateScope() {
  $("scope-hint").textContent = $("include_closed").checked
    ? "Showing open and closed notices."
    : "Showing notices still open for bids (closing today or later).";
}

function show(which) {
  for (const id of ["intro", "empty", "error"]) $(id).hidden = id !== which;
}

function errorMessage(body, status) {
  if (body && body.error === "invalid_request" && Array.isArray(body.detail)) {
    return "Please check the form: " + body.detail.map((e) => `${(e.loc || []).slice(-1)[0]}: ${e.msg}`).join("; ");
  }
  if (body && typeof body.detail === "string") return body.detail;
  return `The server answered ${status}.`;
}

async function runSearch(append) {
  const params = append ? state.params : formParams();
  if (!params.get("q")) { $("q").focus(); return; }
  if (!append) {
    state.params = params;
    state.offset = 0;
    state.shown = 0;
    $("result-list").replaceChildren();
    history.replaceState(null, "", "?" + params.toString());
    $("export").href = "/search.csv?" + params.toString();
  }
  const seq = ++state.seq; // only the latest search may render (typing + Enter can start two)
  const query = new URLSearchParams(params);
  query.set("limit", String(PAGE));
  query.set("offset", String(state.offset));
  $("status").textContent = "Searching…";
  $("more").hidden = true;
  let response, body;
  try {
    response = await fetch("/search?" + query.toString(), { headers: { Accept: "application/json" } });
    body = await response.json().catch(() => null);
  } catch (err) {
    if (seq !== state.seq) return;
    return fail("Could not reach the search service. Check your connection and try again.");
  }
  if (seq !== state.seq) return;
  if (!response.ok) return fail(errorMessage(body, response.status));
  const results = body.results || [];
  results.forEach((r, i) => $("result-list").appendChild(card(r, state.offset + i, params.get("q"))));
  state.shown += results.length;
  state.offset += results.length;
  $("export").hidden = state.shown === 0;
  if (state.shown === 0) {
    show("empty");
    $("show-closed").hidden = $("include_closed").checked;
    $("status").textContent = "";
  } else {
    show(null);
    const pref = body.sector_preference ? ` · favouring ${body.sector_preference}` : "";
    $("status").textContent = `Showing ${state.shown} result${state.shown === 1 ? "" : "s"} ` +
      `(${Math.round(body.took_ms)} ms)${pref}`;
  }
  $("more").hidden = results.length < PAGE || state.offset >= body.total_candidates;
}

function fail(message) {
  $("error-text").textContent = message;
  show("error");
  $("status").textContent = "";
}

function daysUntil(iso) {
  const [y, m, d] = iso.split("-").map(Number);
  const today = new Date();
  const a = Date.UTC(y, m - 1, d);
  const b = Date.UTC(today.getFullYear(), today.getMonth(), today.getDate());
  return Math.round((a - b) / 86400000);
}

function closingText(iso) {
  if (!iso) return ["Not given", ""];
  const n = daysUntil(iso);
  const date = new Date(iso + "T00:00:00").toLocaleDateString(undefined, { day: "numeric", month: "short", year: "numeric" });
  if (n < 0) return [`${date} · closed ${-n} day${n === -1 ? "" : "s"} ago`, "closed"];
  if (n === 0) return [`${date} · closes today`, "soon"];
  return [`${date} · closes in ${n} day${n === 1 ? "" : "s"}`, n <= 7 ? "soon" : ""];
}

// Original amount, and the reporting-currency value when it differs ("PKR 47,683,000 ≈ USD 170,350").
function values(r) {
  const original = money(r.value_amount, r.currency);
  if (r.value_amount === null || r.value_amount === undefined) return original;
  if (r.value_report === null || r.value_report === undefined) {
    return r.report_currency ? `${original} (no ${r.report_currency} rate)` : original;
  }
  if (r.currency === r.report_currency) return original;
  return `${original} ≈ ${money(r.value_report, r.report_currency)}`;
}

function money(amount, currency) {
  if (amount === null || amount === undefined) return "Value not given";
  try {
    if (currency) {
      return new Intl.NumberFormat(undefined, { style: "currency", currency, maximumFractionDigits: 0 }).format(amount);
    }
  } catch (_) { /* unknown currency code */ }
  return `${Math.round(amount).toLocaleString()} ${currency || ""}`.trim();
}

function safeUrl(url) {
  try {
    const u = new URL(url, location.href);
    return u.protocol === "http:" || u.protocol === "https:" ? u.href : null;
  } catch (_) {
    return null;
  }
}

// The enricher's summary repeats type, title, buyer and place, which the card already shows.
function summaryText(r) {
  let s = r.summary || "";
  if (r.procurement_type && s.startsWith(r.procurement_type + ": ")) s = s.slice(r.procurement_type.length + 2);
  if (r.buyer) {
    const i = s.lastIndexOf(" (" + r.buyer);
    if (i > 0) s = s.slice(0, i);
  }
  if (s.startsWith(r.title)) s = s.slice(r.title.length).replace(/^[:\s.-]+/, "");
  return s;
}

const UNCLASSIFIED = "Unclassified";
const SURE = 0.75; // as search_api/routers/page.py: below this confidence a sector is marked "likely"

function sectorChip(r) {
  // Unclassified says so; a sector with a CPV code carries its confidence; one without shows as before.
  if (r.sector === UNCLASSIFIED) {
    return { text: UNCLASSIFIED, cls: "sector unclassified", hint: "No sector could be assigned with confidence" };
  }
  if (!r.sector || !r.sector_code) return { text: r.sector, cls: "sector", hint: "" };
  const hint = `CPV division ${r.sector_code} · confidence ${Math.round((r.sector_confidence || 0) * 100)}%`;
  if ((r.sector_confidence || 0) < SURE) return { text: `${r.sector} · likely`, cls: "sector tentative", hint };
  return { text: r.sector, cls: "sector", hint };
}

function card(r, position, query) {
  const node = $("card-template").content.firstElementChild.cloneNode(true);
  node.dataset.id = r.id;
  const link = node.querySelector(".title a");
  link.textContent = r.title;
  link.href = "/t/" + r.id.split("/").map(encodeURIComponent).join("/");
  const source = node.querySelector(".source");
  const href = safeUrl(r.url);
  if (href) source.href = href; else node.querySelector(".source-item").remove();
  node.querySelector(".score").textContent = `match ${Math.round(r.score * 100)}`;
  node.querySelector(".buyer").textContent = r.buyer || "Buyer not given";
  node.querySelector(".summary").textContent = summaryText(r);
  const place = [r.city, r.region, r.country].filter(Boolean).filter((v, i, a) => a.indexOf(v) === i).join(", ");
  node.querySelector(".place").textContent = place || "Not given";
  const [text, cls] = closingText(r.closing_date);
  const closing = node.querySelector(".closing");
  closing.textContent = text;
  if (cls) closing.classList.add(cls);
  node.querySelector(".value").textContent = values(r);
  const tags = node.querySelector(".tags");
  const sector = sectorChip(r);
  for (const [label, cls2, hint] of [[sector.text, sector.cls, sector.hint], [r.procurement_type, ""],
    [r.is_corrigendum ? "Corrigendum" : "", "corr"], [r.id, ""]]) {
    if (!label) continue;
    const t = document.createElement("span");
    t.className = "tag" + (cls2 ? " " + cls2 : "");
    t.textContent = label;
    if (hint) t.title = hint;
    tags.appendChild(t);
  }
  const group = node.querySelector(".feedback");
  group.setAttribute("aria-label", `Was "${r.title}" relevant?`);
  for (const btn of group.querySelectorAll(".thumb")) {
    btn.addEventListener("click", () => sendFeedback(group, btn, r.id, position, query));
  }
  return node;
}

async function sendFeedback(group, btn, id, position, query) {
  const rating = btn.classList.contains("up") ? 1 : -1;
  const thanks = group.querySelector(".thanks");
  for (const b of group.querySelectorAll(".thumb")) b.setAttribute("aria-pressed", String(b === btn));
  thanks.classList.remove("failed");
  thanks.textContent = "Sending…";
  try {
    const response = await fetch("/feedback", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ query, result_id: id, rating, position, session_id: sessionId }),
    });
    if (!response.ok) throw new Error(String(response.status));
    thanks.textContent = "Thanks for the feedback";
  } catch (_) {
    btn.setAttribute("aria-pressed", "false");
    thanks.classList.add("failed");
    thanks.textContent = "Could not send feedback";
  }
}

function addOption(select, value, label) {
  const opt = document.createElement("option");
  opt.value = value;
  opt.textContent = label;
  select.appendChild(opt);
}

async function loadSectors(current) {
  // GET /sectors: every sector present with its count, then Unclassified (counted once per index version)
  const response = await fetch("/sectors");
  if (!response.ok) return;
  const body = await response.json();
  const select = $("sector");
  for (const s of body.sectors) addOption(select, s.sector, `${s.sector} (${s.count.toLocaleString()})`);
  if (current.get("sector")) select.value = current.get("sector");
}

async function loadFacets() {
  const current = new URLSearchParams(location.search);
  const sectors = loadSectors(current).catch(() => { /* the sector filter still works through the URL */ });
  try {
    const response = await fetch("/stats");
    if (!response.ok) return;
    const stats = await response.json();
    const select = $("country");
    for (const name of Object.keys(stats.countries).sort()) {
      addOption(select, name, `${name} (${stats.countries[name]})`);
    }
    if (current.get("country")) select.value = current.get("country");
    const when = stats.last_ingest ? new Date(stats.last_ingest).toLocaleString() : "unknown";
    $("index-facts").textContent = `${stats.documents.toLocaleString()} tenders indexed · last update ${when}`;
  } catch (_) { /* filters still work as free text through the URL */ } finally {
    await sectors;
  }
}

document.addEventListener("DOMContentLoaded", async () => {
  $("search-form").addEventListener("submit", (e) => { e.preventDefault(); runSearch(false); });
  $("more").addEventListener("click", () => runSearch(true));
  $("retry").addEventListener("click", () => runSearch(false));
  $("clear-filters").addEventListener("click", () => {
    for (const name of FILTERS) $(name).value = "";
    $("include_corrigendum").checked = true;
    updateFilterCount();
    if ($("q").value.trim()) runSearch(false);
  });
  $("show-closed").addEventListener("click", () => {
    $("include_closed").checked = true;
    updateScope();
    runSearch(false);
  });
  $("include_closed").addEventListener("change", () => { updateScope(); if ($("q").value.trim()) runSearch(false); });
  for (const name of [...FILTERS, "include_corrigendum"]) {
    $(name).addEventListener("change", () => { updateFilterCount(); if ($("q").value.trim()) runSearch(false); });
  }
  const initial = new URLSearchParams(location.search);
  await loadFacets();
  fillForm(initial);
  if (initial.get("q")) runSearch(false); else $("q").focus();
});
