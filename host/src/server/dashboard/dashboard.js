// The tally dashboard: lists the counters a page at a time (refreshed every 2 s), adds 1 on a
// click, creates counters, filters names, and shows the windows (counters that reset) with a
// sparkline of their last windows. It talks only to this server's JSON API (see /openapi.json),
// the same one curl uses; pages follow the API's `Link: <...>; rel="next"` header.
"use strict";

const REFRESH_MS = 2000;
const PAGE_SIZE = 50;
// A filter reads the names 1000 at a time, at most this many pages (a million names): beyond,
// it says it stopped.
const FILTER_PAGES = 1000;
// The windows shown at once (the filter finds the others), and the windows each sparkline shows.
const WINDOW_ROWS = 20;
const SPARK_WINDOWS = 30;
const TOKEN_KEY = "tally-auth-token";

const tbody = document.querySelector("#counters tbody");
const empty = document.getElementById("empty");
const status = document.getElementById("status");
const errorBox = document.getElementById("error");
const createForm = document.getElementById("create");
const tokenForm = document.getElementById("token");
const pager = document.getElementById("pager");
const previousButton = document.getElementById("previous-page");
const nextButton = document.getElementById("next-page");
const pageLabel = document.getElementById("page-number");
const filterInput = document.getElementById("filter");
const matches = document.getElementById("matches");
const windowsBody = document.querySelector("#windows tbody");
const noWindows = document.getElementById("no-windows");
const noWindowMatches = document.getElementById("no-window-matches");

// The page shown: the URL it was read from, the URLs of the pages before it (for "Previous"),
// and the URL of the next page as the server's Link header gave it (null on the last page).
const firstPage = `/counters?limit=${PAGE_SIZE}`;
let pageUrl = firstPage;
let earlierPages = [];
let nextPage = null;

// Bumped by every change this page makes, so a list fetched before the change cannot overwrite
// the newer value the change returned.
let changes = 0;
let refreshing = false;

/**
 * Reads a JSON answer, keeping integers beyond 2^53 exact: counters are u64, and plain
 * `JSON.parse` would round them. (Browsers without JSON.parse source access round, as before.)
 */
function parseJson(text) {
  return JSON.parse(text, (key, value, context) =>
    typeof value === "number" && !Number.isSafeInteger(value) && context && context.source
      ? context.source
      : value,
  );
}

/**
 * Calls the API with `body` (JSON text, or undefined) and `extra` request headers; resolves to
 * the parsed answer, or throws an Error carrying the API's own message.
 */
async function api(method, path, body, extra = {}) {
  return (await call(method, path, body, extra)).answer;
}

/** The link with `rel="next"` in a Link header (RFC 8288), or null. */
function nextLink(header) {
  const match = header && header.match(/<([^>]*)>\s*;\s*rel="?next"?/);
  return match ? match[1] : null;
}

/**
 * Like `api`, also giving the response (for its headers). `extra` adds request headers. A
 * failure worth retrying (the server unreachable, 503, or the same idempotency key still in
 * flight) is thrown with `retryable` set.
 */
async function call(method, path, body, extra = {}) {
  const headers = { ...extra };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token && method !== "GET") headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, body, cache: "no-store" });
  } catch (error) {
    error.retryable = true;
    throw error;
  }
  let answer = {};
  try {
    answer = parseJson(await response.text());
  } catch {
    // Not JSON (a proxy's error page, say): report the status below.
  }
  if (!response.ok) {
    if (response.status === 401) tokenForm.hidden = false;
    const error = new Error(answer.error || `${method} ${path}: HTTP ${response.status}`);
    error.retryable = response.status === 503 || answer.code === "idempotency_key_in_use";
    throw error;
  }
  return { answer, response };
}

const counterPath = (name) => `/counters/${encodeURIComponent(name)}`;

function showError(error) {
  errorBox.textContent = error ? error.message : "";
  errorBox.hidden = !error;
}

const findRow = (name) => tbody.querySelector(`tr[data-name="${CSS.escape(name)}"]`);

/** Shows one counter's value at once, adding its row if it is new (the next refresh sorts). */
function showCounter(name, value) {
  let row = findRow(name);
  if (!row) {
    row = newRow(name);
    tbody.insertBefore(row, [...tbody.rows].find((other) => other.dataset.name > name) || null);
    empty.hidden = true;
  }
  row.querySelector("td.value").textContent = String(value);
}

