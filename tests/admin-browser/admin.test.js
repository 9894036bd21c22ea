// The admin page of `mailhost serve` in Debian's chromium, headless, driven
// by Playwright. Started by tests/tests/admin.rs (`admin_pages_in_chromium`),
// which runs the service and passes, in the environment:
//   MAILHOST_URL, ADMIN_TOKEN, SEND_TOKEN, STORED_SECRET (the SMTP password
//   in the secrets file), PEER_CA, CONFIG_DIR, SCREENSHOTS, USER_DATA_DIR.
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const { chromium } = require("playwright-core");

const env = (k) => {
  const v = process.env[k];
  if (!v) { throw new Error(`${k} is not set: run this through tests/tests/admin.rs`); }
  return v;
};
const BASE = env("MAILHOST_URL");
const ADMIN_TOKEN = env("ADMIN_TOKEN");
const SEND_TOKEN = env("SEND_TOKEN");
const STORED_SECRET = env("STORED_SECRET");
const PEER_CA = env("PEER_CA");
const CONFIG_DIR = env("CONFIG_DIR");
const SHOTS = env("SCREENSHOTS");
const TYPED_SECRET = "typed-in-the-browser-" + process.pid;

let browser;
let context;
let page;
// Every response body the browser received, to look for secrets in.
const bodies = [];

before(async () => {
  context = await chromium.launchPersistentContext(env("USER_DATA_DIR"), {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
    viewport: { width: 1280, height: 900 },
  });
  browser = context;
  context.on("response", async (r) => {
    try { bodies.push({ url: r.url(), text: await r.text() }); } catch (_) { /* redirects have no body */ }
  });
  context.setDefaultTimeout(15000);
  page = await context.newPage();
  page.on("dialog", (d) => d.accept());
});

after(async () => {
  if (browser) { await browser.close(); }
});

const shot = (name) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });

test("sign in with an admin token", async () => {
  await page.goto(`${BASE}/admin`);
  assert.match(page.url(), /\/admin\/login$/);
  await shot("01-login");
  await page.getByLabel("API token").fill(ADMIN_TOKEN);
  await page.keyboard.press("Enter");
  await page.waitForURL(/\/admin\/status$/);
  await page.getByRole("heading", { name: "Status" }).waitFor();
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === "mh_admin");
  assert.ok(session, "a session cookie");
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, "Strict");
});

test("the SMTP form against the Node smtp-server shows each Test step", async () => {
  await page.goto(`${BASE}/admin/accounts/node`);
  await page.getByLabel(/^host/).fill("127.0.0.1");
  await page.getByLabel(/^port/).fill("2587");
  await page.getByLabel(/^security/).selectOption("starttls");
  await page.getByLabel(/^ca_file/).fill(PEER_CA);
  await page.getByLabel(/^username/).fill("testuser");
  // The stored password is write-only: the page says it is set, never shows it.
  const state = await page.locator("#s-password-state").textContent();
  assert.match(state, /^set/);
  assert.equal(await page.locator("#s-password").inputValue(), "");
  await page.getByRole("button", { name: "Test settings" }).click();
  const result = page.locator(".notice table.steps");
  await result.waitFor();
  const text = await page.locator(".notice").first().textContent();
  assert.match(text, /every step passed/);
  for (const step of ["connect", "greeting", "ehlo", "starttls", "auth"]) {
    assert.ok(await page.locator("table.steps td", { hasText: new RegExp(`^${step}$`) }).count() > 0, `step ${step} shown: ${text}`);
  }
  assert.match(text, /235/, "the server's words for AUTH");
  await shot("02-account-test-ok");
});

test("a wrong password shows the server's 535", async () => {
  await page.goto(`${BASE}/admin/accounts/node`);
  await page.locator("#s-password").fill("wrong-password");
  await page.getByRole("button", { name: "Test settings" }).click();
  await page.locator(".notice table.steps").waitFor();
  const text = await page.locator(".notice").first().textContent();
  assert.match(text, /a step failed/);
  assert.match(text, /535/);
  // The typed value is not sent back either.
  assert.equal(await page.locator("#s-password").inputValue(), "");
  await shot("03-account-test-535");
});

