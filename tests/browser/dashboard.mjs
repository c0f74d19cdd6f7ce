// Drives the tally dashboard in headless Chromium, as a person would: create counters with the
// form, click +1, watch a change made elsewhere arrive by itself, reload after a server restart,
// page through more counters than one page shows, watch windows' sparklines follow hits made
// elsewhere, and filter names.
//
// Run by tests/dashboard.rs, which owns the server. Between steps this script prints
// `STEP <name>` and waits for a line on stdin: the test does its part (an increment through the
// API, a server restart), then answers. The last line is `RESULT <json>` with what the page shows.
//
//   TALLY_URL         the server's base URL (http://127.0.0.1:PORT)
//   TALLY_SCREENSHOT  where to save a PNG of the final page
//   CHROMIUM          the browser (default /usr/bin/chromium, Debian's package)
//   TALLY_AUTH_TOKEN_FOR_PAGE  instead, check the auth-token flow with this token
//   TALLY_CROSS_SITE  instead, visit a page of another origin that tries to count, and the
//                     server through a name of the page's own (DNS rebinding)

import { chromium } from "playwright-core";
import { createServer } from "node:http";
import { createInterface } from "node:readline";

const url = process.env.TALLY_URL;
const screenshot = process.env.TALLY_SCREENSHOT;
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

/** Hands over to the test and waits until it says go on. */
async function step(name) {
  console.log(`STEP ${name}`);
  const answer = await lines.next();
  if (answer.done) throw new Error(`the test stopped answering at step ${name}`);
}

/** Waits until the row of `name` shows `value`. */
async function expectValue(page, name, value) {
  const cell = page.locator("tr", { has: page.getByRole("cell", { name, exact: true }) })
    .locator("td.value");
  try {
    await cell.filter({ hasText: new RegExp(`^${value}$`) }).waitFor({ timeout: 10_000 });
  } catch {
    const shown = (await cell.count()) ? await cell.textContent() : "no such row";
    throw new Error(`${name}: expected ${value}, the page shows ${shown}`);
  }
}

/** Waits until the windows table's row of `name` shows `count` now; its sparkline's counts. */
async function expectWindow(page, name, window, count) {
  const row = page.locator(`#windows tr[data-name="${name}"][data-window="${window}"]`);
  try {
    await row.locator("td.value").filter({ hasText: new RegExp(`^${count}$`) })
      .waitFor({ timeout: 10_000 });
  } catch {
    const shown = (await row.count()) ? await row.locator("td.value").textContent() : "no row";
    throw new Error(`window ${name} ${window}: expected ${count} now, the page shows ${shown}`);
  }
  return (await row.locator("svg.sparkline").getAttribute("data-counts")).split(",").map(Number);
}

/** The names the counters and the windows tables show. */
async function shownNames(page) {
  const names = (table) => page.locator(`#${table} tbody tr`).evaluateAll((rows) =>
    rows.map((row) => row.dataset.name));
  return { counters: await names("counters"), windows: await names("windows") };
}

async function plusOne(page, name, times) {
  const button = page.getByRole("button", { name: `Add 1 to ${name}`, exact: true });
  for (let i = 0; i < times; i += 1) {
    await button.click();
    // One click at a time: the button is disabled until its increment was answered.
    await button.and(page.locator(":enabled")).waitFor();
  }
}

async function create(page, name, value) {
  await page.getByLabel("New counter").fill(name);
  await page.getByLabel("starting at").fill(String(value));
  await page.getByRole("button", { name: "Create" }).click();
}

/**
 * Against a server with --auth-token: the page reads without the token, a click without it is
 * refused with the server's message and asks for the token, and with it the click counts.
 */
async function authScenario(page, token) {
  await page.goto(url);
  await expectValue(page, "visits", 5);
  await page.getByRole("button", { name: "Add 1 to visits", exact: true }).click();
  await page.getByRole("alert").filter({ hasText: "Authorization: Bearer TOKEN" }).waitFor();
  await page.getByLabel("auth token").fill(token);
  await page.getByRole("button", { name: "Use token" }).click();
  await plusOne(page, "visits", 1);
  await expectValue(page, "visits", 6);
  if (await page.getByRole("alert").isVisible()) throw new Error("the error stayed after the fix");
}

/**
 * A page of another site (served here, on another port) tries to count with what a page can
 * send without asking the server first: a no-cors fetch of text/plain, a beacon, a form posted
 * as text/plain. Then the browser reaches the server through `rebind.test`, a name that (as a
 * rebinding attacker's would) resolves to 127.0.0.1. Resolves to what the browser saw.
 */
