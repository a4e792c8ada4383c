// app.js - the chatli web client: state, live frames and the DOM.
//
// Plain ES modules, no build step, no framework: the page is also the
// example for frontend authors, so each contract rule shows up once, where
// it is used.  The DOM is built with createElement/textContent only (no
// innerHTML, no inline style or script), which keeps user text inert and
// keeps the page inside its Content-Security-Policy.
//
// Live state comes from the gateway (gateway.js); REST (api.js) loads pages
// and does what has no frame (register, feed, search, chat creation).
// Messages are sent as `message.send` frames with a clientId kept in an
// outbox until the ack (or the message itself, via sync) comes back: after
// a drop the outbox is sent again with the same clientIds, which the server
// deduplicates, and `sync` brings every message the page missed.
import { Api, ApiError } from "./api.js";
import { Gateway } from "./gateway.js";

const api = new Api();
const gw = new Gateway(() => api.token);
const $ = (id) => document.getElementById(id);

const TYPING_SEND_MS = 2500; // at most one typing frame per chat this often
const TYPING_SHOW_MS = 4000; // a typing indicator fades after this long

let state = freshState();

function freshState() {
  return {
    me: null,
    chats: new Map(),     // id -> chat (contract Chat + msgs, typing, marks)
    current: null,        // id of the open chat
    online: new Set(),    // user ids online (ready.online + presence)
    unknown: new Set(),   // new contacts since ready whose presence no frame told yet
    outbox: new Map(),    // clientId -> {chatId, text, failed}
    posts: new Map(),     // id -> post
    feedCursor: null,
    feedLoaded: false,
    selected: new Map(),  // user id -> user, for a new group
    lastTypingSent: 0,
    everReady: false,
    syncs: [],            // per sync in flight: Map chat id -> the position it asked from
    editing: null,        // {chatId, id, draft, saving} while one of our messages is edited
    confirmDelete: null,  // id of our message whose deletion awaits a confirm
  };
}

// ---- small helpers ----------------------------------------------------------