test("send a test mail, then save a new password into a secrets file", async () => {
  await page.goto(`${BASE}/admin/accounts/node`);
  await page.getByLabel("Test recipient").fill("admin-test@example.com");
  await page.getByRole("button", { name: "Send test mail" }).click();
  await page.locator(".notice table.steps").waitFor();
  const text = await page.locator(".notice").first().textContent();
  assert.match(text, /test-mail/);
  assert.match(text, /was accepted/);
  // Save with the right password typed again: it goes to secrets/, not the TOML.
  await page.locator("#s-password").fill(TYPED_SECRET);
  await page.getByRole("button", { name: "Save" }).click();
  await page.locator(".notice.ok").waitFor();
  const toml = fs.readFileSync(path.join(CONFIG_DIR, "mailhost.toml"), "utf8");
  assert.ok(!toml.includes(TYPED_SECRET), "the TOML never holds the password");
  assert.match(toml, /password = "file:secrets\/node\.password"/);
  const st = fs.statSync(path.join(CONFIG_DIR, "secrets", "node.password"));
  assert.equal(st.mode & 0o777, 0o600);
  await shot("04-account-saved");
  // Put the peer's real password back for the next cases.
  await page.locator("#s-password").fill(STORED_SECRET);
  await page.getByRole("button", { name: "Save" }).click();
  await page.locator(".notice.ok").waitFor();
});

test("an OAuth client gets a token now; the page shows its claims, not the token", async () => {
  await page.goto(`${BASE}/admin/accounts`);
  await page.locator('form[action="/admin/oauth/m365/token"] button').click();
  const text = await page.locator(".notice").first().textContent();
  assert.match(text, /issued a token/);
  assert.match(text, /audience https:\/\/graph\.microsoft\.com/);
  assert.ok(!(await page.content()).includes("eyJ"), "no token in the page");
  await shot("04b-accounts-oauth");
});

test("the example plugin's form comes from its schema", async () => {
  await page.goto(`${BASE}/admin/accounts`);
  await page.getByLabel("Name").fill("hook");
  await page.getByLabel("Plugin").selectOption("example");
  await page.getByRole("button", { name: "Continue" }).click();
  await page.getByRole("heading", { name: "Account hook" }).waitFor();
  const url = page.getByLabel(/^url/);
  assert.equal(await url.getAttribute("required"), "");
  assert.equal(await url.getAttribute("pattern"), "^[hH][tT][tT][pP][sS]?://");
  const timeout = page.getByLabel(/^timeout_ms/);
  assert.equal(await timeout.getAttribute("type"), "number");
  assert.equal(await timeout.getAttribute("min"), "1");
  assert.equal(await timeout.getAttribute("max"), "600000");
  assert.equal(await page.getByLabel(/accept_invalid_certs/).getAttribute("type"), "checkbox");
  assert.match(await page.locator("body").textContent(), /where each message is POSTed as JSON/);
  await shot("05-example-plugin-form");
  // Check the settings: the validator's file:line message for a bad URL.
  await url.fill("ftp://nowhere");
  await page.getByRole("button", { name: "Check the settings" }).click();
  const text = await page.locator(".notice").first().textContent();
  assert.match(text, /do not validate/);
  assert.match(text, /mailhost\.toml:\d+/);
  // The message also stands under the field.
  assert.match(await page.locator("#f-url-error").textContent(), /url/);
  assert.equal(await page.getByLabel(/^url/).getAttribute("aria-invalid"), "true");
  await shot("05b-example-plugin-invalid");
});

test("flip a user's compose mode and Explain changes", async () => {
  await page.goto(`${BASE}/admin/users`);
  await page.getByLabel("User", { exact: true }).selectOption("alice");
  await page.getByLabel("Action").selectOption("compose");
  await page.getByRole("button", { name: "Explain" }).click();
  let trace = await page.locator("#explain-trace").textContent();
  assert.match(trace, /user chose `builtin`/);
  await page.locator("#u-alice-compose").selectOption("imap-draft");
  await page.getByRole("button", { name: "Save" }).click();
  await page.locator(".notice.ok").waitFor();
  await page.getByLabel("User", { exact: true }).selectOption("alice");
  await page.getByLabel("Action").selectOption("compose");
  await page.getByRole("button", { name: "Explain" }).click();
  trace = await page.locator("#explain-trace").textContent();
  assert.match(trace, /user chose `imap-draft`/);
  await shot("06-users-explain");
});

