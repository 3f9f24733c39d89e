/* 家和 chairs' workspace: vanilla JS over the /v1/* API.

   Safety rules of this file:
   * data from the API is only ever put into the page as text (textContent,
     createTextNode, setAttribute of fixed attribute names), never parsed as HTML;
   * the bearer token lives in sessionStorage (this tab only) and is sent in
     the Authorization header, never in a URL;
   * the live inbox reads /v1/alerts/stream with fetch() streaming, because
     EventSource cannot send the Authorization header. */
"use strict";

(function () {
  const DICT = window.JIAHE_I18N;
  const LANG_KEY = "jiahe.lang";
  const TOKEN_KEY = "jiahe.token";
  const LEVELS = ["red", "orange", "yellow"];
  const STATUS_RANK = { open: 0, acknowledged: 1, resolved: 2 };
  const HANDLING = ["community", "street", "district", "city"];
  const DISTRICTS = ["230102", "230103", "230104", "230108", "230109", "230110", "230111",
    "230112", "230113", "230123", "230124", "230125", "230126", "230127", "230128", "230129",
    "230183", "230184"];
  const BEIJING_OFFSET_MS = 8 * 3600 * 1000;
  const RISKS = ["low", "medium", "high"];
  const VIEWS = ["inbox", "ledgers", "referrals", "kpis", "overview"];
  const REFERRAL_COLUMNS = ["referral_id", "household_id", "district", "agency", "basis",
    "warning_id", "sent_at", "answered_at", "status", "outcome", "minutes_to_answer", "overdue"];
  // lifecycle record fields shown in a warning's timeline (ids and instants are shown apart)
  const HISTORY_FIELDS = ["level", "risk", "agency", "basis", "outcome", "assignee", "from_level", "to_level",
    "handling_level", "handling_org_unit", "from_org_unit", "to_org_unit", "referral_id"];

  const state = {
    lang: localStorage.getItem(LANG_KEY) === "en" ? "en" : "zh",
    token: sessionStorage.getItem(TOKEN_KEY) || "",
    scope: null,
    alerts: new Map(),
    fresh: new Set(),
    ledger: null,
    kpis: null,
    view: "inbox",
    stream: null,
    lastEventId: null,
    resolving: null,
    assigning: null,
    assessing: null,
    reopening: null,
    referring: null,
    consent: null,
    referrals: null,
    history: null,
    messageTimer: null,
  };

  // -- helpers ---------------------------------------------------------------

  const $ = (id) => document.getElementById(id);

  function t(key, vars) {
    let text = DICT[state.lang][key];
    if (text === undefined) text = DICT.zh[key];
    if (text === undefined) text = DICT.en[key];
    if (text === undefined) text = key;
    if (vars) {
      for (const [k, v] of Object.entries(vars)) text = text.split("{" + k + "}").join(String(v));
    }
    return text;
  }

  function known(key) {
    return DICT[state.lang][key] !== undefined;
  }

  /* el("td", {className: "x", dataset: {a: "1"}}, "text", otherNode) — children are text or nodes. */
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (k === "dataset") Object.assign(node.dataset, v);
      else if (k === "className") node.className = v;
      else if (k === "onclick") node.addEventListener("click", v);
      else if (k === "title") node.title = v;
      else if (k === "type") node.type = v;
      else if (k === "disabled") node.disabled = v;
      else throw new Error("el: unsupported property " + k);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  function districtName(code) {
    if (!code) return "—";
    const six = String(code).slice(0, 6);
    if (six === "230100") return t("city");
    return known("d." + six) ? t("d." + six) : String(code);
  }

  function pad(n) {
    return String(n).padStart(2, "0");
  }

  /* ISO instant → "YYYY-MM-DD HH:mm" in Beijing time (the users are in Harbin). */
  function formatInstant(iso) {
    if (!iso) return "—";
    const ms = Date.parse(iso);
    if (Number.isNaN(ms)) return String(iso);
    const d = new Date(ms + BEIJING_OFFSET_MS);
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) +
      " " + pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes());
  }

  /* <input type=datetime-local> value, read as Beijing time → ISO 8601 with offset. */
  function asOfParam(value) {
    if (!value) return null;
    return (value.length === 16 ? value + ":00" : value) + "+08:00";
  }

  function translated(prefix, value) {
    if (value === null || value === undefined || value === "") return "—";
    return known(prefix + value) ? t(prefix + value) : String(value);
  }

  function riskBadge(risk) {
    if (!risk) return "—";
    const cls = RISKS.includes(risk) ? risk : "none";
    return el("span", { className: "risk-badge risk-" + cls, dataset: { risk: String(risk) } }, translated("risk.", risk));
  }

  function levelBadge(level) {
    const cls = LEVELS.includes(level) ? level : "none";
    return el("span", { className: "lvl lvl-" + cls, dataset: { level: String(level) } },
      translated("level.", level));
  }

  // -- messages and errors -----------------------------------------------------

  class ApiError extends Error {
    constructor(status, detail) {
      super("HTTP " + status);
      this.status = status;
      this.detail = detail;
    }
  }

  function showMessage(text, kind) {
    const box = $("message");
    box.textContent = text;
    box.dataset.kind = kind;
    box.hidden = false;
    clearTimeout(state.messageTimer);
    if (kind === "info") state.messageTimer = setTimeout(() => { box.hidden = true; }, 6000);
  }

  function errorText(err) {
    if (!(err instanceof ApiError)) return t("err.network");
    if (err.status === 0) return t("err.network");
    // a refused command: the server's reason is the useful part
    if (err.status === 409 && err.detail) return t("err.409.detail", { detail: err.detail });
    if ([401, 403, 404, 409].includes(err.status)) return t("err." + err.status);
    if (err.status === 422) return t("err.422", { detail: err.detail });
    return t("err.server", { status: err.status, detail: err.detail });
  }

  function showError(err) {
    if (!(err instanceof ApiError)) console.error(err);
    showMessage(errorText(err), "error");
    if (err instanceof ApiError && err.status === 401) signOut(false);
  }

  function detailOf(body) {
    if (!body || body.detail === undefined) return "";
    if (typeof body.detail === "string") return body.detail;
    if (Array.isArray(body.detail)) {
      return body.detail.map((d) => (d.loc ? d.loc.join(".") + ": " : "") + (d.msg || "")).join("; ");
    }
    return JSON.stringify(body.detail);
  }

  async function api(method, path, body) {
    const headers = { Authorization: "Bearer " + state.token, Accept: "application/json" };
    const init = { method, headers, cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, String(e));
    }
    let data = null;
    try {
      data = await response.json();
    } catch (e) {
      data = null;
    }
    if (!response.ok) throw new ApiError(response.status, detailOf(data));
    return data;
  }

  function query(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
    const s = q.toString();
    return s ? "?" + s : "";
  }

  // -- language ------------------------------------------------------------------

  function applyLanguage() {
    document.documentElement.lang = state.lang === "en" ? "en" : "zh-CN";
    document.title = t("title");
    for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    renderWho();
    renderLive(state.liveState || "off");
    fillDistrictSelects();
    renderAll();
    if (state.referring) renderConsent();
    if (state.history) renderHistory();
  }

  function toggleLanguage() {
    state.lang = state.lang === "zh" ? "en" : "zh";
    localStorage.setItem(LANG_KEY, state.lang);
    applyLanguage();
  }

  // -- session -------------------------------------------------------------------

  function renderWho() {
    $("who").textContent = state.scope
      ? t("who", { scope: districtName(state.scope) + " (" + state.scope + ")" }) : "";
  }

  function renderLive(which) {
    state.liveState = which;
    const node = $("live");
    node.dataset.state = which;
    node.className = "live " + which;
    node.textContent = t(which === "on" ? "live.on" : which === "retry" ? "live.retry" : "live.off");
  }

  async function signIn(token) {
    state.token = token;
    try {
      const kpis = await api("GET", "/v1/kpis");
      state.scope = kpis.scope;
      state.kpis = kpis;
    } catch (err) {
      showError(err);
      if (!(err instanceof ApiError) || err.status !== 0) signOut(false);
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    $("message").hidden = true;
    $("login").hidden = true;
    $("main").hidden = false;
    $("logout").hidden = false;
    renderWho();
    fillDistrictSelects();
    startStream();
    showView(viewFromHash());
  }

  function signOut(clearMessage) {
    if (state.stream) state.stream.abort();
    state.stream = null;
    state.token = "";
    state.scope = null;
    state.alerts.clear();
    state.ledger = null;
    ledgerLoads++;  // a ledger still on its way belongs to the session that ended
    state.kpis = null;
    state.lastEventId = null;
    sessionStorage.removeItem(TOKEN_KEY);
    $("main").hidden = true;
    $("logout").hidden = true;
    $("login").hidden = false;
    $("token").value = "";
    renderWho();
    renderLive("off");
    if (clearMessage) $("message").hidden = true;
  }

  // -- views -----------------------------------------------------------------------

  function viewFromHash() {
    const name = location.hash.replace("#", "");
    return VIEWS.includes(name) ? name : "inbox";
  }

  function showView(name) {
    state.view = name;
    for (const tab of document.querySelectorAll("[data-view]")) {
      tab.setAttribute("aria-selected", tab.dataset.view === name ? "true" : "false");
    }
    for (const v of VIEWS) $("view-" + v).hidden = v !== name;
    if (location.hash !== "#" + name) history.replaceState(null, "", "#" + name);
    if (name === "ledgers" && state.ledger === null) loadLedger();
    if (name === "referrals") loadReferrals();
    if (name === "kpis") loadKpis();
    renderAll();
  }

  function renderAll() {
    if (!state.scope) return;
    renderInbox();
    renderLedger();
    renderReferrals();
    renderKpis();
    renderOverview();
  }

  function scopeDistricts() {
    if (!state.scope) return [];
    if (state.scope.endsWith("00000000")) {
      return DISTRICTS.filter((d) => d.startsWith(state.scope.slice(0, 4)));
    }
    return [state.scope.slice(0, 6)];
  }

  function fillDistrictSelects() {
    for (const select of document.querySelectorAll(".district-select")) {
      const current = select.value;
      select.replaceChildren(el("option", {}, t("filter.scope")));
      select.firstChild.value = "";
      for (const code of scopeDistricts()) {
        const option = el("option", {}, districtName(code) + " " + code);
        option.value = code + "000000";
        select.append(option);
      }
      select.value = current;
      if (select.value !== current) select.value = "";
    }
  }

  // -- inbox -------------------------------------------------------------------------

  /* A row from the API replaces the local one unless it is older: a status moves forward,
     except that a reopening (a higher ``reopened`` count) starts the warning over. */
  function mergeRow(row) {
    const old = state.alerts.get(row.warning_id);
    if (!old) {
      state.alerts.set(row.warning_id, row);
    } else if ((row.reopened || 0) > (old.reopened || 0)
      || ((row.reopened || 0) === (old.reopened || 0)
        && (STATUS_RANK[row.status] ?? 0) >= (STATUS_RANK[old.status] ?? 0))) {
      state.alerts.set(row.warning_id, Object.assign({}, old, row));
    }
  }

  const INBOX_PAGES = 20;  // at most 20 000 warnings held in the page

  async function loadInbox() {
    try {
      // the inbox comes a page at a time; the newest raises are on the last pages
      let offset = 0;
      for (let page = 0; page < INBOX_PAGES && offset !== null; page++) {
        const data = await api("GET", "/v1/alerts?offset=" + offset);
        for (const row of data.alerts) mergeRow(row);
        offset = data.next_offset ?? null;
      }
      renderInbox();
      renderOverview();
    } catch (err) {
      showError(err);
    }
  }

  /* One SSE payload ({record, warning}) applied to the local inbox. */
  function applyRecord(payload) {
    const r = payload.record;
    const w = payload.warning;
    if (!r || !w || !w.warning_id) {  // a record about no warning (e.g. a referral's answer)
      if (r && String(r.type || "").startsWith("referral.") && state.view === "referrals") loadReferrals();
      return;
    }
    let row = state.alerts.get(w.warning_id);
    if (!row) {
      row = Object.assign({ raised_at: null, status: "open", handling_level: "community",
        acknowledged_at: null, resolved_at: null }, w);
      state.alerts.set(w.warning_id, row);
      if (r.type === "warning.raised") {
        state.fresh.add(w.warning_id);
        showMessage(t("new.alert", { household: w.household_id, rule: translated("rule.", w.rule_id) }), "info");
      }
    }
    const rank = STATUS_RANK[row.status] ?? 0;
    if (r.type === "warning.raised") {
      row.raised_at = row.raised_at || r.at;
      if (rank === 0 && !row.handling_org_unit) {
        row.handling_level = r.handling_level;
        row.handling_org_unit = r.handling_org_unit;
      }
    } else if (r.type === "warning.escalated" && rank < 2) {
      if (HANDLING.indexOf(r.to_level) > HANDLING.indexOf(row.handling_level)) {
        row.handling_level = r.to_level;
        row.handling_org_unit = r.handling_org_unit;
      }
    } else if (r.type === "warning.acknowledged" && rank < 1) {
      row.status = "acknowledged";
      row.acknowledged_at = r.at;
    } else if (r.type === "warning.resolved" && rank < 2) {
      row.status = "resolved";
      row.resolved_at = r.at;
    } else if (r.type === "warning.assigned") {
      row.assignee = r.assignee;
    } else if (r.type === "warning.assessed") {
      row.risk = r.risk;
    } else if (r.type === "warning.reopened" && rank === 2) {
      Object.assign(row, { status: "open", acknowledged_at: null, resolved_at: null,
        handling_level: "community", reopened: (row.reopened || 0) + 1 });
      if (r.handling_org_unit) row.handling_org_unit = r.handling_org_unit;
    }
    if (state.history && state.history.warning_id === w.warning_id) loadHistory(state.history.row);
    if (r.type.startsWith("referral.") && state.view === "referrals") loadReferrals();
    renderInbox();
    renderOverview();
  }

  function renderInbox() {
    const status = $("inbox-status").value;
    const level = $("inbox-level").value;
    // open first, then red → yellow, then newest first
    const rows = [...state.alerts.values()]
      .filter((r) => (!status || r.status === status) && (!level || r.level === level))
      .sort((a, b) => (STATUS_RANK[a.status] ?? 0) - (STATUS_RANK[b.status] ?? 0)
        || LEVELS.indexOf(a.level) - LEVELS.indexOf(b.level)
        || String(b.raised_at || "").localeCompare(String(a.raised_at || "")));
    const body = $("inbox-table").tBodies[0];
    body.replaceChildren(...rows.map(inboxRow));
    $("inbox-empty").hidden = rows.length > 0;
    $("inbox-count").textContent = t("count", { n: rows.length });
  }

  function inboxRow(r) {
    const actions = el("div", { className: "actions" });
    if (r.status === "open") {
      actions.append(el("button", { type: "button", className: "ack", onclick: () => acknowledge(r) }, t("ack")));
    }
    const household = r.household_id !== null && r.household_id !== undefined;  // surges have none
    if (r.status !== "resolved" && household) {
      actions.append(el("button", { type: "button", className: "assess", onclick: () => openAssess(r) }, t("assess")));
    }
    if (r.status !== "resolved") {
      actions.append(el("button", { type: "button", className: "assign", onclick: () => openAssign(r) }, t("assign")));
      actions.append(el("button", { type: "button", className: "resolve", onclick: () => openResolve(r) }, t("resolve")));
    } else if (household) {
      actions.append(el("button", { type: "button", className: "reopen", onclick: () => openReopen(r) }, t("reopen")));
    }
    if (household) {
      actions.append(el("button", { type: "button", className: "refer", onclick: () => openReferral(r) }, t("refer")));
    }
    actions.append(el("button", { type: "button", className: "history", onclick: () => openHistory(r) }, t("history")));
    const tr = el("tr", { dataset: { warningId: r.warning_id, status: r.status, district: r.district || "" },
      className: (state.fresh.has(r.warning_id) ? "fresh " : "") + "st-" + r.status },
    el("td", {}, levelBadge(r.level)),
    el("td", { title: r.rule_id, className: "rule" }, translated("rule.", r.rule_id)),
    el("td", { className: "mono household" }, r.household_id),
    el("td", {}, districtName(r.district)),
    el("td", { className: "mono" }, r.org_unit),
    el("td", {}, formatInstant(r.raised_at)),
    el("td", {}, translated("handling.", r.handling_level)),
    el("td", { className: "status" }, translated("status.", r.status)),
    el("td", { className: "risk" }, riskBadge(r.risk)),
    el("td", { className: "assignee" }, r.assignee || "—"),
    el("td", {}, actions));
    return tr;
  }

  async function acknowledge(r) {
    try {
      const data = await api("POST", "/v1/alerts/" + encodeURIComponent(r.warning_id) + "/acknowledge");
      state.fresh.delete(r.warning_id);
      if (data.warning) mergeRow(data.warning);
      renderInbox();
      renderOverview();
      showMessage(t("done.acknowledged", { id: r.warning_id }), "info");
    } catch (err) {
      showError(err);
      if (err instanceof ApiError && err.status === 409) loadInbox();
    }
  }

  function openResolve(r) {
    state.resolving = r;
    $("resolve-target").textContent = translated("rule.", r.rule_id) + " · " + r.household_id + " · " + r.warning_id;
    $("resolve-note").value = "";
    $("resolve-dialog").showModal();
  }

  async function confirmResolve() {
    const r = state.resolving;
    state.resolving = null;
    if (!r) return;
    const note = $("resolve-note").value.trim();
    try {
      const data = await api("POST", "/v1/alerts/" + encodeURIComponent(r.warning_id) + "/resolve",
        note ? { note } : {});
      state.fresh.delete(r.warning_id);
      if (data.warning) mergeRow(data.warning);
      renderInbox();
      renderOverview();
      showMessage(t("done.resolved", { id: r.warning_id }), "info");
    } catch (err) {
      showError(err);
      if (err instanceof ApiError && err.status === 409) loadInbox();
    }
  }

  function openAssign(r) {
    state.assigning = r;
    $("assign-target").textContent = translated("rule.", r.rule_id) + " · " + r.household_id + " · " + r.warning_id;
    $("assign-user").value = r.assignee || "";
    $("assign-dialog").showModal();
  }

  /* 200 (embedded runtime): applied now. 202 (Kafka runtime): the stream brings the record. */
  async function confirmAssign() {
    const r = state.assigning;
    state.assigning = null;
    if (!r) return;
    const assignee = $("assign-user").value.trim();
    if (!assignee) return;
    try {
      const data = await api("POST", "/v1/alerts/" + encodeURIComponent(r.warning_id) + "/assign", { assignee });
      if (data.warning) mergeRow(data.warning);
      const row = state.alerts.get(r.warning_id);
      if (row && data.status !== "published") row.assignee = assignee;
      renderInbox();
      showMessage(t("done.assigned", { id: r.warning_id, user: assignee }), "info");
    } catch (err) {
      showError(err);
      if (err instanceof ApiError && err.status === 409) loadInbox();
    }
  }

  // -- after the alert: assess, reopen, refer (with consent), history ------------------

  function target(r) {
    return translated("rule.", r.rule_id) + " · " + r.household_id + " · " + r.warning_id;
  }

  function dialogMessage(dialogId, text) {
    const box = $(dialogId).querySelector(".dialog-message");
    box.textContent = text || "";
    box.hidden = !text;
  }

  /* A command's answer: 200 carries the row now (embedded runtime); 202 means published,
     and the live stream brings the record (Kafka runtime). */
  function commandDone(data, warningId) {
    if (data && data.warning && data.warning.warning_id) mergeRow(data.warning);
    renderInbox();
    renderOverview();
    if (state.history && state.history.warning_id === warningId) loadHistory(state.history.row);
    return !!data && data.status === "published";
  }

  /* A refused command keeps its dialog open with the server's reason (and says it above too). */
  function commandFailed(dialogId, err) {
    showError(err);
    dialogMessage(dialogId, errorText(err));
    if (err instanceof ApiError && err.status === 409) loadInbox();
  }

  function openAssess(r) {
    state.assessing = r;
    $("assess-target").textContent = target(r);
    $("assess-current").textContent = t("assess.current", { risk: r.risk ? translated("risk.", r.risk) : "—" });
    for (const radio of $("assess-form").elements.risk) radio.checked = radio.value === r.risk;
    $("assess-note").value = "";
    dialogMessage("assess-dialog", "");
    $("assess-dialog").showModal();
  }

  async function confirmAssess() {
    const r = state.assessing;
    if (!r) return;
    const risk = $("assess-form").elements.risk.value;
    if (!RISKS.includes(risk)) return;
    const note = $("assess-note").value.trim();
    const body = note ? { risk, note } : { risk };
    try {
      const data = await api("POST", "/v1/alerts/" + encodeURIComponent(r.warning_id) + "/assess", body);
      const published = commandDone(data, r.warning_id);
      const row = state.alerts.get(r.warning_id);
      if (row && !published && !(data && data.warning)) row.risk = risk;
      renderInbox();
      state.assessing = null;
      $("assess-dialog").close();
      showMessage(t(published ? "done.published" : "done.assessed", { id: r.warning_id, risk: translated("risk.", risk) }), "info");
    } catch (err) {
      commandFailed("assess-dialog", err);
    }
  }

  function openReopen(r) {
    state.reopening = r;
    $("reopen-target").textContent = target(r);
    $("reopen-reason").value = "";
    dialogMessage("reopen-dialog", "");
    $("reopen-dialog").showModal();
  }

  async function confirmReopen() {
    const r = state.reopening;
    if (!r) return;
    const reason = $("reopen-reason").value.trim();
    if (!reason) return;
    try {
      const data = await api("POST", "/v1/alerts/" + encodeURIComponent(r.warning_id) + "/reopen", { reason });
      const published = commandDone(data, r.warning_id);
      state.reopening = null;
      $("reopen-dialog").close();
      showMessage(t(published ? "done.published" : "done.reopened", { id: r.warning_id }), "info");
    } catch (err) {
      commandFailed("reopen-dialog", err);
    }
  }

  function openReferral(r) {
    state.referring = r;
    state.consent = null;
    $("referral-target").textContent = target(r);
    $("referral-agency").value = "police";
    $("referral-basis").value = "consent";
    $("referral-note").value = "";
    $("consent-attest").checked = false;
    dialogMessage("referral-dialog", "");
    renderConsent();
    $("referral-dialog").showModal();
    loadConsent();
  }

  async function loadConsent() {
    const r = state.referring;
    if (!r) return;
    state.consent = { household: r.household_id, agencies: null, failed: false };
    renderConsent();
    try {
      const data = await api("GET", "/v1/households/" + encodeURIComponent(r.household_id) + "/consent");
      if (!state.consent || state.consent.household !== r.household_id) return;
      state.consent.agencies = new Set((data && Array.isArray(data.agencies)) ? data.agencies : []);
    } catch (err) {
      if (state.consent) state.consent.failed = true;
      dialogMessage("referral-dialog", errorText(err));
    }
    renderConsent();
  }

  /* Whether the chosen agency has a standing consent: "yes", "no", "loading" or "unknown". */
  function consentState() {
    const c = state.consent;
    if (!c) return "unknown";
    if (c.failed) return "unknown";
    if (c.agencies === null) return "loading";
    return c.agencies.has($("referral-agency").value) ? "yes" : "no";
  }

  function renderConsent() {
    if (!$("referral-dialog").open && !state.referring) return;
    const which = consentState();
    const agency = $("referral-agency").value;
    const byConsent = $("referral-basis").value === "consent";
    $("consent-box").dataset.consent = which;
    $("consent-status").textContent = t("consent." + which, { agency: translated("agency.", agency) });
    const agencies = state.consent && state.consent.agencies ? [...state.consent.agencies].sort() : [];
    $("consent-list").textContent = agencies.length
      ? t("consent.standing", { list: agencies.map((a) => translated("agency.", a)).join(state.lang === "en" ? ", " : "、") })
      : t("consent.none_standing");
    $("consent-record").disabled = which !== "no" || !$("consent-attest").checked;
    $("consent-withdraw").disabled = which !== "yes";
    $("consent-attest").disabled = which !== "no";
    const blocked = byConsent && which !== "yes";
    $("referral-blocked").hidden = !blocked;
    $("referral-confirm").disabled = blocked;
  }

  async function changeConsent(action) {
    const r = state.referring;
    if (!r) return;
    const agency = $("referral-agency").value;
    dialogMessage("referral-dialog", "");
    try {
      const data = await api("POST", "/v1/households/" + encodeURIComponent(r.household_id) + "/consent",
        { action, agencies: [agency] });
      $("consent-attest").checked = false;
      if (data && Array.isArray(data.agencies) && data.status !== "published") {
        state.consent = { household: r.household_id, agencies: new Set(data.agencies), failed: false };
        renderConsent();
      } else {
        await loadConsent();
        // on the Kafka runtime the worker applies it a moment later
        for (let i = 0; i < 10 && data && data.status === "published"
          && (consentState() === "yes") !== (action === "record"); i += 1) {
          await new Promise((resolve) => setTimeout(resolve, 1000));
          await loadConsent();
        }
      }
      showMessage(t(action === "record" ? "done.consent_recorded" : "done.consent_withdrawn",
        { agency: translated("agency.", agency) }), "info");
    } catch (err) {
      commandFailed("referral-dialog", err);
      loadConsent();
    }
  }

  async function confirmReferral() {
    const r = state.referring;
    if (!r) return;
    const agency = $("referral-agency").value;
    const basis = $("referral-basis").value;
    if (basis === "consent" && consentState() !== "yes") {  // the server would refuse it too
      renderConsent();
      return;
    }
    const note = $("referral-note").value.trim();
    const body = { household_id: r.household_id, agency, basis, warning_id: r.warning_id };
    if (note) body.note = note;
    try {
      const data = await api("POST", "/v1/referrals", body);
      state.referring = null;
      state.consent = null;
      $("referral-dialog").close();
      if (state.history && state.history.warning_id === r.warning_id) loadHistory(state.history.row);
      if (state.view === "referrals") loadReferrals();
      else state.referrals = null;
      showMessage(t(data && data.status === "published" ? "done.published" : "done.referred",
        { id: r.warning_id, agency: translated("agency.", agency) }), "info");
    } catch (err) {
      commandFailed("referral-dialog", err);
      loadConsent();
    }
  }

  function openHistory(r) {
    state.history = { warning_id: r.warning_id, row: r, data: null, failed: false };
    $("history-target").textContent = target(r);
    renderHistory();
    $("history-dialog").showModal();
    loadHistory(r);
  }

  async function loadHistory(r) {
    try {
      const data = await api("GET", "/v1/alerts/" + encodeURIComponent(r.warning_id) + "/history");
      if (!state.history || state.history.warning_id !== r.warning_id) return;
      state.history.data = data || {};
      state.history.failed = false;
    } catch (err) {
      if (state.history) state.history.failed = true;
      showError(err);
    }
    renderHistory();
  }

  function renderHistory() {
    const h = state.history;
    if (!h) return;
    const data = h.data || {};
    const w = data.warning || h.row || {};
    const summary = ["level", "status", "risk", "reopened", "handling_level", "handling_org_unit",
      "raised_at", "acknowledged_at", "resolved_at"].filter((k) => w[k] !== undefined);
    $("history-summary").replaceChildren(...summary.flatMap((k) => [
      el("dt", {}, translated("col.", k)),
      el("dd", { dataset: { field: k } }, k === "level" && w[k] ? levelBadge(w[k])
        : k === "risk" && w[k] ? riskBadge(w[k]) : cellValue(k, w[k]))]));
    const records = Array.isArray(data.history) ? data.history : [];
    $("history-list").replaceChildren(...records.map(historyItem));
    $("history-empty").hidden = h.data === null || records.length > 0;
  }

  function historyItem(rec) {
    const type = String(rec.type || "");
    const details = HISTORY_FIELDS.filter((k) => rec[k] !== undefined && rec[k] !== null && rec[k] !== "")
      .map((k) => el("span", { className: "detail", dataset: { field: k } },
        translated("col.", k) + (state.lang === "en" ? ": " : "：") + cellValue(k, rec[k])));
    return el("li", { className: "rec " + (type.startsWith("referral.") ? "rec-referral" : "rec-warning"),
      dataset: { type } },
    el("time", {}, formatInstant(rec.at)),
    el("span", { className: "what" }, translated("rec.", type)),
    el("span", { className: "details" }, ...details));
  }

  // -- referral ledger (联动台账) ---------------------------------------------------------

  async function loadReferrals() {
    const params = { district: $("referral-district").value, as_of: asOfParam($("referral-as-of").value) };
    try {
      const data = await api("GET", "/v1/ledgers/referrals" + query(params));
      state.referrals = Array.isArray(data.rows) ? data.rows : [];
    } catch (err) {
      state.referrals = [];
      showError(err);
    }
    renderReferrals();
  }

  function renderReferrals() {
    const table = $("referral-table");
    if (state.referrals === null) return;
    const status = $("referral-status").value;
    const rows = state.referrals.filter((r) => !status
      || (status === "overdue" ? r.overdue === true : r.status === status));
    table.tHead.replaceChildren(el("tr", {}, ...REFERRAL_COLUMNS.map((c) =>
      el("th", { title: c }, translated(c === "overdue" ? "refcol." : "col.", c)))));
    table.tBodies[0].replaceChildren(...rows.map((row) => el("tr", {
      className: row.overdue ? "overdue" : "",
      dataset: { referralId: String(row.referral_id), status: String(row.status || "") } },
    ...REFERRAL_COLUMNS.map((c) => {
      if (c === "warning_id" && row.warning_id) {
        const w = state.alerts.get(row.warning_id) || { warning_id: row.warning_id,
          household_id: row.household_id, rule_id: null };
        return el("td", { className: "mono" }, el("button", { type: "button", className: "link history-link",
          title: t("history"), onclick: () => openHistory(w) }, row.warning_id));
      }
      const cls = (c.endsWith("_id") ? "mono " : "") + (c === "minutes_to_answer" ? "num " : "") + c;
      return el("td", { className: cls }, c === "minutes_to_answer" && typeof row[c] === "number"
        ? Math.round(row[c]) : cellValue(c, row[c]));
    }))));
    $("referral-empty").hidden = rows.length > 0;
    $("referral-count").textContent = t("count", { n: rows.length });
  }

  // -- live stream (fetch streaming, SSE framing) ------------------------------------

  function startStream() {
    if (state.stream) state.stream.abort();
    const controller = new AbortController();
    state.stream = controller;
    runStream(controller).catch((e) => console.error(e));
  }

  async function runStream(controller) {
    let loaded = false;
    while (!controller.signal.aborted) {
      try {
        const headers = { Authorization: "Bearer " + state.token, Accept: "text/event-stream" };
        if (state.lastEventId) headers["Last-Event-ID"] = state.lastEventId;
        const response = await fetch("/v1/alerts/stream", { headers, signal: controller.signal, cache: "no-store" });
        if (response.status === 401 || response.status === 403) {
          renderLive("off");
          showError(new ApiError(response.status, ""));
          return;
        }
        if (!response.ok || !response.body) throw new ApiError(response.status, "");
        renderLive("on");
        if (!loaded) {  // the stream is open first, so nothing between the two is missed
          loaded = true;
          loadInbox();
        }
        await readEvents(response.body, controller);
      } catch (err) {
        if (controller.signal.aborted) return;
        console.warn("stream", err);
      }
      if (controller.signal.aborted) return;
      renderLive("retry");
      await new Promise((resolve) => setTimeout(resolve, 2000));
      if (!loaded) loadInbox().then(() => { loaded = true; });
    }
  }

  async function readEvents(body, controller) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done || controller.signal.aborted) return;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        dispatchBlock(block);
      }
    }
  }

  function dispatchBlock(block) {
    let id = null;
    const data = [];
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "id") id = value;
      else if (field === "data") data.push(value);
    }
    if (id !== null) state.lastEventId = id;
    if (!data.length) return;
    try {
      applyRecord(JSON.parse(data.join("\n")));
    } catch (e) {
      console.error("bad stream event", e);
    }
  }

  // -- ledgers ---------------------------------------------------------------------------

  /* Loads of the ledger view, counted: only the latest one asked for is shown, so a slow
     answer to an earlier choice (the view's first load) cannot replace a later one. */
  let ledgerLoads = 0;

  async function loadLedger() {
    const load = ++ledgerLoads;
    const name = $("ledger-name").value;
    const params = { district: $("ledger-district").value, as_of: asOfParam($("ledger-as-of").value) };
    let ledger, error = null;
    try {
      const data = await api("GET", "/v1/ledgers/" + name + query(params));
      ledger = { name, rows: data.rows };
    } catch (err) {
      ledger = { name, rows: [] };
      error = err;
    }
    if (load !== ledgerLoads) return;
    state.ledger = ledger;
    if (error) showError(error);
    else $("message").hidden = true;
    renderLedger();
  }

  function cellValue(key, value) {
    if (value === null || value === undefined || value === "") return "—";
    if (typeof value === "boolean") return t(value ? "yes" : "no");
    if (key.endsWith("_at") || key === "next_visit_due") return formatInstant(value);
    if (key === "coverage") return (value * 100).toFixed(2) + "%";
    if (key === "district") return districtName(value);
    if (key === "rule_id") return translated("rule.", value);
    if (key === "status") return translated("status.", value);
    if (key === "risk") return translated("risk.", value);
    if (key === "agency") return translated("agency.", value);
    if (key === "basis") return translated("basis.", value);
    if (key === "outcome") return translated("outcome.", value);
    if (key === "level") return translated("level.", value);
    if (key === "from_level" || key === "to_level") return translated("handling.", value);
    if (key === "handling_level" || key === "highest_handling_level") return translated("handling.", value);
    if (key === "indicators") return value.map((v) => translated("ind.", v)).join(state.lang === "en" ? ", " : "、");
    if (Array.isArray(value)) return value.join(", ");
    return String(value);
  }

  function renderLedger() {
    const table = $("ledger-table");
    if (!state.ledger) {
      table.tHead.replaceChildren();
      table.tBodies[0].replaceChildren();
      return;
    }
    const rows = state.ledger.rows;
    const columns = rows.length ? Object.keys(rows[0]) : [];
    table.dataset.ledger = state.ledger.name;
    table.tHead.replaceChildren(el("tr", {}, ...columns.map((c) => el("th", { title: c }, translated("col.", c)))));
    table.tBodies[0].replaceChildren(...rows.map((row) => el("tr", {}, ...columns.map((c) => {
      if ((c === "level" || c === "highest_open_level") && row[c]) return el("td", {}, levelBadge(row[c]));
      if (c === "risk" && row[c]) return el("td", {}, riskBadge(row[c]));
      return el("td", { className: c.endsWith("_id") || c === "org_unit" ? "mono" : "" }, cellValue(c, row[c]));
    }))));
    $("ledger-empty").hidden = rows.length > 0;
    $("ledger-count").textContent = t("count", { n: rows.length });
    renderCoverageByDistrict();
  }

  /* The coverage ledger's community rows summed per district (same ratio, 4 decimals). */
  function renderCoverageByDistrict() {
    const box = $("coverage-districts");
    const shown = !!state.ledger && state.ledger.name === "coverage";
    box.hidden = !shown;
    if (!shown) return;
    const sums = new Map();
    for (const r of state.ledger.rows) {
      const s = sums.get(r.district) || { district: r.district, registered: 0, covered: 0, key_registered: 0, key_covered: 0 };
      for (const k of ["registered", "covered", "key_registered", "key_covered"]) s[k] += r[k];
      sums.set(r.district, s);
    }
    const rows = [...sums.values()].sort((a, b) => a.district.localeCompare(b.district));
    for (const s of rows) s.coverage = s.registered ? Math.round((s.covered / s.registered) * 10000) / 10000 : 0;
    const columns = ["district", "registered", "covered", "coverage", "key_registered", "key_covered"];
    const table = $("coverage-district-table");
    table.tHead.replaceChildren(el("tr", {}, ...columns.map((c) => el("th", { title: c }, translated("col.", c)))));
    table.tBodies[0].replaceChildren(...rows.map((row) => el("tr", { dataset: { district: row.district } },
      ...columns.map((c) => el("td", {}, cellValue(c, row[c]))))));
  }

  // -- KPIs and charts --------------------------------------------------------------------

  async function loadKpis() {
    try {
      state.kpis = await api("GET", "/v1/kpis" + query({ as_of: asOfParam($("kpi-as-of").value) }));
    } catch (err) {
      showError(err);
    }
    renderKpis();
  }

  /* Horizontal bars: items = [{label, value, cls}]. */
  function barChart(items) {
    const rowH = 26;
    const width = 420;
    const labelW = 110;
    const max = Math.max(1, ...items.map((i) => i.value));
    const chart = svg("svg", { viewBox: `0 0 ${width} ${items.length * rowH + 4}`, width, height: items.length * rowH + 4, role: "img", class: "chart" });
    items.forEach((item, index) => {
      const y = index * rowH + 2;
      const w = Math.round((width - labelW - 50) * item.value / max);
      chart.append(svg("text", { x: labelW - 8, y: y + 16, "text-anchor": "end", class: "label" }, item.label));
      chart.append(svg("rect", { x: labelW, y: y + 3, width: Math.max(w, item.value ? 2 : 0), height: rowH - 8, rx: 3, class: "bar " + (item.cls || "") }));
      chart.append(svg("text", { x: labelW + w + 6, y: y + 16, class: "value" }, item.value));
    });
    return chart;
  }

  /* Vertical bars over time: items = [{label, value}]. */
  function columnChart(items) {
    const height = 180;
    const colW = 34;
    const width = Math.max(200, items.length * colW + 20);
    const max = Math.max(1, ...items.map((i) => i.value));
    const chart = svg("svg", { viewBox: `0 0 ${width} ${height + 40}`, width, height: height + 40, role: "img", class: "chart" });
    items.forEach((item, index) => {
      const h = Math.round((height - 20) * item.value / max);
      const x = 10 + index * colW;
      chart.append(svg("rect", { x, y: height - h, width: colW - 8, height: h, rx: 2, class: "bar trend" }));
      chart.append(svg("text", { x: x + (colW - 8) / 2, y: height - h - 4, "text-anchor": "middle", class: "value" }, item.value));
      chart.append(svg("text", { x: x + (colW - 8) / 2, y: height + 14, "text-anchor": "middle", class: "label small" }, item.label.replace(/^\d{4}-/, "")));
    });
    if (!items.length) chart.append(svg("text", { x: 10, y: 20, class: "label" }, t("empty")));
    return chart;
  }

  function renderKpis() {
    const k = state.kpis;
    if (!k) return;
    const share = k.share_resolved_locally;
    const cards = [
      ["kpi.warnings", k.warnings],
      ["kpi.median_minutes_to_acknowledge", k.median_minutes_to_acknowledge === null ? "—" : Math.round(k.median_minutes_to_acknowledge * 10) / 10],
      ["kpi.repeat_households", k.repeat_households],
      ["kpi.cases_resolved", k.cases_resolved],
      ["kpi.share_resolved_locally", share === null || share === undefined ? "—" : (share * 100).toFixed(1) + "%"],
    ];
    $("kpi-cards").replaceChildren(...cards.map(([key, value]) => el("div", { className: "kpi", dataset: { kpi: key.slice(4) } },
      el("div", { className: "kpi-value" }, value), el("div", { className: "kpi-label" }, t(key)))));
    const byLevel = (obj) => LEVELS.map((lv) => ({ label: t("level." + lv), value: (obj || {})[lv] || 0, cls: lv }));
    $("chart-open").replaceChildren(barChart(byLevel(k.open_by_level)));
    $("chart-unresolved").replaceChildren(barChart(byLevel(k.unresolved_by_level)));
    $("chart-escalated").replaceChildren(barChart(HANDLING.slice(1).map((h) => ({ label: t("handling." + h), value: (k.escalated_to || {})[h] || 0, cls: "esc" }))));
    const weeks = {};
    for (const series of Object.values(k.weekly_raised_by_district || {})) {
      for (const [week, n] of Object.entries(series)) weeks[week] = (weeks[week] || 0) + n;
    }
    $("chart-weekly").replaceChildren(columnChart(Object.keys(weeks).sort().slice(-16).map((w) => ({ label: w, value: weeks[w] }))));
    renderTimeliness(k);
  }

  // -- timeliness and completeness (GET /v1/kpis → "timeliness") ----------------------------

  // keys that name a grouping, not a figure: their values become bar labels
  const TL_DIMENSIONS = ["district", "level", "handling_level", "agency", "channel", "category",
    "community", "rule_id"];
  // containers that add nothing to a figure's name
  const TL_CONTAINERS = ["districts", "levels", "rows", "metrics", "by_district", "by_level",
    "per_district", "per_level", "by_handling_level", "figures"];
  const TL_META = ["as_of", "scope", "district_filter", "generated_at", "sla", "window"];
  const TL_SHARE = ["share", "rate", "ratio", "coverage", "value"];
  const TL_NUM = ["numerator", "on_time", "within", "met", "answered_within", "followed_up",
    "covered", "count_on_time", "n"];
  const TL_DEN = ["due", "denominator", "total", "of", "eligible", "sent", "gaps", "registered", "count"];

  const pick = (obj, keys) => keys.find((k) => typeof obj[k] === "number" || obj[k] === null);

  /* An object holding one figure: a share (maybe with its numerator and denominator). */
  function tlLeaf(node) {
    const s = pick(node, TL_SHARE);
    const n = pick(node, TL_NUM);
    const d = pick(node, TL_DEN);
    if (s === undefined && (n === undefined || d === undefined)) return null;
    const num = n === undefined ? null : node[n];
    const den = d === undefined ? null : node[d];
    let share = s === undefined ? null : node[s];
    if (share === null && typeof num === "number" && den) share = num / den;
    return { kind: "share", value: share, num, den };
  }

  function isDimension(segment) {
    return /^\d{6}(\d{6})?$/.test(segment) || HANDLING.includes(segment) || LEVELS.includes(segment)
      || known("agency." + segment) || known("channel." + segment) || known("category." + segment);
  }

  /* Any reasonable layout (nested objects or rows) → [{path: [...segments], kind, value, num, den}]. */
  function tlFlatten(node, path, out) {
    if (node === null || node === undefined || typeof node === "string" || typeof node === "boolean") return;
    if (typeof node === "number") {
      out.push({ path, kind: "count", value: node, num: null, den: null });
      return;
    }
    if (Array.isArray(node)) {
      for (const item of node) {
        if (!item || typeof item !== "object" || Array.isArray(item)) continue;
        const dims = TL_DIMENSIONS.filter((k) => item[k] !== undefined && item[k] !== null
          && typeof item[k] !== "object").map((k) => String(item[k]));
        const rest = Object.fromEntries(Object.entries(item).filter(([k]) => !TL_DIMENSIONS.includes(k)));
        const leaf = tlLeaf(rest);
        if (leaf) out.push(Object.assign({ path: path.concat(dims) }, leaf));
        else tlFlatten(rest, path.concat(dims), out);
      }
      return;
    }
    const leaf = tlLeaf(node);
    if (leaf) {
      out.push(Object.assign({ path }, leaf));
      return;
    }
    for (const [k, v] of Object.entries(node)) {
      if (TL_META.includes(k)) continue;
      tlFlatten(v, TL_CONTAINERS.includes(k) ? path : path.concat([k]), out);
    }
  }

  function tlLabel(segment) {
    if (/^\d{6}(\d{6})?$/.test(segment)) return districtName(segment);
    for (const prefix of ["handling.", "level.", "agency.", "channel.", "category."]) {
      if (known(prefix + segment)) return t(prefix + segment);
    }
    return segment;
  }

  /* Figures grouped by name (the path without its groupings), in first-seen order. */
  function tlGroups(timeliness) {
    const leaves = [];
    tlFlatten(timeliness, [], leaves);
    const groups = new Map();
    for (const leaf of leaves) {
      const name = leaf.path.filter((s) => !isDimension(s)).join(".") || "figure";
      const label = leaf.path.filter(isDimension).map(tlLabel).join(" · ") || t("total");
      if (!groups.has(name)) groups.set(name, []);
      groups.get(name).push(Object.assign({ label }, leaf));
    }
    return groups;
  }

  function tlTitle(name) {
    if (known("tl." + name)) return t("tl." + name);
    const last = name.split(".").pop();
    if (known("tl." + last)) return t("tl." + last);
    return name.replaceAll("_", " ").replaceAll(".", " · ");
  }

  function shareText(item) {
    if (item.kind !== "share") return String(item.value);
    const pct = typeof item.value === "number" ? (item.value * 100).toFixed(1) + "%" : "—";
    return item.num !== null && item.den !== null ? pct + " (" + item.num + "/" + item.den + ")" : pct;
  }

  /* Horizontal bars on a 0–100 % track (shares) or scaled to the largest value (counts). */
  function figureChart(title, items) {
    const rowH = 24;
    const labelW = 170;
    const barW = 240;
    const width = labelW + barW + 110;
    const height = items.length * rowH + 4;
    const max = Math.max(1, ...items.map((i) => (i.kind === "share" ? 1 : i.value || 0)));
    const summary = title + ": " + items.map((i) => i.label + " " + shareText(i)).join("; ");
    const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
      class: "chart", "aria-label": summary });
    chart.append(svg("title", {}, summary));
    items.forEach((item, index) => {
      const y = index * rowH + 2;
      const value = typeof item.value === "number" ? item.value : 0;
      const w = Math.round(barW * Math.min(value, max) / (item.kind === "share" ? 1 : max));
      const tone = item.kind !== "share" ? "count" : value < 0.5 ? "share low" : value < 0.8 ? "share mid" : "share";
      const g = svg("g", { class: "fig", "data-label": item.label, "data-value": item.value === null ? "" : item.value });
      g.append(svg("title", {}, item.label + ": " + shareText(item)));
      g.append(svg("text", { x: labelW - 8, y: y + 15, "text-anchor": "end", class: item.sub ? "label sub" : "label group" }, item.label));
      if (item.kind === "share") g.append(svg("rect", { x: labelW, y: y + 3, width: barW, height: rowH - 8, rx: 3, class: "track" }));
      g.append(svg("rect", { x: labelW, y: y + 3, width: Math.max(w, value ? 2 : 0), height: rowH - 8, rx: 3, class: "bar " + tone }));
      g.append(svg("text", { x: labelW + (item.kind === "share" ? barW : w) + 6, y: y + 15, class: "value" }, shareText(item)));
      chart.append(g);
    });
    return chart;
  }

  /* {due, within, share} → a bar item. */
  function shareItem(label, fig, sub) {
    const f = fig && typeof fig === "object" ? fig : {};
    const den = typeof f.due === "number" ? f.due : null;
    const num = typeof f.within === "number" ? f.within : null;
    let value = typeof f.share === "number" ? f.share : null;
    if (value === null && den) value = num / den;
    return { label, kind: "share", value, num, den, sub: !!sub };
  }

  function sumFigures(figs) {
    const due = figs.reduce((n, f) => n + ((f && f.due) || 0), 0);
    const within = figs.reduce((n, f) => n + ((f && f.within) || 0), 0);
    return { due, within, share: due ? within / due : null };
  }

  /* The figures of ``projections.timeliness``: {"as_of", "districts": {code: {...}}}.
     Each share chart lists, per district, its total and then its parts (handling levels,
     agencies); with several districts, parts with nothing due are left out and a row for
     the whole area comes first. */
  function timelinessFigures(districts) {
    const codes = Object.keys(districts).sort();
    const many = codes.length > 1;
    const d = (code) => districts[code] || {};
    const figures = [];
    const shares = (name, partsKey, partLabel, partOrder) => {
      const items = [];
      if (many) items.push(shareItem(t("tl.area"), sumFigures(codes.map((c) => d(c)[name]))));
      for (const code of codes) {
        const fig = d(code)[name];
        if (!fig) continue;
        items.push(shareItem(districtName(code), fig));
        const parts = partsKey && fig[partsKey] && typeof fig[partsKey] === "object" ? fig[partsKey] : {};
        const keys = partOrder ? partOrder.filter((k) => k in parts).concat(Object.keys(parts).filter((k) => !partOrder.includes(k)))
          : Object.keys(parts).sort();
        for (const key of keys) {
          if (many && !(parts[key] && parts[key].due)) continue;
          items.push(shareItem(partLabel(key), parts[key], true));
        }
      }
      if (items.length) figures.push({ name, items });
    };
    shares("acknowledged_within_sla", "by_level", (k) => translated("handling.", k), HANDLING);
    shares("assessed_within_48h", "by_level", (k) => translated("handling.", k), HANDLING);
    shares("referrals_answered_within_72h", "by_agency", (k) => translated("agency.", k), null);
    shares("guardianship_followed_up_within_7d", null, null, null);
    // screening coverage: covered / registered, and the key households apart
    const coverage = [];
    for (const code of codes) {
      const c = d(code).screening_coverage;
      if (!c) continue;
      coverage.push(shareItem(districtName(code), { due: c.registered, within: c.covered, share: c.registered ? c.coverage : null }));
      coverage.push(shareItem(t("tl.key_households"), { due: c.key_registered, within: c.key_covered }, true));
    }
    if (coverage.length) figures.push({ name: "screening_coverage", items: coverage });
    // petitions: counts by channel and by category over the area, and per district
    const counts = (key, prefix) => {
      const sums = {};
      for (const code of codes) {
        const part = (d(code).petitions || {})[key] || {};
        for (const [k, n] of Object.entries(part)) sums[k] = (sums[k] || 0) + (Number(n) || 0);
      }
      return Object.keys(sums).sort().map((k) => ({ label: translated(prefix, k), kind: "count", value: sums[k], num: null, den: null }));
    };
    const channels = counts("by_channel", "channel.");
    const categories = counts("by_category", "category.");
    if (channels.length) figures.push({ name: "petitions.by_channel", items: channels });
    if (categories.length) figures.push({ name: "petitions.by_category", items: categories });
    if (many) {
      const totals = codes.filter((c) => d(c).petitions && d(c).petitions.total)
        .map((c) => ({ label: districtName(c), kind: "count", value: d(c).petitions.total, num: null, den: null }));
      if (totals.length) figures.push({ name: "petitions.by_district", items: totals });
    }
    return figures;
  }

  function renderTimeliness(k) {
    const tl = k && k.timeliness && typeof k.timeliness === "object" ? k.timeliness : null;
    let figures;
    if (tl && tl.districts && typeof tl.districts === "object" && !Array.isArray(tl.districts)) {
      figures = timelinessFigures(tl.districts);
    } else {  // another layout: every figure found in it, by name
      figures = [...(tl ? tlGroups(tl) : new Map()).entries()].map(([name, items]) => ({ name, items }));
    }
    $("timeliness-charts").replaceChildren(...figures.filter((f) => f.items.length).map(({ name, items }) => {
      const title = tlTitle(name);
      return el("figure", { className: items.length > 14 ? "wide" : "", dataset: { figure: name } },
        el("figcaption", {}, title), figureChart(title, items));
    }));
    $("timeliness-empty").hidden = figures.length > 0;
  }

  // -- district overview ------------------------------------------------------------------

  function renderOverview() {
    const counts = new Map(scopeDistricts().map((d) => [d, { red: 0, orange: 0, yellow: 0 }]));
    for (const r of state.alerts.values()) {
      if (r.status !== "open") continue;
      const d = String(r.district || r.org_unit || "").slice(0, 6);
      if (!counts.has(d)) counts.set(d, { red: 0, orange: 0, yellow: 0 });
      if (LEVELS.includes(r.level)) counts.get(d)[r.level] += 1;
    }
    const max = Math.max(1, ...[...counts.values()].map((c) => c.red + c.orange + c.yellow));
    const rows = [...counts.entries()].map(([d, c]) => {
      const total = c.red + c.orange + c.yellow;
      const bar = svg("svg", { viewBox: "0 0 160 14", width: 160, height: 14, class: "stack" });
      let x = 0;
      for (const lv of LEVELS) {
        const w = 160 * c[lv] / max;
        if (w) bar.append(svg("rect", { x, y: 1, width: w, height: 12, class: "bar " + lv }));
        x += w;
      }
      return el("tr", { dataset: { district: d } },
        el("td", {}, districtName(d) + " " + d),
        ...LEVELS.map((lv) => el("td", { className: "num heat-" + lv + (c[lv] ? " some" : ""), dataset: { level: lv } }, c[lv])),
        el("td", { className: "num total" }, total),
        el("td", {}, bar));
    });
    $("overview-table").tBodies[0].replaceChildren(...rows);
  }

  // -- wiring -------------------------------------------------------------------------------

  function init() {
    $("lang").addEventListener("click", toggleLanguage);
    $("logout").addEventListener("click", () => signOut(true));
    $("login-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const token = $("token").value.trim();
      if (token) signIn(token);
    });
    for (const tab of document.querySelectorAll("[data-view]")) {
      tab.addEventListener("click", () => showView(tab.dataset.view));
    }
    $("inbox-status").addEventListener("change", renderInbox);
    $("inbox-level").addEventListener("change", renderInbox);
    $("inbox-refresh").addEventListener("click", loadInbox);
    $("overview-refresh").addEventListener("click", loadInbox);
    $("ledger-form").addEventListener("submit", (e) => { e.preventDefault(); loadLedger(); });
    $("ledger-name").addEventListener("change", loadLedger);
    $("kpi-form").addEventListener("submit", (e) => { e.preventDefault(); loadKpis(); });
    $("resolve-cancel").addEventListener("click", () => { state.resolving = null; $("resolve-dialog").close(); });
    $("resolve-form").addEventListener("submit", () => { confirmResolve(); });
    $("assign-cancel").addEventListener("click", () => { state.assigning = null; $("assign-dialog").close(); });
    $("assign-form").addEventListener("submit", () => { confirmAssign(); });
    $("assess-cancel").addEventListener("click", () => { state.assessing = null; $("assess-dialog").close(); });
    $("assess-form").addEventListener("submit", (e) => { e.preventDefault(); confirmAssess(); });
    $("reopen-cancel").addEventListener("click", () => { state.reopening = null; $("reopen-dialog").close(); });
    $("reopen-form").addEventListener("submit", (e) => { e.preventDefault(); confirmReopen(); });
    $("referral-cancel").addEventListener("click", () => { state.referring = null; state.consent = null; $("referral-dialog").close(); });
    $("referral-form").addEventListener("submit", (e) => { e.preventDefault(); confirmReferral(); });
    $("referral-agency").addEventListener("change", () => { $("consent-attest").checked = false; dialogMessage("referral-dialog", ""); renderConsent(); });
    $("referral-basis").addEventListener("change", renderConsent);
    $("consent-attest").addEventListener("change", renderConsent);
    $("consent-record").addEventListener("click", () => changeConsent("record"));
    $("consent-withdraw").addEventListener("click", () => changeConsent("withdraw"));
    $("history-dialog").addEventListener("close", () => { state.history = null; });
    $("referral-dialog").addEventListener("close", () => { state.referring = null; state.consent = null; });
    $("referral-ledger-form").addEventListener("submit", (e) => { e.preventDefault(); loadReferrals(); });
    $("referral-status").addEventListener("change", renderReferrals);
    window.addEventListener("hashchange", () => { if (state.scope) showView(viewFromHash()); });
    applyLanguage();
    if (state.token) signIn(state.token);
  }

  init();
})();
