// The jeweller's page. Everything that comes from the API (model reasons, messages, prices) is
// put on the page as text, never as HTML: a registry entry or an error message cannot run script.
// The page is served with a Content-Security-Policy that allows only this file as script.
"use strict";

const ROOT = document.body.dataset.root || "";
const KEY_NAME = "facet-api-key";
const GRADES = {
  cut: ["Fair", "Good", "Very Good", "Premium", "Ideal"],
  color: ["J", "I", "H", "G", "F", "E", "D"],
  clarity: ["I1", "SI2", "SI1", "VS2", "VS1", "VVS2", "VVS1", "IF"],
};
const DEFAULTS = { cut: "Ideal", color: "G", clarity: "VS2" };
// Ends of the factor scale: the smallest that holds the strongest factor.
const SCALE_STEPS = [1.1, 1.25, 1.5, 2, 3, 5, 10, 20, 50, 100, 1000];

const form = document.getElementById("stone");
const keyField = document.getElementById("api-key");
const rememberKey = document.getElementById("remember-key");
const result = document.getElementById("result");
const chart = document.getElementById("chart");
const warnings = document.getElementById("warnings");
const dimensionWarning = document.getElementById("dimension-warning");

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
}

// The key lives in this tab only (sessionStorage) unless the user asks to remember it.
function loadKey() {
  const remembered = localStorage.getItem(KEY_NAME);
  rememberKey.checked = remembered !== null;
  keyField.value = remembered ?? sessionStorage.getItem(KEY_NAME) ?? "";
}

function saveKey() {
  sessionStorage.setItem(KEY_NAME, keyField.value);
  if (rememberKey.checked) localStorage.setItem(KEY_NAME, keyField.value);
  else localStorage.removeItem(KEY_NAME);
}

function headers(extra) {
  return keyField.value ? { ...extra, "x-api-key": keyField.value } : extra;
}

const usd = (v) => v.toLocaleString("en-US", { style: "currency", currency: "USD", maximumFractionDigits: 0 });
const signedUsd = (v) => (v >= 0 ? "+" : "−") + usd(Math.abs(v));

function showError(message) {
  result.className = "error";
  result.textContent = message;
  clear(chart);
}

function describeError(body, status) {
  if (status === 403) {
    keyField.focus();
    return "This API needs a key: enter your API key in the form and press “Price it” again.";
  }
  if (!body || typeof body.message !== "string") return `The API answered ${status}.`;
  const details = Array.isArray(body.details) ? body.details : [];
  return [body.message, ...details.map((d) => `• ${d.field}: ${d.message}`)].join("\n");
}

function invalidFields() {
  return [...form.elements].filter((input) => input.name && !input.checkValidity()).map((input) => input.name);
}

function onEdit() {
  // A price shown next to input it does not belong to is wrong: clear it as soon as input changes
  // to something that cannot be priced.
  const invalid = invalidFields().filter((name) => name !== "api-key");
  if (invalid.length) showError(`Check ${invalid.join(", ")}: outside the allowed range or empty.`);
}

function scaleEnd(strongest) {
  return SCALE_STEPS.find((step) => Math.log(step) >= strongest) ?? SCALE_STEPS[SCALE_STEPS.length - 1];
}

function drawChart(explanation) {
  clear(chart);
  chart.append(el("p", `Base price ${usd(explanation.base_price_usd)} (an average stone), then each factor:`, "muted"));
  const strongest = Math.max(...explanation.factors.map((f) => Math.abs(Math.log(f.factor))), 0.01);
  const end = scaleEnd(strongest);
  const scale = el("div", null, "bar-scale");
  const ends = el("span", null, "ends");
  ends.append(el("span", `÷${end}`), el("span", "×1"), el("span", `×${end}`));
  scale.append(el("span"), ends, el("span", "in dollars", "effect"));
  chart.append(scale);
  for (const f of explanation.factors) {
    const row = el("div", null, "bar-row factor");
    row.dataset.factor = f.name;
    const track = el("span", null, "bar-track");
    const bar = el("span", null, `bar ${f.factor >= 1 ? "up" : "down"}`);
    bar.style.width = `${(Math.abs(Math.log(f.factor)) / Math.log(end)) * 50}%`;
    bar.title = `×${f.factor.toFixed(3)} (${f.effect_percent >= 0 ? "+" : ""}${f.effect_percent.toFixed(1)} %)`;
    track.append(el("span", null, "axis"), bar);
    row.append(el("span", f.name), track, el("span", signedUsd(f.effect_usd), "effect"));
    chart.append(row);
  }
}

