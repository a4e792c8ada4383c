// web.test.mjs - the web client at / in a real browser (issue 14).
//
// Starts build/chatli (CHATLI_BIN) on a free loopback port, opens two
// browser contexts in Debian's headless Chromium (playwright-core with
// executablePath, no downloaded browser) and drives the page as two users:
// register, open a direct chat, exchange messages live, see typing,
// presence and read marks, lose the socket and recover without losing a
// message sent meanwhile, survive a server restart, and use the feed, with
// an image uploaded through the page's file input (and refused uploads).
// A screenshot of each step goes to CHATLI_ARTIFACTS (default
// build/browser-artifacts/).  Any console error, uncaught page error or
// Content-Security-Policy violation fails the test.  Two kinds of console
// line are expected, and only where they are: Chromium's note on each
// refused reconnect while the restart test holds the server down, and its
// note on the 413/415 answers while the refused-uploads test provokes them.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "../..");
const BIN = process.env.CHATLI_BIN || path.join(repo, "build/chatli");
const ARTIFACTS = process.env.CHATLI_ARTIFACTS || path.join(repo, "build/browser-artifacts");
const CHROMIUM = process.env.CHATLI_CHROMIUM || "/usr/bin/chromium";
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const WAIT_MS = 10000; // a bound on each wait, far above the few ms a frame takes
const MAX_UPLOAD = 4096; // the server's MAX_UPLOAD_BYTES in this test
const UPLOADS_PER_WINDOW = 4; // its UPLOAD_RATE_LIMIT_MAX: alice's 5th upload gets 429

let server = null;
let port = 0;
let dataDir = null;
let browser = null;
let step = 0;
const problems = []; // console errors, page errors, CSP violations

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
    s.on("error", reject);
  });
}

async function startServer() {
  const log = fs.openSync(path.join(ARTIFACTS, "chatli.log"), "a");
  // Our environment (sanitizer options pass through) without any backend:
  // the embedded store in a fresh DATA_DIR.
  const env = { ...process.env };
  for (const k of ["MONGODB_URI", "MONGODB_DB", "REDIS_URL", "CLOUDINARY_URL", "PUBLIC_URL"]) delete env[k];
  Object.assign(env, { HOST: "127.0.0.1", PORT: String(port), DATA_DIR: dataDir, RATE_LIMIT_MAX: "0",
                       PWHASH_OPSLIMIT: "1", PWHASH_MEMLIMIT: "8192", LOG_LEVEL: "warn",
                       SHUTDOWN_GRACE_S: "2", WEB_UI: "1",
                       // uploads: a small cap and per-user count the refused-uploads test can pass
                       MAX_UPLOAD_BYTES: String(MAX_UPLOAD), UPLOAD_RATE_LIMIT_MAX: String(UPLOADS_PER_WINDOW) });
  server = spawn(BIN, [], { env, stdio: ["ignore", log, log] });
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/healthz`);
      if (r.ok) return;
    } catch (e) {
      // not listening yet
    }
    if (Date.now() > deadline || server.exitCode !== null) throw new Error("chatli did not start");
    await new Promise((r) => setTimeout(r, 50));
  }
}

// SIGTERM; resolves to the exit code (0 after a clean drain).
function stopServer() {
  if (!server) return Promise.resolve(0);
  if (server.exitCode !== null) return Promise.resolve(server.exitCode);
  return new Promise((resolve) => {
    server.once("exit", (code) => resolve(code));
    server.kill("SIGTERM");
  });
}

// Test-only instrumentation, injected before the page's own scripts (CDP
// runs it outside the page's CSP): it records CSP violations, and wraps
// WebSocket so the test can cut the page's socket and hold it offline.
function instrument() {
  window.__csp = [];
  document.addEventListener("securitypolicyviolation", (e) => {
    window.__csp.push(e.violatedDirective + " " + e.blockedURI);
  });
  const Real = window.WebSocket;
  const sockets = [];
  let blocked = false;
  class Offline extends EventTarget {
    constructor() {
      super();
      this.readyState = 3;
      setTimeout(() => this.dispatchEvent(new CloseEvent("close", { code: 1006 })), 0);
    }
    send() { throw new Error("offline"); }
    close() {}
  }
  window.WebSocket = function (url, protocols) {
    if (blocked) return new Offline();
    const ws = new Real(url, protocols);
    sockets.push(ws);
    return ws;
  };
  window.WebSocket.prototype = Real.prototype;
  Object.assign(window.WebSocket, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
  // The sync frames the page sends, so a test can check the positions it
  // asks from (nothing else is recorded: the auth frame holds the token).
  window.__syncs = [];
  const realSend = Real.prototype.send;
  Real.prototype.send = function (data) {
    try {
      const f = JSON.parse(data);
      if (f.type === "sync") window.__syncs.push(f.chats);
    } catch (e) {
      // not JSON: not ours to record
    }
    return realSend.call(this, data);
  };
  window.__net = {
    drop() { blocked = true; for (const s of sockets) s.close(); },
    restore() { blocked = false; },
  };
}

async function newPage(name, viewport) {
  const ctx = await browser.newContext({ viewport });
  const page = await ctx.newPage();
  await page.addInitScript(instrument);
  page.on("console", (msg) => {
    if (msg.type() !== "error") return;
    const url = msg.location().url || "";
    if (uploadRefusals && /\/api\/uploads$/.test(url) && uploadRefused.test(msg.text())) return; // on purpose
    if (serverDown && refused.test(msg.text())) return; // the restart test's outage, on purpose
    if (accountRefusals && accountRefused.test(msg.text())) return; // wrong passwords, on purpose
    problems.push(`${name} console: ${msg.text()} (${url})`);
  });
  page.on("pageerror", (e) => problems.push(`${name} page error: ${e.message}`));
  await page.goto(`http://127.0.0.1:${port}/`);
  return page;
}