function el(tag, props, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function randomId() {
  // crypto.randomUUID needs a secure context; a LAN address over http is not one.
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

function when(iso) {
  const d = new Date(iso);
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
               : d.toLocaleString([], { dateStyle: "short", timeStyle: "short" });
}

function isHttpUrl(u) { return typeof u === "string" && /^https?:\/\//i.test(u); }

let toastTimer = null;
function toast(text) {
  const t = $("toast");
  t.textContent = text;
  t.classList.add("show");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => t.classList.remove("show"), 5000);
}

// Runs an event handler; API failures become a message for the user, a
// lost session returns to the login form, anything else is a bug and is
// logged as one.
function guard(fn, errorBox) {
  return async (ev) => {
    try {
      await fn(ev);
    } catch (e) {
      if (!(e instanceof ApiError)) console.error(e);
      // 401 invalid_credentials is a wrong password typed in a form (the
      // session is fine); any other 401 means the token no longer works.
      if (e instanceof ApiError && e.status === 401 && e.code !== "invalid_credentials" && state.me) {
        endSession("Your session ended: please log in again.");
        return;
      }
      const msg = e instanceof ApiError ? describe(e) : "Something went wrong.";
      if (errorBox) errorBox.textContent = msg;
      else toast(msg);
    }
  };
}

function describe(e) {
  if (e.code === "validation_failed" && e.field) return e.field + ": " + e.message;
  if (e.code === "invalid_credentials") return "Wrong email/username or password.";
  if (e.code === "username_taken") return "That username is taken.";
  if (e.code === "email_taken") return "That email is already registered.";
  if (e.status === 404 && e.accountRoute)
    return "This server does not offer this yet (it needs contract v1.2).";
  return e.message || e.code;
}

// ---- sign in / out ----------------------------------------------------------

function formError(form) { return form.querySelector(".form-error"); }

async function onLogin(ev) {
  ev.preventDefault();
  const f = ev.target;
  formError(f).textContent = "";
  const res = await api.login($("login-email").value.trim(), $("login-password").value);
  api.setToken(res.token);
  f.reset();
  startSession(res.user);
}

async function onRegister(ev) {
  ev.preventDefault();
  const f = ev.target;
  formError(f).textContent = "";
  const res = await api.register($("reg-username").value.trim(), $("reg-email").value.trim(),
                                 $("reg-password").value, $("reg-display").value.trim());
  api.setToken(res.token);
  f.reset();
  startSession(res.user);
}

function startSession(user) {
  state = freshState();
  state.me = user;
  $("auth").hidden = true;
  $("app").hidden = false;
  $("who").hidden = false;
  $("me-name").textContent = user.displayName + " (@" + user.username + ")";
  showView("chats");
  $("main").focus();
  gw.start();
  guard(loadChats)();
}

async function onLogout() {
  try {
    await api.logout();
  } catch (e) {
    // The token is dropped here either way; a failed logout only means
    // the server lets it expire.
  }
  endSession("Logged out.");
}

function endSession(message) {
  gw.stop();
  api.setToken(null);
  state = freshState();
  for (const id of ["chat-list", "messages", "posts", "people"]) $(id).replaceChildren();
  for (const f of document.querySelectorAll("#view-account form")) {
    f.reset();
    for (const p of f.querySelectorAll(".form-error, .status")) p.textContent = "";
  }
  $("app").hidden = true;
  $("who").hidden = true;
  $("auth").hidden = false;
  $("conn").textContent = message || "Not signed in";
  $("login-email").focus();
}

// ---- views ------------------------------------------------------------------

function showView(name) {
  for (const b of document.querySelectorAll(".tab")) {
    if (b.dataset.view === name) b.setAttribute("aria-current", "page");
    else b.removeAttribute("aria-current");
  }
  for (const v of ["chats", "feed", "people", "account"]) $("view-" + v).hidden = v !== name;
  if (name === "feed" && !state.feedLoaded) guard(loadFeed)();
  if (name === "chats" && state.current) markRead(state.chats.get(state.current));
}

// ---- connection state -------------------------------------------------------

function onGatewayState(ev) {
  const s = ev.detail.state;
  const c = $("conn");
  c.dataset.state = s;
  if (s === "online") c.textContent = "Connected";
  else if (s === "connecting") c.textContent = "Connecting…";
  else c.textContent = "Offline: reconnecting in " + Math.ceil(ev.detail.retryMs / 1000) + " s";
}

function onReady(frame) {
  state.me = frame.user;
  state.online = new Set(frame.online);
  state.unknown.clear(); // ready lists every online contact: the others are offline
  const reconnect = state.everReady;
  state.everReady = true;
  state.syncs = []; // those of a closed connection never finish
  sendSync();
  flushOutbox();
  if (reconnect) guard(loadChats)(); // chats created or joined while away
  renderChatList();
  renderConversationHead();
  if (state.current) markRead(state.chats.get(state.current));
}

// sync: every chat (or one) from the highest POSITION this page has seen
// in it (api.md "Edits, deletions and catch-up": one counter per chat for
// new messages, edits and deletions).  The server sends everything after
// it (message.new, message.updated, message.deleted, each with its
// position), then sync.done.  Each sync in flight keeps the positions it
// asked from, so a sync.done with complete:false can tell which chats moved.
function sendSync(only) {
  const chats = {};
  for (const c of only ? [only] : state.chats.values()) chats[c.id] = c.pos || 0;
  syncFrom(chats);
}

function syncFrom(chats) {
  if (!Object.keys(chats).length) return;
  if (gw.send({ type: "sync", chats })) state.syncs.push(new Map(Object.entries(chats)));
}

// complete:false: a chat had more than the server sends at once.  Ask again
// from the new positions of the chats that moved; a sync that moved none
// would only repeat itself, so then the lists reload over REST instead.
function onSyncDone(f) {
  const asked = state.syncs.shift();
  if (!state.syncs.length && state.current) markRead(state.chats.get(state.current));
  if (f.complete) return;
  const again = {};
  if (asked) {
    for (const [id, from] of asked) {
      const c = state.chats.get(id);
      if (c && (c.pos || 0) > from) again[id] = c.pos;
    }
  }
  if (Object.keys(again).length) syncFrom(again);
  else guard(catchUp)();
}

// Records a position seen in a chat.  A live frame that jumps over
// positions this page never saw, while no sync is running (a sync skips
// the positions of changes superseded since), means a frame was missed:
// the sync from the last position fetches it (applied idempotently).
function notePos(c, pos, live) {
  const prev = c.pos || 0;
  if (typeof pos !== "number" || pos <= prev) return;
  c.pos = pos;
  if (live && prev > 0 && pos > prev + 1 && c.loaded && !state.syncs.length) syncFrom({ [c.id]: prev });
}

function flushOutbox() {
  for (const [clientId, o] of state.outbox) {
    if (o.failed) continue;
    gw.send({ type: "message.send", chatId: o.chatId, text: o.text, clientId });
  }
}

function onFrame(ev) {
  const f = ev.detail;
  switch (f.type) {
    case "ready": onReady(f); break;
    case "message.new": addMessage(f.message, f.seq, "new"); break;
    case "message.ack": onAck(f); break;
    case "message.updated": addMessage(f.message, f.seq, "updated"); break;
    case "message.deleted": onDeleted(f); break;
    case "typing": onTyping(f); break;
    case "presence": onPresence(f); break;
    case "read": onRead(f); break;
    case "chat.new": upsertChat(f.chat); break;
    case "chat.updated": upsertChat(f.chat); break;
    case "chat.removed": removeChat(f.chatId); break;
    case "post.new": onPostNew(f.post); break;
    case "sync.done": onSyncDone(f); break;
    case "resync": sendSync(); break;
    case "error": onFrameError(f); break;
    default: break; // pong and frames of later versions
  }
}

// A sync cut short (over 500 messages in a chat): the chat list's counts
// come from REST, and the open chat reloads its latest page.
async function catchUp() {
  await loadChats();
  const c = state.chats.get(state.current);
  if (c) {
    c.loaded = false;
    await openChat(c.id, false);
  }
}

function onFrameError(f) {
  if (f.clientId && state.outbox.has(f.clientId)) {
    const o = state.outbox.get(f.clientId);
    if (f.code === "rate_limited") {
      setTimeout(() => gw.send({ type: "message.send", chatId: o.chatId, text: o.text,
                                 clientId: f.clientId }), 1000);
      return;
    }
    o.failed = f.message || f.code;
    renderMessages(false);
    toast("Message not sent: " + o.failed);
    return;
  }
  if (f.code !== "rate_limited") toast("Server: " + (f.message || f.code));
}

// ---- chats ------------------------------------------------------------------

async function loadChats() {
  let cursor = null;
  do {
    const page = await api.chats(cursor);
    for (const c of page.items) upsertChat(c, true);
    cursor = page.nextCursor;
  } while (cursor);
  renderChatList();
}

function upsertChat(c, fromList) {
  const old = state.chats.get(c.id);
  if (!old && !fromList) noteNewContacts(c); // chat.new: made just now
  const chat = Object.assign(old || { msgs: new Map(), typing: new Map(), marks: new Map(),
                                      markIds: new Map(), loaded: false, myReadSeq: 0,
                                      pos: 0, mpos: new Map() }, c);
  if (old && !fromList) chat.unreadCount = old.unreadCount; // live events carry a neutral count
  if (old && old.lastSeq > (c.lastSeq || 0)) {
    chat.lastSeq = old.lastSeq;
    chat.lastMessage = old.lastMessage;
    chat.updatedAt = old.updatedAt;
  }
  // lastSeq is a message seq: a safe position to sync from (changes after
  // it come again, and are applied idempotently).  An open (loaded) chat's
  // position comes from frames only: the list, reloaded on reconnect, may
  // name messages a sync in flight has not brought yet.
  if (!chat.loaded) chat.pos = Math.max(chat.pos || 0, chat.lastSeq || 0);
  // readMarks (contract v1.2, absent from older servers): every member's
  // read position; marks only move forward.
  if (c.readMarks && typeof c.readMarks === "object") {
    for (const [u, seq] of Object.entries(c.readMarks)) {
      if (typeof seq !== "number") continue;
      if (u === state.me.id) chat.myReadSeq = Math.max(chat.myReadSeq, seq);
      else chat.marks.set(u, Math.max(chat.marks.get(u) || 0, seq));
    }
  }
  state.chats.set(c.id, chat);
  if (!old && state.everReady && c.lastSeq > 0 && !fromList) sendSync(chat);
  renderChatList();
  if (state.current === c.id) renderConversationHead();
  return chat;
}

// Members first met in a chat made after `ready`: their presence is unknown
// until a presence frame (servers of contract v1.2 send one for each online
// co-member of a new chat), so the page says nothing rather than "offline".
function noteNewContacts(c) {
  const known = new Set();
  for (const x of state.chats.values()) for (const m of x.members) known.add(m.id);
  for (const m of c.members) {
    if (m.id !== state.me.id && !known.has(m.id) && !state.online.has(m.id)) state.unknown.add(m.id);
  }
}

function removeChat(id) {
  state.chats.delete(id);
  if (state.current === id) closeConversation();
  renderChatList();
}

function chatTitle(c) {
  if (c.name) return c.name;
  const others = c.members.filter((m) => m.id !== state.me.id);
  return others.map((m) => m.displayName).join(", ") || "Just you";
}

function otherMember(c) {
  return c.type === "direct" ? c.members.find((m) => m.id !== state.me.id) : null;
}

function typingNames(c) {
  const names = [];
  for (const uid of c.typing.keys()) {
    const m = c.members.find((x) => x.id === uid);
    names.push(m ? m.displayName : "Someone");
  }
  return names;
}

function renderChatList() {
  const list = $("chat-list");
  const chats = [...state.chats.values()].sort((a, b) => (b.updatedAt || "").localeCompare(a.updatedAt || ""));
  $("chat-list-empty").hidden = chats.length > 0;
  let total = 0;
  const items = chats.map((c) => {
    total += c.unreadCount || 0;
    const other = otherMember(c);
    const typing = typingNames(c);
    let preview = "No messages yet";
    if (typing.length) preview = typing.join(", ") + " typing…";
    else if (c.lastMessage) preview = c.lastMessage.deleted ? "Message deleted" : c.lastMessage.text || "Attachment";
    const online = other && state.online.has(other.id);
    const presence = !other || state.unknown.has(other.id) ? null : online ? " (online)" : " (offline)";
    const btn = el("button", { type: "button", class: "chat-item", "data-chat": c.id,
                               "aria-current": state.current === c.id ? "true" : null,
                               onclick: guard(() => openChat(c.id, true)) },
      el("span", { class: "chat-name" },
        other ? el("span", { class: online ? "dot on" : "dot", "aria-hidden": "true" }) : null,
        chatTitle(c),
        presence ? el("span", { class: "sr-only", text: presence }) : null),
      el("span", { class: typing.length ? "chat-preview typing" : "chat-preview", text: preview }),
      c.unreadCount > 0 ? el("span", { class: "badge", text: String(c.unreadCount),
                                       "aria-label": c.unreadCount + " unread" }) : null);
    return el("li", null, btn);
  });
  list.replaceChildren(...items);
  const badge = $("unread-total");
  badge.hidden = total === 0;
  badge.textContent = String(total);
  badge.setAttribute("aria-label", total + " unread");
  document.title = total ? "(" + total + ") chatli" : "chatli";
}

async function openChat(id, focus) {
  const c = state.chats.get(id);
  if (!c) return;
  showView("chats");
  state.current = id;
  $("view-chats").classList.add("has-conv");
  $("conversation").hidden = false;
  renderConversationHead();
  renderMessages(true);
  if (focus) $("composer-text").focus();
  if (state.editing && state.editing.chatId !== id) state.editing = null;
  if (state.confirmDelete && !c.msgs.has(state.confirmDelete)) state.confirmDelete = null;
  if (!c.loaded) {
    const page = await api.messages(id);
    for (const m of page.items) applyMessage(c, m, m.seq);
    c.loaded = true;
    if (state.current === id) renderMessages(true);
  }
  markRead(c);
  renderChatList();
}

function closeConversation() {
  const id = state.current;
  state.current = null;
  $("conversation").hidden = true;
  $("view-chats").classList.remove("has-conv");
  renderChatList();
  const item = id && document.querySelector('[data-chat="' + id + '"]');
  if (item) item.focus();
}

function presenceText(user) {
  if (!user || state.unknown.has(user.id)) return "";
  return state.online.has(user.id) ? "online" : "offline";
}

function renderConversationHead() {
  const c = state.chats.get(state.current);
  if (!c) return;
  $("conv-title").textContent = chatTitle(c);
  const typing = typingNames(c);
  let sub;
  if (typing.length) sub = typing.join(", ") + (typing.length > 1 ? " are" : " is") + " typing…";
  else if (c.type === "direct") sub = presenceText(otherMember(c));
  else sub = c.members.length + " members";
  $("conv-sub").textContent = sub;
  $("conv-sub").dataset.state = typing.length ? "typing" : sub;
}

// ---- messages ---------------------------------------------------------------

function storeMessage(c, m) {
  c.msgs.set(m.id, m);
  for (const [uid, id] of c.markIds) { // a read frame that came before the message
    if (id !== m.id) continue;
    c.marks.set(uid, Math.max(c.marks.get(uid) || 0, m.seq));
    c.markIds.delete(uid);
  }
  if (m.seq > (c.lastSeq || 0)) {
    c.lastSeq = m.seq;
    c.lastMessage = m;
    c.updatedAt = m.createdAt;
  } else if (c.lastMessage && c.lastMessage.id === m.id) {
    c.lastMessage = m; // an edit or deletion of the last message: its preview
  }
}

function tombstone(m) {
  return Object.assign({}, m, { deleted: true, text: "", attachmentUrl: null });
}

// Keeps message m, known in the state of position pos, unless the page
// already holds a later state of it: a tombstone is final, else the later
// position wins.  Returns whether m was stored.
function applyMessage(c, m, pos) {
  const old = c.msgs.get(m.id);
  if (old) {
    if (old.deleted && !m.deleted) return false;
    if (!(m.deleted && !old.deleted) && pos < (c.mpos.get(m.id) || old.seq)) return false;
  }
  c.mpos.set(m.id, Math.max(pos, m.seq));
  storeMessage(c, m);
  if (m.deleted && state.editing && state.editing.id === m.id) state.editing = null;
  if (m.deleted && state.confirmDelete === m.id) state.confirmDelete = null;
  return true;
}

// A change to a message the page does not hold: kept if it falls inside the
// loaded page (the list shows it), else only the chat's preview follows it
// (an unopened chat loads its current page later).
function holdsRange(c, m) {
  if (!c.loaded) return false;
  for (const x of c.msgs.values()) if (x.seq <= m.seq) return true;
  return false;
}

// A message from a frame (live or sync: message.new, .updated, .deleted,
// .ack), at position pos (the frame's top-level seq, else message.seq):
// kept once per id, in its latest state, however often it comes.
function addMessage(m, pos, kind) {
  const c = state.chats.get(m.chatId);
  if (!c) {
    guard(async () => { upsertChat(await api.chat(m.chatId)); addMessage(m, pos, kind); })();
    return;
  }
  if (typeof pos !== "number") pos = m.seq;
  notePos(c, pos, true);
  const fresh = !c.msgs.has(m.id);
  const change = kind === "updated" || kind === "deleted";
  if (fresh && change && !holdsRange(c, m)) {
    if (c.lastMessage && c.lastMessage.id === m.id) {
      c.lastMessage = m;
      renderChatList();
    }
    return;
  }
  if (!applyMessage(c, m, pos)) return;
  if (m.sender.id === state.me.id && m.clientId) state.outbox.delete(m.clientId);
  if (!change) c.typing.delete(m.sender.id);
  if (fresh && !change && !m.deleted && m.sender.id !== state.me.id && m.seq > c.myReadSeq) {
    if (isVisible(c.id)) {
      if (!state.syncs.length) markRead(c); // else once, at sync.done
    }
    else c.unreadCount = (c.unreadCount || 0) + 1;
  }
  if (state.current === c.id) {
    renderMessages(false);
    renderConversationHead();
  }
  renderChatList();
}

function onAck(f) {
  state.outbox.delete(f.clientId);
  addMessage(f.message, f.message.seq, "ack");
}

function onDeleted(f) {
  const c = state.chats.get(f.chatId);
  if (!c) return;
  const m = c.msgs.get(f.messageId) || (c.lastMessage && c.lastMessage.id === f.messageId && c.lastMessage);
  if (!m) {
    notePos(c, f.seq, true);
    return;
  }
  addMessage(tombstone(m), f.seq, "deleted");
}

function isVisible(chatId) {
  return state.current === chatId && !$("view-chats").hidden && document.visibilityState === "visible";
}

// Moves this user's read mark to the chat's newest message from others.
function markRead(c) {
  if (!c || !isVisible(c.id)) return;
  let last = null;
  for (const m of c.msgs.values()) if (!last || m.seq > last.seq) last = m;
  if (!last || last.seq <= c.myReadSeq) {
    if (c.unreadCount) { c.unreadCount = 0; renderChatList(); }
    return;
  }
  if (gw.send({ type: "read", chatId: c.id, messageId: last.id })) {
    c.myReadSeq = last.seq;
    c.unreadCount = 0;
    renderChatList();
  }
}

function onRead(f) {
  const c = state.chats.get(f.chatId);
  if (!c) return;
  const m = c.msgs.get(f.messageId);
  // The frame's seq (contract v1.2) is the mark itself; older servers name
  // only the message.
  const seq = typeof f.seq === "number" ? f.seq : m ? m.seq : null;
  if (f.userId === state.me.id) { // another device of ours read up to here
    if (seq !== null) c.myReadSeq = Math.max(c.myReadSeq, seq);
    let unread = 0;
    for (const x of c.msgs.values()) {
      if (x.sender.id !== state.me.id && !x.deleted && x.seq > c.myReadSeq) unread++;
    }
    c.unreadCount = seq !== null ? unread : 0;
    renderChatList();
    return;
  }
  // The reader's frame can overtake our own ack of the message it names:
  // then the mark waits for the message (storeMessage).
  if (seq !== null) c.marks.set(f.userId, Math.max(c.marks.get(f.userId) || 0, seq));
  else c.markIds.set(f.userId, f.messageId);
  if (state.current === c.id) renderMessages(false);
}

function onTyping(f) {
  const c = state.chats.get(f.chatId);
  if (!c || f.userId === state.me.id) return;
  clearTimeout(c.typing.get(f.userId));
  c.typing.set(f.userId, setTimeout(() => {
    c.typing.delete(f.userId);
    renderChatList();
    if (state.current === c.id) renderConversationHead();
  }, TYPING_SHOW_MS));
  renderChatList();
  if (state.current === c.id) renderConversationHead();
}

function onPresence(f) {
  state.unknown.delete(f.userId);
  if (f.online) state.online.add(f.userId);
  else state.online.delete(f.userId);
  renderChatList();
  renderConversationHead();
}

// What an item shows, as a string: an item is redrawn only when it changes.
function messageSig(m, seen) {
  const mine = m.sender.id === state.me.id;
  const editing = mine && !m.deleted && !!state.editing && state.editing.id === m.id;
  const confirming = mine && !m.deleted && !editing && state.confirmDelete === m.id;
  return JSON.stringify([m.text, !!m.deleted, m.editedAt || null, m.attachmentUrl || null,
                         seen || null, editing, confirming]);
}

function messageItem(c, m, seen) {
  const mine = m.sender.id === state.me.id;
  const editing = mine && !m.deleted && !!state.editing && state.editing.id === m.id;
  const confirming = mine && !m.deleted && !editing && state.confirmDelete === m.id;
  let body;
  if (editing) body = editForm(c, m);
  else if (m.deleted) body = el("p", { class: "text deleted", text: "Message deleted" });
  else body = el("p", { class: "text", text: m.text });
  const edited = m.editedAt && !m.deleted;
  const li = el("li", { class: mine ? "msg mine" : "msg", "data-seq": String(m.seq), "data-id": m.id },
    mine ? null : el("span", { class: "sender", text: m.sender.displayName }),
    body,
    !m.deleted && isHttpUrl(m.attachmentUrl) ? el("a", { href: m.attachmentUrl, target: "_blank",
                                                        rel: "noopener", text: "Attachment" }) : null,
    el("span", { class: "meta" }, when(m.createdAt),
       edited ? el("span", { class: "edited", title: "Edited " + when(m.editedAt), text: " (edited)" }) : null));
  if (seen) li.append(el("span", { class: "seen", text: seen }));
  if (confirming) li.append(confirmDeleteRow(c, m));
  else if (mine && !m.deleted && !editing) {
    li.append(el("span", { class: "msg-actions" },
      el("button", { type: "button", class: "edit-btn", text: "Edit",
                     "aria-label": "Edit message: " + m.text.slice(0, 40),
                     onclick: () => startEdit(c, m) }),
      el("button", { type: "button", class: "delete-btn", text: "Delete",
                     "aria-label": "Delete message: " + m.text.slice(0, 40),
                     onclick: () => askDelete(c, m) })));
  }
  li.dataset.sig = messageSig(m, seen);
  return li;
}

// Inline edit of one of our messages: Enter saves, Esc cancels (the draft
// survives a redraw of the list, kept in state.editing).
function editForm(c, m) {
  const id = "edit-" + m.id;
  const box = el("textarea", { id, class: "edit-text", rows: "2", maxlength: "4000",
                               "aria-describedby": id + "-hint" });
  box.value = state.editing.draft;
  box.addEventListener("input", () => { if (state.editing) state.editing.draft = box.value; });
  box.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey) {
      ev.preventDefault();
      guard(() => saveEdit(c, m))();
    } else if (ev.key === "Escape") {
      ev.preventDefault();
      cancelEdit(m);
    }
  });
  return el("div", { class: "edit" },
    el("label", { for: id, class: "sr-only", text: "Edit message" }),
    box,
    el("small", { id: id + "-hint", text: "Enter saves, Esc cancels" }),
    el("span", { class: "row" },
      el("button", { type: "button", text: "Save", onclick: guard(() => saveEdit(c, m)) }),
      el("button", { type: "button", text: "Cancel", onclick: () => cancelEdit(m) })));
}

