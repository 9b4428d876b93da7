// The wideevents UI: a query builder, a heatmap with box selection, the breakdown of a
// selection, the events behind it and a trace waterfall. Every view's state lives in the URL
// hash (the CLI's flags as query parameters), so a link shows the same view to anyone.
import * as echarts from "echarts/core";
import { BarChart, HeatmapChart } from "echarts/charts";
import {
  BrushComponent,
  GridComponent,
  ToolboxComponent,
  TooltipComponent,
  VisualMapComponent,
} from "echarts/components";
import { CanvasRenderer } from "echarts/renderers";
import "./style.css";

echarts.use([
  BarChart,
  HeatmapChart,
  BrushComponent,
  GridComponent,
  ToolboxComponent,
  TooltipComponent,
  VisualMapComponent,
  CanvasRenderer,
]);

const $ = (id) => document.getElementById(id);
const LISTS = ["calc", "where", "select"]; // repeatable keys, as the CLI's flags
const DEFAULTS = { calc: ["count", "p99(duration_ms)"], heat: "duration_ms", granularity: "auto" };

// -- the token: taken once from ?token=, kept for this tab only ------------------------------

(function takeToken() {
  const params = new URLSearchParams(location.search);
  if (params.has("token")) {
    sessionStorage.setItem("wideevents-token", params.get("token"));
    params.delete("token");
    const query = params.toString();
    history.replaceState(null, "", location.pathname + (query ? "?" + query : "") + location.hash);
  }
})();

async function api(path, params) {
  const url = path + (params ? "?" + params.toString() : "");
  const token = sessionStorage.getItem("wideevents-token");
  const headers = token ? { Authorization: "Bearer " + token } : {};
  let response;
  try {
    response = await fetch(url, { headers });
  } catch (err) {
    throw new Error(`cannot reach the server: ${err.message}`);
  }
  let body;
  try {
    body = await response.json();
  } catch {
    throw new Error(`${response.status} ${response.statusText}: the server sent no JSON`);
  }
  if (!response.ok) {
    throw new Error(body && body.error ? body.detail || body.error : `${response.status}`);
  }
  return { body, headers: response.headers };
}

// -- state <-> URL ---------------------------------------------------------------------------

function readState() {
  const params = new URLSearchParams(location.hash.slice(1));
  const state = {};
  for (const [k, v] of params) {
    if (LISTS.includes(k)) (state[k] = state[k] || []).push(v);
    else state[k] = v;
  }
  if (!params.toString()) Object.assign(state, structuredClone(DEFAULTS));
  return state;
}

function writeState(state, replace = false) {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(state)) {
    if (Array.isArray(v)) v.filter((x) => x.trim()).forEach((x) => params.append(k, x));
    else if (v !== undefined && v !== null && v !== "") params.set(k, v);
  }
  const hash = "#" + params.toString();
  if (hash === location.hash) return render(state);
  if (replace) history.replaceState(null, "", hash);
  else history.pushState(null, "", hash);
  render(state);
}

function baseParams(state) {
  const params = new URLSearchParams();
  (state.where || []).forEach((w) => params.append("where", w));
  for (const k of ["since", "from", "to"]) if (state[k]) params.set(k, state[k]);
  return params;
}

// -- the form ----------------------------------------------------------------------------------

function fillForm(state) {
  const form = $("query");
  form.calc.value = (state.calc || []).join("\n");
  form.where.value = (state.where || []).join("\n");
  for (const k of ["group_by", "since", "from", "to", "granularity", "heat"]) {
    form[k].value = state[k] || "";
  }
}