async function shot(page, label) {
  step++;
  const file = path.join(ARTIFACTS, `${String(step).padStart(2, "0")}-${label}.png`);
  await page.screenshot({ path: file, fullPage: true });
}

async function register(page, username) {
  await page.getByLabel("Username", { exact: true }).fill(username);
  await page.getByLabel("Email", { exact: true }).fill(`${username}@example.com`);
  await page.getByLabel("Display name (optional)").fill(username[0].toUpperCase() + username.slice(1));
  await page.getByLabel("Password", { exact: true }).last().fill("correct horse battery");
  await page.getByRole("button", { name: "Register" }).click();
  await page.locator("#conn", { hasText: "Connected" }).waitFor({ timeout: WAIT_MS });
}

function message(page, text) {
  return page.locator("#messages li.msg:not(.pending)", { hasText: text });
}

async function send(page, text) {
  await page.getByLabel("Message", { exact: true }).fill(text);
  await page.getByLabel("Message", { exact: true }).press("Enter");
}

// While the refused-uploads test sends a text file, an oversized image and
// one upload too many, Chromium notes the 415, 413 and 429 on the console;
// those lines are expected.
let uploadRefusals = false;
const uploadRefused = /^Failed to load resource: the server responded with a status of (415|413|429) /;
// While the restart test holds the server down, Chromium notes each refused
// reconnect attempt on the console; that line, then, is expected.
let serverDown = false;
const refused = /^WebSocket connection to 'ws:\/\/127\.0\.0\.1:\d+\/ws' failed: .*ERR_CONNECTION_REFUSED/;
// While the account test types wrong passwords, Chromium notes each 401 on
// the console; those lines are expected.
let accountRefusals = false;
const accountRefused = /^Failed to load resource: the server responded with a status of 401 /;
const stamp = Date.now().toString(36);
const alice = "alice_" + stamp;
const bob = "bob_" + stamp;
let pa = null; // alice: a phone-sized viewport
let pb = null; // bob: a desktop viewport

before(async () => {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  for (const f of fs.readdirSync(ARTIFACTS)) if (f.endsWith(".png")) fs.rmSync(path.join(ARTIFACTS, f));
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "chatli-browser-"));
  port = await freePort();
  await startServer();
  browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS, headless: true });
});

after(async () => {
  if (browser) await browser.close();
  const code = await stopServer();
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  assert.equal(code, 0, "chatli exit code (see chatli.log in the artifacts)");
});