function confirmDeleteRow(c, m) {
  return el("span", { class: "confirm row", role: "group", "aria-label": "Confirm deletion" },
    el("span", { text: "Delete this message?" }),
    el("button", { type: "button", class: "danger", text: "Yes, delete",
                   onclick: guard(() => deleteMine(c, m)) }),
    el("button", { type: "button", class: "keep-btn", text: "Keep it",
                   onclick: () => { state.confirmDelete = null; renderMessages(false); focusMsg(m.id, ".delete-btn"); } }));
}

function focusMsg(id, selector) {
  const li = document.querySelector('#messages li[data-id="' + id + '"]');
  const target = li && li.querySelector(selector);
  if (target) target.focus();
  else $("messages").focus();
}

function startEdit(c, m) {
  state.confirmDelete = null;
  state.editing = { chatId: c.id, id: m.id, draft: m.text, saving: false };
  renderMessages(false);
  const box = $("edit-" + m.id);
  if (box) {
    box.focus();
    box.setSelectionRange(box.value.length, box.value.length);
  }
}

function cancelEdit(m) {
  state.editing = null;
  renderMessages(false);
  focusMsg(m.id, ".edit-btn");
}

// PATCH; the answer is shown at once (the message.updated frame that
// follows carries the same state and changes nothing).
async function saveEdit(c, m) {
  const e = state.editing;
  if (!e || e.id !== m.id || e.saving) return;
  const text = e.draft.trim();
  const cur = c.msgs.get(m.id) || m;
  if (text === cur.text) {
    cancelEdit(m);
    return;
  }
  if (!text && !cur.attachmentUrl) {
    toast("A message needs some text: delete it instead.");
    return;
  }
  e.saving = true;
  let updated;
  try {
    updated = await api.editMessage(c.id, m.id, text);
  } catch (err) {
    e.saving = false;
    if (err instanceof ApiError && err.status === 404) { // deleted meanwhile
      state.editing = null;
      renderMessages(false);
      toast("That message no longer exists.");
      return;
    }
    throw err;
  }
  state.editing = null;
  applyMessage(c, updated, c.mpos.get(m.id) || updated.seq);
  renderMessages(false);
  renderChatList();
  focusMsg(m.id, ".edit-btn");
}