async function crossSiteScenario(page) {
  const target = `${url}/counters/visits/increment`;
  const attack = `<!doctype html><title>another site</title>
    <form id="form" method="POST" action="${target}" enctype="text/plain">
      <input name='{"by": 5, "x": "' value='"}'>
    </form>
    <script>
      window.fetched = fetch(${JSON.stringify(target)}, {
        method: "POST", mode: "no-cors", headers: { "Content-Type": "text/plain" },
        body: '{"by": 5}',
      }).then(() => "sent", (error) => "failed: " + error);
      navigator.sendBeacon(${JSON.stringify(target)}, '{"by": 5}');
    </script>`;
  const site = createServer((request, response) => {
    response.writeHead(200, { "Content-Type": "text/html" });
    response.end(attack);
  });
  await new Promise((ready) => site.listen(0, "127.0.0.1", ready));
  const origin = `http://127.0.0.1:${site.address().port}`;
  try {
    await page.goto(origin);
    const fetched = await page.evaluate(() => window.fetched);
    // The form navigates to the server's answer.
    const [answer] = await Promise.all([
      page.waitForNavigation(),
      page.evaluate(() => document.getElementById("form").submit()),
    ]);
    const formStatus = answer.status();
    const formBody = await page.locator("body").textContent();
    const port = new URL(url).port;
    const rebound = await page.goto(`http://rebind.test:${port}/counters/visits`);
    return {
      fetched,
      form: [formStatus, JSON.parse(formBody).code],
      rebound: [rebound.status(), (await rebound.json()).code],
    };
  } finally {
    site.close();
  }
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  // Chromium as root needs --no-sandbox; the rest keep it off the (closed) network.
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    // For the rebinding check: a name of the page's own that leads to the server.
    "--host-resolver-rules=MAP rebind.test 127.0.0.1",
  ],
});
try {
  if (process.env.TALLY_CROSS_SITE) {
    const seen = await crossSiteScenario(await browser.newPage());
    console.log(`RESULT ${JSON.stringify(seen)}`);
    process.exit(0);
  }
  if (process.env.TALLY_AUTH_TOKEN_FOR_PAGE) {
    await authScenario(await browser.newPage(), process.env.TALLY_AUTH_TOKEN_FOR_PAGE);
    console.log("RESULT \"auth ok\"");
    process.exit(0);
  }
  const page = await browser.newPage({ viewport: { width: 760, height: 520 } });
  const problems = [];
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error" && !message.text().includes("Failed to load resource")) {
      problems.push(`console: ${message.text()}`);
    }
  });

  await page.goto(url);
  await page.getByText("No counters yet").waitFor();
  if (await page.locator("#token").isVisible()) throw new Error("the token form shows unasked");

  await create(page, "visits", 0);
  await expectValue(page, "visits", 0);
  await plusOne(page, "visits", 3);
  await expectValue(page, "visits", 3);

  // A name that needs escaping everywhere: quotes, a slash, markup, Unicode.
  const tricky = `<b>"signups"</b> / ünï ✓`;
  await create(page, tricky, 41);
  await plusOne(page, tricky, 1);
  await expectValue(page, tricky, 42);

  // Creating an existing counter is refused, not a silent reset.
  await create(page, "visits", 100);
  await page.getByRole("alert").filter({ hasText: 'a counter named "visits" already exists' })
    .waitFor();
  await expectValue(page, "visits", 3);

  // A change made elsewhere shows up without a reload (live refresh).
  await step("external-increment");
  await expectValue(page, "visits", 13);

  await step("restart");
  await page.reload();
  await expectValue(page, "visits", 13);
  await expectValue(page, tricky, 42);
  await page.getByText("live · updated").waitFor();

  // Windows counted elsewhere show, each with a sparkline of its last 30 windows.
  await step("windows");
  const ann = await expectWindow(page, "api:ann", "1m", 3);
  await expectWindow(page, "api:bob", "1m", 1);

  await page.evaluate(() => document.activeElement?.blur());
  await page.mouse.move(0, 0);
  await page.screenshot({ path: screenshot, fullPage: true });
  const shown = await page.locator("#counters tbody tr").evaluateAll((rows) =>
    rows.map((row) => [row.cells[0].textContent, row.cells[1].textContent]));

  // More counters than a page holds (50): the page shows the first 50 and pages through the
  // rest by the API's Link header.
  await step("many-counters");
  await page.getByRole("button", { name: "Next page" }).and(page.locator(":enabled")).waitFor();
  await expectValue(page, "n048", 48);
  if (await page.getByRole("cell", { name: "n049", exact: true }).count()) {
    throw new Error("the first page shows more than 50 counters");
  }
  await page.getByRole("button", { name: "Next page" }).click();
  await page.getByText("page 2").waitFor();
  await expectValue(page, "n059", 59);
  await expectValue(page, "visits", 13);
  if (await page.getByRole("button", { name: "Next page" }).isEnabled()) {
    throw new Error("the last page offers a next page");
  }
  await page.getByRole("button", { name: "Previous page" }).click();
  await expectValue(page, "n000", 0);

  // Windows follow new hits without a reload.
  await step("more-hits");
  const annLater = await expectWindow(page, "api:ann", "1m", 5);

  // The filter narrows both tables to the names that contain it, across every page.
  const filter = page.getByLabel("Filter names");
  await filter.fill("bob");
  await page.getByText('No counter name contains "bob".').waitFor();
  await page.locator("#windows tbody tr").filter({ hasText: "api:ann" }).waitFor({ state: "detached" });
  const bob = await shownNames(page);
  await filter.fill("N05");
  await page.getByText('10 counters whose name contains "N05".').waitFor();
  const n05 = await shownNames(page);
  await filter.fill("");
  await expectValue(page, "n000", 0);
  await expectWindow(page, "api:ann", "1m", 5);

  if (problems.length) throw new Error(problems.join("\n"));
  console.log(`RESULT ${JSON.stringify({ shown, ann, annLater, bob, n05 })}`);
} finally {
  await browser.close();
}
process.exit(0);