test("the page is served with its headers and keeps to its CSP", async () => {
  const r = await fetch(`http://127.0.0.1:${port}/`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-security-policy"), /script-src 'self'/);
  assert.doesNotMatch(r.headers.get("content-security-policy"), /unsafe-/);
  pa = await newPage("alice", { width: 390, height: 844 });
  pb = await newPage("bob", { width: 1280, height: 800 });
  await shot(pa, "login-form");
});

test("two users register and open a direct chat", async () => {
  await register(pa, alice);
  await register(pb, bob);
  await shot(pb, "registered");
  await pa.getByRole("button", { name: "People" }).click();
  await pa.getByLabel("Search by username").fill("bob_" + stamp);
  await pa.getByRole("button", { name: "Search" }).click();
  await pa.getByRole("button", { name: "Message Bob" }).click();
  await pa.locator("#conv-title", { hasText: "Bob" }).waitFor({ timeout: WAIT_MS });
  // Bob is connected: his presence is "online" where the server tells of a
  // new contact's presence (contract v1.2), else not yet known; never "offline".
  assert.notEqual(await pa.locator("#conv-sub").textContent(), "offline");
  await shot(pa, "direct-chat-open");
});

test("messages go both ways live, with unread counts and read marks", async () => {
  await send(pa, "hello bob");
  await message(pa, "hello bob").waitFor({ timeout: WAIT_MS });
  // bob learns of the chat live (chat.new, message.new): one unread.
  const item = pb.locator(".chat-item", { hasText: "Alice" });
  await item.locator(".badge", { hasText: "1" }).waitFor({ timeout: WAIT_MS });
  await shot(pb, "unread-badge");
  await item.click();
  await message(pb, "hello bob").waitFor({ timeout: WAIT_MS });
  assert.equal(await item.locator(".badge").count(), 0, "opening the chat reads it");
  // bob read it: alice's message says Seen.
  await message(pa, "hello bob").locator(".seen").waitFor({ timeout: WAIT_MS });
  await send(pb, "hi alice");
  await message(pa, "hi alice").waitFor({ timeout: WAIT_MS });
  await message(pb, "hi alice").locator(".seen").waitFor({ timeout: WAIT_MS });
  await shot(pa, "messages-exchanged");
});

test("typing shows on the other side", async () => {
  await pb.getByLabel("Message", { exact: true }).pressSequentially("typing…", { delay: 20 });
  await pa.locator("#conv-sub", { hasText: /^Bob\S* is typing/ }).waitFor({ timeout: WAIT_MS });
  await shot(pa, "typing");
  await pb.getByLabel("Message", { exact: true }).fill("");
});

test("a dropped connection recovers without losing a message sent meanwhile", async () => {
  await pa.evaluate(() => window.__net.drop());
  await pa.locator("#conn", { hasText: "Offline" }).waitFor({ timeout: WAIT_MS });
  // bob sees alice go offline, then writes while she is away.
  await pb.locator("#conv-sub", { hasText: "offline" }).waitFor({ timeout: WAIT_MS });
  await send(pb, "sent while you were away");
  await message(pb, "sent while you were away").waitFor({ timeout: WAIT_MS });
  // alice writes while offline: it waits in her outbox.
  await send(pa, "written offline");
  await pa.locator("#messages li.pending", { hasText: "written offline" }).waitFor({ timeout: WAIT_MS });
  await shot(pa, "offline");
  assert.equal(await message(pa, "sent while you were away").count(), 0);
  await pa.evaluate(() => window.__net.restore());
  // The next attempt comes after the backoff reached while held offline.
  await pa.locator("#conn", { hasText: "Connected" }).waitFor({ timeout: 3 * WAIT_MS });
  await message(pa, "sent while you were away").waitFor({ timeout: WAIT_MS });
  await message(pa, "written offline").waitFor({ timeout: WAIT_MS });
  await message(pb, "written offline").waitFor({ timeout: WAIT_MS });
  await pb.locator("#conv-sub", { hasText: "online" }).waitFor({ timeout: WAIT_MS });
  for (const [p, t] of [[pa, "written offline"], [pb, "written offline"],
                        [pa, "sent while you were away"]]) {
    assert.equal(await p.locator("#messages li", { hasText: t }).count(), 1, `${t}: exactly once`);
  }
  await shot(pa, "recovered");
});

test("both pages come back after a server restart", async () => {
  serverDown = true;
  assert.equal(await stopServer(), 0, "a clean drain on SIGTERM");
  await pa.locator("#conn", { hasText: "Offline" }).waitFor({ timeout: WAIT_MS });
  // Down long enough for refused attempts and a growing backoff.
  await new Promise((r) => setTimeout(r, 2500));
  await startServer();
  await pa.locator("#conn", { hasText: "Connected" }).waitFor({ timeout: 3 * WAIT_MS });
  await pb.locator("#conn", { hasText: "Connected" }).waitFor({ timeout: 3 * WAIT_MS });
  serverDown = false;
  await send(pb, "after the restart");
  await message(pa, "after the restart").waitFor({ timeout: WAIT_MS });
  await shot(pa, "after-restart");
});

test("a group chat: created from People, live for its members", async () => {
  await pa.getByRole("button", { name: "People" }).click();
  await pa.getByLabel("Search by username").fill("bob_" + stamp);
  await pa.getByRole("button", { name: "Search" }).click();
  await pa.locator(".person", { hasText: "@bob_" + stamp }).getByRole("button", { name: "Add to group" }).click();
  await pa.getByLabel("Group name").fill("Team " + stamp);
  await pa.getByRole("button", { name: "Create group" }).click();
  await pa.locator("#conv-title", { hasText: "Team " + stamp }).waitFor({ timeout: WAIT_MS });
  await pa.locator("#conv-sub", { hasText: "2 members" }).waitFor({ timeout: WAIT_MS });
  await send(pa, "hello team");
  await message(pa, "hello team").waitFor({ timeout: WAIT_MS });
  const item = pb.locator(".chat-item", { hasText: "Team " + stamp });
  await item.locator(".badge", { hasText: "1" }).waitFor({ timeout: WAIT_MS }); // chat.new + message.new
  await item.click();
  await message(pb, "hello team").locator(".sender", { hasText: "Alice" }).waitFor({ timeout: WAIT_MS });
  await shot(pb, "group-chat");
});

test("the feed: post, live update, like and comment", async () => {
  await pb.getByRole("button", { name: "Feed" }).click();
  await pa.getByRole("button", { name: "Feed" }).click();
  await pa.getByLabel("New post").fill("my first post");
  await pa.getByRole("button", { name: "Post", exact: true }).click();
  const post = pb.locator(".post", { hasText: "my first post" });
  await post.waitFor({ timeout: WAIT_MS }); // post.new, live
  await post.getByRole("button", { name: /like/ }).click();
  await post.getByRole("button", { name: "♥ 1 like" }).waitFor({ timeout: WAIT_MS });
  await post.getByRole("button", { name: /Comments/ }).click();
  await post.getByLabel("Add a comment").fill("nice one");
  await post.getByRole("button", { name: "Comment", exact: true }).click();
  await post.locator(".comment-list li", { hasText: "nice one" }).waitFor({ timeout: WAIT_MS });
  await shot(pb, "feed");
});

// A valid PNG of width x height RGB pixels, made here from bytes: the
// signature, IHDR, one IDAT (zlib of filter-0 rows from pixel(x, y)) and
// IEND, each chunk with its CRC-32.
function png(width, height, pixel) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const td = Buffer.concat([Buffer.from(type, "ascii"), data]);
    const out = Buffer.alloc(8 + data.length + 4);
    out.writeUInt32BE(data.length, 0);
    td.copy(out, 4);
    out.writeUInt32BE(crc(td), 8 + data.length);
    return out;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB, deflate, no filter method, no interlace
  const raw = Buffer.alloc(height * (1 + 3 * width));
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) raw.set(pixel(x, y), y * (1 + 3 * width) + 1 + 3 * x);
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
                        chunk("IHDR", ihdr), chunk("IDAT", zlib.deflateSync(raw)),
                        chunk("IEND", Buffer.alloc(0))]);
}