function askDelete(c, m) {
  state.editing = null;
  state.confirmDelete = m.id;
  renderMessages(false);
  focusMsg(m.id, ".keep-btn");
}

// DELETE; the tombstone shows at once (message.deleted follows).
async function deleteMine(c, m) {
  try {
    await api.deleteMessage(c.id, m.id);
  } finally {
    state.confirmDelete = null;
  }
  const cur = c.msgs.get(m.id) || m;
  applyMessage(c, tombstone(cur), c.mpos.get(m.id) || cur.seq);
  renderMessages(false);
  renderChatList();
  $("messages").focus();
}

// "Seen": for each other member's read mark, the newest message of ours it
// reaches.  A direct chat says "Seen"; a group names who has seen it.
function seenLabels(c, msgs) {
  const by = new Map(); // message seq -> reader names
  for (const [uid, mark] of c.marks) {
    if (uid === state.me.id) continue;
    const member = c.members.find((x) => x.id === uid);
    if (!member) continue; // left the chat
    let at = null;
    for (const m of msgs) if (m.sender.id === state.me.id && m.seq <= mark) at = m.seq;
    if (at === null) continue;
    if (!by.has(at)) by.set(at, []);
    by.get(at).push(member.displayName);
  }
  const labels = new Map();
  for (const [seq, names] of by) {
    labels.set(seq, c.type === "direct" ? "Seen" : "Seen by " + names.sort().join(", "));
  }
  return labels;
}