test("the kill switch refuses the next send", async () => {
  const send = () => fetch(`${BASE}/v1/messages`, {
    method: "POST",
    headers: { "authorization": `Bearer ${SEND_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ from: "erp@example.com", to: ["someone@example.com"], subject: "kill switch", text: "hello" }),
  });
  let r = await send();
  assert.equal(r.status, 202, await r.text());
  await page.goto(`${BASE}/admin/policy`);
  await shot("07-policy");
  await page.getByLabel(/I understand/).check();
  await page.getByRole("button", { name: "Switch sending off" }).click();
  await page.locator(".notice.ok").waitFor();
  assert.match(await page.locator("#sending-state").textContent(), /off/);
  r = await send();
  const body = await r.text();
  assert.equal(r.status, 422, body);
  assert.match(body, /kill switch|enabled = false/);
  await shot("08-policy-kill-switch-off");
  await page.getByRole("button", { name: "Switch sending on" }).click();
  await page.locator(".notice.ok").waitFor();
  assert.equal((await send()).status, 202);
});

test("status shows each account's connection, live, and Refresh runs the check", async () => {
  await page.goto(`${BASE}/admin/status`);
  await page.getByRole("button", { name: "Refresh node" }).click();
  await page.locator(".notice table.steps").waitFor();
  await page.locator('tr[data-account="node"] .state', { hasText: "Operating" }).waitFor();
  // The live update (polling) writes the time it last updated.
  await page.locator("#status-live", { hasText: "updated" }).waitFor({ timeout: 10000 });
  await shot("09-status");
  await page.goto(`${BASE}/admin/outbox`);
  await page.locator("table").first().waitFor();
  const rows = await page.locator("tbody tr").count();
  assert.ok(rows >= 2, "the messages sent above are listed");
  await shot("10-outbox");
  await page.locator("tbody tr a").first().click();
  await page.getByRole("heading", { name: "Message" }).waitFor();
  await page.getByRole("heading", { name: "Attempts" }).waitFor();
  await shot("11-message");
});

test("a deferred message: its attempts with the server's 450, cancel, retry", async () => {
  const r = await fetch(`${BASE}/v1/messages`, {
    method: "POST",
    headers: { "authorization": `Bearer ${SEND_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ from: "erp@example.com", to: ["rcpt-4xx@example.com"], subject: "deferred", text: "hello" }),
  });
  assert.equal(r.status, 202);
  const { id } = await r.json();
  // Wait (generously) until the worker has tried once and deferred it.
  for (let i = 0; ; i++) {
    const m = await (await fetch(`${BASE}/v1/messages/${id}`, { headers: { "authorization": `Bearer ${ADMIN_TOKEN}` } })).json();
    if (m.state === "deferred") { break; }
    assert.ok(i < 300, `message never deferred: ${JSON.stringify(m)}`);
    await new Promise((res) => setTimeout(res, 100));
  }
  await page.goto(`${BASE}/admin/outbox?state=deferred&account=node`);
  await page.locator(`a[href="/admin/outbox/${id}"]`).click();
  await page.getByRole("heading", { name: "Attempts" }).waitFor();
  assert.match(await page.locator("table").last().textContent(), /450/);
  await page.getByRole("button", { name: "Cancel message" }).click();
  await page.locator("#message-state", { hasText: "cancelled" }).waitFor();
  await shot("12-message-cancelled");
  await page.getByRole("button", { name: "Retry now" }).click();
  const state = await page.locator("#message-state").textContent();
  assert.notEqual(state, "cancelled");
});

test("a POST without the CSRF token is refused", async () => {
  const r = await page.request.post(`${BASE}/admin/policy`, { form: { do: "kill", confirm: "1" }, maxRedirects: 0 });
  assert.equal(r.status(), 403);
  assert.match(await r.text(), /CSRF token is missing/);
  const toml = fs.readFileSync(path.join(CONFIG_DIR, "mailhost.toml"), "utf8");
  assert.match(toml, /enabled = true/);
});

test("no response ever carried a stored secret", async () => {
  assert.ok(bodies.length > 20, `responses were recorded (${bodies.length})`);
  for (const b of bodies) {
    assert.ok(!b.text.includes(STORED_SECRET), `${b.url} carries the stored password`);
    assert.ok(!b.text.includes(TYPED_SECRET), `${b.url} carries the password typed on the page`);
  }
});

test("log out", async () => {
  await page.goto(`${BASE}/admin/status`);
  await page.getByRole("button", { name: "Log out" }).click();
  await page.waitForURL(/\/admin\/login$/);
  await page.goto(`${BASE}/admin/status`);
  assert.match(page.url(), /\/admin\/login$/);
});
