// The dashboard (/ui) in a real browser: Debian's chromium, headless, driven by
// playwright-core, against a real `wasmq serve`. Screenshots of the main pages go to
// target/ui-screenshots/.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { startServer, guest, ROOT } from "./server.mjs";

const SHOTS = join(ROOT, "target", "ui-screenshots");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

let server;
let browser;
let admin; // a page signed in with the admin key of tenant acme

async function signIn(key, viewport) {
  const context = await browser.newContext({ viewport: viewport ?? { width: 1280, height: 860 } });
  const page = await context.newPage();
  await page.goto(`${server.base}/ui`);
  await page.getByLabel("API key").fill(key);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(`${server.base}/ui`);
  return page;
}

async function shot(page, name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

/** Polls `check` until it returns something truthy, or fails after `ms`. */
async function eventually(check, ms = 20_000, what = "the condition") {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const jobState = async (id) =>
  (await server.api("GET", `/v1/jobs/${id}`, server.keys.admin)).state;

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  server = await startServer();
  await server.api("PUT", "/v1/modules/hostile", server.keys.admin, guest("hostile_fixture"), "application/wasm");
  await server.api("PUT", "/v1/modules/wordcount", server.keys.admin, guest("wordcount"), "application/wasm");
  await server.api("PUT", "/v1/modules/fanout", server.keys.admin, guest("fanout"), "application/wasm");
  await server.api("PUT", "/v1/modules/reindex", server.keys.admin, guest("echo"), "application/wasm");
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-background-networking", "--disable-component-update"],
  });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test("a wrong key is refused", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${server.base}/ui/jobs`);
  assert.equal(new URL(page.url()).pathname, "/ui/login", "signed out: to the sign-in form");
  await shot(page, "login");
  await page.getByLabel("API key").fill("wq_0123456789abcdef_" + "0".repeat(64));
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/ui/login") && r.request().method() === "POST"),
    page.getByRole("button", { name: "Sign in" }).click(),
  ]);
  assert.equal(response.status(), 401);
  await page.getByRole("alert").filter({ hasText: "not accepted" }).waitFor();
  assert.deepEqual(await context.cookies(), [], "no session cookie");
  await context.close();
});

test("sign in gives a strict, HTTP-only, expiring cookie; sign out ends it", async () => {
  admin = await signIn(server.keys.admin);
  const [cookie] = await admin.context().cookies();
  assert.equal(cookie.name, "wasmq_session");
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, "Strict");
  assert.equal(cookie.path, "/ui");
  assert.ok(cookie.expires > Date.now() / 1000, "expires");
  assert.ok(!cookie.value.includes(server.keys.admin.slice(3, 19)), "the key is not readable in it");
  assert.equal(await admin.evaluate(() => document.cookie), "", "scripts cannot read it");
  await admin.getByText("tenant acme").waitFor();

  const other = await signIn(server.keys.admin);
  await other.getByRole("button", { name: "Sign out" }).click();
  await other.waitForURL(`${server.base}/ui/login`);
  await other.goto(`${server.base}/ui/jobs`);
  assert.equal(new URL(other.url()).pathname, "/ui/login");
  await other.context().close();
});

test("a revoked key ends its session at the next request", async () => {
  const key = server.newKey("acme");
  const page = await signIn(key);
  await page.goto(`${server.base}/ui/jobs`);
  assert.equal(new URL(page.url()).pathname, "/ui/jobs");
  server.revoke(key, "acme");
  await page.goto(`${server.base}/ui/jobs`);
  assert.equal(new URL(page.url()).pathname, "/ui/login");
  assert.deepEqual(await page.context().cookies(), [], "the cookie is cleared");
  await page.context().close();
});

test("a job's progress shows live, then it finishes; its log opens", async () => {
  const job = await server.enqueue(server.keys.admin, "hostile", { op: "steps", n: 10 });
  await admin.goto(`${server.base}/ui/jobs/${job.id}`);
  await admin.evaluate(() => (window.__sameDocument = true));
  const progress = admin.locator("#job-progress");
  // A value strictly between start and end, seen without reloading the page.
  await eventually(async () => {
    const v = Number(await progress.getAttribute("value").catch(() => null));
    return v > 0 && v < 100;
  }, 20_000, "progress between 0 and 100");
  await admin.getByText(/step \d+ of 10/).first().waitFor();
  await admin.locator("#job-state", { hasText: "completed" }).waitFor({ timeout: 30_000 });
  assert.equal(await progress.getAttribute("value"), "100");
  assert.equal(await admin.evaluate(() => window.__sameDocument), true, "no reload");
  const result = await admin.locator("#result").textContent();
  assert.deepEqual(JSON.parse(result), { steps: 10 });
  assert.match(await admin.locator("#log pre").textContent(), /step 10 of 10/);
  await shot(admin, "job");

  await admin.getByRole("link", { name: "Raw log" }).click();
  await admin.waitForURL(`${server.base}/ui/jobs/${job.id}/log`);
  assert.match(await admin.locator("body").textContent(), /step 1 of 10[\s\S]*step 10 of 10/);
});

test("the jobs list filters and pages by cursor", async () => {
  const batch = [];
  for (let i = 0; i < 55; i++) batch.push({ module: "wordcount", input: { text: `word ${i}` } });
  await server.api("POST", "/v1/jobs/batch", server.keys.admin, { jobs: batch });
  await admin.goto(`${server.base}/ui/jobs?module=wordcount`);
  const rows = admin.locator("table.jobs tbody tr");
  assert.equal(await rows.count(), 50);
  await shot(admin, "jobs");
  await admin.getByRole("link", { name: "Older »" }).click();
  assert.equal(await rows.count(), 5);
  assert.match(admin.url(), /module=wordcount&cursor=\d+/);
  await admin.getByRole("link", { name: "« Newest" }).click();
  assert.equal(await rows.count(), 50);
  await admin.getByLabel("State").selectOption("running");
  await admin.getByRole("button", { name: "Filter" }).click();
  assert.match(admin.url(), /state=running/);
});

test("the jobs a schedule made, by its name", async () => {
  const key = server.keys.admin;
  await server.api("PUT", "/v1/schedules/every-second", key,
    { cron: "* * * * * *", module: "wordcount", input: { text: "tick" } });
  await eventually(async () => (await server.api("GET", "/v1/jobs?schedule=every-second", key)).jobs.length >= 2,
    20_000, "two ticks of the schedule");
  await server.api("DELETE", "/v1/schedules/every-second", key);
  await admin.goto(`${server.base}/ui/jobs`);
  await admin.getByRole("textbox", { name: "Schedule" }).fill("every-second");
  await admin.getByRole("button", { name: "Filter" }).click();
  assert.match(admin.url(), /schedule=every-second/);
  const rows = admin.locator("table.jobs tbody tr");
  const listed = (await server.api("GET", "/v1/jobs?schedule=every-second", key)).jobs.length;
  assert.ok(listed >= 2);
  assert.equal(await rows.count(), listed, "the schedule's jobs and no other");
});

test("a fan-out's page links its children, and each child its parent", async () => {
  const key = server.keys.admin;
  const parent = await server.enqueue(key, "fanout",
    { page: 7, locales: ["en", "de", "fr"] });
  await eventually(async () => (await server.api("GET", `/v1/jobs/${parent.id}`, key)).state === "completed",
    20_000, "the fan-out to complete");
  await admin.goto(`${server.base}/ui/jobs/${parent.id}`);
  await admin.getByRole("link", { name: "3 child jobs" }).click();
  assert.match(admin.url(), new RegExp(`parent=${parent.id}`));
  const rows = admin.locator("table.jobs tbody tr");
  assert.equal(await rows.count(), 3, "the three children and no other job");
  await rows.first().getByRole("link").first().click();
  await admin.getByRole("link", { name: `Job ${parent.id}` }).click();
  assert.match(admin.url(), new RegExp(`/ui/jobs/${parent.id}$`));
});

test("cancel a running job, after a confirmation", async () => {
  const job = await server.enqueue(server.keys.admin, "hostile", { op: "announce_spin" }, {
    limits: { timeout_ms: 30_000, fuel: 1e15 },
    max_attempts: 1,
  });
  await admin.goto(`${server.base}/ui`);
  await admin.locator("#running-h").waitFor();
  await admin.getByRole("link", { name: String(job.id), exact: true }).waitFor({ timeout: 20_000 });
  await admin.goto(`${server.base}/ui/jobs/${job.id}`);
  await admin.locator("#job-state", { hasText: "running" }).waitFor({ timeout: 20_000 });
  await admin.getByRole("link", { name: "Cancel…" }).click();
  await admin.getByRole("heading", { name: `Cancel job ${job.id}?` }).waitFor();
  await admin.getByRole("button", { name: `Cancel job ${job.id}` }).click();
  await admin.waitForURL(`${server.base}/ui/jobs/${job.id}`);
  await admin.locator("#job-state", { hasText: "cancelled" }).waitFor({ timeout: 20_000 });
  assert.equal(await jobState(job.id), "cancelled");
});

test("a read-only key sees a job but cannot cancel it", async () => {
  const job = await server.enqueue(server.keys.admin, "hostile", { op: "announce_spin" }, {
    limits: { timeout_ms: 30_000, fuel: 1e15 },
    max_attempts: 1,
  });
  const reader = await signIn(server.keys.reader);
  await reader.goto(`${server.base}/ui/jobs/${job.id}`);
  await reader.locator("#job-state", { hasText: "running" }).waitFor({ timeout: 20_000 });
  assert.equal(await reader.getByRole("link", { name: "Cancel…" }).count(), 0, "no cancel button");
  const confirm = await reader.goto(`${server.base}/ui/jobs/${job.id}/cancel`);
  assert.equal(confirm.status(), 403);
  await reader.goto(`${server.base}/ui/jobs/${job.id}`);
  // Even a well-formed post from its own page, with its token, is refused for the scope.
  const status = await reader.evaluate(async (id) => {
    const csrf = document.querySelector("input[name=csrf]").value;
    const r = await fetch(`/ui/jobs/${id}/cancel`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ csrf }),
    });
    return r.status;
  }, job.id);
  assert.equal(status, 403);
  assert.equal(await jobState(job.id), "running");
  await server.api("POST", `/v1/jobs/${job.id}/cancel`, server.keys.admin);
  await reader.context().close();
});

test("another tenant's job is not reachable by URL", async () => {
  const job = await server.enqueue(server.keys.admin, "wordcount", { text: "secret words" });
  const stranger = await signIn(server.keys.other);
  for (const path of ["", "/live", "/log", "/result", "/input", "/cancel"]) {
    const r = await stranger.goto(`${server.base}/ui/jobs/${job.id}${path}`);
    assert.equal(r.status(), 404, `${path || "page"}: ${r.status()}`);
    assert.doesNotMatch(await stranger.content(), /secret words/);
  }
  await stranger.goto(`${server.base}/ui/jobs`);
  assert.equal(await stranger.locator("table.jobs").count(), 0, "no jobs of acme listed");
  await stranger.context().close();
});

test("a cross-site post is refused", async () => {
  const job = await server.enqueue(server.keys.admin, "hostile", { op: "announce_spin" }, {
    limits: { timeout_ms: 30_000, fuel: 1e15 },
    max_attempts: 1,
  });
  await eventually(async () => (await jobState(job.id)) === "running", 20_000, "running");
  const target = `${server.base}/ui/jobs/${job.id}/cancel`;

  // A page of another origin that posts a form to the dashboard as soon as it loads.
  const evil = createServer((req, res) => {
    res.setHeader("content-type", "text/html");
    res.end(`<form method="post" action="${target}"><input name="csrf" value="guess"></form>
      <script>document.forms[0].submit()</script>`);
  });
  await new Promise((r) => evil.listen(0, "127.0.0.1", r));
  const evilUrl = `http://localhost:${evil.address().port}/`;
  const page = await admin.context().newPage();
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url() === target),
    page.goto(evilUrl),
  ]);
  assert.equal(response.status(), 403, "a foreign Origin is refused");
  evil.close();
  await page.close();

  // With the session cookie but without the token, or with the token from a foreign origin.
  const request = admin.context().request;
  const csrf = await admin.locator("input[name=csrf]").first().inputValue();
  const form = { "content-type": "application/x-www-form-urlencoded" };
  const noToken = await request.post(target, { headers: form, data: "csrf=" });
  assert.equal(noToken.status(), 403, "no token");
  const foreign = await request.post(target, {
    headers: { ...form, origin: "http://evil.example" },
    data: `csrf=${csrf}`,
  });
  assert.equal(foreign.status(), 403, "the right token from a foreign origin");
  assert.equal(await jobState(job.id), "running", "nothing was cancelled");

  // The same post from the dashboard's own origin with the token goes through.
  const ok = await request.post(target, {
    headers: { ...form, origin: server.base },
    data: `csrf=${csrf}`,
    maxRedirects: 0,
  });
  assert.equal(ok.status(), 303);
  await eventually(async () => (await jobState(job.id)) === "cancelled", 20_000, "cancelled");
});