$("query").addEventListener("submit", (e) => {
  e.preventDefault();
  const form = e.target;
  const lines = (text) => text.split("\n").map((x) => x.trim()).filter(Boolean);
  // A heatmap(F) typed with the calculations is the heatmap's field.
  const typed = lines(form.calc.value).map((c) => /^heatmap\((.+)\)$/i.exec(c)).find(Boolean);
  if (typed) form.heat.value = typed[1].trim();
  writeState({
    calc: lines(form.calc.value),
    where: lines(form.where.value),
    group_by: form.group_by.value.trim(),
    since: form.since.value.trim(),
    from: form.from.value.trim(),
    to: form.to.value.trim(),
    granularity: form.granularity.value.trim(),
    heat: form.heat.value.trim(),
  });
});

$("share").addEventListener("click", (e) => {
  e.preventDefault();
  navigator.clipboard?.writeText(location.href);
  $("share").textContent = "link copied (it is the address bar's)";
});

window.addEventListener("popstate", () => render(readState()));

// -- errors ------------------------------------------------------------------------------------

function showError(err) {
  const box = $("error");
  box.textContent = "Error: " + (err && err.message ? err.message : String(err));
  box.hidden = false;
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

// -- tables ------------------------------------------------------------------------------------

function cell(value) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "number") {
    return Number.isInteger(value) ? value.toLocaleString("en") : value.toPrecision(4);
  }
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function table(rows, columns, onClick) {
  if (!rows.length) {
    const p = document.createElement("p");
    p.textContent = "no events match";
    return p;
  }
  const t = document.createElement("table");
  const head = t.createTHead().insertRow();
  for (const c of columns) head.insertCell().outerHTML = `<th>${escapeHtml(c)}</th>`;
  const body = t.createTBody();
  for (const r of rows) {
    const tr = body.insertRow();
    for (const c of columns) {
      const td = tr.insertCell();
      td.textContent = cell(r[c]);
      td.title = td.textContent;
      if (typeof r[c] === "number") td.className = "num";
    }
    if (onClick) {
      tr.className = "clickable";
      tr.addEventListener("click", () => onClick(r));
    }
  }
  return t;
}

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function columnsOf(rows, first = []) {
  const out = first.filter((c) => rows.some((r) => c in r));
  for (const r of rows) for (const k of Object.keys(r)) if (!out.includes(k)) out.push(k);
  return out;
}

// -- rendering a state -------------------------------------------------------------------------

let renderSeq = 0;

// Like Promise.all, but waits for every view before failing, so none draws after the error.
async function all(promises) {
  const failed = (await Promise.allSettled(promises)).find((r) => r.status === "rejected");
  if (failed) throw failed.reason;
}

async function render(state) {
  const seq = ++renderSeq;
  fillForm(state);
  clearError();
  const stale = () => seq !== renderSeq;
  try {
    await all([renderResults(state, stale), renderHeatmap(state, stale)]);
    if (stale()) return;
    if (state.select && state.select.length) {
      await all([renderBreakdown(state, stale), renderEvents(state, stale)]);
    } else {
      $("breakdown-section").hidden = true;
      $("events-section").hidden = true;
    }
    if (stale()) return;
    if (state.trace) await renderTrace(state.trace, stale);
    else $("trace-section").hidden = true;
  } catch (err) {
    if (stale()) return;
    showError(err);
    // Nothing stale under the message: the views it would have replaced are cleared.
    if (heat) heat.chart.clear();
    heat = window.wideevents.heatmap = null;
    shown.heatmap = shown.results = null;
    for (const id of ["breakdown-section", "events-section", "trace-section"]) $(id).hidden = true;
  }
}

async function renderResults(state, stale) {
  const params = baseParams(state);
  const calcs = (state.calc || []).filter((c) => !c.trim().toLowerCase().startsWith("heatmap"));
  (calcs.length ? calcs : ["count"]).forEach((c) => params.append("calc", c));
  const groups = (state.group_by || "").split(",").map((g) => g.trim()).filter(Boolean);
  groups.forEach((g) => params.append("group_by", g));
  const series = state.granularity && state.granularity !== "auto";
  if (series) params.set("granularity", state.granularity); // a time series: one row a bucket
  if (params.toString() === shown.results) return; // only the selection changed
  shown.results = null;
  $("results").replaceChildren();
  const { body } = await api("/api/query", params);
  if (stale()) return;
  const onClick = groups.length ? (row) => addGroupFilters(groups, row) : null;
  $("results").replaceChildren(
    table(body, columnsOf(body, series ? ["time", ...groups] : groups), onClick),
  );
  shown.results = params.toString();
}

