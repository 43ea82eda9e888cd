// The billing page: reads the bearer token from the URL fragment (or a pasted one), then renders the
// summary cards, the daily chart and the records table from the gateway's JSON API. Amounts arrive as exact
// decimal strings and are rounded for display with integer arithmetic (BigInt), never through floats;
// only the chart's bar heights use numbers, as pixel geometry.
"use strict";

(function () {
  const TOKEN_KEY = "hiremeter.token";
  const CATEGORIES = ["cv_parsing", "question_generation", "video_interview"];
  const CATEGORY_LABELS = { cv_parsing: "CV parsing", question_generation: "Question generation", video_interview: "Video interview" };
  const UNIT_LABELS = { cv: ["CV", "CVs"], question: ["question", "questions"], minute: ["min", "min"] };
  const SOURCE_BADGES = {
    response_usage: ["Exact", "Priced from the tokens OpenAI reported for this operation"],
    usage_api: ["Usage API", "Tokens attributed from OpenAI's organization usage API"],
    fallback: ["Fallback", "Flat price: provisional until reconciled"],
    reconciliation: ["Reconciled", "Adjustment written by reconciliation"],
  };
  const $ = (selector) => document.querySelector(selector);

  const state = { token: "", start: "", end: "", category: "", source: "", pages: [""], page: 0, loading: 0 };

  // Decimal text -------------------------------------------------------------------------------------

  function roundDecimal(text, places) {
    let negative = text.startsWith("-");
    const digits = negative ? text.slice(1) : text;
    const [whole, fraction = ""] = digits.split(".");
    const padded = (fraction + "0".repeat(places + 1)).slice(0, places + 1);
    let scaled = BigInt(whole + padded.slice(0, places));
    const rest = fraction.slice(places);
    if (rest && /[1-9]/.test(rest)) {
      const tail = /[1-9]/.test(rest.slice(1));
      // Half-even, like the server's averages.
      if (rest[0] > "5" || (rest[0] === "5" && (tail || scaled % 2n === 1n))) scaled += 1n;
    }
    const out = scaled.toString().padStart(places + 1, "0");
    let intPart = places ? out.slice(0, -places) : out;
    const fracPart = places ? out.slice(-places) : "";
    intPart = intPart.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    if (scaled === 0n) negative = false;
    return (negative ? "-" : "") + intPart + (places ? "." + fracPart : "");
  }

  function money(text, places = 2) {
    const small = text !== "0" && /^-?0\.0[0-9]*$/.test(text) && places === 2;
    const rounded = roundDecimal(text, small ? 4 : places);
    return rounded.startsWith("-") ? "-$" + rounded.slice(1) : "$" + rounded;
  }

  function quantity(text, unit) {
    // Interviews shorter than six seconds would read "0.0 min": show them in seconds (display only).
    if (unit === "minute" && Number(text) > 0 && Number(text) < 0.1) return (Number(text) * 60).toFixed(1) + " s";
    const places = unit === "minute" ? 1 : 0;
    const value = roundDecimal(text, places);
    const [one, many] = UNIT_LABELS[unit] || [unit, unit];
    return value + " " + (value === "1" ? one : many);
  }

  // Dates --------------------------------------------------------------------------------------------

  const iso = (date) => date.toISOString().slice(0, 10);
  function monthOf(offset) {
    const now = new Date();
    const first = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + offset, 1));
    const last = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + offset + 1, 0));
    return [iso(first), iso(last)];
  }
  const dayLabel = (text) =>
    new Date(text + "T00:00:00Z").toLocaleDateString(undefined, { day: "numeric", month: "short", year: "numeric", timeZone: "UTC" });
  const timeLabel = (text) =>
    text ? new Date(text).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" }) : "";

  // API ----------------------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(path, params, raw = false) {
    const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "" && v !== null && v !== undefined));
    const response = await fetch(path + "?" + query.toString(), {
      headers: { Authorization: "Bearer " + state.token, Accept: raw ? "text/csv" : "application/json" },
    });
    if (!response.ok) {
      let message = response.status + " " + response.statusText;
      try {
        const body = await response.json();
        message = body.error.message + " (request " + body.error.request_id + ")";
      } catch (ignored) {
        /* not JSON: keep the status line */
      }
      throw new ApiError(response.status, message);
    }
    return raw ? response : response.json();
  }

  const periodParams = () => ({ start: state.start, end: state.end });

  function busy(delta, message) {
    state.loading += delta;
    $("#usage").setAttribute("aria-busy", state.loading > 0 ? "true" : "false");
    if (message) $("#status").textContent = message;
  }

  function fail(error) {
    if (error.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      state.token = "";
      showSignIn("Your token was refused: " + error.message);
      return;
    }
    $("#error").hidden = false;
    $("#error").textContent = "Could not load usage: " + error.message;
    $("#status").textContent = "";
  }

  // Rendering ----------------------------------------------------------------------------------------

  function renderSummary(summary) {
    $("#period-label").textContent =
      dayLabel(summary.start) + " – " + dayLabel(summary.end) + " (" + summary.time_zone + ")";
    const badge = $("#reconciled");
    const hasUsage = summary.categories.some((c) => c.operations > 0);
    badge.hidden = !hasUsage;
    badge.textContent = summary.reconciled ? "Reconciled with OpenAI" : "Not yet reconciled";
    badge.className = "badge " + (summary.reconciled ? "badge-reconciliation" : "badge-pending");
    $("#total").textContent = money(summary.total_cost);
    $("#total").title = summary.total_cost + " USD";
    for (const category of summary.categories) {
      const card = $("#card-" + category.category);
      const field = (name) => card.querySelector('[data-field="' + name + '"]');
      field("total_cost").textContent = money(category.total_cost);
      field("total_cost").title = category.total_cost + " USD (" + category.operations + " operations)";
      field("quantity").textContent = quantity(category.quantity, category.unit);
      field("average_cost_per_unit").textContent = money(category.average_cost_per_unit, 4);
      field("average_cost_per_unit").title = category.average_cost_per_unit + " USD";
      const parts = category.sources
        .filter((s) => s.operations > 0 || s.adjustments > 0)
        .map((s) => SOURCE_BADGES[s.source][0] + " " + (s.source === "reconciliation" ? money(s.cost) : s.operations));
      field("sources").textContent = parts.length ? parts.join(" · ") : "No operations";
    }
  }

  const SVG = "http://www.w3.org/2000/svg";
  function svg(name, attributes, parent) {
    const node = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
    if (parent) parent.appendChild(node);
    return node;
  }

  let lastDaily = null;
  function renderChart(daily) {
    lastDaily = daily;
    const host = $("#chart");
    host.textContent = "";
    const width = Math.max(host.clientWidth, 280);
    const height = width < 500 ? 200 : 240;
    const pad = { left: 56, right: 8, top: 12, bottom: 28 };
    const days = daily.days;
    const totals = days.map((d) => Math.max(0, ...[Number(d.total_cost)]));
    const peak = Math.max(...totals, 0);
    const ticks = 4;
    const step = niceStep(peak / ticks);
    const top = step * ticks;
    const decimals = step > 0 ? Math.max(0, -Math.floor(Math.log10(step))) : 0;
    const root = svg("svg", { viewBox: "0 0 " + width + " " + height, width: width, height: height, role: "img", "aria-labelledby": "chart-desc" });
    const desc = svg("title", { id: "chart-desc" }, root);
    const busiest = days.reduce((best, d) => (Number(d.total_cost) > Number(best.total_cost) ? d : best), days[0]);
    desc.textContent =
      "Daily cost from " + dayLabel(daily.start) + " to " + dayLabel(daily.end) + ", stacked by category. Total " +
      money(daily.total_cost) + (peak > 0 ? "; highest " + money(busiest.total_cost) + " on " + dayLabel(busiest.date) : "; no usage") + ".";
    const plotW = width - pad.left - pad.right;
    const plotH = height - pad.top - pad.bottom;
    for (let i = 0; i <= ticks; i++) {
      const y = pad.top + plotH - (plotH * i) / ticks;
      svg("line", { x1: pad.left, x2: width - pad.right, y1: y, y2: y, class: "grid" }, root);
      const label = svg("text", { x: pad.left - 6, y: y + 4, class: "axis", "text-anchor": "end" }, root);
      label.textContent = top ? "$" + (step * i).toFixed(decimals) : i === 0 ? "$0" : "";
    }
    const slot = plotW / Math.max(days.length, 1);
    const barW = Math.max(2, Math.min(28, slot * 0.7));
    const every = Math.ceil(days.length / Math.max(1, Math.floor(plotW / 44)));
    days.forEach((day, index) => {
      const x = pad.left + slot * index + (slot - barW) / 2;
      const group = svg("g", { class: "bar", "data-date": day.date }, root);
      const tip = svg("title", {}, group);
      tip.textContent =
        dayLabel(day.date) + ": " + money(day.total_cost) + " — " +
        day.categories.map((c) => CATEGORY_LABELS[c.category] + " " + money(c.cost)).join(", ");
      let y = pad.top + plotH;
      for (const entry of day.categories) {
        const value = Number(entry.cost);
        if (!(value > 0) || !top) continue;
        const h = (plotH * value) / top;
        y -= h;
        svg("rect", { x: x, y: y, width: barW, height: Math.max(h, 0.5), class: "seg cat-" + entry.category }, group);
      }
      if (index % every === 0) {
        const label = svg("text", { x: x + barW / 2, y: height - 8, class: "axis", "text-anchor": "middle" }, root);
        label.textContent = String(Number(day.date.slice(8, 10)));
      }
    });
    host.appendChild(root);
  }

  // The smallest 1, 2 or 5 times a power of ten that is at least `value`: axis steps a reader can add up.
  function niceStep(value) {
    if (!(value > 0)) return 0;
    const magnitude = Math.pow(10, Math.floor(Math.log10(value)));
    for (const multiple of [1, 2, 5, 10]) if (multiple * magnitude >= value) return multiple * magnitude;
    return 10 * magnitude;
  }

  function badge(source) {
    const [label, description] = SOURCE_BADGES[source] || [source, ""];
    const span = document.createElement("span");
    span.className = "badge badge-" + source;
    span.textContent = label;
    span.title = description;
    return span;
  }

  function renderRecords(page) {
    const body = $("#records tbody");
    body.textContent = "";
    if (!page.records.length) {
      const row = body.insertRow();
      const cell = row.insertCell();
      cell.colSpan = 8;
      cell.className = "empty";
      cell.textContent = "No usage records for this period and filter.";
    }
    for (const record of page.records) {
      const row = body.insertRow();
      if (record.kind === "adjustment") row.className = "adjustment";
      const cells = [
        ["Completed", timeLabel(record.completed_time)],
        ["Category", CATEGORY_LABELS[record.category]],
        ["Job", record.job_id || "—"],
        ["Candidate", record.candidate_id || "—"],
        ["Model", record.model],
        ["Quantity", record.kind === "adjustment" ? "adjustment" : quantity(record.quantity, record.unit)],
        ["Cost", money(record.cost, 4)],
      ];
      cells.forEach(([label, text], index) => {
        const cell = row.insertCell();
        cell.dataset.label = label;
        cell.textContent = text;
        if (index >= 5) cell.className = "num";
        if (label === "Job" || label === "Candidate") {
          cell.className = "id"; // long ids are cut with an ellipsis; the whole id is in the tooltip
          cell.title = text;
        }
        if (label === "Completed") cell.title = record.completed_time;
        if (label === "Cost") cell.title = record.cost + " USD (base " + record.base_cost + ", margin " + record.margin + ")";
      });
      const sourceCell = row.insertCell();
      sourceCell.dataset.label = "Source";
      sourceCell.appendChild(badge(record.source));
    }
    const size = 50;
    const first = page.total_size ? state.page * size + 1 : 0;
    const last = state.page * size + page.records.length;
    $("#page-info").textContent = first + "–" + last + " of " + page.total_size;
    $("#prev").disabled = state.page === 0;
    $("#next").disabled = !page.next_page_token;
    state.pages[state.page + 1] = page.next_page_token;
  }

  // Loading ------------------------------------------------------------------------------------------

  async function loadRecords() {
    busy(1, "Loading records…");
    try {
      const page = await api("/api/v1/billing/usage/records", {
        ...periodParams(),
        category: state.category,
        source: state.source,
        page_size: 50,
        page_token: state.pages[state.page],
      });
      renderRecords(page);
      $("#status").textContent = "Usage updated.";
    } catch (error) {
      fail(error);
    } finally {
      busy(-1);
    }
  }

  async function loadAll() {
    $("#error").hidden = true;
    state.pages = [""];
    state.page = 0;
    busy(1, "Loading usage…");
    try {
      const [summary, daily] = await Promise.all([
        api("/api/v1/billing/usage/summary", periodParams()),
        api("/api/v1/billing/usage/daily", periodParams()),
      ]);
      renderSummary(summary);
      renderChart(daily);
      await loadRecords();
    } catch (error) {
      fail(error);
    } finally {
      busy(-1);
    }
  }

  async function exportCsv() {
    const button = $("#export");
    button.disabled = true;
    busy(1, "Preparing the CSV export…");
    try {
      const response = await api("/api/v1/billing/usage/export.csv", { ...periodParams(), category: state.category, source: state.source }, true);
      const blob = await response.blob();
      const disposition = response.headers.get("Content-Disposition") || "";
      const match = /filename="([^"]+)"/.exec(disposition);
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = match ? match[1] : "hiremeter-usage.csv";
      document.body.appendChild(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 10000);
      $("#status").textContent = "CSV export downloaded.";
    } catch (error) {
      fail(error);
    } finally {
      button.disabled = false;
      busy(-1);
    }
  }

  // Period and URL -----------------------------------------------------------------------------------

  function applyPeriodChoice(choice, start, end) {
    if (choice === "last_month") [state.start, state.end] = monthOf(-1);
    else if (choice === "custom" && start && end) [state.start, state.end] = [start, end];
    else [state.start, state.end] = monthOf(0);
    $("#period").value = choice;
    $("#start").value = state.start;
    $("#end").value = state.end;
    document.querySelectorAll(".custom").forEach((node) => (node.hidden = choice !== "custom"));
    const url = new URL(location.href);
    url.hash = "";
    url.searchParams.set("tab", "usage");
    url.searchParams.set("period", choice);
    if (choice === "custom") {
      url.searchParams.set("start", state.start);
      url.searchParams.set("end", state.end);
    } else {
      url.searchParams.delete("start");
      url.searchParams.delete("end");
    }
    history.replaceState(null, "", url.pathname + url.search);
  }

  function showSignIn(message) {
    $("#usage").hidden = true;
    $("#signin").hidden = false;
    $("#forget").hidden = true;
    if (message) {
      $("#status").textContent = message;
      const note = $("#signin p");
      note.textContent = message;
    }
    $("#token-input").focus();
  }

  function showUsage() {
    $("#signin").hidden = true;
    $("#usage").hidden = false;
    $("#forget").hidden = false;
    loadAll();
  }

  function init() {
    const fragment = new URLSearchParams(location.hash.slice(1));
    if (fragment.get("token")) {
      sessionStorage.setItem(TOKEN_KEY, fragment.get("token"));
    }
    state.token = sessionStorage.getItem(TOKEN_KEY) || "";
    const params = new URLSearchParams(location.search);
    applyPeriodChoice(params.get("period") || "this_month", params.get("start"), params.get("end"));

    $("#period").addEventListener("change", (event) => {
      if (event.target.value !== "custom") {
        applyPeriodChoice(event.target.value);
        loadAll();
      } else {
        applyPeriodChoice("custom", state.start, state.end);
        $("#start").focus();
      }
    });
    $("#period-form").addEventListener("submit", (event) => {
      event.preventDefault();
      if (!$("#start").value || !$("#end").value || $("#end").value < $("#start").value) {
        $("#error").hidden = false;
        $("#error").textContent = "Choose a start date and an end date on or after it.";
        return;
      }
      applyPeriodChoice("custom", $("#start").value, $("#end").value);
      loadAll();
    });
    $("#filter-category").addEventListener("change", (event) => {
      state.category = event.target.value;
      state.pages = [""];
      state.page = 0;
      loadRecords();
    });
    $("#filter-source").addEventListener("change", (event) => {
      state.source = event.target.value;
      state.pages = [""];
      state.page = 0;
      loadRecords();
    });
    $("#next").addEventListener("click", () => {
      if (!state.pages[state.page + 1]) return;
      state.page += 1;
      loadRecords();
    });
    $("#prev").addEventListener("click", () => {
      if (state.page === 0) return;
      state.page -= 1;
      loadRecords();
    });
    $("#export").addEventListener("click", exportCsv);
    $("#token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const value = $("#token-input").value.trim().replace(/^Bearer\s+/i, "");
      if (!value) return;
      sessionStorage.setItem(TOKEN_KEY, value);
      state.token = value;
      $("#token-input").value = "";
      showUsage();
    });
    $("#forget").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      state.token = "";
      showSignIn();
    });
    let resizeTimer = 0;
    window.addEventListener("resize", () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => lastDaily && renderChart(lastDaily), 150);
    });

    if (state.token) showUsage();
    else showSignIn();
  }

  document.addEventListener("DOMContentLoaded", init);
})();