function pendingItem(clientId, o) {
  return el("li", { class: o.failed ? "msg mine failed" : "msg mine pending", "data-client-id": clientId },
    el("p", { class: "text", text: o.text }),
    el("span", { class: "meta", text: o.failed ? "Not sent: " + o.failed : "Sending…" }));
}

// Renders the open chat.  New messages are appended, so the log region
// announces only them; a reload or a late older message redraws the list.
function renderMessages(full) {
  const c = state.chats.get(state.current);
  const list = $("messages");
  if (!c) return;
  const msgs = [...c.msgs.values()].sort((a, b) => a.seq - b.seq);
  const seen = seenLabels(c, msgs);
  const editFocused = document.activeElement && document.activeElement.classList.contains("edit-text");
  const rendered = [...list.querySelectorAll("li[data-seq]")];
  const lastRendered = rendered.length ? Number(rendered[rendered.length - 1].dataset.seq) : 0;
  const ok = !full && list.dataset.chat === c.id &&
             rendered.length === msgs.filter((m) => m.seq <= lastRendered).length;
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  if (ok) {
    for (const li of list.querySelectorAll("li[data-client-id]")) li.remove();
    for (const li of rendered) { // edits, deletions, the "Seen" mark: changed items only,
      const m = c.msgs.get(li.dataset.id); // so the log region announces nothing twice
      if (m && messageSig(m, seen.get(m.seq)) !== li.dataset.sig) li.replaceWith(messageItem(c, m, seen.get(m.seq)));
    }
    for (const m of msgs) if (m.seq > lastRendered) list.append(messageItem(c, m, seen.get(m.seq)));
  } else {
    list.dataset.chat = c.id;
    list.replaceChildren(...msgs.map((m) => messageItem(c, m, seen.get(m.seq))));
  }
  if (editFocused && state.editing) { // a full redraw replaced the edit box
    const box = $("edit-" + state.editing.id);
    if (box && document.activeElement !== box) box.focus();
  }
  for (const [clientId, o] of state.outbox) if (o.chatId === c.id) list.append(pendingItem(clientId, o));
  if (atBottom || full) list.scrollTop = list.scrollHeight;
}