const shown = { results: null, heatmap: null }; // the requests whose answers are on screen

// -- the heatmap and its box -------------------------------------------------------------------

let heat = null; // { chart, times, edges, step } of the last heatmap drawn

function parseStep(text) {
  const m = /^(\d+(?:\.\d+)?)([smhdw])$/.exec(text || "");
  const unit = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 }[m ? m[2] : "m"];
  return (m ? Number(m[1]) : 1) * unit * 1000;
}

async function renderHeatmap(state, stale) {
  const field = state.heat || "duration_ms";
  const params = baseParams(state);
  params.set("calc", `heatmap(${field})`);
  params.set("granularity", state.granularity || "auto");
  params.set("limit", "10000"); // the API's cap: more buckets than a screen has pixels
  if (params.toString() === shown.heatmap && heat) return drawBox(state);
  shown.heatmap = null;
  const { body, headers } = await api("/api/query", params);
  if (stale()) return;
  const label = `heatmap(${field})`;
  const step = parseStep(headers.get("X-Granularity") || state.granularity);
  $("heatmap-title").textContent = `Heatmap of ${field} over time`;
  const el = $("heatmap");
  let chart = echarts.getInstanceByDom(el) || echarts.init(el);
  if (!body.length) {
    chart.clear();
    heat = null;
    return;
  }
  const times = body.map((r) => r.time);
  const edges = body[0][label].edges;
  const data = [];
  let top = 1;
  body.forEach((r, x) =>
    r[label].counts.forEach((n, y) => {
      if (n > 0) {
        data.push([x, y, n, Math.log10(1 + n)]);
        top = Math.max(top, n);
      }
    }),
  );
  const fmt = (v) => Number(v.toPrecision(4)).toLocaleString("en");
  const ylabels = edges.slice(0, -1).map((e, i) => `${fmt(e)}–${fmt(edges[i + 1])}`);
  chart.setOption(
    {
      animation: false,
      tooltip: {
        formatter: (p) =>
          `${escapeHtml(times[p.value[0]])}<br>${escapeHtml(field)} ${ylabels[p.value[1]]}` +
          `<br>${p.value[2]} events`,
      },
      grid: { left: 110, right: 90, top: 30, bottom: 40 },
      xAxis: {
        type: "category",
        data: times.map((t) => t.slice(11, 16)),
        splitArea: { show: false },
      },
      yAxis: { type: "category", data: ylabels, name: field },
      visualMap: {
        dimension: 3,
        min: 0,
        max: Math.log10(1 + top),
        calculable: false,
        orient: "vertical",
        right: 10,
        top: 30,
        text: [`${top}`, "1"],
        formatter: () => "",
        inRange: { color: ["#eef4fb", "#6a9fd4", "#08306b"] },
      },
      toolbox: { feature: { brush: { type: ["rect", "clear"] } }, right: 90 },
      brush: {
        xAxisIndex: 0,
        yAxisIndex: 0,
        brushMode: "single",
        transformable: false,
        brushStyle: { borderWidth: 1, color: "rgba(230,120,0,0.15)", borderColor: "#e67800" },
      },
      series: [{ type: "heatmap", data, emphasis: { itemStyle: { borderColor: "#000" } } }],
    },
    true,
  );
  chart.dispatchAction({
    type: "takeGlobalCursor",
    key: "brush",
    brushOption: { brushType: "rect", brushMode: "single" },
  });
  heat = { chart, times, edges, step, field };
  window.wideevents.heatmap = heat;
  chart.off("brushEnd");
  chart.on("brushEnd", (e) => {
    const area = e.areas && e.areas[0];
    if (!area || !area.coordRange) return;
    const [[x0, x1], [y0, y1]] = area.coordRange;
    selectBox(x0, x1, y0, y1);
  });
  chart.off("click");
  chart.on("click", (p) => {
    if (p.seriesType === "heatmap") selectBox(p.value[0], p.value[0], p.value[1], p.value[1]);
  });
  shown.heatmap = params.toString();
  drawBox(state);
}