test("pause and resume a queue from the overview", async () => {
  await server.enqueue(server.keys.admin, "wordcount", { text: "later" }, { queue: "reports" });
  await admin.goto(`${server.base}/ui`);
  const row = admin.locator("tr", { has: admin.getByRole("link", { name: "reports", exact: true }) });
  await row.getByRole("link", { name: "Pause…" }).click();
  await admin.getByRole("button", { name: "Pause queue reports" }).click();
  await admin.waitForURL(`${server.base}/ui`);
  await row.locator(".badge", { hasText: "paused" }).waitFor();
  const queues = await server.api("GET", "/v1/queues", server.keys.admin);
  assert.equal(queues.queues.find((q) => q.name === "reports").paused, true);
  await row.getByRole("link", { name: "Resume…" }).click();
  await admin.getByRole("button", { name: "Resume queue reports" }).click();
  await admin.waitForURL(`${server.base}/ui`);
  assert.equal(await row.locator(".badge").count(), 0);
});

test("modules: versions, digests, and an upload from the page", async () => {
  await admin.goto(`${server.base}/ui/modules`);
  await admin.getByLabel("Name").fill("echo");
  await admin.getByLabel(/Component or WASI command/).setInputFiles({
    name: "echo.wasm",
    mimeType: "application/wasm",
    buffer: guest("echo"),
  });
  await admin.getByLabel("Fuel").fill("5000000");
  await admin.getByRole("button", { name: "Upload" }).click();
  await admin.waitForURL(`${server.base}/ui/modules/echo`, { timeout: 60_000 });
  await admin.getByRole("heading", { name: "Module echo" }).waitFor();
  assert.match(await admin.locator("table").textContent(), /component[\s\S]*fuel 5,000,000/);
  await admin.goto(`${server.base}/ui/modules`);
  await shot(admin, "modules");
  const modules = await server.api("GET", "/v1/modules/echo", server.keys.admin);
  assert.equal(modules.modules[0].limits.fuel, 5_000_000);
});

