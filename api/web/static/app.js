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
    return ["inbox", "ledgers", "kpis", "overview"].includes(name) ? name : "inbox";
  }

  function showView(name) {
    state.view = name;
    for (const tab of document.querySelectorAll("[data-view]")) {
      tab.setAttribute("aria-selected", tab.dataset.view === name ? "true" : "false");
    }
    for (const v of ["inbox", "ledgers", "kpis", "overview"]) $("view-" + v).hidden = v !== name;
    if (location.hash !== "#" + name) history.replaceState(null, "", "#" + name);
    if (name === "ledgers" && state.ledger === null) loadLedger();
    if (name === "kpis") loadKpis();
    renderAll();
  }

  function renderAll() {
    if (!state.scope) return;
    renderInbox();
    renderLedger();
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

  function mergeRow(row) {
    const old = state.alerts.get(row.warning_id);
    if (!old) {
      state.alerts.set(row.warning_id, row);
    } else if ((STATUS_RANK[row.status] ?? 0) >= (STATUS_RANK[old.status] ?? 0)) {
      state.alerts.set(row.warning_id, Object.assign({}, old, row));
    }
  }

  async function loadInbox() {
    try {
      const data = await api("GET", "/v1/alerts");
      for (const row of data.alerts) mergeRow(row);
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
    }
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
    if (r.status !== "resolved") {
      actions.append(el("button", { type: "button", className: "assign", onclick: () => openAssign(r) }, t("assign")));
      actions.append(el("button", { type: "button", className: "resolve", onclick: () => openResolve(r) }, t("resolve")));
    }
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

  async function loadLedger() {
    const name = $("ledger-name").value;
    const params = { district: $("ledger-district").value, as_of: asOfParam($("ledger-as-of").value) };
    try {
      const data = await api("GET", "/v1/ledgers/" + name + query(params));
      state.ledger = { name, rows: data.rows };
      $("message").hidden = true;
    } catch (err) {
      state.ledger = { name, rows: [] };
      showError(err);
    }
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
    window.addEventListener("hashchange", () => { if (state.scope) showView(viewFromHash()); });
    applyLanguage();
    if (state.token) signIn(state.token);
  }

  init();
})();