test("the feed: a post with an image, uploaded by the page, live for the other user", async () => {
  const image = png(32, 24, (x, y) => [x * 8, y * 10, 160]);
  assert.ok(image.length < MAX_UPLOAD);
  await pa.getByLabel("Attach an image").setInputFiles({ name: "gradient.png", mimeType: "image/png",
                                                        buffer: image });
  await pa.locator("#post-preview:visible").waitFor({ timeout: WAIT_MS }); // a blob: preview
  await pa.getByLabel("New post").fill("a picture " + stamp);
  await pa.getByRole("button", { name: "Post", exact: true }).click();
  for (const p of [pa, pb]) { // alice's own list, bob's live (post.new)
    const img = p.locator(".post", { hasText: "a picture " + stamp }).locator("img.post-image");
    await img.waitFor({ timeout: WAIT_MS });
    const src = await img.getAttribute("src");
    assert.match(src, new RegExp(`^http://127\\.0\\.0\\.1:${port}/uploads/[0-9a-f]{64}\\.png$`));
    const handle = await img.elementHandle();
    await p.waitForFunction((e) => e.complete && e.naturalWidth > 0, handle, { timeout: WAIT_MS });
    assert.deepEqual(await img.evaluate((e) => [e.naturalWidth, e.naturalHeight]), [32, 24]);
  }
  assert.equal(await pa.locator("#post-preview").isVisible(), false, "the form is cleared after posting");
  await shot(pb, "feed-image");
});

