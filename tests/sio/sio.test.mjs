// sio.test.mjs - the real socket.io-client 4.x (pinned in package.json)
// against build/chatli's /socket.io/ (issue 12, CONTRACT 7).
//
// Starts build/chatli (CHATLI_BIN) on a free loopback port with the
// embedded store in a fresh DATA_DIR, registers users over REST and talks
// to the gateway exactly as a frontend does: io(url, {auth: {token},
// transports: ["websocket"]}), events of the contract's frame names, an
// ack callback on message.send, connect_error on a bad token, and the
// client's own reconnection across a server restart, then `sync`.
// Every wait is bounded (WAIT_MS).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { io } from "socket.io-client";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "../..");
const BIN = process.env.CHATLI_BIN || path.join(repo, "build/chatli");
const WAIT_MS = 10000;

let server = null;
let port = 0;
let dataDir = null;
let url = "";
const sockets = [];

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
  const env = { ...process.env };
  for (const k of ["MONGODB_URI", "MONGODB_DB", "REDIS_URL", "CLOUDINARY_URL", "PUBLIC_URL"]) delete env[k];
  Object.assign(env, { HOST: "127.0.0.1", PORT: String(port), DATA_DIR: dataDir, RATE_LIMIT_MAX: "0",
                       PWHASH_OPSLIMIT: "1", PWHASH_MEMLIMIT: "8192", LOG_LEVEL: "warn",
                       SHUTDOWN_GRACE_S: "2" });
  const log = fs.openSync(path.join(dataDir, "chatli.log"), "a");
  server = spawn(BIN, [], { env, stdio: ["ignore", log, log] });
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    try {
      const r = await fetch(`${url}/healthz`);
      if (r.ok) return;
    } catch (e) {
      // not listening yet
    }
    if (Date.now() > deadline || server.exitCode !== null) throw new Error("chatli did not start");
    await new Promise((r) => setTimeout(r, 50));
  }
}

function stopServer() {
  if (!server || server.exitCode !== null) return Promise.resolve(server ? server.exitCode : 0);
  return new Promise((resolve) => {
    server.once("exit", (code) => resolve(code));
    server.kill("SIGTERM");
  });
}

async function api(method, p, token, body) {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const r = await fetch(url + p, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

let n = 0;
async function register() {
  const name = `sio${process.pid}_${++n}`;
  const r = await api("POST", "/api/auth/register", null,
                      { username: name, email: `${name}@example.com`, password: "password123" });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body;
}

// A socket whose events are collected: next(name) resolves with the next
// argument of `name` (already received or still to come), within WAIT_MS.
function connect(token, opts = {}) {
  const s = io(url, { auth: { token }, reconnectionDelay: 100, reconnectionDelayMax: 500, ...opts });
  sockets.push(s);
  const got = new Map();
  const waiters = new Map();
  s.onAny((name, arg) => {
    const w = waiters.get(name);
    if (w && w.length) w.shift()(arg);
    else got.set(name, [...(got.get(name) || []), arg]);
  });
  s.next = (name) => {
    const q = got.get(name);
    if (q && q.length) return Promise.resolve(q.shift());
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no ${name} event within ${WAIT_MS} ms`)), WAIT_MS);
      waiters.set(name, [...(waiters.get(name) || []), (arg) => { clearTimeout(t); resolve(arg); }]);
    });
  };
  s.pending = (name) => (got.get(name) || []).length;
  return s;
}

function once(s, ev) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no ${ev} within ${WAIT_MS} ms`)), WAIT_MS);
    s.once(ev, (arg) => { clearTimeout(t); resolve(arg); });
  });
}

before(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "chatli-sio-"));
  port = await freePort();
  url = `http://127.0.0.1:${port}`;
  await startServer();
});

after(async () => {
  for (const s of sockets) s.disconnect();
  const code = await stopServer();
  assert.equal(code, 0, "chatli exits 0 on SIGTERM");
  fs.rmSync(dataDir, { recursive: true, force: true });
});

const WS_ONLY = { transports: ["websocket"] };

test("transports: [websocket]: events both ways and the message.send ack", async () => {
  const a = await register();
  const b = await register();
  const chat = (await api("POST", "/api/chats", a.token, { memberIds: [b.user.id] })).body;
  const sa = connect(a.token, WS_ONLY);
  const ready = await sa.next("ready");
  assert.equal(ready.user.id, a.user.id);
  assert.equal(sa.io.engine.transport.name, "websocket");
  const sb = connect(b.token, WS_ONLY);
  assert.deepEqual((await sb.next("ready")).online, [a.user.id]);
  assert.deepEqual(await sa.next("presence"), { userId: b.user.id, online: true });

  const ack = await sa.timeout(WAIT_MS).emitWithAck("message.send",
    { chatId: chat.id, text: "hello from socket.io-client", clientId: "n1" });
  assert.equal(ack.clientId, "n1");
  assert.equal(ack.message.text, "hello from socket.io-client");
  assert.deepEqual(await sb.next("message.new"), { message: ack.message });

  const bad = await sa.timeout(WAIT_MS).emitWithAck("message.send",
    { chatId: chat.id, text: "", clientId: "n2" });
  assert.equal(bad.error.code, "validation_failed");
  assert.equal(bad.error.field, "text");

  sb.emit("typing", { chatId: chat.id });
  assert.deepEqual(await sa.next("typing"), { chatId: chat.id, userId: b.user.id });
  sb.emit("read", { chatId: chat.id, messageId: ack.message.id });
  assert.deepEqual(await sa.next("read"), { chatId: chat.id, userId: b.user.id, messageId: ack.message.id });
  sa.emit("message.send", { chatId: "0".repeat(24), text: "x", clientId: "n3" });
  const err = await sa.next("error");
  assert.equal(err.code, "not_found");
  assert.equal(err.clientId, "n3");
  sa.emit("ping");
  assert.deepEqual(await sa.next("pong"), {});
  // the validation error above came as the ack only: no error event for n2
  assert.equal(sa.pending("error"), 0);
});

test("a bad token: connect_error unauthorized", async () => {
  const s = connect("not-a-token", WS_ONLY);
  const e = await once(s, "connect_error");
  assert.equal(e.message, "unauthorized");
  assert.equal(s.connected, false);
});

test("server restart: the client reconnects by itself, then sync catches up", async () => {
  const a = await register();
  const b = await register();
  const chat = (await api("POST", "/api/chats", a.token, { memberIds: [b.user.id] })).body;
  const sa = connect(a.token, WS_ONLY);
  await sa.next("ready");
  const first = await sa.timeout(WAIT_MS).emitWithAck("message.send",
    { chatId: chat.id, text: "before", clientId: "r1" });
  const gone = once(sa, "disconnect");
  assert.equal(await stopServer(), 0);
  assert.equal(await gone, "transport close");
  await startServer();
  await sa.next("ready"); // the client reconnected on its own
  await api("POST", `/api/chats/${chat.id}/messages`, b.token, { text: "after" });
  assert.equal((await sa.next("message.new")).message.text, "after");
  sa.emit("sync", { chats: { [chat.id]: first.message.seq } });
  assert.equal((await sa.next("message.new")).message.text, "after");
  assert.deepEqual(await sa.next("sync.done"), { complete: true });
});