// Draw the selection of the state (its timestamp and field bounds) back as the brush box.
function drawBox(state) {
  const { chart, times, edges, step, field } = heat;
  const bound = (f, op) => {
    const hit = (state.select || []).map((s) => s.split(" ")).find((p) => p[0] === f && p[1] === op);
    return hit ? hit.slice(2).join(" ") : null;
  };
  const t0 = bound("timestamp", ">="), t1 = bound("timestamp", "<");
  if (!t0 || !t1) {
    chart.dispatchAction({ type: "brush", areas: [] });
    return;
  }
  const x0 = times.findIndex((t) => Date.parse(t) >= Date.parse(t0));
  let x1 = times.findIndex((t) => Date.parse(t) + step >= Date.parse(t1));
  if (x1 < 0) x1 = times.length - 1;
  const lo = bound(field, ">="), hi = bound(field, "<");
  const y0 = lo === null ? 0 : Math.max(0, edges.findIndex((e) => e >= Number(lo)));
  let y1 = hi === null ? edges.length - 2 : edges.findIndex((e) => e >= Number(hi)) - 1;
  if (y1 < 0) y1 = edges.length - 2;
  // Pixel bounds, whole cells: a category axis puts coordinates at the cells' centres.
  const px = (x, y) => chart.convertToPixel({ gridIndex: 0 }, [x, y]);
  const a = px(x0, y0);
  const c = px(x1, y1);
  const w = times.length > 1 ? Math.abs(px(1, 0)[0] - px(0, 0)[0]) / 2 : 20;
  const h = edges.length > 2 ? Math.abs(px(0, 1)[1] - px(0, 0)[1]) / 2 : 20;
  chart.dispatchAction({
    type: "brush",
    areas: [{ brushType: "rect", range: [[a[0] - w, c[0] + w], [c[1] - h, a[1] + h]] }],
  });
}

// The box (time buckets x0..x1, value buckets y0..y1) as the breakdown's --select filters.
function selectBox(x0, x1, y0, y1) {
  const { times, edges, step, field } = heat;
  const clamp = (i, n) => Math.max(0, Math.min(n - 1, Math.round(i)));
  [x0, x1] = [clamp(Math.min(x0, x1), times.length), clamp(Math.max(x0, x1), times.length)];
  const rows = edges.length - 1;
  [y0, y1] = [clamp(Math.min(y0, y1), rows), clamp(Math.max(y0, y1), rows)];
  const end = new Date(Date.parse(times[x1]) + step).toISOString().replace(".000Z", "Z");
  const select = [`timestamp >= ${times[x0]}`, `timestamp < ${end}`];
  if (y0 > 0) select.push(`${field} >= ${edges[y0]}`);
  if (y1 < rows - 1) select.push(`${field} < ${edges[y1 + 1]}`);
  const state = readState();
  delete state.trace;
  writeState({ ...state, select });
}

// -- the breakdown -----------------------------------------------------------------------------