function onSend(ev) {
  ev.preventDefault();
  const c = state.chats.get(state.current);
  const box = $("composer-text");
  const text = box.value.trim();
  if (!c || !text) return;
  const clientId = randomId();
  state.outbox.set(clientId, { chatId: c.id, text, failed: null });
  gw.send({ type: "message.send", chatId: c.id, text, clientId }); // else sent on reconnect
  box.value = "";
  state.lastTypingSent = 0;
  renderMessages(false);
  $("messages").scrollTop = $("messages").scrollHeight;
}

function onComposerKey(ev) {
  if (ev.key === "Enter" && !ev.shiftKey) {
    ev.preventDefault();
    $("composer").requestSubmit();
  }
}

function onComposerInput() {
  const now = Date.now();
  if (!state.current || now - state.lastTypingSent < TYPING_SEND_MS) return;
  if (gw.send({ type: "typing", chatId: state.current })) state.lastTypingSent = now;
}

// ---- feed -------------------------------------------------------------------

async function loadFeed() {
  const page = await api.feed(state.feedCursor);
  state.feedLoaded = true;
  for (const p of page.items) if (!state.posts.has(p.id)) {
    state.posts.set(p.id, p);
    $("posts").append(postItem(p));
  }
  state.feedCursor = page.nextCursor;
  $("feed-more").hidden = !page.nextCursor;
}

function onPostNew(p) {
  if (!state.feedLoaded || state.posts.has(p.id)) return;
  state.posts.set(p.id, p);
  $("posts").prepend(postItem(p));
  if (p.author.id !== state.me.id) $("feed-new").textContent = "New post from " + p.author.displayName;
}