function newRow(name) {
  const row = document.createElement("tr");
  row.dataset.name = name;
  const nameCell = row.insertCell();
  nameCell.className = "name";
  nameCell.textContent = name;
  row.insertCell().className = "value";
  const actions = row.insertCell();
  actions.className = "actions";
  const button = document.createElement("button");
  button.type = "button";
  button.className = "increment";
  button.textContent = "+1";
  button.setAttribute("aria-label", `Add 1 to ${name}`);
  button.addEventListener("click", () => increment(name, button));
  actions.append(button);
  return row;
}

/** Shows `counters` (sorted by the server), reusing rows so buttons keep focus. */
function render(counters) {
  const rows = new Map([...tbody.rows].map((row) => [row.dataset.name, row]));
  counters.forEach(({ name, value }, index) => {
    const row = rows.get(name) || newRow(name);
    rows.delete(name);
    row.querySelector("td.value").textContent = String(value);
    if (tbody.rows[index] !== row) tbody.insertBefore(row, tbody.rows[index] || null);
  });
  rows.forEach((row) => row.remove());
  empty.hidden = counters.length > 0;
}

/** Shows where in the listing the page is, and which ways it can go. */
function showPager() {
  pageLabel.textContent = `page ${earlierPages.length + 1}`;
  previousButton.disabled = earlierPages.length === 0;
  nextButton.disabled = nextPage === null;
  pager.hidden = earlierPages.length === 0 && nextPage === null;
}

/** The filter as typed, lowercased; empty when there is none. */
const filterText = () => filterInput.value.trim().toLowerCase();
const matchesFilter = (name, filter) => name.toLowerCase().includes(filter);

/**
 * Every item of a paged listing (`first`, then each page its Link header names) that `keep`
 * accepts, until `enough` are found or `maxPages` were read; and whether the listing ended.
 */
async function collect(first, keep, enough, maxPages) {
  const found = [];
  let url = first;
  for (let pages = 0; url && pages < maxPages && found.length < enough; pages += 1) {
    const { answer, response } = await call("GET", url);
    found.push(...answer.filter(keep));
    url = nextLink(response.headers.get("Link"));
  }
  return { found: found.slice(0, enough), more: found.length > enough || url !== null };
}

/** The counters to show: the current page, or with a filter the first matches of them all. */
async function refreshCounters() {
  const before = changes;
  const filter = filterText();
  if (!filter) {
    const url = pageUrl;
    const { answer: counters, response } = await call("GET", url);
    if (before === changes && url === pageUrl && !filterText()) {
      render(counters);
      nextPage = nextLink(response.headers.get("Link"));
      showPager();
      matches.hidden = true;
    }
    return;
  }
  const { found, more } = await collect(
    "/counters?limit=1000",
    ({ name }) => matchesFilter(name, filter),
    PAGE_SIZE,
    FILTER_PAGES,
  );
  if (before !== changes || filter !== filterText()) return;
  render(found);
  pager.hidden = true;
  empty.hidden = true;
  matches.hidden = false;
  matches.textContent = found.length === 0
    ? `No counter name contains "${filterInput.value.trim()}".`
    : `${found.length}${more ? "+" : ""} counter${found.length === 1 ? "" : "s"} whose name contains "${filterInput.value.trim()}"${more ? ` (the first ${PAGE_SIZE} shown)` : ""}.`;
}

const windowPath = (name) => `/windows/${encodeURIComponent(name)}`;

/** A sparkline of `counts` (oldest first) as an SVG the page draws itself. */
function sparkline(counts) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "sparkline");
  svg.setAttribute("viewBox", "0 0 100 20");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `last ${counts.length} windows: ${counts.join(", ")}`);
  svg.dataset.counts = counts.join(",");
  const top = Math.max(1, ...counts.map(Number));
  const step = counts.length > 1 ? 100 / (counts.length - 1) : 0;
  const points = counts.map((count, index) =>
    `${(index * step).toFixed(2)},${(19 - (Number(count) / top) * 18).toFixed(2)}`);
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", points.join(" "));
  svg.append(line);
  const [x, y] = points.at(-1).split(",");
  const dot = document.createElementNS("http://www.w3.org/2000/svg", "circle");
  dot.setAttribute("cx", x);
  dot.setAttribute("cy", y);
  dot.setAttribute("r", "1.6");
  svg.append(dot);
  return svg;
}