async function renderBreakdown(state, stale) {
  const params = baseParams(state);
  state.select.forEach((s) => params.append("select", s));
  params.set("values", "6");
  $("breakdown-section").hidden = false;
  $("breakdown-what").textContent = state.select.join(" AND ") + "  vs  the rest";
  const holder = $("breakdown");
  holder.replaceChildren();
  const { body } = await api("/api/breakdown", params);
  if (stale()) return;
  const ranked = body.filter((r) => !r.in_selection && !r.near_unique && r.score >= 0.005);
  for (const r of ranked.slice(0, 12)) holder.append(fieldChart(r));
  const apart = body.filter((r) => r.in_selection).map((r) => r.field);
  if (apart.length) {
    const p = document.createElement("p");
    p.className = "apart";
    p.textContent = `define the selection (differ by construction): ${apart.join(", ")}`;
    holder.append(p);
  }
}

function fieldChart(r) {
  const box = document.createElement("div");
  box.className = "field";
  box.dataset.field = r.field;
  const h = document.createElement("h3");
  h.textContent = `${r.field}  ·  score ${r.score.toFixed(2)}`;
  const bars = document.createElement("div");
  bars.className = "bars";
  box.append(h, bars);
  const top = r.values[0];
  if (top) {
    const p = document.createElement("p");
    p.className = "top";
    p.textContent = `${top.value}: ${top.selection_pct}% of the selection, ${top.baseline_pct}% of the rest `;
    const link = document.createElement("a");
    link.href = "#";
    link.className = "filter";
    link.textContent = "+ filter";
    link.addEventListener("click", (e) => {
      e.preventDefault();
      addFilter(r, top.value);
    });
    p.append(link);
    box.append(p);
  }
  const values = r.values.slice().reverse();
  requestAnimationFrame(() => {
    const chart = echarts.init(bars);
    chart.setOption({
      animation: false,
      grid: { left: 150, right: 40, top: 8, bottom: 20 },
      tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
      xAxis: { type: "value", max: 100, axisLabel: { formatter: "{value}%" } },
      yAxis: {
        type: "category",
        data: values.map((v) => v.value),
        axisLabel: { width: 140, overflow: "truncate" },
      },
      series: [
        { name: "selection", type: "bar", data: values.map((v) => v.selection_pct), color: "#e67800" },
        { name: "baseline", type: "bar", data: values.map((v) => v.baseline_pct), color: "#9ab8d8" },
      ],
    });
    chart.on("click", (p) => addFilter(r, values[p.dataIndex].value));
  });
  return box;
}