function postItem(p) {
  const likeBtn = el("button", { type: "button", class: "like", "aria-pressed": String(!!p.likedByMe) });
  const setLike = (liked, count) => {
    p.likedByMe = liked;
    p.likeCount = count;
    likeBtn.setAttribute("aria-pressed", String(liked));
    likeBtn.textContent = (liked ? "♥ " : "♡ ") + count + (count === 1 ? " like" : " likes");
  };
  setLike(!!p.likedByMe, p.likeCount);
  likeBtn.addEventListener("click", guard(async () => {
    const r = await api.like(p.id, !p.likedByMe);
    setLike(r.likedByMe, r.likeCount);
  }));
  const commentsId = "comments-" + p.id;
  const comments = el("div", { id: commentsId, class: "comments", hidden: true });
  const toggle = el("button", { type: "button", "aria-expanded": "false", "aria-controls": commentsId,
                                text: "Comments (" + p.commentCount + ")" });
  toggle.addEventListener("click", guard(async () => {
    const open = toggle.getAttribute("aria-expanded") !== "true";
    toggle.setAttribute("aria-expanded", String(open));
    comments.hidden = !open;
    if (open && !comments.dataset.loaded) await loadComments(p, comments, toggle);
  }));
  return el("li", { class: "post card", "data-post": p.id },
    el("article", null,
      el("header", null,
        el("strong", { text: p.author.displayName }),
        el("span", { class: "muted", text: " @" + p.author.username + " · " + when(p.createdAt) })),
      p.text ? el("p", { class: "text", text: p.text }) : null,
      isHttpUrl(p.imageUrl) ? el("img", { src: p.imageUrl, alt: "Image posted by " + p.author.displayName,
                                          loading: "lazy", class: "post-image" }) : null,
      el("div", { class: "row" }, likeBtn, toggle),
      comments));
}

async function loadComments(p, box, toggle) {
  const page = await api.comments(p.id);
  box.dataset.loaded = "1";
  const list = el("ul", { class: "comment-list" },
    ...page.items.reverse().map((c) => commentItem(c)));
  const inputId = "comment-text-" + p.id;
  const input = el("input", { id: inputId, maxlength: "2000", required: true });
  const err = el("p", { class: "form-error", role: "alert" });
  const form = el("form", { class: "row comment-form" },
    el("label", { for: inputId, class: "sr-only", text: "Add a comment" }), input,
    el("button", { type: "submit", text: "Comment" }), err);
  form.addEventListener("submit", guard(async (ev) => {
    ev.preventDefault();
    err.textContent = "";
    const text = input.value.trim();
    if (!text) return;
    const c = await api.comment(p.id, text);
    input.value = "";
    list.append(commentItem(c));
    p.commentCount++;
    toggle.textContent = "Comments (" + p.commentCount + ")";
  }, err));
  box.replaceChildren(list, form);
}

function commentItem(c) {
  return el("li", null, el("strong", { text: c.author.displayName + " " }),
            el("span", { text: c.text }), el("span", { class: "muted", text: " · " + when(c.createdAt) }));
}

async function onPost(ev) {
  ev.preventDefault();
  const f = ev.target;
  formError(f).textContent = "";
  const text = $("post-text").value.trim();
  const file = $("post-image").files[0];
  if (!text && !file) {
    formError(f).textContent = "Write something or attach an image.";
    return;
  }
  const submit = f.querySelector("button[type=submit]");
  submit.disabled = true;
  try {
    const imageUrl = file ? await uploadImage(file) : null;
    const p = await api.createPost(text, imageUrl);
    f.reset();
    clearPreview();
    if (!state.posts.has(p.id)) {
      state.posts.set(p.id, p);
      $("posts").prepend(postItem(p));
    }
  } finally {
    submit.disabled = false;
  }
}

// POST /api/uploads (api.md "Uploads"), then the returned `url` goes into
// the post.  The server decides the type from the bytes, so a refusal is
// told in the user's words here; the chosen file stays picked.
async function uploadImage(file) {
  const status = $("post-status");
  status.textContent = "Uploading " + file.name + "…";
  try {
    return (await api.upload(file)).url;
  } catch (e) {
    if (e instanceof ApiError) throw uploadError(e, file);
    throw e;
  } finally {
    status.textContent = "";
  }
}

function uploadError(e, file) {
  let text = null;
  if (e.status === 413)
    text = "\u201c" + file.name + "\u201d is too large (" + sizeText(file.size) +
           "): this server takes smaller images.";
  else if (e.status === 415)
    text = "\u201c" + file.name + "\u201d is not an image this server accepts: use a JPEG, PNG, GIF or WebP file.";
  else if (e.status === 429)
    text = "Too many uploads for now" + e.message.replace(/^too many requests/, "") + ".";
  else if (e.status === 0)
    text = "The upload did not reach the server (the connection closed): try again, or a smaller image.";
  if (!text) return e;
  return new ApiError(e.status, e.code, text, e.field);
}

function sizeText(bytes) {
  if (bytes < 1024) return bytes + " bytes";
  if (bytes < 1024 * 1024) return (bytes / 1024).toFixed(1) + " KiB";
  return (bytes / (1024 * 1024)).toFixed(1) + " MiB";
}

function onImagePicked() {
  const file = $("post-image").files[0];
  clearPreview();
  if (!file) return;
  const img = $("post-preview");
  img.src = URL.createObjectURL(file);
  img.hidden = false;
}

function clearPreview() {
  const img = $("post-preview");
  if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
  img.removeAttribute("src");
  img.hidden = true;
}

// ---- people -----------------------------------------------------------------

