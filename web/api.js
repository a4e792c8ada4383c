// api.js - the REST half of the chatli client: one fetch wrapper over /api.
//
// The token lives in this object (and in sessionStorage, so a reload of the
// tab stays logged in); it travels only in the Authorization header, never
// in a URL.  Every failure becomes an ApiError carrying the contract's error
// code, field and HTTP status, so callers branch on codes, not on text.

export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message || code);
    this.status = status;
    this.code = code;
    this.field = field || null;
  }
}

const TOKEN_KEY = "chatli.token";

export class Api {
  constructor() {
    this.token = sessionStorage.getItem(TOKEN_KEY);
  }

  setToken(token) {
    this.token = token;
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  }

  // Sends one request; `body` is JSON unless it is a FormData (uploads).
  async request(method, path, body) {
    const headers = {};
    if (this.token) headers.Authorization = "Bearer " + this.token;
    let payload;
    if (body instanceof FormData) {
      payload = body;
    } else if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, { method, headers, body: payload, cache: "no-store" });
    } catch (e) {
      throw new ApiError(0, "network", "the server cannot be reached");
    }
    if (res.status === 204) return null;
    let data = null;
    try {
      data = await res.json();
    } catch (e) {
      data = null;
    }
    if (!res.ok) {
      const err = (data && data.error) || {};
      if (res.status === 429) {
        const after = res.headers.get("Retry-After");
        err.message = "too many requests" + (after ? ", retry in " + after + " s" : "");
      }
      throw new ApiError(res.status, err.code || "http_" + res.status, err.message, err.field);
    }
    return data;
  }

  get(path, query) {
    if (query) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null) q.set(k, v);
      const s = q.toString();
      if (s) path += "?" + s;
    }
    return this.request("GET", path);
  }

  register(username, email, password, displayName) {
    const body = { username, email, password };
    if (displayName) body.displayName = displayName;
    return this.request("POST", "/api/auth/register", body);
  }
  login(email, password) { return this.request("POST", "/api/auth/login", { email, password }); }
  logout() { return this.request("POST", "/api/auth/logout"); }
  me() { return this.get("/api/users/me"); }
  searchUsers(q, before) { return this.get("/api/users", { q, before, limit: 20 }); }

  feed(before) { return this.get("/api/posts", { before, limit: 20 }); }
  createPost(text, imageUrl) {
    const body = { text };
    if (imageUrl) body.imageUrl = imageUrl;
    return this.request("POST", "/api/posts", body);
  }
  like(postId, on) { return this.request(on ? "PUT" : "DELETE", "/api/posts/" + postId + "/like"); }
  comments(postId, before) { return this.get("/api/posts/" + postId + "/comments", { before, limit: 20 }); }
  comment(postId, text) { return this.request("POST", "/api/posts/" + postId + "/comments", { text }); }

  chats(before) { return this.get("/api/chats", { before, limit: 100 }); }
  chat(id) { return this.get("/api/chats/" + id); }
  createChat(memberIds, name) {
    const body = { memberIds };
    if (name) body.name = name;
    return this.request("POST", "/api/chats", body);
  }
  messages(chatId, before) { return this.get("/api/chats/" + chatId + "/messages", { before, limit: 50 }); }
  messagesAfter(chatId, afterSeq) {
    return this.get("/api/chats/" + chatId + "/messages", { afterSeq, limit: 100 });
  }
  // Edits and deletions (contract v1.2): the sender only.  PATCH answers the
  // edited Message; DELETE answers 204 and leaves a tombstone in history.
  editMessage(chatId, messageId, text) {
    return this.request("PATCH", "/api/chats/" + chatId + "/messages/" + messageId, { text });
  }
  deleteMessage(chatId, messageId) {
    return this.request("DELETE", "/api/chats/" + chatId + "/messages/" + messageId);
  }

  // Account lifecycle (contract v1.2).  Each answers 204; a wrong password
  // is 401 invalid_credentials (the session itself stays valid).
  changePassword(currentPassword, newPassword) {
    return this.request("POST", "/api/auth/password", { currentPassword, newPassword });
  }
  logoutAll() { return this.request("POST", "/api/auth/logout-all"); }
  deleteAccount(password) { return this.request("DELETE", "/api/users/me", { password }); }

  // POST /api/uploads (api.md "Uploads"): resolves to
  // {url, publicId, bytes, format, width, height}.
  upload(file) {
    const fd = new FormData();
    fd.append("file", file);
    return this.request("POST", "/api/uploads", fd);
  }
}