test("the overview: queue counts, live progress of running jobs, failures", async () => {
  const { admin: key } = server.keys;
  await server.enqueue(key, "hostile", { op: "fatal" }, { max_attempts: 1 });
  for (let i = 0; i < 3; i++) {
    await server.enqueue(key, "wordcount", { text: "later" }, { queue: "mail" });
  }
  const tomorrow = await server.enqueue(key, "wordcount", { text: "tomorrow" }, { queue: "mail", delay_ms: 86_400_000 });
  await server.enqueue(key, "wordcount", { text: "after it" }, { queue: "mail", depends_on: [tomorrow.id] });
  await admin.goto(`${server.base}/ui`);
  await admin.evaluate(() => (window.__sameDocument = true));
  // Enqueued after the page loaded: the page shows them by itself.
  const running = [];
  for (let n of [40, 60]) running.push(await server.enqueue(key, "hostile", { op: "steps", n }));
  const bar = admin.locator(`progress[aria-label="job ${running[0].id} progress"]`);
  await bar.waitFor({ timeout: 20_000 });
  await eventually(async () => Number(await bar.getAttribute("value").catch(() => 0)) >= 10,
    20_000, "progress of a running job in the overview");
  assert.equal(await admin.evaluate(() => window.__sameDocument), true, "no reload");
  const mail = admin.locator("tr", { has: admin.getByRole("link", { name: "mail", exact: true }) });
  assert.deepEqual(
    (await mail.locator("td.num").allTextContents()).map((t) => t.trim()),
    ["1", "1", "3", "0", "0"], // waiting, scheduled, available, retryable, running
  );
  await admin.getByRole("heading", { name: "Latest failures" }).waitFor();
  await admin.locator("code.kind", { hasText: "task_error" }).first().waitFor();
  await shot(admin, "overview");
  for (const job of running) await server.api("POST", `/v1/jobs/${job.id}/cancel`, key);
});

test("readable on a phone", async () => {
  const phone = await signIn(server.keys.admin, { width: 390, height: 844 });
  await phone.goto(`${server.base}/ui`);
  await shot(phone, "overview-phone");
  // Wide tables scroll inside their own box; the page itself never scrolls sideways.
  const [page, screen] = await phone.evaluate(() => [document.documentElement.scrollWidth, innerWidth]);
  assert.ok(page <= screen, `the page is ${page} px wide on a ${screen} px screen`);
  await phone.context().close();
});