/** The windows (up to `WINDOW_ROWS`, filtered by name), each with its last windows' counts. */
async function refreshWindows() {
  const filter = filterText();
  const seen = new Set();
  const { found } = await collect(
    "/windows?limit=1000",
    ({ name, window }) => {
      const key = `${window} ${name}`;
      if (seen.has(key) || (filter && !matchesFilter(name, filter))) return false;
      seen.add(key);
      return true;
    },
    WINDOW_ROWS,
    FILTER_PAGES,
  );
  const rows = await Promise.all(found.map(async ({ name, window }) => {
    const history = await api("GET",
      `${windowPath(name)}?window=${encodeURIComponent(window)}&last=${SPARK_WINDOWS}`);
    return { name, window, counts: history.counts };
  }));
  if (filter !== filterText()) return;
  windowsBody.replaceChildren(...rows.map(({ name, window, counts }) => {
    const row = document.createElement("tr");
    row.dataset.name = name;
    row.dataset.window = window;
    const nameCell = row.insertCell();
    nameCell.className = "name";
    nameCell.textContent = name;
    const windowCell = row.insertCell();
    windowCell.className = "window";
    windowCell.textContent = window;
    row.insertCell().append(sparkline(counts));
    const now = row.insertCell();
    now.className = "value";
    now.textContent = String(counts.at(-1));
    return row;
  }));
  noWindows.hidden = rows.length > 0 || Boolean(filter);
  noWindowMatches.hidden = rows.length > 0 || !filter;
  noWindowMatches.textContent = `No window name contains "${filterInput.value.trim()}".`;
}

async function refresh() {
  // A tab nobody looks at does not poll; it catches up as soon as it is shown again.
  if (refreshing || document.hidden) return;
  refreshing = true;
  try {
    await Promise.all([refreshCounters(), refreshWindows()]);
    status.textContent = `live · updated ${new Date().toLocaleTimeString()}`;
    status.classList.remove("offline");
  } catch (error) {
    status.textContent = "cannot reach the server · retrying";
    status.classList.add("offline");
  } finally {
    refreshing = false;
  }
}

/**
 * A new idempotency key: 128 random bits in hex. (`crypto.randomUUID` exists only in secure
 * contexts, and the dashboard may be served over plain HTTP on a LAN address.)
 */
function newIdempotencyKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** How many times one click is sent at most, and the first wait between tries (doubling). */
const CLICK_TRIES = 5;
const FIRST_RETRY_MS = 250;

/**
 * One click's increment, with one idempotency key for all its tries: when an answer is lost
 * (the connection drops, the server restarts, the store is briefly unreachable) the retry
 * counts once, whether or not the first try was applied.
 */
async function incrementOnce(name) {
  const headers = { "Idempotency-Key": newIdempotencyKey() };
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await api("POST", `${counterPath(name)}/increment`, undefined, headers);
    } catch (error) {
      if (!error.retryable || attempt >= CLICK_TRIES) throw error;
      await new Promise((resolve) => setTimeout(resolve, FIRST_RETRY_MS * 2 ** (attempt - 1)));
    }
  }
}

async function increment(name, button) {
  button.disabled = true;
  changes += 1;
  try {
    const counter = await incrementOnce(name);
    showCounter(counter.name, counter.value);
    showError(null);
  } catch (error) {
    showError(error);
  } finally {
    button.disabled = false;
  }
}

createForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = createForm.elements.name.value;
  const value = createForm.elements.value.value.trim() || "0";
  if (!/^\d+$/.test(value)) {
    showError(new Error("the starting value must be a whole number from 0"));
    return;
  }
  // Creating must not silently replace a counter someone else already counts with.
  if (findRow(name)) {
    showError(new Error(`a counter named "${name}" already exists`));
    return;
  }
  changes += 1;
  try {
    // The digits go over the wire as typed: a JavaScript number would round values above 2^53.
    const counter = await api("PUT", counterPath(name), `{"value": ${value}}`);
    showError(null);
    createForm.reset();
    showCounter(counter.name, counter.value);
  } catch (error) {
    showError(error);
  }
});

/** Shows another page (one page of counters is all the dashboard ever reads at once). */
function goTo(url, earlier) {
  pageUrl = url;
  earlierPages = earlier;
  // Right away, even while the old page's refresh is in flight (its answer is then ignored).
  refreshing = false;
  refresh();
}

nextButton.addEventListener("click", () => {
  if (nextPage) goTo(nextPage, [...earlierPages, pageUrl]);
});
previousButton.addEventListener("click", () => {
  if (earlierPages.length) goTo(earlierPages.at(-1), earlierPages.slice(0, -1));
});

// Typing filters at once (the refresh after the last keystroke wins).
filterInput.addEventListener("input", () => {
  refreshing = false;
  refresh();
});

tokenForm.addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, tokenForm.elements.token.value);
  tokenForm.reset();
  tokenForm.hidden = true;
  showError(null);
});

refresh();
setInterval(refresh, REFRESH_MS);
document.addEventListener("visibilitychange", () => {
  if (!document.hidden) refresh();
});