async function onSearch(ev) {
  ev.preventDefault();
  const q = $("search-q").value.trim();
  const list = $("people");
  if (!q) return;
  const page = await api.searchUsers(q);
  const items = page.items.filter((u) => u.id !== state.me.id).map((u) => {
    const pick = el("button", { type: "button", "aria-pressed": String(state.selected.has(u.id)),
                                text: "Add to group" });
    pick.addEventListener("click", () => {
      if (state.selected.has(u.id)) state.selected.delete(u.id);
      else state.selected.set(u.id, u);
      pick.setAttribute("aria-pressed", String(state.selected.has(u.id)));
      renderGroupForm();
    });
    return el("li", { class: "person", "data-user": u.username },
      el("span", null, el("strong", { text: u.displayName }), el("span", { class: "muted", text: " @" + u.username })),
      el("span", { class: "row" },
        el("button", { type: "button", text: "Message", "aria-label": "Message " + u.displayName,
                       onclick: guard(() => startDirect(u)) }),
        pick));
  });
  list.replaceChildren(...items);
  if (!items.length) list.append(el("li", { class: "muted", text: "Nobody found." }));
}

async function startDirect(u) {
  const c = await api.createChat([u.id]);
  if (!state.chats.has(c.id)) noteNewContacts(c);
  const chat = upsertChat(c, true);
  await openChat(chat.id, true);
}

function renderGroupForm() {
  const f = $("group-form");
  f.hidden = state.selected.size === 0;
  $("group-members").textContent = "With: " + [...state.selected.values()].map((u) => u.displayName).join(", ");
}

async function onCreateGroup(ev) {
  ev.preventDefault();
  const f = ev.target;
  formError(f).textContent = "";
  const name = $("group-name").value.trim();
  if (!name) {
    formError(f).textContent = "Give the group a name.";
    return;
  }
  const c = await api.createChat([...state.selected.keys()], name);
  noteNewContacts(c);
  const chat = upsertChat(c, true);
  state.selected.clear();
  f.reset();
  renderGroupForm();
  await openChat(chat.id, true);
}

// ---- account settings (contract v1.2) ---------------------------------------

// A 404 from an account route means the server predates contract v1.2.
async function accountCall(fn) {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) e.accountRoute = true;
    throw e;
  }
}

async function onChangePassword(ev) {
  ev.preventDefault();
  const f = ev.target;
  formError(f).textContent = "";
  $("password-status").textContent = "";
  const current = $("pw-current").value;
  const next = $("pw-new").value;
  if (!current || !next) {
    formError(f).textContent = "Fill in both passwords.";
    return;
  }
  try {
    await accountCall(() => api.changePassword(current, next));
  } catch (e) {
    if (e instanceof ApiError && e.code === "invalid_credentials") {
      formError(f).textContent = "The current password is wrong.";
      return;
    }
    throw e;
  }
  f.reset();
  $("password-status").textContent = "Password changed. Your other devices were logged out.";
}

async function onLogoutAll() {
  const err = $("logout-all-error");
  err.textContent = "";
  try {
    await accountCall(() => api.logoutAll());
  } catch (e) {
    if (e instanceof ApiError && e.status !== 401) {
      err.textContent = describe(e);
      return;
    }
    throw e;
  }
  endSession("Logged out on every device.");
}

async function onDeleteAccount(ev) {
  ev.preventDefault();
  const f = ev.target;
  formError(f).textContent = "";
  const password = $("del-password").value;
  if (!password) {
    formError(f).textContent = "Type your password to confirm.";
    return;
  }
  if (!$("del-confirm").checked) {
    formError(f).textContent = "Tick the box to confirm that this cannot be undone.";
    return;
  }
  try {
    await accountCall(() => api.deleteAccount(password));
  } catch (e) {
    if (e instanceof ApiError && e.code === "invalid_credentials") {
      formError(f).textContent = "The password is wrong.";
      return;
    }
    throw e;
  }
  endSession("Your account was deleted.");
}

// ---- wiring -----------------------------------------------------------------

function wire() {
  $("login-form").addEventListener("submit", guard(onLogin, formError($("login-form"))));
  $("register-form").addEventListener("submit", guard(onRegister, formError($("register-form"))));
  $("logout").addEventListener("click", guard(onLogout));
  for (const b of document.querySelectorAll(".tab")) b.addEventListener("click", () => showView(b.dataset.view));
  $("conv-back").addEventListener("click", closeConversation);
  $("composer").addEventListener("submit", onSend);
  $("composer-text").addEventListener("keydown", onComposerKey);
  $("composer-text").addEventListener("input", onComposerInput);
  $("post-form").addEventListener("submit", guard(onPost, formError($("post-form"))));
  $("post-image").addEventListener("change", onImagePicked);
  $("feed-more").addEventListener("click", guard(loadFeed));
  $("search-form").addEventListener("submit", guard(onSearch));
  $("group-form").addEventListener("submit", guard(onCreateGroup, formError($("group-form"))));
  $("password-form").addEventListener("submit", guard(onChangePassword, formError($("password-form"))));
  $("logout-all").addEventListener("click", guard(onLogoutAll, $("logout-all-error")));
  $("delete-account-form").addEventListener("submit", guard(onDeleteAccount, formError($("delete-account-form"))));
  document.addEventListener("visibilitychange", () => markRead(state.chats.get(state.current)));
  gw.addEventListener("state", onGatewayState);
  gw.addEventListener("frame", onFrame);
  gw.addEventListener("unauthorized", () => endSession("Your session ended: please log in again."));
}

async function boot() {
  wire();
  if (!api.token) return;
  try {
    startSession(await api.me());
  } catch (e) {
    api.setToken(null); // expired or revoked: back to the login form
  }
}

boot();