test("uploads the server refuses (415, 413, 429) are told readably, and nothing is posted", async () => {
  const form = pa.locator("#post-form");
  const attach = pa.getByLabel("Attach an image");
  uploadRefusals = true;
  await attach.setInputFiles({ name: "notes.png", mimeType: "image/png",
                               buffer: Buffer.from("these are notes, not a picture\n") });
  await pa.getByLabel("New post").fill("text as png " + stamp);
  await pa.getByRole("button", { name: "Post", exact: true }).click();
  await form.locator(".form-error", { hasText: "“notes.png” is not an image this server accepts" })
    .waitFor({ timeout: WAIT_MS });
  await shot(pa, "upload-not-an-image");
  // Random pixels do not compress: a valid PNG over MAX_UPLOAD_BYTES.
  const big = png(48, 48, () => [...crypto.getRandomValues(new Uint8Array(3))]);
  assert.ok(big.length > MAX_UPLOAD);
  await attach.setInputFiles({ name: "noise.png", mimeType: "image/png", buffer: big });
  await pa.getByRole("button", { name: "Post", exact: true }).click();
  await form.locator(".form-error", { hasText: /^“noise\.png” is too large \(\d+\.\d KiB\)/ })
    .waitFor({ timeout: WAIT_MS });
  await shot(pa, "upload-too-large");
  // 200 KiB: its Content-Length alone is over the cap (plus the server's
  // 64 KiB framing allowance), so the 413 comes before the body is read.
  const huge = Buffer.concat([png(8, 8, () => [255, 0, 0]), Buffer.alloc(200 * 1024)]);
  await attach.setInputFiles({ name: "huge.png", mimeType: "image/png", buffer: huge });
  await pa.getByRole("button", { name: "Post", exact: true }).click();
  await form.locator(".form-error", { hasText: /^“huge\.png” is too large \(200\.\d KiB\)/ })
    .waitFor({ timeout: WAIT_MS });
  // Alice's uploads so far: the image, the text file, the noise, the huge
  // one; one more is too many.
  await attach.setInputFiles({ name: "again.png", mimeType: "image/png",
                               buffer: png(8, 8, () => [0, 128, 255]) });
  await pa.getByRole("button", { name: "Post", exact: true }).click();
  await form.locator(".form-error", { hasText: /^Too many uploads for now, retry in \d+ s\.$/ })
    .waitFor({ timeout: WAIT_MS });
  uploadRefusals = false;
  await shot(pa, "upload-rate-limited");
  assert.equal(await pa.locator(".post", { hasText: "text as png " + stamp }).count(), 0);
  assert.equal(await pb.locator(".post", { hasText: "text as png " + stamp }).count(), 0);
  await attach.setInputFiles([]);
  await pa.getByLabel("New post").fill("");
});

// Opens the chat whose title starts with `title` from the chat list (on
// the phone-sized page the list shows only once the open chat is closed).
async function openChatNamed(page, title) {
  await page.locator(".tab[data-view=\"chats\"]").click();
  if (await page.locator("#conv-back").isVisible()) await page.locator("#conv-back").click();
  await page.locator(".chat-item", { has: page.locator(".chat-name", { hasText: new RegExp("^" + title) }) }).click();
  await page.locator("#conv-title", { hasText: new RegExp("^" + title) }).waitFor({ timeout: WAIT_MS });
}

// What the open chat shows, message by message: id, text, tombstone, edited.
function shownMessages(page) {
  return page.locator("#messages li.msg[data-id]").evaluateAll((items) => items.map((li) => ({
    id: li.dataset.id,
    text: li.querySelector(".text") ? li.querySelector(".text").textContent : null,
    deleted: !!li.querySelector(".text.deleted"),
    edited: !!li.querySelector(".edited"),
  })));
}

async function editMine(page, text, newText) {
  await message(page, text).getByRole("button", { name: /^Edit message/ }).click();
  const box = page.getByLabel("Edit message", { exact: true });
  await box.fill(newText);
  await box.press("Enter");
  await message(page, newText).locator(".edited").waitFor({ timeout: WAIT_MS });
}

async function deleteMine(page, text) {
  const id = await message(page, text).getAttribute("data-id");
  await message(page, text).getByRole("button", { name: /^Delete message/ }).click();
  await page.getByRole("group", { name: "Confirm deletion" }).getByRole("button", { name: "Yes, delete" }).click();
  await page.locator(`#messages li[data-id="${id}"] .text.deleted`).waitFor({ timeout: WAIT_MS });
  return id;
}

