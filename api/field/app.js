/* 家和 · 入户工作 — the cadres' field app.
 *
 * Offline first: the service worker (sw.js) keeps this page; what the cadre records
 * goes into the IndexedDB outbox (outbox.js) at once, stamped on the device with its
 * event_id (crypto.randomUUID) and occurred_at (local time with its offset), and is
 * sent to POST /v1/events whenever there is a network: on load, on reconnect, after
 * each save and every 15 s. Each record then shows the server's answer for it.
 *
 * The token is kept in localStorage (this device) and sent only as a Bearer header.
 * Personal text (notes) is only ever in a POST body and in the outbox: never in a URL,
 * never logged (this file writes nothing to the console), and removed from the outbox
 * once the server has the event. Data becomes text nodes, never markup.
 */
"use strict";

(function () {
  const TOKEN_KEY = "jiahe.field.token";
  const USER_KEY = "jiahe.field.user";
  const LANG_KEY = "jiahe.field.lang";
  const BATCH = 100;
  const RETRY_MS = 15000;
  const LABEL_PREFIX = { flags: "flag.", indicators: "indicator.", channels: "channel.", categories: "category." };

  const I18N = window.FIELD_I18N;
  const VOCAB = window.FIELD_VOCAB;
  const outbox = window.FieldOutbox;
  const $ = (id) => document.getElementById(id);

  const state = {
    token: localStorage.getItem(TOKEN_KEY),
    user: readJson(localStorage.getItem(USER_KEY)),
    lang: localStorage.getItem(LANG_KEY) === "en" ? "en" : "zh",
    view: "worklist",
    worklist: null,   // {at, data, cached}
    records: [],
    syncing: false,
    syncAgain: false,
  };

  function readJson(text) {
    try {
      return text ? JSON.parse(text) : null;
    } catch (e) {
      return null;
    }
  }

  function t(key, vars) {
    let text = (I18N[state.lang] && I18N[state.lang][key]) || I18N.zh[key] || key;
    for (const [k, v] of Object.entries(vars || {})) text = text.split("{" + k + "}").join(String(v));
    return text;
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k.startsWith("data-")) node.setAttribute(k, v);
      else node[k] = v;
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function pad(n, width) {
    return String(n).padStart(width || 2, "0");
  }

  /** The device's clock as ISO 8601 with its UTC offset (the catalog wants an offset). */
  function isoWithOffset(d) {
    const off = -d.getTimezoneOffset();
    const sign = off >= 0 ? "+" : "-";
    const abs = Math.abs(off);
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + "T" +
      pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()) + "." +
      pad(d.getMilliseconds(), 3) + sign + pad(Math.floor(abs / 60)) + ":" + pad(abs % 60);
  }

  function shortTime(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    if (isNaN(d.getTime())) return iso;
    return pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + pad(d.getHours()) + ":" + pad(d.getMinutes());
  }

  function shortDate(iso) {
    const d = new Date(iso);
    if (isNaN(d.getTime())) return iso || "";
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate());
  }

  // -- messages and network state ---------------------------------------------------

  function showMessage(text, kind) {
    const box = $("message");
    box.textContent = text;
    box.dataset.kind = kind || "info";
    box.hidden = !text;
  }

  function renderNet() {
    const online = navigator.onLine;
    const net = $("net");
    net.dataset.state = online ? "online" : "offline";
    net.textContent = t(online ? "net.online" : "net.offline");
  }

  // -- language ---------------------------------------------------------------------

  function buildVocabularies() {
    for (const box of document.querySelectorAll("div.checks[data-vocab]")) {
      box.replaceChildren(...VOCAB[box.dataset.vocab].map((value) => el("label", { class: "check" },
        el("input", { type: "checkbox", name: box.dataset.name, value }),
        el("span", { "data-i18n": LABEL_PREFIX[box.dataset.vocab] + value }))));
    }
    for (const select of document.querySelectorAll("select[data-vocab]")) {
      select.replaceChildren(el("option", { value: "", "data-i18n": "choose" }),
        ...VOCAB[select.dataset.vocab].map((value) =>
          el("option", { value, "data-i18n": LABEL_PREFIX[select.dataset.vocab] + value })));
    }
  }

  function applyLanguage() {
    document.documentElement.lang = state.lang === "en" ? "en" : "zh-CN";
    document.title = t("title");
    for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    renderNet();
    renderWho();
    renderWorklist();
    renderOutbox();
  }

  function toggleLanguage() {
    state.lang = state.lang === "zh" ? "en" : "zh";
    localStorage.setItem(LANG_KEY, state.lang);
    applyLanguage();
  }

  // -- session ----------------------------------------------------------------------

  function renderWho() {
    const who = $("who");
    if (!state.user) {
      who.hidden = true;
      return;
    }
    who.hidden = false;
    who.textContent = t("who", { name: state.user.name, role: t("role." + state.user.role), org: state.user.org_unit });
  }

  function isCommunity(code) {
    return /^[0-9]{12}$/.test(code || "") && !code.endsWith("000");
  }

  function prefillOrgUnits() {
    const code = state.user && isCommunity(state.user.org_unit) ? state.user.org_unit : "";
    for (const input of document.querySelectorAll("form.event-form input[name=org_unit]")) {
      if (!input.value) input.value = code;
    }
  }

  function showSignedIn(signedIn) {
    $("login").hidden = signedIn;
    $("main").hidden = !signedIn;
    $("logout").hidden = !signedIn;
    renderWho();
    if (signedIn) prefillOrgUnits();
  }

  async function signIn(token) {
    let response;
    try {
      response = await fetch("/v1/worklist", { headers: authHeaders(token), cache: "no-store" });
    } catch (e) {
      showMessage(t("error.offline_login"), "error");
      return;
    }
    if (response.status === 401) return showMessage(t("error.401"), "error");
    if (response.status === 403) return showMessage(t("error.403"), "error");
    if (!response.ok) return showMessage(t("error.http", { status: response.status }), "error");
    const data = await response.json();
    state.token = token;
    state.user = data.user;
    localStorage.setItem(TOKEN_KEY, token);
    localStorage.setItem(USER_KEY, JSON.stringify(data.user));
    $("token").value = "";
    showMessage("", "info");
    showSignedIn(true);
    await keepWorklist(data);
    showView("worklist");
    sync();
  }

  async function signOut() {
    state.token = null;
    state.user = null;
    state.worklist = null;
    localStorage.removeItem(TOKEN_KEY);
    localStorage.removeItem(USER_KEY);
    await outbox.deleteMeta("worklist");
    showSignedIn(false);
    renderWorklist();
  }

  function authHeaders(token) {
    return { Authorization: "Bearer " + (token || state.token), Accept: "application/json" };
  }

  // -- views ------------------------------------------------------------------------

  function showView(name) {
    state.view = name;
    for (const section of document.querySelectorAll("main .view")) section.hidden = section.id !== "view-" + name;
    for (const tab of document.querySelectorAll(".tabs [data-view]")) {
      tab.setAttribute("aria-selected", String(tab.dataset.view === name));
    }
    if (name === "outbox") renderOutbox();
  }

  // -- the work list ----------------------------------------------------------------

  async function keepWorklist(data) {
    state.worklist = { at: new Date().toISOString(), data, cached: false };
    await outbox.setMeta("worklist", { at: state.worklist.at, data });
    renderWorklist();
  }

  async function loadWorklist() {
    if (!state.token) return;
    let response;
    try {
      response = await fetch("/v1/worklist", { headers: authHeaders(), cache: "no-store" });
    } catch (e) {
      const kept = await outbox.getMeta("worklist");
      if (kept) state.worklist = { at: kept.at, data: kept.data, cached: true };
      renderWorklist();
      return;
    }
    if (response.status === 401) {
      showMessage(t("error.401"), "error");
      await signOut();
      return;
    }
    if (!response.ok) {
      showMessage(t("error.http", { status: response.status }), "error");
      return;
    }
    await keepWorklist(await response.json());
  }

  function more(section) {
    const hidden = section.total - section.rows.length;
    return hidden > 0 ? el("li", { class: "more" }, t("worklist.more", { n: hidden })) : null;
  }

  function fillList(id, section, render) {
    const list = $(id);
    if (!section || !section.rows.length) {
      list.replaceChildren(el("li", { class: "empty" }, t("worklist.empty")));
      return;
    }
    list.replaceChildren(...section.rows.map(render), ...[more(section)].filter(Boolean));
  }

  function renderWorklist() {
    const asOf = $("worklist-as-of");
    const kept = state.worklist;
    if (!kept) {
      asOf.textContent = t("worklist.none");
      for (const id of ["wl-visits", "wl-warnings", "wl-gaps"]) $(id).replaceChildren();
      return;
    }
    const offline = kept.cached && !navigator.onLine;
    asOf.textContent = t(offline ? "worklist.cached" : "worklist.as_of", { at: shortTime(kept.at) });
    asOf.dataset.cached = String(kept.cached);
    const data = kept.data;
    fillList("wl-visits", data.visits, (v) => el("li", {
      class: "item" + (v.visit_overdue ? " overdue" : ""), "data-household": v.household_id,
    },
    el("div", { class: "line" },
      el("strong", { class: "household" }, v.household_id),
      v.key_household ? el("span", { class: "tag key" }, t("key")) : null,
      v.visit_overdue ? el("span", { class: "tag late" }, t("overdue")) : null),
    el("div", { class: "line sub" }, t("due", { at: shortDate(v.next_visit_due) }), " · ", v.org_unit),
    v.flags.filter((f) => f !== "key_household").length
      ? el("div", { class: "line sub" }, v.flags.filter((f) => f !== "key_household").map((f) => t("flag." + f)).join("、"))
      : null,
    el("button", { type: "button", class: "record-visit", "data-household": v.household_id, "data-org-unit": v.org_unit },
      t("worklist.record_visit"))));
    fillList("wl-warnings", data.warnings, (w) => el("li", { class: "item", "data-warning-id": w.warning_id },
      el("div", { class: "line" },
        el("span", { class: "lvl", "data-level": w.level }, t("level." + w.level)),
        el("strong", {}, t("rule." + w.rule_id)),
        el("span", { class: "tag" }, t("status." + w.status))),
      el("div", { class: "line sub" }, w.household_id, " · ", t("raised_at", { at: shortTime(w.raised_at) }))));
    fillList("wl-gaps", data.guardianship, (g) => el("li", {
      class: "item" + (g.overdue ? " overdue" : ""), "data-household": g.household_id,
    },
    el("div", { class: "line" },
      el("strong", { class: "household" }, g.household_id), " · ", g.child_ref,
      g.overdue ? el("span", { class: "tag late" }, t("overdue")) : null),
    el("div", { class: "line sub" }, t("followup_due", { at: shortDate(g.followup_due) }), " · ", g.org_unit)));
  }

  function startVisit(household, orgUnit) {
    const form = $("form-visit");
    form.elements.household_id.value = household;
    form.elements.org_unit.value = orgUnit;
    showView("visit");
    form.elements.household_id.focus();
  }

  // -- recording --------------------------------------------------------------------

  function checked(form, name) {
    return Array.from(form.querySelectorAll("input[type=checkbox][name=" + name + "]:checked")).map((i) => i.value);
  }

  function eventData(form) {
    const type = form.dataset.type;
    const notes = form.elements.notes ? form.elements.notes.value.trim() : "";
    if (type === "household.registered") {
      return Object.assign({ flags: checked(form, "flags") }, notes ? { notes } : {});
    }
    if (type === "screening.visit_recorded") {
      return Object.assign({ indicators: checked(form, "indicators") }, notes ? { notes } : {});
    }
    return { channel: form.elements.channel.value, category: form.elements.category.value,
      urgent: form.elements.urgent.checked };
  }

  async function record(form) {
    const event = {
      event_id: crypto.randomUUID(),
      type: form.dataset.type,
      schema_version: 1,
      occurred_at: isoWithOffset(new Date()),
      org_unit: form.elements.org_unit.value.trim(),
      household_id: form.elements.household_id.value.trim(),
      data: eventData(form),
    };
    if (state.user) event.actor = state.user.name;
    await outbox.add(event);
    const orgUnit = form.elements.org_unit.value;
    form.reset();
    form.elements.org_unit.value = orgUnit;
    await refreshRecords();
    showMessage(t("saved", { n: pendingCount() }), "info");
    sync();
  }

  // -- the outbox -------------------------------------------------------------------

  function pendingCount() {
    return state.records.filter((r) => r.status === "pending").length;
  }

  async function refreshRecords() {
    state.records = await outbox.all();
    renderOutbox();
  }

  function renderOutbox() {
    const badge = $("pending-count");
    const n = pendingCount();
    badge.hidden = n === 0;
    badge.textContent = String(n);
    badge.title = t("pending", { n });
    const list = $("outbox-list");
    if (!state.records.length) {
      list.replaceChildren(el("li", { class: "empty" }, t("outbox.empty")));
      return;
    }
    list.replaceChildren(...state.records.slice().reverse().map((r) => el("li", {
      class: "item record", "data-event-id": r.event_id, "data-status": r.status,
    },
    el("div", { class: "line" },
      el("strong", {}, t("type." + r.event.type)),
      el("span", { class: "household" }, r.event.household_id),
      el("span", { class: "status", "data-status": r.status }, t("status." + r.status))),
    el("div", { class: "line sub" }, shortTime(r.event.occurred_at), " · ", r.event.org_unit),
    r.reason ? el("div", { class: "reason" }, r.reason) : null)));
  }

  function detailOf(body) {
    if (!body || body.detail === undefined) return "";
    if (typeof body.detail === "string") return body.detail;
    if (Array.isArray(body.detail)) {
      return body.detail.map((d) => (d.loc ? d.loc.join(".") + ": " : "") + (d.msg || "")).join("; ");
    }
    return JSON.stringify(body.detail);
  }

  /** Per-event results, wherever the answer carries them (a 403 refusal may, too). */
  function resultsOf(body) {
    if (body && Array.isArray(body.results)) return body.results;
    if (body && body.detail && Array.isArray(body.detail.results)) return body.detail.results;
    return null;
  }

  function settle(record, status, reason) {
    record.status = status;
    record.reason = reason || "";
    record.answered_at = new Date().toISOString();
    if (status !== "rejected" && record.event.data && "notes" in record.event.data) {
      // the server keeps it now (sealed): the device need not
      record.event = Object.assign({}, record.event, { data: Object.assign({}, record.event.data) });
      delete record.event.data.notes;
    }
    return outbox.put(record);
  }

  /** Send what waits; one send at a time, so an event never races itself. */
  async function sync() {
    if (!state.token) return;
    if (state.syncing) {
      state.syncAgain = true;
      return;
    }
    state.syncing = true;
    const tally = { accepted: 0, duplicate: 0, rejected: 0 };
    let problem = null;
    try {
      do {
        state.syncAgain = false;
        const pending = (await outbox.all()).filter((r) => r.status === "pending");
        for (let i = 0; i < pending.length && !problem; i += BATCH) {
          const batch = pending.slice(i, i + BATCH);
          problem = await sendBatch(batch, tally);
        }
      } while (state.syncAgain && !problem);
    } finally {
      state.syncing = false;
    }
    await refreshRecords();
    if (problem) showMessage(problem, "error");
    else if (tally.accepted + tally.duplicate + tally.rejected) {
      showMessage(t("sent", tally), tally.rejected ? "error" : "info");
    }
    renderNet();
  }

  /** One POST; null when the server answered for every event, else why not (they wait). */
  async function sendBatch(batch, tally) {
    let response;
    try {
      response = await fetch("/v1/events", {
        method: "POST", cache: "no-store",
        headers: Object.assign({ "Content-Type": "application/json" }, authHeaders()),
        body: JSON.stringify(batch.map((r) => r.event)),
      });
    } catch (e) {
      return navigator.onLine ? t("error.network") : "";
    }
    let body = null;
    try {
      body = await response.json();
    } catch (e) {
      body = null;
    }
    const results = resultsOf(body);
    if (results) {
      for (const result of results) {
        const record = batch.find((r) => r.event_id === result.event_id) || batch[result.index];
        if (!record) continue;
        const status = ["accepted", "duplicate", "rejected"].includes(result.status) ? result.status : "rejected";
        tally[status] += 1;
        await settle(record, status, result.reason);
      }
      return null;
    }
    if (response.status === 401) {
      $("login").hidden = false;
      return t("error.401");
    }
    if (response.status >= 500) return t("error.http", { status: response.status });
    // any other refusal of the whole batch (403 role, 400, 413, 422): each event gets it
    const reason = detailOf(body) || t("error.http", { status: response.status });
    for (const record of batch) {
      tally.rejected += 1;
      await settle(record, "rejected", reason);
    }
    return null;
  }

  // -- start ------------------------------------------------------------------------

  function wire() {
    $("lang").addEventListener("click", toggleLanguage);
    $("logout").addEventListener("click", () => { signOut(); });
    $("login-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const token = $("token").value.trim();
      if (token) signIn(token);
    });
    for (const tab of document.querySelectorAll(".tabs [data-view]")) {
      tab.addEventListener("click", () => showView(tab.dataset.view));
    }
    for (const form of document.querySelectorAll("form.event-form")) {
      form.addEventListener("submit", (e) => {
        e.preventDefault();
        record(form);
      });
    }
    $("worklist-refresh").addEventListener("click", () => { loadWorklist(); });
    $("wl-visits").addEventListener("click", (e) => {
      const button = e.target.closest("button.record-visit");
      if (button) startVisit(button.dataset.household, button.dataset.orgUnit);
    });
    $("outbox-send").addEventListener("click", () => { sync(); });
    $("outbox-clear").addEventListener("click", async () => {
      await outbox.clearDone();
      await refreshRecords();
    });
    window.addEventListener("online", () => {
      renderNet();
      sync();
      loadWorklist();
    });
    window.addEventListener("offline", renderNet);
    setInterval(() => { if (navigator.onLine && pendingCount()) sync(); }, RETRY_MS);
  }

  async function start() {
    buildVocabularies();
    wire();
    applyLanguage();
    if ("serviceWorker" in navigator) {
      navigator.serviceWorker.register("/field/sw.js", { scope: "/field/" }).catch(() => undefined);
    }
    await refreshRecords();
    if (!state.token) {
      showSignedIn(false);
      return;
    }
    showSignedIn(true);
    showView("worklist");
    const kept = await outbox.getMeta("worklist");
    if (kept) state.worklist = { at: kept.at, data: kept.data, cached: true };
    renderWorklist();
    document.body.dataset.ready = "true";
    await loadWorklist();
    await sync();
  }

  start().finally(() => { document.body.dataset.ready = "true"; });
})();