// A value as the filter parser reads it: bare when it is one plain word, else in double quotes
// with \ and " escaped, and line breaks as \n \r (the where box holds one filter a line).
const ESCAPES = { "\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t" };
function quoteValue(v) {
  if (/^[^\s"'`(),=<>!\\]+$/.test(v)) return v;
  return '"' + v.replace(/[\\"\n\r\t]/g, (c) => ESCAPES[c]) + '"';
}

// A breakdown value as --where filters: `F = v`, `F !exists`, or a bin's bounds.
function addFilter(r, value) {
  let filters;
  if (value === "(missing)") filters = [`${r.field} !exists`];
  else if (r.binned) {
    let m;
    if ((m = /^< (.+)$/.exec(value))) filters = [`${r.field} < ${m[1]}`];
    else if ((m = /^>= (.+)$/.exec(value))) filters = [`${r.field} >= ${m[1]}`];
    else if ((m = /^\[(.+), (.+)\)$/.exec(value)))
      filters = [`${r.field} >= ${m[1]}`, `${r.field} < ${m[2]}`];
  }
  if (!filters) filters = [`${r.field} = ${quoteValue(value)}`];
  const state = readState();
  state.where = [...(state.where || []), ...filters];
  delete state.trace;
  writeState(state);
}

// A result row's group values as --where filters (a click on a row of a grouped query).
function addGroupFilters(groups, row) {
  const state = readState();
  const filters = groups.map((g) =>
    row[g] === null || row[g] === undefined ? `${g} !exists` : `${g} = ${quoteValue(String(row[g]))}`,
  );
  state.where = [...(state.where || []), ...filters.filter((f) => !(state.where || []).includes(f))];
  delete state.select;
  delete state.trace;
  writeState(state);
}

// -- the events behind a selection -------------------------------------------------------------

async function renderEvents(state, stale) {
  const params = baseParams(state);
  state.select.forEach((s) => params.append("where", s));
  params.set("order", state.heat || "duration_ms");
  params.set("limit", "50");
  $("events-section").hidden = false;
  $("events-what").textContent = `the selection, ${params.get("order")} descending; click one for its trace`;
  $("events").replaceChildren();
  const { body } = await api("/api/events", params);
  if (stale()) return;
  const first = ["timestamp", "name", "duration_ms", "error", "service.name", "service.version"];
  const skip = new Set(["span_id", "parent_id", "sample_rate", "meta.redacted", "process.pid"]);
  const cols = columnsOf(body, first).filter((c) => !skip.has(c) && c !== "trace_id");
  $("events").replaceChildren(
    table(body, [...cols.slice(0, 10), "trace_id"], (ev) => {
      if (ev.trace_id) writeState({ ...readState(), trace: ev.trace_id });
    }),
  );
}

// -- the trace waterfall -----------------------------------------------------------------------

async function renderTrace(traceId, stale) {
  $("trace-section").hidden = false;
  $("trace-what").textContent = traceId;
  const { body } = await api("/api/trace/" + encodeURIComponent(traceId));
  if (stale()) return;
  const t0 = Math.min(...body.map((e) => Date.parse(e.timestamp)));
  const offset = body.map((e) => Date.parse(e.timestamp) - t0 + micros(e.timestamp));
  const names = body.map((e) => "  ".repeat(e.depth) + e.name);
  const el = $("trace");
  el.style.height = `${60 + 26 * body.length}px`;
  const chart = echarts.getInstanceByDom(el) || echarts.init(el);
  chart.resize();
  chart.setOption(
    {
      animation: false,
      grid: { left: 260, right: 80, top: 10, bottom: 30 },
      tooltip: {
        formatter: (p) => {
          const e = body[p.dataIndex];
          return `${escapeHtml(e.name)}<br>${e.duration_ms} ms${e.error ? "<br>ERROR " + escapeHtml(e["error.type"] || "") : ""}`;
        },
      },
      xAxis: { type: "value", name: "ms", axisLabel: { formatter: "{value}" } },
      yAxis: {
        type: "category",
        inverse: true,
        data: names,
        axisLabel: { align: "left", margin: 250, fontFamily: "monospace" },
      },
      series: [
        { type: "bar", stack: "w", silent: true, itemStyle: { color: "transparent" }, data: offset },
        {
          type: "bar",
          stack: "w",
          barWidth: 14,
          label: { show: true, position: "right", formatter: (p) => `${body[p.dataIndex].duration_ms} ms` },
          data: body.map((e) => ({
            value: e.duration_ms || 0,
            itemStyle: { color: e.error ? "#c33" : "#4a7fb5" },
          })),
        },
      ],
    },
    true,
  );
}

// Sub-millisecond part of an ISO timestamp (Date.parse keeps milliseconds only).
function micros(ts) {
  const m = /\.(\d{3})(\d+)?Z$/.exec(ts);
  return m && m[2] ? Number("0." + m[2]) : 0;
}

// The store's fields, as suggestions for the group-by and heatmap inputs.
async function loadFields() {
  try {
    const { body } = await api("/api/fields");
    const options = (rows) =>
      rows.map((f) => Object.assign(document.createElement("option"), { value: f.name }));
    $("field-names").replaceChildren(...options(body));
    $("numeric-fields").replaceChildren(
      ...options(body.filter((f) => f.type === "BIGINT" || f.type === "DOUBLE")),
    );
  } catch {
    // Suggestions only: the views show the error if the store cannot be read.
  }
}

window.wideevents = { heatmap: null };
window.addEventListener("resize", () => {
  for (const el of document.querySelectorAll(".chart, .bars")) echarts.getInstanceByDom(el)?.resize();
});
render(readState());
loadFields();