test("edits and deletions of your own messages, live for the other member", async () => {
  await openChatNamed(pa, "Bob");
  await openChatNamed(pb, "Alice");
  await send(pa, "to be edited " + stamp);
  await send(pa, "to be deleted " + stamp);
  await message(pb, "to be deleted " + stamp).waitFor({ timeout: WAIT_MS });
  // Only your own messages offer Edit and Delete.
  assert.equal(await message(pb, "to be edited " + stamp).getByRole("button", { name: /^Edit message/ }).count(), 0);
  assert.equal(await message(pb, "hi alice").getByRole("button", { name: /^Edit message/ }).count(), 1);
  await editMine(pa, "to be edited " + stamp, "edited text " + stamp);
  const edited = message(pb, "edited text " + stamp);
  await edited.locator(".edited", { hasText: "(edited)" }).waitFor({ timeout: WAIT_MS }); // message.updated
  assert.equal(await message(pb, "to be edited " + stamp).count(), 0);
  // Esc cancels: the draft is dropped and focus returns to the Edit button.
  await message(pa, "edited text " + stamp).getByRole("button", { name: /^Edit message/ }).click();
  const box = pa.getByLabel("Edit message", { exact: true });
  await box.fill("a draft to drop");
  await shot(pa, "editing");
  await box.press("Escape");
  await message(pa, "edited text " + stamp).getByRole("button", { name: /^Edit message/ }).waitFor({ timeout: WAIT_MS });
  assert.equal(await pa.evaluate(() => document.activeElement.className), "edit-btn");
  assert.equal(await pa.locator("#messages", { hasText: "a draft to drop" }).count(), 0);
  // Delete asks first; "Keep it" keeps it.
  await message(pa, "to be deleted " + stamp).getByRole("button", { name: /^Delete message/ }).click();
  await pa.getByRole("group", { name: "Confirm deletion" }).getByRole("button", { name: "Keep it" }).click();
  assert.equal(await pa.getByRole("group", { name: "Confirm deletion" }).count(), 0);
  const id = await deleteMine(pa, "to be deleted " + stamp);
  await pb.locator(`#messages li[data-id="${id}"] .text.deleted`, { hasText: "Message deleted" })
    .waitFor({ timeout: WAIT_MS }); // message.deleted
  for (const p of [pa, pb]) assert.equal(await p.locator("#messages", { hasText: "to be deleted " + stamp }).count(), 0);
  assert.equal(await pb.locator(`#messages li[data-id="${id}"] button`).count(), 0, "a tombstone has no actions");
  assert.deepEqual(await shownMessages(pb), await shownMessages(pa));
  await shot(pb, "edited-and-deleted");
});

test("a member away while messages are edited, deleted and sent catches up to the exact final state", async () => {
  await pb.evaluate(() => window.__net.drop());
  await pb.locator("#conn", { hasText: "Offline" }).waitFor({ timeout: WAIT_MS });
  // While bob is away: an edit of an older message (twice: only the last
  // state counts), a deletion, a new message, and one sent and deleted.
  await editMine(pa, "edited text " + stamp, "first rewrite " + stamp);
  await editMine(pa, "first rewrite " + stamp, "final rewrite " + stamp);
  const gone = await deleteMine(pa, "hello bob");
  await send(pa, "sent while bob was away " + stamp);
  await message(pa, "sent while bob was away " + stamp).waitFor({ timeout: WAIT_MS });
  await send(pa, "short-lived " + stamp);
  await message(pa, "short-lived " + stamp).waitFor({ timeout: WAIT_MS });
  const shortLived = await deleteMine(pa, "short-lived " + stamp);
  await send(pa, "last one " + stamp);
  await message(pa, "last one " + stamp).waitFor({ timeout: WAIT_MS });
  assert.equal(await message(pb, "final rewrite " + stamp).count(), 0, "bob is really offline");
  await shot(pb, "away-before-catch-up");
  await pb.evaluate(() => window.__net.restore());
  await pb.locator("#conn", { hasText: "Connected" }).waitFor({ timeout: 3 * WAIT_MS });
  await message(pb, "last one " + stamp).waitFor({ timeout: WAIT_MS });
  await message(pb, "final rewrite " + stamp).locator(".edited").waitFor({ timeout: WAIT_MS });
  await pb.locator(`#messages li[data-id="${gone}"] .text.deleted`).waitFor({ timeout: WAIT_MS });
  await pb.locator(`#messages li[data-id="${shortLived}"] .text.deleted`).waitFor({ timeout: WAIT_MS });
  for (const t of ["edited text ", "first rewrite ", "short-lived "])
    assert.equal(await pb.locator("#messages", { hasText: t + stamp }).count(), 0, t);
  assert.equal(await pb.locator("#messages li", { hasText: "hello bob" }).count(), 0);
  for (const t of ["sent while bob was away ", "final rewrite ", "last one "])
    assert.equal(await pb.locator("#messages li", { hasText: t + stamp }).count(), 1, `${t}: exactly once`);
  const final = await shownMessages(pa);
  assert.deepEqual(await shownMessages(pb), final);
  // A second round trip changes nothing: the positions bob holds are current.
  await pb.evaluate(() => { window.__net.drop(); window.__net.restore(); });
  await pb.locator("#conn", { hasText: "Connected" }).waitFor({ timeout: 3 * WAIT_MS });
  await pb.locator(".tab[data-view=\"chats\"]").click();
  assert.deepEqual(await shownMessages(pb), final);
  // The chat list previews the newest message's current text.
  await shot(pb, "caught-up");
});

