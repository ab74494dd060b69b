"use strict";
// The monitoring-centre board: one map (ECharts: region geometry and site markers), the sites table and
// the alert desk, kept live by the server's event stream. All data comes from /api/board/* and
// /api/alerts/*, already cut to the user's scope by the server; POSTs carry the session's CSRF token.
(function () {
  const L = {
    zh: {
      title: "风险监测预警一张图", tab_map: "一张图", tab_sites: "企业列表", tab_desk: "预警处置",
      logout: "退出", connected: "实时", disconnected: "连接中断", reconnecting: "连接中断，正在重连…",
      w_now: "当前", w_worst: "最近 {h} 小时最高预警",
      red: "红色", orange: "橙色", yellow: "黄色", blue: "蓝色", normal: "正常",
      c_name: "企业", c_region: "地区", c_industry: "行业", c_grade: "固有风险", c_colour: "预警", picture: "四色图",
      c_since: "起始", c_open: "未闭环", c_online: "在线率", f_text: "名称/编号", all: "全部",
      all_open: "全部未闭环", pick_alert: "选择一条预警", site: "企业", entity: "对象", state: "状态",
      opened: "发生", level: "等级", acked_by: "签收人", disposal: "处置说明", audit: "处置记录",
      note: "备注 / 处置说明", ack: "签收", add_note: "反馈", close: "闭环", shelve: "挂起",
      minutes: "挂起分钟", note_required: "请填写说明", done: "已完成", units: "危险源", alarms: "报警测点",
      rule: "判定规则", alerts: "未闭环预警", gateways: "网关", online: "在线", offline: "离线",
      history: "24 小时预警", value: "值", setpoint: "报警值", none: "无",
      "active-unacknowledged": "待签收", "active-acknowledged": "已签收", "cleared-unacknowledged": "已恢复待签收",
      "cleared-acknowledged": "已恢复待闭环", closed: "已闭环",
      hazardous_chemicals: "危险化学品", coal_mine: "煤矿", non_coal_mine: "非煤矿山", tailings_pond: "尾矿库",
      gas_kiln: "燃气窑炉", sites_shown: "{n} 家", forbidden: "无权限", site_count: "企业 {n} 家",
      sound_on: "声音：开", sound_off: "声音：关",
      ev_opened: "发生", ev_raised: "升级", ev_lowered: "降级", ev_cleared: "恢复", ev_reactivated: "再次发生",
      ev_acknowledged: "签收", ev_noted: "反馈", ev_closed: "闭环", ev_shelved: "挂起", ev_unshelved: "解除挂起",
      ev_escalated: "逐级上报", ev_renotify: "再次提醒", ev_notified: "已通知", ev_suppressed: "已抑制",
      ev_delivery_failed: "通知失败",
    },
    en: {
      title: "Risk monitoring board", tab_map: "Map", tab_sites: "Sites", tab_desk: "Alert desk",
      logout: "Sign out", connected: "live", disconnected: "disconnected", reconnecting: "Disconnected, reconnecting…",
      w_now: "Now", w_worst: "worst colour, last {h} h",
      red: "red", orange: "orange", yellow: "yellow", blue: "blue", normal: "normal",
      c_name: "Site", c_region: "Region", c_industry: "Industry", c_grade: "Grade", c_colour: "Colour", picture: "Picture",
      c_since: "Since", c_open: "Open alerts", c_online: "Online", f_text: "name / id", all: "all",
      all_open: "all open", pick_alert: "Pick an alert", site: "Site", entity: "Entity", state: "State",
      opened: "Opened", level: "Level", acked_by: "Acknowledged by", disposal: "Disposal", audit: "Audit trail",
      note: "Note / disposal", ack: "Acknowledge", add_note: "Add note", close: "Close", shelve: "Shelve",
      minutes: "minutes", note_required: "a note is required", done: "done", units: "Hazard sources",
      alarms: "Sensors in alarm", rule: "Rule", alerts: "Open alerts", gateways: "Gateways", online: "online",
      offline: "offline", history: "Last 24 h", value: "value", setpoint: "set point", none: "none",
      "active-unacknowledged": "unacknowledged", "active-acknowledged": "acknowledged",
      "cleared-unacknowledged": "cleared, unacknowledged", "cleared-acknowledged": "cleared, to close",
      closed: "closed", hazardous_chemicals: "hazardous chemicals", coal_mine: "coal mine",
      non_coal_mine: "non-coal mine", tailings_pond: "tailings pond", gas_kiln: "gas kiln",
      sites_shown: "{n} sites", forbidden: "forbidden", site_count: "{n} sites",
      sound_on: "Sound: on", sound_off: "Sound: off",
    },
  };
  const COLOURS = {red: "#d7191c", orange: "#f28a1d", yellow: "#e9c41a", blue: "#2b83ba", normal: "#7fbf7f"};
  const RANK = {normal: 0, blue: 1, yellow: 2, orange: 3, red: 4};
  const ORDER = ["red", "orange", "yellow", "blue", "normal"];
  let lang = localStorage.getItem("rw-lang") || "zh";
  const t = (k, vars) => {
    let s = (L[lang] && L[lang][k]) || L.zh[k] || k;
    for (const [name, value] of Object.entries(vars || {})) s = s.replace("{" + name + "}", value);
    return s;
  };
  const $ = (id) => document.getElementById(id);
  const el = (tag, attrs, ...children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v; else if (k.startsWith("data-")) node.setAttribute(k, v);
      else node[k] = v;
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  };
  const chip = (colour) => el("span", {class: "chip " + colour, "data-colour": colour}, t(colour));
  const fmtTime = (s) => s ? new Date(s * 1000).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB", {hour12: false}) : "";
  const fmtDur = (s) => {
    s = Math.max(0, Math.floor(s)); const h = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60);
    return (h ? h + "h " : "") + m + "m " + (s % 60) + "s";
  };

  const S = {
    me: null, csrf: "", sites: new Map(), regions: [], levels: new Map(), alerts: new Map(), cursor: "",
    window: 0, windowColours: null, sort: {col: "rank", dir: -1}, selected: null, panelSite: null,
    muted: localStorage.getItem("rw-muted") === "1", beeped: new Set(), fresh: new Map(), beeps: 0,
    connected: false, chart: null, stale: new Map(), history: null, lastEventAt: 0, picture: {},
  };
  window.rwBoard = S;  // for people debugging in the console, and for the browser tests

  async function api(path, opts) {
    const r = await fetch(path, Object.assign({credentials: "same-origin"}, opts || {}));
    if (r.status === 401) { location.replace("/board/login#next=" + encodeURIComponent(location.hash.slice(1))); throw new Error("401"); }
    const doc = await r.json().catch(() => ({error: r.statusText}));
    if (!r.ok) throw Object.assign(new Error(doc.error || r.statusText), {status: r.status});
    return doc;
  }
  const post = (path, body) => api(path, {method: "POST", body: JSON.stringify(body || {}),
    headers: {"Content-Type": "application/json", "X-CSRF-Token": S.csrf}});

  // -- state
  const key = (r) => r.kind + "|" + r.type + "|" + r.entity;
  function siteColour(id) {
    if (S.window && S.windowColours) return S.windowColours.sites[id] || "normal";
    const row = S.levels.get("warning|site|" + id);
    return row ? row.level : "normal";
  }
  // The four-colour picture: the live colour raised by the site's static grade, by the server's rule
  // table (riskwatch/picture.py; static grade -> live colour -> shown colour).
  function sitePicture(id) {
    const live = siteColour(id), s = S.sites.get(id), row = S.picture[(s && s.static) || ""];
    return (row && row[live]) || live;
  }
  function siteSince(id) { const row = S.levels.get("warning|site|" + id); return row ? row.at : 0; }
  function regionColour(id) {
    let best = "normal";
    if (S.window && S.windowColours) best = S.windowColours.regions[id] || "normal";
    else { const row = S.levels.get("warning|region|" + id); if (row) best = row.level; }
    for (const s of S.sites.values()) if (s.region === id && RANK[sitePicture(s.id)] > RANK[best]) best = sitePicture(s.id);
    return best;
  }
  function placeName(a) {
    // A site's name; a region roll-up (no site) names its region.
    const site = S.sites.get(a.site);
    if (site) return site.name;
    const region = S.regions.find((r) => r.id === a.region);
    return region ? region.name : (a.site || a.region);
  }
  function openAlertsAt(site) { let n = 0; for (const a of S.alerts.values()) if (a.site === site) n++; return n; }
  function onlineRate(site) {
    // A gateway is offline when every one of its sensors is stale (nothing heard from it).
    const s = S.sites.get(site); if (!s || !s.gateways.length) return 1;
    let online = 0;
    for (const g of s.gateways) {
      const n = s.gateway_sizes[g] || 0, stale = (S.stale.get(g) || new Set()).size;
      if (!n || stale < n) online++;
    }
    return online / s.gateways.length;
  }

  // -- rendering, batched to one frame however many events arrive
  let pending = false;
  function render() {
    if (pending) return; pending = true;
    requestAnimationFrame(() => {
      pending = false; renderCounts(); renderMap(); renderTable(); renderDesk();
      // First full render: everything drawn once; what the scale benchmark reads.
      if (S.ready && !S.renderedAt) requestAnimationFrame(() => { S.renderedAt = performance.now(); });
    });
  }
  function renderCounts() {
    const counts = {red: 0, orange: 0, yellow: 0, blue: 0, normal: 0};
    for (const id of S.sites.keys()) counts[siteColour(id)]++;
    $("counts").replaceChildren(
      el("span", {class: "count normal", "data-count": "all"}, t("site_count", {n: S.sites.size})),
      ...ORDER.slice(0, 4).map((c) => el("span", {class: "count " + c, "data-count": c}, t(c) + " " + counts[c])));
    $("desk-count").textContent = String(S.alerts.size);
  }
  function renderMap() {
    if (!S.chart) return;
    const sites = [...S.sites.values()].filter((s) => s.lat !== null && s.lon !== null);
    // Redraw only when a colour on the map changed (alarm-only news leaves the map, and a click, alone).
    const signature = S.regions.map((r) => regionColour(r.id)).join() + "|" + sites.map((s) => s.id + sitePicture(s.id)).join();
    if (signature === S.mapSignature) return;
    S.mapSignature = signature;
    // One series per colour, worse colours drawn above: a red site is never hidden under a quiet
    // neighbour, however the colours changed since the page opened.
    const big = sites.length > 500;
    S.chart.setOption({
      geo: {regions: S.regions.map((r) => ({name: r.id, itemStyle: {areaColor: COLOURS[regionColour(r.id)], opacity: 0.55}}))},
      series: ORDER.slice().reverse().map((colour) => ({
        id: "sites-" + colour, type: "scatter", coordinateSystem: "geo", symbolSize: big ? 7 : 16, zlevel: 2,
        z: 2 + RANK[colour], itemStyle: {color: COLOURS[colour], borderColor: "#fff", borderWidth: 1},
        label: {show: !big, position: "right", color: "#fff", formatter: (p) => p.data.grade},
        data: sites.filter((s) => sitePicture(s.id) === colour)
          .map((s) => ({name: s.id, value: [s.lon, s.lat], grade: s.grade, colour, live: siteColour(s.id)})),
      })),
    });
  }
  function initMap(geo) {
    const chart = echarts.init($("map"), null, {renderer: "canvas"});
    const hasGeo = geo && geo.features && geo.features.length;
    if (hasGeo) echarts.registerMap("rw", geo);
    chart.setOption({
      backgroundColor: "transparent",
      tooltip: {trigger: "item", formatter: (p) => {
        if (p.seriesType === "scatter") { const s = S.sites.get(p.name); return s ? s.name + " · " + t("picture") + " " + t(sitePicture(s.id)) + " (" + t("c_colour") + " " + t(siteColour(s.id)) + ", " + t("c_grade") + " " + (s.grade || "-") + ")" : p.name; }
        const r = S.regions.find((x) => x.id === p.name); return (r ? r.name : p.name) + " · " + t(regionColour(p.name));
      }},
      geo: {map: hasGeo ? "rw" : undefined, roam: true, label: {show: false},
        itemStyle: {areaColor: "#20324f", borderColor: "#8fb3e0"}, emphasis: {label: {show: false}}},
      series: [],
    });
    chart.on("click", (p) => { if (p.seriesType === "scatter") openPanel(p.name); });
    window.addEventListener("resize", () => chart.resize());
    S.chart = chart;
  }

  // -- site panel
  async function openPanel(id) {
    S.panelSite = id;
    let doc;
    try { doc = await api("/api/board/sites/" + encodeURIComponent(id)); }
    catch (e) { $("panel-body").replaceChildren(el("p", {class: "error"}, String(e.message))); $("panel").hidden = false; return; }
    const s = doc.site, siteRow = doc.levels.find((r) => r.type === "site");
    const unitLevel = new Map(doc.levels.filter((r) => r.type === "unit").map((r) => [r.entity, r]));
    const body = [
      el("h2", {}, s.name, " ", chip(siteColour(s.id))),
      el("dl", {}, el("dt", {}, t("picture")), el("dd", {id: "panel-picture"}, chip(sitePicture(s.id))), el("dt", {}, t("c_region")), el("dd", {}, s.region_name), el("dt", {}, t("c_industry")),
        el("dd", {}, t(s.industry)), el("dt", {}, t("c_grade")), el("dd", {}, s.grade + (s.score !== null ? " (" + s.score + ")" : "")),
        el("dt", {}, t("rule")), el("dd", {id: "panel-rule"}, siteRow && siteRow.rule ? siteRow.rule : t("none"))),
      el("h3", {}, t("units")),
      el("ul", {}, ...s.units.map((u) => el("li", {"data-unit": u.id}, chip(unitLevel.has(u.id) ? unitLevel.get(u.id).level : "normal"), " ", u.name))),
      el("h3", {}, t("alarms")),
      doc.alarms.length ? el("table", {}, ...doc.alarms.map((a) => {
        const item = (a.items || [])[0] || {};
        return el("tr", {}, el("td", {}, a.entity), el("td", {}, a.level),
          el("td", {}, t("value") + " " + (item.value ?? "")), el("td", {}, t("setpoint") + " " + (item.setpoint ?? "")),
          el("td", {}, fmtTime(item.since || a.at)));
      })) : el("p", {}, t("none")),
      el("h3", {}, t("alerts")),
      el("ul", {}, ...doc.alerts.map((a) => el("li", {}, el("a", {href: "#desk/" + a.id}, chip(a.colour), " ", a.entity, " · ", t(a.state))))),
      el("h3", {}, t("gateways")),
      el("ul", {}, ...doc.gateways.map((g) => el("li", {}, g.id, " · ", t(g.online ? "online" : "offline")))),
      el("h3", {}, t("history")),
    ];
    $("panel-body").replaceChildren(...body);
    $("panel").hidden = false;
    // Colour over the last 24 h as a step line of its rank (0 normal .. 4 red).
    const points = [];
    const start = doc.now - 86400;
    if (doc.history.length) points.push([start * 1000, RANK[doc.history[0].old] || 0]);
    else points.push([start * 1000, RANK[siteColour(s.id)] || 0]);
    for (const h of doc.history) points.push([h.at * 1000, RANK[h.level] || 0]);
    points.push([doc.now * 1000, points[points.length - 1][1]]);
    if (!S.history) S.history = echarts.init($("panel-history"));
    S.history.setOption({
      grid: {left: 50, right: 10, top: 10, bottom: 25},
      xAxis: {type: "time", axisLabel: {color: "#9fb3cf"}},
      yAxis: {type: "value", min: 0, max: 4, interval: 1, axisLabel: {color: "#9fb3cf", formatter: (v) => t(ORDER[4 - v])}},
      series: [{type: "line", step: "end", data: points, showSymbol: false, lineStyle: {width: 3}}],
      visualMap: {show: false, dimension: 1, pieces: ORDER.map((c) => ({value: RANK[c], color: COLOURS[c]}))},
    }, true);
    S.history.resize();
  }

  // An open panel follows its site's news, at most once a second however busy the site is.
  let panelTimer = null;
  function refreshPanel() {
    if (panelTimer) return;
    panelTimer = setTimeout(() => { panelTimer = null; if (S.panelSite && !$("panel").hidden) openPanel(S.panelSite); }, 1000);
  }

  // -- sites table
  function siteRowsSorted() {
    const q = $("f-text").value.trim().toLowerCase();
    const f = {region: $("f-region").value, industry: $("f-industry").value, grade: $("f-grade").value, colour: $("f-colour").value};
    const rows = [];
    for (const s of S.sites.values()) {
      const colour = siteColour(s.id);
      if (q && !(s.name.toLowerCase().includes(q) || s.id.toLowerCase().includes(q))) continue;
      if ((f.region && s.region !== f.region) || (f.industry && s.industry !== f.industry) ||
          (f.grade && s.grade !== f.grade) || (f.colour && colour !== f.colour)) continue;
      rows.push({s, name: s.name, region_name: s.region_name, industry: s.industry, grade: s.grade, colour,
        rank: RANK[colour], since: siteSince(s.id), open: openAlertsAt(s.id), online: onlineRate(s.id)});
    }
    const {col, dir} = S.sort;
    rows.sort((a, b) => (a[col] < b[col] ? -1 : a[col] > b[col] ? 1 : 0) * dir || (a.name < b.name ? -1 : 1));
    return rows;
  }
  function renderTable() {
    if ($("view-sites").hidden) return;
    const rows = siteRowsSorted();
    $("sites-shown").textContent = t("sites_shown", {n: rows.length});
    const shown = rows.slice(0, 1000);  // a page of the province at a time keeps the table quick
    $("sites-table").tBodies[0].replaceChildren(...shown.map((r) => {
      const tr = el("tr", {"data-site": r.s.id},
        el("td", {}, r.s.name), el("td", {}, r.region_name), el("td", {}, t(r.industry)), el("td", {}, r.grade),
        el("td", {}, chip(r.colour)), el("td", {}, fmtTime(r.since)), el("td", {}, String(r.open)),
        el("td", {}, Math.round(r.online * 100) + "%"));
      tr.addEventListener("click", () => { location.hash = "#map"; openPanel(r.s.id); });
      return tr;
    }));
    for (const th of document.querySelectorAll("#sites-table th")) {
      th.classList.toggle("asc", th.dataset.sort === S.sort.col && S.sort.dir === 1);
      th.classList.toggle("desc", th.dataset.sort === S.sort.col && S.sort.dir === -1);
    }
  }
  function fillFilters() {
    const opts = (id, label, values) => $(id).replaceChildren(el("option", {value: ""}, label + ": " + t("all")),
      ...values.map(([v, text]) => el("option", {value: v}, text)));
    const all = [...S.sites.values()];
    opts("f-region", t("c_region"), [...new Map(all.map((s) => [s.region, s.region_name]))].sort());
    opts("f-industry", t("c_industry"), [...new Set(all.map((s) => s.industry))].sort().map((i) => [i, t(i)]));
    opts("f-grade", t("c_grade"), ["A", "B", "C", "D"].map((g) => [g, g]));
    opts("f-colour", t("c_colour"), ORDER.map((c) => [c, t(c)]));
    $("d-state").replaceChildren(el("option", {value: ""}, t("all_open")),
      ...["active-unacknowledged", "active-acknowledged", "cleared-unacknowledged", "cleared-acknowledged"].map((s) => el("option", {value: s}, t(s))));
    $("d-colour").replaceChildren(el("option", {value: ""}, t("c_colour") + ": " + t("all")),
      ...ORDER.slice(0, 4).map((c) => el("option", {value: c}, t(c))));
  }

  // -- alert desk
  function deskAlerts() {
    const state = $("d-state").value, colour = $("d-colour").value;
    return [...S.alerts.values()].filter((a) => (!state || a.state === state) && (!colour || a.colour === colour)
      || a.id === S.selected)
      .sort((a, b) => (RANK[b.colour] - RANK[a.colour]) || (b.opened_at - a.opened_at));
  }
  function renderDesk() {
    if ($("view-desk").hidden) return;
    const now = Date.now() / 1000;
    $("alerts").replaceChildren(...deskAlerts().map((a) => {
      const site = S.sites.get(a.site);
      const li = el("li", {"data-alert": a.id, "data-entity": a.entity, "data-colour": a.colour, class: (a.id === S.selected ? "sel " : "") + (S.fresh.has(a.id) ? "new" : "")},
        chip(a.colour), el("span", {}, placeName(a) + " · " + a.entity), el("span", {class: "state"}, t(a.state)),
        el("span", {class: "dur", "data-since": String(a.opened_at)}, fmtDur(now - a.opened_at)));
      li.addEventListener("click", () => { location.hash = "#desk/" + a.id; });
      return li;
    }));
  }
  async function showAlert(id) {
    S.selected = id; S.fresh.delete(id); renderDesk();
    let doc;
    try { doc = await api("/api/alerts/" + encodeURIComponent(id)); }
    catch (e) { $("detail").replaceChildren(el("p", {class: "error", id: "detail-error"}, (e.status === 403 ? t("forbidden") + ": " : "") + e.message)); return; }
    const a = doc.alert, may = (x) => S.me.actions.includes(x);
    const note = el("textarea", {id: "note", placeholder: t("note")});
    const result = el("p", {id: "result", role: "status"});
    const act = async (what, body, needsNote) => {
      if (needsNote && !note.value.trim()) { result.textContent = t("note_required"); result.className = "error"; return; }
      try {
        await post("/api/alerts/" + encodeURIComponent(id) + "/" + what, body);
        result.textContent = t("done"); result.className = "";
        showAlert(id);
      } catch (e) { result.textContent = e.status + ": " + e.message; result.className = "error"; }
    };
    const minutes = el("input", {id: "shelve-minutes", type: "number", value: "60", min: "1", title: t("minutes")});
    const buttons = [];
    if (!a.closed && may("ack") && !a.acked) buttons.push(el("button", {id: "do-ack", type: "button", onclick: () => act("ack", {note: note.value})}, t("ack")));
    if (!a.closed && may("note")) buttons.push(el("button", {id: "do-note", type: "button", onclick: () => act("notes", {note: note.value}, true)}, t("add_note")));
    if (!a.closed && may("close")) buttons.push(el("button", {id: "do-close", type: "button", onclick: () => act("close", {note: note.value}, true)}, t("close")));
    if (!a.closed && may("shelve")) buttons.push(minutes, el("button", {id: "do-shelve", type: "button", onclick: () => act("shelve", {minutes: Number(minutes.value), reason: note.value}, true)}, t("shelve")));
    $("detail").replaceChildren(
      el("h2", {}, chip(a.colour), " ", placeName(a)),
      el("dl", {}, el("dt", {}, t("entity")), el("dd", {}, a.entity_type + " " + a.entity),
        el("dt", {}, t("state")), el("dd", {id: "detail-state", "data-state": a.state}, t(a.state)),
        el("dt", {}, t("opened")), el("dd", {}, fmtTime(a.opened_at)),
        el("dt", {}, t("rule")), el("dd", {}, (a.cause && a.cause.rule) || ""),
        el("dt", {}, t("acked_by")), el("dd", {}, a.acked_by || "—"),
        el("dt", {}, t("disposal")), el("dd", {}, a.disposal || "—")),
      note, el("div", {class: "actions"}, ...buttons), result,
      el("h3", {}, t("audit")),
      el("div", {class: "audit", id: "audit"}, ...doc.audit.filter((e) => e.type !== "notified" || true).map((e) =>
        el("div", {"data-type": e.type}, fmtTime(e.at) + " · " + e.actor + " · " + (lang === "zh" ? t("ev_" + e.type) : e.type) + " · " + t(e.state) + (e.note ? " · " + e.note : "")))));
  }

  // -- sound: one short tone per new red or orange alert, unless muted
  let audio = null;
  function beep() {
    S.beeps++;
    if (S.muted) return;
    try {
      audio = audio || new AudioContext();
      const osc = audio.createOscillator(), gain = audio.createGain();
      osc.frequency.value = 880; gain.gain.value = 0.2; osc.connect(gain); gain.connect(audio.destination);
      osc.start(); osc.stop(audio.currentTime + 0.4);
    } catch (e) { /* no audio device: the flashing row still shows it */ }
  }

  // -- live feed
  let source = null;
  function setConnected(up) {
    S.connected = up;
    const c = $("conn"); c.className = "conn " + (up ? "up" : "down"); c.textContent = t(up ? "connected" : "disconnected");
    const b = $("banner"); b.hidden = up; b.textContent = up ? "" : t("reconnecting");
  }
  function connect() {
    source = new EventSource("/api/board/events?after=" + encodeURIComponent(S.cursor));
    source.onopen = () => setConnected(true);
    source.onerror = () => setConnected(false);
    source.addEventListener("level", (e) => {
      const row = JSON.parse(e.data); S.cursor = e.lastEventId; S.lastEventAt = Date.now();
      applyLevel(row); render();
      if (S.window) refreshWindow();
      if (S.panelSite && row.site === S.panelSite && !$("panel").hidden) refreshPanel();
    });
    source.addEventListener("alert", (e) => {
      const doc = JSON.parse(e.data); S.cursor = e.lastEventId; S.lastEventAt = Date.now();
      const a = doc.alert, ev = doc.event;
      if (a.closed) S.alerts.delete(a.id); else S.alerts.set(a.id, a);
      if ((ev.type === "opened" || ev.type === "raised" || ev.type === "reactivated") && !a.closed) {
        S.fresh.set(a.id, Date.now());
        const k = a.id + "|" + a.colour;
        if ((a.colour === "red" || a.colour === "orange") && !S.beeped.has(k)) { S.beeped.add(k); beep(); }
      }
      render();
      if (S.selected === a.id && !$("view-desk").hidden) showAlert(a.id);
    });
  }
  function applyLevel(row) {
    S.levels.set(key(row), row);
    if (row.kind === "alarm" && row.gateway) {
      if (!S.stale.has(row.gateway)) S.stale.set(row.gateway, new Set());
      if (row.level === "stale") S.stale.get(row.gateway).add(row.entity); else S.stale.get(row.gateway).delete(row.entity);
    }
  }
  let windowTimer = null;
  function refreshWindow() {
    clearTimeout(windowTimer);
    windowTimer = setTimeout(async () => {
      if (!S.window) return;
      const doc = await api("/api/board/window?hours=" + S.window);
      if (doc.hours === S.window) { S.windowColours = doc; render(); }
    }, 300);
  }

  // -- views and controls
  function route() {
    const h = location.hash.slice(1) || "map";
    const [view, id] = h.split("/");
    for (const v of ["map", "sites", "desk"]) { $("view-" + v).hidden = v !== view; $("tab-" + v).classList.toggle("on", v === view); }
    if (view === "map" && S.chart) S.chart.resize();
    render();
    if (view === "desk" && id) showAlert(decodeURIComponent(id));
  }
  function translate() {
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    for (const n of document.querySelectorAll("[data-t]")) n.textContent = t(n.dataset.t);
    for (const n of document.querySelectorAll("[data-tp]")) n.placeholder = t(n.dataset.tp);
    $("lang").textContent = lang === "zh" ? "EN" : "中文";
    $("mute").textContent = S.muted ? t("sound_off") : t("sound_on");
    $("mute").classList.toggle("on", S.muted);
    setConnected(S.connected);
    fillFilters();
  }
  function controls() {
    window.addEventListener("hashchange", route);
    $("lang").addEventListener("click", () => { lang = lang === "zh" ? "en" : "zh"; localStorage.setItem("rw-lang", lang); translate(); render(); });
    $("mute").addEventListener("click", () => { S.muted = !S.muted; localStorage.setItem("rw-muted", S.muted ? "1" : "0"); translate(); });
    $("logout").addEventListener("click", async () => { await post("/api/logout").catch(() => null); location.replace("/board/login"); });
    $("panel-close").addEventListener("click", () => { $("panel").hidden = true; S.panelSite = null; });
    for (const b of document.querySelectorAll("#windows button")) b.addEventListener("click", () => {
      S.window = Number(b.dataset.window); S.windowColours = null;
      for (const x of document.querySelectorAll("#windows button")) x.classList.toggle("on", x === b);
      $("window-note").textContent = S.window ? t("w_worst", {h: S.window}) : "";
      if (S.window) refreshWindow(); else render();
    });
    for (const id of ["f-text", "f-region", "f-industry", "f-grade", "f-colour"]) $(id).addEventListener("input", render);
    for (const id of ["d-state", "d-colour"]) $(id).addEventListener("input", render);
    for (const th of document.querySelectorAll("#sites-table th")) th.addEventListener("click", () => {
      S.sort = {col: th.dataset.sort, dir: S.sort.col === th.dataset.sort ? -S.sort.dir : 1}; render();
    });
    // Durations tick and "new" marks fade without touching the rest of the page.
    setInterval(() => {
      const now = Date.now() / 1000;
      for (const n of document.querySelectorAll("#alerts .dur")) n.textContent = fmtDur(now - Number(n.dataset.since));
      for (const [id, at] of S.fresh) if (Date.now() - at > 60000) { S.fresh.delete(id); render(); }
    }, 1000);
  }

  async function start() {
    const me = await api("/api/me");
    S.me = me; S.csrf = me.csrf;
    $("who").textContent = me.user + " (" + me.role + ")";
    const [state, geo] = await Promise.all([api("/api/board/state"), api("/api/board/map.json")]);
    S.cursor = state.cursor;
    for (const s of state.sites) S.sites.set(s.id, s);
    S.picture = state.picture || {};
    S.regions = state.regions;
    for (const r of state.levels) applyLevel(r);
    for (const a of state.alerts) S.alerts.set(a.id, a);
    S.ready = true;
    controls(); translate(); initMap(geo); route(); connect();
    document.body.dataset.ready = "1";
  }
  start().catch((e) => { if (e.message !== "401") { $("banner").hidden = false; $("banner").textContent = String(e.message); } });
})();
