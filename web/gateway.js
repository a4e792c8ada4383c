// gateway.js - the WebSocket half: one connection to /ws that stays up.
//
// Auth is the first frame ({"type":"auth","token"}), never a ?token= in the
// URL, so the token stays out of logs and history.  A connection that drops
// for any reason but a refused token comes back after an exponential
// backoff (0.5 s doubling to 30 s, with jitter so a restarted server is not
// hit by every client at once); each `ready` is reported to the app, which
// then sends `sync` with the last seq it holds per chat, so nothing sent
// meanwhile is lost (contract section 6: the store is the source of truth).
// Frames sent while the socket is down are not queued here: the app keeps
// its own outbox and resends with the same clientId, which the server
// deduplicates.

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 30000;

export class Gateway extends EventTarget {
  constructor(getToken) {
    super();
    this.getToken = getToken;
    this.ws = null;
    this.ready = false;
    this.stopped = true;
    this.attempt = 0;
    this.timer = null;
  }

  start() {
    this.stopped = false;
    this.attempt = 0;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = null;
    if (this.ws) this.ws.close(1000, "logout");
    this.ws = null;
    this.setReady(false);
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return scheme + "//" + location.host + "/ws";
  }

  connect() {
    this.timer = null;
    if (this.stopped) return;
    this.emit("state", { state: "connecting" });
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch (e) {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.addEventListener("open", () => {
      if (ws !== this.ws) return;
      ws.send(JSON.stringify({ type: "auth", token: this.getToken() }));
    });
    ws.addEventListener("message", (ev) => {
      if (ws !== this.ws) return;
      let frame;
      try {
        frame = JSON.parse(ev.data);
      } catch (e) {
        return; // the server sends JSON only; ignore anything else
      }
      if (frame.type === "ready") {
        this.attempt = 0;
        this.setReady(true);
      }
      this.emit("frame", frame);
    });
    ws.addEventListener("close", (ev) => {
      if (ws !== this.ws) return;
      this.ws = null;
      this.setReady(false);
      if (ev.code === 4401) {
        this.stopped = true;
        this.emit("unauthorized", {});
        return;
      }
      this.scheduleReconnect();
    });
  }

  scheduleReconnect() {
    if (this.stopped || this.timer) return;
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt);
    const delay = base / 2 + Math.random() * (base / 2);
    this.attempt++;
    this.emit("state", { state: "offline", retryMs: Math.round(delay) });
    this.timer = setTimeout(() => this.connect(), delay);
  }

  setReady(on) {
    if (this.ready === on) return;
    this.ready = on;
    if (on) this.emit("state", { state: "online" });
  }

  // Sends a frame if the connection is ready; returns whether it went out.
  send(frame) {
    if (!this.ready || !this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