test("a long absence: sync asks from the last position and pages until complete", async () => {
  const token = await pa.evaluate(() => sessionStorage.getItem("chatli.token"));
  const chatId = await pb.locator("#messages").getAttribute("data-chat");
  const api = async (method, p, body) => {
    const r = await fetch(`http://127.0.0.1:${port}${p}`, {
      method, body: body && JSON.stringify(body),
      headers: { Authorization: "Bearer " + token, "Content-Type": "application/json" } });
    assert.ok(r.ok, `${method} ${p}: ${r.status}`);
    return r.status === 204 ? null : r.json();
  };
  // The last change bob sees live is a deletion: its position is one past
  // the chat's lastSeq (the highest message seq), and sync must ask from it.
  const lastOne = await message(pa, "last one " + stamp).getAttribute("data-id");
  await deleteMine(pa, "last one " + stamp);
  await pb.locator(`#messages li[data-id="${lastOne}"] .text.deleted`).waitFor({ timeout: WAIT_MS });
  const { lastSeq } = await api("GET", `/api/chats/${chatId}`);
  await pb.evaluate(() => window.__net.drop());
  await pb.locator("#conn", { hasText: "Offline" }).waitFor({ timeout: WAIT_MS });
  await pb.evaluate(() => { window.__syncs = []; });
  // More than one sync's worth (500 a chat) while bob is away.
  const BULK = 520;
  for (let i = 0; i < BULK; i += 20) {
    await Promise.all(Array.from({ length: Math.min(20, BULK - i) }, (_, k) =>
      api("POST", `/api/chats/${chatId}/messages`, { text: `bulk ${i + k} ${stamp}` })));
  }
  await pb.evaluate(() => window.__net.restore());
  await pb.locator("#conn", { hasText: "Connected" }).waitFor({ timeout: 3 * WAIT_MS });
  await pb.waitForFunction((n) => [...document.querySelectorAll("#messages li.msg .text")]
    .filter((e) => e.textContent.startsWith("bulk ")).length === n, BULK, { timeout: 3 * WAIT_MS });
  const syncs = (await pb.evaluate(() => window.__syncs)).filter((c) => chatId in c);
  assert.ok(syncs.length >= 2, "complete:false makes the page sync again: " + JSON.stringify(syncs));
  assert.equal(syncs[0][chatId], lastSeq + 1, "the first sync asks from the last position seen");
  assert.ok(syncs[1][chatId] >= syncs[0][chatId] + 500, "the next one from where the first stopped");
  const ids = await pb.locator("#messages li.msg[data-id]").evaluateAll((l) => l.map((e) => e.dataset.id));
  assert.equal(new Set(ids).size, ids.length, "no message twice");
  await message(pb, `bulk ${BULK - 1} ${stamp}`).waitFor({ timeout: WAIT_MS });
  await shot(pb, "long-absence");
});

test("read marks say who has seen a message (Seen by, in a group)", async () => {
  await openChatNamed(pb, "Team " + stamp);
  await openChatNamed(pa, "Team " + stamp);
  await message(pa, "hello team").locator(".seen", { hasText: "Seen by Bob" }).waitFor({ timeout: WAIT_MS });
  // Chat.readMarks (contract v1.2) seeds the marks after a reload; a server
  // without it shows them from the next read frame instead.
  const token = await pa.evaluate(() => sessionStorage.getItem("chatli.token"));
  const r = await fetch(`http://127.0.0.1:${port}/api/chats`, { headers: { Authorization: "Bearer " + token } });
  const hasMarks = (await r.json()).items.every((c) => c.readMarks && typeof c.readMarks === "object");
  for (const v of await pa.evaluate(() => window.__csp)) problems.push("CSP violation: " + v);
  await pa.reload();
  await pa.locator("#conn", { hasText: "Connected" }).waitFor({ timeout: WAIT_MS });
  await openChatNamed(pa, "Team " + stamp);
  await message(pa, "hello team").waitFor({ timeout: WAIT_MS });
  if (hasMarks) await message(pa, "hello team").locator(".seen", { hasText: "Seen by Bob" }).waitFor({ timeout: WAIT_MS });
  await send(pb, "bob in the team");
  await message(pa, "bob in the team").waitFor({ timeout: WAIT_MS });
  await message(pb, "bob in the team").locator(".seen", { hasText: "Seen by Alice" }).waitFor({ timeout: WAIT_MS });
  await shot(pa, "seen-by");
});