function showWarnings(list) {
  clear(warnings);
  dimensionWarning.classList.add("hidden");
  dimensionWarning.textContent = "";
  for (const text of list || []) {
    dimensionWarning.textContent = text;
    dimensionWarning.classList.remove("hidden");
    warnings.append(el("div", text, "warning"));
  }
}

async function price(event) {
  event.preventDefault();
  saveKey();
  const invalid = invalidFields().filter((name) => name !== "api-key");
  if (invalid.length) {
    showError(`Check ${invalid.join(", ")}: outside the allowed range or empty.`);
    return;
  }
  const stone = {};
  for (const [k, v] of new FormData(form).entries()) if (k !== "api-key") stone[k] = GRADES[k] ? v : Number(v);
  result.className = "muted";
  result.textContent = "Pricing…";
  clear(chart);
  showWarnings([]);
  try {
    const response = await fetch(`${ROOT}/v1/prices`, { method: "POST", headers: headers({ "Content-Type": "application/json" }), body: JSON.stringify(stone) });
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      showError(describeError(body, response.status));
      return;
    }
    clear(result);
    result.className = "";
    const amount = el("div", usd(body.price_usd), "price");
    amount.id = "price";
    const model = body.model_version == null ? "local model artifact" : `model v${body.model_version}`;
    result.append(amount, el("div", `Plausible range ${usd(body.range_usd.low)} – ${usd(body.range_usd.high)} · ${model}`, "muted"));
    showWarnings(body.warnings);
    drawChart(body.explanation);
  } catch (error) {
    showError(`The API could not be reached: ${error}`);
  }
}

async function history() {
  const target = document.getElementById("history");
  try {
    const response = await fetch(`${ROOT}/v1/models`, { headers: headers({}) });
    const versions = await response.json().catch(() => null);
    if (!response.ok) {
      target.textContent = describeError(versions, response.status);
      return;
    }
    if (!versions.length) {
      target.textContent = "No model trained yet.";
      return;
    }
    const table = el("table");
    const head = el("tr");
    for (const title of ["version", "status", "holdout MAPE", "created", "why"]) head.append(el("th", title));
    table.append(el("thead"), el("tbody"));
    table.tHead.append(head);
    for (const v of versions) {
      const row = el("tr");
      row.dataset.version = String(v.version);
      const status = el("td", v.status);
      if (["Approved", "Rejected", "PendingManualApproval"].includes(v.status)) status.className = `status-${v.status}`;
      row.append(
        el("td", `v${v.version}${v.production ? " ★ production" : ""}`),
        status,
        el("td", v.holdout_mape == null ? "" : `${(v.holdout_mape * 100).toFixed(2)}%`),
        el("td", String(v.created_at).slice(0, 19).replace("T", " ")),
        el("td", v.reason, "reason"),
      );
      table.tBodies[0].append(row);
    }
    target.className = "";
    clear(target);
    target.append(table);
  } catch (error) {
    target.textContent = `The model history could not be loaded: ${error}`;
  }
}

for (const [name, levels] of Object.entries(GRADES)) {
  const select = form.querySelector(`select[name=${name}]`);
  for (const level of levels) select.add(new Option(level, level, false, level === DEFAULTS[name]));
}
loadKey();
keyField.addEventListener("change", () => { saveKey(); history(); });
rememberKey.addEventListener("change", saveKey);
form.addEventListener("input", onEdit);
form.addEventListener("submit", price);
history();
