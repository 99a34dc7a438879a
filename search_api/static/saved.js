// Saved searches on the search page: save the current query + filters, list and delete yours.
// The owner token from the first save is kept in localStorage and sent as a Bearer token.
"use strict";

(() => {
  const TOKEN_KEY = "tender-owner-token";
  const el = (id) => document.getElementById(id);
  const TEXT = ["country", "region", "sector", "procurement_type", "buyer", "closing_after", "closing_before",
    "currency"];
  const NUMBERS = ["min_value", "max_value"];

  function token() {
    try { return localStorage.getItem(TOKEN_KEY); } catch (_) { return null; }
  }

  function headers(json) {
    const h = json ? { "Content-Type": "application/json" } : {};
    const t = token();
    if (t) h.Authorization = `Bearer ${t}`;
    return h;
  }

  function currentParams() {
    const params = { q: el("q").value.trim() };
    for (const name of TEXT) {
      const v = el(name).value.trim();
      if (v) params[name] = v;
    }
    for (const name of NUMBERS) {
      const v = el(name).value.trim();
      if (v) params[name] = Number(v);
    }
    if (!el("include_closed").checked) params.open_only = true;
    if (!el("include_corrigendum").checked) params.include_corrigendum = false;
    return params;
  }

  function describe(params) {
    const filters = Object.entries(params).filter(([k]) => k !== "q").map(([k, v]) => `${k.replace("_", " ")}: ${v}`);
    return `“${params.q}”` + (filters.length ? ` · ${filters.join(" · ")}` : "");
  }

  function say(text, failed) {
    const status = el("save-status");
    status.textContent = text;
    status.classList.toggle("failed", Boolean(failed));
  }

  function problem(body, status) {
    if (body && Array.isArray(body.detail)) return body.detail.map((e) => e.msg).join("; ");
    if (body && typeof body.detail === "string") return body.detail;
    return `The server answered ${status}.`;
  }

  function item(s) {
    const li = document.createElement("li");
    li.dataset.id = s.id;
    const info = document.createElement("div");
    const name = document.createElement("strong");
    name.textContent = s.name;
    const what = document.createElement("div");
    what.className = "what";
    const via = { feed: "feed only", email: `email to ${s.email}`, webhook: `webhook ${s.webhook_url}` }[s.delivery];
    what.textContent = `${describe(s.params)} · ${via}`;
    info.append(name, what);
    const actions = document.createElement("div");
    actions.className = "actions";
    const feed = document.createElement("a");
    feed.href = s.feed_url;
    feed.textContent = "Atom feed";
    const del = document.createElement("button");
    del.type = "button";
    del.className = "link";
    del.textContent = "Delete";
    del.setAttribute("aria-label", `Delete saved search ${s.name}`);
    del.addEventListener("click", () => remove(s.id));
    actions.append(feed, del);
    li.append(info, actions);
    return li;
  }

  async function load() {
    if (!token()) return;
    const response = await fetch("/saved-searches", { headers: headers(false) }).catch(() => null);
    if (!response || !response.ok) return;
    const items = (await response.json()).items || [];
    el("saved-list").replaceChildren(...items.map(item));
    el("saved-count").textContent = String(items.length);
    el("saved-count").hidden = items.length === 0;
  }

  async function save(event) {
    event.preventDefault();
    const params = currentParams();
    if (!params.q) { say("Type a search first, then save it.", true); el("q").focus(); return; }
    const delivery = el("save-delivery").value;
    const body = { name: el("save-name").value.trim(), params, delivery };
    if (delivery === "email") body.email = el("save-target").value.trim();
    if (delivery === "webhook") body.webhook_url = el("save-target").value.trim();
    say("Saving…");
    let response, data;
    try {
      response = await fetch("/saved-searches", { method: "POST", headers: headers(true), body: JSON.stringify(body) });
      data = await response.json().catch(() => null);
    } catch (_) {
      say("Could not reach the service.", true);
      return;
    }
    if (!response.ok) { say(problem(data, response.status), true); return; }
    if (data.token) {
      try { localStorage.setItem(TOKEN_KEY, data.token); } catch (_) { /* private mode: this page only */ }
    }
    say(data.webhook_secret ? `Saved. Webhook signing secret (shown once): ${data.webhook_secret}` : "Saved.");
    el("save-name").value = "";
    await load();
  }

  async function remove(id) {
    const response = await fetch(`/saved-searches/${encodeURIComponent(id)}`, { method: "DELETE", headers: headers(false) })
      .catch(() => null);
    if (!response || !response.ok) { say("Could not delete the saved search.", true); return; }
    say("Deleted.");
    await load();
  }

  function toggleTarget() {
    const kind = el("save-delivery").value;
    el("save-target-field").hidden = kind === "feed";
    el("save-target-label").textContent = kind === "webhook" ? "Webhook URL (http or https)" : "Email address";
    el("save-target").required = kind !== "feed";
    el("save-target").type = kind === "email" ? "email" : "url";
  }

  document.addEventListener("DOMContentLoaded", () => {
    el("save-form").addEventListener("submit", save);
    el("save-delivery").addEventListener("change", toggleTarget);
    toggleTarget();
    load();
  });
})();