// The account panel needs the v1.2 account routes: a server without them
// answers 404 (with them, an unauthenticated call is 401).
async function accountRoutes() {
  const r = await fetch(`http://127.0.0.1:${port}/api/auth/password`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" });
  return r.status !== 404;
}

test("account settings: change password, log out everywhere, delete the account", async (t) => {
  if (!(await accountRoutes())) {
    t.skip("this server has no account routes (POST /api/auth/password answers 404)");
    return;
  }
  const carol = "carol_" + stamp;
  const pc = await newPage("carol", { width: 390, height: 844 });
  const pc2 = await newPage("carol-2", { width: 1280, height: 800 });
  await register(pc, carol);
  await pc2.getByLabel("Email or username").fill(carol);
  await pc2.getByLabel("Password", { exact: true }).first().fill("correct horse battery");
  await pc2.getByRole("button", { name: "Log in" }).click();
  await pc2.locator("#conn", { hasText: "Connected" }).waitFor({ timeout: WAIT_MS });
  await pc.getByRole("button", { name: "Account" }).click();
  accountRefusals = true;
  // A wrong current password is said in the form; the session stays.
  await pc.getByLabel("Current password").fill("not my password");
  await pc.getByLabel("New password").fill("a new secret phrase");
  await pc.getByRole("button", { name: "Change password" }).click();
  await pc.locator("#password-form .form-error", { hasText: "The current password is wrong." })
    .waitFor({ timeout: WAIT_MS });
  assert.equal(await pc.locator("#app").isVisible(), true);
  await pc.getByLabel("Current password").fill("correct horse battery");
  await pc.getByLabel("New password").fill("a new secret phrase");
  await pc.getByRole("button", { name: "Change password" }).click();
  await pc.locator("#password-status", { hasText: "Password changed" }).waitFor({ timeout: WAIT_MS });
  await shot(pc, "password-changed");
  // carol's other device lost its token: back to the login form.
  await pc2.locator("#login-form").waitFor({ timeout: WAIT_MS });
  await pc2.locator("#conn", { hasText: "session ended" }).waitFor({ timeout: WAIT_MS });
  // Log out everywhere ends this session too.
  await pc.getByRole("button", { name: "Log out everywhere" }).click();
  await pc.locator("#conn", { hasText: "Logged out on every device." }).waitFor({ timeout: WAIT_MS });
  await pc.getByLabel("Email or username").fill(carol);
  await pc.getByLabel("Password", { exact: true }).first().fill("a new secret phrase");
  await pc.getByRole("button", { name: "Log in" }).click();
  await pc.locator("#conn", { hasText: "Connected" }).waitFor({ timeout: WAIT_MS });
  // Delete: the box must be ticked, the password right.
  await pc.getByRole("button", { name: "Account" }).click();
  const del = pc.locator("#delete-account-form");
  await pc.getByLabel("Your password").fill("a new secret phrase");
  await pc.getByRole("button", { name: "Delete my account" }).click();
  await del.locator(".form-error", { hasText: "Tick the box" }).waitFor({ timeout: WAIT_MS });
  await pc.getByLabel("I understand this cannot be undone").check();
  await pc.getByLabel("Your password").fill("wrong again");
  await pc.getByRole("button", { name: "Delete my account" }).click();
  await del.locator(".form-error", { hasText: "The password is wrong." }).waitFor({ timeout: WAIT_MS });
  await shot(pc, "delete-account");
  await pc.getByLabel("Your password").fill("a new secret phrase");
  await pc.getByRole("button", { name: "Delete my account" }).click();
  await pc.locator("#conn", { hasText: "Your account was deleted." }).waitFor({ timeout: WAIT_MS });
  await pc.getByLabel("Email or username").fill(carol);
  await pc.getByLabel("Password", { exact: true }).first().fill("a new secret phrase");
  await pc.getByRole("button", { name: "Log in" }).click();
  await pc.locator("#login-form .form-error", { hasText: "Wrong email/username or password." })
    .waitFor({ timeout: WAIT_MS });
  accountRefusals = false;
  for (const p of [pc, pc2]) {
    for (const v of await p.evaluate(() => window.__csp)) problems.push("CSP violation: " + v);
    await p.context().close();
  }
});

test("no console error, page error or CSP violation on either page", async () => {
  for (const p of [pa, pb]) {
    const csp = await p.evaluate(() => window.__csp);
    for (const v of csp) problems.push("CSP violation: " + v);
  }
  assert.deepEqual(problems, []);
});
